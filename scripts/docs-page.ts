// npm run docs:build: the API reference page (Redocly build-docs) for openapi/identity.yaml, self-contained.
//
// The page is a build product, never committed: `npm run build` writes dist/openapi/identity.html beside the copied
// document; `npm run docs:build` (run by predev, and by the page's test when missing or stale) writes
// openapi/identity.html (git-ignored). The server serves the page found beside the document it serves, and only
// if the page's stamp names that document's hash, so a page never describes another contract than the one served.
//
// Self-contained means a browser loads nothing from elsewhere: Redoc is inlined (--inlineBundle), and the two
// CDN references the bundle keeps (the "API docs by Redocly" logo, the icon sets) are pointed at empty data: URLs;
// the build fails if any other reference a browser would fetch remains.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const redoclyDir = join(root, 'node_modules', '@redocly', 'cli');

/** What the page is built from, written into it: the server compares the hash with the document it serves. */
export function stampFor(documentText: string): string {
  const version = (JSON.parse(readFileSync(join(redoclyDir, 'package.json'), 'utf8')) as { version: string }).version;
  const hash = createHash('sha256').update(documentText).digest('hex');
  return `<!-- tessera-reference sha256=${hash} redocly=${version} -->`;
}

/** Redoc's CDN assets: optional decorations (the logo falls back to nothing on error; no icon is used by the document). */
const CDN_ASSET = /https:\/\/cdn\.redoc(?:ly)?\.(?:ly|com)\/[^`'"\s)]*/g;
/** References a browser would fetch by itself: script and link tags with a URL, CSS imports and fonts, known CDNs. */
const FETCHED = [
  /<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//gi,
  /@import\s+(?:url\()?["']?(?:https?:)?\/\//gi,
  /url\(\s*["']?(?:https?:)?\/\/[^)]*\)/gi,
  /fonts\.(?:googleapis|gstatic)\.com/gi,
  /cdn\.redoc(?:ly)?\.(?:ly|com)/gi,
];

/** Builds the page for `document` into `out`; with `ifStale`, only when `out` is missing or stamped otherwise. */
export function buildReferencePage(document: string, out: string, opts: { ifStale?: boolean } = {}): 'built' | 'current' {
  const stamp = stampFor(readFileSync(document, 'utf8'));
  if (opts.ifStale && existsSync(out) && readFileSync(out, 'utf8').startsWith(stamp)) return 'current';
  const tmp = `${out}.${process.pid}.tmp`;
  const args = [
    join(redoclyDir, 'bin', 'cli.js'),
    'build-docs',
    document,
    '--inlineBundle',
    '--config',
    join(root, 'openapi', 'redocly.yaml'),
  ];
  execFileSync(process.execPath, [...args, '--output', tmp], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  const html = readFileSync(tmp, 'utf8').replace(CDN_ASSET, 'data:,');
  const left = FETCHED.flatMap((re) => [...html.matchAll(re)].map((m) => m[0].slice(0, 120)));
  if (left.length > 0) throw new Error(`the reference page would load from elsewhere: ${left.join(', ')}`);
  writeFileSync(tmp, `${stamp}\n${html}`);
  renameSync(tmp, out); // whole or not at all: a running server or a test never reads half a page
  return 'built';
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = resolve(root, at >= 0 ? args[at + 1]! : 'openapi/identity.html');
  const result = buildReferencePage(join(root, 'openapi', 'identity.yaml'), out, { ifStale: args.includes('--if-stale') });
  console.log(`${result === 'built' ? 'wrote' : 'current:'} ${out}`);
}

// The served contract: the OpenAPI documents (YAML as written, JSON made from it) and the API reference page,
// answered outside /_matrix at /openapi/<name>.yaml, /openapi/<name>.json and /docs/.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../logger.js';

/** Beside this module's tree: openapi/ when run from the sources, dist/openapi/ (copied by npm run build) when built. */
const DOCUMENTS_DIR = new URL('../../../openapi/', import.meta.url);
const DOCUMENTS = ['identity', 'homeserver'] as const;
/** Built by scripts/docs-page.ts beside the document it renders (see there for where and when). */
const PAGE = new URL('identity.html', DOCUMENTS_DIR);
const PAGE_STAMP = /^<!-- tessera-reference sha256=([0-9a-f]{64}) /;

export const REFERENCE_PATHS = {
  document: (name: string, ext: 'yaml' | 'json') => `/openapi/${name}.${ext}`,
  page: '/docs/',
} as const;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/**
 * Reads the documents and the page once, at start-up: each answer is a constant Buffer with its ETag, and the JSON
 * is the YAML parsed once (the same content, for tools that do not read YAML). A page that is missing, or was built
 * from another version of the document, is not served (it would describe a contract other than the one served).
 */
export function loadReference(log: Logger): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let identityHash = '';
  for (const name of DOCUMENTS) {
    const yamlText = readFileSync(new URL(`${name}.yaml`, DOCUMENTS_DIR));
    if (name === 'identity') identityHash = createHash('sha256').update(yamlText).digest('hex');
    assets.set(REFERENCE_PATHS.document(name, 'yaml'), asset(yamlText, 'application/yaml'));
    const json = Buffer.from(`${JSON.stringify(parseYaml(yamlText.toString('utf8')), null, 2)}\n`);
    assets.set(REFERENCE_PATHS.document(name, 'json'), asset(json, 'application/json; charset=utf-8'));
  }
  const page = existsSync(PAGE) ? readFileSync(PAGE) : undefined;
  const builtFrom = page && PAGE_STAMP.exec(page.subarray(0, 120).toString('latin1'))?.[1];
  if (page && builtFrom === identityHash) {
    assets.set(REFERENCE_PATHS.page, asset(page, 'text/html; charset=utf-8'));
  } else {
    log.warn('the API reference page is not served: it is missing or was built from another identity.yaml; run npm run docs:build', {
      page: fileURLToPath(PAGE),
    });
  }
  return assets;
}

/**
 * GET and HEAD (the router answers both) of each asset; a client holding the current ETag gets 304. Short max-age
 * and then revalidation: a new release changes the documents under the same URLs.
 */
export function referenceRoutes(router: Router, assets: Map<string, Asset>): void {
  for (const [path, a] of assets) {
    const paths = path === REFERENCE_PATHS.page ? [path, path.slice(0, -1)] : [path];
    router.get(paths, (ctx) => {
      ctx.status = 200;
      ctx.type = a.type;
      ctx.etag = a.etag;
      ctx.set('Cache-Control', 'public, max-age=300, must-revalidate');
      ctx.set('X-Content-Type-Options', 'nosniff');
      if (ctx.fresh) {
        ctx.status = 304;
        return;
      }
      ctx.body = a.body;
    });
  }
}

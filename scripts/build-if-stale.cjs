// `npm start` runs this first: it builds (npm run build) only when an input of the build is newer than the last
// successful build, so an unchanged checkout starts straight from dist/. Plain Node and CommonJS on purpose:
// it runs before anything is compiled, and loading tsx or TypeScript here would cost the time it saves.
//
//   node scripts/build-if-stale.cjs           build when stale, else do nothing
//   node scripts/build-if-stale.cjs --begin   the start of `npm run build`: note the time the build read its inputs
//   node scripts/build-if-stale.cjs --stamp   the end of a successful `npm run build`: that time becomes the build's
//   node scripts/build-if-stale.cjs --check   print `stale` or `current` and exit (tests; `--root DIR` for another tree)
//
// The stamp carries the time the build STARTED, so a source saved while a build runs still counts as newer.
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdirSync, readdirSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const rootAt = process.argv.indexOf('--root');
const root = rootAt > 0 ? process.argv[rootAt + 1] : join(__dirname, '..');
const stamp = join(root, 'dist', '.build-stamp');
const started = join(root, 'dist', '.build-started');
// Everything the build reads. Directories count too: deleting or renaming a file changes its directory's mtime.
const inputs = ['src', 'generated', 'openapi', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/docs-page.ts'];

/** The newest modification time under `path` (a file, or a directory walked recursively), in ms. */
function newest(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  // A directory's own mtime moves when an entry is added or removed; openapi/'s also moves when `npm run dev`
  // writes the reference page next to the documents, so there only the documents' own times count.
  let latest = st.isDirectory() && path.endsWith('openapi') ? 0 : st.mtimeMs;
  if (st.isDirectory()) {
    for (const entry of readdirSync(path)) {
      if (path.endsWith('openapi') && entry.endsWith('.html')) continue; // the build's own output
      latest = Math.max(latest, newest(join(path, entry)));
    }
  }
  return latest;
}

if (process.argv.includes('--begin')) {
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(started, `${new Date().toISOString()}\n`);
} else if (process.argv.includes('--stamp')) {
  renameSync(started, stamp); // keeps the start time as the stamp's mtime
} else {
  let built = 0;
  try {
    built = statSync(stamp).mtimeMs;
  } catch {
    // never built here
  }
  const changed = inputs.some((input) => newest(join(root, input)) > built);
  if (process.argv.includes('--check')) {
    process.stdout.write(changed ? 'stale\n' : 'current\n');
  } else if (changed) {
    const npm = process.env.npm_execpath;
    // Run npm the way npm ran us (npm_execpath) when we can; otherwise the npm on PATH.
    if (npm) execFileSync(process.execPath, [npm, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
    else execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  }
}

#!/usr/bin/env node
// `tessera <command>`: the package's bin and `npm run tessera -- <command>` (commands.ts).
import { run } from './commands.js';

process.exitCode = await run(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
});

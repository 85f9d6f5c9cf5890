// npm run contract:diff -- [REF] [--if-present] [--base FILE] [--head FILE] [--changelog FILE] [--json] [--verbose]
//
// The breaking-change gate: compares openapi/identity.yaml as it is now with its version at a git ref (default:
// the latest tag reachable from HEAD, else the previous commit) and exits 1 on a change that breaks a user of
// the older document, unless openapi/CHANGELOG.md accepts it by name. docs/contract.md#the-breaking-change-gate
// describes the rules and the changelog's format.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { acceptedChanges, diffDocuments, type Finding } from './engine.js';

const DOCUMENT = 'openapi/identity.yaml';
const CHANGELOG = 'openapi/CHANGELOG.md';

const usage = `usage: npm run contract:diff -- [REF] [--if-present] [--base FILE] [--head FILE] [--changelog FILE] [--json] [--verbose]

Compares ${DOCUMENT} with its version at REF (default: the latest tag, else HEAD~1) and fails on a breaking
change that ${CHANGELOG} does not accept ("- breaking: <finding id> — <why>").
  --base FILE       compare with this file instead of a git ref
  --head FILE       the newer document (default: ${DOCUMENT})
  --changelog FILE  the accepted breaking changes (default: ${CHANGELOG})
  --json            print the findings as JSON
  --verbose         also list the changes that break nobody
  --if-present      when REF is not in the clone (shallow, first commit), pass instead of failing`;

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function main(): number {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        base: { type: 'string' },
        head: { type: 'string', default: DOCUMENT },
        changelog: { type: 'string', default: CHANGELOG },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        'if-present': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`contract:diff: ${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (positionals.length > 1 || (values.base && positionals.length > 0)) {
    process.stderr.write(`contract:diff: give one REF or --base FILE\n${usage}\n`);
    return 2;
  }

  let baseText: string;
  let against: string;
  if (values.base) {
    baseText = readFileSync(values.base, 'utf8');
    against = values.base;
  } else {
    const ref = positionals[0] ?? git(['describe', '--tags', '--abbrev=0']) ?? 'HEAD~1';
    const commit = git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
    if (!commit) {
      // A default ref may be missing for good reasons (a first commit, a shallow clone); a named one is a mistake.
      if (positionals.length > 0 && !values['if-present']) {
        process.stderr.write(`contract:diff: no commit ${ref} in this repository\n`);
        return 2;
      }
      process.stdout.write(`contract:diff: ${ref} is not in this clone (a first commit or a shallow clone): nothing to compare\n`);
      return 0;
    }
    const text = git(['show', `${commit}:${DOCUMENT}`]);
    if (text === undefined) {
      process.stdout.write(`contract:diff: ${DOCUMENT} did not exist at ${ref}: nothing to compare\n`);
      return 0;
    }
    baseText = text;
    against = `${ref} (${commit.slice(0, 12)})`;
  }

  const findings = diffDocuments(
    parse(baseText) as Record<string, unknown>,
    parse(readFileSync(values.head, 'utf8')) as Record<string, unknown>,
  );
  const accepted = existsSync(values.changelog) ? acceptedChanges(readFileSync(values.changelog, 'utf8')) : new Set<string>();
  const breaking = findings.filter((f) => f.breaking);
  const refused = breaking.filter((f) => !accepted.has(f.id));
  const allowed = breaking.filter((f) => accepted.has(f.id));
  const other = findings.filter((f) => !f.breaking);

  if (values.json) {
    const tag = (f: Finding) => ({ ...f, accepted: f.breaking ? accepted.has(f.id) : undefined });
    process.stdout.write(`${JSON.stringify({ head: values.head, base: against, findings: findings.map(tag) }, null, 2)}\n`);
  } else {
    process.stdout.write(
      `contract:diff: ${values.head} against ${against}: ${refused.length} breaking, ${allowed.length} accepted in ${values.changelog}, ` +
        `${other.length} other change(s)\n`,
    );
    for (const f of refused) process.stdout.write(`  BREAKING  ${f.id}: ${f.message}\n`);
    for (const f of allowed) process.stdout.write(`  accepted  ${f.id}: ${f.message}\n`);
    if (values.verbose) for (const f of other) process.stdout.write(`  change    ${f.id}: ${f.message}\n`);
    if (refused.length > 0) {
      process.stdout.write(
        `\nA client built from the older document breaks on each BREAKING line. Keep the contract, or accept the change\n` +
          `in ${resolve(values.changelog)} with a line per finding:\n  - breaking: <finding id> — <why, and what clients should do>\n`,
      );
    }
  }
  return refused.length > 0 ? 1 : 0;
}

process.exitCode = main();

// npm run contract:check -- --target URL [--smtp-sink PORT] [--homeserver-port PORT] [--only op1,op2] [--json FILE] [--strict]
// Exits 1 when any answer breaks openapi/identity.yaml, 2 on a usage error.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runChecker } from './check.js';
import { formatReport } from './report.js';

const USAGE =
  'usage: npm run contract:check -- --target URL [--smtp-sink PORT] [--homeserver-port PORT] [--only op1,op2] [--json FILE] [--strict] [--wait-ms MS]';

function port(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number`);
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        target: { type: 'string' },
        'smtp-sink': { type: 'string' },
        'homeserver-port': { type: 'string' },
        only: { type: 'string' },
        json: { type: 'string' },
        strict: { type: 'boolean' },
        'wait-ms': { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || !values.target) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const report = await runChecker({
    target: values.target,
    smtpSinkPort: port(values['smtp-sink'], '--smtp-sink'),
    homeserverPort: port(values['homeserver-port'], '--homeserver-port'),
    only: values.only?.split(',').map((s) => s.trim()),
    strict: values.strict,
    waitMs: values['wait-ms'] ? Number(values['wait-ms']) : undefined,
  });
  console.log(formatReport(report));
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  return report.failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  },
);

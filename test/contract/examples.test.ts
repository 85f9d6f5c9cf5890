// Every example in openapi/*.yaml validates against its schema (scripts/contract/examples.ts): generated docs, mock
// servers and contract tests show and replay them. The linters and the SDK generators run as steps of `npm test`
// before vitest (npm run contract:lint, contract:sdk), not beside the integration suite, whose two cores they would take.
import { describe, expect, it } from 'vitest';
import { checkExamples, formatFailures } from '../../scripts/contract/examples.js';

describe('examples in openapi/', () => {
  it('validate against their schemas', () => {
    const reports = checkExamples();
    expect(reports.map((r) => r.document)).toEqual(['openapi/identity.yaml', 'openapi/homeserver.yaml']);
    for (const r of reports) expect(r.checked, `${r.document}: no examples found`).toBeGreaterThan(0);
    expect(formatFailures(reports)).toBe('');
  });
});

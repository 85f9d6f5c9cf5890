import { describe, expect, it } from 'vitest';
import { createLogger, loggableError } from '../../src/platform/logger.js';

describe('logging errors', () => {
  it('keeps database drivers’ messages (which quote the failing values) out of the log', () => {
    const err = Object.assign(new Error("Duplicate entry 'secret-token-value' for key 'invites_token_unique'"), {
      code: 'ER_DUP_ENTRY',
      errno: 1062,
      sqlMessage: "Duplicate entry 'secret-token-value' for key 'invites_token_unique'",
    });
    const lines: string[] = [];
    createLogger('info', (l) => lines.push(l)).error('failed', { err });
    expect(lines.join('\n')).not.toContain('secret-token-value');
    expect(lines.join('\n')).toContain('ER_DUP_ENTRY');
    expect(loggableError(err)).toMatch(/^Error code=ER_DUP_ENTRY\n\s+at /);
  });

  it('keeps the message and stack of our own errors', () => {
    const err = new TypeError('x is not a function');
    expect(loggableError(err)).toContain('TypeError: x is not a function');
  });
});

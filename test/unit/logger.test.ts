import { describe, expect, it } from 'vitest';
import { createLogger, loggableError } from '../../src/platform/logger.js';
import { currentRequestId, outsideRequests, withRequestId } from '../../src/platform/requestContext.js';
import { parseLog } from '../helpers/logs.js';

const capture = (level: Parameters<typeof createLogger>[0] = 'debug', format?: Parameters<typeof createLogger>[2]) => {
  const lines: string[] = [];
  return { log: createLogger(level, (l) => lines.push(l), format), lines };
};

describe('logging errors', () => {
  it('keeps database drivers’ messages (which quote the failing values) out of the log', () => {
    const err = Object.assign(new Error("Duplicate entry 'secret-token-value' for key 'invites_token_unique'"), {
      code: 'ER_DUP_ENTRY',
      errno: 1062,
      sqlMessage: "Duplicate entry 'secret-token-value' for key 'invites_token_unique'",
    });
    const { log, lines } = capture('info');
    log.error('failed', { err });
    expect(lines.join('\n')).not.toContain('secret-token-value');
    expect(lines.join('\n')).toContain('ER_DUP_ENTRY');
    expect(loggableError(err)).toMatch(/^Error code=ER_DUP_ENTRY\n\s+at /);
  });

  it('keeps the message and stack of our own errors, under whatever field name', () => {
    const err = new TypeError('x is not a function');
    expect(loggableError(err)).toContain('TypeError: x is not a function');
    const { log, lines } = capture();
    const fields = { cause: err, n: 1 };
    log.warn('odd', fields);
    expect(parseLog(lines[0]!).cause).toBe(loggableError(err));
    expect(fields.cause).toBe(err); // the caller's object is left alone
  });
});

describe('structured lines', () => {
  it('writes one JSON object per line with level, time, message and fields', () => {
    const { log, lines } = capture('info');
    log.debug('not at info');
    log.info('mail sent', { id: 3, kind: 'invite', to: 'a***@e***' });
    log.warn('100% odd %s');
    expect(lines).toHaveLength(2);
    expect(parseLog(lines[0]!)).toMatchObject({ level: 'info', msg: 'mail sent', id: 3, kind: 'invite', to: 'a***@e***' });
    expect(Date.parse(parseLog(lines[0]!).time)).not.toBeNaN();
    expect(parseLog(lines[1]!)).toMatchObject({ level: 'warn', msg: '100% odd %s' });
    expect(lines[1]).not.toContain('\n');
  });

  it('names the request a line is written for, across awaits, and no request outside one', async () => {
    const { log, lines } = capture();
    log.info('before');
    await withRequestId('abc-1', async () => {
      await new Promise((r) => setTimeout(r, 1));
      log.info('inside');
      outsideRequests(() => log.info('set off'));
      expect(currentRequestId()).toBe('abc-1');
    });
    await Promise.all(['r-1', 'r-2'].map((id) => withRequestId(id, async () => (await Promise.resolve(), log.info(`for ${id}`)))));
    const parsed = lines.map(parseLog);
    expect(parsed.map((l) => [l.msg, l.request_id])).toEqual([
      ['before', undefined],
      ['inside', 'abc-1'],
      ['set off', undefined],
      ['for r-1', 'r-1'],
      ['for r-2', 'r-2'],
    ]);
  });

  it('replaces a value logged under a secret’s field name', () => {
    const { log, lines } = capture();
    log.info('oops', { token: 'sekrit-token', client_secret: 'sekrit-cs', password: 'pw' });
    expect(lines.join('\n')).not.toMatch(/sekrit|"pw"/);
    expect(parseLog(lines[0]!)).toMatchObject({ token: '[redacted]', client_secret: '[redacted]' });
  });

  it('writes readable lines in the pretty format', () => {
    const { log, lines } = capture('info', 'pretty');
    log.info('mail sent', { id: 3 });
    expect(lines[0]).toMatch(/INFO.*mail sent/);
    expect(lines[0]).toContain('id: 3');
    expect(() => JSON.parse(lines[0]!) as unknown).toThrow();
  });

  it('writes nothing at silent', () => {
    const { log, lines } = capture('silent');
    log.error('nothing');
    expect(lines).toEqual([]);
  });
});

describe('with the request context off (log.requestContext: false)', () => {
  it('runs request work without naming it in the log, yet a failed request still names its line', async () => {
    const { errorResponse } = await import('../../src/platform/http/api.js');
    const { setRequestContextEnabled } = await import('../../src/platform/requestContext.js');
    const { log, lines } = capture();
    setRequestContextEnabled(false);
    try {
      withRequestId('req-quiet', () => log.info('inside'));
      expect(parseLog(lines[0]!)).not.toHaveProperty('request_id');
      const res = errorResponse(new Error('boom'), { log, outage: { absorbs: () => false } as never }, '/x', 'req-failed');
      expect(res.status).toBe(500);
      expect(parseLog(lines[1]!)).toMatchObject({ msg: 'unhandled error', request_id: 'req-failed' });
    } finally {
      setRequestContextEnabled(true);
    }
    withRequestId('req-named', () => log.info('inside again'));
    expect(parseLog(lines[2]!)).toMatchObject({ request_id: 'req-named' });
  });
});

// The contract checker (scripts/checker) against a real Tessera on every test database: no failures, and exactly the
// expected steps skipped; and against a broken server: its wrong answers are caught.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecker, startSinks, type CheckReport, type CheckerSinks } from '../../scripts/checker/check.js';
import { formatReport } from '../../scripts/checker/report.js';
import { testDatabases } from '../helpers/databases.js';
import { settle, startTestServer, type TestServer } from '../helpers/server.js';
import { operations } from '../../generated/identity.validators.js';

/** Phone numbers are documented but not offered: every step of those operations is skipped, and nothing else. */
const NOT_OFFERED = Object.entries(operations)
  .filter(([, o]) => o.notOffered)
  .map(([id]) => id)
  .sort();

describe.each(testDatabases())('contract checker against Tessera on $name', (db) => {
  let sinks: CheckerSinks;
  let srv: TestServer;
  let dispose: (() => Promise<void>) | undefined;
  let report: CheckReport;

  beforeAll(async () => {
    sinks = await startSinks({ smtpSinkPort: 0, homeserverPort: 0 });
    const created = await db.create();
    dispose = created.dispose;
    srv = await startTestServer({
      dbUrl: created.url,
      overrides: {
        mail: { from: 'Tessera Test <is@is.test>', smtp: { host: '127.0.0.1', port: sinks.smtp!.port, tls: 'none' }, initialBackoffMs: 50 },
        federation: { verifyTls: false, allow: ['127.0.0.1/32'] },
      },
    });
    report = await runChecker({ target: srv.url, strict: true, waitMs: 15_000 }, sinks);
  }, 120_000);
  afterAll(async () => {
    await settle([() => srv?.stop(), () => sinks?.stop()]);
    await dispose?.();
  });

  it('finds no answer that breaks the document', () => {
    expect(
      report.steps.filter((s) => s.verdict === 'fail'),
      formatReport(report),
    ).toEqual([]);
    expect(report.failed).toBe(0);
    expect(report.passed).toBeGreaterThan(80);
  });

  it('skips exactly the steps of the operations Tessera does not offer', () => {
    const skipped = report.steps.filter((s) => s.verdict === 'skipped');
    expect([...new Set(skipped.map((s) => s.operation))].sort(), formatReport(report)).toEqual(NOT_OFFERED);
    expect(new Set(skipped.map((s) => s.reason))).toEqual(new Set(['not offered: answered 404 M_UNRECOGNIZED']));
  });

  it('reaches every operation the document describes', () => {
    const reached = new Set(report.steps.map((s) => s.operation));
    expect(Object.keys(operations).filter((id) => !reached.has(id))).toEqual([]);
    // every offered operation has at least one passing good-input step
    const passedGood = new Set(report.steps.filter((s) => s.verdict === 'pass' && s.expected === '200').map((s) => s.operation));
    expect(Object.keys(operations).filter((id) => !NOT_OFFERED.includes(id) && !passedGood.has(id))).toEqual([]);
    expect(report.steps.some((s) => s.step.startsWith('onbind') && s.verdict === 'pass')).toBe(true);
  });
});

describe('contract checker against a Tessera that reaches neither its mail sink nor its homeserver', () => {
  let srv: TestServer;
  let dispose: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const created = await testDatabases()[0]!.create();
    dispose = created.dispose;
    // Mail goes to a port nothing listens on; no homeserver is on the federation allow list.
    srv = await startTestServer({
      dbUrl: created.url,
      overrides: { mail: { from: 'Tessera Test <is@is.test>', smtp: { host: '127.0.0.1', port: 9, tls: 'none' } } },
    });
  });
  afterAll(async () => {
    await settle([() => srv?.stop()]);
    await dispose?.();
  });

  it('skips, with the reason, the steps that need them, and passes none of them', async () => {
    const report = await runChecker({ target: srv.url, strict: true, smtpSinkPort: 0, waitMs: 1000 });
    expect(report.failed, formatReport(report)).toBe(0);
    const reasons = (op: string) => report.steps.filter((s) => s.operation === op).map((s) => `${s.verdict}: ${s.reason ?? ''}`);
    expect(reasons('registerAccount')).toContainEqual(expect.stringMatching(/^skipped: the target never called the homeserver/));
    expect(reasons('getAccount')).toContainEqual(expect.stringMatching(/^skipped: no access token/));
    expect(reasons('postValidateEmail')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^skipped: no verification email reached the SMTP sink/)]),
    );
    expect(reasons('sign')).toContainEqual(expect.stringMatching(/^skipped: no invitation email reached the SMTP sink/));
    for (const op of ['postValidateEmail', 'validate', 'bind', 'unbind', 'getValidateEmail', 'bindV2', 'blindlySignStuffV2'])
      expect(report.steps.filter((s) => s.operation === op && s.expected === '200' && s.verdict === 'pass')).toEqual([]);
  }, 60_000);
});

describe('contract checker against a broken server', () => {
  let server: Server;
  let url: string;
  /** What the broken server answers to store-invite. */
  let answer: { status: number; body: unknown };

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const storeInvite = req.url?.startsWith('/_matrix/identity/api/v1/store-invite');
        const { status, body } = storeInvite ? answer : { status: 404, body: { errcode: 'M_UNRECOGNIZED', error: 'no' } };
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fails a store-invite answer of the wrong shape', async () => {
    answer = { status: 200, body: { token: 5, public_keys: 'none' } };
    const report = await runChecker({ target: url, only: ['invite'], waitMs: 100 });
    const good = report.steps.find((s) => s.step === 'store an invitation')!;
    expect(good.verdict).toBe('fail');
    expect(good.reason).toMatch(/^body: /);
    expect(report.failed).toBeGreaterThan(0);
    expect(report.steps.every((s) => s.operation === 'invite')).toBe(true);
  });

  it('fails an errcode the document does not list', async () => {
    answer = { status: 400, body: { errcode: 'M_MADE_UP', error: 'no' } };
    const report = await runChecker({ target: url, only: ['invite'], waitMs: 100 });
    const missing = report.steps.find((s) => s.step === 'required fields missing')!;
    expect(missing).toMatchObject({ verdict: 'fail', got: '400 M_MADE_UP' });
    expect(missing.reason).toMatch(/errcode M_MADE_UP is not documented at 400/);
  });

  it('reports operations answering 404 M_UNRECOGNIZED as skipped, never passed', async () => {
    const report = await runChecker({ target: url, only: ['getVersions', 'lookup'], waitMs: 100 });
    // getVersions documents no 404: answering it is a failure; lookup (v1) documents it: not offered.
    expect(report.steps.find((s) => s.operation === 'getVersions')?.verdict).toBe('fail');
    expect(report.steps.filter((s) => s.operation === 'lookup').every((s) => s.verdict === 'skipped')).toBe(true);
  });
});

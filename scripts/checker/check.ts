// The contract checker: drives a running identity server through every operation openapi/identity.yaml describes,
// with inputs built from the document's examples (good) and derived from its schemas (bad), and holds every answer to
// the document: a documented status, a body its schema accepts, an errcode its error response lists.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { operations as validators } from '../../generated/identity.validators.js';
import { operations as homeserverValidators } from '../../generated/homeserver.validators.js';
import { ONBIND_PATH, USERINFO_PATH, startHomeserver, startSmtpSink, type CheckerHomeserver, type SmtpSink } from './sinks.js';

export type Verdict = 'pass' | 'fail' | 'skipped';

export interface Step {
  operation: string;
  step: string;
  expected: string;
  got: string;
  verdict: Verdict;
  /** Why it failed or was skipped. */
  reason?: string;
}

export interface CheckOptions {
  /** Base URL of the identity server, e.g. http://127.0.0.1:8090 */
  target: string;
  /** The SMTP sink's port (0: any free one); without it, steps that need an email are skipped. */
  smtpSinkPort?: number;
  /** The fake homeserver's port (0 or absent: any free one). */
  homeserverPort?: number;
  /** Only these operationIds are reported (the flows leading to them still run). */
  only?: string[];
  /**
   * Hold answers to Tessera's strict profile (no field the document does not name). Off by default: the document
   * lets later servers add fields, and a client must ignore them.
   */
  strict?: boolean;
  /** How long to wait for an email or a homeserver call before skipping what needs it. */
  waitMs?: number;
}

export interface CheckReport {
  target: string;
  steps: Step[];
  passed: number;
  failed: number;
  skipped: number;
}

/** The sinks a target must be configured against before the run: start them, configure the target, then check. */
export interface CheckerSinks {
  smtp?: SmtpSink;
  homeserver: CheckerHomeserver;
  stop(): Promise<void>;
}

export async function startSinks(opts: { smtpSinkPort?: number; homeserverPort?: number }): Promise<CheckerSinks> {
  const smtp = opts.smtpSinkPort === undefined ? undefined : await startSmtpSink(opts.smtpSinkPort);
  const homeserver = await startHomeserver(opts.homeserverPort ?? 0);
  return { smtp, homeserver, stop: async () => void (await Promise.all([smtp?.stop(), homeserver.stop()])) };
}

/**
 * A JSON value read from the document or from an answer. Read freely: the generated validators and each step's own
 * checks are what hold it to a shape, so a static type would only restate them.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
type Loose = any;
type Doc = Record<string, Loose>;
const doc = parse(readFileSync(new URL('../../openapi/identity.yaml', import.meta.url), 'utf8')) as Doc;

function resolve(node: Loose): Loose {
  let cur = node;
  while (cur?.$ref)
    cur = (cur.$ref as string)
      .slice(2)
      .split('/')
      .reduce((o: Loose, k: string) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  return cur;
}

interface DocOperation {
  id: string;
  method: string;
  path: string;
  op: Loose;
}

const DOC_OPERATIONS: DocOperation[] = Object.entries<Loose>(doc.paths).flatMap(([path, item]) =>
  Object.entries<Loose>(resolve(item))
    .filter(([, op]) => op?.operationId)
    .map(([method, op]) => ({ id: op.operationId as string, method: method.toUpperCase(), path, op })),
);
const byId = new Map(DOC_OPERATIONS.map((o) => [o.id, o]));

/** The errcodes an operation's error response lists at `status` (directly or in a branch of its allOf). */
export function errcodesAt(opId: string, status: number | string): string[] {
  const schema = resolve(resolve(byId.get(opId)?.op.responses?.[String(status)])?.content?.['application/json']?.schema);
  const branches = [schema, ...(schema?.allOf ?? [])].map(resolve);
  return branches.find((b) => b?.properties?.errcode?.enum)?.properties.errcode.enum ?? [];
}

const bodySchema = (opId: string) => resolve(resolve(byId.get(opId)?.op.requestBody)?.content?.['application/json']?.schema);
const bodyExample = (opId: string): Record<string, Loose> | undefined =>
  structuredClone(resolve(byId.get(opId)?.op.requestBody)?.content?.['application/json']?.example);
const parameters = (opId: string): Loose[] => {
  const o = byId.get(opId)!;
  return [...(resolve(doc.paths[o.path]).parameters ?? []), ...(o.op.parameters ?? [])].map(resolve);
};

/** A plausible value for a field called `name`: the first string some request example gives it. */
function exampleValue(name: string): string {
  for (const o of DOC_OPERATIONS) {
    const v = bodyExample(o.id)?.[name];
    if (typeof v === 'string') return v;
  }
  return 'x';
}

interface Answer {
  status: number;
  body: Loose;
}

interface Expectation {
  status: number;
  /** Any of these errcodes (none: the answer carries no errcode to compare). */
  errcodes?: string[];
}

const NO_TOKEN = 'no access token (v2 registration did not succeed)';
const show = (e: Expectation) => `${e.status}${e.errcodes?.length ? ` ${e.errcodes.join('|')}` : ''}`;
const unique = () => randomBytes(6).toString('hex');

export async function runChecker(opts: CheckOptions, given?: CheckerSinks): Promise<CheckReport> {
  const sinks = given ?? (await startSinks(opts));
  try {
    return await new Checker(opts, sinks).run();
  } finally {
    if (!given) await sinks.stop();
  }
}

class Checker {
  private readonly steps: Step[] = [];
  /** Operations that answered 404 M_UNRECOGNIZED as not offered: every further step of theirs is skipped. */
  private readonly notOffered = new Map<string, string>();
  private readonly base: string;
  private readonly waitMs: number;
  private token: string | undefined;
  private last: Step | undefined;
  private userId: string | undefined;

  constructor(
    private readonly opts: CheckOptions,
    private readonly sinks: CheckerSinks,
  ) {
    this.base = opts.target.replace(/\/+$/, '');
    this.waitMs = opts.waitMs ?? 15_000;
  }

  private record(step: Step): void {
    // Kept even when --only leaves it out, so that a later verdict on it never lands on another operation's step.
    this.last = step;
    if (this.opts.only && !this.opts.only.includes(step.operation)) return;
    this.steps.push(step);
  }

  private skip(operation: string, step: string, expected: string, reason: string): void {
    this.record({ operation, step, expected, got: '-', verdict: 'skipped', reason });
  }

  /** Sends one request to operation `opId`; the path's parameters are filled from `pathParams`. */
  private async send(
    opId: string,
    input: { body?: unknown; query?: Record<string, string>; pathParams?: Record<string, string>; token?: string | null } = {},
  ): Promise<Answer> {
    const o = byId.get(opId)!;
    const path = o.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(input.pathParams?.[name] ?? ''));
    const query = input.query ? `?${new URLSearchParams(input.query).toString()}` : '';
    const headers: Record<string, string> = {};
    const token = input.token === undefined ? this.token : input.token;
    if (token && validators[opId as keyof typeof validators]?.secured) headers.authorization = `Bearer ${token}`;
    const raw = input.body === undefined ? undefined : typeof input.body === 'string' ? input.body : JSON.stringify(input.body);
    if (raw !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}${query}`, { method: o.method, headers, body: raw, redirect: 'manual' });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // an HTML page or nothing: kept as text
    }
    return { status: res.status, body };
  }

  /** What is wrong with `answer` as an answer of `opId` according to the document, or undefined when nothing is. */
  private conformance(opId: string, answer: Answer): string | undefined {
    const v = validators[opId as keyof typeof validators];
    const status = String(answer.status);
    if (v.text.includes(status) && typeof answer.body === 'string') return undefined;
    const validate = v.responses[status];
    if (!validate) return `status ${status} is not documented`;
    if (validate(answer.body)) return undefined;
    const errors = (validate.errors ?? []).filter((e) => this.opts.strict || e.keyword !== 'unevaluatedProperties');
    if (errors.length === 0) return undefined;
    const errcode = typeof answer.body?.errcode === 'string' ? answer.body.errcode : undefined;
    if (errcode && errors.some((e) => e.instancePath === '/errcode' && e.keyword === 'enum'))
      return `errcode ${errcode} is not documented at ${status}`;
    return `body: ${errors
      .slice(0, 3)
      .map((e) => `${e.instancePath || '/'} ${e.message}`)
      .join('; ')}`;
  }

  /**
   * Sends, then records the step: it fails when the answer breaks the document or is not the one expected; an
   * operation answering a documented 404 M_UNRECOGNIZED where something else was expected is not offered: skipped.
   */
  private async step(
    opId: string,
    name: string,
    expect: Expectation,
    input: Parameters<Checker['send']>[1] = {},
  ): Promise<Answer | undefined> {
    const offered = this.notOffered.get(opId);
    if (offered) return void this.skip(opId, name, show(expect), offered);
    let answer: Answer;
    try {
      answer = await this.send(opId, input);
    } catch (err) {
      this.record({ operation: opId, step: name, expected: show(expect), got: 'no answer', verdict: 'fail', reason: String(err) });
      return undefined;
    }
    const errcode = typeof answer.body?.errcode === 'string' ? (answer.body.errcode as string) : undefined;
    const got = `${answer.status}${errcode ? ` ${errcode}` : ''}`;
    const wrong = this.conformance(opId, answer);
    const expectedUnrecognized = expect.status === 404 && expect.errcodes?.includes('M_UNRECOGNIZED');
    if (!wrong && answer.status === 404 && errcode === 'M_UNRECOGNIZED' && !expectedUnrecognized) {
      const reason = 'not offered: answered 404 M_UNRECOGNIZED';
      this.notOffered.set(opId, reason);
      this.skip(opId, name, show(expect), reason);
      return undefined;
    }
    const mismatch =
      answer.status !== expect.status
        ? `expected status ${expect.status}`
        : expect.errcodes?.length && !expect.errcodes.includes(errcode ?? '')
          ? `expected errcode ${expect.errcodes.join(' or ')}`
          : undefined;
    const reason = wrong ?? mismatch;
    this.record({ operation: opId, step: name, expected: show(expect), got, verdict: reason ? 'fail' : 'pass', reason });
    return reason ? undefined : answer;
  }

  async run(): Promise<CheckReport> {
    await this.account();
    for (const o of DOC_OPERATIONS) await this.badInputs(o.id);
    await this.status();
    await this.keysAndInvitations();
    await this.validationFlows();
    await this.logout();
    // A new operation in the document that no flow reaches must show, not pass silently.
    for (const o of DOC_OPERATIONS)
      if (!this.steps.some((s) => s.operation === o.id) && (!this.opts.only || this.opts.only.includes(o.id)))
        this.skip(o.id, 'any', '-', 'the checker has no step for this operation');
    const count = (v: Verdict) => this.steps.filter((s) => s.verdict === v).length;
    return { target: this.base, steps: this.steps, passed: count('pass'), failed: count('fail'), skipped: count('skipped') };
  }

  /** Generic bad inputs, derived from the schemas and the errcodes the document lists for them. */
  private async badInputs(opId: string): Promise<void> {
    const v = validators[opId as keyof typeof validators];
    const bad = errcodesAt(opId, 400);
    const schema = bodySchema(opId);
    const needsToken = v.secured && !this.token;
    if (schema && bad.includes('M_NOT_JSON')) {
      if (needsToken) this.skip(opId, 'body not JSON', '400 M_NOT_JSON', NO_TOKEN);
      else await this.step(opId, 'body not JSON', { status: 400, errcodes: ['M_NOT_JSON'] }, { body: '{"not json' });
    }
    if (schema?.required?.length && bad.includes('M_MISSING_PARAMS')) {
      if (needsToken) this.skip(opId, 'required fields missing', '400 M_MISSING_PARAMS', NO_TOKEN);
      else await this.step(opId, 'required fields missing', { status: 400, errcodes: ['M_MISSING_PARAMS'] }, { body: {} });
    }
    const typeErrcodes = ['M_INVALID_PARAM', 'M_BAD_JSON'].filter((c) => bad.includes(c));
    if (schema?.required?.length && typeErrcodes.length > 0) {
      const body = Object.fromEntries(
        (schema.required as string[]).map((f) => [f, typeof bodyExample(opId)?.[f] === 'number' ? 'x' : 12345]),
      );
      if (needsToken) this.skip(opId, 'fields of the wrong type', `400 ${typeErrcodes.join('|')}`, NO_TOKEN);
      else await this.step(opId, 'fields of the wrong type', { status: 400, errcodes: typeErrcodes }, { body });
    }
    const requiredQuery = parameters(opId).filter((p) => p.in === 'query' && p.required);
    if (requiredQuery.length > 0 && bad.includes('M_MISSING_PARAMS')) {
      if (needsToken) this.skip(opId, 'required query missing', '400 M_MISSING_PARAMS', NO_TOKEN);
      else await this.step(opId, 'required query missing', { status: 400, errcodes: ['M_MISSING_PARAMS'] });
    }
    if (v.secured && errcodesAt(opId, 401).includes('M_UNAUTHORIZED')) {
      // Valid-looking input, so that only the credentials are wrong (the document checks fields before the token).
      const query = Object.fromEntries(requiredQuery.map((p) => [p.name as string, exampleValue(p.name)]));
      const input = { body: bodyExample(opId), query: requiredQuery.length ? query : undefined };
      await this.step(opId, 'no access token', { status: 401, errcodes: ['M_UNAUTHORIZED'] }, { ...input, token: null });
      await this.step(opId, 'unknown access token', { status: 401, errcodes: ['M_UNAUTHORIZED'] }, { ...input, token: unique() });
    }
  }

  /** v2 registration through the fake homeserver's OpenID userinfo, then the terms. */
  private async account(): Promise<void> {
    const hs = this.sinks.homeserver;
    const openId = { ...bodyExample('registerAccount'), access_token: `openid-${unique()}`, matrix_server_name: hs.serverName };
    const userId = `@checker-${unique()}:${hs.serverName}`;
    hs.vouch(openId.access_token as string, userId);
    const before = hs.requests.length;
    const registered = await this.step('registerAccount', 'register with an OpenID token', { status: 200 }, { body: openId });
    if (!registered) {
      // A target that never asked the homeserver could not support the step; one that asked and still failed did fail.
      const asked = hs.requests.slice(before).some((r) => r.path === USERINFO_PATH);
      const last = this.last;
      // Only an answer the document allows (a refusal) can mean "not configured"; a malformed one stays a failure.
      if (!asked && last?.operation === 'registerAccount' && last.verdict === 'fail' && last.reason?.startsWith('expected ')) {
        last.verdict = 'skipped';
        last.reason = `the target never called the homeserver ${hs.serverName} (configure it to allow and trust it): ${last.reason}`;
      }
      await this.step('getTerms', 'terms', { status: 200 });
      this.skip('getAccount', "the token's user", '200', NO_TOKEN);
      this.skip('agreeToTerms', 'accept every policy', '200', NO_TOKEN);
      return;
    }
    this.token = registered.body.token;
    this.userId = userId;
    const account = await this.step('getAccount', "the token's user", { status: 200 });
    if (account && account.body.user_id !== userId) this.failLast('user_id is not the user the homeserver vouched for');
    await this.step('getTerms', 'terms', { status: 200 }).then(async (terms) => {
      const urls = Object.values<Loose>(terms?.body?.policies ?? {}).flatMap((p) =>
        Object.entries<Loose>(p)
          .filter(([k]) => k !== 'version')
          .map(([, t]) => t.url as string),
      );
      await this.step(
        'agreeToTerms',
        'accept every policy',
        { status: 200 },
        { body: { ...bodyExample('agreeToTerms'), user_accepts: urls } },
      );
    });
  }

  private failLast(reason: string): void {
    if (this.last?.verdict === 'pass') Object.assign(this.last, { verdict: 'fail', reason });
  }

  private async status(): Promise<void> {
    await this.step('getVersions', 'versions', { status: 200 });
    await this.step('pingV2', 'v2 status', { status: 200 });
    await this.step('v1Status', 'v1 status', { status: 200 });
    await this.secured('getHashDetails', 'pepper and algorithms', { status: 200 });
  }

  /** A good-input step of a secured operation: skipped without an access token. */
  private async secured(opId: string, name: string, expect: Expectation, input: Parameters<Checker['send']>[1] = {}) {
    if (!this.token) return void this.skip(opId, name, show(expect), NO_TOKEN);
    return this.step(opId, name, expect, input);
  }

  private address(): string {
    const example = bodyExample('storeInviteV2')?.address ?? 'alice@example.org';
    const [local, domain] = String(example).split('@');
    return `${local}.${unique()}@${domain}`;
  }

  private async keysAndInvitations(): Promise<void> {
    const keyId = 'ed25519:0';
    await this.step('getPubKeyV2', 'long-term key by id', { status: 200 }, { pathParams: { keyId } });
    await this.step('get', 'long-term key by id', { status: 200 }, { pathParams: { keyId } });
    await this.step(
      'getPubKeyV2',
      'unknown key id',
      { status: 404, errcodes: errcodesAt('getPubKeyV2', 404) },
      { pathParams: { keyId: 'ed25519:nosuch' } },
    );

    const v2 = await this.secured(
      'storeInviteV2',
      'store an invitation',
      { status: 200 },
      {
        body: { ...bodyExample('storeInviteV2'), address: this.address(), sender: this.userId },
      },
    );
    const v1Address = this.address();
    const v1 = await this.step(
      'invite',
      'store an invitation',
      { status: 200 },
      { body: { ...bodyExample('invite'), address: v1Address } },
    );
    const stored = v2 ?? v1;
    const keys = (stored?.body?.public_keys ?? []) as { public_key: string }[];
    for (const [opId, i, what] of [
      ['isPubKeyValidV2', 0, 'long-term'],
      ['valid', 0, 'long-term'],
      ['isEphemeralPubKeyValidV2', 1, 'ephemeral'],
      ['ephemeralValid', 1, 'ephemeral'],
    ] as const) {
      const key = keys[i]?.public_key;
      if (!key) this.skip(opId, `the invitation's ${what} key is valid`, '200', 'no invitation was stored');
      else {
        const answer = await this.step(opId, `the invitation's ${what} key is valid`, { status: 200 }, { query: { public_key: key } });
        if (answer && answer.body.valid !== true) this.failLast('valid is not true');
      }
    }

    // The invitee signs with the ephemeral private key its invitation email carries.
    const sign = { status: 200 };
    if (!v1)
      return ['blindlySignStuffV2', 'sign'].forEach((op) =>
        this.skip(op, 'sign with the emailed key', '200', 'no v1 invitation was stored'),
      );
    const privateKey = await this.invitationKey(v1Address);
    if (!privateKey.key)
      return ['blindlySignStuffV2', 'sign'].forEach((op) => this.skip(op, 'sign with the emailed key', '200', privateKey.reason));
    const body = {
      ...bodyExample('sign'),
      token: v1.body.token,
      private_key: privateKey.key,
      mxid: this.userId ?? bodyExample('sign')?.mxid,
    };
    await this.secured('blindlySignStuffV2', 'sign with the emailed key', sign, { body });
    await this.step('sign', 'sign with the emailed key', sign, { body });
  }

  /** The ephemeral private key in the invitation email to `address` (from its signurl). */
  private async invitationKey(address: string): Promise<{ key?: string; reason: string }> {
    if (!this.sinks.smtp) return { reason: 'no SMTP sink (--smtp-sink)' };
    const mail = await this.sinks.smtp.waitFor(address, /private_key/, this.waitMs);
    if (!mail) return { reason: `no invitation email reached the SMTP sink within ${this.waitMs} ms` };
    let text = mail.text;
    // The signurl may sit inside another link, encoded once or twice.
    for (let i = 0; i < 3 && !/private_key=[^&\s"<>]+/.test(text); i++) text = safeDecode(text);
    text = safeDecode(text);
    const key = /private_key=([^&\s"'<>]+)/.exec(text)?.[1];
    return key ? { key, reason: '' } : { reason: 'the invitation email carries no private_key' };
  }

  /** requestToken, then the token from the email. */
  private async session(
    opId: 'emailRequestTokenV2' | 'createEmailSession',
    purpose: string,
  ): Promise<{ sid: string; client_secret: string; address: string; token?: string; reason: string } | undefined> {
    const address = this.address();
    const client_secret = `${bodyExample(opId)?.client_secret ?? 'secret'}${unique()}`;
    const body = { ...bodyExample(opId), client_secret, email: address, send_attempt: 1 };
    const answer =
      opId === 'emailRequestTokenV2'
        ? await this.secured(opId, `request a token (${purpose})`, { status: 200 }, { body })
        : await this.step(opId, `request a token (${purpose})`, { status: 200 }, { body });
    if (!answer) return undefined;
    const session = { sid: String(answer.body.sid), client_secret, address };
    if (!this.sinks.smtp) return { ...session, reason: 'no SMTP sink (--smtp-sink)' };
    const mail = await this.sinks.smtp.waitFor(address, /submitToken/, this.waitMs);
    if (!mail) return { ...session, reason: `no verification email reached the SMTP sink within ${this.waitMs} ms` };
    const link = (mail.text.match(/https?:\/\/[^\s<>"']+/g) ?? [])
      .map((u) => safeUrl(u.replace(/&amp;/g, '&')))
      .find((u) => u?.pathname.endsWith('/submitToken'));
    const token = link?.searchParams.get('token') ?? undefined;
    return { ...session, token, reason: token ? '' : 'the verification email carries no submitToken link with a token' };
  }

  private async validationFlows(): Promise<void> {
    const hs = this.sinks.homeserver;
    const ok = { status: 200 };
    // v2: submit by POST, the address validated, an invitation waiting, bound (onbind), looked up, unbound.
    const a = await this.session('emailRequestTokenV2', 'to bind');
    if (a) {
      const q = { sid: a.sid, client_secret: a.client_secret };
      await this.secured(
        'getValidated3pidV2',
        'before the token is submitted',
        { status: 400, errcodes: ['M_SESSION_NOT_VALIDATED'] },
        { query: q },
      );
      await this.secured(
        'emailSubmitTokenPostV2',
        'wrong token',
        { status: 400, errcodes: ['M_TOKEN_INCORRECT'] },
        { body: { ...q, token: 'wrong' } },
      );
    }
    if (!a?.token) {
      const reason = a?.reason || 'no validation session';
      for (const op of ['emailSubmitTokenPostV2', 'getValidated3pidV2', 'bindV2', 'lookupUsersV2', 'lookup', 'bulkLookup', 'unbindV2'])
        this.skip(op, 'validated session', '200', reason);
    } else {
      const q = { sid: a.sid, client_secret: a.client_secret };
      await this.secured('emailSubmitTokenPostV2', 'submit the emailed token', ok, { body: { ...q, token: a.token } });
      const validated = await this.secured('getValidated3pidV2', 'the validated address', ok, { query: q });
      if (validated && validated.body.address?.toLowerCase() !== a.address) this.failLast('address is not the one validated');
      await this.secured('storeInviteV2', 'invitation to an address about to be bound', ok, {
        body: { ...bodyExample('storeInviteV2'), address: a.address, sender: this.userId },
      });
      const before = hs.requests.length;
      const bound = await this.secured('bindV2', 'bind the validated address', ok, {
        body: { ...bodyExample('bindV2'), ...q, mxid: this.userId },
      });
      if (bound) await this.onbind(before);
      const details = await this.secured('getHashDetails', 'pepper for a look-up', ok);
      const pepper = String(details?.body?.lookup_pepper ?? '');
      const none = (details?.body?.algorithms ?? []).includes('none');
      if (details && none) {
        const found = await this.secured('lookupUsersV2', 'look up the bound address', ok, {
          body: { addresses: [`${a.address} email`], algorithm: 'none', pepper },
        });
        if (found && found.body.mappings?.[`${a.address} email`] !== this.userId)
          this.failLast('the bound address does not map to its user');
      } else if (details) this.skip('lookupUsersV2', 'look up the bound address', '200', "hash_details offers no 'none' algorithm");
      await this.step('lookup', 'look up the bound address', ok, { query: { medium: 'email', address: a.address } });
      await this.step('bulkLookup', 'look up the bound address', ok, { body: { threepids: [['email', a.address]] } });
      await this.secured('unbindV2', 'unbind with the session', ok, {
        body: { ...q, mxid: this.userId, threepid: { medium: 'email', address: a.address } },
      });
    }
    // v2: submit by following the emailed link.
    const b = await this.session('emailRequestTokenV2', 'for the link');
    if (b?.token)
      await this.step('emailSubmitTokenGetV2', 'follow the emailed link', ok, {
        query: { sid: b.sid, client_secret: b.client_secret, token: b.token },
      });
    else this.skip('emailSubmitTokenGetV2', 'follow the emailed link', '200', b?.reason || 'no validation session');
    // v1: the same without an access token.
    const c = await this.session('createEmailSession', 'to bind');
    if (c?.token) {
      const q = { sid: c.sid, client_secret: c.client_secret };
      await this.step('postValidateEmail', 'submit the emailed token', ok, { body: { ...q, token: c.token } });
      await this.step('validate', 'the validated address', ok, { query: q });
      const mxid = this.userId ?? bodyExample('bind')?.mxid;
      await this.step('bind', 'bind the validated address', ok, { body: { ...q, mxid } });
      await this.step('unbind', 'unbind with the session', ok, { body: { ...q, mxid, threepid: { medium: 'email', address: c.address } } });
    } else
      for (const op of ['postValidateEmail', 'validate', 'bind', 'unbind'])
        this.skip(op, 'validated session', '200', c?.reason || 'no validation session');
    const d = await this.session('createEmailSession', 'for the link');
    if (d?.token)
      await this.step('getValidateEmail', 'follow the emailed link', ok, {
        query: { sid: d.sid, client_secret: d.client_secret, token: d.token },
      });
    else this.skip('getValidateEmail', 'follow the emailed link', '200', d?.reason || 'no validation session');
    // Phone numbers: offered or not, the document says what to answer.
    for (const opId of ['msisdnRequestTokenV2', 'createPhoneSession'])
      await this.step(opId, 'request a token', ok, { body: { ...bodyExample(opId), client_secret: `s${unique()}` } });
    for (const opId of ['msisdnSubmitTokenPostV2', 'postValidatePhone'])
      await this.step(opId, 'submit a token', ok, { body: bodyExample(opId) });
    for (const opId of ['msisdnSubmitTokenGetV2', 'getValidatePhone'])
      await this.step(opId, 'follow a link', ok, { query: { sid: '1234', client_secret: 'monkeys_are_GREAT', token: 'atoken' } });
  }

  /** The onbind call a bind with a pending invitation makes, held to openapi/homeserver.yaml. */
  private async onbind(since: number): Promise<void> {
    const name = 'onbind delivers the pending invitation';
    const call = await this.sinks.homeserver.waitFor(ONBIND_PATH, since, this.waitMs);
    if (!call) return this.skip('bindV2', name, 'POST onbind', `the homeserver was not called within ${this.waitMs} ms`);
    const validate = homeserverValidators.onBindThreePid.body!;
    const valid = validate(call.body);
    const invites = (call.body as Loose)?.invites;
    const reason = !valid
      ? `onbind body: ${(validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`
      : !Array.isArray(invites) || invites.length === 0
        ? 'onbind carries no invitation'
        : undefined;
    this.record({
      operation: 'bindV2',
      step: name,
      expected: 'POST onbind',
      got: 'POST onbind',
      verdict: reason ? 'fail' : 'pass',
      reason,
    });
  }

  private async logout(): Promise<void> {
    await this.secured('logout', 'log out', { status: 200 });
    if (this.token) await this.step('getAccount', 'after logout', { status: 401, errcodes: ['M_UNAUTHORIZED'] });
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%([0-9a-f]{2})/gi, (m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

function safeUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

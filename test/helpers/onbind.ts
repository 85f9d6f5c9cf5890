// Onbind calls as the HTTPS fake homeserver (test/helpers/fakeHomeserver.ts) receives them from the REAL
// federation client: each body is checked against openapi/homeserver.yaml.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { FakeHomeserver, RecordedRequest, RouteAnswer } from './fakeHomeserver.js';

export const ONBIND = '/_matrix/federation/v1/3pid/onbind';

const document = parse(readFileSync(new URL('../../openapi/homeserver.yaml', import.meta.url), 'utf8')) as object;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(document, 'homeserver');
const validateOnbind = ajv.getSchema('homeserver#/components/schemas/OnbindRequest')!;

/** Errors of an onbind body against openapi/homeserver.yaml; empty when it conforms. */
export function onbindBodyErrors(body: unknown): string[] {
  return validateOnbind(body) ? [] : (validateOnbind.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Answers the `index`-th onbind call (0-based, counted over the homeserver's life). */
export type OnbindResponder = (req: OnbindCall, index: number) => RouteAnswer;

/** A received onbind request; its body is the parsed JSON (any: tests read it freely). */
export type OnbindCall = RecordedRequest & { body: any };

export interface OnbindEndpoint {
  /** The onbind requests received so far (`body` is the parsed JSON). */
  readonly calls: OnbindCall[];
  /** Schema violations of received onbind bodies, and any other path the homeserver was asked for. */
  violations(): string[];
  /** Replace to change how the next calls are answered (default: 200 {}). */
  respond: OnbindResponder;
  waitForCalls(n: number, timeoutMs?: number): Promise<void>;
  /** Forget every request seen so far and restart the responder's count (between tests). */
  reset(): void;
}

export function routeOnbind(hs: FakeHomeserver, respond: OnbindResponder = () => ({ status: 200, body: {} })): OnbindEndpoint {
  let seen = 0;
  const endpoint: OnbindEndpoint = {
    get calls() {
      return hs.requestsTo(ONBIND) as OnbindCall[];
    },
    violations() {
      const out: string[] = [];
      for (const r of hs.requests) {
        if (r.path !== ONBIND) out.push(`unexpected call ${r.method} ${r.path}`);
        else if (r.method !== 'POST') out.push(`onbind with ${r.method}`);
        else out.push(...onbindBodyErrors(r.body));
      }
      return out;
    },
    respond,
    async waitForCalls(n, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (endpoint.calls.length < n) {
        if (Date.now() > deadline) throw new Error(`homeserver got ${endpoint.calls.length} onbind calls, expected ${n}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    reset() {
      hs.requests.length = 0;
      seen = 0;
    },
  };
  hs.route('POST', ONBIND, (req) => endpoint.respond(req as OnbindCall, seen++));
  return endpoint;
}

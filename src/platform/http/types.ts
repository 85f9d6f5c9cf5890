// The one seam onto generated/ types: operation ids, typed requests and replies for handlers.
import type { components, operations } from '../../../generated/identity.types.js';
import type { Account } from './security.js';

export type OperationId = keyof operations;

/** A named schema of the document, e.g. `Schema<'PublishResponse'>`. */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];

type JsonOf<T> = T extends { content: { 'application/json': infer B } } ? B : never;
type Params<Op extends OperationId> = operations[Op]['parameters'];

export type BodyOf<Op extends OperationId> = operations[Op] extends { requestBody: infer R } ? JsonOf<NonNullable<R>> : never;
export type QueryOf<Op extends OperationId> =
  Params<Op> extends { query?: infer Q } ? ([Q] extends [never] ? Record<string, never> : NonNullable<Q>) : Record<string, never>;
export type PathOf<Op extends OperationId> = Params<Op> extends { path: infer P } ? P : Record<string, never>;
export type OkBody<Op extends OperationId> = operations[Op]['responses'] extends { 200: infer R } ? JsonOf<R> : never;

export interface Req<Op extends OperationId> {
  operationId: OperationId;
  /** Which API the request came in on; links and key_validity_urls must point back at the same one. */
  version: 'v1' | 'v2';
  body: BodyOf<Op>;
  query: QueryOf<Op>;
  params: PathOf<Op>;
  headers: Record<string, string | string[] | undefined>;
  /** The client's address (Koa's ctx.ip; honours X-Forwarded-For only when the operator trusts a proxy). */
  ip: string;
  /** Set on operations that require an access token, once it has been checked. */
  account?: Account;
  /** Set on operations that accept a homeserver's signature (X-Matrix), once it has been verified: the signing server. */
  origin?: string;
}

export interface JsonReply<Op extends OperationId> {
  status: 200;
  body: OkBody<Op>;
}

/** A non-JSON answer (an HTML page, a redirect), for operations whose 200 is not JSON; 400/404 for a page that reports a failure. */
export interface RawReply {
  status: 200 | 302 | 400 | 404;
  /** The page, or '' for a redirect. */
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

export type Reply<Op extends OperationId> = [OkBody<Op>] extends [never] ? RawReply : JsonReply<Op>;

export type Handler<Op extends OperationId, D> = (req: Req<Op>, deps: D) => Promise<Reply<Op>>;

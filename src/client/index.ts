// The typed client the package exports as `tessera/client`: openapi-fetch over the types generated from
// openapi/identity.yaml, plus the little a caller should not have to write each time: the base URL, the v2
// bearer token, the choice between the v1 and v2 paths, and Matrix errors thrown as one error class whose
// `errcode` is typed by the operation that failed.
//
// It speaks to any identity server that follows the document, not only Tessera, and imports nothing from the
// server's code: only the generated types and openapi-fetch.
import createClient from 'openapi-fetch';
import type { Client } from 'openapi-fetch';
import type { components, operations, paths } from '../../generated/identity.types.js';

type Schemas = components['schemas'];

/**
 * The client's operations, named as the Matrix specification names them (version-neutral), with the document's
 * operationIds behind each: `v2` and `v1` where both exist, one of them where only one does.
 */
export const clientOperations = {
  ping: { v2: 'pingV2', v1: 'v1Status' },
  getVersions: { any: 'getVersions' },
  storeInvite: { v2: 'storeInviteV2', v1: 'invite' },
  getPubKey: { v2: 'getPubKeyV2', v1: 'get' },
  isPubKeyValid: { v2: 'isPubKeyValidV2', v1: 'valid' },
  isEphemeralPubKeyValid: { v2: 'isEphemeralPubKeyValidV2', v1: 'ephemeralValid' },
  registerAccount: { v2: 'registerAccount' },
  getAccount: { v2: 'getAccount' },
  logout: { v2: 'logout' },
  getTerms: { v2: 'getTerms' },
  agreeToTerms: { v2: 'agreeToTerms' },
  emailRequestToken: { v2: 'emailRequestTokenV2', v1: 'createEmailSession' },
  emailSubmitToken: { v2: 'emailSubmitTokenPostV2', v1: 'postValidateEmail' },
  getValidated3pid: { v2: 'getValidated3pidV2', v1: 'validate' },
  bind: { v2: 'bindV2', v1: 'bind' },
  unbind: { v2: 'unbindV2', v1: 'unbind' },
  getHashDetails: { v2: 'getHashDetails' },
  lookup: { v2: 'lookupUsersV2' },
  lookupV1: { v1: 'lookup' },
  bulkLookupV1: { v1: 'bulkLookup' },
  signEd25519: { v2: 'blindlySignStuffV2', v1: 'sign' },
} as const satisfies Record<string, Partial<Record<'v1' | 'v2' | 'any', keyof operations>>>;

export type ClientOperation = keyof typeof clientOperations;

/** The document's operationIds behind a client operation. */
export type OperationIdsOf<N extends ClientOperation> = (typeof clientOperations)[N][keyof (typeof clientOperations)[N]] & keyof operations;

type ErrcodeOfResponse<R> = R extends { content: { 'application/json': { errcode: infer E } } } ? E : never;

/** Every errcode the document lists for an operationId's error responses. */
export type ErrcodeOfOperationId<O extends keyof operations> = {
  [S in keyof operations[O]['responses']]: S extends 200 ? never : ErrcodeOfResponse<operations[O]['responses'][S]>;
}[keyof operations[O]['responses']];

/** Every errcode a client operation can fail with, on either version. */
export type ErrcodeOf<N extends ClientOperation> = ErrcodeOfOperationId<OperationIdsOf<N>>;

/**
 * A Matrix error answered by the identity server: the HTTP status, the `errcode` and `error` of the body.
 * Narrow it with `err.is('storeInvite')` to get the errcodes that operation can answer as a type.
 * An answer that is not a Matrix error (a proxy's HTML 502, say) is one too: `errcode` is then `M_UNKNOWN`.
 */
export class MatrixError extends Error {
  override readonly name = 'MatrixError';
  /** Seconds the server asked to wait before retrying (`Retry-After`), when it said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    /** The client operation that failed. */
    readonly operation: ClientOperation,
    /** The operationId of the path that was called. */
    readonly operationId: keyof operations,
    readonly status: number,
    readonly errcode: ErrcodeOf<ClientOperation>,
    readonly error: string,
    /** The whole error body as answered (Matrix errors may carry more fields, e.g. `retry_after_ms`). */
    readonly body: unknown,
    retryAfter: string | null,
  ) {
    super(`${operation}: ${status} ${errcode}: ${error}`);
    const seconds = retryAfter === null ? NaN : Number(retryAfter);
    this.retryAfterSeconds = Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
  }

  /** Whether this error came from `operation`; narrows `errcode` to the errcodes that operation answers. */
  is<O extends ClientOperation>(operation: O): this is MatrixErrorOf<O> {
    return this.operation === operation;
  }
}

/** A MatrixError from one operation: `errcode` is the union of that operation's documented errcodes. */
export type MatrixErrorOf<O extends ClientOperation> = MatrixError & {
  readonly operation: O;
  readonly operationId: OperationIdsOf<O>;
  readonly errcode: ErrcodeOf<O>;
};

export interface IdentityClientOptions {
  /** The identity server's base URL, e.g. `https://identity.example.org` (no `/_matrix`). */
  baseUrl: string;
  /** Which paths operations that exist in both versions use. Default `v2`. */
  version?: 'v1' | 'v2';
  /** The v2 access token (from `registerAccount`), sent as a bearer token on v2 paths only. */
  accessToken?: string;
  /** Replaces the global fetch (a proxy agent, a test double). */
  fetch?: (request: Request) => Promise<Response>;
  /** Headers sent with every request (a User-Agent, say). */
  headers?: Record<string, string>;
}

type Ok<O extends keyof operations> = operations[O]['responses'] extends { 200: { content: { 'application/json': infer B } } } ? B : never;

interface RawResult {
  data?: unknown;
  error?: unknown;
  response: Response;
}

export type Invitation = Schemas['InvitationRequest'];
export type StoredInvitation = Schemas['InvitationResponse'];

/** A typed client for the Matrix identity service API as openapi/identity.yaml describes it. */
export class IdentityClient {
  /** The underlying openapi-fetch client over the generated `paths`, for anything this class does not wrap. */
  readonly raw: Client<paths>;
  readonly version: 'v1' | 'v2';
  private token: string | undefined;

  constructor(options: IdentityClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`baseUrl is not an absolute URL: ${options.baseUrl}`);
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new TypeError('baseUrl must be an http(s) URL');
    this.version = options.version ?? 'v2';
    this.token = options.accessToken;
    this.raw = createClient<paths>({
      baseUrl: base.href.replace(/\/+$/, ''),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    });
    this.raw.use({
      onRequest: ({ request }) => {
        if (this.token !== undefined && new URL(request.url).pathname.startsWith('/_matrix/identity/v2/')) {
          request.headers.set('Authorization', `Bearer ${this.token}`);
        }
        return request;
      },
    });
  }

  /** The access token sent on v2 paths; `registerAccount` sets it, `logout` clears it. */
  get accessToken(): string | undefined {
    return this.token;
  }

  set accessToken(token: string | undefined) {
    this.token = token;
  }

  private get v1(): boolean {
    return this.version === 'v1';
  }

  private async unwrap<N extends ClientOperation, O extends OperationIdsOf<N>>(operation: N, operationId: O, pending: Promise<RawResult>) {
    const { data, error, response } = await pending;
    if (response.ok) return data as Ok<O>;
    const body = error as { errcode?: unknown; error?: unknown } | string | undefined;
    const isMatrix = typeof body === 'object' && body !== null && typeof body.errcode === 'string';
    throw new MatrixError(
      operation,
      operationId,
      response.status,
      (isMatrix ? body.errcode : 'M_UNKNOWN') as ErrcodeOf<N>,
      isMatrix && typeof body.error === 'string' ? body.error : `HTTP ${response.status}`,
      body,
      response.headers.get('Retry-After'),
    );
  }

  /** The specification versions the server supports. */
  getVersions() {
    return this.unwrap('getVersions', 'getVersions', this.raw.GET('/_matrix/identity/versions'));
  }

  /** Checks the server answers on the chosen version's base path. */
  ping() {
    return this.v1
      ? this.unwrap('ping', 'v1Status', this.raw.GET('/_matrix/identity/api/v1'))
      : this.unwrap('ping', 'pingV2', this.raw.GET('/_matrix/identity/v2'));
  }

  /** Stores a pending invitation (what a homeserver does when a user invites an address into a room). */
  storeInvite(invitation: Invitation, options: { brand?: string } = {}): Promise<StoredInvitation> {
    const init = { body: invitation, params: { query: options } };
    return this.v1
      ? this.unwrap('storeInvite', 'invite', this.raw.POST('/_matrix/identity/api/v1/store-invite', init))
      : this.unwrap('storeInvite', 'storeInviteV2', this.raw.POST('/_matrix/identity/v2/store-invite', init));
  }

  /** A long-term public key by its key id (`ed25519:0`). */
  getPubKey(keyId: string) {
    const init = { params: { path: { keyId } } };
    return this.v1
      ? this.unwrap('getPubKey', 'get', this.raw.GET('/_matrix/identity/api/v1/pubkey/{keyId}', init))
      : this.unwrap('getPubKey', 'getPubKeyV2', this.raw.GET('/_matrix/identity/v2/pubkey/{keyId}', init));
  }

  /** Whether a long-term public key (unpadded base64) is valid. */
  async isPubKeyValid(publicKey: string): Promise<boolean> {
    const init = { params: { query: { public_key: publicKey } } };
    const answer = this.v1
      ? await this.unwrap('isPubKeyValid', 'valid', this.raw.GET('/_matrix/identity/api/v1/pubkey/isvalid', init))
      : await this.unwrap('isPubKeyValid', 'isPubKeyValidV2', this.raw.GET('/_matrix/identity/v2/pubkey/isvalid', init));
    return answer.valid;
  }

  /** Whether an invitation's ephemeral public key (unpadded base64) is still valid. */
  async isEphemeralPubKeyValid(publicKey: string): Promise<boolean> {
    const init = { params: { query: { public_key: publicKey } } };
    const answer = this.v1
      ? await this.unwrap(
          'isEphemeralPubKeyValid',
          'ephemeralValid',
          this.raw.GET('/_matrix/identity/api/v1/pubkey/ephemeral/isvalid', init),
        )
      : await this.unwrap(
          'isEphemeralPubKeyValid',
          'isEphemeralPubKeyValidV2',
          this.raw.GET('/_matrix/identity/v2/pubkey/ephemeral/isvalid', init),
        );
    return answer.valid;
  }

  /**
   * Registers with an OpenID token from the user's homeserver (v2 only) and keeps the access token it answers
   * for later v2 calls; it is also returned, for the caller to store.
   */
  async registerAccount(openId: Schemas['OpenIdRequest']): Promise<string> {
    const { token } = await this.unwrap(
      'registerAccount',
      'registerAccount',
      this.raw.POST('/_matrix/identity/v2/account/register', { body: openId }),
    );
    this.token = token;
    return token;
  }

  /** The Matrix user id the access token belongs to (v2 only). */
  async getAccount(): Promise<string> {
    const { user_id } = await this.unwrap('getAccount', 'getAccount', this.raw.GET('/_matrix/identity/v2/account'));
    return user_id;
  }

  /** Invalidates the access token (v2 only) and forgets it. */
  async logout(): Promise<void> {
    await this.unwrap('logout', 'logout', this.raw.POST('/_matrix/identity/v2/account/logout'));
    this.token = undefined;
  }

  /** The terms of service a v2 user must accept. */
  getTerms() {
    return this.unwrap('getTerms', 'getTerms', this.raw.GET('/_matrix/identity/v2/terms'));
  }

  /** Accepts the terms documents at these URLs (v2 only). */
  async agreeToTerms(userAccepts: string[]): Promise<void> {
    await this.unwrap('agreeToTerms', 'agreeToTerms', this.raw.POST('/_matrix/identity/v2/terms', { body: { user_accepts: userAccepts } }));
  }

  /** Starts (or continues) an email validation session; the server emails a token. Answers the session id. */
  async emailRequestToken(request: Schemas['EmailRequestToken']): Promise<string> {
    const init = { body: request };
    const { sid } = this.v1
      ? await this.unwrap(
          'emailRequestToken',
          'createEmailSession',
          this.raw.POST('/_matrix/identity/api/v1/validate/email/requestToken', init),
        )
      : await this.unwrap(
          'emailRequestToken',
          'emailRequestTokenV2',
          this.raw.POST('/_matrix/identity/v2/validate/email/requestToken', init),
        );
    return sid;
  }

  /** Submits the emailed token, validating the session's address. */
  async emailSubmitToken(submission: Schemas['SubmitToken']): Promise<boolean> {
    const init = { body: submission };
    const { success } = this.v1
      ? await this.unwrap(
          'emailSubmitToken',
          'postValidateEmail',
          this.raw.POST('/_matrix/identity/api/v1/validate/email/submitToken', init),
        )
      : await this.unwrap(
          'emailSubmitToken',
          'emailSubmitTokenPostV2',
          this.raw.POST('/_matrix/identity/v2/validate/email/submitToken', init),
        );
    return success;
  }

  /** The address a validated session proved. */
  getValidated3pid(sid: string, clientSecret: string) {
    const init = { params: { query: { sid, client_secret: clientSecret } } };
    return this.v1
      ? this.unwrap('getValidated3pid', 'validate', this.raw.GET('/_matrix/identity/api/v1/3pid/getValidated3pid', init))
      : this.unwrap('getValidated3pid', 'getValidated3pidV2', this.raw.GET('/_matrix/identity/v2/3pid/getValidated3pid', init));
  }

  /** Binds a validated session's address to a Matrix user id; answers the signed association. */
  bind(request: Schemas['PublishRequest']) {
    const init = { body: request };
    return this.v1
      ? this.unwrap('bind', 'bind', this.raw.POST('/_matrix/identity/api/v1/3pid/bind', init))
      : this.unwrap('bind', 'bindV2', this.raw.POST('/_matrix/identity/v2/3pid/bind', init));
  }

  /** Removes a binding (with the session's secret, or signed by the user's homeserver). */
  async unbind(request: Schemas['UnbindRequest']): Promise<void> {
    const init = { body: request };
    await (this.v1
      ? this.unwrap('unbind', 'unbind', this.raw.POST('/_matrix/identity/api/v1/3pid/unbind', init))
      : this.unwrap('unbind', 'unbindV2', this.raw.POST('/_matrix/identity/v2/3pid/unbind', init)));
  }

  /** The pepper and algorithms for hashed lookups (v2 only). */
  getHashDetails() {
    return this.unwrap('getHashDetails', 'getHashDetails', this.raw.GET('/_matrix/identity/v2/hash_details'));
  }

  /** Hashed lookup (v2 only): the Matrix ids bound to the given hashed (or, with `none`, plain) addresses. */
  async lookup(request: Schemas['LookupRequest']): Promise<Record<string, string>> {
    const { mappings } = await this.unwrap('lookup', 'lookupUsersV2', this.raw.POST('/_matrix/identity/v2/lookup', { body: request }));
    return mappings;
  }

  /** The v1 single lookup: the signed association of one address, or `{}` when none. */
  lookupV1(medium: string, address: string) {
    return this.unwrap('lookupV1', 'lookup', this.raw.GET('/_matrix/identity/api/v1/lookup', { params: { query: { medium, address } } }));
  }

  /** The v1 bulk lookup: `[medium, address, mxid]` for each bound address. */
  async bulkLookupV1(threepids: [string, string][]): Promise<[string, string, string][]> {
    const { threepids: found } = await this.unwrap(
      'bulkLookupV1',
      'bulkLookup',
      this.raw.POST('/_matrix/identity/api/v1/bulk_lookup', { body: { threepids } }),
    );
    return found as [string, string, string][];
  }

  /** Signs `{mxid, sender, token}` for a stored invitation with its ephemeral private key. */
  signEd25519(request: Schemas['SigningRequest']) {
    const init = { body: request };
    return this.v1
      ? this.unwrap('signEd25519', 'sign', this.raw.POST('/_matrix/identity/api/v1/sign-ed25519', init))
      : this.unwrap('signEd25519', 'blindlySignStuffV2', this.raw.POST('/_matrix/identity/v2/sign-ed25519', init));
  }
}

/** A typed identity service client; see IdentityClient. */
export function createIdentityClient(options: IdentityClientOptions): IdentityClient {
  return new IdentityClient(options);
}

// Bearer authentication for the v2 API, and the terms gate. Accounts plug in through Authenticator.

export interface Account {
  userId: string;
}

export interface AuthResult {
  account: Account;
  /** False while the account has not accepted every current policy. */
  termsAccepted: boolean;
}

/** What the HTTP layer needs from accounts: map an access token to its account, or to nothing. */
export interface Authenticator {
  authenticate(token: string): Promise<AuthResult | undefined>;
}

/** True when an Authorization header value uses the X-Matrix scheme (whatever its parameters). */
export function isXMatrix(value: unknown): value is string {
  return typeof value === 'string' && /^X-Matrix(?:\s|$)/i.test(value);
}

/** A request as an X-Matrix signature covers it. */
export interface SignedRequest {
  method: string;
  /** Path and query exactly as received. */
  uri: string;
  /** The parsed JSON body; undefined for requests without one. */
  content: unknown;
}

/** Checks a homeserver's request signature (`Authorization: X-Matrix`); federation/xMatrix.ts implements it. */
export interface RequestSignatureVerifier {
  verify(header: string, req: SignedRequest): Promise<{ origin: string } | { error: string }>;
}

/** The access token from `Authorization: Bearer`, else the deprecated `access_token` query parameter. */
export function accessTokenOf(headers: Record<string, string | string[] | undefined>, query: Record<string, unknown>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const q = query.access_token;
  return typeof q === 'string' && q.length > 0 ? q : undefined;
}

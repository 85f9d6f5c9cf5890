// What the rest of Tessera needs from the federation client (implemented in src/federation/).

export interface FederationResponse {
  status: number;
  /** Parsed JSON body, or undefined when the body was empty or not JSON. */
  body: unknown;
}

/**
 * Thrown when no HTTP answer could be had: discovery failed, the resolved address is denied,
 * TLS failed, the connection was refused or timed out. `permanent` is true only when retrying
 * cannot help (e.g. the server name is malformed or resolves only to denied addresses).
 */
export class FederationError extends Error {
  constructor(
    message: string,
    readonly permanent = false,
    /**
     * This instance's outbound policy forbids every address of the homeserver. Another instance sharing the
     * database may be allowed to reach it, so an outbox leaves such a row for it rather than failing it.
     */
    readonly deniedByPolicy = false,
  ) {
    super(message);
    this.name = 'FederationError';
  }
}

/** Calls a homeserver by its server name (resolved with the Matrix server-discovery rules). */
export interface FederationClient {
  getJson(serverName: string, path: string, query?: Record<string, string>): Promise<FederationResponse>;
  postJson(serverName: string, path: string, body: unknown): Promise<FederationResponse>;
}

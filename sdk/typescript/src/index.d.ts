// Types of the Valet Key client (src/index.js). Error classes, one per
// stable code, are in errors.d.ts (generated from the protocol's schema).

export * from './errors.js';

/** A refusal or failure. Branch on the class, `code` or `codeName`, never on `message`. */
export declare class ValetKeyError extends Error {
  constructor(message: string, code?: number, data?: Record<string, unknown>);
  /** The stable numeric code (0 for ConnectionError and ProtocolError). */
  readonly code: number;
  /** The stable name (`consent_required`, …). */
  readonly codeName: string;
  /** The code's extra fields (`consent_id`, `missing`, …). */
  readonly data: Record<string, any>;
  static readonly code?: number;
  static readonly codeName?: string;
}
/** The daemon could not be reached, or the connection ended. */
export declare class ConnectionError extends ValetKeyError {}
/** The daemon sent something this client cannot read. */
export declare class ProtocolError extends ValetKeyError {}

export declare const errorsByCode: ReadonlyMap<number, typeof ValetKeyError>;
export declare const errorsByName: ReadonlyMap<string, typeof ValetKeyError>;
/** The exception for a JSON-RPC error object. */
export declare function fromRpc(error: { code?: number; message?: string; data?: Record<string, unknown> }): ValetKeyError;
/** $VALETKEY_SOCKET, else $XDG_RUNTIME_DIR/valetkey/agent.sock, else
 * /run/user/$UID/valetkey/agent.sock when that directory is yours, else
 * /tmp/valetkey-$UID/agent.sock. */
export declare function socketPath(env?: Record<string, string | undefined>, runUser?: string): string;

/** A token from token.get; `accessToken` is not enumerable (never logged by accident). */
export declare class Token {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Unix seconds. */
  readonly expiresAt: number;
  readonly scopes: string[];
  readonly provider: string;
  readonly resource: string | null;
  /** `Bearer …`. */
  readonly authorization: string;
}

export interface ClientOptions {
  /** The agent's stable name (1–64 of `A-Z a-z 0-9 . _ -`). */
  agent: string;
  purpose?: string;
  version?: string;
  /** A delegation token from the parent's `delegate`: this client is a sub-agent. */
  delegation?: string | null;
  socketPath?: string | null;
}

export interface TokenOptions {
  resource?: string;
  /** Wait for the user's decision (default true); false: ConsentRequiredError at once. */
  wait?: boolean;
  /** How long access is wanted, in seconds (shown on the consent card). */
  duration?: number;
  context?: { action?: 'read' | 'write' | 'delete' | 'admin'; tool?: string; resource?: { type?: string; owner?: string; sensitivity?: 'public' | 'internal' | 'confidential' } };
}

export interface Delegation {
  token: string;
  jti: string;
  kid: string;
  expires_at: number;
  depth: number;
  max_depth: number;
  provider: string;
  scopes: string[];
  chain: string[];
}

export declare class Client {
  constructor(options: ClientOptions);
  readonly agent: string;
  readonly socketPath: string;
  /** The hello result once connected (what the daemon attested). */
  readonly hello: Record<string, any> | null;
  connect(): Promise<Record<string, any>>;
  close(): Promise<void>;
  call(method: string, params?: Record<string, unknown>): Promise<any>;
  token(provider: string, scopes: string[] | string, options?: TokenOptions): Promise<Token>;
  consentWait(consentId: string): Promise<Token>;
  delegate(subAgent: string, provider: string, scopes: string[], ttlSecs: number, options?: { maxDepth?: number; wait?: boolean }): Promise<Delegation>;
  providers(): Promise<Array<{ name: string; issuer: string; logged_in: boolean; login_required: boolean; allowed_scopes: string[]; narrows_on_refresh: boolean; login_scopes?: string[]; mcp_url?: string }>>;
  whoami(): Promise<Record<string, any>>;
  jwks(): Promise<{ keys: Array<Record<string, unknown>> }>;
  placeholder(provider: string, scopes: string[]): Promise<{ placeholder: string; provider: string; scopes: string[]; hosts: string[] }>;
  openProxy(): Promise<{ proxy_url: string; ca_bundle: string; hosts: string[] }>;
}

/** A fetch that carries a token from valetkeyd: fetched once, again near
 * expiry (`margin` seconds), and once more on a 401. */
export declare function authorizedFetch(
  client: Client,
  provider: string,
  scopes: string[],
  options?: TokenOptions & { margin?: number; now?: () => number; fetch?: typeof fetch },
): (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

// Valet Key for Node agents: ask valetkeyd for short-lived, narrowed tokens
// over its local socket (the protocol is ipc-schema/PROTOCOL.md). ESM, no
// runtime dependencies, Node 20 or later; types in index.d.ts.
//
//   import { Client } from 'valetkey';
//   const vk = new Client({ agent: 'triage-bot', purpose: 'label new issues' });
//   const tok = await vk.token('github', ['repo:read']);
//   await fetch(url, { headers: { authorization: tok.authorization } });

import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { ConnectionError, ProtocolError, ValetKeyError } from './base.js';
import { ERROR_CLASSES, MAX_FRAME_BYTES, PROTOCOL_VERSION } from './errors.js';

export * from './errors.js';
export { ConnectionError, ProtocolError, ValetKeyError };

/** Error classes by code and by stable name. */
export const errorsByCode = new Map(ERROR_CLASSES.map((k) => [k.code, k]));
export const errorsByName = new Map(ERROR_CLASSES.map((k) => [k.codeName, k]));

/** The exception for a JSON-RPC error object (an unknown code gives a
 * plain ValetKeyError, so a newer daemon never breaks a client). */
export function fromRpc(error) {
  const data = error && typeof error.data === 'object' && error.data !== null ? error.data : {};
  const klass = errorsByCode.get(error?.code) ?? errorsByName.get(data.name) ?? ValetKeyError;
  return new klass(String(error?.message ?? ''), error?.code ?? 0, data);
}

/** The agent socket, by the daemon's own rule (PROTOCOL.md, "Where the
 * socket is"): $VALETKEY_SOCKET (set in a box by `valetkey run`), else
 * $XDG_RUNTIME_DIR/valetkey/agent.sock, else
 * /run/user/$UID/valetkey/agent.sock when /run/user/$UID is a directory of
 * yours (what a reduced environment, such as an MCP client's stdio
 * transport, still finds), else /tmp/valetkey-$UID/agent.sock. */
export function socketPath(env = process.env, runUser = '/run/user') {
  if (env.VALETKEY_SOCKET) return env.VALETKEY_SOCKET;
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'valetkey', 'agent.sock');
  const uid = process.getuid();
  const logind = path.join(runUser, String(uid));
  try {
    const st = fs.lstatSync(logind);
    if (st.isDirectory() && st.uid === uid) return path.join(logind, 'valetkey', 'agent.sock');
  } catch {
    // not there: fall back
  }
  return path.join('/tmp', `valetkey-${uid}`, 'agent.sock');
}

/** A token as token.get hands it out. `accessToken` is not enumerable, so
 * console.log and JSON.stringify of the object never show it. */
export class Token {
  constructor(r) {
    Object.defineProperty(this, 'accessToken', { value: r.access_token, enumerable: false });
    this.tokenType = r.token_type ?? 'Bearer';
    this.expiresAt = Number(r.expires_at ?? 0);
    this.scopes = [...(r.scopes ?? [])];
    this.provider = r.provider ?? '';
    this.resource = r.resource ?? null;
  }

  /** The Authorization header value: `Bearer …`. */
  get authorization() {
    return `Bearer ${this.accessToken}`;
  }
}

/** An agent's connection; it connects and says hello on first use. Calls
 * are queued: one at a time on the connection, in order. */
export class Client {
  constructor({ agent, purpose = '', version = '', delegation = null, socketPath: sock = null } = {}) {
    if (!agent) throw new TypeError('new Client({ agent: NAME }) needs the agent name');
    Object.assign(this, { agent, purpose, version, delegation });
    this.socketPath = sock ?? socketPath();
    this.hello = null;
    this.next = 1;
    this.queue = Promise.resolve();
    this.sock = null;
  }

  /** Connects and says hello (idempotent); the hello result. */
  connect() {
    return this.#serial(() => this.#ensure());
  }

  /** Closes the connection (a later call connects again). */
  close() {
    this.#drop();
    return Promise.resolve();
  }

  #serial(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  async #ensure() {
    if (this.hello) return this.hello;
    await this.#open();
    const agent = { name: this.agent, version: this.version, purpose: this.purpose };
    const params = { protocol: PROTOCOL_VERSION, agent };
    if (this.delegation) params.delegation = this.delegation;
    try {
      this.hello = await this.#roundtrip('hello', params);
    } catch (e) {
      this.#drop();
      throw e;
    }
    return this.hello;
  }

  #open() {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path: this.socketPath });
      sock.once('connect', () => {
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.waiters = [];
        sock.on('data', (d) => this.#data(d));
        sock.on('close', () => this.#closed());
        sock.on('error', () => {});
        resolve();
      });
      sock.once('error', (e) => reject(new ConnectionError(
        `cannot connect to valetkeyd at ${this.socketPath} (${e.code ?? e.message}); is it running? (\`valetkey status\`)`,
      )));
    });
  }

  #data(d) {
    this.buf = Buffer.concat([this.buf, d]);
    let nl;
    while ((nl = this.buf.indexOf(10)) >= 0) {
      const line = this.buf.subarray(0, nl + 1);
      this.buf = this.buf.subarray(nl + 1);
      this.waiters.shift()?.resolve(line);
    }
    if (this.buf.length > MAX_FRAME_BYTES) {
      this.waiters.shift()?.reject(new ProtocolError(`a frame of more than ${MAX_FRAME_BYTES} bytes from valetkeyd`));
      this.#drop();
    }
  }

  #closed() {
    for (const w of this.waiters ?? []) w.reject(new ConnectionError('valetkeyd closed the connection'));
    this.waiters = [];
    this.sock = null;
    this.hello = null;
  }

  #drop() {
    this.sock?.destroy();
    this.#closed();
  }

  #line() {
    return new Promise((resolve, reject) => {
      if (!this.sock) return reject(new ConnectionError('valetkeyd closed the connection'));
      this.waiters.push({ resolve, reject });
    });
  }

  async #roundtrip(method, params) {
    const id = this.next++;
    const msg = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    const frame = Buffer.from(JSON.stringify(msg) + '\n');
    if (frame.length > MAX_FRAME_BYTES) {
      throw new ValetKeyError(`a ${method} request of ${frame.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame cap`);
    }
    this.sock.write(frame);
    for (;;) {
      const line = await this.#line();
      let reply;
      try {
        reply = JSON.parse(line.toString('utf8'));
      } catch (e) {
        this.#drop();
        throw new ProtocolError(`valetkeyd sent something that is not JSON: ${e.message}`);
      }
      if (reply.error && (reply.id === id || reply.id === null)) {
        // id null: the daemon ends the connection (a cut-off after revocation).
        if (reply.id === null) this.#drop();
        throw fromRpc(reply.error);
      }
      if (reply.id === id) return reply.result;
    }
  }

  /** Any method by name. */
  call(method, params) {
    return this.#serial(async () => {
      await this.#ensure();
      return this.#roundtrip(method, params);
    });
  }

  /** token.get. With `wait: false` and no grant it throws
   * ConsentRequiredError at once (`e.data.consent_id`, for consentWait). */
  async token(provider, scopes, { resource, wait = true, duration, context } = {}) {
    const p = { provider, scopes: typeof scopes === 'string' ? scopes.split(/\s+/) : [...scopes], wait };
    if (resource !== undefined) p.resource = resource;
    if (duration !== undefined) p.duration_secs = duration;
    if (context !== undefined) p.context = context;
    return new Token(await this.call('token.get', p));
  }

  /** consent.wait: the token once the person decided. */
  async consentWait(consentId) {
    return new Token(await this.call('consent.wait', { consent_id: consentId }));
  }

  /** delegation.create: a token for a sub-agent (it passes it as `delegation`). */
  delegate(subAgent, provider, scopes, ttl, { maxDepth, wait = true } = {}) {
    const p = { sub_agent: subAgent, provider, scopes: [...scopes], ttl_secs: ttl, wait };
    if (maxDepth !== undefined) p.max_depth = maxDepth;
    return this.call('delegation.create', p);
  }

  async providers() {
    return (await this.call('providers.list')).providers;
  }

  whoami() {
    return this.call('whoami');
  }

  jwks() {
    return this.call('jwks');
  }

  /** token.placeholder (in a `--net proxy` box, or after openProxy). */
  placeholder(provider, scopes) {
    return this.call('token.placeholder', { provider, scopes: [...scopes] });
  }

  /** proxy.open: a loopback egress proxy for this connection. */
  openProxy() {
    return this.call('proxy.open', {});
  }
}

/** A fetch that puts a token from valetkeyd on every request: fetched once,
 * again `margin` seconds before it expires, and once more on a 401.
 *
 *   const gh = authorizedFetch(vk, 'github', ['repo:read']);
 *   const res = await gh('https://api.github.com/user');
 */
export function authorizedFetch(client, provider, scopes, { margin = 60, now = () => Date.now() / 1000, fetch: f = globalThis.fetch, ...tokenArgs } = {}) {
  let cached = null;
  const current = async (fresh) => {
    if (fresh || !cached || cached.expiresAt - now() < margin) {
      cached = await client.token(provider, scopes, tokenArgs);
    }
    return cached;
  };
  const send = async (input, init, tok) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', tok.authorization);
    return f(input, { ...init, headers });
  };
  return async (input, init) => {
    const res = await send(input, init, await current(false));
    if (res.status !== 401) return res;
    return send(input, init, await current(true));
  };
}

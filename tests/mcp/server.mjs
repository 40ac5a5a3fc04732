// A real remote MCP server with OAuth, for Valet Key's end-to-end tests and
// demo. Everything protocol-facing is the official MCP TypeScript SDK:
// its authorization server router (metadata, /authorize with loopback
// redirects on any port, /token with PKCE, /register for RFC 7591, /revoke),
// its bearer-token middleware (401 with a resource_metadata challenge, the
// audience check) and its streamable HTTP transport and McpServer. What this
// file adds is what the SDK leaves to each server: a token store with
// refresh-token rotation, RFC 8707 resource checks, optional client ID
// metadata documents, a per-tool scope (step-up), and a /_test view of what
// it issued and saw, so the tests observe the server instead of trusting
// the client.
//
// Two servers share one authorization server: /mcp (scope mcp:tools, tool
// admin_reset needs mcp:admin too) and /other/mcp, each its own resource.
//
// Usage: node server.mjs --port P --as-port Q --cert leaf.pem --key leaf.key
//          [--docs DIR] [--access-ttl SECS] [--cimd] [--no-dcr]
// --docs serves DIR at /clients/ (client ID metadata documents); start it
// with NODE_EXTRA_CA_CERTS set to the test CA so it can fetch them.
// Prints one JSON line {"ready":true,...} on stdout when listening.

import https from 'node:https';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import express from 'express';
import * as z from 'zod/v4';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { mcpAuthRouter, mcpAuthMetadataRouter, createOAuthMetadata, getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidGrantError, InvalidTargetError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const flag = (name) => process.argv.includes(name);
const port = Number(arg('--port'));
const asPort = Number(arg('--as-port'));
const tls = { cert: fs.readFileSync(arg('--cert')), key: fs.readFileSync(arg('--key')) };
const docs = arg('--docs');
const accessTtl = Number(arg('--access-ttl', '3600'));
const cimd = flag('--cimd');
const dcr = !flag('--no-dcr');

const issuer = new URL(`https://localhost:${asPort}/`);
const servers = {
  main: new URL(`https://localhost:${port}/mcp`),
  other: new URL(`https://localhost:${port}/other/mcp`),
};
const rand = () => randomBytes(24).toString('base64url');

// What the tests read back (GET /_test/state on the authorization server).
const state = {
  registrations: [], // {client_id, via: 'dynamic'|'metadata_document', application_type}
  authorizations: [], // {client_id, resource, scopes}
  tokenRequests: [], // {grant_type, resource, client_id}
  issued: [], // access tokens, in order
  refreshes: 0,
  seen: [], // {server, method, tool, token} for each MCP request that passed auth
};

// ---- the authorization server's storage -----------------------------------

const clients = new Map();
const codes = new Map();
const accessTokens = new Map(); // token -> {clientId, scopes, resource, expiresAt}
const refreshTokens = new Map(); // token -> {clientId, scopes, resource}

async function fetchMetadataDocument(clientId) {
  // A client ID metadata document: the client id is an HTTPS URL whose
  // document names the client (draft-ietf-oauth-client-id-metadata-document).
  const res = await fetch(clientId);
  if (!res.ok) return undefined;
  const doc = await res.json();
  if (doc.client_id !== clientId) return undefined;
  state.registrations.push({ client_id: clientId, via: 'metadata_document', application_type: doc.application_type });
  return { ...doc, token_endpoint_auth_method: 'none' };
}

const clientsStore = {
  async getClient(id) {
    if (clients.has(id)) return clients.get(id);
    if (cimd && id.startsWith('https://')) {
      const c = await fetchMetadataDocument(id).catch(() => undefined);
      if (c) clients.set(id, c);
      return c;
    }
    return undefined;
  },
  ...(dcr && {
    async registerClient(meta) {
      state.registrations.push({ client_id: meta.client_id, via: 'dynamic', application_type: dcrBody.application_type, scope: dcrBody.scope });
      clients.set(meta.client_id, meta);
      return meta;
    },
  }),
};

function checkResource(resource) {
  // RFC 8707, strictly: every request names one of our resources.
  const known = Object.values(servers).map((u) => u.href);
  if (!resource || !known.includes(new URL(resource).href)) {
    throw new InvalidTargetError(`resource must be one of ${known.join(', ')}`);
  }
  return new URL(resource).href;
}

function issue(clientId, scopes, resource) {
  const access = rand();
  const refresh = rand();
  accessTokens.set(access, { clientId, scopes, resource, expiresAt: Date.now() / 1000 + accessTtl });
  refreshTokens.set(refresh, { clientId, scopes, resource });
  state.issued.push(access);
  return {
    access_token: access,
    token_type: 'bearer',
    expires_in: accessTtl,
    refresh_token: refresh,
    scope: scopes.join(' '),
  };
}

const provider = {
  clientsStore,
  async authorize(client, params, res) {
    const resource = checkResource(params.resource?.href);
    state.authorizations.push({ client_id: client.client_id, resource, scopes: params.scopes || [] });
    const code = rand();
    codes.set(code, { client, params, resource });
    const to = new URL(params.redirectUri);
    to.searchParams.set('code', code);
    if (params.state !== undefined) to.searchParams.set('state', params.state);
    res.redirect(to.href);
  },
  async challengeForAuthorizationCode(_client, code) {
    const c = codes.get(code);
    if (!c) throw new InvalidGrantError('unknown authorization code');
    return c.params.codeChallenge;
  },
  async exchangeAuthorizationCode(client, code, _verifier, _redirect, resource) {
    const c = codes.get(code);
    if (!c || c.client.client_id !== client.client_id) throw new InvalidGrantError('unknown authorization code');
    codes.delete(code);
    const r = checkResource(resource?.href);
    state.tokenRequests.push({ grant_type: 'authorization_code', resource: r, client_id: client.client_id });
    if (r !== c.resource) throw new InvalidTargetError('resource differs from the authorization request');
    return issue(client.client_id, c.params.scopes || [], r);
  },
  async exchangeRefreshToken(client, refreshToken, scopes, resource) {
    const rt = refreshTokens.get(refreshToken);
    if (!rt || rt.clientId !== client.client_id) throw new InvalidGrantError('refresh token is invalid, used or revoked');
    const r = checkResource(resource?.href);
    state.tokenRequests.push({ grant_type: 'refresh_token', resource: r, client_id: client.client_id });
    if (r !== rt.resource) throw new InvalidTargetError('a refresh token serves the resource it was issued for');
    // Rotation: the old refresh token dies on use.
    refreshTokens.delete(refreshToken);
    state.refreshes += 1;
    const narrowed = scopes && scopes.length ? scopes.filter((s) => rt.scopes.includes(s)) : rt.scopes;
    const out = issue(client.client_id, narrowed, r);
    // The new refresh token carries the login's scopes, not the narrowed ones.
    refreshTokens.get(out.refresh_token).scopes = rt.scopes;
    return out;
  },
  async verifyAccessToken(token) {
    const t = accessTokens.get(token);
    if (!t) throw new InvalidTokenError('unknown or revoked token');
    return { token, clientId: t.clientId, scopes: t.scopes, expiresAt: Math.floor(t.expiresAt), resource: new URL(t.resource) };
  },
  async revokeToken(_client, req) {
    refreshTokens.delete(req.token);
    accessTokens.delete(req.token);
  },
};

// ---- the authorization server ---------------------------------------------

const noLimit = { rateLimit: false };
const as = express();
if (cimd) {
  // Advertise client ID metadata documents (the SDK's metadata has no flag for it).
  const meta = createOAuthMetadata({ provider, issuerUrl: issuer, scopesSupported: ['mcp:tools', 'mcp:admin', 'offline_access'] });
  as.get('/.well-known/oauth-authorization-server', (_req, res) => res.json({ ...meta, client_id_metadata_document_supported: true }));
}
// The SDK's registration handler keeps only the metadata fields it knows;
// note what the client sent (application_type) before it runs.
let dcrBody = {};
as.post('/register', express.json(), (req, _res, next) => {
  dcrBody = req.body || {};
  next();
});
as.use(mcpAuthRouter({
  provider,
  issuerUrl: issuer,
  scopesSupported: ['mcp:tools', 'mcp:admin', 'offline_access'],
  authorizationOptions: noLimit,
  tokenOptions: noLimit,
  clientRegistrationOptions: noLimit,
  revocationOptions: noLimit,
}));
as.get('/_test/state', (_req, res) => res.json(state));
as.post('/_test/expire', (_req, res) => {
  for (const t of accessTokens.values()) t.expiresAt = 0;
  res.json({ expired: accessTokens.size });
});
as.post('/_test/revoke-all', (_req, res) => {
  accessTokens.clear();
  refreshTokens.clear();
  res.json({ ok: true });
});

// ---- the MCP servers ------------------------------------------------------

function mcpServer(which) {
  const server = new McpServer(
    { name: `valetkey-test-${which}`, version: '1.0.0' },
    { instructions: `The ${which} test server: call whoami to see what the token says.` },
  );
  server.registerTool('echo', { description: 'Says the text back', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('whoami', { description: 'What the token says (never the token)', inputSchema: {} },
    async (_args, extra) => ({
      content: [{ type: 'text', text: JSON.stringify({
        server: which,
        client_id: extra.authInfo?.clientId,
        scopes: extra.authInfo?.scopes,
        resource: String(extra.authInfo?.resource ?? ''),
      }) }],
    }));
  server.registerTool('admin_reset', { description: 'Needs mcp:admin (step-up)', inputSchema: {} },
    async () => ({ content: [{ type: 'text', text: 'reset done' }] }));
  return server;
}

// The per-tool scope: a tools/call of admin_reset without mcp:admin gets
// the MCP spec's step-up challenge, 403 insufficient_scope with the scopes.
function stepUp(url) {
  return (req, res, next) => {
    const body = req.body;
    const call = body && body.method === 'tools/call' ? body.params?.name : undefined;
    if (call === 'admin_reset' && !req.auth.scopes.includes('mcp:admin')) {
      res.set('WWW-Authenticate', `Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", resource_metadata="${getOAuthProtectedResourceMetadataUrl(url)}", error_description="admin_reset needs mcp:admin"`);
      res.status(403).json({ error: 'insufficient_scope', error_description: 'admin_reset needs mcp:admin' });
      return;
    }
    next();
  };
}

function observe(which) {
  return (req, _res, next) => {
    const body = req.body || {};
    state.seen.push({
      server: which, method: body.method, tool: body.params?.name, token: req.auth.token,
      client: body.params?.clientInfo?.name, protocol: body.params?.protocolVersion,
    });
    next();
  };
}

const app = express();
app.use(express.json());
if (docs) app.use('/clients', express.static(docs));
for (const [which, url] of Object.entries(servers)) {
  app.use(mcpAuthMetadataRouter({
    oauthMetadata: createOAuthMetadata({ provider, issuerUrl: issuer, scopesSupported: ['mcp:tools', 'mcp:admin'] }),
    resourceServerUrl: url,
    scopesSupported: ['mcp:tools', 'mcp:admin'],
    resourceName: `Valet Key test MCP server (${which})`,
  }));
  // requiredScopes puts scope="mcp:tools" in the 401 challenge: what a
  // client asks for at login (the spec's first choice).
  const auth = requireBearerAuth({
    verifier: provider,
    requiredScopes: ['mcp:tools'],
    resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(url),
    expectedResource: url,
  });
  app.post(url.pathname, auth, stepUp(url), observe(which), async (req, res) => {
    const server = mcpServer(which);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const no = (_req, res) => res.status(405).set('Allow', 'POST').json({ error: 'stateless server: POST only' });
  app.get(url.pathname, auth, no);
  app.delete(url.pathname, auth, no);
}

let up = 0;
const ready = () => {
  up += 1;
  if (up === 2) {
    console.log(JSON.stringify({ ready: true, mcp: servers.main.href, other: servers.other.href, issuer: issuer.href }));
  }
};
https.createServer(tls, as).listen(asPort, '127.0.0.1', ready);
https.createServer(tls, app).listen(port, '127.0.0.1', ready);

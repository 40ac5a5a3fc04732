// A real OpenID Connect provider (npm `oidc-provider`, OpenID Certified) over
// TLS, for Valet Key's end-to-end tests and the headless demo.
//
// Why it exists: the broker's hard parts (refresh-token rotation, reuse
// detection, down-scoping on refresh, RFC 8707 resources, RFC 7009
// revocation, introspection) only mean something against a real
// authorization server. This file configures one the way a real deployment
// would, and replaces only the human at the login page: the interaction
// handler logs in as `login_hint` and grants what was asked.
//
// Environment:
//   OIDC_PORT          TLS port for the provider (required)
//   OIDC_CONTROL_PORT  plain-HTTP port on 127.0.0.1 for test control (optional)
//   OIDC_TLS_CERT      PEM leaf certificate (with IP SAN 127.0.0.1)
//   OIDC_TLS_KEY       PEM private key of the leaf
//   OIDC_AT_TTL        access-token lifetime in seconds (default 600)
//
// Control endpoints (test-only, 127.0.0.1, never part of the provider):
//   GET  /stats          {"refreshes", "refresh_errors", "revocations", "grants_revoked", "refresh_us"}
//   POST /outage/start   close the TLS listener and drop open connections
//   POST /outage/end     listen again on the same port (state is kept)
//   POST /slow?ms=N      delay every token-endpoint response by N ms (0 = off)
//   POST /fail?status=N  answer the token endpoint with HTTP N (0 = off)
//
// On start it prints one JSON line: {"ready":true,"issuer":...}.

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 0);
const controlPort = Number(process.env.OIDC_CONTROL_PORT || 0);
const issuer = `https://127.0.0.1:${port}`;
const accessTokenTtl = Number(process.env.OIDC_AT_TTL || 600);

// One resource server, shaped like a GitHub-style API.
export const API = 'https://api.valetkey.test';
const API_SCOPES = 'repo:read repo:write issues:read issues:write';

// refresh_us: server-side time of each successful refresh (request in to
// response finished, µs; the last 1000), so a benchmark can subtract the
// provider's own share from a cold token.get.
const stats = { refreshes: 0, refresh_errors: 0, revocations: 0, grants_revoked: 0, last_refresh_error: null, refresh_us: [] };
const faults = { slowMs: 0, failStatus: 0 };

const provider = new Provider(issuer, {
  clients: [
    {
      // What `valetkey login` uses: a public native client with PKCE.
      client_id: 'valetkey-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      // A confidential client, for the config path where the secret lives in the keychain.
      client_id: 'valetkey-confidential',
      client_secret: 'confidential-test-secret-not-a-real-one',
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      // The resource server: tests introspect the tokens agents received with it.
      client_id: 'resource-server',
      client_secret: 'resource-server-test-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  rotateRefreshToken: true,
  ttl: {
    AccessToken: () => accessTokenTtl,
    RefreshToken: () => 14 * 24 * 3600,
    DeviceCode: () => 600,
    Grant: () => 14 * 24 * 3600,
    Session: () => 24 * 3600,
    Interaction: () => 3600,
    AuthorizationCode: () => 60,
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true, allowedPolicy: async () => true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf || API,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== API) throw new Provider.errors.InvalidTarget();
        return { scope: API_SCOPES, accessTokenFormat: 'opaque', accessTokenTTL: accessTokenTtl };
      },
    },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  issueRefreshToken: async (_ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type === 'refresh_token') {
    stats.refreshes += 1;
    ctx.res.refreshGrant = true;
  }
});
provider.on('grant.error', (ctx, err) => {
  if (ctx.oidc.params?.grant_type === 'refresh_token') {
    stats.refresh_errors += 1;
    stats.last_refresh_error = `${err.error}: ${err.error_description}`;
  }
  console.error(`grant.error ${ctx.oidc.params?.grant_type}: ${err.error} ${err.error_description || ''}`);
});
// oidc-provider has no revocation.success event: count successful /token/revocation
// responses, and grants revoked for any reason separately.
provider.on('grant.revoked', () => { stats.grants_revoked += 1; });

// The stand-in for a person at the login and consent pages.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: String(params.login_hint || 'alice') } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
async function handle(req, res) {
  try {
    if (req.url.startsWith('/interaction/')) return await interaction(req, res);
    if (req.url.startsWith('/token') && (faults.slowMs || faults.failStatus)) {
      if (faults.slowMs) await new Promise((r) => setTimeout(r, faults.slowMs));
      if (faults.failStatus) {
        res.writeHead(faults.failStatus, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: 'server_error', error_description: 'injected fault' }));
      }
    }
    if (req.method === 'POST' && req.url === '/token') {
      const t0 = process.hrtime.bigint();
      res.on('finish', () => {
        if (res.statusCode === 200 && res.refreshGrant) {
          stats.refresh_us.push(Number((process.hrtime.bigint() - t0) / 1000n));
          if (stats.refresh_us.length > 1000) stats.refresh_us.shift();
        }
      });
    }
    if (req.url.startsWith('/token/revocation')) {
      res.on('finish', () => { if (res.statusCode === 200) stats.revocations += 1; });
    }
    return callback(req, res);
  } catch (err) {
    console.error('interaction failed:', err);
    res.writeHead(500);
    return res.end('interaction failed');
  }
}

const tls = { cert: fs.readFileSync(process.env.OIDC_TLS_CERT), key: fs.readFileSync(process.env.OIDC_TLS_KEY) };
let server = https.createServer(tls, handle);
const listen = () => new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));

if (controlPort) {
  http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const reply = (obj) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
    switch (url.pathname) {
      case '/stats': return reply(stats);
      case '/outage/start':
        await new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
        return reply({ outage: true });
      case '/outage/end':
        server = https.createServer(tls, handle);
        await listen();
        return reply({ outage: false });
      case '/slow': faults.slowMs = Number(url.searchParams.get('ms') || 0); return reply(faults);
      case '/fail': faults.failStatus = Number(url.searchParams.get('status') || 0); return reply(faults);
      default: res.writeHead(404); return res.end();
    }
  }).listen(controlPort, '127.0.0.1');
}

await listen();
console.log(JSON.stringify({ ready: true, issuer, resource: API, port, control_port: controlPort }));

// The Node SDK against the real daemon: tests/tests/e2e/sdk.rs makes the
// world (valetkeyd, the Secret Service, the test IdP, logged in), grants
// this Node binary as agent `ts-granted`, and runs `node --test` with the
// world's environment, VK_BIN (the `valetkey` CLI, to decide consents as
// the user would) and VK_PROVIDER.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as vk from '../src/index.js';

const provider = process.env.VK_PROVIDER ?? 'local';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = (...args) => execFileSync(path.join(process.env.VK_BIN, 'valetkey'), args, { encoding: 'utf8' });

test('the socket is found by the daemon\'s rule, even in a reduced environment', () => {
  const uid = process.getuid();
  const run = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'vk-run-'));
  assert.equal(vk.socketPath({ VALETKEY_SOCKET: '/s.sock' }, run), '/s.sock');
  assert.equal(vk.socketPath({ XDG_RUNTIME_DIR: '/x' }, run), '/x/valetkey/agent.sock');
  assert.equal(vk.socketPath({}, run), `/tmp/valetkey-${uid}/agent.sock`);
  fs.mkdirSync(path.join(run, String(uid)), { mode: 0o700 });
  // An MCP client's stdio transport keeps HOME, PATH and a few more: no XDG_RUNTIME_DIR.
  assert.equal(vk.socketPath({ HOME: '/h', PATH: '/bin' }, run), path.join(run, String(uid), 'valetkey/agent.sock'));
  fs.rmSync(run, { recursive: true });
});

test('the error classes are the schema\'s codes', () => {
  execFileSync('python3', [path.join(root, 'sdk/gen.py'), '--check'], { stdio: 'pipe' });
  const schema = JSON.parse(fs.readFileSync(path.join(root, 'ipc-schema/schema/agent-protocol.json'), 'utf8'));
  assert.equal(schema['x-protocol-version'], vk.PROTOCOL_VERSION);
  for (const e of schema['x-errors']) {
    const klass = vk.errorsByCode.get(e.code);
    assert.equal(klass.codeName, e.name);
    assert.ok(new klass('m') instanceof vk.ValetKeyError);
  }
  assert.equal(vk.ConsentRequiredError.code, 2000);
  assert.equal(vk.fromRpc({ code: 9999, message: 'new' }).constructor, vk.ValetKeyError);
});

test('a granted agent gets a narrowed token that logging never shows', async () => {
  const c = new vk.Client({ agent: 'ts-granted', purpose: 'sdk test' });
  try {
    const hello = await c.connect();
    assert.ok(hello.identity.exe.startsWith('/'));
    const tok = await c.token(provider, ['repo:read']);
    assert.deepEqual(tok.scopes, ['repo:read']);
    assert.equal(tok.provider, provider);
    assert.equal(tok.authorization, `Bearer ${tok.accessToken}`);
    assert.ok(!JSON.stringify(tok).includes(tok.accessToken));
    assert.equal((await c.token(provider, 'repo:read')).accessToken, tok.accessToken, 'cached');
    assert.ok((await c.providers()).some((p) => p.name === provider));
    assert.equal((await c.whoami()).agent.name, 'ts-granted');
  } finally {
    await c.close();
  }
});

test('each refusal is its own error class, and the connection stays good', async () => {
  const c = new vk.Client({ agent: 'ts-granted' });
  try {
    await assert.rejects(c.token('nope', ['repo:read']), (e) => e instanceof vk.UnknownProviderError && e.code === 2003);
    await assert.rejects(c.token(provider, ['admin:everything']), (e) => e instanceof vk.ScopeNotAllowedError && e.data.not_allowed[0] === 'admin:everything');
    await assert.rejects(c.token(provider, ['repo:write']), vk.ScopeNotGrantedError);
    const toks = await Promise.all([1, 2, 3, 4, 5].map(() => c.token(provider, ['repo:read'])));
    assert.equal(new Set(toks.map((t) => t.accessToken)).size, 1, 'queued calls on one connection');
  } finally {
    await c.close();
  }
});

test('no grant: consent_required at once, then consentWait after the user allows', async () => {
  const c = new vk.Client({ agent: 'ts-asker', purpose: 'asks first' });
  try {
    const err = await c.token(provider, ['issues:read'], { wait: false, duration: 600 }).catch((e) => e);
    assert.ok(err instanceof vk.ConsentRequiredError, String(err));
    assert.match(err.data.consent_id, /^c_/);
    cli('consent', 'allow', err.data.consent_id, '--for', '10m');
    const tok = await c.consentWait(err.data.consent_id);
    assert.deepEqual(tok.scopes, ['issues:read']);
  } finally {
    await c.close();
  }
});

test('a delegation makes a sub-agent that gets no more', async () => {
  const parent = new vk.Client({ agent: 'ts-granted' });
  const d = await parent.delegate('ts-sub', provider, ['repo:read'], 300);
  await parent.close();
  assert.equal(d.depth, 1);
  const sub = new vk.Client({ agent: 'ts-sub', delegation: d.token });
  try {
    const hello = await sub.connect();
    assert.equal(hello.delegation.chain.at(-1), 'agent:ts-sub');
    assert.deepEqual((await sub.token(provider, ['repo:read'])).scopes, ['repo:read']);
    await assert.rejects(sub.token(provider, ['repo:write']), vk.ScopeNotGrantedError);
  } finally {
    await sub.close();
  }
  await assert.rejects(new vk.Client({ agent: 'ts-sub', delegation: 'not.a.token' }).connect(), vk.DelegationInvalidError);
});

test('authorizedFetch puts the token on requests, refetches near expiry and once on a 401', async () => {
  const seen = [];
  let refuseNext = false;
  const server = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.statusCode = refuseNext ? 401 : 200;
    refuseNext = false;
    res.end('ok');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const c = new vk.Client({ agent: 'ts-granted' });
  let calls = 0;
  const counting = { token: (...a) => { calls += 1; return c.token(...a); } };
  try {
    const tok = await c.token(provider, ['repo:read']);
    let now = tok.expiresAt - 3600;
    const f = vk.authorizedFetch(counting, provider, ['repo:read'], { now: () => now });
    assert.equal((await f(url)).status, 200);
    await f(url);
    assert.equal(calls, 1, 'cached while fresh');
    assert.deepEqual(seen, [tok.authorization, tok.authorization]);
    now = tok.expiresAt - 10;
    await f(url);
    assert.equal(calls, 2, 'fetched again near expiry');
    now = tok.expiresAt - 3600;
    refuseNext = true;
    assert.equal((await f(url)).status, 200, 'retried after the 401');
    assert.equal(calls, 3);
  } finally {
    await c.close();
    server.close();
  }
});

test('an unreachable daemon says so', async () => {
  const c = new vk.Client({ agent: 'x', socketPath: '/nonexistent/agent.sock' });
  await assert.rejects(c.connect(), (e) => e instanceof vk.ConnectionError && /valetkey status/.test(e.message));
});

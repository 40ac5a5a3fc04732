// An MCP client built on the official MCP TypeScript SDK's Client and
// StdioClientTransport, driven line by line from stdin, for Valet Key's
// end-to-end tests and demo. It starts the stdio server given after `--`
// (here `valetkey mcp proxy NAME --agent A`) and answers each command with
// one JSON line on stdout:
//
//   {"op":"pids"}                          -> {"ok":true,"client":PID,"server":PID}
//   {"op":"list"}                          -> {"ok":true,"tools":[names]}
//   {"op":"call","name":N,"args":{…}}      -> {"ok":true,"text":…} | {"ok":false,"error":…,"code":…}
//   {"op":"burst","n":8,"name":N,"args":{}} -> {"ok":true,"results":[…]} (n calls at once)
//   {"op":"info"}                           -> {"ok":true,"server":serverInfo,"capabilities":…,"instructions":…}
//   {"op":"close"}                          -> {"ok":true}, then exit
//
// Usage: node client.mjs [--sdk-env] [--connect-timeout MS] -- CMD ARGS...
//
// --connect-timeout MS: how long the handshake (initialize) may take, as
// a client with a short handshake timeout has it (Claude Code: 30 s; the
// SDK's default: 60 s).
//
// --sdk-env: give the transport no `env`, as a README config has none, so
// the server gets the SDK's default environment (getDefaultEnvironment:
// HOME, LOGNAME, PATH, SHELL, TERM, USER) and nothing else.

import readline from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const sep = process.argv.indexOf('--');
const [command, ...args] = process.argv.slice(sep + 1);
const opts = process.argv.slice(2, sep);
const sdkEnv = opts.includes('--sdk-env');
const ct = opts.indexOf('--connect-timeout');
const connectOptions = ct >= 0 ? { timeout: Number(opts[ct + 1]) } : undefined;
const transport = new StdioClientTransport(
  sdkEnv ? { command, args, stderr: 'inherit' } : { command, args, env: process.env, stderr: 'inherit' },
);
const client = new Client({ name: 'valetkey-test-client', version: '1.0.0' });

const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

async function call(name, args) {
  try {
    const r = await client.callTool({ name, arguments: args || {} }, undefined, { timeout: 30000 });
    const text = (r.content || []).map((c) => c.text).join('');
    return r.isError ? { ok: false, error: text } : { ok: true, text };
  } catch (e) {
    return { ok: false, error: String(e.message || e), code: e.code };
  }
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'pids':
      return { ok: true, client: process.pid, server: transport.pid };
    case 'list': {
      try {
        const r = await client.listTools();
        return { ok: true, tools: r.tools.map((t) => t.name) };
      } catch (e) {
        return { ok: false, error: String(e.message || e), code: e.code };
      }
    }
    case 'call':
      return call(cmd.name, cmd.args);
    case 'burst': {
      const all = await Promise.all(Array.from({ length: cmd.n }, () => call(cmd.name, cmd.args)));
      return { ok: all.every((r) => r.ok), results: all };
    }
    case 'info':
      return {
        ok: true,
        server: client.getServerVersion(),
        capabilities: client.getServerCapabilities(),
        instructions: client.getInstructions(),
      };
    case 'close':
      await client.close();
      return { ok: true };
    default:
      return { ok: false, error: `unknown op ${cmd.op}` };
  }
}

try {
  await client.connect(transport, connectOptions);
} catch (e) {
  out({ ok: false, error: `connect: ${e.message || e}`, code: e.code });
  process.exit(1);
}
out({ ok: true, ready: true });
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  out(await handle(cmd));
  if (cmd.op === 'close') process.exit(0);
}

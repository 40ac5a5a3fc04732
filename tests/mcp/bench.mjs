// What `valetkey mcp proxy` adds to a tools/call, for bench/run.sh --mcp:
// the official SDK's client calls the test server's `echo` tool directly
// (streamable HTTP with the bearer token) and through `valetkey mcp proxy`
// (stdio, the token written in by valetkeyd), in interleaved rounds of
// sequential calls, and reads the CPU time valetkeyd, the stdio bridge and
// the server spent (/proc/PID/stat) around each round.
//
// Usage: node bench.mjs --url URL --auth "Bearer …" --daemon PID --server PID
//          [--rounds 6] [--calls 200] -- CMD ARGS…   (the proxy to start)
// Prints one JSON object.

import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sep = process.argv.indexOf('--');
const [command, ...args] = process.argv.slice(sep + 1);
const url = new URL(arg('--url'));
const rounds = Number(arg('--rounds', '6'));
const calls = Number(arg('--calls', '200'));
const pids = { daemon: Number(arg('--daemon')), server: Number(arg('--server')) };

// CPU time of the whole process, exited threads included (utime + stime
// from /proc/PID/stat, in clock ticks of 10 ms: summed over every round,
// thousands of calls, so a tick is small against the total).
function cpuNs(pid) {
  if (!pid) return 0;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 1e7;
}

async function connect(transport) {
  const client = new Client({ name: 'valetkey-bench', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

const direct = await connect(
  new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: arg('--auth') } } }),
);
const bridge = new StdioClientTransport({ command, args, env: process.env, stderr: 'ignore' });
const proxied = await connect(bridge);

const lat = { direct: [], proxy: [] };
const cpu = {
  direct: { daemon: 0, bridge: 0, server: 0, calls: 0 },
  proxy: { daemon: 0, bridge: 0, server: 0, calls: 0 },
};

async function round(name, client, n) {
  const before = [cpuNs(pids.daemon), cpuNs(bridge.pid), cpuNs(pids.server)];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await client.callTool({ name: 'echo', arguments: { text: 'x'.repeat(64) } });
    if (r.isError) throw new Error(`echo failed: ${JSON.stringify(r)}`);
    lat[name].push(performance.now() - t);
  }
  const after = [cpuNs(pids.daemon), cpuNs(bridge.pid), cpuNs(pids.server)];
  const c = cpu[name];
  c.daemon += after[0] - before[0];
  c.bridge += after[1] - before[1];
  c.server += after[2] - before[2];
  c.calls += n;
}

// Warm both paths (TLS sessions, the daemon's token cache, JIT).
await round('direct', direct, 50);
await round('proxy', proxied, 50);
for (const k of Object.keys(lat)) lat[k] = [];
for (const k of Object.keys(cpu)) cpu[k] = { daemon: 0, bridge: 0, server: 0, calls: 0 };

for (let r = 0; r < rounds; r++) {
  await round('direct', direct, calls);
  await round('proxy', proxied, calls);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const r3 = (x) => Math.round(x * 1000) / 1000;
const summary = (name) => ({
  calls: lat[name].length,
  p50_ms: r3(pct(lat[name], 50)),
  p99_ms: r3(pct(lat[name], 99)),
  valetkeyd_cpu_us_per_call: r3(cpu[name].daemon / 1000 / cpu[name].calls),
  bridge_cpu_us_per_call: r3(cpu[name].bridge / 1000 / cpu[name].calls),
  server_cpu_us_per_call: r3(cpu[name].server / 1000 / cpu[name].calls),
});
const out = { rounds, calls_per_round: calls, tool: 'echo', direct: summary('direct'), proxy: summary('proxy') };
out.added_p50_ms = r3(out.proxy.p50_ms - out.direct.p50_ms);
out.added_p99_ms = r3(out.proxy.p99_ms - out.direct.p99_ms);
console.log(JSON.stringify(out, null, 2));
await direct.close();
await proxied.close();
process.exit(0);

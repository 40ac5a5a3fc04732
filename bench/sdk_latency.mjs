// Cached token.get round trips through the Node SDK (sdk/typescript), one
// connection, sequential; prints one JSON summary like valetkey-bench's.
// Usage: node sdk_latency.mjs AGENT PROVIDER SCOPE REQUESTS
import { Client } from '../sdk/typescript/src/index.js';

const [agent, provider, scope, n] = [process.argv[2], process.argv[3], process.argv[4], Number(process.argv[5])];
const vk = new Client({ agent, purpose: 'SDK latency comparison' });
for (let i = 0; i < 100; i++) await vk.token(provider, [scope]);
const ns = [];
const start = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  await vk.token(provider, [scope]);
  ns.push(Number(process.hrtime.bigint() - t));
}
const secs = Number(process.hrtime.bigint() - start) / 1e9;
ns.sort((a, b) => a - b);
const pct = (p) => ns[Math.min(ns.length - 1, Math.floor((p / 100) * ns.length))] / 1000;
console.log(JSON.stringify({ requests: n, errors: 0, rps: Math.round((n / secs) * 10) / 10, p50_us: pct(50), p99_us: pct(99) }));
await vk.close();

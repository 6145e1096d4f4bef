// neon_workload.mjs - @neondatabase/serverless through pgbun's WebSocket
// transport, unchanged but for its documented settings for a self-hosted
// proxy: neonConfig.wsProxy points at pgbun, pipelineConnect = false (the
// role logs in with SCRAM, not a cleartext password), useSecureWebSocket
// from PGBUN_WS_SECURE (wss:// with pgbun's certificate, trusted through
// the CA file PGBUN_WS_CA).
//
// PGBUN_CLIENTS logical clients run at once: half through one neon Pool of
// PGBUN_CONNECTIONS WebSockets, half each on its own neon Client. Each
// runs parameterised queries, a committed and a rolled-back transaction,
// a division by zero recovered from (22012), a 100 kB value and a 20,000
// row result, every answer checked. Prints one JSON summary line; exits 1
// on any failure.
import fs from 'node:fs';
import { Pool, Client, neonConfig } from '@neondatabase/serverless';
import WebSocket from 'ws';
import { webcrypto } from 'node:crypto';
import dns from 'node:dns';

// the driver's SCRAM uses the global Web Crypto, which Node.js 18 (Debian 12's)
// does not define without a flag
if (!globalThis.crypto) globalThis.crypto = webcrypto;
// wss:// names the host "localhost" (the certificate's name); pgbun listens on
// 127.0.0.1, and a resolver may answer ::1 first
dns.setDefaultResultOrder('ipv4first');

const env = process.env;
const CLIENTS = Number(env.PGBUN_CLIENTS || 40);
const CONNECTIONS = Number(env.PGBUN_CONNECTIONS || 10);
const secure = env.PGBUN_WS_SECURE === '1';
const ca = env.PGBUN_WS_CA ? fs.readFileSync(env.PGBUN_WS_CA) : undefined;

// the ws package, with the test CA for wss:// (Node has no global WebSocket before 22)
class TestWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, ca ? { ca } : {});
  }
}
neonConfig.webSocketConstructor = TestWebSocket;
neonConfig.wsProxy = env.PGBUN_WS_PROXY;	// host:port/path; the driver appends ?address=
neonConfig.useSecureWebSocket = secure;
neonConfig.pipelineConnect = false;

const connectionString =
  `postgresql://${encodeURIComponent(env.PGUSER)}:${encodeURIComponent(env.PGPASSWORD)}` +
  `@db.example.invalid:5432/${encodeURIComponent(env.PGDATABASE)}`;

const stats = { lib: 'neon', secure, clients: CLIENTS, failures: 0, queries: 0, commits: 0,
  rollbacks: 0, errorsRecovered: 0, bigValues: 0, bigResults: 0 };
const pids = new Set();
const errors = [];

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// One logical client's work on q (a Pool, or a connected Client), tx (how to get a transaction).
async function work(kind, i, q, tx) {
  let r = await q.query('SELECT $1::int * 2 AS v, $2::text AS t, pg_backend_pid() AS pid', [i, `c${i}`]);
  check(r.rows.length === 1 && r.rows[0].v === 2 * i && r.rows[0].t === `c${i}`, `${kind} ${i} params`);
  pids.add(r.rows[0].pid);
  stats.queries++;

  await tx(async (c) => {
    await c.query('INSERT INTO neon_rows VALUES ($1, $2, 1), ($1, $2, 2)', [kind, i]);
    await c.query('INSERT INTO neon_rows VALUES ($1, $2, 3)', [kind, i]);
  }, true);
  stats.commits++;
  await tx(async (c) => {
    await c.query('INSERT INTO neon_rows VALUES ($1, $2, 99)', [kind, i]);
  }, false);
  stats.rollbacks++;

  try {
    await q.query('SELECT 1 / $1::int AS boom', [0]);
    throw new Error('division by zero did not fail');
  } catch (err) {
    check(err.code === '22012', `${kind} ${i}: expected 22012, got ${err.code} ${err.message}`);
  }
  r = await q.query('SELECT $1::int + 1 AS after', [i]);
  check(r.rows[0].after === i + 1, `${kind} ${i} after error`);
  stats.errorsRecovered++;

  r = await q.query("SELECT repeat('x', 100000) || $1::text AS big", [String(i)]);
  check(r.rows[0].big.length === 100000 + String(i).length && r.rows[0].big.endsWith(String(i)), `${kind} ${i} big value`);
  stats.bigValues++;
  r = await q.query('SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g');
  check(r.rows.length === 20000 && r.rows[19999].g === 20000 && r.rows[0].h === 'c4ca4238a0b923820dcc509a6f75849b',
    `${kind} ${i} 20000 rows`);
  stats.bigResults++;
}

async function guarded(kind, i, fn) {
  try {
    await fn();
  } catch (err) {
    stats.failures++;
    if (errors.length < 10) errors.push(`${kind} ${i}: ${err.message}`);
  }
}

const timer = setTimeout(() => {
  console.error('neon workload timed out');
  console.log(JSON.stringify({ ...stats, timedOut: true, errors }));
  process.exit(1);
}, Number(env.PGBUN_WORKLOAD_TIMEOUT || 180) * 1000);

const pool = new Pool({ connectionString, max: CONNECTIONS });
pool.on('error', (err) => errors.push(`pool idle client: ${err.message}`));

const poolTx = async (fn, commit) => {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await fn(c);
    await c.query(commit ? 'COMMIT' : 'ROLLBACK');
  } finally {
    c.release();
  }
};

const tasks = [];
const half = Math.floor(CLIENTS / 2);
for (let i = 1; i <= half; i++) tasks.push(guarded('pool', i, () => work('pool', i, pool, poolTx)));
for (let i = half + 1; i <= CLIENTS; i++) {
  tasks.push(guarded('client', i, async () => {
    const c = new Client(connectionString);
    await c.connect();
    try {
      const clientTx = async (fn, commit) => {
        await c.query('BEGIN');
        await fn(c);
        await c.query(commit ? 'COMMIT' : 'ROLLBACK');
      };
      await work('client', i, c, clientTx);
    } finally {
      await c.end();
    }
  }));
}
await Promise.all(tasks);
await pool.end();
clearTimeout(timer);
stats.backendPids = pids.size;
stats.errors = errors;
console.log(JSON.stringify(stats));
process.exit(stats.failures === 0 ? 0 : 1);

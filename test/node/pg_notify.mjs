// pg_notify.mjs - node-postgres LISTEN/NOTIFY through pgbun in transaction
// mode (driven by t/340_listen_notify.pl). One pg.Client LISTENs and
// collects client.on('notification'); a pg.Pool of 4 sends 100 notifications
// with pg_notify($1, $2), each reporting its backend's pid. Every one must
// arrive, in order, with its channel, payload and that pid; after UNLISTEN
// none may. Prints a JSON summary as its last line; exit 0 when all holds.
import pg from 'pg';

const N = 100;
const CHANNEL = 'node chan';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
  return cond();
}

const listener = new pg.Client();
const pool = new pg.Pool({ max: 4 });
pool.on('error', (err) => console.error(`pool: ${err.message}`));
const got = [];
listener.on('notification', (m) => got.push(m));
listener.on('error', (err) => console.error(`listener: ${err.message}`));

await listener.connect();
await listener.query(`LISTEN "${CHANNEL}"`);

const sent = [];
await Promise.all(
  [0, 1, 2, 3].map(async (w) => {
    for (let i = w; i < N; i += 4) {
      const payload = `payload ${i}`;
      const r = await pool.query('SELECT pg_backend_pid() AS pid, pg_notify($1, $2)', [CHANNEL, payload]);
      sent.push({ pid: r.rows[0].pid, payload });
    }
  }),
);
await waitFor(() => got.length >= N, 30000);

// order: as committed; the pids and payloads must match one for one
const byPayload = new Map(sent.map((s) => [s.payload, s.pid]));
let pidMismatch = 0;
let unknown = 0;
const seen = new Set();
for (const m of got) {
  if (m.channel !== CHANNEL || !byPayload.has(m.payload) || seen.has(m.payload)) unknown++;
  else if (m.processId !== byPayload.get(m.payload)) pidMismatch++;
  seen.add(m.payload);
}
const received = got.filter((m) => m.channel === CHANNEL).length;

await listener.query(`UNLISTEN "${CHANNEL}"`);
await pool.query(`SELECT pg_notify($1, 'after')`, [CHANNEL]);
await listener.query('LISTEN node_sentinel');
await pool.query(`NOTIFY node_sentinel, 'end'`);
const sentinel = await waitFor(() => got.some((m) => m.channel === 'node_sentinel'), 30000);
const afterUnlisten = got.filter((m) => m.payload === 'after').length;

await listener.end();
await pool.end();
const summary = { received, pid_mismatch: pidMismatch, unknown, after_unlisten: afterUnlisten, sentinel };
console.log(JSON.stringify(summary));
process.exit(received === N && pidMismatch === 0 && unknown === 0 && afterUnlisten === 0 && sentinel ? 0 : 1);

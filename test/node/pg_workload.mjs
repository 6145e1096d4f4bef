// pg_workload.mjs - workload.mjs with node-postgres (`pg`, `pg-cursor`):
// a pg.Pool of PGBUN_CONNECTIONS clients, named statements ({ name, text,
// values }), transactions on a checked-out client, pg-cursor inside one.
import pg from 'pg';
import Cursor from 'pg-cursor';
import { run, settings, CONNECTIONS } from './workload.mjs';

const pool = new pg.Pool({ ...settings, max: CONNECTIONS, connectionTimeoutMillis: 60000 });
pool.on('error', (err) => console.error(`pg pool: idle client error: ${err.message}`));

const rowsOf = (client) => async (text, values) => (await client.query(text, values)).rows;

async function transaction(fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn({ query: rowsOf(client) });
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

async function* cursor(text, params, batch) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const cur = client.query(new Cursor(text, params));
    for (;;) {
      const rows = await cur.read(batch);
      if (rows.length === 0) break;
      yield rows;
    }
    await cur.close();
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

await run('pg', {
  query: rowsOf(pool),
  prepared: async (name, text, values) => (await pool.query({ name, text, values })).rows,
  transaction,
  reserved: async (fn) => {
    const client = await pool.connect();
    try {
      return await fn({ query: rowsOf(client) });
    } finally {
      client.release();
    }
  },
  cursor,
  sqlstate: (err) => err && err.code,
  end: () => pool.end(),
});

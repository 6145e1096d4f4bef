// bun_workload.mjs - workload.mjs with Bun's built-in SQL client (run with the
// bun binary from the `bun` package: node_modules/.bin/bun bun_workload.mjs).
// new SQL({ max: PGBUN_CONNECTIONS }) prepares queries by default (named
// statements); tagged templates, sql.begin, sql.reserve. Bun has no cursor
// API, so the cursor is DECLARE ... / FETCH inside sql.begin.
import { SQL } from 'bun';
import { run, settings, call, templateAdapter, CONNECTIONS } from './workload.mjs';

const sql = new SQL({
  adapter: 'postgres',
  hostname: settings.host,
  port: settings.port,
  username: settings.user,
  password: settings.password,
  database: settings.database,
  max: CONNECTIONS,
  connectionTimeout: 60,
});

await run('bun', {
  ...templateAdapter(sql),
  cursor: async function* (text, params, batch) {
    const batches = [];
    await sql.begin(async (tx) => {
      await call(tx, `DECLARE pgbun_cursor NO SCROLL CURSOR FOR ${text}`, params);
      for (;;) {
        const rows = [...await tx.unsafe(`FETCH ${Number(batch)} FROM pgbun_cursor`)];
        if (rows.length === 0) break;
        batches.push(rows);
      }
      await tx.unsafe('CLOSE pgbun_cursor');
    });
    yield* batches;
  },
  sqlstate: (err) => err && (err.errno || err.code),
  end: () => sql.close({ timeout: 5 }),
});

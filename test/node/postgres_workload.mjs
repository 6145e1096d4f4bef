// postgres_workload.mjs - workload.mjs with Postgres.js (`postgres`), which
// prepares every query by default (named statements on each connection):
// postgres({ max: PGBUN_CONNECTIONS }), tagged templates, sql.begin,
// sql.reserve and .cursor() inside sql.begin.
import postgres from 'postgres';
import { run, settings, call, templateAdapter, CONNECTIONS } from './workload.mjs';

const sql = postgres({
  ...settings,
  username: settings.user,
  max: CONNECTIONS,
  connect_timeout: 60,
  onnotice: () => {},
});

await run('postgres', {
  ...templateAdapter(sql),
  cursor: async function* (text, params, batch) {
    const batches = [];
    await sql.begin(async (tx) => {
      for await (const rows of call(tx, text, params).cursor(batch)) batches.push([...rows]);
    });
    yield* batches;
  },
  sqlstate: (err) => err && err.code,
  end: () => sql.end({ timeout: 5 }),
});

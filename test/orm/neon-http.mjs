// neon-http.mjs - neon() from @neondatabase/serverless (its HTTP query
// function, not the WebSocket Pool) against pgbun's POST /sql, run by
// t/370_http_sql.pl.
//
// NEON_HTTP_URL: the connection string neon() sends (Neon-Connection-String);
// NEON_HTTP_ENDPOINT: neonConfig.fetchEndpoint (http://127.0.0.1:<port>/sql,
// or https://localhost:<port>/sql with NODE_EXTRA_CA_CERTS for pgbun's
// certificate); PGHOST, PGPORT, PGUSER, PGDATABASE: node-postgres straight
// to the server, for the differential checks; NEON_HTTP_CLIENTS:
// how many queries run at once (default 40). The table neon_items (id int
// primary key, name text) must exist and be empty.
//
// Each check that fails is printed to stderr; the last line of stdout is a
// JSON summary: {checks, failures, pids: distinct backend pids of the
// concurrent queries}. Exit status 1 if anything failed.
import { neon, neonConfig, NeonDbError } from '@neondatabase/serverless';
import pg from 'pg';
import { isDeepStrictEqual } from 'node:util';

const url = process.env.NEON_HTTP_URL;
neonConfig.fetchEndpoint = process.env.NEON_HTTP_ENDPOINT;
const direct = new pg.Client();
const CLIENTS = Number(process.env.NEON_HTTP_CLIENTS || 40);
const sql = neon(url);

let checks = 0;
let failures = 0;
function check(what, ok, detail) {
  checks++;
  if (!ok) {
    failures++;
    console.error(`FAIL ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}
function same(what, got, want) {
  check(what, isDeepStrictEqual(got, want), { got, want });
}
// The NeonDbError a promise rejects with, or null.
async function failure(p) {
  try {
    await p;
    return null;
  } catch (err) {
    return err;
  }
}
// A result's fields as node-postgres reports them (the same names neon() uses).
const fieldsOf = (r) => r.fields.map((f) => ({
  name: f.name, tableID: f.tableID, columnID: f.columnID, dataTypeID: f.dataTypeID,
  dataTypeSize: f.dataTypeSize, dataTypeModifier: f.dataTypeModifier, format: f.format,
}));

await direct.connect();

// ---- queries and parameters ----
same('tagged template: int, text, NULL',
  await sql`SELECT ${7}::int AS n, ${'it\'s "text" ü'} AS t, ${null}::text AS z`,
  [{ n: 7, t: 'it\'s "text" ü', z: null }]);
same('array and json parameters',
  await sql.query('SELECT $1::int[] AS a, $2::jsonb AS j, $3::text[] AS s', [[1, 2, 3], { k: [1, 'x'] }, ['a,b', null, '"q"']]),
  [{ a: [1, 2, 3], j: { k: [1, 'x'] }, s: ['a,b', null, '"q"'] }]);
same('arrayMode', await sql.query('SELECT 1 AS x, \'b\' AS y', [], { arrayMode: true }), [[1, 'b']]);
same('no rows', await sql`SELECT 1 AS x WHERE false`, []);
same('bytea parameter and value',
  (await sql.query('SELECT $1::bytea AS b', [Buffer.from([0, 1, 255])]))[0].b, Buffer.from([0, 1, 255]));
{
  const r = await sql.query('SELECT 1::int AS x, now()::date = current_date AS d', [], { fullResults: true });
  same('fullResults: command, rowCount, rows', [r.command, r.rowCount, r.rows], ['SELECT', 1, [{ x: 1, d: true }]]);
  same('fullResults: fields', fieldsOf(r).map((f) => [f.name, f.dataTypeID]), [['x', 23], ['d', 16]]);
}
{
  const r = await sql.query('CREATE TEMP TABLE t_tmp (i int)', [], { fullResults: true });
  same('a command without rows: command, rowCount', [r.command, r.rowCount, r.rows], ['CREATE', null, []]);
}

// ---- a transaction committed, one rolled back ----
{
  const [ins, upd, count] = await sql.transaction([
    sql`INSERT INTO neon_items VALUES (1, 'one'), (2, 'two')`,
    sql`UPDATE neon_items SET name = name || '!' WHERE id = ${2}`,
    sql`SELECT count(*)::int AS n FROM neon_items`,
  ], { fullResults: true });
  same('transaction: each result', [ins.command, ins.rowCount, upd.command, upd.rowCount, count.rows],
    ['INSERT', 2, 'UPDATE', 1, [{ n: 2 }]]);
}
{
  const err = await failure(sql.transaction([
    sql`INSERT INTO neon_items VALUES (3, 'three')`,
    sql`INSERT INTO neon_items VALUES (1, 'again')`,
  ]));
  check('failed transaction: a NeonDbError', err instanceof NeonDbError, String(err));
  same('failed transaction: SQLSTATE, constraint, table, detail',
    [err?.code, err?.constraint, err?.table, err?.detail, err?.severity],
    ['23505', 'neon_items_pkey', 'neon_items', 'Key (id)=(1) already exists.', 'ERROR']);
}
{
  const [iso, ro] = await sql.transaction((tx) => [
    tx`SELECT current_setting('transaction_isolation') AS v`,
    tx`SELECT current_setting('transaction_read_only') AS v`,
  ], { isolationLevel: 'Serializable', readOnly: true, deferrable: true });
  same('batch options: isolation, read only', [iso[0].v, ro[0].v], ['serializable', 'on']);
  const err = await failure(sql.transaction([sql`INSERT INTO neon_items VALUES (9, 'ro')`], { readOnly: true }));
  same('read-only batch refuses a write', err?.code, '25006');
}

// ---- errors ----
{
  const err = await failure(sql`SELECT * FROM no_such_table`);
  check('missing table: a NeonDbError', err instanceof NeonDbError, String(err));
  same('missing table: code, position, message', [err?.code, err?.position, err?.message],
    ['42P01', '15', 'relation "no_such_table" does not exist']);
  same('a query after an error works', await sql`SELECT 2 AS two`, [{ two: 2 }]);
  const err2 = await failure(sql`SELECT 1/${0}::int`);
  same('division by zero', err2?.code, '22012');
  const err3 = await failure(sql.query('SELECT 1; SELECT 2'));
  same('two statements in one query (extended protocol)', err3?.code, '42601');
}
{
  const bad = new URL(url);
  bad.password = 'wrong';
  const err = await failure(neon(bad.href)`SELECT 1`);
  same('wrong password', [err?.code, err?.message?.startsWith('pgbun: password authentication failed')], ['28P01', true]);
  const nodb = new URL(url);
  nodb.pathname = '/no_such_db';
  const err2 = await failure(neon(nodb.href)`SELECT 1`);
  same('unknown database', err2?.code, '3D000');
}

// ---- differential: the same queries straight through node-postgres ----
for (const [text, params] of [
  ['SELECT id, name FROM neon_items ORDER BY id', []],
  ['SELECT $1::numeric AS n, $2::timestamptz AS t, $3::int[] AS a, $4::json AS j, NULL::text AS z',
    ['12.50', '2024-02-29 12:34:56+00', [3, 2, 1], { a: [true, null] }]],
  ['SELECT oid, relname, relkind FROM pg_class WHERE relname = $1', ['neon_items']],
  ['SELECT g, repeat(\'x\', g) AS r, g % 2 = 0 AS even FROM generate_series(1, 200) g', []],
]) {
  const viaHttp = await sql.query(text, params, { fullResults: true });
  const straight = await direct.query(text, params);
  same(`differential fields: ${text}`, fieldsOf(viaHttp), fieldsOf(straight));
  same(`differential rows: ${text}`, viaHttp.rows, straight.rows);
  same(`differential rowCount/command: ${text}`, [viaHttp.rowCount, viaHttp.command], [straight.rowCount, straight.command]);
}
{
  const viaHttp = await sql.query('SELECT 1 AS a, 2 AS b', [], { fullResults: true, arrayMode: true });
  const straight = await direct.query({ text: 'SELECT 1 AS a, 2 AS b', rowMode: 'array' });
  same('differential arrayMode rows', viaHttp.rows, straight.rows);
}

// ---- many at once (through the transaction pool) ----
const pids = new Set();
{
  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) =>
    sql`SELECT ${i}::int AS i, pg_backend_pid() AS pid, pg_sleep(0.05)::text AS s`.then((r) => r, (e) => e)));
  let ok = 0;
  results.forEach((r, i) => {
    if (Array.isArray(r) && r[0].i === i) {
      ok++;
      pids.add(r[0].pid);
    } else
      console.error(`concurrent query ${i}: ${r}`);
  });
  same('concurrent queries all answered', ok, CLIENTS);
}

await direct.end();
console.log(JSON.stringify({ checks, failures, pids: pids.size }));
process.exit(failures ? 1 : 0);

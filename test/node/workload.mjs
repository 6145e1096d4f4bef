// workload.mjs - the workload that t/140_node_clients.pl runs through pgbun
// with each real client library. The library scripts (pg_workload.mjs,
// postgres_workload.mjs, bun_workload.mjs) wrap their library in an adapter
// and call run(); everything checked is checked here, once.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD and
// PGDATABASE; PGBUN_CLIENTS logical clients (default 100) share the library's
// pool of PGBUN_CONNECTIONS connections to pgbun (default 50), which shares a
// few server connections among them (transaction pooling). Rows go into
//   node_rows (lib text, client int, seq int, PRIMARY KEY (lib, client, seq))
// which the caller creates and empties. Each logical client:
//   1. runs 5 parameterised queries and checks each answer exactly;
//   2. commits a transaction inserting seq 1..3 and sees its 3 rows inside it;
//   3. rolls back a transaction that inserted seq -1 (thrown out of the
//      library's transaction helper) and sees the row gone afterwards;
//   4. runs one prepared (named) statement 10 times, noting which server
//      backend answered;
//   5. gets a division by zero on a reserved connection and goes on using it;
//      gets one in the middle of a transaction (after inserting seq -2), which
//      rolls back, and the row is gone;
//   6. the first 5 clients read 3,000 rows in batches of 250 through a cursor
//      inside a transaction.
// Afterwards the library's committed rows are counted.
//
// Prints one line of JSON (the summary) on stdout; any mismatch goes to
// stderr and the exit status is 1. A run that takes longer than
// PGBUN_WORKLOAD_TIMEOUT seconds (default 180) stops with status 2.
//
// An adapter has (rows are arrays of plain objects; text uses $1, $2 ...):
//   query(text, params)          a query through the pool
//   prepared(name, text, params) the same as the library's prepared statement
//   transaction(fn)              runs fn(tx) in BEGIN ... COMMIT; tx.query;
//                                rolls back and rethrows if fn throws
//   reserved(fn)                 runs fn(conn) on one connection; conn.query
//   cursor(text, params, batch)  async iterable of row batches, in a transaction
//   sqlstate(err)                the SQLSTATE of a server error
//   end()                        closes the pool

export const CLIENTS = Number(process.env.PGBUN_CLIENTS || 100);
export const CONNECTIONS = Number(process.env.PGBUN_CONNECTIONS || 50);
const TIMEOUT = Number(process.env.PGBUN_WORKLOAD_TIMEOUT || 180);
const PREPARED_RUNS = 10;
const CURSOR_CLIENTS = 5;
const CURSOR_ROWS = 3000;
const CURSOR_BATCH = 250;

export const settings = {
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 6432),
  user: process.env.PGUSER,
  password: process.env.PGPASSWORD,
  database: process.env.PGDATABASE || process.env.PGUSER,
};

// Split "... $1 ... $2 ..." into a tagged template's strings and values, for
// the libraries whose prepared statements come from tagged templates.
export function template(text, params) {
  const strings = [];
  const values = [];
  let last = 0;
  for (const m of text.matchAll(/\$(\d+)/g)) {
    strings.push(text.slice(last, m.index));
    values.push(params[Number(m[1]) - 1]);
    last = m.index + m[0].length;
  }
  strings.push(text.slice(last));
  // raw not enumerable: Bun tells a real template object that way
  return [Object.defineProperty(strings, 'raw', { value: [...strings] }), values];
}

// Call a tagged-template client (Postgres.js, Bun) with $n text and params.
export function call(sql, text, params) {
  const [strings, values] = template(text, params || []);
  return sql(strings, ...values);
}

// The adapter operations of the clients whose API is the tagged template,
// sql.begin(fn) and sql.reserve() / release(): Postgres.js and Bun. Their
// default (prepare: true) prepares each query as a named statement.
export function templateAdapter(sql) {
  const rowsOf = (s) => async (text, params) => [...await call(s, text, params)];
  return {
    query: rowsOf(sql),
    prepared: (name, text, params) => rowsOf(sql)(text, params),
    transaction: (fn) => sql.begin((tx) => fn({ query: rowsOf(tx) })),
    reserved: async (fn) => {
      const conn = await sql.reserve();
      try {
        return await fn({ query: rowsOf(conn) });
      } finally {
        conn.release();
      }
    },
  };
}

class Rollback extends Error {}

export async function run(lib, adapter) {
  const failures = [];
  const counts = {
    queries: 0, commits: 0, rollbacks: 0, prepared: 0,
    errorsRecovered: 0, cursorRows: 0, cursorBatches: 0,
  };
  const pids = new Set();
  const started = Date.now();

  function check(ok, what) {
    if (!ok) failures.push(what);
    return ok;
  }
  function same(actual, expected, what) {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    return check(a === e, `${what}: got ${a}, expected ${e}`);
  }
  // A query that must fail with division_by_zero.
  async function divideByZero(q, what) {
    try {
      await q('SELECT 1 / $1::int AS x', [0]);
    } catch (err) {
      same(adapter.sqlstate(err), '22012', `${what}: SQLSTATE`);
      return;
    }
    check(false, `${what}: SELECT 1 / 0 did not fail`);
  }
  const count = (q, c, seq) => q(
    'SELECT count(*)::int AS n FROM node_rows WHERE lib = $1 AND client = $2 AND ($3::int IS NULL OR seq = $3)',
    [lib, c, seq]);

  async function client(c) {
    // 1. parameterised queries
    for (let k = 0; k < 5; k++) {
      const v = c * 1000 + k;
      const rows = await adapter.query('SELECT $1::int * 2 AS d, $2::text || \':\' || $1::text AS s', [v, lib]);
      same(rows, [{ d: 2 * v, s: `${lib}:${v}` }], `client ${c} query ${k}`);
      counts.queries++;
    }

    // 2. a committed transaction
    await adapter.transaction(async (tx) => {
      for (let seq = 1; seq <= 3; seq++) {
        await tx.query('INSERT INTO node_rows (lib, client, seq) VALUES ($1, $2, $3)', [lib, c, seq]);
      }
      same(await count(tx.query, c, null), [{ n: 3 }], `client ${c}: its 3 rows inside its transaction`);
    });
    counts.commits++;

    // 3. a rolled-back transaction
    try {
      await adapter.transaction(async (tx) => {
        await tx.query('INSERT INTO node_rows (lib, client, seq) VALUES ($1, $2, -1)', [lib, c]);
        same(await count(tx.query, c, null), [{ n: 4 }], `client ${c}: 4 rows inside the transaction to roll back`);
        throw new Rollback('roll back');
      });
      check(false, `client ${c}: the transaction to roll back committed`);
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
    }
    same(await count(adapter.query, c, null), [{ n: 3 }], `client ${c}: 3 rows after the rollback`);
    counts.rollbacks++;

    // 4. a prepared statement, run many times
    for (let k = 0; k < PREPARED_RUNS; k++) {
      const v = c + k;
      const rows = await adapter.prepared('pgbun_square',
        'SELECT $1::int * $1::int AS sq, pg_backend_pid() AS pid', [v]);
      if (same(rows.map((r) => r.sq), [v * v], `client ${c} prepared run ${k}`)) pids.add(rows[0].pid);
      counts.prepared++;
    }

    // 5. errors the client recovers from
    await adapter.reserved(async (conn) => {
      await divideByZero(conn.query, `client ${c}, reserved connection`);
      same(await conn.query('SELECT $1::int + 1 AS y', [c]), [{ y: c + 1 }],
        `client ${c}: the connection answers after the error`);
    });
    try {
      await adapter.transaction(async (tx) => {
        await tx.query('INSERT INTO node_rows (lib, client, seq) VALUES ($1, $2, -2)', [lib, c]);
        await divideByZero(tx.query, `client ${c}, in a transaction`);
        await tx.query('SELECT 1');
      });
      check(false, `client ${c}: the failed transaction committed`);
    } catch (err) {
      // 25P02 from the next statement, or (Postgres.js) the first error again
      check(['25P02', '22012'].includes(adapter.sqlstate(err)),
        `client ${c}: the failed transaction ends with SQLSTATE ${adapter.sqlstate(err)}: ${err.message}`);
    }
    same(await count(adapter.query, c, -2), [{ n: 0 }], `client ${c}: the failed transaction's row is gone`);
    counts.errorsRecovered += 2;

    // 6. a cursor
    if (c < CURSOR_CLIENTS) {
      let n = 0;
      let sum = 0;
      for await (const batch of adapter.cursor(
        'SELECT i, md5(i::text) AS m FROM generate_series(1, $1::int) i ORDER BY i', [CURSOR_ROWS], CURSOR_BATCH)) {
        check(batch.length > 0 && batch.length <= CURSOR_BATCH, `client ${c}: cursor batch of ${batch.length} rows`);
        for (const row of batch) {
          n++;
          sum += row.i;
          if (row.i !== n) {
            check(false, `client ${c}: cursor row ${n} is ${JSON.stringify(row)}`);
            break;
          }
        }
        counts.cursorBatches++;
      }
      same([n, sum], [CURSOR_ROWS, CURSOR_ROWS * (CURSOR_ROWS + 1) / 2], `client ${c}: cursor rows and their sum`);
      counts.cursorRows += n;
    }
  }

  const timer = setTimeout(() => {
    console.error(`${lib} workload: not finished after ${TIMEOUT}s (a hang through pgbun?)`);
    console.error(JSON.stringify({ lib, ...counts }));
    process.exit(2);
  }, TIMEOUT * 1000);

  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  results.forEach((r, c) => {
    if (r.status === 'rejected') {
      const e = r.reason;
      const where = e && e.stack ? e.stack.split('\n').slice(1, 4).map((l) => l.trim()).join(' < ') : '';
      check(false, `client ${c} failed: ${e && e.message || e}`
        + (e && adapter.sqlstate(e) ? ` (SQLSTATE ${adapter.sqlstate(e)})` : '') + (where ? ` at ${where}` : ''));
    }
  });

  let committed = null;
  try {
    const rows = await adapter.query(
      'SELECT count(*)::int AS n, count(*) FILTER (WHERE seq < 0)::int AS gone FROM node_rows WHERE lib = $1', [lib]);
    committed = rows[0].n;
    same(rows, [{ n: 3 * CLIENTS, gone: 0 }], 'committed rows at the end');
  } catch (err) {
    check(false, `counting the rows at the end: ${err.message}`);
  }
  try {
    await adapter.end();
  } catch (err) {
    check(false, `closing the pool: ${err.message}`);
  }
  clearTimeout(timer);

  const summary = {
    lib, clients: CLIENTS, connections: CONNECTIONS, ...counts, committed,
    backendPids: pids.size, failures: failures.length, ms: Date.now() - started,
  };
  console.log(JSON.stringify(summary));
  if (failures.length) {
    console.error(`${lib} workload: ${failures.length} mismatch(es):`);
    for (const f of failures.slice(0, 20)) console.error(`  ${f}`);
    if (failures.length > 20) console.error(`  ... and ${failures.length - 20} more`);
    process.exit(1);
  }
  process.exit(0);
}

// common.mjs - the workload that t/360_orm_matrix.pl runs with each ORM,
// straight against the server and through pgbun. Each ORM's script
// (prisma.mjs, drizzle.mjs, typeorm.mjs, knex.mjs, sequelize.mjs) does the
// steps below with its own API and calls run(); the bookkeeping, the checks
// and the summary are here, once.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD and
// PGDATABASE. ORM_CLIENTS logical clients (default 40) run at once over the
// ORM's pool of ORM_CONNECTIONS connections (default 40), each ORM_ROUNDS
// times (default 3) the steps below. The ORM owns two
// tables, <orm>_author (id, name unique, born) and <orm>_book (id, author_id
// references the author, title, pages), which its setup() drops and creates
// (the ORM's own schema API where it has one). Each logical client c, in
// round r, with k = c + r * ORM_CLIENTS:
//   1. creates author a<k> (born 1900 + k) and reads it back by name;
//   2. updates born to 2000 + k (1 row) and reads it back;
//   3. commits a transaction inserting books c<k>-1 and c<k>-2 (pages 10k+1,
//      10k+2), seeing both inside it;
//   4. rolls back a transaction that inserted book c<k>-x and set born to 0
//      (seen inside it); afterwards neither is there;
//   5. inserts a second author a<k>: a unique violation (SQLSTATE 23505 and
//      the ORM's own error type), and the pool keeps working; then the same
//      inside a transaction after inserting book c<k>-y: the transaction
//      rolls back, the book is gone; then once more in a savepoint (the
//      ORM's nested transaction) of a transaction that goes on after it on
//      the same connection, sees its data and commits;
//   6. joins books to authors for a<k>: exactly [a<k>, c<k>-1, 10k+1],
//      [a<k>, c<k>-2, 10k+2];
//   7. deletes book c<k>-2 (1 row); one book is left;
//   8. reads the session setting its ORM configured (a startup parameter or
//      a SET when the ORM connects): the client's own, whichever server
//      connection pgbun gave it.
// Afterwards the script checks the totals and prints one line of JSON: the
// counts, `failures`, `sessionMismatches` (step 8's, counted apart so that
// the caller can tell them from the rest) and `state` (each author's name,
// born and book titles and pages, sorted: the same straight to the server
// and through pgbun). Any mismatch goes to stderr; the exit status is 1 if
// there were failures (step 8's are not); a run longer than ORM_TIMEOUT
// seconds (default 120) stops with status 2.
//
// An ORM script's adapter (all async; c is the client number):
//   setup()                      drop and create the two tables
//   createAuthor(name, born)     insert; returns { id, name, born }
//   authorByName(name)           { id, name, born } or null
//   setBorn(name, born)          update; returns the number of rows changed
//   transaction(fn)              runs fn(tx) in one transaction, commits;
//                                rolls back and rethrows if fn throws. tx has
//                                addBook(authorId, title, pages), setBorn,
//                                books(authorId), createAuthor and
//                                nested(fn): fn(tx) in a savepoint, rolled
//                                back to and rethrown if fn throws
//   books(authorId)              [{ title, pages }] ordered by title
//   uniqueError(err)             true if err is the ORM's own error type for
//                                a unique violation
//   joined(name)                 [{ name, title, pages }] of a join, by title
//   deleteBook(title)            returns the number of rows deleted
//   totals()                     { authors, books, pages, born } of the tables
//   state()                      [{ name, born, books: [{ title, pages }] }]
//   session()                    the value of the ORM's session setting
//   sessionWant                  what it must be
//   end()                        closes the pool

import { createHash } from 'node:crypto';

export const CLIENTS = Number(process.env.ORM_CLIENTS || 40);
export const CONNECTIONS = Number(process.env.ORM_CONNECTIONS || 40);
export const ROUNDS = Number(process.env.ORM_ROUNDS || 3);
const TIMEOUT = Number(process.env.ORM_TIMEOUT || 120);

export const settings = {
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 6432),
  user: process.env.PGUSER,
  password: process.env.PGPASSWORD,
  database: process.env.PGDATABASE || process.env.PGUSER,
};

export const url = `postgresql://${encodeURIComponent(settings.user)}:${encodeURIComponent(settings.password)}`
  + `@${settings.host}:${settings.port}/${encodeURIComponent(settings.database)}`;

class Rollback extends Error {}

// The SQLSTATE a server error carries, wherever the ORM put the driver's error.
export function sqlstate(err) {
  const seen = new Set();
  const todo = [err];
  while (todo.length) {
    const e = todo.shift();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && !/^P\d{4}$/.test(e.code)) return e.code;
    if (typeof e.originalCode === 'string') return e.originalCode;
    todo.push(e.cause, e.parent, e.original, e.driverError, e.meta && e.meta.driverAdapterError);
  }
  return undefined;
}

export async function run(orm, adapter) {
  const failures = [];
  const sessionMismatches = [];
  const counts = {
    creates: 0, reads: 0, updates: 0, commits: 0, rollbacks: 0,
    uniqueViolations: 0, savepoints: 0, joins: 0, deletes: 0, sessionChecks: 0,
  };
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
  // fn must fail with a unique violation, as a server error and the ORM's type.
  async function mustViolate(fn, what) {
    try {
      await fn();
    } catch (err) {
      same(sqlstate(err), '23505', `${what}: SQLSTATE`);
      check(adapter.uniqueError(err), `${what}: not ${orm}'s unique-violation error: ${err && err.constructor && err.constructor.name}: ${err && err.message}`);
      return err;
    }
    check(false, `${what}: the duplicate insert did not fail`);
    return null;
  }
  const pick = (a) => a && { name: a.name, born: a.born };

  async function client(c) {
    for (let r = 0; r < ROUNDS; r++) await round(c + r * CLIENTS);
  }

  // one round of one client: the steps of the header for k (c below)
  async function round(c) {
    const name = `a${c}`;
    // 1. create and read
    const created = await adapter.createAuthor(name, 1900 + c);
    same(pick(created), { name, born: 1900 + c }, `client ${c}: created author`);
    check(Number.isInteger(created.id) && created.id > 0, `client ${c}: author id ${created.id}`);
    counts.creates++;
    const id = created.id;
    same(await adapter.authorByName(name), { id, name, born: 1900 + c }, `client ${c}: author read back`);
    counts.reads++;

    // 2. update
    same(await adapter.setBorn(name, 2000 + c), 1, `client ${c}: rows updated`);
    same(pick(await adapter.authorByName(name)), { name, born: 2000 + c }, `client ${c}: author after the update`);
    counts.updates++;

    // 3. a committed transaction
    const two = [{ title: `c${c}-1`, pages: 10 * c + 1 }, { title: `c${c}-2`, pages: 10 * c + 2 }];
    await adapter.transaction(async (tx) => {
      for (const b of two) await tx.addBook(id, b.title, b.pages);
      same(await tx.books(id), two, `client ${c}: its books inside the committed transaction`);
    });
    same(await adapter.books(id), two, `client ${c}: its books after the commit`);
    counts.commits++;

    // 4. a rolled-back transaction
    try {
      await adapter.transaction(async (tx) => {
        await tx.addBook(id, `c${c}-x`, 1);
        same(await tx.setBorn(name, 0), 1, `client ${c}: rows updated in the transaction to roll back`);
        same((await tx.books(id)).length, 3, `client ${c}: 3 books inside the transaction to roll back`);
        throw new Rollback('roll back');
      });
      check(false, `client ${c}: the transaction to roll back committed`);
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
    }
    same(await adapter.books(id), two, `client ${c}: its books after the rollback`);
    same(pick(await adapter.authorByName(name)), { name, born: 2000 + c }, `client ${c}: author after the rollback`);
    counts.rollbacks++;

    // 5. unique violations, recovered from
    await mustViolate(() => adapter.createAuthor(name, 1), `client ${c}: duplicate author`);
    same(pick(await adapter.authorByName(name)), { name, born: 2000 + c }, `client ${c}: author after the duplicate`);
    counts.uniqueViolations++;
    let inside = null;
    try {
      await adapter.transaction(async (tx) => {
        await tx.addBook(id, `c${c}-y`, 2);
        inside = await mustViolate(() => tx.createAuthor(name, 2), `client ${c}: duplicate author in a transaction`);
        throw inside || new Error('no unique violation');
      });
      check(false, `client ${c}: the transaction with the duplicate committed`);
    } catch (err) {
      check(inside !== null && (err === inside || sqlstate(err) === '23505' || sqlstate(err) === '25P02'),
        `client ${c}: the transaction with the duplicate ended with ${sqlstate(err)}: ${err && err.message}`);
    }
    same(await adapter.books(id), two, `client ${c}: its books after the failed transaction`);
    counts.uniqueViolations++;
    await adapter.transaction(async (tx) => {
      let caught = null;
      try {
        await tx.nested((sp) => sp.createAuthor(name, 3));
      } catch (err) {
        caught = err;
      }
      check(caught !== null && sqlstate(caught) === '23505',
        `client ${c}: the duplicate in a savepoint ended with ${caught && sqlstate(caught)}: ${caught && caught.message}`);
      same(await tx.setBorn(name, 2000 + c), 1, `client ${c}: rows updated after the savepoint's rollback`);
      same(await tx.books(id), two, `client ${c}: its books after the savepoint's rollback`);
    });
    counts.savepoints++;

    // 6. a join
    same(await adapter.joined(name), two.map((b) => ({ name, ...b })), `client ${c}: the join`);
    counts.joins++;

    // 7. delete
    same(await adapter.deleteBook(`c${c}-2`), 1, `client ${c}: rows deleted`);
    same(await adapter.books(id), [two[0]], `client ${c}: its books after the delete`);
    counts.deletes++;

    // 8. the ORM's session setting
    const setting = await adapter.session();
    if (setting !== adapter.sessionWant) {
      sessionMismatches.push(`client ${c}: the session setting: got ${JSON.stringify(setting)}, expected ${JSON.stringify(adapter.sessionWant)}`);
    }
    counts.sessionChecks++;
  }

  const timer = setTimeout(() => {
    console.error(`${orm} workload: not finished after ${TIMEOUT}s (a hang through pgbun?)`);
    console.error(JSON.stringify({ orm, ...counts }));
    for (const f of failures.slice(0, 20)) console.error(`  ${f}`);
    process.exit(2);
  }, TIMEOUT * 1000);

  let state = null;
  let stateHash = null;
  try {
    await adapter.setup();
    const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    results.forEach((r, c) => {
      if (r.status === 'rejected') {
        const e = r.reason;
        const where = e && e.stack ? e.stack.split('\n').slice(1, 4).map((l) => l.trim()).join(' < ') : '';
        check(false, `client ${c} failed: ${e && e.message || e}`
          + (sqlstate(e) ? ` (SQLSTATE ${sqlstate(e)})` : '') + (where ? ` at ${where}` : ''));
      }
    });

    const n = CLIENTS * ROUNDS;
    const sum = n * (n - 1) / 2;
    same(await adapter.totals(), { authors: n, books: n, pages: 10 * sum + n, born: 2000 * n + sum }, 'totals at the end');
    state = await adapter.state();
    same(state, Array.from({ length: n }, (_, c) => ({
      name: `a${c}`, born: 2000 + c, books: [{ title: `c${c}-1`, pages: 10 * c + 1 }],
    })).sort((x, y) => (x.name < y.name ? -1 : 1)), 'every author and book at the end');
    stateHash = createHash('sha256').update(JSON.stringify(state)).digest('hex');
  } catch (err) {
    check(false, `${orm}: ${err && err.stack || err}`);
  }
  try {
    await adapter.end();
  } catch (err) {
    check(false, `closing the pool: ${err.message}`);
  }
  clearTimeout(timer);

  console.log(JSON.stringify({
    orm, clients: CLIENTS, connections: CONNECTIONS, rounds: ROUNDS, ...counts, state: stateHash,
    failures: failures.length, sessionMismatches: sessionMismatches.length, ms: Date.now() - started,
  }));
  if (sessionMismatches.length) {
    console.error(`${orm} workload: ${sessionMismatches.length} session setting mismatch(es), e.g.`);
    for (const f of sessionMismatches.slice(0, 3)) console.error(`  ${f}`);
  }
  if (failures.length) {
    console.error(`${orm} workload: ${failures.length} mismatch(es):`);
    for (const f of failures.slice(0, 20)) console.error(`  ${f}`);
    if (failures.length > 20) console.error(`  ... and ${failures.length - 20} more`);
    process.exit(1);
  }
  process.exit(0);
}

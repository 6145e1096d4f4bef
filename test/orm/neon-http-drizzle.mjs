// neon-http-drizzle.mjs - Drizzle ORM's neon-http adapter (drizzle-orm/neon-http
// over neon() from @neondatabase/serverless) against pgbun's POST /sql, run
// by t/370_http_sql.pl with NEON_HTTP_URL and NEON_HTTP_ENDPOINT as for
// neon-http.mjs. Owns the table drizzle_http_item, which it creates: insert
// with returning, select with a parameter, update, a batch (one transaction
// through the endpoint), a unique violation as a NeonDbError, delete, and
// the final state printed as the last line of stdout (JSON). Exit status 1
// if a check failed (each printed to stderr).
import { neon, neonConfig } from '@neondatabase/serverless';
import { drizzle } from 'drizzle-orm/neon-http';
import { pgTable, integer, text, jsonb } from 'drizzle-orm/pg-core';
import { eq, asc, sql, count } from 'drizzle-orm';
import { isDeepStrictEqual } from 'node:util';

neonConfig.fetchEndpoint = process.env.NEON_HTTP_ENDPOINT;
const db = drizzle(neon(process.env.NEON_HTTP_URL));

let checks = 0;
let failures = 0;
function same(what, got, want) {
  checks++;
  if (!isDeepStrictEqual(got, want)) {
    failures++;
    console.error(`FAIL ${what}: ${JSON.stringify({ got, want })}`);
  }
}

const item = pgTable('drizzle_http_item', {
  id: integer('id').primaryKey(),
  name: text('name').notNull().unique(),
  qty: integer('qty').notNull(),
  tags: jsonb('tags'),
});

await db.execute(sql`DROP TABLE IF EXISTS drizzle_http_item`);
await db.execute(sql`CREATE TABLE drizzle_http_item (id int PRIMARY KEY, name text NOT NULL UNIQUE, qty int NOT NULL, tags jsonb)`);

same('insert returning',
  await db.insert(item).values([
    { id: 1, name: 'apple', qty: 3, tags: ['red'] },
    { id: 2, name: 'pear', qty: 5, tags: null },
  ]).returning({ id: item.id, name: item.name }),
  [{ id: 1, name: 'apple' }, { id: 2, name: 'pear' }]);
same('select with a parameter',
  await db.select().from(item).where(eq(item.name, 'apple')),
  [{ id: 1, name: 'apple', qty: 3, tags: ['red'] }]);
same('update returning',
  await db.update(item).set({ qty: sql`${item.qty} + ${10}` }).where(eq(item.id, 2)).returning({ qty: item.qty }),
  [{ qty: 15 }]);
{
  const [ins, upd, rows] = await db.batch([
    db.insert(item).values({ id: 3, name: 'plum', qty: 1, tags: { s: 'x' } }),
    db.update(item).set({ qty: 0 }).where(eq(item.name, 'apple')),
    db.select({ name: item.name, qty: item.qty }).from(item).orderBy(asc(item.id)),
  ]);
  same('batch: insert and update row counts', [ins.rowCount, upd.rowCount], [1, 1]);
  same('batch: select inside it', rows, [{ name: 'apple', qty: 0 }, { name: 'pear', qty: 15 }, { name: 'plum', qty: 1 }]);
}
{
  let code = null;
  try {
    await db.batch([
      db.insert(item).values({ id: 4, name: 'fig', qty: 9 }),
      db.insert(item).values({ id: 5, name: 'pear', qty: 9 }),
    ]);
  } catch (err) {
    code = err.code ?? err.cause?.code ?? String(err);
  }
  same('batch with a unique violation fails with 23505', code, '23505');
}
same('the failed batch left nothing', await db.select({ n: count() }).from(item), [{ n: 3 }]);
same('delete returning', await db.delete(item).where(eq(item.id, 3)).returning({ id: item.id }), [{ id: 3 }]);

const state = await db.select().from(item).orderBy(asc(item.id));
console.log(JSON.stringify({ checks, failures, state }));
process.exit(failures ? 1 : 0);

// drizzle.mjs - common.mjs with Drizzle ORM over node-postgres (a pg.Pool):
// tables declared with pgTable, the DDL through db.execute(sql``) (the schema
// tool, drizzle-kit, is not needed for this), insert/update/delete with
// returning, db.transaction, an innerJoin, a prepared query (.prepare()).
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { pgTable, serial, text, integer } from 'drizzle-orm/pg-core';
import { eq, asc, sql } from 'drizzle-orm';
import { run, settings, CONNECTIONS } from './common.mjs';

// options: a setting in the startup packet's options parameter
const pool = new pg.Pool({
  ...settings, max: CONNECTIONS, connectionTimeoutMillis: 60000, options: '-c statement_timeout=31s',
});
pool.on('error', (err) => console.error(`drizzle pool: idle client error: ${err.message}`));
const db = drizzle(pool);

const author = pgTable('drizzle_author', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  born: integer('born').notNull(),
});
const book = pgTable('drizzle_book', {
  id: serial('id').primaryKey(),
  authorId: integer('author_id').notNull().references(() => author.id),
  title: text('title').notNull(),
  pages: integer('pages').notNull(),
});

const authorByName = db.select().from(author).where(eq(author.name, sql.placeholder('name')))
  .prepare('drizzle_author_by_name');

const ops = (d) => ({
  nested: (fn) => d.transaction((sp) => fn(ops(sp))),
  async createAuthor(name, born) {
    const [row] = await d.insert(author).values({ name, born }).returning();
    return row;
  },
  async setBorn(name, born) {
    return (await d.update(author).set({ born }).where(eq(author.name, name)).returning({ id: author.id })).length;
  },
  async addBook(authorId, title, pages) {
    await d.insert(book).values({ authorId, title, pages });
  },
  async books(authorId) {
    return d.select({ title: book.title, pages: book.pages }).from(book)
      .where(eq(book.authorId, authorId)).orderBy(asc(book.title));
  },
});

await run('drizzle', {
  async setup() {
    await db.execute(sql`DROP TABLE IF EXISTS drizzle_book, drizzle_author`);
    await db.execute(sql`CREATE TABLE drizzle_author (id serial PRIMARY KEY, name text NOT NULL UNIQUE, born integer NOT NULL)`);
    await db.execute(sql`CREATE TABLE drizzle_book (id serial PRIMARY KEY,
      author_id integer NOT NULL REFERENCES drizzle_author (id), title text NOT NULL, pages integer NOT NULL)`);
  },
  ...ops(db),
  // a prepared query: node-postgres's named statement, through pgbun's
  async authorByName(name) {
    const rows = await authorByName.execute({ name });
    return rows[0] || null;
  },
  // fn's exception makes drizzle roll back and rethrow it
  transaction: (fn) => db.transaction((tx) => fn(ops(tx))),
  uniqueError: (err) => err instanceof Error && err.constructor.name === 'DrizzleQueryError'
    && err.cause && err.cause.code === '23505',
  async joined(name) {
    return db.select({ name: author.name, title: book.title, pages: book.pages })
      .from(book).innerJoin(author, eq(book.authorId, author.id))
      .where(eq(author.name, name)).orderBy(asc(book.title));
  },
  async deleteBook(title) {
    return (await db.delete(book).where(eq(book.title, title)).returning({ id: book.id })).length;
  },
  async totals() {
    const [a] = await db.select({ authors: sql`count(*)::int`.mapWith(Number), born: sql`sum(${author.born})::int`.mapWith(Number) }).from(author);
    const [b] = await db.select({ books: sql`count(*)::int`.mapWith(Number), pages: sql`sum(${book.pages})::int`.mapWith(Number) }).from(book);
    return { authors: a.authors, books: b.books, pages: b.pages, born: a.born };
  },
  async state() {
    const authors = await db.select().from(author).orderBy(asc(author.name));
    const books = await db.select().from(book).orderBy(asc(book.title));
    return authors.map((a) => ({
      name: a.name, born: a.born,
      books: books.filter((b) => b.authorId === a.id).map((b) => ({ title: b.title, pages: b.pages })),
    }));
  },
  async session() {
    return (await db.execute(sql`SELECT current_setting('statement_timeout') AS v`)).rows[0].v;
  },
  sessionWant: '31s',
  end: () => pool.end(),
});

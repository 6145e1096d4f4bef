// knex.mjs - common.mjs with Knex (query builder over node-postgres): the
// schema through knex.schema, CRUD with bound parameters, knex.transaction,
// a join through the builder.
import knexFactory from 'knex';
import { run, settings, CONNECTIONS } from './common.mjs';

const knex = knexFactory({
  client: 'pg',
  connection: settings,
  // a SET search_path on every new connection: the tables go to schema knex_s
  searchPath: ['knex_s', 'public'],
  pool: { min: 0, max: CONNECTIONS },
  acquireConnectionTimeout: 60000,
});

const A = 'knex_author';
const B = 'knex_book';

const ops = (q) => ({
  nested: (fn) => q.transaction((sp) => fn(ops(sp))),
  async createAuthor(name, born) {
    const [row] = await q(A).insert({ name, born }).returning(['id', 'name', 'born']);
    return row;
  },
  async setBorn(name, born) {
    return q(A).where({ name }).update({ born });
  },
  async addBook(authorId, title, pages) {
    await q(B).insert({ author_id: authorId, title, pages });
  },
  async books(authorId) {
    return q(B).select('title', 'pages').where({ author_id: authorId }).orderBy('title');
  },
});

await run('knex', {
  async setup() {
    await knex.raw('CREATE SCHEMA IF NOT EXISTS knex_s');
    await knex.schema.dropTableIfExists(B);
    await knex.schema.dropTableIfExists(A);
    await knex.schema.createTable(A, (t) => {
      t.increments('id');
      t.text('name').notNullable().unique();
      t.integer('born').notNullable();
    });
    await knex.schema.createTable(B, (t) => {
      t.increments('id');
      t.integer('author_id').notNullable().references('id').inTable(A);
      t.text('title').notNullable();
      t.integer('pages').notNullable();
    });
  },
  ...ops(knex),
  async authorByName(name) {
    return (await knex(A).select('id', 'name', 'born').where({ name }).first()) || null;
  },
  transaction: (fn) => knex.transaction((trx) => fn(ops(trx))),
  uniqueError: (err) => err instanceof Error && err.code === '23505' && /duplicate key/.test(err.message),
  async joined(name) {
    return knex(B).join(A, `${A}.id`, `${B}.author_id`)
      .select(`${A}.name`, `${B}.title`, `${B}.pages`)
      .where(`${A}.name`, name).orderBy(`${B}.title`);
  },
  async deleteBook(title) {
    return knex(B).where({ title }).del();
  },
  async totals() {
    const [a] = await knex(A).select(knex.raw('count(*)::int AS authors, sum(born)::int AS born'));
    const [b] = await knex(B).select(knex.raw('count(*)::int AS books, sum(pages)::int AS pages'));
    return { authors: a.authors, books: b.books, pages: b.pages, born: a.born };
  },
  async state() {
    const authors = await knex(A).select('id', 'name', 'born').orderBy('name');
    const books = await knex(B).select('author_id', 'title', 'pages').orderBy('title');
    return authors.map((a) => ({
      name: a.name, born: a.born,
      books: books.filter((b) => b.author_id === a.id).map((b) => ({ title: b.title, pages: b.pages })),
    }));
  },
  async session() {
    return (await knex.raw("SELECT current_setting('search_path') AS v")).rows[0].v;
  },
  sessionWant: 'knex_s, public',
  end: () => knex.destroy(),
});

// prisma.mjs - common.mjs with Prisma ORM 7: the Rust-free client generated
// from prisma/schema.prisma (`npm run prisma-generate`, into generated/prisma)
// over @prisma/adapter-pg (a node-postgres pool); the tables made in plain
// SQL ($executeRawUnsafe), create/findUnique/updateMany/deleteMany, interactive
// $transaction, a relation filter with include (a join); named statements.
import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import { run, settings, CONNECTIONS } from './common.mjs';

let generated;
try {
  generated = await import('./generated/prisma/client.js');
} catch (err) {
  console.error(`prisma: no generated client (${err.message}); run \`npm run prisma-generate\` in test/orm first`);
  process.exit(1);
}
const { PrismaClient, Prisma } = generated;

// statementNameGenerator: the adapter sends every query as a named statement
// (node-postgres prepares it once per connection), which pgbun must carry
// across server connections in transaction mode.
const prisma = new PrismaClient({
  adapter: new PrismaPg({
    ...settings, max: CONNECTIONS, connectionTimeoutMillis: 60000, application_name: 'pgbun-orm-prisma',
  }, {
    statementNameGenerator: (query) => `prisma_${createHash('sha256').update(query.sql).digest('hex').slice(0, 24)}`,
  }),
});

const ops = (p) => ({
  // Prisma has no nested transactions: plain SQL savepoints in the interactive one
  async nested(fn) {
    await p.$executeRawUnsafe('SAVEPOINT pgbun_sp');
    try {
      const result = await fn(ops(p));
      await p.$executeRawUnsafe('RELEASE SAVEPOINT pgbun_sp');
      return result;
    } catch (err) {
      await p.$executeRawUnsafe('ROLLBACK TO SAVEPOINT pgbun_sp');
      throw err;
    }
  },
  async createAuthor(name, born) {
    return p.author.create({ data: { name, born }, select: { id: true, name: true, born: true } });
  },
  async setBorn(name, born) {
    return (await p.author.updateMany({ where: { name }, data: { born } })).count;
  },
  async addBook(authorId, title, pages) {
    await p.book.create({ data: { authorId, title, pages } });
  },
  async books(authorId) {
    return p.book.findMany({ select: { title: true, pages: true }, where: { authorId }, orderBy: { title: 'asc' } });
  },
});

await run('prisma', {
  async setup() {
    await prisma.$executeRawUnsafe('DROP TABLE IF EXISTS prisma_book, prisma_author');
    await prisma.$executeRawUnsafe('CREATE TABLE prisma_author (id serial PRIMARY KEY, name text NOT NULL UNIQUE, born integer NOT NULL)');
    await prisma.$executeRawUnsafe(`CREATE TABLE prisma_book (id serial PRIMARY KEY,
      author_id integer NOT NULL REFERENCES prisma_author (id), title text NOT NULL, pages integer NOT NULL)`);
  },
  ...ops(prisma),
  async authorByName(name) {
    return prisma.author.findUnique({ where: { name }, select: { id: true, name: true, born: true } });
  },
  // generous limits: 40 clients share 4 server connections through pgbun
  transaction: (fn) => prisma.$transaction((tx) => fn(ops(tx)), { maxWait: 60000, timeout: 60000 }),
  uniqueError: (err) => err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002',
  async joined(name) {
    const rows = await prisma.book.findMany({
      where: { author: { name } }, include: { author: true }, orderBy: { title: 'asc' },
    });
    return rows.map((b) => ({ name: b.author.name, title: b.title, pages: b.pages }));
  },
  async deleteBook(title) {
    return (await prisma.book.deleteMany({ where: { title } })).count;
  },
  async totals() {
    const a = await prisma.author.aggregate({ _count: { _all: true }, _sum: { born: true } });
    const b = await prisma.book.aggregate({ _count: { _all: true }, _sum: { pages: true } });
    return { authors: a._count._all, books: b._count._all, pages: b._sum.pages, born: a._sum.born };
  },
  async state() {
    const authors = await prisma.author.findMany({
      include: { books: { orderBy: { title: 'asc' } } }, orderBy: { name: 'asc' },
    });
    return authors.map((a) => ({
      name: a.name, born: a.born, books: a.books.map((b) => ({ title: b.title, pages: b.pages })),
    }));
  },
  // application_name, a startup parameter
  async session() {
    return (await prisma.$queryRaw`SELECT current_setting('application_name') AS v`)[0].v;
  },
  sessionWant: 'pgbun-orm-prisma',
  end: () => prisma.$disconnect(),
});

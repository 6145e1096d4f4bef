// typeorm.mjs - common.mjs with TypeORM (its postgres driver, node-postgres
// underneath): entities as EntitySchema (no decorators, so no TypeScript),
// the tables made by DataSource.synchronize(), repositories for CRUD,
// DataSource.transaction with its EntityManager, a QueryBuilder innerJoin.
import 'reflect-metadata';
import { DataSource, EntitySchema, QueryFailedError } from 'typeorm';
import { run, settings, CONNECTIONS } from './common.mjs';

const Author = new EntitySchema({
  name: 'Author',
  tableName: 'typeorm_author',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    name: { type: 'text', unique: true },
    born: { type: 'int' },
  },
  relations: { books: { type: 'one-to-many', target: 'Book', inverseSide: 'author' } },
});
const Book = new EntitySchema({
  name: 'Book',
  tableName: 'typeorm_book',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    authorId: { type: 'int', name: 'author_id' },
    title: { type: 'text' },
    pages: { type: 'int' },
  },
  relations: {
    author: { type: 'many-to-one', target: 'Author', joinColumn: { name: 'author_id' }, inverseSide: 'books' },
  },
});

const ds = new DataSource({
  type: 'postgres',
  ...settings,
  username: settings.user,
  applicationName: 'pgbun-orm-typeorm',
  entities: [Author, Book],
  synchronize: false,
  logging: false,
  extra: { max: CONNECTIONS, connectionTimeoutMillis: 60000 },
});
await ds.initialize();

const ops = (m) => ({
  // inside a transaction: SAVEPOINT typeorm_1
  nested: (fn) => m.transaction((sp) => fn(ops(sp))),
  async createAuthor(name, born) {
    const a = await m.getRepository(Author).save({ name, born });
    return { id: a.id, name: a.name, born: a.born };
  },
  async setBorn(name, born) {
    return (await m.getRepository(Author).update({ name }, { born })).affected;
  },
  async addBook(authorId, title, pages) {
    await m.getRepository(Book).insert({ authorId, title, pages });
  },
  async books(authorId) {
    return m.getRepository(Book).find({ select: { title: true, pages: true }, where: { authorId }, order: { title: 'ASC' } })
      .then((rows) => rows.map((b) => ({ title: b.title, pages: b.pages })));
  },
});

await run('typeorm', {
  async setup() {
    await ds.query('DROP TABLE IF EXISTS typeorm_book, typeorm_author');
    await ds.synchronize();
  },
  ...ops(ds.manager),
  async authorByName(name) {
    const a = await ds.getRepository(Author).findOneBy({ name });
    return a ? { id: a.id, name: a.name, born: a.born } : null;
  },
  transaction: (fn) => ds.transaction((m) => fn(ops(m))),
  uniqueError: (err) => err instanceof QueryFailedError && err.driverError && err.driverError.code === '23505',
  async joined(name) {
    const rows = await ds.getRepository(Book).createQueryBuilder('b')
      .innerJoinAndSelect('b.author', 'a')
      .where('a.name = :name', { name }).orderBy('b.title').getMany();
    return rows.map((b) => ({ name: b.author.name, title: b.title, pages: b.pages }));
  },
  async deleteBook(title) {
    return (await ds.getRepository(Book).delete({ title })).affected;
  },
  async totals() {
    const a = await ds.getRepository(Author).createQueryBuilder('a')
      .select('count(*)::int', 'authors').addSelect('sum(a.born)::int', 'born').getRawOne();
    const b = await ds.getRepository(Book).createQueryBuilder('b')
      .select('count(*)::int', 'books').addSelect('sum(b.pages)::int', 'pages').getRawOne();
    return { authors: a.authors, books: b.books, pages: b.pages, born: a.born };
  },
  async state() {
    const authors = await ds.getRepository(Author).find({ relations: { books: true }, order: { name: 'ASC' } });
    return authors.map((a) => ({
      name: a.name, born: a.born,
      books: a.books.sort((x, y) => (x.title < y.title ? -1 : 1)).map((b) => ({ title: b.title, pages: b.pages })),
    }));
  },
  // applicationName: application_name, a startup parameter
  async session() {
    return (await ds.query("SELECT current_setting('application_name') AS v"))[0].v;
  },
  sessionWant: 'pgbun-orm-typeorm',
  end: () => ds.destroy(),
});

// sequelize.mjs - common.mjs with Sequelize 6 (its postgres dialect over
// node-postgres): models with define(), the tables made by Model.sync(),
// create/findOne/update/destroy, managed sequelize.transaction(fn), a join
// through include.
import { Sequelize, DataTypes, QueryTypes, UniqueConstraintError } from 'sequelize';
import { run, settings, CONNECTIONS } from './common.mjs';

const sequelize = new Sequelize(settings.database, settings.user, settings.password, {
  host: settings.host,
  port: settings.port,
  dialect: 'postgres',
  logging: false,
  // a SET TIME ZONE on every new connection
  timezone: 'Asia/Kolkata',
  pool: { min: 0, max: CONNECTIONS, acquire: 60000 },
});

const Author = sequelize.define('Author', {
  name: { type: DataTypes.TEXT, allowNull: false, unique: true },
  born: { type: DataTypes.INTEGER, allowNull: false },
}, { tableName: 'sequelize_author', timestamps: false });
const Book = sequelize.define('Book', {
  authorId: { type: DataTypes.INTEGER, allowNull: false, field: 'author_id' },
  title: { type: DataTypes.TEXT, allowNull: false },
  pages: { type: DataTypes.INTEGER, allowNull: false },
}, { tableName: 'sequelize_book', timestamps: false });
Author.hasMany(Book, { foreignKey: 'authorId', as: 'books' });
Book.belongsTo(Author, { foreignKey: 'authorId', as: 'author' });

const ops = (transaction) => ({
  // with a parent transaction: a SAVEPOINT
  nested: (fn) => sequelize.transaction({ transaction }, (sp) => fn(ops(sp))),
  async createAuthor(name, born) {
    const a = await Author.create({ name, born }, { transaction });
    return { id: a.id, name: a.name, born: a.born };
  },
  async setBorn(name, born) {
    const [n] = await Author.update({ born }, { where: { name }, transaction });
    return n;
  },
  async addBook(authorId, title, pages) {
    await Book.create({ authorId, title, pages }, { transaction });
  },
  async books(authorId) {
    return Book.findAll({ attributes: ['title', 'pages'], where: { authorId }, order: [['title', 'ASC']], raw: true, transaction });
  },
});

await run('sequelize', {
  async setup() {
    await Book.drop();
    await Author.drop();
    await Author.sync();
    await Book.sync();
  },
  ...ops(undefined),
  async authorByName(name) {
    return Author.findOne({ attributes: ['id', 'name', 'born'], where: { name }, raw: true });
  },
  transaction: (fn) => sequelize.transaction((t) => fn(ops(t))),
  uniqueError: (err) => err instanceof UniqueConstraintError,
  async joined(name) {
    const rows = await Book.findAll({
      include: [{ model: Author, as: 'author', where: { name }, required: true }],
      order: [['title', 'ASC']],
    });
    return rows.map((b) => ({ name: b.author.name, title: b.title, pages: b.pages }));
  },
  async deleteBook(title) {
    return Book.destroy({ where: { title } });
  },
  async totals() {
    const [a] = await Author.findAll({
      attributes: [[sequelize.literal('count(*)::int'), 'authors'], [sequelize.literal('sum(born)::int'), 'born']], raw: true,
    });
    const [b] = await Book.findAll({
      attributes: [[sequelize.literal('count(*)::int'), 'books'], [sequelize.literal('sum(pages)::int'), 'pages']], raw: true,
    });
    return { authors: a.authors, books: b.books, pages: b.pages, born: a.born };
  },
  async state() {
    const authors = await Author.findAll({ include: [{ model: Book, as: 'books' }], order: [['name', 'ASC'], [{ model: Book, as: 'books' }, 'title', 'ASC']] });
    return authors.map((a) => ({
      name: a.name, born: a.born, books: a.books.map((b) => ({ title: b.title, pages: b.pages })),
    }));
  },
  async session() {
    const [row] = await sequelize.query(
      "SELECT current_setting('TimeZone') || ' ' || extract(timezone FROM now())::int AS v", { type: QueryTypes.SELECT });
    return row.v;
  },
  sessionWant: 'Asia/Kolkata 19800',
  end: () => sequelize.close(),
});

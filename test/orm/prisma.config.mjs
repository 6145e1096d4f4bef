// Prisma 7's CLI configuration (prisma generate reads it): where the schema
// is. No datasource URL: the client gets its connection from @prisma/adapter-pg.
export default { schema: 'prisma/schema.prisma' };

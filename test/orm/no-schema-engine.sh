#!/bin/sh
# no-schema-engine.sh - stands in for Prisma's schema engine binary (see
# prisma-generate.sh): prisma generate needs the file to exist, never runs it.
echo "pgbun test/orm: this is not Prisma's schema engine; prisma generate does not need one, and the tables are plain SQL" >&2
exit 1

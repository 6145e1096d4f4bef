#!/bin/sh
echo "pgbun test/orm: no Prisma schema engine here (prisma generate does not need one; the schema is plain SQL)" >&2
exit 1

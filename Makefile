# pgbun - PGXS build. `make`, `make install`, `make test` (every suite), `make demo`.
PG_CONFIG ?= pg_config

MODULE_big = pgbun
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
EXTENSION = pgbun
DATA = pgbun--1.0.sql
PGFILEDESC = "pgbun - connection pooler"

PG_CPPFLAGS = -Isrc -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -lssl -lcrypto

REGRESS = pgbun_api
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf --temp-instance=$(abs_builddir)/tmp_check_regress

TAP_TESTS = 1

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after PGXS, which resets it: TAP helper modules live in t/
PROVE_FLAGS = -I $(srcdir)/t --timer

abs_builddir ?= $(CURDIR)

# PGXS tracks no header dependencies: a changed struct must rebuild every object.
$(OBJS): $(wildcard src/*.h)

# Unit tests of the pure-C modules (no server needed).
# scram.c and params.c include postgres.h but call only frontend-safe code, so
# they link against the static libpgcommon/libpgport (pkglibdir on Debian,
# libdir on a source install) and OpenSSL; proto.c needs none of it.
UNIT_CFLAGS = -O1 -g -Wall -Wextra -Werror -DPGBUN_UNIT_TEST -Isrc -I$(shell $(PG_CONFIG) --includedir-server)
UNIT_LIBS = $(foreach lib,libpgcommon.a libpgport.a,$(firstword $(wildcard $(addsuffix /$(lib),$(shell $(PG_CONFIG) --pkglibdir) $(shell $(PG_CONFIG) --libdir))) $(lib))) -lssl -lcrypto
# track.c is pure C; sbuf.c is built as is, with stubs for the TLS calls it
# makes only on TLS connections (test_sbuf.c).
UNIT_SRCS = src/proto.c src/scram.c src/params.c src/throttle.c src/track.c src/sbuf.c
test/unit/run_unit: test/unit/*.c test/unit/unit.h $(UNIT_SRCS) $(UNIT_SRCS:.c=.h) src/compat.h src/tls.h
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/*.c $(UNIT_SRCS) $(UNIT_LIBS)

.PHONY: unit test demo demo-stop bench
unit: test/unit/run_unit
	./test/unit/run_unit

# Every suite; handles root (runs the server parts as an unprivileged user).
test:
	./test/run_all.sh

# Throwaway cluster with pgbun on 6432 and pgbench through it; left running.
demo:
	./test/demo.sh

demo-stop:
	./test/demo.sh stop

bench:
	./bench/run.sh

EXTRA_CLEAN = test/unit/run_unit tmp_check tmp_check_regress results regression.diffs regression.out log

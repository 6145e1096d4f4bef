# pgbun - PGXS build. `make`, `make install`, `make test` (every suite), `make demo`.
PG_CONFIG ?= pg_config

MODULE_big = pgbun
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
EXTENSION = pgbun
DATA = pgbun--1.0.sql pgbun--1.0--1.1.sql pgbun--1.1--1.2.sql pgbun--1.2--1.3.sql pgbun--1.3--1.4.sql pgbun--1.4--1.5.sql
PGFILEDESC = "pgbun - connection pooler"

PG_CPPFLAGS = -Isrc -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -lssl -lcrypto -lcares -pthread

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
# libdir on a source install) and OpenSSL; proto.c and startup_options.c need none of it.
UNIT_CFLAGS = -O1 -g -Wall -Wextra -Werror -DPGBUN_UNIT_TEST -Isrc -I$(shell $(PG_CONFIG) --includedir-server)
UNIT_LIBS = $(foreach lib,libpgcommon.a libpgport.a,$(firstword $(wildcard $(addsuffix /$(lib),$(shell $(PG_CONFIG) --pkglibdir) $(shell $(PG_CONFIG) --libdir))) $(lib))) -lssl -lcrypto
# track.c is pure C; sbuf.c is built as is, with stubs for the TLS calls it
# makes only on TLS connections (test_sbuf.c); of poll.c only the event
# ordering runs (test_poll.c).
UNIT_SRCS = src/proto.c src/scram.c src/params.c src/throttle.c src/kdf.c src/startup_options.c src/track.c src/sbuf.c src/http.c src/websocket.c src/http_sql.c src/json.c src/config_parse.c src/slot_index.c src/settings_check.c src/poll.c
test/unit/run_unit: test/unit/*.c test/unit/unit.h $(UNIT_SRCS) $(UNIT_SRCS:.c=.h) src/compat.h src/tls.h
	$(CC) $(UNIT_CFLAGS) -o $@ test/unit/*.c $(UNIT_SRCS) $(UNIT_LIBS) -pthread

.PHONY: unit fuzz test demo demo-stop bench
unit: test/unit/run_unit
	./test/unit/run_unit

# libFuzzer targets, one per file test/fuzz/fuzz_<name>.c (see README, Testing).
# `make fuzz` builds each with clang's fuzzer, ASan and UBSan, and runs it for
# FUZZ_SECONDS (default 30) from its seed corpus test/fuzz/corpus/<name>/;
# new inputs and crash reproducers go to tmp_fuzz/<name>/. Built like the
# unit tests (the same static libpgcommon/libpgport for scram.c and params.c).
# A new target is its file plus one fuzz_src_<name> line: the files it links.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-ignored-attributes -DPGBUN_UNIT_TEST -Isrc -Itest/fuzz \
	-I$(shell $(PG_CONFIG) --includedir-server)
fuzz_src_startup = src/proto.c src/params.c src/startup_options.c
fuzz_src_startup_options = src/startup_options.c
fuzz_src_messages = src/proto.c src/params.c
fuzz_src_scram_server = src/scram.c test/fuzz/fixed_random.c
fuzz_src_scram_client = src/scram.c test/fuzz/fixed_random.c
fuzz_src_websocket = src/websocket.c src/sbuf.c src/http.c src/proto.c src/settings_check.c src/http_sql.c src/json.c
fuzz_src_http_sql = src/http_sql.c src/websocket.c src/sbuf.c src/http.c src/proto.c src/settings_check.c src/json.c
fuzz_src_json = src/json.c
FUZZ_TARGETS = $(patsubst test/fuzz/fuzz_%.c,%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS = $(addprefix test/fuzz/bin/fuzz_,$(FUZZ_TARGETS))

fuzz: $(FUZZ_BINS)
	./test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# fuzz_src_<name> is looked up per target: prerequisites expanded a second time.
.SECONDEXPANSION:
test/fuzz/bin/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h test/fuzz/tls_stubs.h $$(fuzz_src_$$*) $(wildcard src/*.h)
	@mkdir -p test/fuzz/bin
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(fuzz_src_$*) $(UNIT_LIBS)

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

EXTRA_CLEAN = test/unit/run_unit test/fuzz/bin tmp_fuzz tmp_check tmp_check_regress results regression.diffs regression.out log

/*
 * unit.h - a minimal test framework for pgbun's pure-C modules.
 *
 * A test is a void function; CHECK() records a failed condition (with file
 * and line) without stopping the test, so one run shows every broken
 * expectation. UNIT_RUN() runs one test and counts it as passed or failed.
 * Each test file exposes one suite function that unit_main.c calls; the
 * runner's last line is "N passed, N failed" and its exit status is non-zero
 * when anything failed.
 */
#ifndef PGBUN_UNIT_H
#define PGBUN_UNIT_H

#include <stddef.h>
#include <stdint.h>

/* Bookkeeping shared by all test files (defined in unit_main.c). */
extern int	unit_passed;
extern int	unit_failed;
extern int	unit_current_failures;

void		unit_fail(const char *file, int line, const char *what);
void		unit_run(const char *name, void (*fn) (void));
int			unit_bytes_equal(const char *file, int line, const uint8_t *got,
							 size_t got_len, const uint8_t *want, size_t want_len);

/* Check a condition; on failure report it and mark the current test failed. */
#define CHECK(cond) \
	do { \
		if (!(cond)) \
			unit_fail(__FILE__, __LINE__, #cond); \
	} while (0)

/* Check a byte range against an expected one; prints both in hex on mismatch. */
#define CHECK_BYTES(got, got_len, want, want_len) \
	unit_bytes_equal(__FILE__, __LINE__, (got), (got_len), (want), (want_len))

#define UNIT_RUN(fn) unit_run(#fn, fn)

/* Suites, one per tested module. */
void		proto_suite(void);
void		scram_suite(void);
void		params_suite(void);
void		throttle_suite(void);
void		kdf_suite(void);
void		startup_options_suite(void);
void		track_suite(void);
void		sbuf_suite(void);
void		http_suite(void);
void		websocket_suite(void);
void		json_suite(void);
void		http_sql_suite(void);
void		config_suite(void);
void		slot_index_suite(void);
void		poll_suite(void);
void		settings_suite(void);

#endif							/* PGBUN_UNIT_H */

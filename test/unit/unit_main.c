/*
 * unit_main.c - the unit test runner: runs every suite, prints one line per
 * failure and per test, and ends with the summary line "N passed, N failed"
 * (tools read that line, so nothing may be printed after it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

int			unit_passed = 0;
int			unit_failed = 0;
int			unit_current_failures = 0;

/* Failures reported per test before the rest are only counted (fuzz loops). */
#define UNIT_MAX_REPORTS 20

void
unit_fail(const char *file, int line, const char *what)
{
	unit_current_failures++;
	if (unit_current_failures <= UNIT_MAX_REPORTS)
		printf("  %s:%d: check failed: %s\n", file, line, what);
	else if (unit_current_failures == UNIT_MAX_REPORTS + 1)
		printf("  (further failures in this test not shown)\n");
}

/* Run one test function and count it once, as passed or failed. */
void
unit_run(const char *name, void (*fn) (void))
{
	unit_current_failures = 0;
	fn();
	if (unit_current_failures == 0)
	{
		unit_passed++;
		printf("ok   %s\n", name);
	}
	else
	{
		unit_failed++;
		printf("FAIL %s (%d failed checks)\n", name, unit_current_failures);
	}
	fflush(stdout);
}

static void
unit_print_hex(const char *label, const uint8_t *p, size_t n)
{
	size_t		i;

	printf("    %s (%zu):", label, n);
	for (i = 0; i < n; i++)
		printf(" %02x", p[i]);
	printf("\n");
}

/* Compare two byte ranges; on mismatch record a failure and show both. */
int
unit_bytes_equal(const char *file, int line, const uint8_t *got, size_t got_len,
				 const uint8_t *want, size_t want_len)
{
	if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0))
		return 1;
	unit_fail(file, line, "bytes differ");
	if (unit_current_failures <= UNIT_MAX_REPORTS)
	{
		unit_print_hex("got ", got, got_len);
		unit_print_hex("want", want, want_len);
	}
	return 0;
}

int
main(void)
{
	proto_suite();
	scram_suite();
	params_suite();
	throttle_suite();
	kdf_suite();
	startup_options_suite();
	track_suite();
	sbuf_suite();
	http_suite();
	websocket_suite();
	json_suite();
	http_sql_suite();
	config_suite();
	slot_index_suite();
	poll_suite();
	settings_suite();

	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	fflush(stdout);
	return unit_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_params.c - unit tests for src/params.c: packed "name\0value\0" blocks
 * (params_set / params_get), the tracked-name table, and the SQL that brings
 * a server's session parameters in line with a client's
 * (params_build_set_sql). Expected SQL is written out in full by hand.
 * Output buffers carry a canary tail so a write past the stated capacity
 * fails the test even without -fsanitize=address.
 */
#include "postgres.h"

#include <stdarg.h>

#include "params.h"
#include "unit.h"

/* Start from an empty block and set each name/value pair (NULL-terminated list). */
static void
block_of(char **block, uint16 *len, ...)
{
	va_list		ap;
	const char *name;

	*block = NULL;
	*len = 0;
	va_start(ap, len);
	while ((name = va_arg(ap, const char *)) != NULL)
	{
		const char *value = va_arg(ap, const char *);

		CHECK(params_set(block, len, name, value));
	}
	va_end(ap);
}

/* Number of name/value pairs in a block, walking it independently of params.c. */
static int
count_pairs(const char *block, uint16 len)
{
	int			zeros = 0;

	for (int i = 0; i < len; i++)
		if (block[i] == '\0')
			zeros++;
	return zeros / 2;
}

#define CANARY_LEN 16
#define CANARY_BYTE 0x5A

/*
 * Run params_build_set_sql into a buffer of exactly cap usable bytes followed
 * by a canary; record a failure if anything past cap was touched. The result
 * is left in *sql (caller frees).
 */
static int
build_sql(const char *want, uint16 want_len, const char *have, uint16 have_len,
		  const char *defaults, uint16 defaults_len, int cap, char **sql)
{
	char	   *buf = malloc(cap + CANARY_LEN);
	int			n;

	memset(buf, CANARY_BYTE, cap + CANARY_LEN);
	n = params_build_set_sql(want, want_len, have, have_len, defaults, defaults_len, buf, cap);
	for (int i = cap; i < cap + CANARY_LEN; i++)
		if ((unsigned char) buf[i] != CANARY_BYTE)
		{
			unit_fail(__FILE__, __LINE__, "params_build_set_sql wrote past outcap");
			break;
		}
	*sql = buf;
	return n;
}

/* Check that want vs have (and defaults) produce exactly expected ("" = nothing to do). */
static void
check_sql(int line, const char *want, uint16 want_len, const char *have, uint16 have_len,
		  const char *defaults, uint16 defaults_len, const char *expected)
{
	char	   *sql;
	int			n = build_sql(want, want_len, have, have_len, defaults, defaults_len, 4096, &sql);

	if (n != (int) strlen(expected) || strcmp(sql, expected) != 0)
	{
		unit_fail(__FILE__, line, "unexpected SET SQL");
		printf("    got  (%d): %s\n    want (%d): %s\n", n, n >= 0 ? sql : "", (int) strlen(expected),
			   expected);
	}
	free(sql);
}

/* ---------------------------------------------------------- set / get */

static void
test_params_empty(void)
{
	char	   *b = NULL;
	uint16		len = 0;

	CHECK(params_get(NULL, 0, "TimeZone") == NULL);
	CHECK(params_get("", 0, "TimeZone") == NULL);
	CHECK(params_set(&b, &len, "TimeZone", "UTC"));
	CHECK_BYTES((const uint8_t *) b, len, (const uint8_t *) "TimeZone\0UTC", 13);
	free(b);
}

static void
test_params_get_case_insensitive(void)
{
	char	   *b;
	uint16		len;

	block_of(&b, &len, "TimeZone", "UTC", "a", "b", "b", "c", NULL);
	CHECK(params_get(b, len, "TimeZone") && strcmp(params_get(b, len, "TimeZone"), "UTC") == 0);
	CHECK(params_get(b, len, "timezone") && strcmp(params_get(b, len, "timezone"), "UTC") == 0);
	CHECK(params_get(b, len, "TIMEZONE") && strcmp(params_get(b, len, "TIMEZONE"), "UTC") == 0);
	CHECK(params_get(b, len, "Time") == NULL);
	CHECK(params_get(b, len, "TimeZoneX") == NULL);
	CHECK(params_get(b, len, "") == NULL);
	/* a value is never taken for a name */
	CHECK(params_get(b, len, "UTC") == NULL);
	CHECK(params_get(b, len, "b") && strcmp(params_get(b, len, "b"), "c") == 0);
	free(b);
}

static void
test_params_replace(void)
{
	char	   *b;
	uint16		len;
	char	   *before;

	block_of(&b, &len, "TimeZone", "UTC", "DateStyle", "ISO, MDY", NULL);
	CHECK(len == 13 + 19);

	/* same value (any case of the name): nothing changes, not even the block */
	before = b;
	CHECK(params_set(&b, &len, "timezone", "UTC"));
	CHECK(b == before && len == 32);

	/* new value under another spelling: one pair, the new one, at the end */
	CHECK(params_set(&b, &len, "TIMEZONE", "Asia/Tokyo"));
	CHECK(count_pairs(b, len) == 2);
	CHECK_BYTES((const uint8_t *) b, len,
				(const uint8_t *) "DateStyle\0ISO, MDY\0TIMEZONE\0Asia/Tokyo", 39);
	CHECK(strcmp(params_get(b, len, "TimeZone"), "Asia/Tokyo") == 0);

	/* an empty value is a value */
	CHECK(params_set(&b, &len, "search_path", ""));
	CHECK(params_get(b, len, "search_path") != NULL && params_get(b, len, "search_path")[0] == '\0');
	CHECK(count_pairs(b, len) == 3);
	free(b);
}

static void
test_params_many(void)
{
	char	   *b = NULL;
	uint16		len = 0;
	char		name[32];
	char		value[32];
	int			expect_len = 0;

	for (int i = 0; i < 300; i++)
	{
		snprintf(name, sizeof(name), "param_%d", i);
		snprintf(value, sizeof(value), "v%d", i * 7);
		CHECK(params_set(&b, &len, name, value));
		expect_len += strlen(name) + strlen(value) + 2;
	}
	CHECK(len == expect_len && count_pairs(b, len) == 300);
	/* replace every third one, naming it in upper case */
	for (int i = 0; i < 300; i += 3)
	{
		snprintf(name, sizeof(name), "PARAM_%d", i);
		snprintf(value, sizeof(value), "new%d", i);
		CHECK(params_set(&b, &len, name, value));
	}
	CHECK(count_pairs(b, len) == 300);
	for (int i = 0; i < 300; i++)
	{
		const char *got;

		snprintf(name, sizeof(name), "Param_%d", i);
		if (i % 3 == 0)
			snprintf(value, sizeof(value), "new%d", i);
		else
			snprintf(value, sizeof(value), "v%d", i * 7);
		got = params_get(b, len, name);
		CHECK(got != NULL && strcmp(got, value) == 0);
	}
	CHECK(params_get(b, len, "param_300") == NULL);
	free(b);
}

static void
test_params_too_big(void)
{
	char	   *b = NULL;
	uint16		len = 0;
	char	   *big = malloc(65000);
	char	   *before;

	memset(big, 'x', 64999);
	big[64999] = '\0';
	CHECK(params_set(&b, &len, "application_name", big));
	CHECK(len == 17 + 65000);
	before = b;
	/* a second pair would pass 64kB: refused, block untouched */
	memset(big, 'y', 1000);
	big[1000] = '\0';
	CHECK(!params_set(&b, &len, "TimeZone", big));
	CHECK(b == before && len == 17 + 65000);
	CHECK(params_get(b, len, "TimeZone") == NULL);
	free(big);
	free(b);
}

/* ----------------------------------------------------------- tracked */

static void
test_params_tracked_name(void)
{
	static const char *const canonical[] = {
		"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
		"standard_conforming_strings", "search_path", "extra_float_digits"
	};

	for (size_t i = 0; i < lengthof(canonical); i++)
	{
		const char *got = params_tracked_name(canonical[i]);

		CHECK(got != NULL && strcmp(got, canonical[i]) == 0);
	}
	CHECK(params_tracked_name("timezone") && strcmp(params_tracked_name("timezone"), "TimeZone") == 0);
	CHECK(params_tracked_name("DATESTYLE") && strcmp(params_tracked_name("DATESTYLE"), "DateStyle") == 0);
	CHECK(params_tracked_name("intervalstyle") &&
		  strcmp(params_tracked_name("intervalstyle"), "IntervalStyle") == 0);
	CHECK(params_tracked_name("Application_Name") &&
		  strcmp(params_tracked_name("Application_Name"), "application_name") == 0);
	CHECK(params_tracked_name("work_mem") == NULL);
	CHECK(params_tracked_name("user") == NULL);
	CHECK(params_tracked_name("database") == NULL);
	CHECK(params_tracked_name("options") == NULL);
	CHECK(params_tracked_name("") == NULL);
	CHECK(params_tracked_name("TimeZon") == NULL);
	CHECK(params_tracked_name("TimeZone ") == NULL);
}

/* ------------------------------------------------------------ SET SQL */

static void
test_sql_nothing_to_do(void)
{
	char	   *want,
			   *have;
	uint16		wl,
				hl;

	check_sql(__LINE__, NULL, 0, NULL, 0, NULL, 0, "");
	block_of(&want, &wl, "TimeZone", "UTC", "application_name", "psql", NULL);
	block_of(&have, &hl, "application_name", "psql", "timezone", "UTC", "server_version", "15.0", NULL);
	check_sql(__LINE__, want, wl, have, hl, NULL, 0, "");
	check_sql(__LINE__, want, wl, have, hl, have, hl, "");
	/* untracked names are never SET, whatever their values */
	free(want);
	block_of(&want, &wl, "TimeZone", "UTC", "application_name", "psql", "work_mem", "1GB", "server_version",
			 "9.6", NULL);
	check_sql(__LINE__, want, wl, have, hl, NULL, 0, "");
	free(want);
	free(have);
}

static void
test_sql_timezone(void)
{
	char	   *want,
			   *have;
	uint16		wl,
				hl;

	block_of(&want, &wl, "TimeZone", "Asia/Tokyo", NULL);
	block_of(&have, &hl, "TimeZone", "UTC", "DateStyle", "ISO, MDY", NULL);
	check_sql(__LINE__, want, wl, have, hl, NULL, 0, "SET TimeZone = 'Asia/Tokyo';");
	free(want);
	/* the client's spelling of the name does not matter: the canonical one is used */
	block_of(&want, &wl, "timezone", "Asia/Tokyo", NULL);
	check_sql(__LINE__, want, wl, have, hl, NULL, 0, "SET TimeZone = 'Asia/Tokyo';");
	free(want);
	/* several differences: one statement each, in the table's order */
	block_of(&want, &wl, "TimeZone", "Asia/Tokyo", "DateStyle", "ISO, DMY", "application_name", "app", NULL);
	check_sql(__LINE__, want, wl, have, hl, NULL, 0,
			  "SET application_name = 'app';SET DateStyle = 'ISO, DMY';SET TimeZone = 'Asia/Tokyo';");
	free(want);
	free(have);
}

static void
test_sql_quoting(void)
{
	static const struct
	{
		const char *value;
		const char *sql;
	}			cases[] = {
		{"O'Brien", "SET application_name = 'O''Brien';"},
		{"''", "SET application_name = '''''';"},
		{"'", "SET application_name = '''';"},
		{"C:\\temp", "SET application_name = E'C:\\\\temp';"},
		{"\\", "SET application_name = E'\\\\';"},
		{"it's a \\ test", "SET application_name = E'it''s a \\\\ test';"},
		{"x'; DROP TABLE t; --", "SET application_name = 'x''; DROP TABLE t; --';"},
		{"", "SET application_name = '';"},
		{"\"quoted\"", "SET application_name = '\"quoted\"';"},
	};
	char	   *have;
	uint16		hl;

	block_of(&have, &hl, "application_name", "before", NULL);
	for (size_t i = 0; i < lengthof(cases); i++)
	{
		char	   *want;
		uint16		wl;

		block_of(&want, &wl, "application_name", cases[i].value, NULL);
		check_sql(__LINE__, want, wl, have, hl, NULL, 0, cases[i].sql);
		free(want);
	}
	free(have);
}

static void
test_sql_defaults(void)
{
	char	   *have,
			   *defaults,
			   *want;
	uint16		hl,
				dl,
				wl;

	/* the client never set TimeZone: a server left elsewhere goes back to the pool's default */
	block_of(&have, &hl, "TimeZone", "Europe/Paris", "application_name", "", NULL);
	block_of(&defaults, &dl, "TimeZone", "UTC", "application_name", "", "DateStyle", "ISO, MDY", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "SET TimeZone = 'UTC';");
	/* ... unless it is already there */
	free(have);
	block_of(&have, &hl, "TimeZone", "UTC", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "");
	/* the client's own value wins over the default */
	block_of(&want, &wl, "TimeZone", "Asia/Tokyo", NULL);
	check_sql(__LINE__, want, wl, have, hl, defaults, dl, "SET TimeZone = 'Asia/Tokyo';");
	free(want);
	/* a default for a name the server does not report and the client never set: left alone */
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "");
	free(have);
	free(defaults);
}

static void
test_sql_unreported(void)
{
	char	   *have,
			   *defaults,
			   *want;
	uint16		hl,
				dl,
				wl;

	/* not reported by the server, not set by the client: nothing, even with a default */
	block_of(&have, &hl, "TimeZone", "UTC", NULL);
	block_of(&defaults, &dl, "search_path", "public", "extra_float_digits", "1", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "");
	check_sql(__LINE__, NULL, 0, NULL, 0, defaults, dl, "");
	/* set by the client but not reported by the server (PG15's search_path): always applied */
	block_of(&want, &wl, "extra_float_digits", "3", NULL);
	check_sql(__LINE__, want, wl, have, hl, defaults, dl, "SET extra_float_digits = '3';");
	free(want);
	free(have);
	free(defaults);
}

/*
 * search_path is a list that SET re-quotes as an identifier: SET search_path
 * = 'a, b' selects the one schema "a, b". The value must reach the server as
 * it came in the startup packet, i.e. through set_config().
 */
static void
test_sql_search_path(void)
{
	char	   *want;
	uint16		wl;

	block_of(&want, &wl, "search_path", "a, b", NULL);
	check_sql(__LINE__, want, wl, NULL, 0, NULL, 0,
			  "SELECT pg_catalog.set_config('search_path', 'a, b', false);");
	free(want);
	block_of(&want, &wl, "search_path", "\"$user\", public", "TimeZone", "UTC", NULL);
	check_sql(__LINE__, want, wl, NULL, 0, NULL, 0,
			  "SET TimeZone = 'UTC';"
			  "SELECT pg_catalog.set_config('search_path', '\"$user\", public', false);");
	free(want);
	block_of(&want, &wl, "search_path", "it's\\here", NULL);
	check_sql(__LINE__, want, wl, NULL, 0, NULL, 0,
			  "SELECT pg_catalog.set_config('search_path', E'it''s\\\\here', false);");
	free(want);
}

/*
 * Every capacity from 1 up: -1 while the SQL cannot fit, then exactly the
 * full text, and never a byte written past the capacity.
 */
static void
check_sql_every_cap(const char *want, uint16 wl, const char *have, uint16 hl)
{
	char	   *full;
	int			full_len = build_sql(want, wl, have, hl, NULL, 0, 4096, &full);

	CHECK(full_len > 0);
	for (int cap = 1; cap <= full_len + 8; cap++)
	{
		char	   *sql;
		int			n = build_sql(want, wl, have, hl, NULL, 0, cap, &sql);

		if (cap <= full_len)
			CHECK(n == -1);
		else
			CHECK(n == full_len && strcmp(sql, full) == 0);
		free(sql);
	}
	free(full);
}

static void
test_sql_does_not_fit(void)
{
	static const char *const values[] = {"", "x", "O'Brien", "a\\b", "''", "\\\\"};
	char	   *have;
	uint16		hl;

	block_of(&have, &hl, "application_name", "old", "TimeZone", "UTC", NULL);
	for (size_t i = 0; i < lengthof(values); i++)
	{
		char	   *want;
		uint16		wl;

		block_of(&want, &wl, "application_name", values[i], NULL);
		check_sql_every_cap(want, wl, have, hl);
		free(want);
		block_of(&want, &wl, "application_name", values[i], "TimeZone", values[i], NULL);
		check_sql_every_cap(want, wl, have, hl);
		free(want);
		block_of(&want, &wl, "search_path", values[i], NULL);
		check_sql_every_cap(want, wl, have, hl);
		free(want);
	}
	free(have);
}

/*
 * Fingerprints: equal exactly when every tracked value agrees (a missing one
 * taken from the defaults), whatever the order and whatever untracked names
 * are in the block; cross-checked against params_build_set_sql.
 */
static void
test_fingerprint(void)
{
	char	   *a, *b, *c, *d, *e, *defs;
	uint16		al, bl, cl, dl, el, defl;
	char		sql[512];

	block_of(&a, &al, "TimeZone", "UTC", "DateStyle", "ISO, MDY", NULL);
	block_of(&b, &bl, "DateStyle", "ISO, MDY", "foo", "bar", "TimeZone", "UTC", NULL);
	block_of(&c, &cl, "TimeZone", "Asia/Tokyo", "DateStyle", "ISO, MDY", NULL);
	block_of(&d, &dl, "DateStyle", "ISO, MDY", NULL);
	block_of(&e, &el, "TimeZone", "", "DateStyle", "ISO, MDY", NULL);
	block_of(&defs, &defl, "TimeZone", "UTC", NULL);

	CHECK(params_fingerprint(a, al, NULL, 0) == params_fingerprint(b, bl, NULL, 0));
	CHECK(params_build_set_sql(a, al, b, bl, NULL, 0, sql, sizeof(sql)) == 0);
	CHECK(params_fingerprint(a, al, NULL, 0) != params_fingerprint(c, cl, NULL, 0));
	CHECK(params_build_set_sql(c, cl, a, al, NULL, 0, sql, sizeof(sql)) > 0);
	/* missing TimeZone: the default fills it in */
	CHECK(params_fingerprint(d, dl, defs, defl) == params_fingerprint(a, al, NULL, 0));
	CHECK(params_build_set_sql(d, dl, a, al, defs, defl, sql, sizeof(sql)) == 0);
	CHECK(params_fingerprint(d, dl, NULL, 0) != params_fingerprint(a, al, NULL, 0));
	/* an empty value is not an absent one */
	CHECK(params_fingerprint(e, el, NULL, 0) != params_fingerprint(d, dl, NULL, 0));
	/* the same value under another tracked name differs */
	free(c);
	block_of(&c, &cl, "application_name", "UTC", "DateStyle", "ISO, MDY", NULL);
	CHECK(params_fingerprint(c, cl, NULL, 0) != params_fingerprint(a, al, NULL, 0));
	free(a);
	free(b);
	free(c);
	free(d);
	free(e);
	free(defs);
}

/* pgbun.track_extra_parameters: SET when the client has a value, RESET when not. */
static void
test_extra_parameters(void)
{
	char	   *want, *have = NULL, *none = NULL;
	uint16		wl, hl = 0, nl = 0;
	char		sql[512];

	CHECK(params_set_extra("work_mem, bad-name", false) == -1);
	CHECK(params_set_extra("work_mem;drop", false) == -1);
	CHECK(params_set_extra("TimeZone, geqo", false) == 1);	/* TimeZone is built in */
	CHECK(params_tracked_name("work_mem") == NULL);	/* a check applies nothing */
	CHECK(params_set_extra("work_mem, geqo", true) == 2);
	CHECK(params_tracked_name("WORK_MEM") && strcmp(params_tracked_name("WORK_MEM"), "work_mem") == 0);

	block_of(&want, &wl, "work_mem", "1MB", NULL);
	CHECK(params_build_set_sql(want, wl, have, hl, NULL, 0, sql, sizeof(sql)) > 0);
	CHECK(strcmp(sql, "SET work_mem = '1MB';") == 0);
	CHECK(params_fingerprint(want, wl, NULL, 0) != params_fingerprint(have, hl, NULL, 0));
	CHECK(params_note_extra(want, wl, &have, &hl));
	CHECK(params_build_set_sql(want, wl, have, hl, NULL, 0, sql, sizeof(sql)) == 0);
	CHECK(params_fingerprint(want, wl, NULL, 0) == params_fingerprint(have, hl, NULL, 0));

	/* the next client never set it: back to the server's default */
	CHECK(params_build_set_sql(none, nl, have, hl, NULL, 0, sql, sizeof(sql)) > 0);
	CHECK(strcmp(sql, "RESET work_mem;") == 0);
	CHECK(params_note_extra(none, nl, &have, &hl));
	CHECK(params_build_set_sql(none, nl, have, hl, NULL, 0, sql, sizeof(sql)) == 0);
	CHECK(params_fingerprint(none, nl, NULL, 0) == params_fingerprint(have, hl, NULL, 0));

	CHECK(params_set_extra("", true) == 0);
	CHECK(params_tracked_name("work_mem") == NULL);
	free(want);
	free(have);
}

void
params_suite(void)
{
	UNIT_RUN(test_params_empty);
	UNIT_RUN(test_params_get_case_insensitive);
	UNIT_RUN(test_params_replace);
	UNIT_RUN(test_params_many);
	UNIT_RUN(test_params_too_big);
	UNIT_RUN(test_params_tracked_name);
	UNIT_RUN(test_sql_nothing_to_do);
	UNIT_RUN(test_sql_timezone);
	UNIT_RUN(test_sql_quoting);
	UNIT_RUN(test_sql_defaults);
	UNIT_RUN(test_sql_unreported);
	UNIT_RUN(test_sql_search_path);
	UNIT_RUN(test_sql_does_not_fit);
	UNIT_RUN(test_fingerprint);
	UNIT_RUN(test_extra_parameters);
}

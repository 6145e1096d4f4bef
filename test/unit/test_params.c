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

/* A ParamsState of want / defaults / reported / set (each may be NULL, 0). */
static ParamsState
state_of(const char *want, uint16 wl, const char *defaults, uint16 dl,
		 const char *reported, uint16 rl, const char *set, uint16 sl, bool dirty)
{
	ParamsState st;

	st.want = want;
	st.want_len = wl;
	st.defaults = defaults;
	st.defaults_len = dl;
	st.reported = reported;
	st.reported_len = rl;
	st.set = set;
	st.set_len = sl;
	st.dirty = dirty;
	st.startup = NULL;
	st.startup_len = 0;
	return st;
}

/*
 * Run params_build_set_sql into a buffer of exactly cap usable bytes followed
 * by a canary; record a failure if anything past cap was touched. The result
 * is left in *sql (caller frees).
 */
static int
build_sql(const ParamsState *st, int cap, char **sql)
{
	char	   *buf = malloc(cap + CANARY_LEN);
	int			n;

	memset(buf, CANARY_BYTE, cap + CANARY_LEN);
	n = params_build_set_sql(st, buf, cap);
	for (int i = cap; i < cap + CANARY_LEN; i++)
		if ((unsigned char) buf[i] != CANARY_BYTE)
		{
			unit_fail(__FILE__, __LINE__, "params_build_set_sql wrote past outcap");
			break;
		}
	*sql = buf;
	return n;
}

/* Check that the state produces exactly expected ("" = nothing to do). */
static void
check_st(int line, const ParamsState *st, const char *expected)
{
	char	   *sql;
	int			n = build_sql(st, 4096, &sql);

	if (n != (int) strlen(expected) || strcmp(sql, expected) != 0)
	{
		unit_fail(__FILE__, line, "unexpected SET SQL");
		printf("    got  (%d): %s\n    want (%d): %s\n", n, n >= 0 ? sql : "", (int) strlen(expected),
			   expected);
	}
	free(sql);
}

/* The common case: want vs the server's reported values, with the client's defaults. */
static void
check_sql(int line, const char *want, uint16 want_len, const char *have, uint16 have_len,
		  const char *defaults, uint16 defaults_len, const char *expected)
{
	ParamsState st = state_of(want, want_len, defaults, defaults_len, have, have_len, NULL, 0, false);

	check_st(line, &st, expected);
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
		"standard_conforming_strings", "search_path", "extra_float_digits",
		"default_transaction_read_only"
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
	/* names the server reports that nobody carries (server_version) are never touched */
	check_sql(__LINE__, NULL, 0, have, hl, have, hl, "");
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

	/* the client never set TimeZone: a server left elsewhere goes back to its welcome's value */
	block_of(&have, &hl, "TimeZone", "Europe/Paris", "application_name", "", "DateStyle", "ISO, MDY", NULL);
	block_of(&defaults, &dl, "TimeZone", "UTC", "application_name", "", "DateStyle", "ISO, MDY", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "SET TimeZone = 'UTC';");
	/* ... unless it is already there */
	free(have);
	block_of(&have, &hl, "TimeZone", "UTC", "application_name", "", "DateStyle", "ISO, MDY", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "");
	/* the client's own value wins over the default */
	block_of(&want, &wl, "TimeZone", "Asia/Tokyo", NULL);
	check_sql(__LINE__, want, wl, have, hl, defaults, dl, "SET TimeZone = 'Asia/Tokyo';");
	free(want);
	/* a reported name neither the client nor its welcome has: left alone */
	free(have);
	block_of(&have, &hl, "TimeZone", "UTC", "application_name", "", "DateStyle", "ISO, MDY",
			 "IntervalStyle", "sql_standard", NULL);
	check_sql(__LINE__, NULL, 0, have, hl, defaults, dl, "");
	free(have);
	free(defaults);
}

/*
 * search_path and extra_float_digits are not reported by PostgreSQL 15:
 * pgbun's record of what it set is all it knows. A client that did not give
 * one must not run with the previous client's (the leak of issue 8 item 1).
 */
static void
test_sql_unreported(void)
{
	char	   *reported,
			   *defaults,
			   *want,
			   *set = NULL;
	uint16		rl,
				dl,
				wl,
				sl = 0;
	ParamsState st;

	block_of(&reported, &rl, "TimeZone", "UTC", NULL);
	block_of(&defaults, &dl, "TimeZone", "UTC", NULL);
	/* never set anywhere: nothing to do */
	st = state_of(NULL, 0, defaults, dl, reported, rl, NULL, 0, false);
	check_st(__LINE__, &st, "");
	/* client A sets both */
	block_of(&want, &wl, "search_path", "evil", "extra_float_digits", "3", NULL);
	st = state_of(want, wl, defaults, dl, reported, rl, set, sl, false);
	check_st(__LINE__, &st, "SELECT pg_catalog.set_config('search_path', 'evil', false);SET extra_float_digits = '3';");
	CHECK(params_note_set(&st, &set, &sl));
	CHECK(params_count(set, sl) == 2 && strcmp(params_get(set, sl, "search_path"), "evil") == 0);
	/* A again on the same server: nothing to do */
	st = state_of(want, wl, defaults, dl, reported, rl, set, sl, false);
	check_st(__LINE__, &st, "");
	/* client B, with neither: both go back to the server's defaults */
	st = state_of(NULL, 0, defaults, dl, reported, rl, set, sl, false);
	check_st(__LINE__, &st, "RESET search_path;RESET extra_float_digits;");
	CHECK(params_note_set(&st, &set, &sl));
	CHECK(set == NULL && sl == 0);
	st = state_of(NULL, 0, defaults, dl, reported, rl, set, sl, false);
	check_st(__LINE__, &st, "");
	free(want);
	free(reported);
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

/* Startup GUCs and options a client gave: they follow it, and only it. */
static void
test_sql_own_params(void)
{
	char	   *a,
			   *b,
			   *set = NULL;
	uint16		al,
				bl,
				sl = 0;
	ParamsState st;

	block_of(&a, &al, "statement_timeout", "5s", "myapp.user", "x'y", NULL);
	block_of(&b, &bl, "idle_in_transaction_session_timeout", "1min", NULL);
	st = state_of(a, al, NULL, 0, NULL, 0, set, sl, false);
	check_st(__LINE__, &st,
			 "SELECT pg_catalog.set_config('statement_timeout', '5s', false);"
			 "SELECT pg_catalog.set_config('myapp.user', 'x''y', false);");
	CHECK(params_note_set(&st, &set, &sl));
	st = state_of(a, al, NULL, 0, NULL, 0, set, sl, false);
	check_st(__LINE__, &st, "");
	CHECK(params_client_fingerprint(a, al, NULL, 0) == params_server_fingerprint(NULL, 0, set, sl));
	/* B gets its own, and A's are RESET (quoted: a custom name may hold a reserved word) */
	st = state_of(b, bl, NULL, 0, NULL, 0, set, sl, false);
	check_st(__LINE__, &st,
			 "SELECT pg_catalog.set_config('idle_in_transaction_session_timeout', '1min', false);"
			 "RESET \"statement_timeout\";RESET \"myapp.user\";");
	CHECK(params_client_fingerprint(b, bl, NULL, 0) != params_server_fingerprint(NULL, 0, set, sl));
	CHECK(params_note_set(&st, &set, &sl));
	CHECK(params_count(set, sl) == 1);
	CHECK(params_client_fingerprint(b, bl, NULL, 0) == params_server_fingerprint(NULL, 0, set, sl));
	CHECK(params_client_fingerprint(a, al, NULL, 0) != params_server_fingerprint(NULL, 0, set, sl));
	free(a);
	free(b);
	free(set);
}

/* A dirty server (a client's SET was seen): RESET ALL, then every value the client has. */
static void
test_sql_dirty(void)
{
	char	   *want,
			   *reported,
			   *set;
	uint16		wl,
				rl,
				sl;
	ParamsState st;

	block_of(&want, &wl, "statement_timeout", "5s", "TimeZone", "UTC", NULL);
	block_of(&reported, &rl, "TimeZone", "UTC", NULL);
	block_of(&set, &sl, "statement_timeout", "5s", NULL);
	st = state_of(want, wl, reported, rl, reported, rl, set, sl, false);
	check_st(__LINE__, &st, "");
	st.dirty = true;
	check_st(__LINE__, &st,
			 "RESET ALL;SET TimeZone = 'UTC';SELECT pg_catalog.set_config('statement_timeout', '5s', false);");
	st = state_of(NULL, 0, reported, rl, reported, rl, set, sl, true);
	check_st(__LINE__, &st, "RESET ALL;");
	free(want);
	free(reported);
	free(set);
}

/* The conditional restore after the client's RESET / DISCARD ALL. */
static void
test_restore_sql(void)
{
	char	   *startup;
	uint16		len;
	char		out[512];

	CHECK(params_build_restore_sql(NULL, 0, out, sizeof(out)) == 0);
	block_of(&startup, &len, "application_name", "app", "statement_timeout", "5s", NULL);
	CHECK(params_build_restore_sql(startup, len, out, sizeof(out)) == (int) strlen(out));
	CHECK(strcmp(out,
				 "SELECT pg_catalog.set_config(s.name, v.val, false) FROM (VALUES ('application_name', 'app'), "
				 "('statement_timeout', '5s')) AS v(name, val) JOIN pg_catalog.pg_settings s "
				 "ON lower(s.name) = lower(v.name) WHERE s.source <> 'session';") == 0);
	/* too small: -1, never past the end */
	for (int cap = 1; cap < (int) strlen(out) + 1; cap++)
	{
		char		small[512];

		memset(small, CANARY_BYTE, sizeof(small));
		CHECK(params_build_restore_sql(startup, len, small, cap) == -1);
		for (int i = cap; i < (int) sizeof(small); i++)
			if ((unsigned char) small[i] != CANARY_BYTE)
			{
				unit_fail(__FILE__, __LINE__, "restore SQL wrote past outcap");
				break;
			}
	}
	free(startup);
}

static void
test_params_remove_and_snapshot(void)
{
	char	   *b;
	uint16		len;
	ParamSet   *ps;

	block_of(&b, &len, "a", "1", "b", "2", "c", "3", NULL);
	params_remove(&b, &len, "B");
	CHECK_BYTES((const uint8_t *) b, len, (const uint8_t *) "a\0" "1\0c\0" "3", 8);
	params_remove(&b, &len, "x");
	CHECK(len == 8 && params_count(b, len) == 2);
	params_remove(&b, &len, "a");
	params_remove(&b, &len, "c");
	CHECK(b == NULL && len == 0);
	block_of(&b, &len, "TimeZone", "UTC", NULL);
	ps = params_snapshot(b, len);
	CHECK(ps && ps->refs == 1 && ps->len == len && memcmp(ps->data, b, len) == 0);
	ps->refs++;
	params_snapshot_release(ps);
	CHECK(ps->refs == 1);
	params_snapshot_release(ps);
	params_snapshot_release(NULL);
	free(b);
}

/*
 * Every capacity from 1 up: -1 while the SQL cannot fit, then exactly the
 * full text, and never a byte written past the capacity.
 */
static void
check_sql_every_cap(const char *want, uint16 wl, const char *have, uint16 hl)
{
	char	   *full;
	ParamsState st = state_of(want, wl, NULL, 0, have, hl, NULL, 0, false);
	int			full_len = build_sql(&st, 4096, &full);

	CHECK(full_len > 0);
	for (int cap = 1; cap <= full_len + 8; cap++)
	{
		char	   *sql;
		int			n = build_sql(&st, cap, &sql);

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
		block_of(&want, &wl, "search_path", values[i], "work_mem", values[i], NULL);
		check_sql_every_cap(want, wl, have, hl);
		free(want);
	}
	free(have);
}

/*
 * Fingerprints: equal exactly when every tracked value agrees (a missing one
 * taken from the client's defaults), whatever the order and whatever
 * untracked reported names are there; cross-checked against
 * params_build_set_sql.
 */
static void
test_fingerprint(void)
{
	char	   *a, *b, *c, *d, *e, *defs;
	uint16		al, bl, cl, dl, el, defl;
	char		sql[512];
	ParamsState st;

	block_of(&a, &al, "TimeZone", "UTC", "DateStyle", "ISO, MDY", NULL);
	block_of(&b, &bl, "DateStyle", "ISO, MDY", "server_version", "15", "TimeZone", "UTC", NULL);
	block_of(&c, &cl, "TimeZone", "Asia/Tokyo", "DateStyle", "ISO, MDY", NULL);
	block_of(&d, &dl, "DateStyle", "ISO, MDY", NULL);
	block_of(&e, &el, "TimeZone", "", "DateStyle", "ISO, MDY", NULL);
	block_of(&defs, &defl, "TimeZone", "UTC", NULL);

	CHECK(params_client_fingerprint(a, al, NULL, 0) == params_server_fingerprint(b, bl, NULL, 0));
	st = state_of(a, al, NULL, 0, b, bl, NULL, 0, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) == 0);
	CHECK(params_client_fingerprint(c, cl, NULL, 0) != params_server_fingerprint(a, al, NULL, 0));
	st = state_of(c, cl, NULL, 0, a, al, NULL, 0, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) > 0);
	/* missing TimeZone: the default fills it in */
	CHECK(params_client_fingerprint(d, dl, defs, defl) == params_server_fingerprint(a, al, NULL, 0));
	st = state_of(d, dl, defs, defl, a, al, NULL, 0, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) == 0);
	CHECK(params_client_fingerprint(d, dl, NULL, 0) != params_server_fingerprint(a, al, NULL, 0));
	/* an empty value is not an absent one */
	CHECK(params_client_fingerprint(e, el, NULL, 0) != params_client_fingerprint(d, dl, NULL, 0));
	/* the same value under another tracked name differs */
	free(c);
	block_of(&c, &cl, "application_name", "UTC", "DateStyle", "ISO, MDY", NULL);
	CHECK(params_client_fingerprint(c, cl, NULL, 0) != params_server_fingerprint(a, al, NULL, 0));
	/* an unreported value recorded by pgbun counts like a reported one */
	free(c);
	block_of(&c, &cl, "search_path", "s1", NULL);
	CHECK(params_client_fingerprint(c, cl, NULL, 0) == params_server_fingerprint(NULL, 0, c, cl));
	CHECK(params_client_fingerprint(NULL, 0, NULL, 0) != params_server_fingerprint(NULL, 0, c, cl));
	/* the client's own value wins over its default, in any case of the name */
	free(c);
	block_of(&c, &cl, "timezone", "Asia/Tokyo", "DateStyle", "ISO, MDY", NULL);
	CHECK(params_client_fingerprint(c, cl, defs, defl) != params_server_fingerprint(a, al, NULL, 0));
	free(b);
	block_of(&b, &bl, "DateStyle", "ISO, MDY", "TimeZone", "Asia/Tokyo", NULL);
	CHECK(params_client_fingerprint(c, cl, defs, defl) == params_server_fingerprint(b, bl, NULL, 0));
	/* a reported value wins over one pgbun remembers setting */
	CHECK(params_server_fingerprint(b, bl, a, al) == params_server_fingerprint(b, bl, NULL, 0));
	CHECK(params_server_fingerprint(a, al, b, bl) != params_server_fingerprint(b, bl, NULL, 0));
	/* a default's untracked pair is not the client's own */
	free(defs);
	block_of(&defs, &defl, "TimeZone", "UTC", "server_version", "15", NULL);
	CHECK(params_client_fingerprint(d, dl, defs, defl) == params_server_fingerprint(a, al, NULL, 0));
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
	char	   *want, *set = NULL;
	uint16		wl, sl = 0;
	char		sql[512];
	ParamsState st;

	CHECK(params_set_extra("work_mem, bad-name", false) == -1);
	CHECK(params_set_extra("work_mem;drop", false) == -1);
	CHECK(params_set_extra("TimeZone, geqo", false) == 1);	/* TimeZone is built in */
	CHECK(params_tracked_name("work_mem") == NULL);	/* a check applies nothing */
	CHECK(params_set_extra("work_mem, geqo", true) == 2);
	CHECK(params_tracked_name("WORK_MEM") && strcmp(params_tracked_name("WORK_MEM"), "work_mem") == 0);

	block_of(&want, &wl, "work_mem", "1MB", NULL);
	st = state_of(want, wl, NULL, 0, NULL, 0, set, sl, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) > 0);
	CHECK(strcmp(sql, "SELECT pg_catalog.set_config('work_mem', '1MB', false);") == 0);
	CHECK(params_client_fingerprint(want, wl, NULL, 0) != params_server_fingerprint(NULL, 0, set, sl));
	CHECK(params_note_set(&st, &set, &sl));
	st = state_of(want, wl, NULL, 0, NULL, 0, set, sl, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) == 0);
	CHECK(params_client_fingerprint(want, wl, NULL, 0) == params_server_fingerprint(NULL, 0, set, sl));

	/* the next client never set it: back to the server's default */
	st = state_of(NULL, 0, NULL, 0, NULL, 0, set, sl, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) > 0);
	CHECK(strcmp(sql, "RESET \"work_mem\";") == 0);
	CHECK(params_note_set(&st, &set, &sl));
	st = state_of(NULL, 0, NULL, 0, NULL, 0, set, sl, false);
	CHECK(params_build_set_sql(&st, sql, sizeof(sql)) == 0);
	CHECK(params_client_fingerprint(NULL, 0, NULL, 0) == params_server_fingerprint(NULL, 0, set, sl));

	CHECK(params_set_extra("", true) == 0);
	CHECK(params_tracked_name("work_mem") == NULL);
	free(want);
	free(set);
}

/*
 * A client's own SET of a reported parameter it also gave at connect time is
 * made a session value even where the server has the same value as its
 * default, so that a later RESET of another parameter does not undo it.
 */
static void
test_sql_own_set_forced(void)
{
	char	   *reported = NULL,
			   *want = NULL,
			   *startup = NULL;
	uint16		rl,
				wl,
				gl;
	ParamsState st;

	block_of(&reported, &rl, "DateStyle", "ISO, MDY", NULL);
	block_of(&want, &wl, "DateStyle", "ISO, MDY", NULL);
	block_of(&startup, &gl, "DateStyle", "German, DMY", NULL);
	st = state_of(want, wl, reported, rl, reported, rl, NULL, 0, false);
	check_st(__LINE__, &st, "");	/* without connect-time values: nothing to do */
	st.startup = startup;
	st.startup_len = gl;
	check_st(__LINE__, &st, "SET DateStyle = 'ISO, MDY';");
	CHECK(params_is_own_set(&st, "DateStyle", "ISO, MDY"));
	CHECK(!params_is_own_set(&st, "DateStyle", "German, DMY"));
	CHECK(!params_is_own_set(&st, "TimeZone", "UTC"));
	free(reported);
	free(want);
	free(startup);
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
	UNIT_RUN(test_params_remove_and_snapshot);
	UNIT_RUN(test_sql_nothing_to_do);
	UNIT_RUN(test_sql_timezone);
	UNIT_RUN(test_sql_quoting);
	UNIT_RUN(test_sql_defaults);
	UNIT_RUN(test_sql_unreported);
	UNIT_RUN(test_sql_search_path);
	UNIT_RUN(test_sql_own_params);
	UNIT_RUN(test_sql_dirty);
	UNIT_RUN(test_sql_own_set_forced);
	UNIT_RUN(test_restore_sql);
	UNIT_RUN(test_sql_does_not_fit);
	UNIT_RUN(test_fingerprint);
	UNIT_RUN(test_extra_parameters);
}

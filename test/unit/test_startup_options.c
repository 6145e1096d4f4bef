/*
 * test_startup_options.c - unit tests for src/startup_options.c: the
 * startup packet's "options" split as PostgreSQL's pg_split_opts and switch
 * parser do (white space, backslash escapes, -c name=value, -cname=value,
 * --name=value, dashes in names), and every refusal with its message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "startup_options.h"
#include "unit.h"

/*
 * Split opts and compare with the expected pairs (a NULL-terminated list of
 * name, value); n_expected -1 or -2 means that refusal, its message
 * containing err_part.
 */
static void
check_split(int line, const char *opts, int n_expected, const char *err_part, ...)
{
	size_t		cap = strlen(opts) + 2;
	char	   *out = malloc(cap + 16);
	char		err[256];
	int			n;
	va_list		ap;
	size_t		pos = 0;

	memset(out, 0x5A, cap + 16);
	n = startup_options_split(opts, out, cap, err, sizeof(err));
	for (size_t i = cap; i < cap + 16; i++)
		if ((unsigned char) out[i] != 0x5A)
		{
			unit_fail(__FILE__, line, "wrote past the stated capacity");
			break;
		}
	if (n != n_expected)
	{
		unit_fail(__FILE__, line, "unexpected number of settings");
		printf("    options [%s]: got %d (%s), want %d\n", opts, n, n < 0 ? err : "", n_expected);
		free(out);
		return;
	}
	if (n < 0)
	{
		if (!strstr(err, err_part))
		{
			unit_fail(__FILE__, line, "unexpected message");
			printf("    options [%s]: got \"%s\", want a part \"%s\"\n", opts, err, err_part);
		}
		free(out);
		return;
	}
	va_start(ap, err_part);
	for (int i = 0; i < n; i++)
	{
		const char *name = va_arg(ap, const char *);
		const char *value = va_arg(ap, const char *);

		if (strcmp(out + pos, name) != 0)
		{
			unit_fail(__FILE__, line, "unexpected name");
			printf("    options [%s] #%d: got name [%s], want [%s]\n", opts, i, out + pos, name);
			break;
		}
		pos += strlen(out + pos) + 1;
		if (strcmp(out + pos, value) != 0)
		{
			unit_fail(__FILE__, line, "unexpected value");
			printf("    options [%s] #%d: got value [%s], want [%s]\n", opts, i, out + pos, value);
			break;
		}
		pos += strlen(out + pos) + 1;
	}
	va_end(ap);
	free(out);
}

static void
test_options_forms(void)
{
	check_split(__LINE__, "", 0, NULL);
	check_split(__LINE__, "   \t ", 0, NULL);
	check_split(__LINE__, "-c TimeZone=Asia/Tokyo", 1, NULL, "TimeZone", "Asia/Tokyo");
	check_split(__LINE__, "-cTimeZone=UTC", 1, NULL, "TimeZone", "UTC");
	check_split(__LINE__, "--statement-timeout=5s", 1, NULL, "statement_timeout", "5s");
	check_split(__LINE__, "--statement_timeout=5s", 1, NULL, "statement_timeout", "5s");
	/* only the name's dashes become underscores; the first '=' splits */
	check_split(__LINE__, "-c application_name=a-b=c", 1, NULL, "application_name", "a-b=c");
	check_split(__LINE__, "  -c  search_path=a,b\t--geqo=off -cwork_mem=1MB  ", 3, NULL,
				"search_path", "a,b", "geqo", "off", "work_mem", "1MB");
	/* an empty value is a value */
	check_split(__LINE__, "-c application_name=", 1, NULL, "application_name", "");
	/* later settings of the same name are kept in order (the caller lets the last win) */
	check_split(__LINE__, "-c a.b=1 -c a.b=2", 2, NULL, "a.b", "1", "a.b", "2");
}

static void
test_options_escapes(void)
{
	/* libpq: a backslash keeps a space (or a backslash) in the word */
	check_split(__LINE__, "-c search_path=my\\ schema,public", 1, NULL, "search_path", "my schema,public");
	check_split(__LINE__, "-c application_name=a\\\\b", 1, NULL, "application_name", "a\\b");
	check_split(__LINE__, "-c application_name=a\\\\\\ b", 1, NULL, "application_name", "a\\ b");
	/* any escaped character is itself; a trailing backslash is dropped */
	check_split(__LINE__, "-c application_name=\\x\\y", 1, NULL, "application_name", "xy");
	check_split(__LINE__, "-c application_name=x\\", 1, NULL, "application_name", "x");
	/* an escaped tab stays in the word */
	check_split(__LINE__, "-c application_name=a\\\tb", 1, NULL, "application_name", "a\tb");
	/* the escape also works in the switch's own word */
	check_split(__LINE__, "-c\\ application_name=x", 1, NULL, " application_name", "x");
	/* a word that is only a backslash is empty and skipped */
	check_split(__LINE__, "-c a.b=1 \\", 1, NULL, "a.b", "1");
	/* an escaped space before a switch makes it no switch */
	check_split(__LINE__, "\\ -c a.b=1", -1, "invalid command-line argument in options:  -c");
}

static void
test_options_refused(void)
{
	check_split(__LINE__, "-c", -2, "-c requires a value");
	check_split(__LINE__, "-c   ", -2, "-c requires a value");
	check_split(__LINE__, "-c TimeZone", -2, "-c TimeZone requires a value");
	check_split(__LINE__, "-c =UTC", -2, "requires a value");
	check_split(__LINE__, "--geqo", -2, "--geqo requires a value");
	check_split(__LINE__, "--", -1, "invalid command-line argument in options: --");
	check_split(__LINE__, "-", -1, "invalid command-line argument in options: -");
	check_split(__LINE__, "TimeZone=UTC", -1, "invalid command-line argument in options: TimeZone=UTC");
	check_split(__LINE__, "-c a.b=1 stray", -1, "invalid command-line argument in options: stray");
	check_split(__LINE__, "-S 1024", -1, "unsupported switch in options: -S");
	check_split(__LINE__, "-e", -1, "unsupported switch in options: -e");
}

/* Random bytes never crash, never overflow, and every answer is well formed. */
static void
test_options_random(void)
{
	static const char alphabet[] = "-c=\\ \tab.x_";
	unsigned int seed = 12345;

	for (int round = 0; round < 20000; round++)
	{
		char		opts[40];
		int			len;
		char		out[48 + 16];
		char		err[128];
		int			n;

		seed = seed * 1103515245u + 12345u;
		len = (int) ((seed >> 16) % 39);
		for (int i = 0; i < len; i++)
		{
			seed = seed * 1103515245u + 12345u;
			opts[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		opts[len] = '\0';
		memset(out, 0x5A, sizeof(out));
		n = startup_options_split(opts, out, (size_t) len + 2, err, sizeof(err));
		for (size_t i = (size_t) len + 2; i < sizeof(out); i++)
			CHECK((unsigned char) out[i] == 0x5A);
		if (n < 0)
			CHECK(err[0] != '\0');
		else
		{
			size_t		pos = 0;

			/* n pairs of NUL-terminated strings inside the buffer, names never empty */
			for (int i = 0; i < 2 * n; i++)
			{
				size_t		l = strnlen(out + pos, (size_t) len + 2 - pos);

				CHECK(pos + l < (size_t) len + 2);
				if (i % 2 == 0)
					CHECK(l > 0);
				pos += l + 1;
			}
		}
	}
}

void
startup_options_suite(void)
{
	UNIT_RUN(test_options_forms);
	UNIT_RUN(test_options_escapes);
	UNIT_RUN(test_options_refused);
	UNIT_RUN(test_options_random);
}

/*
 * fuzz_startup_options.c - libFuzzer target: the startup packet's "options"
 * value split into settings (src/startup_options.c), as client_login.c does
 * before it checks each setting against the server's GUCs.
 *
 * The input is the options string (cut at its first NUL, as the startup
 * packet delivers it). Invariants beyond "no crash, no sanitizer report":
 * the output stays inside the capacity client_login.c gives it
 * (strlen + 2); a refusal has a message; an accepted string yields exactly
 * the number of pairs it says, each name non-empty, without '=' or '-';
 * and the pairs written back as "-c name=value" words (white space and
 * backslashes escaped with a backslash, as libpq does) split again to the
 * same pairs.
 */
#include <ctype.h>

#include "fuzz.h"
#include "startup_options.h"

/* Append s to w with libpq's escaping; returns the new end. */
static char *
fuzz_escape(char *w, const char *s)
{
	for (; *s; s++)
	{
		if (isspace((unsigned char) *s) || *s == '\\')
			*w++ = '\\';
		*w++ = *s;
	}
	return w;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *opts = malloc(size + 1);
	size_t		len;
	size_t		cap;
	char	   *out;
	char		err[256];
	int			n;
	char	   *again;
	char	   *out2;
	char	   *w;
	size_t		pos = 0;

	if (!opts)
		abort();
	memcpy(opts, data, size);
	opts[size] = '\0';
	len = strlen(opts);
	cap = len + 2;
	out = malloc(cap);			/* exact size: an overflow is an ASan report */
	if (!out)
		abort();
	n = startup_options_split(opts, out, cap, err, sizeof(err));
	if (n < 0)
	{
		FUZZ_ASSERT(n == -1 || n == -2);
		FUZZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
		free(out);
		free(opts);
		return 0;
	}
	/* the round trip: escaped words split to the same pairs */
	again = malloc(4 * cap + 8 * (size_t) n + 1);
	if (!again)
		abort();
	w = again;
	for (int i = 0; i < n; i++)
	{
		const char *name = out + pos;
		const char *value;

		FUZZ_ASSERT(pos < cap && memchr(name, '\0', cap - pos));
		FUZZ_ASSERT(name[0] != '\0' && !strchr(name, '=') && !strchr(name, '-'));
		pos += strlen(name) + 1;
		FUZZ_ASSERT(pos < cap && memchr(out + pos, '\0', cap - pos));
		value = out + pos;
		pos += strlen(value) + 1;
		memcpy(w, "-c ", 3);
		w = fuzz_escape(w + 3, name);
		*w++ = '=';
		w = fuzz_escape(w, value);
		*w++ = ' ';
	}
	*w = '\0';
	out2 = malloc(strlen(again) + 2);
	if (!out2)
		abort();
	FUZZ_ASSERT(startup_options_split(again, out2, strlen(again) + 2, err, sizeof(err)) == n);
	FUZZ_ASSERT(memcmp(out, out2, pos) == 0);
	free(out2);
	free(again);
	free(out);
	free(opts);
	return 0;
}

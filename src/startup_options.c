/*
 * startup_options.c - split the startup packet's "options" into settings
 * (startup_options.h).
 *
 * PostgreSQL reads options as command-line switches of a backend: -c
 * name=value and --name=value set a parameter; any other switch (-B, -S,
 * -e ...) or a word that is not a switch is refused here with a message,
 * since pgbun can only carry parameters.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "startup_options.h"

/*
 * Copy the next word of *p into w (backslash escapes as pg_split_opts:
 * a backslash keeps the next character, whatever it is; a trailing one is
 * dropped). Returns the word's length, or -1 when there is none left.
 */
static long
next_word(const char **p, char *w)
{
	const char *s = *p;
	long		n = 0;
	int			escaped = 0;

	while (*s && isspace((unsigned char) *s))
		s++;
	if (*s == '\0')
	{
		*p = s;
		return -1;
	}
	for (; *s; s++)
	{
		if (!escaped && isspace((unsigned char) *s))
			break;
		if (!escaped && *s == '\\')
			escaped = 1;
		else
		{
			escaped = 0;
			w[n++] = *s;
		}
	}
	w[n] = '\0';
	*p = s;
	return n;
}

/* Append name=value (split at the first '=', '-' in the name made '_') to out. */
static int
put_setting(const char *word, char *out, size_t outcap, size_t *pos,
			const char *sw, char *err, size_t errcap)
{
	const char *eq = strchr(word, '=');
	size_t		nlen;
	size_t		vlen;

	if (!eq || eq == word)
	{
		snprintf(err, errcap, "%s%s%s requires a value (name=value)", sw, sw[1] == 'c' ? " " : "", word);
		return -2;
	}
	nlen = (size_t) (eq - word);
	vlen = strlen(eq + 1);
	if (*pos + nlen + vlen + 2 > outcap)
	{
		snprintf(err, errcap, "options too long");
		return -1;
	}
	for (size_t i = 0; i < nlen; i++)
		out[(*pos)++] = word[i] == '-' ? '_' : word[i];
	out[(*pos)++] = '\0';
	memcpy(out + *pos, eq + 1, vlen + 1);
	*pos += vlen + 1;
	return 0;
}

static int
split(const char *opts, char *w, char *arg, char *out, size_t outcap, char *err, size_t errcap)
{
	const char *p = opts;
	size_t		pos = 0;
	int			count = 0;

	for (;;)
	{
		long		n = next_word(&p, w);

		if (n < 0)
			break;
		if (n == 0)
			continue;			/* a lone backslash: an empty word, nothing to set */
		if (w[0] != '-' || n == 1)
		{
			snprintf(err, errcap, "invalid command-line argument in options: %s", w);
			return -1;
		}
		if (w[1] == 'c' || w[1] == '-')
		{
			const char *sw = w[1] == 'c' ? "-c" : "--";
			const char *setting;

			if (w[2] != '\0')
				setting = w + 2;	/* -cname=value, --name=value */
			else if (w[1] == '-')
			{
				snprintf(err, errcap, "invalid command-line argument in options: --");
				return -1;
			}
			else
			{
				/* -c name=value: the setting is the next word */
				if (next_word(&p, arg) < 0)
				{
					snprintf(err, errcap, "-c requires a value (name=value)");
					return -2;
				}
				setting = arg;
			}
			{
				int			r = put_setting(setting, out, outcap, &pos, sw, err, errcap);

				if (r < 0)
					return r;
			}
			count++;
			continue;
		}
		snprintf(err, errcap, "unsupported switch in options: %s (pgbun accepts -c name=value and --name=value)", w);
		return -1;
	}
	return count;
}

int
startup_options_split(const char *opts, char *out, size_t outcap, char *err, size_t errcap)
{
	/* no word is longer than opts itself */
	size_t		cap = strlen(opts) + 1;
	char	   *w = malloc(cap);
	char	   *arg = malloc(cap);
	int			n;

	err[0] = '\0';
	if (!w || !arg)
	{
		snprintf(err, errcap, "out of memory");
		n = -1;
	}
	else
		n = split(opts, w, arg, out, outcap, err, errcap);
	free(w);
	free(arg);
	return n;
}

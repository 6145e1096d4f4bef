/*
 * params.c - packed parameter sets and the SET commands between them (params.h).
 */
#include "postgres.h"

#include <ctype.h>

#include "common/hashfn.h"

#include "params.h"

/*
 * The parameters that follow a client: the ones PostgreSQL reports with
 * ParameterStatus (so pgbun sees every change) plus a few common startup
 * options. Names are matched case-insensitively, as the server does.
 */
static const char *const tracked[] = {
	"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"standard_conforming_strings", "search_path", "extra_float_digits", NULL
};
#define N_BUILTIN (lengthof(tracked) - 1)

/*
 * pgbun.track_extra_parameters: more startup parameters to carry. The server
 * does not report them, so pgbun records what it set on each server, and a
 * client that never gave one gets RESET (stored as PARAMS_DEFAULT) rather
 * than the previous client's value.
 */
static char extra[PARAMS_MAX_EXTRA][PARAMS_NAME_MAX];
static int	n_extra = 0;

/* The i-th tracked name (built-in ones first), NULL past the end. */
static const char *
tracked_at(int i)
{
	if (i < (int) N_BUILTIN)
		return tracked[i];
	i -= N_BUILTIN;
	return i < n_extra ? extra[i] : NULL;
}

int
params_set_extra(const char *list, bool apply)
{
	char		copy[PARAMS_MAX_EXTRA * PARAMS_NAME_MAX];
	char		names[PARAMS_MAX_EXTRA][PARAMS_NAME_MAX];
	char	   *save = NULL;
	int			n = 0;

	if (strlen(list) >= sizeof(copy))
		return -1;
	strlcpy(copy, list, sizeof(copy));
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
	{
		bool		known = false;

		for (const char *p = tok; *p; p++)
			if (!isalnum((unsigned char) *p) && *p != '_' && *p != '.')
				return -1;
		if (strlen(tok) >= PARAMS_NAME_MAX || n >= PARAMS_MAX_EXTRA)
			return -1;
		for (int i = 0; i < (int) N_BUILTIN; i++)
			known |= pg_strcasecmp(tracked[i], tok) == 0;
		for (int i = 0; i < n; i++)
			known |= pg_strcasecmp(names[i], tok) == 0;
		if (!known)
			strlcpy(names[n++], tok, PARAMS_NAME_MAX);
	}
	if (apply)
	{
		memcpy(extra, names, sizeof(names));
		n_extra = n;
	}
	return n;
}

const char *
params_tracked_name(const char *name)
{
	const char *t;

	for (int i = 0; (t = tracked_at(i)) != NULL; i++)
		if (pg_strcasecmp(t, name) == 0)
			return t;
	return NULL;
}

const char *
params_get(const char *block, uint16 len, const char *name)
{
	const char *p = block;
	const char *end = block ? block + len : NULL;	/* NULL + 0 is undefined (UBSan) */

	while (block && p < end)
	{
		const char *value = p + strlen(p) + 1;

		if (value >= end)
			break;
		if (pg_strcasecmp(p, name) == 0)
			return value;
		p = value + strlen(value) + 1;
	}
	return NULL;
}

bool
params_set(char **block, uint16 *len, const char *name, const char *value)
{
	size_t		nlen = strlen(name) + 1;
	size_t		vlen = strlen(value) + 1;
	const char *old = params_get(*block, *len, name);
	size_t		newlen;
	char	   *nb;
	char	   *w;
	const char *p;

	if (old && strcmp(old, value) == 0)
		return true;
	newlen = *len + nlen + vlen;
	if (newlen > PG_UINT16_MAX)
		return false;
	nb = malloc(newlen);
	if (!nb)
		return false;
	/* copy every other pair, then append the new one */
	w = nb;
	for (p = *block; *block && p < *block + *len;)
	{
		const char *v = p + strlen(p) + 1;
		size_t		pairlen = (v + strlen(v) + 1) - p;

		if (pg_strcasecmp(p, name) != 0)
		{
			memcpy(w, p, pairlen);
			w += pairlen;
		}
		p += pairlen;
	}
	memcpy(w, name, nlen);
	w += nlen;
	memcpy(w, value, vlen);
	w += vlen;
	free(*block);
	*block = nb;
	*len = (uint16) (w - nb);
	return true;
}

/* Append value as an SQL literal; E'' with doubled backslashes when needed. */
static int
append_literal(char *out, int pos, int cap, const char *value)
{
	bool		has_backslash = strchr(value, '\\') != NULL;

	if (has_backslash)
	{
		if (pos + 1 >= cap)
			return -1;
		out[pos++] = 'E';
	}
	/* room for both quotes and the NUL even when the value is empty */
	if (pos + 2 >= cap)
		return -1;
	out[pos++] = '\'';
	for (const char *p = value; *p; p++)
	{
		int			need = (*p == '\'' || *p == '\\') ? 2 : 1;

		if (pos + need + 2 >= cap)
			return -1;
		if (need == 2)
			out[pos++] = *p;
		out[pos++] = *p;
	}
	out[pos++] = '\'';
	out[pos] = '\0';
	return pos;
}

int
params_build_set_sql(const char *want, uint16 want_len, const char *have, uint16 have_len,
					 const char *defaults, uint16 defaults_len, char *out, int outcap)
{
	int			pos = 0;
	const char *name;

	out[0] = '\0';
	for (int i = 0; (name = tracked_at(i)) != NULL; i++)
	{
		const char *w = params_get(want, want_len, name);
		const char *h = params_get(have, have_len, name);
		bool		list;
		int			n;

		if (i >= (int) N_BUILTIN)
		{
			/* an extra one: unset means the server's default */
			if (strcmp(w ? w : PARAMS_DEFAULT, h ? h : PARAMS_DEFAULT) == 0)
				continue;
			if (!w || strcmp(w, PARAMS_DEFAULT) == 0)
			{
				n = snprintf(out + pos, outcap - pos, "RESET %s;", name);
				if (n < 0 || n >= outcap - pos)
					return -1;
				pos += n;
				continue;
			}
		}
		if (!w)
			w = params_get(defaults, defaults_len, name);
		if (!w || (h && strcmp(w, h) == 0))
			continue;
		/* a parameter the server never reported and the client never set: leave it */
		if (!h && !params_get(want, want_len, name))
			continue;
		/*
		 * SET quotes each string of a list setting as an identifier, so SET
		 * search_path = 'a, b' would pick the one schema "a, b"; set_config()
		 * takes the text as the startup packet (or ParameterStatus) gave it.
		 */
		list = strcmp(name, "search_path") == 0;
		n = snprintf(out + pos, outcap - pos, list ? "SELECT pg_catalog.set_config('%s', " : "SET %s = ",
					 name);
		if (n < 0 || n >= outcap - pos)
			return -1;
		pos += n;
		pos = append_literal(out, pos, outcap, w);
		if (pos < 0)
			return -1;
		n = snprintf(out + pos, outcap - pos, "%s", list ? ", false);" : ";");
		if (n < 0 || n >= outcap - pos)
			return -1;
		pos += n;
	}
	return pos;
}

uint64
params_fingerprint(const char *block, uint16 len, const char *defaults, uint16 defaults_len)
{
	uint64		fp = 0;
	const char *name;

	for (int i = 0; (name = tracked_at(i)) != NULL; i++)
	{
		const char *v = params_get(block, len, name);

		if (!v)
			v = (i >= (int) N_BUILTIN) ? PARAMS_DEFAULT : params_get(defaults, defaults_len, name);
		/* position-dependent mix; an absent value hashes differently from '' */
		fp = hash_combine64(fp, v ? hash_bytes_extended((const unsigned char *) v, (int) strlen(v), (uint64) i)
							: (uint64) i + 0x9E3779B97F4A7C15ULL);
	}
	return fp;
}

bool
params_note_extra(const char *want, uint16 want_len, char **have, uint16 *have_len)
{
	for (int i = 0; i < n_extra; i++)
	{
		const char *w = params_get(want, want_len, extra[i]);

		if (!params_set(have, have_len, extra[i], w ? w : PARAMS_DEFAULT))
			return false;
	}
	return true;
}

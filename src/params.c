/*
 * params.c - packed parameter sets and the SET commands between them (params.h).
 */
#include "postgres.h"

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

const char *
params_tracked_name(const char *name)
{
	for (int i = 0; tracked[i]; i++)
		if (pg_strcasecmp(tracked[i], name) == 0)
			return tracked[i];
	return NULL;
}

const char *
params_get(const char *block, uint16 len, const char *name)
{
	const char *p = block;
	const char *end = block + len;

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

	out[0] = '\0';
	for (int i = 0; tracked[i]; i++)
	{
		const char *w = params_get(want, want_len, tracked[i]);
		const char *h = params_get(have, have_len, tracked[i]);
		bool		list;
		int			n;

		if (!w)
			w = params_get(defaults, defaults_len, tracked[i]);
		if (!w || (h && strcmp(w, h) == 0))
			continue;
		/* a parameter the server never reported and the client never set: leave it */
		if (!h && !params_get(want, want_len, tracked[i]))
			continue;
		/*
		 * SET quotes each string of a list setting as an identifier, so SET
		 * search_path = 'a, b' would pick the one schema "a, b"; set_config()
		 * takes the text as the startup packet (or ParameterStatus) gave it.
		 */
		list = strcmp(tracked[i], "search_path") == 0;
		n = snprintf(out + pos, outcap - pos, list ? "SELECT pg_catalog.set_config('%s', " : "SET %s = ",
					 tracked[i]);
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

	for (int i = 0; tracked[i]; i++)
	{
		const char *v = params_get(block, len, tracked[i]);

		if (!v)
			v = params_get(defaults, defaults_len, tracked[i]);
		/* position-dependent mix; an absent value hashes differently from '' */
		fp = hash_combine64(fp, v ? hash_bytes_extended((const unsigned char *) v, (int) strlen(v), (uint64) i)
							: (uint64) i + 0x9E3779B97F4A7C15ULL);
	}
	return fp;
}

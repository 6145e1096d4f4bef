/*
 * params.c - packed parameter sets and the SET commands between them (params.h).
 */
#include "postgres.h"

#include <ctype.h>

#include "common/hashfn.h"

#include "params.h"

/*
 * The parameters every client carries, set or not: the ones PostgreSQL
 * reports with ParameterStatus and a session may set (so pgbun sees every
 * change) plus search_path and extra_float_digits, which drivers send at
 * connect time. Names are matched case-insensitively, as the server does.
 * Other parameters a client gave at connect time follow that client only.
 */
static const char *const tracked[] = {
	"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"standard_conforming_strings", "search_path", "extra_float_digits",
	"default_transaction_read_only", NULL
};
#define N_BUILTIN (lengthof(tracked) - 1)

/* Built-in names set with SET; the others with set_config() (value as given, lists unquoted). */
#define SET_WITH_SET(i) ((i) < (int) N_BUILTIN && strcmp(tracked[i], "search_path") != 0)

/*
 * pgbun.track_extra_parameters: more names every client carries. The server
 * does not report them, so pgbun records what it set on each server, and a
 * client that never gave one gets RESET rather than the previous client's
 * value.
 */
static char extra[PARAMS_MAX_EXTRA][PARAMS_NAME_MAX];
static int	n_extra = 0;

/* Every tracked name's length (built-in ones first): a cheap test before the compare. */
#define N_TRACKED_MAX (N_BUILTIN + PARAMS_MAX_EXTRA)
static size_t tracked_len[N_TRACKED_MAX];
static bool tracked_len_builtin_done = false;

/* The i-th tracked name (built-in ones first), NULL past the end. */
static const char *
tracked_at(int i)
{
	if (i < (int) N_BUILTIN)
		return tracked[i];
	i -= N_BUILTIN;
	return i < n_extra ? extra[i] : NULL;
}

ParamSet *
params_snapshot(const char *block, uint16 len)
{
	ParamSet   *ps = malloc(offsetof(ParamSet, data) + len + 1);

	if (!ps)
		return NULL;
	ps->refs = 1;
	ps->len = len;
	if (len)
		memcpy(ps->data, block, len);
	ps->data[len] = '\0';
	return ps;
}

void
params_snapshot_release(ParamSet *ps)
{
	if (ps && --ps->refs == 0)
		free(ps);
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
		for (int i = 0; i < n; i++)
			tracked_len[N_BUILTIN + i] = strlen(extra[i]);
	}
	return n;
}

/* Index of a tracked name of length len, or -1. */
static int
tracked_index_len(const char *name, size_t len)
{
	const char *t;

	if (!tracked_len_builtin_done)
	{
		for (int i = 0; i < (int) N_BUILTIN; i++)
			tracked_len[i] = strlen(tracked[i]);
		tracked_len_builtin_done = true;
	}
	for (int i = 0; (t = tracked_at(i)) != NULL; i++)
		if (tracked_len[i] == len && pg_strcasecmp(t, name) == 0)
			return i;
	return -1;
}

/* Index of a tracked name, or -1. */
static int
tracked_index(const char *name)
{
	return tracked_index_len(name, strlen(name));
}

const char *
params_tracked_name(const char *name)
{
	int			i = tracked_index(name);

	return i >= 0 ? tracked_at(i) : NULL;
}

const char *
params_get(const char *block, uint16 len, const char *name)
{
	const char *p = block;
	const char *end = block ? block + len : NULL;	/* NULL + 0 is undefined (UBSan) */
	size_t		name_len = strlen(name);

	while (block && p < end)
	{
		size_t		plen = strlen(p);
		const char *value = p + plen + 1;

		if (value >= end)
			break;
		/* the lengths differ for almost every pair: compare only when they agree */
		if (plen == name_len && pg_strcasecmp(p, name) == 0)
			return value;
		p = value + strlen(value) + 1;
	}
	return NULL;
}

int
params_count(const char *block, uint16 len)
{
	int			n = 0;

	for (const char *p = block; block && p < block + len; n++)
	{
		p += strlen(p) + 1;
		p += strlen(p) + 1;
	}
	return n;
}

/* Copy block without name's pair into w; returns the bytes written. */
static size_t
copy_without(const char *block, uint16 len, const char *name, char *w)
{
	char	   *start = w;

	for (const char *p = block; block && p < block + len;)
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
	return w - start;
}

bool
params_set(char **block, uint16 *len, const char *name, const char *value)
{
	size_t		nlen = strlen(name) + 1;
	size_t		vlen = strlen(value) + 1;
	const char *old = params_get(*block, *len, name);
	size_t		newlen;
	char	   *nb;
	size_t		w;

	if (old && strcmp(old, value) == 0)
		return true;
	newlen = *len + nlen + vlen;
	if (newlen > PG_UINT16_MAX)
		return false;
	nb = malloc(newlen);
	if (!nb)
		return false;
	/* copy every other pair, then append the new one */
	w = copy_without(*block, *len, name, nb);
	memcpy(nb + w, name, nlen);
	w += nlen;
	memcpy(nb + w, value, vlen);
	w += vlen;
	free(*block);
	*block = nb;
	*len = (uint16) w;
	return true;
}

void
params_remove(char **block, uint16 *len, const char *name)
{
	if (!params_get(*block, *len, name))
		return;
	/* in place: the pairs after it move down */
	*len = (uint16) copy_without(*block, *len, name, *block);
	if (*len == 0)
	{
		free(*block);
		*block = NULL;
	}
}

/* Append value as an SQL literal; E'' with doubled backslashes when needed. */
static int
append_literal(char *out, int pos, int cap, const char *value)
{
	bool		has_backslash = strchr(value, '\\') != NULL;

	if (pos < 0)
		return -1;
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

/* Append text; -1 once anything did not fit. */
static int
append_text(char *out, int pos, int cap, const char *text)
{
	int			n;

	if (pos < 0)
		return -1;
	n = snprintf(out + pos, cap - pos, "%s", text);
	return (n < 0 || n >= cap - pos) ? -1 : pos + n;
}

/* SET name to value: SET for the simple built-in names, set_config() for the rest. */
static int
append_set(char *out, int pos, int cap, const char *name, int index, const char *value)
{
	if (index >= 0 && SET_WITH_SET(index))
	{
		pos = append_text(out, pos, cap, "SET ");
		pos = append_text(out, pos, cap, name);
		pos = append_text(out, pos, cap, " = ");
		pos = append_literal(out, pos, cap, value);
		return append_text(out, pos, cap, ";");
	}
	/*
	 * SET quotes each string of a list setting as an identifier, so SET
	 * search_path = 'a, b' would pick the one schema "a, b"; set_config()
	 * takes the text as the startup packet (or ParameterStatus) gave it,
	 * and any name, also one with a reserved word after its dot.
	 */
	pos = append_text(out, pos, cap, "SELECT pg_catalog.set_config(");
	pos = append_literal(out, pos, cap, name);
	pos = append_text(out, pos, cap, ", ");
	pos = append_literal(out, pos, cap, value);
	return append_text(out, pos, cap, ", false);");
}

/* RESET name (quoted unless built in: names are letters, digits, _ . $ only). */
static int
append_reset(char *out, int pos, int cap, const char *name, int index)
{
	bool		quote = !(index >= 0 && index < (int) N_BUILTIN);

	pos = append_text(out, pos, cap, quote ? "RESET \"" : "RESET ");
	pos = append_text(out, pos, cap, name);
	return append_text(out, pos, cap, quote ? "\";" : ";");
}

int
params_build_set_sql(const ParamsState *st, char *out, int outcap)
{
	int			pos = 0;
	const char *name;
	const char *p;

	out[0] = '\0';
	if (st->dirty)
	{
		/* whatever the server holds: its defaults, then every value the client has */
		pos = append_text(out, pos, outcap, "RESET ALL;");
		for (int i = 0; (name = tracked_at(i)) != NULL; i++)
		{
			const char *w = params_get(st->want, st->want_len, name);

			if (w)
				pos = append_set(out, pos, outcap, name, i, w);
		}
		for (p = st->want; p && p < st->want + st->want_len;)
		{
			const char *v = p + strlen(p) + 1;

			if (tracked_index(p) < 0)
				pos = append_set(out, pos, outcap, p, -1, v);
			p = v + strlen(v) + 1;
		}
		return pos;
	}
	for (int i = 0; (name = tracked_at(i)) != NULL; i++)
	{
		const char *w = params_get(st->want, st->want_len, name);
		const char *h = params_get(st->reported, st->reported_len, name);

		/* a reported name the client never set: the default it was welcomed with */
		if (!w)
			w = params_get(st->defaults, st->defaults_len, name);
		if (!w && h)
			continue;			/* reported, but unknown to the client's welcome: leave it */
		if (!h)
			h = params_get(st->set, st->set_len, name);
		if ((!w && !h) || (w && h && strcmp(w, h) == 0 && !params_is_own_set(st, name, w)))
			continue;
		pos = w ? append_set(out, pos, outcap, name, i, w) : append_reset(out, pos, outcap, name, i);
	}
	/* the client's own parameters */
	for (p = st->want; p && p < st->want + st->want_len;)
	{
		const char *v = p + strlen(p) + 1;

		if (tracked_index(p) < 0)
		{
			const char *h = params_get(st->reported, st->reported_len, p);

			if (!h)
				h = params_get(st->set, st->set_len, p);
			if (!h || strcmp(h, v) != 0)
				pos = append_set(out, pos, outcap, p, -1, v);
		}
		p = v + strlen(v) + 1;
	}
	/* ... and those set there for someone else: back to the default */
	for (p = st->set; p && p < st->set + st->set_len;)
	{
		const char *v = p + strlen(p) + 1;

		if (tracked_index(p) < 0 && !params_get(st->want, st->want_len, p))
			pos = append_reset(out, pos, outcap, p, -1);
		p = v + strlen(v) + 1;
	}
	return pos;
}

bool
params_note_set(const ParamsState *st, char **set, uint16 *set_len)
{
	char	   *nb = NULL;
	uint16		nl = 0;

	for (const char *p = st->want; p && p < st->want + st->want_len;)
	{
		const char *v = p + strlen(p) + 1;

		if (!params_get(st->reported, st->reported_len, p) && !params_set(&nb, &nl, p, v))
		{
			free(nb);
			return false;
		}
		p = v + strlen(v) + 1;
	}
	free(*set);
	*set = nb;
	*set_len = nl;
	return true;
}

/* Order-independent hash of one name/value pair (the name's case does not matter). */
static uint64
pair_hash(const char *name, const char *value)
{
	char		lower[PARAMS_NAME_MAX * 2];
	size_t		n = strlen(name);

	if (n >= sizeof(lower))
		n = sizeof(lower) - 1;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char) pg_tolower((unsigned char) name[i]);
	return hash_combine64(hash_bytes_extended((const unsigned char *) lower, (int) n, 0x5bd1e995),
						  hash_bytes_extended((const unsigned char *) value, (int) strlen(value), 1));
}

/* Position-dependent mix of a tracked value; an absent value hashes differently from ''. */
static uint64
mix_tracked(uint64 fp, int i, const char *v)
{
	return hash_combine64(fp, v ? hash_bytes_extended((const unsigned char *) v, (int) strlen(v), (uint64) i)
						  : (uint64) i + 0x9E3779B97F4A7C15ULL);
}

/*
 * The tracked values of a block, by index, into vals (entries already set
 * are kept: the first block given wins, and within a block its first pair,
 * as params_get answers). With own, returns the order-independent hash of
 * the untracked pairs. One walk of the block, instead of a look-up per name.
 */
static uint64
collect_tracked(const char *block, uint16 len, const char **vals, bool own_wanted)
{
	uint64		own = 0;

	for (const char *p = block; p && p < block + len;)
	{
		size_t		plen = strlen(p);
		const char *v = p + plen + 1;
		int			i = tracked_index_len(p, plen);

		if (i < 0)
		{
			if (own_wanted)
				own += pair_hash(p, v);
		}
		else if (!vals[i])
			vals[i] = v;
		p = v + strlen(v) + 1;
	}
	return own;
}

/*
 * Every tracked value (from first, else from second) mixed by position,
 * combined with the untracked pairs of the block that owns them.
 */
static uint64
fingerprint(const char *first, uint16 first_len, bool own_first,
			const char *second, uint16 second_len, bool own_second)
{
	const char *vals[N_TRACKED_MAX] = {0};
	uint64		fp = 0;
	uint64		own;
	int			n = (int) N_BUILTIN + n_extra;

	own = collect_tracked(first, first_len, vals, own_first);
	own += collect_tracked(second, second_len, vals, own_second);
	for (int i = 0; i < n; i++)
		fp = mix_tracked(fp, i, vals[i]);
	return hash_combine64(fp, own);
}

uint64
params_client_fingerprint(const char *want, uint16 want_len, const char *defaults, uint16 defaults_len)
{
	/* a tracked name the client never gave: the default it was welcomed with */
	return fingerprint(want, want_len, true, defaults, defaults_len, false);
}

uint64
params_server_fingerprint(const char *reported, uint16 reported_len, const char *set, uint16 set_len)
{
	/* what the server reported wins over what pgbun remembers setting */
	return fingerprint(reported, reported_len, false, set, set_len, true);
}

bool
params_is_own_set(const ParamsState *st, const char *name, const char *want)
{
	const char *given = params_get(st->startup, st->startup_len, name);

	return given && strcmp(given, want) != 0;
}

int
params_build_restore_sql(const char *startup, uint16 len, char *out, int outcap)
{
	int			pos = 0;
	bool		first = true;

	out[0] = '\0';
	if (!startup || len == 0)
		return 0;
	pos = append_text(out, pos, outcap,
					  "SELECT pg_catalog.set_config(s.name, v.val, false) FROM (VALUES ");
	for (const char *p = startup; p < startup + len;)
	{
		const char *v = p + strlen(p) + 1;

		pos = append_text(out, pos, outcap, first ? "(" : ", (");
		pos = append_literal(out, pos, outcap, p);
		pos = append_text(out, pos, outcap, ", ");
		pos = append_literal(out, pos, outcap, v);
		pos = append_text(out, pos, outcap, ")");
		first = false;
		p = v + strlen(v) + 1;
	}
	pos = append_text(out, pos, outcap,
					  ") AS v(name, val) JOIN pg_catalog.pg_settings s ON lower(s.name) = lower(v.name)"
					  " WHERE s.source <> 'session';");
	return pos;
}

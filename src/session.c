/*
 * session.c - session parameters that are each client's own (session.h).
 *
 * Per client: its connect-time values (c->startup: startup packet and
 * options, validated here against the server's GUCs), its wanted values
 * (c->params: those, updated by the ParameterStatus its server reports
 * while linked to it) and the welcome it was shown (c->welcome: the
 * reported parameters' defaults).
 *
 * Per server: what it reported (s->params), what pgbun set there of the
 * parameters it does not report (s->set; absent means the default), and
 * whether a client's own SET or RESET may have changed anything pgbun cannot
 * see (s->dirty: the next link starts with RESET ALL).
 *
 * A client's RESET / RESET ALL / DISCARD ALL sets c->reapply: once the
 * server is at rest (ReadyForQuery 'I', nothing in flight) pgbun puts back
 * the client's connect-time values of every parameter the server no longer
 * holds as a session value, as PostgreSQL's own RESET does, and forwards
 * the resulting ParameterStatus to the client.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"

#include "config.h"
#include "params.h"
#include "prepared.h"
#include "proto.h"
#include "session.h"

/* Hidden SET/RESET text: fits the carried bounds (PARAMS_MAX_*) with room to spare. */
#define SESSION_SQL_MAX (SBUF_SIZE - 1024)

static char sql_buf[SESSION_SQL_MAX];

/* Scratch memory for GUC value checks, reset after each one. */
static MemoryContext check_cxt = NULL;

/* ---- validation of connect-time settings ---- */

/*
 * Names found before, by their lower-case spelling: every login looks up
 * the same few, and a GUC's record never moves once defined (the worker
 * loads no module after start).
 */
#define GUC_CACHE 64
#define GUC_CACHE_NAME 64

typedef struct GucCacheEntry
{
	char		lower[GUC_CACHE_NAME];
	struct config_generic *rec;
} GucCacheEntry;

static GucCacheEntry guc_cache[GUC_CACHE];

/* The server's GUC of this name (any case), or NULL. */
static struct config_generic *
guc_find(const char *name)
{
	struct config_generic **vars;
	int			n;
	char		lower[GUC_CACHE_NAME];
	size_t		len = strlen(name);
	GucCacheEntry *e = NULL;

	if (len < sizeof(lower))
	{
		for (size_t i = 0; i <= len; i++)
			lower[i] = (char) pg_tolower((unsigned char) name[i]);
		e = &guc_cache[hash_bytes((const unsigned char *) lower, (int) len) % GUC_CACHE];
		if (e->rec && strcmp(e->lower, lower) == 0)
			return e->rec;
	}
	vars = get_guc_variables();
	n = GetNumConfigOptions();
	for (int i = 0; i < n; i++)
		if (vars[i] && pg_strcasecmp(vars[i]->name, name) == 0)
		{
			/* a placeholder may yet become a real GUC: only real ones are kept */
			if (e && !(vars[i]->flags & GUC_CUSTOM_PLACEHOLDER))
			{
				memcpy(e->lower, lower, len + 1);
				e->rec = vars[i];
			}
			return vars[i];
		}
	return NULL;
}

/* A custom (extension) name: identifiers joined by dots, at least one dot, as PostgreSQL wants. */
static bool
custom_name_ok(const char *name)
{
	bool		dot = false;
	bool		start = true;

	for (const char *p = name; *p; p++)
	{
		unsigned char ch = (unsigned char) *p;

		if (ch == '.')
		{
			if (start)
				return false;
			dot = true;
			start = true;
		}
		else if (isalpha(ch) || ch == '_' || ch >= 0x80)
			start = false;
		else if (!start && (isdigit(ch) || ch == '$'))
			continue;
		else
			return false;
	}
	return dot && !start;
}

typedef struct CheckFailure
{
	char		sqlstate[6];
	char		message[256];
} CheckFailure;

static bool
refuse(CheckFailure *f, const char *sqlstate, const char *fmt, const char *name)
{
	strlcpy(f->sqlstate, sqlstate, sizeof(f->sqlstate));
	snprintf(f->message, sizeof(f->message), fmt, name);
	return false;
}

/*
 * Values found valid before (drivers send the same few at every login). A
 * check hook's answer for a name and value does not change while the
 * server runs; only successes are kept, so a refusal is always explained
 * afresh.
 */
#define VALID_CACHE 32

typedef struct ValidValue
{
	char	   *name;
	char	   *value;
} ValidValue;

static ValidValue valid_cache[VALID_CACHE];

static ValidValue *
valid_slot(const char *name, const char *value)
{
	return &valid_cache[(hash_bytes((const unsigned char *) name, strlen(name)) ^
						 hash_bytes((const unsigned char *) value, strlen(value))) % VALID_CACHE];
}

static void
remember_valid(ValidValue *vv, const char *name, const char *value)
{
	free(vv->name);
	free(vv->value);
	vv->name = strdup(name);
	vv->value = strdup(value);
	if (!vv->name || !vv->value)
	{
		free(vv->name);
		free(vv->value);
		vv->name = vv->value = NULL;
	}
}

/* Would SET name = value succeed for this client (bootstrap privileges, hooks run, nothing changed)? */
static bool
value_ok(const char *name, const char *value, CheckFailure *f)
{
	MemoryContext old;
	volatile bool ok = true;
	ValidValue *vv = valid_slot(name, value);

	if (vv->name && strcmp(vv->name, name) == 0 && strcmp(vv->value, value) == 0)
		return true;
	if (!check_cxt)
		check_cxt = AllocSetContextCreate(TopMemoryContext, "pgbun startup settings",
										  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(check_cxt);
	PG_TRY();
	{
		(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
								 false, ERROR, false);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(check_cxt);
		ed = CopyErrorData();
		FlushErrorState();
		strlcpy(f->sqlstate, unpack_sql_state(ed->sqlerrcode), sizeof(f->sqlstate));
		strlcpy(f->message, ed->message ? ed->message : "invalid value", sizeof(f->message));
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(check_cxt);
	if (ok)
		remember_valid(vv, name, value);
	return ok;
}

/*
 * How the server will report name = value in its ParameterStatus (its check
 * hook's canonical form through its show hook: DateStyle 'sql' is 'SQL, MDY',
 * TimeZone 'utc' is 'UTC'), so the welcome says what a direct login says.
 * The value is set in a transaction of the worker's own that is then aborted,
 * which puts the worker's setting back (GUC changes unwind with it). Answers
 * are cached: drivers send the same few values at every login.
 * false: keep the value as given.
 */
#define REPORTED_CACHE 32

typedef struct ReportedForm
{
	char	   *name;
	char	   *value;
	char	   *shown;
} ReportedForm;

static ReportedForm reported_cache[REPORTED_CACHE];

static bool
reported_form(const char *name, const char *value, char *out, size_t outlen)
{
	uint32		slot = (hash_bytes((const unsigned char *) name, strlen(name)) ^
						hash_bytes((const unsigned char *) value, strlen(value))) % REPORTED_CACHE;
	ReportedForm *rf = &reported_cache[slot];
	MemoryContext old = CurrentMemoryContext;
	char	   *shown = NULL;
	bool		ok;

	if (rf->name && strcmp(rf->name, name) == 0 && strcmp(rf->value, value) == 0)
		return strlcpy(out, rf->shown, outlen) < outlen;
	if (IsTransactionState())
		return false;			/* never inside someone else's transaction */
	StartTransactionCommand();
	PG_TRY();
	{
		const char *varname;
		char	   *s;

		(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET,
								 true, ERROR, false);
		s = GetConfigOptionByName(name, &varname, false);
		shown = s ? strdup(s) : NULL;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		FlushErrorState();
	}
	PG_END_TRY();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(old);
	if (!shown)
		return false;
	ok = strlcpy(out, shown, outlen) < outlen;
	free(rf->name);
	free(rf->value);
	free(rf->shown);
	rf->name = strdup(name);
	rf->value = strdup(value);
	rf->shown = shown;
	if (!rf->name || !rf->value)
	{
		free(rf->name);
		free(rf->value);
		free(rf->shown);
		rf->name = rf->value = rf->shown = NULL;
	}
	return ok;
}

/*
 * May a session of this role carry name = value? The rules of PostgreSQL's
 * SET, plus what pgbun cannot carry across server connections. *canonical
 * is the server's spelling of the name.
 */
static bool
setting_ok(const char *name, const char *value, bool superuser, const char **canonical,
		   struct config_generic **recp, CheckFailure *f)
{
	struct config_generic *rec = guc_find(name);

	*recp = rec;
	*canonical = name;
	if (!rec || (rec->flags & GUC_CUSTOM_PLACEHOLDER))
	{
		/* an extension's setting the worker does not know: a placeholder, as PostgreSQL accepts */
		if (!custom_name_ok(name))
			return refuse(f, "42704", "unrecognized configuration parameter \"%s\"", name);
		if (pg_strncasecmp(name, "pgbun.", 6) == 0)
			return refuse(f, "42602", "invalid configuration parameter name \"%s\": \"pgbun\" is a reserved prefix", name);
		return true;
	}
	*canonical = rec->name;
	if (rec->flags & GUC_NO_RESET_ALL)
		return refuse(f, "0A000", "parameter \"%s\" cannot be carried across pooled server connections", rec->name);
	switch (rec->context)
	{
		case PGC_INTERNAL:
			return refuse(f, "55P02", "parameter \"%s\" cannot be changed", rec->name);
		case PGC_POSTMASTER:
			return refuse(f, "55P02", "parameter \"%s\" cannot be changed without restarting the server", rec->name);
		case PGC_SIGHUP:
			return refuse(f, "55P02", "parameter \"%s\" cannot be changed now", rec->name);
		case PGC_SU_BACKEND:
			if (!superuser)
				return refuse(f, "42501", "permission denied to set parameter \"%s\"", rec->name);
			/* FALLTHROUGH */
		case PGC_BACKEND:
			return refuse(f, "55P02", "parameter \"%s\" can only be set when a session starts, and pgbun's server connections are shared", rec->name);
		case PGC_SUSET:
			if (!superuser)
				return refuse(f, "42501", "permission denied to set parameter \"%s\"", rec->name);
			break;
		case PGC_USERSET:
			break;
	}
	return value_ok(rec->name, value, f);
}

bool
session_client_login(Client *c, bool superuser)
{
	char	   *nb = NULL;
	uint16		nl = 0;

	for (const char *p = c->params; p && p < c->params + c->params_len;)
	{
		const char *v = p + strlen(p) + 1;
		const char *canonical;
		struct config_generic *rec;
		char		shown[PARAMS_MAX_BYTES];
		CheckFailure f;

		if (!setting_ok(p, v, superuser, &canonical, &rec, &f))
		{
			free(nb);
			client_close(c, f.sqlstate, "%s", f.message);
			return false;
		}
		/* a reported parameter is kept (and shown) in the server's spelling */
		if (rec && (rec->flags & GUC_REPORT) && reported_form(canonical, v, shown, sizeof(shown)))
			v = shown;
		if (!params_set(&nb, &nl, canonical, v))
		{
			free(nb);
			client_close(c, "53200", "out of memory for startup parameters");
			return false;
		}
		p = p + strlen(p) + 1;
		p = p + strlen(p) + 1;
	}
	free(c->params);
	c->params = nb;
	c->params_len = nl;
	c->params_fp_valid = false;
	c->startup = nl ? malloc(nl) : NULL;
	if (nl && !c->startup)
	{
		client_close(c, "53200", "out of memory for startup parameters");
		return false;
	}
	if (nl)
		memcpy(c->startup, nb, nl);
	c->startup_len = nl;
	return true;
}

void
session_client_welcomed(Client *c)
{
	if (!c->welcome && c->pool->welcome)
	{
		c->welcome = c->pool->welcome;
		c->welcome->refs++;
		c->params_fp_valid = false;
	}
}

void
session_client_free(Client *c)
{
	free(c->startup);
	c->startup = NULL;
	params_snapshot_release(c->welcome);
	c->welcome = NULL;
}

/* ---- linking ---- */

static ParamsState
state_for(Server *s, const char *want, uint16 want_len, Client *c)
{
	ParamsState st;

	st.want = want;
	st.want_len = want_len;
	st.defaults = c->welcome ? c->welcome->data : NULL;
	st.defaults_len = c->welcome ? c->welcome->len : 0;
	st.reported = s->params;
	st.reported_len = s->params_len;
	st.set = s->set;
	st.set_len = s->set_len;
	st.dirty = s->dirty;
	st.startup = c->startup;
	st.startup_len = c->startup_len;
	return st;
}

/* Has the client SET a reported parameter it also gave at connect time (params_is_own_set)? */
static bool
has_own_set(const Client *c)
{
	for (const char *p = c->startup; p && p < c->startup + c->startup_len;)
	{
		const char *v = p + strlen(p) + 1;
		const char *w = params_get(c->params, c->params_len, p);

		if (w && strcmp(w, v) != 0)
			return true;
		p = v + strlen(v) + 1;
	}
	return false;
}

int
session_link(Server *s, Client *c)
{
	ParamsState st;
	int			n;

	if (c->reapply)
	{
		/*
		 * Its RESET / DISCARD ALL could not be followed up on the old server
		 * (it was never at rest): its connect-time values are what it wants.
		 */
		c->reapply = false;
		for (const char *p = c->startup; p && p < c->startup + c->startup_len;)
		{
			const char *v = p + strlen(p) + 1;

			(void) params_set(&c->params, &c->params_len, p, v);
			p = v + strlen(v) + 1;
		}
		c->params_fp_valid = false;
	}
	if (!s->dirty)
	{
		/* the common case, nothing to SET, decided by comparing two cached hashes */
		if (!c->params_fp_valid)
		{
			c->params_fp = params_client_fingerprint(c->params, c->params_len,
													 c->welcome ? c->welcome->data : NULL,
													 c->welcome ? c->welcome->len : 0);
			c->params_fp_valid = true;
		}
		if (!s->params_fp_valid)
		{
			s->params_fp = params_server_fingerprint(s->params, s->params_len, s->set, s->set_len);
			s->params_fp_valid = true;
		}
		if (c->params_fp == s->params_fp && !has_own_set(c))
			return 0;
	}
	st = state_for(s, c->params, c->params_len, c);
	n = params_build_set_sql(&st, sql_buf, sizeof(sql_buf));
	if (n <= 0)
		return n;
	if (!server_queue_query(s, sql_buf))
		return -1;
	/* the server will not report the unreported ones: remember what it was told */
	s->dirty = !params_note_set(&st, &s->set, &s->set_len);
	s->params_fp_valid = false;
	return 1;
}

/* ---- what the server says ---- */

bool
session_parameter_status(Server *s, const uint8 *msg, uint32 size, bool hidden)
{
	ProtoReader r;
	const char *name;
	const char *value;
	const char *key;
	const char *old;
	Client	   *c = s->link;

	proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
	name = proto_read_string(&r);
	value = proto_read_string(&r);
	if (r.error)
		return false;
	(void) params_set(&s->params, &s->params_len, name, value);
	s->params_fp_valid = false;
	if (!c)
		return false;
	/* a tracked name, or one of the client's own */
	key = params_tracked_name(name);
	old = params_get(c->params, c->params_len, key ? key : name);
	if (!key && !old)
		return false;
	if (!key)
		key = name;
	if (!hidden && (c->reapply || s->held_len > 0))
	{
		const char *given = params_get(c->startup, c->startup_len, key);

		/* the restore decides what the client sees (session_release_held) */
		if (c->reapply && given && strcmp(given, value) != 0 &&
			params_set(&s->held, &s->held_len, key, value))
			return true;
		if (params_get(s->held, s->held_len, key))
		{
			/* back to what the client was told before the held value: nothing to say */
			params_remove(&s->held, &s->held_len, key);
			if (old && strcmp(old, value) == 0)
				return true;
		}
	}
	if (hidden)
	{
		/*
		 * pgbun's own SET for this client: what the client wants already,
		 * except where it puts back a value the client's RESET took away,
		 * or spells it as the server does. Those the client must see.
		 */
		if (!old || strcmp(old, value) == 0)
			return false;
	}
	(void) params_set(&c->params, &c->params_len, key, value);
	c->params_fp_valid = false;
	return hidden;
}

void
session_command_complete(Server *s, const char *tag)
{
	Client	   *c = s->link;

	if (strcmp(tag, "SET") == 0)
	{
		/*
		 * SET of a parameter the server may not report: its value is unknown
		 * until pgbun reads back what the client set (session_ready)
		 */
		s->dirty = true;
		if (c && s->link_mode != POOL_MODE_SESSION)
			c->learn = true;	/* (a session-mode client keeps its server) */
	}
	else if (strcmp(tag, "RESET") == 0)
	{
		/* RESET x or RESET ALL: which one, and whether it is rolled back, pgbun cannot tell */
		s->dirty = true;
		if (c)
			c->reapply = c->learn = true;
	}
	else if (strcmp(tag, "DISCARD ALL") == 0)
	{
		/* never inside a transaction block: every setting is at its default now */
		free(s->set);
		s->set = NULL;
		s->set_len = 0;
		s->dirty = false;
		s->params_fp_valid = false;
		if (c)
			c->reapply = c->learn = true;
	}
}

/*
 * Read back the client's own session values of parameters the server does
 * not report (a SET of search_path, statement_timeout, ...), so that they
 * follow the client to its next server connection as its connect-time
 * values do. Last of pgbun's hidden queries: its rows come when one is left.
 */
static bool
queue_learn(Server *s, Client *c)
{
	c->learn = false;
	/* its column name tells its rows from those of pgbun's other hidden queries */
	if (!server_queue_query(s, "SELECT name AS pgbun_learned, pg_catalog.current_setting(name)"
							" FROM pg_catalog.pg_settings WHERE source = 'session'"))
		return false;
	s->learning = true;
	free(s->learned);
	s->learned = NULL;
	s->learned_len = 0;
	s->learn_overflow = false;
	(void) sbuf_flush_out(&s->sb);
	return true;
}

/* The text of column col of a DataRow body, NUL-terminated into out; false if absent or too long. */
static bool
row_column(const uint8 *body, uint32 len, int col, char *out, size_t outlen)
{
	uint32		pos = 2;
	int			n;

	if (len < 2)
		return false;
	n = (body[0] << 8) | body[1];
	for (int i = 0; i < n; i++)
	{
		int32		l;

		if (pos + 4 > len)
			return false;
		l = (int32) ((uint32) body[pos] << 24 | (uint32) body[pos + 1] << 16 |
					 (uint32) body[pos + 2] << 8 | body[pos + 3]);
		pos += 4;
		if (l < 0 || pos + (uint32) l > len)
			return false;
		if (i == col)
		{
			if ((size_t) l >= outlen)
				return false;
			memcpy(out, body + pos, l);
			out[l] = '\0';
			return true;
		}
		pos += (uint32) l;
	}
	return false;
}

/* The learned values become the client's wanted ones and what the server holds. */
static void
learn_finish(Server *s)
{
	Client	   *c = s->link;

	s->learning = false;
	if (!c || s->learn_overflow)
		return;					/* the server stays unknown: RESET ALL before its next use */
	/* the client's unreported values not given at connect time: exactly those read back */
	for (const char *p = c->params; p && p < c->params + c->params_len;)
	{
		const char *v = p + strlen(p) + 1;
		struct config_generic *rec = guc_find(p);
		char		name[NAMEDATALEN];

		strlcpy(name, p, sizeof(name));
		p = v + strlen(v) + 1;
		if ((rec && (rec->flags & GUC_REPORT)) || params_get(c->startup, c->startup_len, name) ||
			params_get(s->learned, s->learned_len, name))
			continue;
		params_remove(&c->params, &c->params_len, name);
		p = c->params;			/* the block moved: start over (it is small) */
	}
	for (const char *p = s->learned; p && p < s->learned + s->learned_len;)
	{
		const char *v = p + strlen(p) + 1;

		if (!params_set(&c->params, &c->params_len, p, v))
			return;
		p = v + strlen(v) + 1;
	}
	c->params_fp_valid = false;
	/* and pgbun knows the server again: it holds exactly those */
	free(s->set);
	s->set = s->learned;
	s->set_len = s->learned_len;
	s->learned = NULL;
	s->learned_len = 0;
	s->dirty = false;
	s->params_fp_valid = false;
}

bool
session_learn_message(Server *s, const ProtoHeader *hdr, const uint8 *msg, uint32 size)
{
	char		name[NAMEDATALEN];
	char		value[1024];
	struct config_generic *rec;

	if (!s->learning)
		return false;
	if (hdr->type == 'T')
	{
		ProtoReader r;
		uint16		n;
		const char *col;

		proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
		n = proto_read_int16(&r);
		col = proto_read_string(&r);
		s->learn_rows = !r.error && n == 2 && col && strcmp(col, "pgbun_learned") == 0;
		return s->learn_rows;
	}
	if (!s->learn_rows)
		return false;
	if (hdr->type == 'C')
	{
		s->learn_rows = false;
		learn_finish(s);
		return true;
	}
	if (hdr->type != 'D')
		return false;
	if (!row_column(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, 0, name, sizeof(name)) ||
		!row_column(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, 1, value, sizeof(value)))
	{
		s->learn_overflow = true;
		return true;
	}
	rec = guc_find(name);
	/* reported ones follow the client by their ParameterStatus; some cannot be carried */
	if (!rec || (rec->flags & (GUC_REPORT | GUC_NO_RESET_ALL)))
		return true;
	if (!params_set(&s->learned, &s->learned_len, rec->name, value) ||
		params_count(s->learned, s->learned_len) > PARAMS_MAX_CARRIED)
		s->learn_overflow = true;
	return true;
}

/* Queue the restore of c's connect-time values on s (at rest). true: queued. */
static bool
queue_restore(Server *s, Client *c)
{
	int			n;

	c->reapply = false;
	n = params_build_restore_sql(c->startup, c->startup_len, sql_buf, sizeof(sql_buf));
	if (n <= 0 || !server_queue_query(s, sql_buf))
		return false;
	if (!s->dirty)
	{
		/* after DISCARD ALL nothing is a session value: every connect-time value is set again */
		ParamsState st = state_for(s, c->startup, c->startup_len, c);

		s->dirty = !params_note_set(&st, &s->set, &s->set_len);
	}
	s->params_fp_valid = false;
	(void) sbuf_flush_out(&s->sb);	/* a failed write shows up on the next one */
	return true;
}

bool
session_ready(Server *s)
{
	Client	   *c = s->link;

	/*
	 * Outside a transaction block (pgbun's query must not run in the
	 * client's: it would take its snapshot, count as its first query) and
	 * with nothing of the client's in flight, so the hidden answers come
	 * next.
	 */
	bool		queued = false;

	if (!c || (!c->reapply && !c->learn) || s->tx_status != 'I' || server_busy(s) ||
		s->hidden_rfq > 0 || sbuf_has_pending_forward(&c->sb))
		return false;
	if (c->reapply)
		queued = queue_restore(s, c);
	if (c->learn)
		queued |= queue_learn(s, c);
	return queued;
}

bool
session_release_held(Server *s)
{
	Client	   *c = s->link;
	bool		ok = true;

	for (const char *p = s->held; c && ok && p && p < s->held + s->held_len;)
	{
		const char *v = p + strlen(p) + 1;
		const char *now = params_get(s->params, s->params_len, p);
		const char *seen = params_get(c->params, c->params_len, p);
		ProtoBuf	pb;

		/* still the server's value after the restore, and not what the client was told */
		if (now && strcmp(now, v) == 0 && (!seen || strcmp(seen, v) != 0))
		{
			ok = sbuf_out_begin(&c->sb, &pb) && proto_put_parameter_status(&pb, p, v) && !pb.overflow;
			if (ok)
			{
				sbuf_out_commit(&c->sb, &pb);
				(void) params_set(&c->params, &c->params_len, p, v);
				c->params_fp_valid = false;
			}
		}
		p = v + strlen(v) + 1;
	}
	free(s->held);
	s->held = NULL;
	s->held_len = 0;
	return ok;
}

bool
session_before_release(Server *s)
{
	Client	   *c = s->link;

	if (!c || !c->reapply || s->tx_status != 'I' || s->hidden_rfq > 0)
		return false;
	return queue_restore(s, c);
}

void
session_hidden_error(Server *s)
{
	s->dirty = true;
	s->learning = s->learn_rows = false;
}

void
session_server_reset(Server *s, const char *query)
{
	const char *q = query;
	size_t		n;

	while (isspace((unsigned char) *q))
		q++;
	n = strlen(q);
	while (n > 0 && (isspace((unsigned char) q[n - 1]) || q[n - 1] == ';'))
		n--;
	if ((n == 11 && pg_strncasecmp(q, "DISCARD ALL", 11) == 0) ||
		(n == 9 && pg_strncasecmp(q, "RESET ALL", 9) == 0))
	{
		free(s->set);
		s->set = NULL;
		s->set_len = 0;
		s->dirty = false;
	}
	else
		s->dirty = true;		/* some other reset query: nothing is known */
	s->params_fp_valid = false;
}

void
session_server_login(Server *s)
{
	Pool	   *pool = s->pool;
	ParamSet   *ps;

	/*
	 * ALTER ROLE / DATABASE ... SET shows up here: new clients get the new
	 * defaults. Compared with the latest of every worker: this login is
	 * (nearly always) newer than that one.
	 */
	(void) session_pool_welcome(pool);
	if (pool->welcome && pool->welcome->len == s->params_len &&
		(s->params_len == 0 || memcmp(pool->welcome->data, s->params, s->params_len) == 0))
		return;
	ps = params_snapshot(s->params, s->params_len);
	if (!ps)
		return;					/* keep the old one */
	params_snapshot_release(pool->welcome);
	pool->welcome = ps;
	pool->welcome_gen = pgbun_pool_welcome_publish(pool->slot, ps->data, ps->len);
}

/*
 * The pool's welcome: the set the latest server login of the pool reported
 * on any worker (shmem.h), so that a worker's client is welcomed as on the
 * others -- at once when this worker has no server of the pool (instead of
 * waiting at login for one of its own, which a full pool may not give it
 * for a long time), and with what ALTER ROLE / DATABASE ... SET changed
 * once any worker's new server login reported it. One atomic read while
 * nothing changed. NULL: no server login anywhere yet.
 */
ParamSet *
session_pool_welcome(Pool *pool)
{
	char		buf[PGBUN_WELCOME_MAX];
	uint64		gen = pgbun_pool_welcome_generation(pool->slot);
	uint16		len;
	ParamSet   *ps;

	if (gen == pool->welcome_gen)
		return pool->welcome;
	len = pgbun_pool_welcome_read(pool->slot, buf, &gen);
	pool->welcome_gen = gen;
	if (len == 0)
		return pool->welcome;	/* too long to share: this worker's own, if any */
	if (pool->welcome && pool->welcome->len == len && memcmp(pool->welcome->data, buf, len) == 0)
		return pool->welcome;
	ps = params_snapshot(buf, len);
	if (ps)						/* on OOM: keep this worker's own, or wait for a server */
	{
		params_snapshot_release(pool->welcome);
		pool->welcome = ps;
	}
	return pool->welcome;
}

void
session_server_free(Server *s)
{
	free(s->learned);
	s->learned = NULL;
	free(s->held);
	s->held = NULL;
	s->held_len = 0;
	free(s->set);
	s->set = NULL;
}

/*
 * prepared.c - named prepared statements across pooled servers, and the
 * per-server request queue (see prepared.h).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/timestamp.h"

#include "config.h"
#include "counters.h"
#include "params.h"
#include "prepared.h"
#include "settings.h"
#include "shmem.h"
#include "slot_index.h"

/* One statement per distinct (query text, parameter types), for the worker's lifetime. */
typedef struct PreparedStmt
{
	struct PreparedStmt *next;	/* hash chain */
	uint64		id;				/* server-side name: pgbun_<id> */
	uint32		refs;			/* client names, server entries, queued Parses using it */
	uint32		name_refs;		/* client names only: while > 0 it counts in the memory budget */
	uint32		hash;
	/*
	 * The search_path its clients gave at connect time (hashed): the text is
	 * resolved against it when Parsed, so clients with another search_path
	 * get a statement of their own (errors at Parse come at Parse).
	 */
	uint32		path;
	/* pools where a server accepted it: a client's Parse there needs no server */
	const Pool *valid_in[4];
	uint8		valid_next;
	uint32		body_len;
	uint8		body[FLEXIBLE_ARRAY_MEMBER];	/* Parse body after the name */
} PreparedStmt;

/*
 * Names and server statements carry the sequence number of the message that
 * made them, so a DISCARD ALL / DEALLOCATE ALL drops only what was made
 * before it in the stream (the client may have pipelined new Parses after
 * it, which pgbun has handled before the server's answer comes).
 */
typedef struct ClientStmt
{
	char	   *name;
	PreparedStmt *stmt;
	uint32		seq;
	uint32		hash;			/* name_hash(name), for the index */
} ClientStmt;

typedef struct ClientStmts
{
	int			n;
	int			cap;
	uint32		seq;			/* the last sequence number given */
	ClientStmt *items;
	SlotIndex	index;			/* by name: a Bind finds its statement in O(1) */
} ClientStmts;

/*
 * A server's statements, in an array (removal moves the last one into the
 * hole) threaded by a list in order of use, so the least recently used one
 * is found in O(1) when the server is at pgbun.max_prepared_statements.
 */
typedef struct ServerStmt
{
	PreparedStmt *stmt;
	uint32		seq;
	int32		older;			/* the position used just before, or -1 */
	int32		newer;			/* the position used just after, or -1 */
} ServerStmt;

typedef struct ServerStmts
{
	int			n;
	int			cap;
	uint32		seq;
	int32		oldest;			/* the least recently used, or -1 */
	int32		newest;			/* the most recently used, or -1 */
	ServerStmt *items;
	SlotIndex	index;			/* by statement */
} ServerStmts;

static uint32
name_hash(const char *name)
{
	return hash_bytes((const unsigned char *) name, (int) strlen(name));
}

static uint32
stmt_hash(const PreparedStmt *st)
{
	return murmurhash32((uint32) st->id) ^ (uint32) (st->id >> 32);
}

/* The stream position now: client names and server statements made so far. */
static void *
stream_mark(Client *c, Server *s)
{
	uint64		cseq = c->stmts ? c->stmts->seq : 0;
	uint64		sseq = s->stmts ? s->stmts->seq : 0;

	/* the top bit set: never NULL, which means "no mark" */
	return (void *) (uintptr_t) (UINT64CONST(1) << 63 | (cseq & 0x7fffffff) << 32 | sseq);
}

/* Owner flags on tracker entries (TrackEntry.uflags). */
#define REQ_FORGET	0x01		/* a Parse creating data (a statement) on the server: forget it if it fails */
#define REQ_USES	0x02		/* a Bind/Describe of statement data: a 26000 means the server lost it */
#define REQ_UNNAMED 0x04		/* a Parse of the unnamed statement; data is its Client.unnamed_id */
#define REQ_CLOSED	0x08		/* pgbun's CloseComplete for a client name; data: the statement to give back if skipped */
#define REQ_DUPLICATE 0x10		/* pgbun's error is 42P05: a name the client has */
#define REQ_BUDGET	0x20		/* pgbun's error is 53200: pgbun.max_prepared_statement_memory */
#define REQ_TOO_LONG 0x40		/* pgbun's error is 54000: a named Parse over 16 kB */
#define REQ_HIDE_ERROR 0x80		/* pgbun's poison message (fail_in_place): its error is replaced */
/* On a REQ_CLOSED entry (the bits above that only poison messages use): */
#define REQ_RECLOSE 0x10		/* a Close of a name an earlier Close in flight took away (see close_in_flight) */
/* On pgbun's own (hidden) Close of a statement it knew the server had: */
#define REQ_UNCLOSE 0x20		/* if the backend skips it, the server still has data (a statement) */
/* On a REQ_RECLOSE entry: the Close before it was skipped, so if this one is skipped too, the name stays */
#define REQ_INHERIT 0x40
/* On a REQ_CLOSED entry: the Parse that made the name did not happen, so a skip gives nothing back */
#define REQ_NAME_GONE 0x01

#define STMT_BUCKETS 4096
#define MAX_EVICTIONS_PER_MISS 8
#define SERVER_NAME_MAX 32

static PreparedStmt *stmt_buckets[STMT_BUCKETS];
static uint64 next_stmt_id = 1;

/*
 * Bytes charged to pgbun.max_prepared_statement_memory: every client name
 * (with its entry), and every statement some client holds a name for.
 * Statements only servers still have are bounded apart: at most
 * max_prepared_statements per server connection, each under 16 kB.
 */
static uint64 budget_used = 0;
static uint64 budget_refusals = 0;	/* since the last log line about them */
static TimestampTz budget_logged_at = 0;

/* What malloc takes beyond the bytes asked for, roughly. */
#define ALLOC_OVERHEAD 16

static uint64
stmt_cost(const PreparedStmt *st)
{
	return offsetof(PreparedStmt, body) + st->body_len + ALLOC_OVERHEAD;
}

static uint64
name_cost(const char *name)
{
	return strlen(name) + 1 + ALLOC_OVERHEAD + sizeof(ClientStmt);
}

static uint64
budget_limit(void)
{
	return (uint64) pgbun_cfg->max_prepared_statement_memory * 1024;
}

/* A client name now points at st: its statement counts while any name does. */
static void
name_ref(PreparedStmt *st)
{
	if (st->name_refs++ == 0)
		budget_used += stmt_cost(st);
}

static void
name_unref(PreparedStmt *st)
{
	if (st->name_refs > 0 && --st->name_refs == 0)
		budget_used -= Min(budget_used, stmt_cost(st));
}

/* ---- the worker's statement cache ---- */

/* The client's connect-time search_path, hashed (0: none given). */
static uint32
client_path(const Client *c)
{
	const char *p = params_get(c->params, c->params_len, "search_path");

	return p ? hash_bytes((const unsigned char *) p, (int) strlen(p)) | 1 : 0;
}

static PreparedStmt *
stmt_find(const uint8 *body, uint32 len, uint32 h, uint32 path)
{
	PreparedStmt *st;

	for (st = stmt_buckets[h % STMT_BUCKETS]; st; st = st->next)
		if (st->hash == h && st->path == path && st->body_len == len && memcmp(st->body, body, len) == 0)
			return st;
	return NULL;
}

static PreparedStmt *
stmt_lookup(const uint8 *body, uint32 len, uint32 path)
{
	return stmt_find(body, len, hash_bytes(body, (int) len) ^ path, path);
}

static PreparedStmt *
stmt_lookup_or_add(const uint8 *body, uint32 len, uint32 path)
{
	uint32		h = hash_bytes(body, (int) len) ^ path;
	PreparedStmt **bucket = &stmt_buckets[h % STMT_BUCKETS];
	PreparedStmt *st = stmt_find(body, len, h, path);

	if (st)
		return st;
	st = malloc(offsetof(PreparedStmt, body) + len);
	if (!st)
		return NULL;
	st->id = next_stmt_id++;
	st->refs = 0;
	st->name_refs = 0;
	memset(st->valid_in, 0, sizeof(st->valid_in));
	st->valid_next = 0;
	st->hash = h;
	st->path = path;
	st->body_len = len;
	memcpy(st->body, body, len);
	st->next = *bucket;
	*bucket = st;
	return st;
}

static void
stmt_ref(PreparedStmt *st)
{
	st->refs++;
}

/* Drop one reference; a statement nobody uses leaves the cache (ids are never reused). */
static void
stmt_unref(PreparedStmt *st)
{
	PreparedStmt **link;

	if (st->refs > 0)
		st->refs--;
	if (st->refs > 0)
		return;
	for (link = &stmt_buckets[st->hash % STMT_BUCKETS]; *link; link = &(*link)->next)
		if (*link == st)
		{
			*link = st->next;
			break;
		}
	free(st);
}

static bool
stmt_valid_in(const PreparedStmt *st, const Pool *pool)
{
	for (int i = 0; i < lengthof(st->valid_in); i++)
		if (st->valid_in[i] == pool)
			return true;
	return false;
}

static void
stmt_mark_valid(PreparedStmt *st, const Pool *pool)
{
	if (stmt_valid_in(st, pool))
		return;
	st->valid_in[st->valid_next] = pool;
	st->valid_next = (st->valid_next + 1) % lengthof(st->valid_in);
}

void
prepared_pool_forget(const Pool *pool)
{
	for (int b = 0; b < STMT_BUCKETS; b++)
		for (PreparedStmt *st = stmt_buckets[b]; st; st = st->next)
			for (int i = 0; i < lengthof(st->valid_in); i++)
				if (st->valid_in[i] == pool)
					st->valid_in[i] = NULL;
}

static int
server_name(const PreparedStmt *st, char *out)
{
	return snprintf(out, SERVER_NAME_MAX, "pgbun_%llu", (unsigned long long) st->id);
}

/* ---- the statements a server has ---- */

static ServerStmt *
server_find(Server *s, const PreparedStmt *st)
{
	ServerStmts *ss = s->stmts;
	uint32		cursor = 0;
	int32		i;

	if (!ss)
		return NULL;
	while ((i = slot_index_next(&ss->index, stmt_hash(st), &cursor)) >= 0)
		if (ss->items[i].stmt == st)
			return &ss->items[i];
	return NULL;
}

/* Take position i out of the order of use. */
static void
lru_unlink(ServerStmts *ss, int32 i)
{
	ServerStmt *it = &ss->items[i];

	if (it->older >= 0)
		ss->items[it->older].newer = it->newer;
	else
		ss->oldest = it->newer;
	if (it->newer >= 0)
		ss->items[it->newer].older = it->older;
	else
		ss->newest = it->older;
}

/* Make position i the most recently used. */
static void
lru_push_newest(ServerStmts *ss, int32 i)
{
	ServerStmt *it = &ss->items[i];

	it->older = ss->newest;
	it->newer = -1;
	if (ss->newest >= 0)
		ss->items[ss->newest].newer = i;
	else
		ss->oldest = i;
	ss->newest = i;
}

/* Drop the entry at position i (the last one moves into its place). */
static void
server_remove_at(ServerStmts *ss, int i)
{
	ServerStmt *moved;

	lru_unlink(ss, i);
	slot_index_remove(&ss->index, stmt_hash(ss->items[i].stmt), i);
	stmt_unref(ss->items[i].stmt);	/* may free it: after the last use */
	ss->n--;
	if (i == ss->n)
		return;
	slot_index_move(&ss->index, stmt_hash(ss->items[ss->n].stmt), ss->n, i);
	ss->items[i] = ss->items[ss->n];
	/* its neighbours in the order of use now find it at i */
	moved = &ss->items[i];
	if (moved->older >= 0)
		ss->items[moved->older].newer = i;
	else
		ss->oldest = i;
	if (moved->newer >= 0)
		ss->items[moved->newer].older = i;
	else
		ss->newest = i;
}

static void
server_forget(Server *s, const PreparedStmt *st)
{
	ServerStmt *have = server_find(s, st);

	if (have)
		server_remove_at(s->stmts, (int) (have - s->stmts->items));
}

/* The server dropped its statements made up to sequence number seq (DEALLOCATE ALL). */
static void
server_forget_upto(Server *s, uint32 seq)
{
	ServerStmts *ss = s->stmts;

	for (int i = 0; ss && i < ss->n;)
	{
		if (ss->items[i].seq <= seq)
			server_remove_at(ss, i);
		else
			i++;
	}
	s->unnamed_id = 0;
}

void
prepared_server_forget_all(Server *s)
{
	server_forget_upto(s, PG_UINT32_MAX);
}


/* ---- a client's names ---- */

static ClientStmt *
client_find(Client *c, const char *name)
{
	ClientStmts *cs = c->stmts;
	uint32		cursor = 0;
	int32		i;

	if (!cs)
		return NULL;
	while ((i = slot_index_next(&cs->index, name_hash(name), &cursor)) >= 0)
		if (strcmp(cs->items[i].name, name) == 0)
			return &cs->items[i];
	return NULL;
}

typedef enum SetResult
{
	SET_NO_MEMORY = 0,			/* malloc failed */
	SET_OK,
	SET_OVER_BUDGET,			/* pgbun.max_prepared_statement_memory: refused, nothing changed */
} SetResult;

static SetResult
client_set(Client *c, const char *name, PreparedStmt *st)
{
	ClientStmts *cs = c->stmts;
	ClientStmt *old = client_find(c, name);
	uint64		more = (old ? 0 : name_cost(name)) + (st->name_refs == 0 ? stmt_cost(st) : 0);

	if (more > 0 && budget_used + more > budget_limit())
		return SET_OVER_BUDGET;
	if (old)
	{
		stmt_ref(st);
		name_ref(st);
		name_unref(old->stmt);
		stmt_unref(old->stmt);
		old->stmt = st;
		old->seq = ++cs->seq;
		return SET_OK;
	}
	if (!cs)
	{
		cs = c->stmts = calloc(1, sizeof(ClientStmts));
		if (!cs)
			return SET_NO_MEMORY;
	}
	if (cs->n == cs->cap)
	{
		int			ncap = cs->cap ? cs->cap * 2 : 8;
		ClientStmt *items = realloc(cs->items, sizeof(ClientStmt) * ncap);

		if (!items)
			return SET_NO_MEMORY;
		cs->items = items;
		cs->cap = ncap;
	}
	cs->items[cs->n].name = strdup(name);
	if (!cs->items[cs->n].name)
		return SET_NO_MEMORY;
	cs->items[cs->n].hash = name_hash(name);
	if (!slot_index_add(&cs->index, cs->items[cs->n].hash, cs->n))
	{
		free(cs->items[cs->n].name);
		return SET_NO_MEMORY;
	}
	cs->items[cs->n].stmt = st;
	cs->items[cs->n].seq = ++cs->seq;
	stmt_ref(st);
	name_ref(st);
	budget_used += name_cost(name);
	cs->n++;
	return SET_OK;
}

/*
 * Drop the client name at position i, giving back what it was charged (the
 * last one moves into its place).
 */
static void
client_remove_at(ClientStmts *cs, int i)
{
	ClientStmt *item = &cs->items[i];

	budget_used -= Min(budget_used, name_cost(item->name));
	name_unref(item->stmt);
	free(item->name);
	stmt_unref(item->stmt);
	slot_index_remove(&cs->index, item->hash, i);
	cs->n--;
	if (i != cs->n)
	{
		slot_index_move(&cs->index, cs->items[cs->n].hash, cs->n, i);
		cs->items[i] = cs->items[cs->n];
	}
}

static void
client_remove(Client *c, const char *name)
{
	ClientStmt *item = client_find(c, name);

	if (item)
		client_remove_at(c->stmts, (int) (item - c->stmts->items));
}

/* Drop the client's names made up to sequence number seq. */
static void
client_remove_upto(Client *c, uint32 seq)
{
	ClientStmts *cs = c->stmts;

	for (int i = 0; cs && i < cs->n;)
	{
		if (cs->items[i].seq <= seq)
			client_remove_at(cs, i);
		else
			i++;
	}
}

static void
client_remove_all(Client *c)
{
	client_remove_upto(c, PG_UINT32_MAX);
}


void
prepared_client_free(Client *c)
{
	client_remove_all(c);
	if (c->stmts)
	{
		free(c->stmts->items);
		slot_index_free(&c->stmts->index);
	}
	free(c->stmts);
	c->stmts = NULL;
	free(c->unnamed);
	c->unnamed = NULL;
	free(c->unnamed_prev);
	c->unnamed_prev = NULL;
	c->unnamed_len = c->unnamed_cap = 0;
	c->unnamed_id = 0;
}

void
prepared_server_free(Server *s)
{
	track_free(&s->tracker);
	prepared_server_forget_all(s);
	if (s->stmts)
	{
		free(s->stmts->items);
		slot_index_free(&s->stmts->index);
	}
	free(s->stmts);
	s->stmts = NULL;
}

/* ---- building messages into the server's out buffer ---- */

static void
put_bytes(ProtoBuf *pb, const void *data, size_t len)
{
	if (pb->overflow || pb->len + len > pb->cap)
	{
		pb->overflow = true;
		return;
	}
	memcpy(pb->data + pb->len, data, len);
	pb->len += len;
}

static void
put_header(ProtoBuf *pb, char type, uint32 len)
{
	uint8		h[5];

	h[0] = (uint8) type;
	h[1] = (len >> 24) & 0xFF;
	h[2] = (len >> 16) & 0xFF;
	h[3] = (len >> 8) & 0xFF;
	h[4] = len & 0xFF;
	put_bytes(pb, h, 5);
}

/* Queue one complete message: type, then the parts. false if it does not fit. */
static bool
queue_message(Server *s, char type, const void *a, size_t alen, const void *b, size_t blen)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&s->sb, &pb))
		return false;
	put_header(&pb, type, (uint32) (4 + alen + blen));
	put_bytes(&pb, a, alen);
	put_bytes(&pb, b, blen);
	if (pb.overflow)
		return false;
	sbuf_out_commit(&s->sb, &pb);
	return true;
}

/* Queue an entry on the server's tracker; false when the ring is full. */
static bool
owe(Server *s, char type, uint8 flags, char synth, uint8 uflags, void *data, char *name)
{
	return track_client(&s->tracker, type, flags, synth, uflags, data, name) != TRACK_FULL;
}

/* ... holding a reference to the statement (dropped in prepared_entry_gone). */
static bool
owe_stmt(Server *s, char type, uint8 flags, char synth, uint8 uflags, PreparedStmt *st, char *name)
{
	if (!owe(s, type, flags, synth, uflags, st, name))
		return false;
	stmt_ref(st);
	return true;
}

/* The entry just queued for cs (type) carries the sequence number of the client's name. */
static void
set_tail_tag(Server *s, char type, const ClientStmt *cs)
{
	TrackEntry *e = track_tail(&s->tracker);

	if (e && e->type == type && e->data == cs->stmt)
		e->tag = cs->seq;
}

/*
 * A Bind or Describe of the client's name cs: the entry carries the name's
 * sequence number, so that an error about it can name it (client_name_of).
 */
static bool
owe_use(Server *s, char type, const ClientStmt *cs)
{
	if (!owe_stmt(s, type, 0, 0, REQ_USES, cs->stmt, NULL))
		return false;
	set_tail_tag(s, type, cs);
	return true;
}

/* Record that the server has st (room grown as needed). false: no memory. */
static bool
server_add(ServerStmts *ss, PreparedStmt *st)
{
	if (ss->n == ss->cap)
	{
		int			ncap = ss->cap ? ss->cap * 2 : 16;
		ServerStmt *items = realloc(ss->items, sizeof(ServerStmt) * ncap);

		if (!items)
			return false;
		ss->items = items;
		ss->cap = ncap;
	}
	if (!slot_index_add(&ss->index, stmt_hash(st), ss->n))
		return false;
	ss->items[ss->n].stmt = st;
	ss->items[ss->n].seq = ++ss->seq;
	lru_push_newest(ss, ss->n);
	stmt_ref(st);
	ss->n++;
	return true;
}

/* The server has st after all (pgbun's Close of it was skipped). */
static void
server_remember(Server *s, PreparedStmt *st)
{
	/* without memory: pgbun's next Parse of it gets 42P05 and keeps it known */
	if (s->stmts && !server_find(s, st))
		(void) server_add(s->stmts, st);
}

/*
 * Make sure the server has st, injecting Parse (and a Close for the least
 * recently used statement when the server is at pgbun.max_prepared_statements).
 * parse_flags: TRACK_HIDE when the client never sent this Parse. client_name:
 * the client's name for it, forgotten again if the Parse fails.
 */
static bool
ensure_on_server(Server *s, PreparedStmt *st, uint8 parse_flags, const char *client_name, bool close_first)
{
	ServerStmts *ss = s->stmts;
	ServerStmt *have = server_find(s, st);
	char		name[SERVER_NAME_MAX];
	char		closebody[SERVER_NAME_MAX + 1];
	int			nlen;
	char	   *cname = NULL;

	if (!ss)
	{
		ss = s->stmts = calloc(1, sizeof(ServerStmts));
		if (!ss)
			return false;
		ss->oldest = ss->newest = -1;
	}
	if (have)
	{
		int32		i = (int32) (have - ss->items);

		if (i != ss->newest)
		{
			lru_unlink(ss, i);
			lru_push_newest(ss, i);
		}
		return true;
	}
	/*
	 * Make room: one eviction as a rule, a few more when the server holds
	 * more than the limit (lowered at a reload, or a statement given back by
	 * a skipped Close), so it shrinks to the limit over its next misses
	 * without queueing thousands of Closes on one.
	 */
	for (int evicted = 0; evicted < MAX_EVICTIONS_PER_MISS &&
		 ss->n >= pgbun_cfg->max_prepared_statements && ss->n > 0; evicted++)
	{
		int32		lru = ss->oldest;

		closebody[0] = 'S';
		nlen = server_name(ss->items[lru].stmt, closebody + 1);
		if (!queue_message(s, 'C', closebody, nlen + 2, NULL, 0) ||
			!owe_stmt(s, 'C', TRACK_HIDE, 0, REQ_UNCLOSE, ss->items[lru].stmt, NULL))
			return false;
		server_remove_at(ss, lru);
	}
	nlen = server_name(st, name);
	if (s->stmts_unsure || close_first)
	{
		/* a DEALLOCATE of unknown names ran here: it may or may not be there */
		closebody[0] = 'S';
		memcpy(closebody + 1, name, nlen + 1);
		if (!queue_message(s, 'C', closebody, nlen + 2, NULL, 0) ||
			!(close_first && !s->stmts_unsure ? owe_stmt(s, 'C', TRACK_HIDE, 0, REQ_UNCLOSE, st, NULL) :
			  owe(s, 'C', TRACK_HIDE, 0, 0, NULL, NULL)))
			return false;
	}
	if (client_name && !(cname = strdup(client_name)))
		return false;
	if (!queue_message(s, 'P', name, nlen + 1, st->body, st->body_len) ||
		!owe_stmt(s, 'P', parse_flags, 0, REQ_FORGET, st, cname))
	{
		free(cname);
		return false;
	}
	if (!server_add(ss, st))
		return false;			/* the client is closed (out of memory) */
	POOL_STAT_ADD(s->pool->slot, server_parse_count, 1);
	return true;
}

/*
 * The server no longer has the client's unnamed statement (another client
 * replaced it, or this is another server): Parse it there again, hidden.
 */
static bool
ensure_unnamed(Client *c, Server *s)
{
	if (c->unnamed_id == 0 || s->unnamed_id == c->unnamed_id)
		return true;			/* none to carry, or it is there */
	if (!queue_message(s, 'P', "", 1, c->unnamed, c->unnamed_len) ||
		!owe(s, 'P', TRACK_HIDE, 0, REQ_UNNAMED, (void *) (uintptr_t) c->unnamed_id, NULL))
		return false;
	s->unnamed_id = c->unnamed_id;
	return true;
}

/* A worker-unique id for each unnamed Parse pgbun keeps. */
static uint64 next_unnamed_id = 1;

/*
 * The client parses the unnamed statement (sent as is): keep a copy so it
 * can follow the client to the next server. complete: the whole message is
 * buffered (only then can it be kept; a larger one is not carried).
 */
static void
note_unnamed_parse(Client *c, Server *s, const uint8 *body, uint32 len, bool complete)
{
	/* kept aside: a Parse the backend skips (an error earlier in its batch) replaces nothing */
	uint8	   *keep = c->unnamed_prev;
	uint32		keep_cap = c->unnamed_prev_cap;

	c->unnamed_prev = c->unnamed;
	c->unnamed_prev_len = c->unnamed_len;
	c->unnamed_prev_cap = c->unnamed_cap;
	c->unnamed_prev_id = c->unnamed_id;
	c->unnamed = keep;
	c->unnamed_cap = keep_cap;
	c->unnamed_len = 0;
	c->unnamed_id = 0;
	s->unnamed_id = 0;
	if (!complete)
		return;
	if (len > c->unnamed_cap)
	{
		uint8	   *nb = realloc(c->unnamed, len);

		if (!nb)
			return;				/* not carried: a Bind elsewhere gets the server's 26000 */
		c->unnamed = nb;
		c->unnamed_cap = len;
	}
	memcpy(c->unnamed, body, len);
	c->unnamed_len = len;
	c->unnamed_id = s->unnamed_id = next_unnamed_id++;
}

/* ---- answers pgbun gives itself ---- */

bool
prepared_answers_waiting(Server *s)
{
	return track_synth_due(&s->tracker);
}

bool
prepared_hides_error(Server *s)
{
	TrackEntry *h = track_head(&s->tracker);

	return h && (h->uflags & REQ_HIDE_ERROR);
}


/* pgbun's 42P05, worded as PostgreSQL words it. */
static bool
put_duplicate_error(ProtoBuf *pb, const char *name)
{
	char		msg[NAMEDATALEN * 2 + 64];

	snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", name ? name : "");
	return proto_put_error(pb, false, "42P05", msg, NULL, NULL);
}

/*
 * Does the query text start with a statement PostgreSQL accepts in a failed
 * transaction block (IsTransactionExitStmt: COMMIT, ROLLBACK, END, ABORT)?
 */
static bool
is_exit_statement(const uint8 *p, const uint8 *end)
{
	static const char *const words[] = {"COMMIT", "ROLLBACK", "END", "ABORT"};

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	for (int i = 0; i < lengthof(words); i++)
	{
		size_t		n = strlen(words[i]);

		if ((size_t) (end - p) >= n && pg_strncasecmp((const char *) p, words[i], n) == 0 &&
			((size_t) (end - p) == n || !isalnum(p[n])))
			return true;
	}
	return false;
}

/*
 * May the transaction block be failed when the server reads what is sent
 * now (Parses then fail with 25P02)? Known only when nothing is in flight.
 */
static bool
maybe_failed_block(const Server *s)
{
	return s->tracker.status == 'E' || s->tracker.count > 0;
}

/* pgbun's error in place of a Parse it refuses (fail_in_place). */
static bool
put_pgbun_error(ProtoBuf *pb, const TrackEntry *e)
{
	char		msg[256];
	const char *name = e->name ? e->name : "";

	if (e->uflags & REQ_BUDGET)
	{
		snprintf(msg, sizeof(msg),
				 "pgbun: prepared statement \"%.63s\" does not fit in pgbun.max_prepared_statement_memory (%d kB)",
				 name, pgbun_cfg->max_prepared_statement_memory);
		return proto_put_error(pb, false, "53200", msg, NULL,
							   "Close statements no longer needed, or raise pgbun.max_prepared_statement_memory.");
	}
	if (e->uflags & REQ_TOO_LONG)
	{
		snprintf(msg, sizeof(msg),
				 "pgbun: named prepared statement \"%.63s\" is longer than 16 kB and cannot be pooled in transaction mode",
				 name);
		return proto_put_error(pb, false, "54000", msg, NULL,
							   "Use an unnamed statement, or session pooling for this client.");
	}
	return put_duplicate_error(pb, name);
}

bool
prepared_put_refusal(Server *s)
{
	TrackEntry *h = track_head(&s->tracker);
	ProtoBuf	pb;

	if (!h || !s->link || !sbuf_out_begin(&s->link->sb, &pb) || !put_pgbun_error(&pb, h) || pb.overflow)
		return false;
	sbuf_out_commit(&s->link->sb, &pb);
	return true;
}

/*
 * The quoted server-side name of the statement a server's error at the
 * tracker's head is about ("pgbun_7", as the backend quotes it), when that
 * head is a Bind or Describe of a client's named statement; else 0.
 */
static int
error_statement_name(Server *s, char *quoted /* SERVER_NAME_MAX + 2 */ , const PreparedStmt **st)
{
	TrackEntry *h = track_head(&s->tracker);
	char		name[SERVER_NAME_MAX];

	if (!h || !(h->uflags & REQ_USES) || !h->data || (h->type != 'B' && h->type != 'D'))
		return 0;
	*st = h->data;
	server_name(*st, name);
	return snprintf(quoted, SERVER_NAME_MAX + 2, "\"%s\"", name);
}

/*
 * The client's name that the Bind or Describe at the head used (its
 * sequence number is the entry's tag), also when a Close sent since took it
 * away (that Close's entry has the name and the number); else any of the
 * client's names for the statement (the name was Parsed again since, which
 * gave it a new number: then it is most likely that name, or one of the
 * same text).
 */
static const char *
client_name_of(Server *s, const PreparedStmt *st)
{
	Client	   *c = s->link;
	uint32		seq = track_head(&s->tracker)->tag;
	const char *any = NULL;

	for (int i = 0; c->stmts && i < c->stmts->n; i++)
		if (c->stmts->items[i].stmt == st)
		{
			if (c->stmts->items[i].seq == seq)
				return c->stmts->items[i].name;
			any = c->stmts->items[i].name;
		}
	for (uint32 i = 1; seq != 0 && i < s->tracker.count; i++)
	{
		TrackEntry *e = track_entry_at(&s->tracker, i);

		if (e->type == 'C' && e->name && e->data == st && e->tag == seq)
			return e->name;
	}
	return any;
}

bool
prepared_error_may_name_statement(Server *s, uint32 size)
{
	char		quoted[SERVER_NAME_MAX + 2];
	const PreparedStmt *st;

	return s->link && size <= SBUF_SIZE && error_statement_name(s, quoted, &st) > 0;
}

/*
 * Only the backend's errors that name the statement itself: 08P01 (a Bind
 * with the wrong number of parameters) and 26000 (no such statement). The
 * others at a Bind (22P02 of a parameter's input ...) quote the client's
 * values, which pass as they are even when one reads "pgbun_7".
 */
bool
prepared_error_names_statement(Server *s, const uint8 *msg, uint32 size, const char *sqlstate)
{
	char		quoted[SERVER_NAME_MAX + 2];
	const PreparedStmt *st;
	int			qlen;

	if (strcmp(sqlstate, "08P01") != 0 && strcmp(sqlstate, "26000") != 0)
		return false;
	qlen = error_statement_name(s, quoted, &st);
	return qlen > 0 && s->link && size > PROTO_HDR_LEN &&
		memmem(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, quoted, qlen) != NULL;
}

bool
prepared_put_renamed_error(Server *s, const uint8 *msg, uint32 size)
{
	char		quoted[SERVER_NAME_MAX + 2];
	const PreparedStmt *st;
	int			qlen = error_statement_name(s, quoted, &st);
	const char *cname = (qlen > 0 && s->link) ? client_name_of(s, st) : NULL;
	const uint8 *body = msg + PROTO_HDR_LEN;
	const uint8 *end = msg + size;
	size_t		clen;
	size_t		n = 0;
	size_t		out_len;
	ProtoBuf	pb;

	if (!cname)
		return false;
	clen = strlen(cname);
	for (const uint8 *p = body; (p = memmem(p, end - p, quoted, qlen)) != NULL; p += qlen)
		n++;
	out_len = size + n * (clen + 2) - n * (size_t) qlen;
	if (n == 0 || !sbuf_out_begin(&s->link->sb, &pb) || pb.cap - pb.len < out_len)
		return false;
	{
		uint8	   *o = pb.data + pb.len;
		uint32		len = (uint32) (out_len - 1);
		const uint8 *p = body;

		*o++ = 'E';
		*o++ = (uint8) (len >> 24);
		*o++ = (uint8) (len >> 16);
		*o++ = (uint8) (len >> 8);
		*o++ = (uint8) len;
		for (const uint8 *hit; (hit = memmem(p, end - p, quoted, qlen)) != NULL; p = hit + qlen)
		{
			memcpy(o, p, hit - p);
			o += hit - p;
			*o++ = '"';
			memcpy(o, cname, clen);
			o += clen;
			*o++ = '"';
		}
		memcpy(o, p, end - p);
		pb.len += out_len;
	}
	sbuf_out_commit(&s->link->sb, &pb);
	return true;
}

void
prepared_emit_answers(Server *s)
{
	Client	   *c = s->link;
	TrackEntry *h;
	bool		any = false;

	/* only once everything the server said before is out (a held ReadyForQuery included) */
	if (!c || sbuf_has_pending_forward(&s->sb) || s->held_ready)
		return;
	while ((h = track_head(&s->tracker)) && (h->flags & TRACK_SYNTH))
	{
		ProtoBuf	pb;

		if (!sbuf_out_begin(&c->sb, &pb))
			return;
		if (h->synth == 'E')
			(void) put_pgbun_error(&pb, h);
		else
			put_header(&pb, h->synth, 4);
		if (pb.overflow)
			return;
		sbuf_out_commit(&c->sb, &pb);
		track_synth_done(&s->tracker);
		any = true;
	}
	if (any)
		(void) sbuf_flush_out(&c->sb);
}

/* Is another Parse of st by pgbun owed after entry e (that one decides whether the server has it)? */
static bool
later_parse(Server *s, const TrackEntry *e, const PreparedStmt *st)
{
	bool		after = false;

	for (uint32 i = 0; i < s->tracker.count; i++)
	{
		TrackEntry *x = track_entry_at(&s->tracker, i);

		if (x == e)
			after = true;
		else if (after && x->type == 'P' && (x->uflags & REQ_FORGET) && x->data == st)
			return true;
	}
	return false;
}

/* The next Close of this client name owed after entry e, or NULL. */
static TrackEntry *
later_close(Server *s, const TrackEntry *e, const char *name)
{
	bool		after = false;

	for (uint32 i = 0; i < s->tracker.count; i++)
	{
		TrackEntry *x = track_entry_at(&s->tracker, i);

		if (x == e)
			after = true;
		else if (after && (x->uflags & REQ_CLOSED) && x->type == 'C' && x->name && strcmp(x->name, name) == 0)
			return x;
	}
	return NULL;
}

/*
 * The tracker let go of an entry (tracker callback): undo what the
 * backend never did, drop the references the entry held.
 */
void
prepared_entry_gone(void *owner, Track *t, TrackEntry *e, TrackFate fate)
{
	Server	   *s = owner;
	Client	   *c = s->link;
	bool		done = (fate == TRACK_ANSWERED);
	bool		not_done = (fate == TRACK_FAILED || fate == TRACK_SKIPPED);

	if (e->uflags & REQ_UNNAMED)
	{
		uint64		id = (uint64) (uintptr_t) e->data;

		/* a failed unnamed Parse leaves no unnamed statement behind */
		if (not_done && s->unnamed_id == id)
			s->unnamed_id = 0;
		/*
		 * ... but pgbun's own re-Parse of the client's (hidden) that did not
		 * happen leaves the client's as it was: Parsed again on next use
		 */
		/* the one kept aside for a skip of the next Parse did not happen either */
		if (not_done && c && c->unnamed_prev_id == id && !(e->flags & TRACK_HIDE))
			c->unnamed_prev_id = 0;
		if (not_done && c && c->unnamed_id == id && !(e->flags & TRACK_HIDE))
		{
			c->unnamed_id = 0;
			if (fate == TRACK_SKIPPED && c->unnamed_prev_id != 0)
			{
				/* skipped, not failed: the one before it is still the unnamed statement */
				uint8	   *b = c->unnamed;
				uint32		cap = c->unnamed_cap;

				c->unnamed = c->unnamed_prev;
				c->unnamed_len = c->unnamed_prev_len;
				c->unnamed_cap = c->unnamed_prev_cap;
				c->unnamed_id = c->unnamed_prev_id;
				c->unnamed_prev = b;
				c->unnamed_prev_cap = cap;
				c->unnamed_prev_id = 0;
			}
		}
		return;
	}
	if (e->type == 'P' && e->data)
	{
		PreparedStmt *st = e->data;

		if (done && !(e->flags & TRACK_SYNTH))
			stmt_mark_valid(st, s->pool);
		if (not_done)
		{
			/* the server says it has it already (42P05): it stays known */
			if ((e->uflags & REQ_FORGET) &&
				!(fate == TRACK_FAILED && strcmp(s->last_sqlstate, "42P05") == 0) &&
				!later_parse(s, e, st))
				server_forget(s, st);
			/* as in PostgreSQL, a client's Parse that did not happen leaves no name */
			if (e->name && c)
			{
				ClientStmt *cs = client_find(c, e->name);

				if (cs && cs->stmt == st)
					client_remove(c, e->name);
				/* a Close of it sent since (before any new Parse of the name) gives nothing back */
				for (uint32 i = 0, after = 0; i < t->count; i++)
				{
					TrackEntry *x = track_entry_at(t, i);

					if (x == e)
						after = 1;
					else if (!after || !x->name || strcmp(x->name, e->name) != 0)
						continue;
					else if (x->type == 'P')
						break;
					else if (x->type == 'C' && (x->uflags & REQ_CLOSED) && x->data == st)
						x->uflags |= REQ_NAME_GONE;
				}
			}
		}
		stmt_unref(st);
	}
	else if ((e->uflags & REQ_USES) && e->data)
	{
		PreparedStmt *st = e->data;

		/* the last line of defence: the server lost a statement pgbun thought it had */
		if (fate == TRACK_FAILED && strcmp(s->last_sqlstate, "26000") == 0)
		{
			ereport(LOG, (errmsg("pgbun: a server lost prepared statement pgbun_%llu; it is prepared again on next use",
								 (unsigned long long) st->id)));
			server_forget(s, st);
		}
		stmt_unref(st);
	}
	else if (e->type == 'C' && (e->flags & TRACK_HIDE) && (e->uflags & REQ_UNCLOSE) && e->data)
	{
		/* pgbun's Close that the backend skipped closed nothing: the server still has it */
		if (fate == TRACK_SKIPPED)
			server_remember(s, e->data);
		stmt_unref(e->data);
	}
	else if ((e->uflags & REQ_CLOSED) && e->data)
	{
		PreparedStmt *st = e->data;

		/*
		 * A skipped Close closed nothing: the client keeps the name, unless
		 * a later Close of it is still to come (that one decides).
		 */
		if (fate == TRACK_SKIPPED && c && e->name && !client_find(c, e->name) &&
			!(e->uflags & REQ_NAME_GONE) &&
			(!(e->uflags & REQ_RECLOSE) || (e->uflags & REQ_INHERIT)))
		{
			TrackEntry *next = later_close(s, e, e->name);

			if (next)
			{
				/* the later Close decides, for this statement */
				stmt_ref(st);
				if (next->data)
					stmt_unref(next->data);
				next->data = st;
				next->uflags = (next->uflags | REQ_INHERIT) & ~REQ_NAME_GONE;
			}
			else
				(void) client_set(c, e->name, st);
		}
		/* a second Close after one that was skipped: the name goes now */
		if (fate == TRACK_ANSWERED && (e->uflags & REQ_RECLOSE) && c && e->name)
		{
			ClientStmt *cs = client_find(c, e->name);

			/* not a name the client made again after this Close (a later Parse of it) */
			if (cs && cs->stmt == st && cs->seq <= e->tag)
				client_remove(c, e->name);
		}
		stmt_unref(st);
	}
	free(e->name);
	e->name = NULL;
	e->data = NULL;
}

/* ---- client messages ---- */

/* The string at p within [p, end), or NULL when it is not terminated there. */
static const char *
string_at(const uint8 *p, const uint8 *end)
{
	return (p < end && memchr(p, '\0', end - p)) ? (const char *) p : NULL;
}

/* Set when a client message cannot be handled; client.c closes the client with it. */
static PktAction
client_error(Client *c, const char *why)
{
	c->stmt_error = why;
	return PKT_STOP;
}

static PktAction
client_full(Client *c)
{
	c->stmt_error = "too many requests in flight on one server connection (more than 2048 answers owed)";
	c->stmt_sqlstate = "54000";
	return PKT_STOP;
}

/* A client message pgbun forwards as it is: owe its answer. */
static PktAction
forward_plain(Client *c, Server *s, char type)
{
	/* what runs SQL (Query, Execute) remembers where in the stream it was sent */
	void	   *mark = (type == 'Q' || type == 'E') ? stream_mark(c, s) : NULL;

	if (track_client(&s->tracker, type, 0, 0, 0, mark, NULL) == TRACK_FULL)
		return client_full(c);
	return PKT_FORWARD;
}

/*
 * A named Parse pgbun itself fails (why: REQ_* of the error, see
 * put_pgbun_error): a name the client already has (42P05), one that does
 * not fit in pgbun.max_prepared_statement_memory (53200), or one longer than
 * the 16 kB pgbun keeps (54000). The client stays connected. In the Parse's
 * place the server gets a poison message that fails there too, so it skips
 * to the next Sync (rolling back an implicit transaction, failing an
 * explicit one) exactly as for a Parse that failed in PostgreSQL: a Parse
 * that fails with 25P02 in a failed transaction block, as the client's own
 * would, and with 42P01 otherwise (for an exit statement, which PostgreSQL
 * parses even in a failed block, a Bind of a statement that cannot exist).
 * The server's error is replaced by pgbun's unless it is that 25P02
 * (server.c, prepared_put_refusal); when an earlier message of the batch
 * failed, the poison is skipped and the client gets nothing for it either.
 */
static PktAction
fail_in_place(Client *c, Server *s, const char *name, uint8 why, bool exit_stmt)
{
	/* Bind: portal "", a statement that cannot exist, no formats, parameters or result formats */
	static const char poison_bind[] = "\0pgbun_refused_statement\0\0\0\0\0\0\0";
	/* Parse: fails with 25P02 in a failed block (as any Parse but an exit statement), else 42P01 */
	static const char poison_parse[] = "pgbun_refused_statement\0SELECT FROM pg_catalog.pgbun_refused_statement\0\0\0";
	char	   *copy = strdup(name);
	bool		queued;

	if (!copy)
		return client_error(c, "out of memory for prepared statements");
	queued = exit_stmt ? queue_message(s, 'B', poison_bind, sizeof(poison_bind) - 1, NULL, 0) :
		queue_message(s, 'P', poison_parse, sizeof(poison_parse) - 1, NULL, 0);
	if (!queued)
	{
		free(copy);
		return client_error(c, "out of memory for prepared statements");
	}
	if (!owe(s, exit_stmt ? 'B' : 'P', 0, 0, REQ_HIDE_ERROR | why, NULL, copy))
	{
		free(copy);
		return client_full(c);
	}
	if (why & REQ_BUDGET)
		budget_refusals++;
	if ((why & REQ_BUDGET) && W->now - budget_logged_at >= 60 * USECS_PER_SEC)
	{
		/* one line a minute at most, however many are refused */
		ereport(LOG, (errmsg("pgbun: %llu prepared statement(s) refused: pgbun.max_prepared_statement_memory (%d kB) is used up",
							 (unsigned long long) budget_refusals, pgbun_cfg->max_prepared_statement_memory)));
		budget_logged_at = W->now;
		budget_refusals = 0;
	}
	return PKT_CONSUME;
}

/*
 * A Close of a name the client no longer has, while an earlier Close of it
 * is still owed: if the backend skips that one (an error before it in its
 * batch), its name comes back, and this Close must take it away again. The
 * statement of the newest such Close, or NULL.
 */
static PreparedStmt *
close_in_flight(Server *s, const char *name)
{
	if (s->tracker.parse_close_owed == 0)
		return NULL;
	for (uint32 i = s->tracker.count; i-- > 0;)
	{
		TrackEntry *e = track_entry_at(&s->tracker, i);

		if (e->type == 'C' && (e->uflags & REQ_CLOSED) && e->name && strcmp(e->name, name) == 0)
			return e->data;
	}
	return NULL;
}

/*
 * Is the fate of a Parse or Close of this client name still open in an
 * earlier batch (a Sync owed after it)? A message using the name must then
 * wait for the answers: if the backend fails or skips that Parse or Close,
 * the name is not what pgbun assumed when it was sent. (Inside one batch
 * there is nothing to wait for: an error skips the later messages too.)
 */
static bool
name_undecided(Server *s, const char *name)
{
	bool		sync_after = false;

	if (!track_parse_close_maybe_unsynced(&s->tracker))
		return false;
	for (uint32 i = s->tracker.count; i-- > 0;)
	{
		TrackEntry *e = track_entry_at(&s->tracker, i);

		if (e->type == 'S')
			sync_after = true;
		else if (!sync_after)
			continue;
		else if (name[0] == '\0')
		{
			/* the client's own unnamed Parse: a skipped one leaves the one before */
			if (e->type == 'P' && (e->uflags & REQ_UNNAMED) && !(e->flags & TRACK_HIDE))
				return true;
		}
		else if ((e->type == 'C' || e->type == 'P') && e->name &&
				 !(e->uflags & REQ_HIDE_ERROR) && strcmp(e->name, name) == 0)
			return true;
	}
	return false;
}

/*
 * A named Parse of a name the client still has. PostgreSQL looks at the name
 * last: a syntax error, a failed transaction block (25P02) or an analysis
 * error comes first, and only a Parse that would succeed gets 42P05. So the
 * server parses the client's text under a name of pgbun's (hidden, closed at
 * once) and, if that worked, gets a poison Bind whose error becomes the
 * 42P05; if it failed, its error is the client's and the backend skips the
 * Close and the Bind with the rest of the batch, as it would have.
 */
static PktAction
fail_duplicate(Client *c, Server *s, const char *name, const uint8 *rest, uint32 rest_len)
{
	static const char scratch[] = "pgbun_duplicate_check";
	static const char close_scratch[] = "Spgbun_duplicate_check";

	if (!queue_message(s, 'P', scratch, sizeof(scratch), rest, rest_len) ||
		!owe(s, 'P', TRACK_HIDE, 0, 0, NULL, NULL) ||
		!queue_message(s, 'C', close_scratch, sizeof(close_scratch), NULL, 0) ||
		!owe(s, 'C', TRACK_HIDE, 0, 0, NULL, NULL))
		return client_full(c);
	return fail_in_place(c, s, name, REQ_DUPLICATE, true);
}

/*
 * Is pgbun's own Parse (or Close) of st on this server still owed in an
 * earlier batch? If the backend skips it, the server does not have st (or
 * still has it): a Bind or Describe of it waits for the answers.
 */
static bool
stmt_undecided(Server *s, const PreparedStmt *st)
{
	bool		sync_after = false;

	if (!track_parse_close_maybe_unsynced(&s->tracker))
		return false;
	for (uint32 i = s->tracker.count; i-- > 0;)
	{
		TrackEntry *e = track_entry_at(&s->tracker, i);

		if (e->type == 'S')
			sync_after = true;
		else if (sync_after && e->data == st &&
				 ((e->type == 'P' && (e->uflags & REQ_FORGET)) || (e->type == 'C' && (e->uflags & REQ_UNCLOSE))))
			return true;
	}
	return false;
}

PktAction
prepared_client_message(Client *c, Server *s, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	uint32		size = proto_msg_size(hdr);
	const uint8 *body = msg + PROTO_HDR_LEN;
	const uint8 *end = msg + avail;
	bool		complete = (avail == size);

	/* the backend skips to the client's Sync: nothing it sends now has any effect */
	if (track_skipping(&s->tracker) && hdr->type != 'S')
		return PKT_FORWARD;
	/*
	 * In a COPY FROM STDIN any message but COPY data, Sync and Flush breaks
	 * the COPY (08P01, and the backend ends the connection): it goes as it
	 * is, so the backend answers exactly that.
	 */
	if (s->tracker.copy_in && !strchr("dcfSH", hdr->type))
		return forward_plain(c, s, hdr->type);

	switch (hdr->type)
	{
		case 'P':
			{
				const char *name;
				const uint8 *rest;
				PreparedStmt *st;
				SetResult	set = SET_NO_MEMORY;

				if (!complete)
				{
					if (size > SBUF_SIZE)
					{
						/* unnamed: forward as it streams; named: must fit to be cached */
						name = string_at(body, end);
						if (!name)
							return avail >= SBUF_SIZE ? client_error(c, "Parse message too large") : PKT_NEED_FULL;
						if (name[0] == '\0')
						{
							note_unnamed_parse(c, s, NULL, 0, false);
							return forward_plain(c, s, 'P');
						}
						/* too long to keep: refused in its place, the rest of it dropped unread */
						if (sbuf_has_unflushed(&c->sb))
							return PKT_STOP;
						return fail_in_place(c, s, name, REQ_TOO_LONG, false) == PKT_CONSUME ? PKT_SKIP : PKT_STOP;
					}
					return PKT_NEED_FULL;
				}
				name = string_at(body, end);
				if (!name)
					return client_error(c, "malformed Parse message");
				rest = (const uint8 *) name + strlen(name) + 1;
				if (name[0] == '\0')
				{
					note_unnamed_parse(c, s, rest, (uint32) (end - rest), true);
					if (!owe(s, 'P', 0, 0, REQ_UNNAMED, (void *) (uintptr_t) c->unnamed_id, NULL))
						return client_full(c);
					return PKT_FORWARD;
				}
				if (name_undecided(s, name))
				{
					c->wait_answers = true; /* the server's answers wake it (server_pump_out) */
					return PKT_STOP;
				}
				if (client_find(c, name))
				{
					if (sbuf_has_unflushed(&c->sb))
						return PKT_STOP;	/* earlier messages go out before the poison Bind */
					/* in a failed transaction block the backend says 25P02 before it looks at the name */
					return fail_duplicate(c, s, name, rest, (uint32) (end - rest));
				}
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;	/* earlier messages go out first */
				st = stmt_lookup_or_add(rest, (uint32) (end - rest), client_path(c));
				if (!st || (set = client_set(c, name, st)) != SET_OK)
				{
					if (st && st->refs == 0)
					{
						stmt_ref(st);
						stmt_unref(st);
					}
					if (st && set == SET_OVER_BUDGET)
						return fail_in_place(c, s, name, REQ_BUDGET, is_exit_statement(rest, end));
					return client_error(c, "out of memory for prepared statements");
				}
				POOL_STAT_ADD(s->pool->slot, client_parse_count, 1);
				if (server_find(s, st) && maybe_failed_block(s))
				{
					/*
					 * A failed transaction block: only the server can say
					 * whether this Parse fails (25P02, or not for ROLLBACK):
					 * Close and Parse it there again, for real.
					 */
					server_forget(s, st);
					if (!ensure_on_server(s, st, 0, name, true))
						return client_error(c, "out of memory for prepared statements");
				}
				else if (server_find(s, st))
				{
					char	   *cname = strdup(name);

					/* the server has it already: pgbun answers ParseComplete itself */
					if (!cname || !ensure_on_server(s, st, 0, NULL, false) ||
						!owe_stmt(s, 'P', TRACK_SYNTH, '1', 0, st, cname))
					{
						free(cname);
						return client_error(c, "out of memory for prepared statements");
					}
					prepared_emit_answers(s);
				}
				else if (!ensure_on_server(s, st, 0, name, false))
					return client_error(c, "out of memory for prepared statements");
				return PKT_CONSUME;
			}
		case 'B':
			{
				const char *portal = string_at(body, end);
				const char *name = portal ? string_at((const uint8 *) portal + strlen(portal) + 1, end) : NULL;
				ClientStmt *cs;
				char		sname[SERVER_NAME_MAX];
				int			snlen;
				uint32		old_prefix;
				ProtoBuf	pb;

				if (!name)
					return (complete || avail >= SBUF_SIZE) ? client_error(c, "malformed Bind message") : PKT_NEED_FULL;
				if (name[0] == '\0' && name_undecided(s, name))
				{
					c->wait_answers = true; /* which unnamed statement it is: wait and see */
					return PKT_STOP;
				}
				if (name[0] == '\0')
				{
					if (c->unnamed_id != 0 && s->unnamed_id != c->unnamed_id)
					{
						if (sbuf_has_unflushed(&c->sb))
							return PKT_STOP;
						if (!ensure_unnamed(c, s))
							return client_full(c);
					}
					return forward_plain(c, s, 'B');
				}
				if (name_undecided(s, name))
				{
					c->wait_answers = true; /* the name may not be what it seems: wait and see */
					return PKT_STOP;
				}
				if (!(cs = client_find(c, name)))
					return forward_plain(c, s, 'B');	/* unknown: the server answers as PostgreSQL does */
				if (stmt_undecided(s, cs->stmt))
				{
					c->wait_answers = true; /* whether the server has it: wait and see */
					return PKT_STOP;
				}
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;
				if (!ensure_on_server(s, cs->stmt, TRACK_HIDE, NULL, false))
					return client_error(c, "out of memory for prepared statements");
				POOL_STAT_ADD(s->pool->slot, bind_count, 1);
				snlen = server_name(cs->stmt, sname);
				old_prefix = PROTO_HDR_LEN + strlen(portal) + 1 + strlen(name) + 1;
				if (!sbuf_out_begin(&s->sb, &pb))
					return client_error(c, "out of memory");
				put_header(&pb, 'B', hdr->len - strlen(name) + snlen);
				put_bytes(&pb, portal, strlen(portal) + 1);
				put_bytes(&pb, sname, snlen + 1);
				if (pb.overflow)
					return client_error(c, "out of memory");
				if (!owe_use(s, 'B', cs))
					return client_full(c);
				sbuf_out_commit(&s->sb, &pb);
				c->sb.replace_len = old_prefix;
				return PKT_REPLACE_PREFIX;
			}
		case 'D':
		case 'C':
			{
				const char *name;
				ClientStmt *cs;

				if (!complete)
					return avail >= SBUF_SIZE ? client_error(c, "malformed Describe/Close message") : PKT_NEED_FULL;
				name = (hdr->len > 5) ? string_at(body + 1, end) : NULL;
				if (!name)
					return client_error(c, "malformed Describe/Close message");
				if (body[0] != 'S')
					return forward_plain(c, s, hdr->type);	/* portals pass through */
				if (name[0] == '\0' && hdr->type == 'D' && name_undecided(s, name))
				{
					c->wait_answers = true; /* which unnamed statement it is: wait and see */
					return PKT_STOP;
				}
				if (name[0] == '\0')
				{
					if (hdr->type == 'C')
					{
						/* the unnamed statement is closed: nothing left to carry */
						c->unnamed_id = 0;
						s->unnamed_id = 0;
					}
					else if (c->unnamed_id != 0 && s->unnamed_id != c->unnamed_id)
					{
						if (sbuf_has_unflushed(&c->sb))
							return PKT_STOP;
						if (!ensure_unnamed(c, s))
							return client_full(c);
					}
					return forward_plain(c, s, hdr->type);
				}
				if (hdr->type == 'C')
				{
					char	   *cname;
					PreparedStmt *reclose;

					if (sbuf_has_unflushed(&c->sb))
						return PKT_STOP;
					/* the server keeps it for others; the client's name goes */
					cs = client_find(c, name);
					reclose = cs ? NULL : close_in_flight(s, name);
					cname = (cs || reclose) ? strdup(name) : NULL;
					if ((cs || reclose) && !cname)
						return client_error(c, "out of memory");
					if (!(cs ? owe_stmt(s, 'C', TRACK_SYNTH, '3', REQ_CLOSED, cs->stmt, cname) :
						  reclose ? owe_stmt(s, 'C', TRACK_SYNTH, '3', REQ_CLOSED | REQ_RECLOSE, reclose, cname) :
						  owe(s, 'C', TRACK_SYNTH, '3', 0, NULL, NULL)))
					{
						free(cname);
						return client_full(c);
					}
					if (cs)
						set_tail_tag(s, 'C', cs);	/* which name it took away */
					else if (reclose && track_tail(&s->tracker) && track_tail(&s->tracker)->type == 'C')
						track_tail(&s->tracker)->tag = c->stmts ? c->stmts->seq : 0;	/* names made up to now */
					client_remove(c, name);
					prepared_emit_answers(s);
					return PKT_CONSUME;
				}
				if (name_undecided(s, name))
				{
					c->wait_answers = true; /* the name may not be what it seems: wait and see */
					return PKT_STOP;
				}
				if (!(cs = client_find(c, name)))
					return forward_plain(c, s, 'D');
				if (stmt_undecided(s, cs->stmt))
				{
					c->wait_answers = true; /* whether the server has it: wait and see */
					return PKT_STOP;
				}
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;
				{
					char		dbody[SERVER_NAME_MAX + 1];
					int			snlen;

					if (!ensure_on_server(s, cs->stmt, TRACK_HIDE, NULL, false))
						return client_error(c, "out of memory for prepared statements");
					dbody[0] = 'S';
					snlen = server_name(cs->stmt, dbody + 1);
					if (!queue_message(s, 'D', dbody, snlen + 2, NULL, 0))
						return client_error(c, "out of memory");
					if (!owe_use(s, 'D', cs))
						return client_full(c);
				}
				return PKT_CONSUME;
			}
		case 'Q':
			/* a simple query drops the unnamed statement (exec_simple_query) */
			c->unnamed_id = 0;
			s->unnamed_id = 0;
			return forward_plain(c, s, 'Q');
		default:
			return forward_plain(c, s, hdr->type);
	}
}

/* Queue a bodiless answer (ParseComplete, CloseComplete) or ReadyForQuery 'I' to the client. */
static bool
answer_client(Client *c, char type)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&c->sb, &pb))
		return false;
	if (type == 'Z')
		(void) proto_put_ready(&pb, 'I');
	else
		put_header(&pb, type, 4);
	if (pb.overflow)
		return false;
	sbuf_out_commit(&c->sb, &pb);
	return true;
}

PktAction
prepared_unlinked_message(Client *c, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	uint32		size = proto_msg_size(hdr);
	const uint8 *body = msg + PROTO_HDR_LEN;
	const uint8 *end = msg + avail;
	const char *name;
	PreparedStmt *st;
	uint32		hash_len;

	if (!strchr("PCSH", hdr->type))
		return PKT_STOP;
	if (avail < size)
		return size <= SBUF_SIZE ? PKT_NEED_FULL : PKT_STOP;
	switch (hdr->type)
	{
		case 'P':
			name = string_at(body, end);
			if (!name || name[0] == '\0')
				return PKT_STOP;
			if (client_find(c, name))
				return PKT_STOP;	/* a syntax or analysis error comes first: the server decides */
			hash_len = (uint32) (end - ((const uint8 *) name + strlen(name) + 1));
			st = stmt_lookup((const uint8 *) name + strlen(name) + 1, hash_len, client_path(c));
			if (!st || !stmt_valid_in(st, c->pool))
				return PKT_STOP;
			if (client_set(c, name, st) != SET_OK || !answer_client(c, '1'))
				return PKT_STOP;	/* the server path reports the failure */
			POOL_STAT_ADD(c->pool->slot, client_parse_count, 1);
			return PKT_CONSUME;
		case 'C':
			name = (hdr->len > 5) ? string_at(body + 1, end) : NULL;
			if (!name || body[0] != 'S' || name[0] == '\0')
				return PKT_STOP;
			if (!answer_client(c, '3'))
				return PKT_STOP;
			client_remove(c, name);
			return PKT_CONSUME;
		case 'S':
			/* unlinked in transaction/statement pooling: idle, nothing in flight */
			return answer_client(c, 'Z') ? PKT_CONSUME : PKT_STOP;
		default:
			return PKT_CONSUME; /* Flush: nothing to flush */
	}
}

/* ---- statements dropped on the server ---- */

/*
 * A CommandComplete of the client's traffic says statements were dropped:
 * DISCARD ALL / DEALLOCATE ALL dropped every one (the client's names too,
 * as on a direct connection); a plain DEALLOCATE dropped one pgbun cannot
 * name, so every statement on the server becomes unknown and each Parse
 * pgbun sends there is preceded by a Close of the same name.
 */
void
prepared_command_complete(Server *s, const char *tag, void *mark)
{
	if (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0)
	{
		uint64		m = (uint64) (uintptr_t) mark;

		/* only what was made before the statement in the stream is gone */
		server_forget_upto(s, mark ? (uint32) m : PG_UINT32_MAX);
		/*
		 * A Close sent after it of a name made before it closes nothing the
		 * statement left: if skipped, it gives nothing back.
		 */
		for (uint32 i = 0; i < s->tracker.count; i++)
		{
			TrackEntry *x = track_entry_at(&s->tracker, i);
			bool		remade = false;

			if (x->type != 'C' || !(x->uflags & REQ_CLOSED) || !x->name)
				continue;
			for (uint32 k = 0; k < i && !remade; k++)
			{
				TrackEntry *y = track_entry_at(&s->tracker, k);

				remade = y->type == 'P' && y->name && strcmp(y->name, x->name) == 0;
			}
			if (!remade)
				x->uflags |= REQ_NAME_GONE;
		}
		s->stmts_unsure = false;
		if (s->link)
			client_remove_upto(s->link, mark ? (uint32) ((m >> 32) & 0x7fffffff) : PG_UINT32_MAX);
	}
	else if (strcmp(tag, "DEALLOCATE") == 0)
	{
		prepared_server_forget_all(s);
		s->stmts_unsure = true;
	}
}

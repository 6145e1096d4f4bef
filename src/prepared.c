/*
 * prepared.c - named prepared statements across pooled servers, and the
 * per-server request queue (see prepared.h).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/timestamp.h"

#include "config.h"
#include "prepared.h"
#include "shmem.h"

/* One statement per distinct (query text, parameter types), for the worker's lifetime. */
typedef struct PreparedStmt
{
	struct PreparedStmt *next;	/* hash chain */
	uint64		id;				/* server-side name: pgbun_<id> */
	uint32		refs;			/* client names, server entries, queued Parses using it */
	uint32		name_refs;		/* client names only: while > 0 it counts in the memory budget */
	uint32		hash;
	/* pools where a server accepted it: a client's Parse there needs no server */
	const Pool *valid_in[4];
	uint8		valid_next;
	uint32		body_len;
	uint8		body[FLEXIBLE_ARRAY_MEMBER];	/* Parse body after the name */
} PreparedStmt;

typedef struct ClientStmt
{
	char	   *name;
	PreparedStmt *stmt;
} ClientStmt;

typedef struct ClientStmts
{
	int			n;
	int			cap;
	ClientStmt *items;
} ClientStmts;

typedef struct ServerStmt
{
	PreparedStmt *stmt;
	uint64		last_use;
} ServerStmt;

typedef struct ServerStmts
{
	int			n;
	int			cap;
	uint64		clock;
	ServerStmt *items;
} ServerStmts;

#define REQ_SYNTH	0x1			/* pgbun answers it (byte in 'answer') */
#define REQ_HIDE	0x2			/* the server's answer is pgbun's, not the client's */
#define REQ_FORGET	0x4			/* a Parse creating 'stmt': forget it if it never completes */
#define REQ_HIDE_ERROR 0x8		/* the server's ErrorResponse to it is pgbun's business (refuse_parse) */

typedef struct ReqEntry
{
	char		type;			/* the request's message type */
	uint8		flags;
	char		answer;			/* REQ_SYNTH: '1' ParseComplete, '3' CloseComplete, 'E' / 'L' an error (refuse_parse) */
	PreparedStmt *stmt;
	char	   *client_name;	/* a client's Parse: its name, dropped if the Parse fails */
} ReqEntry;

typedef struct ReqQueue
{
	ReqEntry   *items;
	uint32		cap;
	uint32		head;
	uint32		count;
} ReqQueue;

/* Past this many unanswered requests a client is closed rather than grown without end. */
#define REQ_QUEUE_MAX (1 << 20)
#define STMT_BUCKETS 4096
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
	return (uint64) pgbun_max_prepared_statement_memory * 1024;
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

static PreparedStmt *
stmt_find(const uint8 *body, uint32 len, uint32 h)
{
	PreparedStmt *st;

	for (st = stmt_buckets[h % STMT_BUCKETS]; st; st = st->next)
		if (st->hash == h && st->body_len == len && memcmp(st->body, body, len) == 0)
			return st;
	return NULL;
}

static PreparedStmt *
stmt_lookup(const uint8 *body, uint32 len)
{
	return stmt_find(body, len, hash_bytes(body, (int) len));
}

static PreparedStmt *
stmt_lookup_or_add(const uint8 *body, uint32 len)
{
	uint32		h = hash_bytes(body, (int) len);
	PreparedStmt **bucket = &stmt_buckets[h % STMT_BUCKETS];
	PreparedStmt *st = stmt_find(body, len, h);

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

static PgbunPoolSlot *
pool_stats(Server *s)
{
	return &pgbun_shared->pools[s->pool->slot];
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

/* ---- the request queue ---- */

static ReqEntry *
queue_head(Server *s)
{
	ReqQueue   *q = s->requests;

	return (q && q->count > 0) ? &q->items[q->head] : NULL;
}

static void
queue_pop(Server *s)
{
	ReqQueue   *q = s->requests;

	PreparedStmt *st = q->items[q->head].stmt;

	free(q->items[q->head].client_name);
	q->head = (q->head + 1) % q->cap;
	q->count--;
	if (st)
		stmt_unref(st);
}

static bool
queue_push(Server *s, char type, uint8 flags, char answer, PreparedStmt *stmt)
{
	ReqQueue   *q = s->requests;
	ReqEntry   *e;

	if (!q)
	{
		q = s->requests = calloc(1, sizeof(ReqQueue));
		if (!q)
			return false;
	}
	if (q->count == q->cap)
	{
		uint32		ncap = q->cap ? q->cap * 2 : 64;
		ReqEntry   *items;

		if (ncap > REQ_QUEUE_MAX)
			return false;
		items = malloc(sizeof(ReqEntry) * ncap);
		if (!items)
			return false;
		for (uint32 i = 0; i < q->count; i++)
			items[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = items;
		q->cap = ncap;
		q->head = 0;
	}
	e = &q->items[(q->head + q->count) % q->cap];
	e->type = type;
	e->flags = flags;
	e->answer = answer;
	e->stmt = stmt;
	e->client_name = NULL;
	if (stmt)
		stmt_ref(stmt);
	q->count++;
	return true;
}

bool
prepared_queue_empty(Server *s)
{
	return queue_head(s) == NULL;
}

/* ---- the statements a server has ---- */

static ServerStmt *
server_find(Server *s, const PreparedStmt *st)
{
	ServerStmts *ss = s->stmts;

	for (int i = 0; ss && i < ss->n; i++)
		if (ss->items[i].stmt == st)
			return &ss->items[i];
	return NULL;
}

static void
server_forget(Server *s, const PreparedStmt *st)
{
	ServerStmts *ss = s->stmts;

	for (int i = 0; ss && i < ss->n; i++)
		if (ss->items[i].stmt == st)
		{
			ss->items[i] = ss->items[--ss->n];
			stmt_unref((PreparedStmt *) st);
			return;
		}
}

void
prepared_server_forget_all(Server *s)
{
	ServerStmts *ss = s->stmts;

	for (int i = 0; ss && i < ss->n; i++)
		stmt_unref(ss->items[i].stmt);
	if (ss)
		ss->n = 0;
}

/* ---- a client's names ---- */

static ClientStmt *
client_find(Client *c, const char *name)
{
	ClientStmts *cs = c->stmts;

	for (int i = 0; cs && i < cs->n; i++)
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
	cs->items[cs->n].stmt = st;
	stmt_ref(st);
	name_ref(st);
	budget_used += name_cost(name);
	cs->n++;
	return SET_OK;
}

/* Give back what a client name was charged, before it goes. */
static void
client_name_drop(ClientStmt *item)
{
	budget_used -= Min(budget_used, name_cost(item->name));
	name_unref(item->stmt);
	free(item->name);
	stmt_unref(item->stmt);
}

static void
client_remove(Client *c, const char *name)
{
	ClientStmts *cs = c->stmts;

	for (int i = 0; cs && i < cs->n; i++)
		if (strcmp(cs->items[i].name, name) == 0)
		{
			client_name_drop(&cs->items[i]);
			cs->items[i] = cs->items[--cs->n];
			return;
		}
}

static void
client_remove_all(Client *c)
{
	ClientStmts *cs = c->stmts;

	for (int i = 0; cs && i < cs->n; i++)
		client_name_drop(&cs->items[i]);
	if (cs)
		cs->n = 0;
}

void
prepared_client_free(Client *c)
{
	client_remove_all(c);
	if (c->stmts)
		free(c->stmts->items);
	free(c->stmts);
	c->stmts = NULL;
}

void
prepared_server_free(Server *s)
{
	prepared_server_forget_all(s);
	while (queue_head(s))
		queue_pop(s);
	if (s->stmts)
		free(s->stmts->items);
	free(s->stmts);
	if (s->requests)
		free(s->requests->items);
	free(s->requests);
	s->stmts = NULL;
	s->requests = NULL;
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

/*
 * Make sure the server has st, injecting Parse (and a Close for the least
 * recently used statement when the server is at pgbun.max_prepared_statements).
 * parse_flags: REQ_HIDE when the client never sent this Parse.
 */
static bool
ensure_on_server(Server *s, PreparedStmt *st, uint8 parse_flags, const char *client_name)
{
	ServerStmts *ss = s->stmts;
	ServerStmt *have = server_find(s, st);
	char		name[SERVER_NAME_MAX];
	int			nlen;

	if (!ss)
	{
		ss = s->stmts = calloc(1, sizeof(ServerStmts));
		if (!ss)
			return false;
	}
	if (have)
	{
		have->last_use = ++ss->clock;
		return true;
	}
	if (ss->n >= pgbun_max_prepared_statements && ss->n > 0)
	{
		int			lru = 0;
		char		closebody[SERVER_NAME_MAX + 1];

		for (int i = 1; i < ss->n; i++)
			if (ss->items[i].last_use < ss->items[lru].last_use)
				lru = i;
		closebody[0] = 'S';
		nlen = server_name(ss->items[lru].stmt, closebody + 1);
		if (!queue_message(s, 'C', closebody, nlen + 2, NULL, 0) ||
			!queue_push(s, 'C', REQ_HIDE, 0, NULL))
			return false;
		stmt_unref(ss->items[lru].stmt);
		ss->items[lru] = ss->items[--ss->n];
	}
	if (ss->n == ss->cap)
	{
		int			ncap = ss->cap ? ss->cap * 2 : 16;
		ServerStmt *items = realloc(ss->items, sizeof(ServerStmt) * ncap);

		if (!items)
			return false;
		ss->items = items;
		ss->cap = ncap;
	}
	nlen = server_name(st, name);
	if (!queue_message(s, 'P', name, nlen + 1, st->body, st->body_len) ||
		!queue_push(s, 'P', parse_flags | REQ_FORGET, 0, st))
		return false;
	if (client_name)
	{
		ReqQueue   *q = s->requests;

		q->items[(q->head + q->count - 1) % q->cap].client_name = strdup(client_name);
	}
	ss->items[ss->n].stmt = st;
	ss->items[ss->n].last_use = ++ss->clock;
	stmt_ref(st);
	ss->n++;
	pg_atomic_fetch_add_u64(&pool_stats(s)->server_parse_count, 1);
	return true;
}

/* ---- answers pgbun gives itself ---- */

bool
prepared_answers_waiting(Server *s)
{
	ReqEntry   *h = queue_head(s);

	return h && (h->flags & REQ_SYNTH);
}

/* Requests that get no answer at all (Flush) leave the queue when they reach its head. */
static void
pop_unanswered(Server *s)
{
	ReqEntry   *h;

	while ((h = queue_head(s)) && h->type == 'H')
		queue_pop(s);
}

void
prepared_emit_answers(Server *s)
{
	Client	   *c = s->link;
	ReqEntry   *h;
	bool		any = false;

	/* only once everything the server said before is out */
	if (!c || sbuf_has_pending_forward(&s->sb))
		return;
	pop_unanswered(s);
	while ((h = queue_head(s)) && (h->flags & REQ_SYNTH))
	{
		ProtoBuf	pb;

		if (!sbuf_out_begin(&c->sb, &pb))
			return;
		if (h->answer == 'E')
		{
			char		msg[256];

			/* refuse_parse: the statement that did not fit */
			snprintf(msg, sizeof(msg),
					 "pgbun: prepared statement \"%.63s\" does not fit in pgbun.max_prepared_statement_memory (%d kB)",
					 h->client_name ? h->client_name : "", pgbun_max_prepared_statement_memory);
			proto_put_error(&pb, false, "53200", msg, NULL,
							"Close statements no longer needed, or raise pgbun.max_prepared_statement_memory.");
		}
		else if (h->answer == 'L')
		{
			char		msg[256];

			snprintf(msg, sizeof(msg),
					 "pgbun: named prepared statement \"%.63s\" is longer than 16 kB and cannot be pooled in transaction mode",
					 h->client_name ? h->client_name : "");
			proto_put_error(&pb, false, "54000", msg, NULL,
							"Use an unnamed statement, or session pooling for this client.");
		}
		else
			put_header(&pb, h->answer, 4);
		if (pb.overflow)
			return;
		sbuf_out_commit(&c->sb, &pb);
		queue_pop(s);
		pop_unanswered(s);
		any = true;
	}
	if (any)
		(void) sbuf_flush_out(&c->sb);
}

/* ---- client messages ---- */

/* The string at p within [p, end), or NULL when it is not terminated there. */
static const char *
string_at(const uint8 *p, const uint8 *end)
{
	return (p < end && memchr(p, '\0', end - p)) ? (const char *) p : NULL;
}

static bool
starts_with_word(const uint8 *p, const uint8 *end, const char *words)
{
	size_t		n = strlen(words);

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return (size_t) (end - p) >= n && pg_strncasecmp((const char *) p, words, n) == 0;
}

/* Set when a client message cannot be handled; client.c closes the client with it. */
static PktAction
client_error(Client *c, const char *why)
{
	c->stmt_error = why;
	return PKT_STOP;
}

/*
 * A named Parse that does not fit in pgbun.max_prepared_statement_memory
 * (why 'E'), or is longer than the 16 kB pgbun can keep (why 'L'): the
 * client gets 53200 / 54000 for it in its place among the answers, and
 * stays connected. The server gets a Bind of a statement that cannot exist in its
 * place, so that it fails there too and skips to the next Sync (rolling
 * back an implicit transaction, failing an explicit one) exactly as for a
 * Parse that failed; its own ErrorResponse is hidden. pgbun's answer is
 * queued first, so it goes out when everything before it is answered, and
 * is dropped, like the server's would be, when an earlier message failed.
 */
static PktAction
refuse_parse(Client *c, Server *s, const char *name, char why)
{
	static const char poison[] = "\0pgbun_refused_statement\0\0\0\0\0\0\0";
	ReqQueue   *q;

	if (!queue_push(s, 'P', REQ_SYNTH, why, NULL))
		return client_error(c, "out of memory");
	q = s->requests;
	q->items[(q->head + q->count - 1) % q->cap].client_name = strdup(name);
	/* Bind: portal "", statement, no formats, no parameters, no result formats */
	if (!queue_message(s, 'B', poison, sizeof(poison) - 1, NULL, 0) ||
		!queue_push(s, 'B', REQ_HIDE_ERROR, 0, NULL))
		return client_error(c, "out of memory");
	if (why == 'E')
		budget_refusals++;
	if (why == 'E' && W->now - budget_logged_at >= 60 * USECS_PER_SEC)
	{
		/* one line a minute at most, however many are refused */
		ereport(LOG, (errmsg("pgbun: %llu prepared statement(s) refused: pgbun.max_prepared_statement_memory (%d kB) is used up",
							 (unsigned long long) budget_refusals, pgbun_max_prepared_statement_memory)));
		budget_logged_at = W->now;
		budget_refusals = 0;
	}
	prepared_emit_answers(s);
	return PKT_CONSUME;
}

PktAction
prepared_client_message(Client *c, Server *s, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	uint32		size = proto_msg_size(hdr);
	const uint8 *body = msg + PROTO_HDR_LEN;
	const uint8 *end = msg + avail;
	bool		complete = (avail == size);

	switch (hdr->type)
	{
		case 'P':
			{
				const char *name;
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
							break;
						/* too long to keep: refused like one over the budget, the rest dropped unread */
						if (sbuf_has_unflushed(&c->sb))
							return PKT_STOP;
						return refuse_parse(c, s, name, 'L') == PKT_CONSUME ? PKT_SKIP : PKT_STOP;
					}
					return PKT_NEED_FULL;
				}
				name = string_at(body, end);
				if (!name)
					return client_error(c, "malformed Parse message");
				if (name[0] == '\0')
					break;
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;	/* earlier messages go out first */
				st = stmt_lookup_or_add((const uint8 *) name + strlen(name) + 1,
										(uint32) (end - ((const uint8 *) name + strlen(name) + 1)));
				if (!st || (set = client_set(c, name, st)) != SET_OK)
				{
					if (st && st->refs == 0)
					{
						stmt_ref(st);
						stmt_unref(st);
					}
					if (st && set == SET_OVER_BUDGET)
						return refuse_parse(c, s, name, 'E');
					return client_error(c, "out of memory for prepared statements");
				}
				pg_atomic_fetch_add_u64(&pool_stats(s)->client_parse_count, 1);
				if (server_find(s, st))
				{
					/* the server has it already: pgbun answers ParseComplete itself */
					if (!ensure_on_server(s, st, 0, NULL) || !queue_push(s, 'P', REQ_SYNTH, '1', NULL))
						return client_error(c, "out of memory for prepared statements");
					prepared_emit_answers(s);
				}
				else if (!ensure_on_server(s, st, 0, name))
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
				if (name[0] == '\0' || !(cs = client_find(c, name)))
					break;		/* unnamed, or unknown: the server answers as PostgreSQL does */
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;
				if (!ensure_on_server(s, cs->stmt, REQ_HIDE, NULL))
					return client_error(c, "out of memory for prepared statements");
				pg_atomic_fetch_add_u64(&pool_stats(s)->bind_count, 1);
				snlen = server_name(cs->stmt, sname);
				old_prefix = PROTO_HDR_LEN + strlen(portal) + 1 + strlen(name) + 1;
				if (!sbuf_out_begin(&s->sb, &pb))
					return client_error(c, "out of memory");
				put_header(&pb, 'B', hdr->len - strlen(name) + snlen);
				put_bytes(&pb, portal, strlen(portal) + 1);
				put_bytes(&pb, sname, snlen + 1);
				if (pb.overflow || !queue_push(s, 'B', 0, 0, NULL))
					return client_error(c, "out of memory");
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
				if (body[0] != 'S' || name[0] == '\0')
					break;		/* portals and the unnamed statement pass through */
				if (hdr->type == 'C')
				{
					if (sbuf_has_unflushed(&c->sb))
						return PKT_STOP;
					/* the server keeps it for others; the client's name goes */
					client_remove(c, name);
					if (!queue_push(s, 'C', REQ_SYNTH, '3', NULL))
						return client_error(c, "out of memory");
					prepared_emit_answers(s);
					return PKT_CONSUME;
				}
				if (!(cs = client_find(c, name)))
					break;
				if (sbuf_has_unflushed(&c->sb))
					return PKT_STOP;
				{
					char		dbody[SERVER_NAME_MAX + 1];
					int			snlen;

					if (!ensure_on_server(s, cs->stmt, REQ_HIDE, NULL))
						return client_error(c, "out of memory for prepared statements");
					dbody[0] = 'S';
					snlen = server_name(cs->stmt, dbody + 1);
					if (!queue_message(s, 'D', dbody, snlen + 2, NULL, 0) ||
						!queue_push(s, 'D', 0, 0, NULL))
						return client_error(c, "out of memory");
				}
				return PKT_CONSUME;
			}
		case 'Q':
			/* DISCARD ALL / DEALLOCATE ALL drop every statement on the server and all the client's names */
			if (!complete && avail < PROTO_HDR_LEN + 64)
				return PKT_NEED_FULL;
			if (starts_with_word(body, end, "DISCARD ALL") || starts_with_word(body, end, "DEALLOCATE ALL") ||
				starts_with_word(body, end, "DEALLOCATE PREPARE ALL"))
			{
				client_remove_all(c);
				prepared_server_forget_all(s);
			}
			break;
		case 'E':
		case 'S':
		case 'H':
		case 'F':
			break;
		default:
			return PKT_FORWARD;	/* COPY data and the like: part of a request already queued */
	}
	if (!queue_push(s, hdr->type, 0, 0, NULL))
		return client_error(c, "too many requests in flight");
	return PKT_FORWARD;
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
			hash_len = (uint32) (end - ((const uint8 *) name + strlen(name) + 1));
			st = stmt_lookup((const uint8 *) name + strlen(name) + 1, hash_len);
			if (!st || !stmt_valid_in(st, c->pool))
				return PKT_STOP;
			if (client_set(c, name, st) != SET_OK || !answer_client(c, '1'))
				return PKT_STOP;	/* the server path reports the failure */
			pg_atomic_fetch_add_u64(&pgbun_shared->pools[c->pool->slot].client_parse_count, 1);
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

/* ---- server messages ---- */

/*
 * An error in the extended protocol: the failed request, and everything the
 * server will skip up to the next Sync, get no further answer.
 */
static void
drop_failed_requests(Server *s)
{
	ReqEntry   *h = queue_head(s);

	if (!h)
		return;
	do
	{
		if ((h->flags & REQ_FORGET) && h->stmt)
		{
			/* a client's own Parse failed: as in PostgreSQL, its name does not exist */
			if (h->client_name && s->link)
			{
				ClientStmt *cs = client_find(s->link, h->client_name);

				if (cs && cs->stmt == h->stmt)
					client_remove(s->link, h->client_name);
			}
			server_forget(s, h->stmt);
		}
		queue_pop(s);
	} while ((h = queue_head(s)) && h->type != 'S');
}

PktAction
prepared_server_message(Server *s, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	ReqEntry   *h;
	bool		hide = false;

	pop_unanswered(s);
	h = queue_head(s);
	if (h && (h->flags & REQ_SYNTH))
		return PKT_STOP;		/* pgbun's own answer comes first */

	switch (hdr->type)
	{
		case 'N':
		case 'S':
		case 'A':
			return PKT_FORWARD; /* asynchronous: answers nothing */
		case 'E':
			hide = h && (h->flags & REQ_HIDE_ERROR);
			if (hide && avail < proto_msg_size(hdr))
				return PKT_NEED_FULL;	/* hidden means consumed whole; nothing changed yet */
			if (h && h->type != 'Q' && h->type != 'F')
				drop_failed_requests(s);
			break;
		case 'Z':
			if (h && (h->type == 'S' || h->type == 'Q' || h->type == 'F'))
				queue_pop(s);
			else if (h)
				return PKT_CLOSE;
			break;
		case '1':
			if (!h || h->type != 'P')
				return PKT_CLOSE;
			hide = (h->flags & REQ_HIDE) != 0;
			if (h->stmt)
				stmt_mark_valid(h->stmt, s->pool);
			queue_pop(s);
			break;
		case '2':
			if (!h || h->type != 'B')
				return PKT_CLOSE;
			queue_pop(s);
			break;
		case '3':
			if (!h || h->type != 'C')
				return PKT_CLOSE;
			hide = (h->flags & REQ_HIDE) != 0;
			queue_pop(s);
			break;
		case 'T':
		case 'n':
			if (h && h->type == 'D')
				queue_pop(s);
			break;
		case 'C':
		case 'I':
		case 's':
			if (h && h->type == 'E')
				queue_pop(s);
			break;
		default:
			break;				/* DataRow, ParameterDescription, COPY traffic: part of an answer */
	}
	pop_unanswered(s);
	if (hide)
		return prepared_answers_waiting(s) ? PKT_CONSUME_STOP : PKT_CONSUME;
	return prepared_answers_waiting(s) ? PKT_FORWARD_STOP : PKT_FORWARD;
}

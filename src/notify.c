/*
 * notify.c - LISTEN/NOTIFY for clients of transaction and statement pools.
 *
 * In those modes a client's statements run on whichever server connection
 * is free, so a LISTEN cannot stay on the server that ran it. Instead:
 *
 *  - What a client listens to is learnt from the server, never parsed from
 *    SQL: when a client with channels is linked to a server, pgbun LISTENs
 *    its channels there first (hidden, pipelined before the client's own
 *    query; "UNLISTEN *" first if the server listened for someone else).
 *    When a CommandComplete says LISTEN, UNLISTEN or DISCARD ALL, the
 *    client's ReadyForQuery that ends the transaction is held back and
 *    pgbun reads pg_listening_channels() on that server: that is the
 *    client's new channel set, with PostgreSQL's own rules for quoting,
 *    commit, rollback and savepoints.
 *  - Each pool has one LISTEN connection (the listener: a Server with
 *    listener set, logged in like the others but not counted in pool_size,
 *    never linked to a client) that LISTENs to the union of its clients'
 *    channels. A client's held ReadyForQuery is let go once the listener
 *    has confirmed any channel that was new to it, so a NOTIFY sent after
 *    the client saw its LISTEN complete reaches it.
 *  - Each NotificationResponse from the listener is copied, as the server
 *    sent it (the notifying backend's pid included), to every client of the
 *    pool subscribed to its channel: into the client's output buffer when
 *    its byte stream is at a message boundary, else into a queue of at most
 *    pgbun.notify_queue_size bytes; a client over it is closed with 53200.
 *  - NotificationResponses from the pool's ordinary servers are dropped on
 *    transaction and statement links (the listener delivers them).
 *  - If the listener dies it is opened again (next janitor turn, then with
 *    a backoff while logins fail) and LISTENs to every channel again.
 *
 * Session links are untouched: the client's own server delivers, as before.
 */
#include "postgres.h"

#include "config.h"
#include "counters.h"
#include "notify.h"
#include "pooler.h"
#include "proto.h"
#include "server_login.h"
#include "settings.h"

int			pgbun_notify_queue_size = 1024 * 1024;

typedef char ChannelName[NAMEDATALEN];

/* One queued notification (a whole NotificationResponse, or a held ReadyForQuery). */
typedef struct NotifyMsg
{
	struct NotifyMsg *next;
	uint32		len;
	uint8		data[FLEXIBLE_ARRAY_MEMBER];
} NotifyMsg;

typedef struct NotifyClient
{
	dlist_node	node;			/* in its NotifyPool's clients while it has channels, or
								 * in notify_closing while its last words go out */
	bool		in_pool;
	bool		closing;		/* over the bound: the error goes out, then it is closed */
	TimestampTz closing_since;
	Client	   *client;
	ChannelName *ch;			/* its channels */
	int			n;
	int			cap;
	uint64		set_id;			/* worker-unique id of this set: a server that
								 * listens to exactly it needs no LISTENs */
	/* pg_listening_channels() being read on its server */
	ChannelName *rd;
	int			rd_n;
	int			rd_cap;
	bool		rd_on;			/* inside that result */
	bool		rd_done;		/* its CommandComplete came */
	bool		rd_over;		/* more than NOTIFY_MAX_CLIENT_CHANNELS */
	/* notifications that could not go into its output buffer yet */
	NotifyMsg  *head;
	NotifyMsg  *tail;
	uint64		queued;			/* bytes */
	bool		overflow;		/* over pgbun.notify_queue_size: close it */
	/*
	 * Notifications its own server sent while its channel set was changing
	 * (a NOTIFY in the same transaction as the LISTEN, or committed before
	 * pgbun read the channels): the listener cannot have them.
	 */
	NotifyMsg  *early;
	NotifyMsg  *early_tail;
	uint64		early_bytes;
	/*
	 * Those of them handed on: a listener that was behind the queue when it
	 * LISTENed may send them again before it confirms generation dup_gen.
	 */
	NotifyMsg  *dup;
	NotifyMsg  *dup_tail;
	uint64		dup_gen;
} NotifyClient;

typedef struct NotifyChannel
{
	ChannelName name;
	int			refs;			/* clients subscribed (entries of subs) */
	int			cap_subs;
	struct NotifyClient **subs; /* they, in no order: a notification goes to each */
	bool		on_listener;	/* LISTEN sent on the current listener (UNLISTEN not) */
} NotifyChannel;

typedef struct NotifyPool
{
	dlist_node	node;			/* in notify_pools */
	Pool	   *pool;
	dlist_head	clients;		/* NotifyClients with channels (for draining) */
	NotifyChannel *chan;
	int			n_chan;
	int			cap_chan;
	dlist_head	servers;		/* the listener's state list (server_set_state) */
	Server	   *listener;		/* NULL: none now */
	bool		ready;			/* logged in: LISTENs can be sent */
	bool		named;			/* its application_name is set */
	bool		inflight;		/* a query is out, its ReadyForQuery not back */
	bool		force_sync;		/* send a query even with nothing to change (a marker, below) */
	uint64		inflight_gen;	/* generation that query confirms */
	uint64		gen;			/* bumped when a channel is wanted the listener lacks */
	uint64		confirmed;		/* generation the listener has confirmed */
	TimestampTz retry_at;		/* no launch before (0: at once) */
	int			failures;		/* failed logins in a row */
} NotifyPool;

static dlist_head notify_pools = DLIST_STATIC_INIT(notify_pools);
static uint64 notify_last_set_id = 0;
static dlist_head notify_closing = DLIST_STATIC_INIT(notify_closing);

/* A client over the bound has this long to read its error before it is closed anyway. */
#define NOTIFY_CLOSE_LINGER_MS 5000

/* Longest SQL text pgbun sends to the listener in one query. */
#define LISTENER_SQL_MAX 8000

static void
msgs_free(NotifyMsg **head, NotifyMsg **tail)
{
	while (*head)
	{
		NotifyMsg  *m = *head;

		*head = m->next;
		free(m);
	}
	*tail = NULL;
}

/* The channel of a NotificationResponse (whole message), or NULL. */
static const char *
msg_channel(const uint8 *msg, uint32 size)
{
	ProtoReader r;
	const char *channel;

	proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
	(void) proto_read_int32(&r);
	channel = proto_read_string(&r);
	(void) proto_read_string(&r);
	return r.error ? NULL : channel;
}

static bool
expired(TimestampTz since, int timeout_ms)
{
	return timeout_ms > 0 && since > 0 && W->now - since >= (int64) timeout_ms * 1000;
}

static NotifyPool *
np_get(Pool *pool)
{
	NotifyPool *np = pool->notify;

	if (np)
		return np;
	np = calloc(1, sizeof(NotifyPool));
	if (!np)
		return NULL;
	np->pool = pool;
	dlist_init(&np->clients);
	dlist_init(&np->servers);
	dlist_push_tail(&notify_pools, &np->node);
	pool->notify = np;
	return np;
}

static NotifyClient *
nc_get(Client *c)
{
	if (!c->notify)
	{
		/* queued notifications go out as the socket takes them: write events stay on */
		if (sbuf_out_always(&c->sb) < 0)
			return NULL;
		c->notify = calloc(1, sizeof(NotifyClient));
		if (c->notify)
			c->notify->client = c;
	}
	return c->notify;
}

static bool
names_have(const ChannelName *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static bool
names_add(ChannelName **names, int *n, int *cap, const char *name)
{
	if (*n == *cap)
	{
		int			ncap = *cap ? *cap * 2 : 8;
		ChannelName *p = realloc(*names, sizeof(ChannelName) * ncap);

		if (!p)
			return false;
		*names = p;
		*cap = ncap;
	}
	strlcpy((*names)[(*n)++], name, NAMEDATALEN);
	return true;
}

static int
chan_find(NotifyPool *np, const char *name)
{
	for (int i = 0; i < np->n_chan; i++)
		if (strcmp(np->chan[i].name, name) == 0)
			return i;
	return -1;
}

/*
 * Subscribe a client to a channel: 1 when the listener does not LISTEN to
 * it yet, 0 when it does, -1 when out of memory (nothing changed).
 */
static int
chan_ref(NotifyPool *np, const char *name, NotifyClient *nc)
{
	int			i = chan_find(np, name);
	NotifyChannel *ch;

	if (i < 0)
	{
		if (np->n_chan == np->cap_chan)
		{
			int			ncap = np->cap_chan ? np->cap_chan * 2 : 8;
			NotifyChannel *p = realloc(np->chan, sizeof(NotifyChannel) * ncap);

			if (!p)
				return -1;
			np->chan = p;
			np->cap_chan = ncap;
		}
		i = np->n_chan++;
		memset(&np->chan[i], 0, sizeof(NotifyChannel));
		strlcpy(np->chan[i].name, name, NAMEDATALEN);
	}
	ch = &np->chan[i];
	if (ch->refs == ch->cap_subs)
	{
		int			ncap = ch->cap_subs ? ch->cap_subs * 2 : 4;
		NotifyClient **p = realloc(ch->subs, sizeof(NotifyClient *) * ncap);

		if (!p)
			return -1;			/* an entry with no subscriber goes at the next compaction */
		ch->subs = p;
		ch->cap_subs = ncap;
	}
	ch->subs[ch->refs++] = nc;
	if (ch->on_listener)
		return 0;
	np->gen++;
	return 1;
}

static void
chan_unref(NotifyPool *np, const char *name, NotifyClient *nc)
{
	int			i = chan_find(np, name);
	NotifyChannel *ch;

	if (i < 0)
		return;
	ch = &np->chan[i];
	for (int j = 0; j < ch->refs; j++)
		if (ch->subs[j] == nc)
		{
			ch->subs[j] = ch->subs[--ch->refs];
			return;
		}
}

/* Drop channels nobody wants and the listener does not LISTEN to. */
static void
chan_compact(NotifyPool *np)
{
	int			j = 0;

	for (int i = 0; i < np->n_chan; i++)
	{
		if (np->chan[i].refs > 0 || np->chan[i].on_listener)
			np->chan[j++] = np->chan[i];
		else
			free(np->chan[i].subs);
	}
	np->n_chan = j;
}

static bool
np_wanted(NotifyPool *np)
{
	for (int i = 0; i < np->n_chan; i++)
		if (np->chan[i].refs > 0)
			return true;
	return false;
}

/* Append "<verb> "<name>";" with the name quoted as an identifier. */
static bool
append_stmt(char *buf, size_t cap, size_t *len, const char *verb, const char *name)
{
	size_t		l = *len;
	size_t		need = strlen(verb) + 2 * strlen(name) + 5;

	if (l + need >= cap)
		return false;
	l += snprintf(buf + l, cap - l, "%s \"", verb);
	for (const char *p = name; *p; p++)
	{
		if (*p == '"')
			buf[l++] = '"';
		buf[l++] = *p;
	}
	buf[l++] = '"';
	buf[l++] = ';';
	buf[l] = '\0';
	*len = l;
	return true;
}

/* ---- the listener ---- */

static void
np_launch(NotifyPool *np)
{
	Server	   *s;

	if (np->listener || W->shutting_down || W->server_addr_len == 0 ||
		(np->retry_at && W->now < np->retry_at))
		return;
	s = server_launch_listener(np->pool);
	if (s)
	{
		np->listener = s;
		np->ready = false;
		np->inflight = false;
		ereport(DEBUG1, (errmsg("pgbun: opening the LISTEN connection of pool %s/%s",
								np->pool->database, np->pool->user)));
	}
	else
	{
		np->failures++;
		np->retry_at = W->now + (int64) Min(pgbun_cfg->server_login_retry, 1000 * np->failures) * 1000;
	}
}

/*
 * Bring the listener in line with the channels wanted: one query at a time
 * (LISTEN for channels it lacks, UNLISTEN for channels nobody wants), and
 * open it if there is none.
 */
static void
np_sync(NotifyPool *np)
{
	static char sql[LISTENER_SQL_MAX + 256];
	size_t		len = 0;
	size_t		prefix;
	bool		complete = true;
	Server	   *s = np->listener;
	ProtoBuf	pb;

	if (!s)
	{
		if (np_wanted(np))
			np_launch(np);
		return;
	}
	if (!np->ready || np->inflight || s->closed)
		return;
	sql[0] = '\0';
	/*
	 * First: a name pg_stat_activity tells it by, and no idle_session_timeout
	 * (an idle listener is the point; each reconnect loses notifications).
	 */
	if (!np->named)
		len = strlcpy(sql, "SET application_name = 'pgbun listener';SET idle_session_timeout = 0;", sizeof(sql));
	prefix = len;
	for (int i = 0; i < np->n_chan; i++)
	{
		NotifyChannel *ch = &np->chan[i];

		if (ch->refs > 0 && !ch->on_listener)
		{
			if (!append_stmt(sql, LISTENER_SQL_MAX, &len, "LISTEN", ch->name))
			{
				complete = false;
				break;
			}
		}
		else if (ch->refs == 0 && ch->on_listener)
		{
			if (!append_stmt(sql, LISTENER_SQL_MAX, &len, "UNLISTEN", ch->name))
			{
				complete = false;
				break;
			}
		}
	}
	if (len == 0 && !np->force_sync)
	{
		np->confirmed = np->gen;
		return;
	}
	if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_query(&pb, sql))
		return;					/* the janitor tries again */
	sbuf_out_commit(&s->sb, &pb);
	np->named = true;
	np->force_sync = false;
	/* what the query covers is now on the listener, or off it (same walk as above) */
	len = prefix;
	for (int i = 0; i < np->n_chan; i++)
	{
		NotifyChannel *ch = &np->chan[i];

		if (ch->refs > 0 && !ch->on_listener)
		{
			if (!append_stmt(sql, LISTENER_SQL_MAX, &len, "LISTEN", ch->name))
				break;
			ch->on_listener = true;
		}
		else if (ch->refs == 0 && ch->on_listener)
		{
			if (!append_stmt(sql, LISTENER_SQL_MAX, &len, "UNLISTEN", ch->name))
				break;
			ch->on_listener = false;
		}
	}
	chan_compact(np);
	np->inflight = true;
	np->inflight_gen = complete ? np->gen : np->confirmed;
	if (sbuf_flush_out(&s->sb) < 0)
		server_close(s, "write to server failed");
}

dlist_head *
notify_server_list(Server *s)
{
	return &s->pool->notify->servers;
}

/* The pool's listener connections (NULL: it has no LISTEN clients yet). */
dlist_head *
notify_pool_servers(Pool *pool)
{
	return pool->notify ? &pool->notify->servers : NULL;
}

/* The listener's login finished: LISTEN to everything wanted. */
void
notify_listener_ready(Server *s)
{
	NotifyPool *np = s->pool->notify;

	if (!np || np->listener != s)
	{
		server_close(s, "LISTEN connection not needed");
		return;
	}
	server_set_state(s, SV_ACTIVE);
	np->ready = true;
	np->named = false;
	np->failures = 0;
	np->retry_at = 0;
	ereport(LOG, (errmsg("pgbun: LISTEN connection of pool %s/%s ready (backend pid %u)",
						 np->pool->database, np->pool->user, s->be_pid)));
	for (int i = 0; i < np->n_chan; i++)
		np->chan[i].on_listener = false;
	chan_compact(np);
	np_sync(np);
}

void
notify_listener_login_failed(Server *s)
{
	NotifyPool *np = s->pool->notify;

	ereport(LOG, (errmsg("pgbun: the LISTEN connection of pool %s/%s could not log in",
						 s->pool->database, s->pool->user)));
	if (np && np->listener == s)
		np->ready = false;		/* counted as a failure when it closes */
}

/* A server connection closes; the listener's channels must be LISTENed again on the next one. */
void
notify_server_closed(Server *s)
{
	NotifyPool *np;

	if (!s->listener)
		return;
	np = s->pool->notify;
	if (!np || np->listener != s)
		return;
	if (np->ready)
	{
		ereport(LOG, (errmsg("pgbun: the LISTEN connection of pool %s/%s was lost; opening a new one",
							 np->pool->database, np->pool->user)));
		np->failures = 0;
		np->retry_at = 0;
	}
	else
	{
		np->failures++;
		np->retry_at = W->now + (int64) Min(pgbun_cfg->server_login_retry, 1000 * np->failures) * 1000;
	}
	np->listener = NULL;
	np->ready = false;
	np->inflight = false;
	for (int i = 0; i < np->n_chan; i++)
		np->chan[i].on_listener = false;
	chan_compact(np);
	/* held clients go on (the janitor lets them go); the next listener LISTENs */
	np->confirmed = np->gen;
}

/* ---- delivery ---- */

/* Can pooler-made bytes join the client's stream now (no forwarded message half sent)? */
static bool
at_boundary(Client *c)
{
	return !c->closed && sbuf_can_send(&c->sb) &&
		(!c->link || !sbuf_has_pending_forward(&c->link->sb));
}

/*
 * Notifications leave this much of the client's output buffer free, for
 * pgbun's own answers there (a held ReadyForQuery, prepared.c's answers,
 * an error); beyond it they wait in the client's queue.
 */
#define OUT_RESERVE 1024

static bool
put_out(Client *c, const uint8 *data, uint32 len)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&c->sb, &pb) || len + OUT_RESERVE > pb.cap)
		return false;
	memcpy(pb.data, data, len);
	pb.len = len;
	sbuf_out_commit(&c->sb, &pb);
	return true;
}

/* Queue one message for the client, in order behind what is queued. */
static void
enqueue(NotifyClient *nc, const uint8 *msg, uint32 len, bool bounded)
{
	Client	   *c = nc->client;
	NotifyMsg  *m;

	if (c->closed || nc->overflow)
		return;
	if (!nc->head && at_boundary(c) && put_out(c, msg, len))
		return;
	if (bounded && nc->queued + len > (uint64) pgbun_cfg->notify_queue_size)
	{
		nc->overflow = true;
		return;
	}
	m = malloc(offsetof(NotifyMsg, data) + len);
	if (!m)
	{
		nc->overflow = true;
		return;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->data, msg, len);
	if (nc->tail)
		nc->tail->next = m;
	else
		nc->head = m;
	nc->tail = m;
	nc->queued += len;
}

static void forget(NotifyClient *nc);

/*
 * The client let more than pgbun.notify_queue_size bytes pile up: drop its
 * channels (nothing more is queued for it) and queue a FATAL 53200 behind
 * what is queued already; it is closed once that is out (or after
 * NOTIFY_CLOSE_LINGER_MS). An error sent at once would be lost: the socket
 * is full.
 */
static void
overflow_start(NotifyClient *nc)
{
	char		text[256];
	uint8		buf[512];
	ProtoBuf	pb;

	ereport(LOG, (errmsg("pgbun: closing a client of %s/%s that does not read its notifications "
						 "(more than pgbun.notify_queue_size = %d bytes queued)",
						 nc->client->pool->database, nc->client->pool->user, pgbun_cfg->notify_queue_size)));
	counters_note_pooler_error(nc->client->pool->slot, "53200");
	forget(nc);
	snprintf(text, sizeof(text),
			 "pgbun: client does not read its notifications: more than pgbun.notify_queue_size (%d bytes) queued",
			 pgbun_cfg->notify_queue_size);
	proto_buf_init(&pb, buf, sizeof(buf));
	nc->overflow = false;
	if (proto_put_error(&pb, true, "53200", text, NULL, NULL))
		enqueue(nc, buf, (uint32) pb.len, false);
	nc->closing = true;
	nc->closing_since = W->now;
	dlist_push_tail(&notify_closing, &nc->node);
}

/* Move queued messages to the output buffer while the stream allows; flush. false: closed. */
static bool
drain(NotifyClient *nc)
{
	Client	   *c = nc->client;

	if (c->closed)
		return false;
	if (nc->overflow && !nc->closing)
		overflow_start(nc);
	while (nc->head && at_boundary(c) && put_out(c, nc->head->data, nc->head->len))
	{
		NotifyMsg  *m = nc->head;

		nc->head = m->next;
		if (!nc->head)
			nc->tail = NULL;
		nc->queued -= m->len;
		free(m);
	}
	if (sbuf_out_pending(&c->sb) && at_boundary(c) && !client_flush(c))
		return false;
	if (nc->closing && !nc->head && !sbuf_out_pending(&c->sb))
	{
		client_close(c, NULL, "client did not read its notifications (pgbun.notify_queue_size)");
		return false;
	}
	return true;
}

static void
drain_all(NotifyPool *np)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &np->clients)
		(void) drain(dlist_container(NotifyClient, node, it.cur));
}

/*
 * Did the client get this one already from its own server
 * (notify_hidden_done)? The listener reads in commit order, so a copy means
 * it has read the earlier ones of the channel too: they are used up with it.
 * Anything else (say, one committed just before the LISTEN) leaves them; they
 * expire when the listener answers the marker query (dup_gen).
 */
static bool
is_dup(NotifyClient *nc, const char *channel, const uint8 *msg, uint32 size)
{
	NotifyMsg **pp;
	bool		found = false;

	for (NotifyMsg *m = nc->dup; m && !found; m = m->next)
		found = m->len == size && memcmp(m->data, msg, size) == 0;
	if (!found)
		return false;
	pp = &nc->dup;
	while (*pp)
	{
		NotifyMsg  *m = *pp;
		const char *ch = msg_channel(m->data, m->len);
		bool		same = m->len == size && memcmp(m->data, msg, size) == 0;

		if (!ch || strcmp(ch, channel) != 0)
		{
			pp = &m->next;
			continue;
		}
		*pp = m->next;
		free(m);
		if (same)
			break;
	}
	nc->dup_tail = NULL;
	for (NotifyMsg *m = nc->dup; m; m = m->next)
		nc->dup_tail = m;
	return true;
}

/* A NotificationResponse from the listener: to every subscriber of its channel. */
static void
deliver_all(NotifyPool *np, const uint8 *msg, uint32 size)
{
	const char *channel = msg_channel(msg, size);
	int			i = channel ? chan_find(np, channel) : -1;
	NotifyChannel *ch;

	if (i < 0)
		return;
	ch = &np->chan[i];
	for (int j = 0; j < ch->refs; j++)
	{
		NotifyClient *nc = ch->subs[j];

		if (nc->dup && np->confirmed >= nc->dup_gen)
			msgs_free(&nc->dup, &nc->dup_tail);
		if (nc->dup && is_dup(nc, channel, msg, size))
			continue;
		enqueue(nc, msg, size, true);
	}
}

static PktAction
listener_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	NotifyPool *np = s->pool->notify;
	uint32		size = proto_msg_size(hdr);

	if (hdr->type != 'A' && hdr->type != 'Z' && hdr->type != 'E')
		return PKT_SKIP;
	if (avail < size)
		return PKT_NEED_FULL;
	if (!np || np->listener != s)
		return PKT_CONSUME;
	if (hdr->type == 'A')
		deliver_all(np, msg, size);
	else if (hdr->type == 'Z')
	{
		if (np->inflight)
		{
			np->inflight = false;
			np->confirmed = Max(np->confirmed, np->inflight_gen);
		}
	}
	else
	{
		ProtoErrorFields f;

		if (proto_parse_error_fields(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, &f))
			ereport(LOG, (errmsg("pgbun: the LISTEN connection of pool %s/%s got an error: %s",
								 np->pool->database, np->pool->user, f.message ? f.message : "?")));
	}
	return PKT_CONSUME;
}

/*
 * Let a held ReadyForQuery go once the listener confirmed what it waits for.
 * true: let go. When session.c holds it too (held_ready), it goes out with
 * session.c's emit_held_ready: from here when emit_held is set, else by the
 * caller (server.c, right after hidden_query_done).
 */
static bool
hold_try_release(Server *s, bool emit_held)
{
	NotifyPool *np = s->pool->notify;
	Client	   *c = s->link;
	ProtoBuf	pb;

	if (s->notify_step != NOTIFY_STEP_WAITING)
		return false;
	if (np && np->listener && np->confirmed < s->notify_gen)
		return false;
	if (c && (!at_boundary(c) || !sbuf_out_begin(&c->sb, &pb) || pb.cap < OUT_RESERVE))
		return false;			/* its output is full: when it drains */
	if (c && s->held_ready)
	{
		s->notify_step = NOTIFY_STEP_NONE;
		if (emit_held)
			emit_held_ready(s);
		return true;
	}
	if (c)
	{
		/* the room checked above is what OUT_RESERVE keeps free for this */
		if (!proto_put_ready(&pb, 'I') || pb.overflow)
			return false;
		sbuf_out_commit(&c->sb, &pb);
	}
	s->notify_step = NOTIFY_STEP_NONE;
	return true;
}

/* Held servers whose wait is over go on (outside any pump of theirs). */
static void
release_waiting(NotifyPool *np)
{
	dlist_iter	it;

restart:
	dlist_foreach(it, &np->pool->active_servers)
	{
		Server	   *s = dlist_container(Server, node, it.cur);

		if (s->notify_step == NOTIFY_STEP_WAITING && hold_try_release(s, true))
		{
			server_pump_out(s);
			goto restart;
		}
	}
}

/* Socket event on the listener (logged in). */
void
notify_listener_event(Server *s)
{
	NotifyPool *np = s->pool->notify;
	PumpResult	r = PUMP_YIELD;
	uint64		rd = 0;
	uint64		wr = 0;

	for (int i = 0; i < 16 && r == PUMP_YIELD && !s->closed; i++)
		r = sbuf_pump(&s->sb, NULL, SBUF_SIZE, listener_handler, s, &rd, &wr);
	if (!s->closed)
	{
		switch (r)
		{
			case PUMP_EOF:
			case PUMP_CLOSE:
				server_close(s, "server closed the LISTEN connection");
				break;
			case PUMP_SRC_ERROR:
			case PUMP_DST_ERROR:
				server_close(s, s->sb.error ? s->sb.error : "protocol error on the LISTEN connection");
				break;
			default:
				break;			/* a yield left over: the janitor pumps again */
		}
	}
	if (!np)
		return;
	drain_all(np);
	np_sync(np);
	release_waiting(np);
}

/* ---- what clients listen to ---- */

/*
 * A client is linked to a server: make the server listen to the client's
 * channels, and to nothing else (the answers are hidden). Returns 1 when a
 * query was queued, 0 when none was needed, -1 when it could not be.
 */
int
notify_link(Server *s, Client *c)
{
	static char sql[NOTIFY_MAX_CLIENT_CHANNELS * (2 * NAMEDATALEN + 12) + 32];
	NotifyClient *nc = c->notify;
	bool		want = s->link_mode != POOL_MODE_SESSION && nc && nc->n > 0;
	size_t		len = 0;

	s->notify_changed = 0;
	s->notify_step = NOTIFY_STEP_NONE;
	if (nc)
	{
		msgs_free(&nc->early, &nc->early_tail);
		nc->early_bytes = 0;
	}
	if (!s->notify_listening && !want)
		return 0;
	if (want && s->notify_listening && s->notify_set == nc->set_id)
		return 0;				/* it listens to exactly these already (its last client was this one) */
	sql[0] = '\0';
	if (s->notify_listening)
		len = strlcpy(sql, "UNLISTEN *;", sizeof(sql));
	for (int i = 0; want && i < nc->n; i++)
		if (!append_stmt(sql, sizeof(sql), &len, "LISTEN", nc->ch[i]))
			return -1;
	if (!server_queue_query(s, sql))
		return -1;
	s->notify_listening = want;
	s->notify_set = want ? nc->set_id : 0;
	return 1;
}

/*
 * A NotificationResponse from a pool server on a transaction or statement
 * link. The listener delivers notifications, so it is dropped, except while
 * the client's channel set changes: then it is kept until the new set is
 * known (notify_hidden_done hands on those of channels new to the listener).
 */
PktAction
notify_server_notification(Server *s, const uint8 *msg, uint32 avail, uint32 size)
{
	NotifyClient *nc;
	NotifyMsg  *m;

	if (!s->link || (!s->notify_changed && s->notify_step != NOTIFY_STEP_READING))
		return PKT_SKIP;
	if (avail < size)
		return PKT_NEED_FULL;
	nc = nc_get(s->link);
	if (!nc || nc->early_bytes + size > (uint64) pgbun_cfg->notify_queue_size)
		return PKT_CONSUME;
	m = malloc(offsetof(NotifyMsg, data) + size);
	if (!m)
		return PKT_CONSUME;
	m->next = NULL;
	m->len = size;
	memcpy(m->data, msg, size);
	if (nc->early_tail)
		nc->early_tail->next = m;
	else
		nc->early = m;
	nc->early_tail = m;
	nc->early_bytes += size;
	return PKT_CONSUME;
}

/* Every CommandComplete of client traffic: note what may change the channel set. */
void
notify_command_complete(Server *s, const char *tag)
{
	bool		listen = strcmp(tag, "LISTEN") == 0;

	if (!listen && strcmp(tag, "UNLISTEN") != 0 && strcmp(tag, "DISCARD ALL") != 0)
		return;
	if (listen)
		s->notify_listening = true;
	s->notify_set = 0;			/* what it listens to is not known now */
	if (s->link_mode != POOL_MODE_SESSION)
		s->notify_changed |= listen ? NOTIFY_CHANGED_LISTEN : NOTIFY_CHANGED_OTHER;
}

/*
 * A ReadyForQuery that ends the client's transaction, with nothing else in
 * flight: if the client's channel set may have changed, hold it back and
 * ask the server what it listens to now. true: held (consume it).
 */
bool
notify_hold_ready(Server *s)
{
	Client	   *c = s->link;
	NotifyClient *nc;

	/* a hidden query session.c queued at this ReadyForQuery is answered before ours */
	if (!s->notify_changed || !c || s->listener || s->link_mode == POOL_MODE_SESSION ||
		!track_at_rest(&s->tracker))
		return false;
	if (!(s->notify_changed & NOTIFY_CHANGED_LISTEN) && (!c->notify || c->notify->n == 0))
	{
		/* an UNLISTEN or DISCARD ALL of a client that listens to nothing: nothing to read */
		s->notify_changed = 0;
		return false;
	}
	nc = nc_get(c);
	if (!nc)
		return false;
	if (!server_queue_query(s, "SELECT pg_catalog.pg_listening_channels() AS pgbun_listening"))
		return false;
	(void) sbuf_flush_out(&s->sb);	/* a failed write shows in the next read */
	s->notify_changed = 0;
	s->notify_step = NOTIFY_STEP_READING;
	nc->rd_n = 0;
	nc->rd_on = nc->rd_done = nc->rd_over = false;
	return true;
}

/* An answer to one of pgbun's hidden queries while the channel set is read. */
bool
notify_hidden_message(Server *s, char type, const uint8 *msg, uint32 size)
{
	NotifyClient *nc = s->link ? s->link->notify : NULL;
	ProtoReader r;

	if (!nc)
		return true;
	proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
	if (type == 'T')
	{
		uint16		n = proto_read_int16(&r);
		const char *name = proto_read_string(&r);

		nc->rd_on = !r.error && n == 1 && name && strcmp(name, "pgbun_listening") == 0;
	}
	else if (type == 'D' && nc->rd_on)
	{
		uint16		n = proto_read_int16(&r);
		uint32		l = proto_read_int32(&r);
		const uint8 *v = (!r.error && n == 1 && l < NAMEDATALEN) ? proto_read_bytes(&r, l) : NULL;
		char		name[NAMEDATALEN];

		if (!v)
			return true;
		memcpy(name, v, l);
		name[l] = '\0';
		if (nc->rd_n >= NOTIFY_MAX_CLIENT_CHANNELS)
			nc->rd_over = true;
		else if (!names_add(&nc->rd, &nc->rd_n, &nc->rd_cap, name))
			nc->rd_over = true;
	}
	else if (type == 'C' && nc->rd_on)
	{
		nc->rd_on = false;
		nc->rd_done = true;
	}
	return true;
}

/*
 * pgbun's hidden queries are answered (from server.c, outside the pump): the
 * channels read become the client's; new ones are LISTENed on the listener
 * and the client's ReadyForQuery waits for that, others let it go now.
 */
void
notify_hidden_done(Server *s)
{
	Client	   *c = s->link;
	NotifyClient *nc = c ? c->notify : NULL;
	NotifyPool *np;
	bool		wait = false;

	if (s->notify_step != NOTIFY_STEP_READING)
		return;
	s->notify_step = NOTIFY_STEP_WAITING;
	s->notify_gen = 0;
	if (nc)
		nc->early_bytes = 0;	/* freed below or now */
	if (!c || !nc || !nc->rd_done || s->hidden_error || nc->closing || !(np = np_get(c->pool)))
	{
		if (nc)
			msgs_free(&nc->early, &nc->early_tail);
		/* could not read it: the client keeps the channels it had */
		(void) hold_try_release(s, false);
		return;
	}
	if (nc->rd_over)
	{
		s->notify_step = NOTIFY_STEP_NONE;
		client_close(c, "54000", "more than %d LISTEN channels for one client",
					 NOTIFY_MAX_CLIENT_CHANNELS);
		return;
	}
	for (int i = 0; i < nc->rd_n; i++)
	{
		int			r;

		if (names_have(nc->ch, nc->n, nc->rd[i]))
			continue;
		r = chan_ref(np, nc->rd[i], nc);
		if (r < 0)
		{
			ereport(LOG, (errmsg("pgbun: out of memory: a client of %s/%s gets no notifications on channel \"%s\"",
								 c->pool->database, c->pool->user, nc->rd[i])));
			nc->rd[i][0] = '\0';	/* not a channel name PostgreSQL allows: dropped below */
			continue;
		}
		if (r > 0)
			wait = true;
		/*
		 * What its own server sent on the channel since the LISTEN committed
		 * goes to the client now: the listener lacks the channel, or read
		 * those before the client was subscribed, or will send them again
		 * (is_dup drops those until the listener answers the marker query).
		 */
		{
			for (NotifyMsg *m = nc->early; m; m = m->next)
			{
				const char *ch = msg_channel(m->data, m->len);

				if (ch && strcmp(ch, nc->rd[i]) == 0)
				{
					NotifyMsg  *d = malloc(offsetof(NotifyMsg, data) + m->len);

					enqueue(nc, m->data, m->len, true);
					if (d)
					{
						d->next = NULL;
						d->len = m->len;
						memcpy(d->data, m->data, m->len);
						if (nc->dup_tail)
							nc->dup_tail->next = d;
						else
							nc->dup = d;
						nc->dup_tail = d;
					}
				}
			}
		}
	}
	msgs_free(&nc->early, &nc->early_tail);
	nc->early_bytes = 0;
	if (nc->dup)
	{
		/*
		 * The listener has read every notification committed before it
		 * answers a query sent now (PostgreSQL reads pending notifications
		 * before ReadyForQuery): from then on it sends no copy of these.
		 */
		np->gen++;
		np->force_sync = true;
	}
	nc->dup_gen = np->gen;
	for (int i = 0; i < nc->n; i++)
		if (!names_have(nc->rd, nc->rd_n, nc->ch[i]))
			chan_unref(np, nc->ch[i], nc);
	{
		int			k = 0;

		for (int i = 0; i < nc->rd_n; i++)
			if (nc->rd[i][0] != '\0')
				memmove(nc->rd[k++], nc->rd[i], NAMEDATALEN);
		nc->rd_n = k;
	}
	{
		ChannelName *t = nc->ch;
		int			tcap = nc->cap;

		nc->ch = nc->rd;
		nc->n = nc->rd_n;
		nc->cap = nc->rd_cap;
		nc->rd = t;
		nc->rd_cap = tcap;
		nc->rd_n = 0;
	}
	s->notify_listening = nc->n > 0;
	nc->set_id = ++notify_last_set_id;
	s->notify_set = nc->set_id;
	if (nc->n > 0 && !nc->in_pool)
	{
		dlist_push_tail(&np->clients, &nc->node);
		nc->in_pool = true;
	}
	else if (nc->n == 0 && nc->in_pool)
	{
		dlist_delete(&nc->node);
		nc->in_pool = false;
	}
	np_sync(np);
	if (wait && np->listener)
		s->notify_gen = np->gen;
	(void) hold_try_release(s, false);
}

/* ---- client life ---- */

/* The client listens to nothing any more (its queue stays). */
static void
forget(NotifyClient *nc)
{
	Client	   *c = nc->client;
	NotifyPool *np = c->pool ? c->pool->notify : NULL;

	if (np)
	{
		for (int i = 0; i < nc->n; i++)
			chan_unref(np, nc->ch[i], nc);
		np_sync(np);
	}
	if (nc->in_pool || nc->closing)
		dlist_delete(&nc->node);
	nc->in_pool = false;
	nc->closing = false;
	nc->n = 0;
}

void
notify_client_close(Client *c)
{
	NotifyClient *nc = c->notify;

	if (!nc)
		return;
	if (c->link && c->link->notify_step != NOTIFY_STEP_NONE)
		c->link->notify_step = NOTIFY_STEP_NONE;	/* nobody to hold for */
	forget(nc);
	msgs_free(&nc->head, &nc->tail);
	nc->queued = 0;
	msgs_free(&nc->early, &nc->early_tail);
	nc->early_bytes = 0;
	msgs_free(&nc->dup, &nc->dup_tail);
}

void
notify_client_free(Client *c)
{
	NotifyClient *nc = c->notify;

	if (!nc)
		return;
	notify_client_close(c);
	free(nc->ch);
	free(nc->rd);
	free(nc);
	c->notify = NULL;
}

/* The client's socket can take more: its queued notifications, a held ReadyForQuery. */
void
notify_client_writable(Client *c)
{
	NotifyClient *nc = c->notify;

	if (!nc || !drain(nc))
		return;
	if (c->link && c->link->notify_step == NOTIFY_STEP_WAITING)
		(void) hold_try_release(c->link, true);	/* the caller pumps the server next */
}

/* ---- periodic ---- */

static void
np_free(NotifyPool *np)
{
	dlist_delete(&np->node);
	np->pool->notify = NULL;
	for (int i = 0; i < np->n_chan; i++)
		free(np->chan[i].subs);
	free(np->chan);
	free(np);
}

void
notify_janitor(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &notify_closing)
	{
		NotifyClient *nc = dlist_container(NotifyClient, node, it.cur);

		if (drain(nc) && expired(nc->closing_since, NOTIFY_CLOSE_LINGER_MS))
			client_close(nc->client, NULL, "client did not read its notifications (pgbun.notify_queue_size)");
	}

	dlist_foreach_modify(it, &notify_pools)
	{
		NotifyPool *np = dlist_container(NotifyPool, node, it.cur);
		Server	   *s = np->listener;

		if (s && !np->ready && expired(s->connect_time, pgbun_cfg->server_connect_timeout))
			server_close(s, "server_connect_timeout (LISTEN connection)");
		else if (s && np->ready && !np_wanted(np) && !np->inflight)
			server_close(s, "no LISTEN channels left");
		else if (s && np->ready)
			notify_listener_event(s);	/* anything a yield left behind */
		np_sync(np);
		drain_all(np);
		release_waiting(np);
		if (!np->listener && dlist_is_empty(&np->clients) && !np_wanted(np))
		{
			bool		held = false;
			dlist_iter	si;

			dlist_foreach(si, &np->pool->active_servers)
				if (dlist_container(Server, node, si.cur)->notify_step != NOTIFY_STEP_NONE)
				held = true;
			if (!held)
				np_free(np);
		}
	}
}

/* The pool goes away (no clients, no servers): its listener and state too. */
void
notify_pool_free(Pool *pool)
{
	NotifyPool *np = pool->notify;

	if (!np)
		return;
	if (np->listener)
		server_close(np->listener, "pool freed");
	while (!dlist_is_empty(&np->clients))
	{
		NotifyClient *nc = dlist_container(NotifyClient, node, dlist_pop_head_node(&np->clients));

		nc->in_pool = false;
	}
	np_free(np);
}

/*
 * auth_query.c - auth_user + auth_query (the contract is in auth_query.h).
 *
 * Per worker, one AqPool per (client database, auth_user) holds the logins
 * waiting for an answer and at most one auth connection. Look-ups are
 * pipelined on it, up to AQ_MAX_INFLIGHT at a time: each is an unnamed Parse
 * of the query, a Bind with the client's name as $1 (text), Execute and Sync,
 * and its answer ends at its ReadyForQuery. Answers are handed to the clients
 * after the pump, outside the server's handler.
 *
 * Every look-up has a deadline, pgbun.server_connect_timeout from when it was
 * asked (connecting and logging in included): past it the client gets 08006
 * and, if the query was sent, it is cancelled and the connection closed (the
 * other look-ups on it are sent again on a new one). A connection that cannot
 * be made or log in fails the look-ups waiting for it with 08006 and the
 * reason, at once; a lost one that had logged in is replaced and its
 * look-ups sent again.
 *
 * Bounds: AQ_MAX_WAITING look-ups per worker, rows and error messages of at
 * most AQ_ROW_MAX bytes read (longer ones are skipped and count as no
 * usable answer), secrets of at most AQ_SECRET_MAX bytes.
 */
#include "postgres.h"

#include <limits.h>

#include "commands/user.h"
#include "libpq/crypt.h"

#include "auth.h"
#include "auth_file.h"
#include "auth_query.h"
#include "client_login.h"
#include "config.h"
#include "config_parse.h"
#include "dns.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "server_login.h"
#include "settings.h"
#include "target.h"

#define AQ_MAX_INFLIGHT		8	/* look-ups pipelined on one auth connection */
#define AQ_MAX_WAITING		1000	/* look-ups in progress per worker */
#define AQ_ROW_MAX			4096	/* a DataRow or ErrorResponse pgbun reads */
#define AQ_SECRET_MAX		1024	/* longest verifier taken from an answer */
#define AQ_DEFAULT_TIMEOUT	15000	/* ms, when server_connect_timeout is 0 */

typedef struct AqRequest
{
	dlist_node	node;			/* on its pool's waiting, sent or done list */
	struct AqPool *ap;
	Client	   *client;			/* NULL: gone; the answer is dropped */
	char		user[NAMEDATALEN];
	TimestampTz deadline;
	bool		sent;
	/* the answer so far */
	int			rows;
	bool		bad_shape;		/* not two columns */
	bool		too_long;		/* a row longer than AQ_ROW_MAX, or a secret longer than AQ_SECRET_MAX */
	bool		secret_null;
	char		secret[AQ_SECRET_MAX + 1];
	bool		failed;			/* ErrorResponse */
	char		error[200];
} AqRequest;

typedef struct AqPool
{
	dlist_node	node;
	char		database[NAMEDATALEN];
	char		auth_user[NAMEDATALEN];
	Server	   *conn;			/* the auth connection, or NULL */
	bool		ready;			/* conn has logged in */
	bool		launching;		/* inside server_launch_auth_query */
	int			attempts;		/* hosts tried for the look-ups waiting now */
	dlist_head	waiting;		/* not sent yet, oldest first */
	dlist_head	sent;			/* on conn, in the order of their answers */
	dlist_head	done;			/* answered during the pump, handed over after it */
	int			n_sent;
	dlist_head	servers;		/* the list server_set_state keeps conn on */
	bool		no_credentials; /* pgbun knew no password for auth_user at launch */
	char		login_error[256];	/* why conn could not log in (the server's words) */
	char		launch_error[256];	/* why conn closed while being opened */
} AqPool;

static dlist_head aq_pools = DLIST_STATIC_INIT(aq_pools);
static int	n_requests = 0;

/* ---- settings (pgbun.auth_user / auth_query from the snapshot pgbun_cfg) ---- */

bool
auth_query_user_for(const char *database, char *out)
{
	const DbEntry *e = config_database_entry(database);

	out[0] = '\0';
	if (!e)
		return false;
	if (e->auth_user[0])
		strlcpy(out, e->auth_user, NAMEDATALEN);
	else if (e->host[0] && pgbun_cfg->auth_user && pgbun_cfg->auth_user[0])
		strlcpy(out, pgbun_cfg->auth_user, NAMEDATALEN);
	return out[0] != '\0';
}

/* The query for a database's look-ups: its entry's auth_query, else pgbun.auth_query. */
static const char *
aq_query(const char *database)
{
	const DbEntry *e = config_database_entry(database);

	if (e && e->auth_query[0])
		return e->auth_query;
	return (pgbun_cfg->auth_query && pgbun_cfg->auth_query[0]) ? pgbun_cfg->auth_query : PGBUN_AUTH_QUERY_DEFAULT;
}

static int
aq_timeout_ms(void)
{
	return pgbun_cfg->server_connect_timeout > 0 ? pgbun_cfg->server_connect_timeout : AQ_DEFAULT_TIMEOUT;
}

/* ---- requests ---- */

static AqPool *
aq_pool_get(const char *database, const char *auth_user)
{
	dlist_iter	it;
	AqPool	   *ap;

	dlist_foreach(it, &aq_pools)
	{
		ap = dlist_container(AqPool, node, it.cur);
		if (strcmp(ap->database, database) == 0 && strcmp(ap->auth_user, auth_user) == 0)
			return ap;
	}
	ap = calloc(1, sizeof(AqPool));
	if (!ap)
		return NULL;
	strlcpy(ap->database, database, sizeof(ap->database));
	strlcpy(ap->auth_user, auth_user, sizeof(ap->auth_user));
	dlist_init(&ap->waiting);
	dlist_init(&ap->sent);
	dlist_init(&ap->done);
	dlist_init(&ap->servers);
	dlist_push_tail(&aq_pools, &ap->node);
	return ap;
}

static void
aq_request_free(AqRequest *r)
{
	explicit_bzero(r->secret, sizeof(r->secret));
	free(r);
	n_requests--;
}

/* Fail one look-up (taken off its list already): its client gets 08006 and the reason. */
static void
aq_fail(AqRequest *r, const char *why)
{
	Client	   *c = r->client;

	aq_request_free(r);
	if (c)
		client_login_auth_query_done(c, NULL, why);
}

/* Fail every look-up waiting for a connection (none is sent). */
static void
aq_fail_waiting(AqPool *ap, const char *fmt,...) pg_attribute_printf(2, 3);

static void
aq_fail_waiting(AqPool *ap, const char *fmt,...)
{
	char		why[512];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(why, sizeof(why), fmt, args);
	va_end(args);
	ereport(LOG, (errmsg("pgbun: auth_query for database \"%s\": %s", ap->database, why)));
	while (!dlist_is_empty(&ap->waiting))
	{
		AqRequest  *r = dlist_container(AqRequest, node, dlist_pop_head_node(&ap->waiting));

		aq_fail(r, why);
	}
}

/* The answer of a finished look-up as what a login needs to know of the role. */
static void
aq_answer_role(AqRequest *r, RoleInfo *role)
{
	memset(role, 0, sizeof(*role));
	if (r->rows == 0)
	{
		strlcpy(role->detail, "auth_query returned no row for the role", sizeof(role->detail));
	}
	else if (r->rows > 1)
	{
		ereport(LOG, (errmsg("pgbun: auth_query for database \"%s\" returned %d rows for user \"%s\"; the login is refused",
							 r->ap->database, r->rows, r->user)));
		strlcpy(role->detail, "auth_query returned more than one row", sizeof(role->detail));
	}
	else
	{
		role->role_exists = true;
		role->can_login = true;
		if (r->too_long)
			strlcpy(role->detail, "auth_query returned a verifier longer than pgbun takes", sizeof(role->detail));
		else if (r->secret_null)
			strlcpy(role->detail, "auth_query returned no password (none, or expired: VALID UNTIL)", sizeof(role->detail));
		else if (strncmp(r->secret, "SCRAM-SHA-256$", 14) == 0)
		{
			if (scram_parse_secret(r->secret, &role->scram))
				role->verifier_type = VERIFIER_SCRAM;
			else
				strlcpy(role->detail, "auth_query returned an invalid SCRAM verifier", sizeof(role->detail));
		}
		else if (strncmp(r->secret, "md5", 3) == 0 && strlen(r->secret) == 35 &&
				 strspn(r->secret + 3, "0123456789abcdef") == 32)
		{
			strlcpy(role->md5, r->secret, sizeof(role->md5));
			role->verifier_type = VERIFIER_MD5;
		}
		else
			strlcpy(role->detail, "auth_query returned a plain-text password, which pgbun cannot use",
					sizeof(role->detail));
	}
	/* as for a local role: no verifier means a mock exchange of password_encryption's kind */
	role->mock_scram = role->verifier_type == VERIFIER_NONE &&
		Password_encryption == PASSWORD_TYPE_SCRAM_SHA_256;
}

/* Hand the look-ups answered during the pump to their clients. */
static void
aq_deliver_done(AqPool *ap)
{
	while (!dlist_is_empty(&ap->done))
	{
		AqRequest  *r = dlist_container(AqRequest, node, dlist_pop_head_node(&ap->done));
		Client	   *c = r->client;

		if (!c)
		{
			aq_request_free(r);
			continue;
		}
		if (r->failed || r->bad_shape)
		{
			char		why[300];

			if (r->bad_shape)
				ereport(LOG, (errmsg("pgbun: auth_query for database \"%s\" must return two columns (name, verifier)",
									 ap->database)));
			else
				ereport(LOG, (errmsg("pgbun: auth_query for database \"%s\" failed for user \"%s\": %s",
									 ap->database, r->user, r->error)));
			snprintf(why, sizeof(why), "auth_query for database \"%s\" failed (the server log says why)", ap->database);
			aq_fail(r, why);
		}
		else
		{
			RoleInfo	role;

			aq_answer_role(r, &role);
			aq_request_free(r);
			client_login_auth_query_done(c, &role, NULL);
			explicit_bzero(&role, sizeof(role));
		}
	}
}

/* ---- the auth connection ---- */

static void
put_int16(ProtoBuf *pb, uint16 v)
{
	if (pb->len + 2 > pb->cap)
	{
		pb->overflow = true;
		return;
	}
	pb->data[pb->len++] = (v >> 8) & 0xFF;
	pb->data[pb->len++] = v & 0xFF;
}

static void
put_int32(ProtoBuf *pb, uint32 v)
{
	put_int16(pb, (v >> 16) & 0xFFFF);
	put_int16(pb, v & 0xFFFF);
}

static void
put_bytes(ProtoBuf *pb, const void *p, size_t n)
{
	if (pb->len + n > pb->cap)
	{
		pb->overflow = true;
		return;
	}
	memcpy(pb->data + pb->len, p, n);
	pb->len += n;
}

static void
put_string(ProtoBuf *pb, const char *s)
{
	put_bytes(pb, s, strlen(s) + 1);
}

/* Start a message: its type and a length filled in by msg_end. Returns where it starts. */
static size_t
msg_begin(ProtoBuf *pb, char type)
{
	size_t		start = pb->len;

	put_bytes(pb, &type, 1);
	put_int32(pb, 0);
	return start;
}

static void
msg_end(ProtoBuf *pb, size_t start)
{
	uint32		len;

	if (pb->overflow)
		return;
	len = pb->len - start - 1;
	pb->data[start + 1] = (len >> 24) & 0xFF;
	pb->data[start + 2] = (len >> 16) & 0xFF;
	pb->data[start + 3] = (len >> 8) & 0xFF;
	pb->data[start + 4] = len & 0xFF;
}

/*
 * Queue one look-up: Parse (unnamed) of the query, Bind with the user name
 * as the text parameter $1 and text results, Execute, Sync. false: no room
 * in the output buffer now.
 */
static bool
aq_send(Server *s, AqRequest *r, const char *query)
{
	ProtoBuf	pb;
	size_t		m;

	if (!sbuf_out_begin(&s->sb, &pb))
		return false;
	m = msg_begin(&pb, 'P');
	put_string(&pb, "");
	put_string(&pb, query);
	put_int16(&pb, 0);			/* parameter types: inferred ($1 = rolname: name) */
	msg_end(&pb, m);
	m = msg_begin(&pb, 'B');
	put_string(&pb, "");
	put_string(&pb, "");
	put_int16(&pb, 0);			/* parameter formats: text */
	put_int16(&pb, 1);
	put_int32(&pb, strlen(r->user));
	put_bytes(&pb, r->user, strlen(r->user));
	put_int16(&pb, 0);			/* result formats: text */
	msg_end(&pb, m);
	m = msg_begin(&pb, 'E');
	put_string(&pb, "");
	put_int32(&pb, 0);
	msg_end(&pb, m);
	m = msg_begin(&pb, 'S');
	msg_end(&pb, m);
	if (pb.overflow)
		return false;
	sbuf_out_commit(&s->sb, &pb);
	return true;
}

static void aq_launch(AqPool *ap);

/* Send what waits (up to AQ_MAX_INFLIGHT in flight), or open a connection for it. */
static void
aq_run(AqPool *ap)
{
	Server	   *s = ap->conn;
	bool		queued = false;

	if (!s)
	{
		aq_launch(ap);
		return;
	}
	if (!ap->ready || s->closed)
		return;
	if (ap->n_sent == 0 && target_route_changed(s->pool->target, s->route_id))
	{
		/* a reload sent the database elsewhere: a new connection for what waits */
		server_close(s, "pgbun.databases changed where this database's servers go");
		return;
	}
	while (ap->n_sent < AQ_MAX_INFLIGHT && !dlist_is_empty(&ap->waiting) &&
		   !target_route_changed(s->pool->target, s->route_id))
	{
		AqRequest  *r = dlist_container(AqRequest, node, dlist_head_node(&ap->waiting));

		if (!aq_send(s, r, aq_query(ap->database)))
			break;				/* the output buffer is full: more once it drains */
		dlist_delete(&r->node);
		r->sent = true;
		dlist_push_tail(&ap->sent, &r->node);
		ap->n_sent++;
		queued = true;
	}
	if (ap->n_sent > 0 && s->state != SV_ACTIVE)
		server_set_state(s, SV_ACTIVE);
	else if (ap->n_sent == 0 && s->state != SV_IDLE)
	{
		server_set_state(s, SV_IDLE);
		s->last_used = W->now;
	}
	if (queued && sbuf_flush_out(&s->sb) < 0)
		server_close(s, "write to server failed");
}

/*
 * What pgbun knows to log in as auth_user, on the pool (database, auth_user)
 * as for any server login: an auth_file entry (a plain password, or an md5
 * hash), else the local role's md5 hash, else SCRAM pass-through once a
 * client of that role has logged in with SCRAM.
 */
static void
aq_credentials(AqPool *ap, Pool *pool)
{
	RoleInfo	tmp;
	const char *pw = NULL;

	memset(&tmp, 0, sizeof(tmp));
	ap->no_credentials = false;
	if (auth_file_lookup(ap->auth_user, &tmp, &pw))
	{
		if (pw && (!pool->password || strcmp(pool->password, pw) != 0))
		{
			free(pool->password);
			pool->password = strdup(pw);
			if (pool->pw_keys)
				pool->pw_keys->valid = false;
		}
		if (tmp.verifier_type == VERIFIER_MD5)
		{
			free(pool->md5_verifier);
			pool->md5_verifier = strdup(tmp.md5);
		}
	}
	else if (!pool->password && !pool->md5_verifier && !pool->have_scram_keys)
	{
		if (auth_lookup(ap->auth_user, ap->database, &tmp) && tmp.verifier_type == VERIFIER_MD5)
			pool->md5_verifier = strdup(tmp.md5);
	}
	ap->no_credentials = !pool->password && !pool->md5_verifier && !pool->have_scram_keys &&
		!(pool->target && strcmp(pool->target->entry.user, ap->auth_user) == 0 &&
		  pool->target->entry.password[0]);
	explicit_bzero(&tmp, sizeof(tmp));
}

/* Open the auth connection for the look-ups waiting (the pool's limits apply). */
static void
aq_launch(AqPool *ap)
{
	Pool	   *pool;
	Target	   *t;
	int			host = 0;
	bool		full;
	Server	   *s;

	if (ap->conn || ap->launching || dlist_is_empty(&ap->waiting) || W->shutting_down)
		return;
	pool = pool_get(ap->database, ap->auth_user);
	if (!pool)
	{
		aq_fail_waiting(ap, "too many pools (database/user pairs) for auth_user \"%s\"", ap->auth_user);
		return;
	}
	t = pool->target;
	if (t->is_default && W->server_addr_len == 0)
	{
		dns_server_needed();	/* server_host is a name not resolved yet: the janitor tries again */
		return;
	}
	if (!pool_reserve_server(pool, &full))
	{
		if (!full)
			aq_fail_waiting(ap, "auth_user \"%s\" could not log in to the server of database \"%s\" a moment ago%s%s; pgbun tries again after server_login_retry",
							ap->auth_user, ap->database, ap->login_error[0] ? ": " : "", ap->login_error);
		/* full (pool_size, max_db_connections, max_user_connections): wait for room */
		return;
	}
	if (t->health)
	{
		const char *why;

		host = target_pick_host(t, &why);
		if (host < 0)
		{
			pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
			if (why)
				aq_fail_waiting(ap, "no server available for database \"%s\": %s", ap->database, why);
			return;
		}
	}
	aq_credentials(ap, pool);
	ap->login_error[0] = '\0';
	ap->launch_error[0] = '\0';
	ap->launching = true;
	s = server_launch_auth_query(pool, host, ap);
	ap->launching = false;
	if (!s)
	{
		aq_fail_waiting(ap, "could not connect to the server of database \"%s\"%s%s", ap->database,
						ap->launch_error[0] ? ": " : "", ap->launch_error);
		return;
	}
	ap->conn = s;
	ap->ready = false;
}

dlist_head *
auth_query_server_list(Server *s)
{
	return &s->authq->servers;
}

void
auth_query_foreach_server_list(void (*fn) (dlist_head *list))
{
	dlist_iter	it;

	dlist_foreach(it, &aq_pools)
		fn(&dlist_container(AqPool, node, it.cur)->servers);
}

void
auth_query_server_ready(Server *s)
{
	AqPool	   *ap = s->authq;

	ap->ready = true;
	ap->attempts = 0;
	server_set_state(s, SV_IDLE);
	s->last_used = W->now;
	ereport(DEBUG1, (errmsg("pgbun: auth connection for database \"%s\" as \"%s\" ready (backend pid %u)",
							ap->database, ap->auth_user, s->be_pid)));
	aq_run(ap);
}

void
auth_query_server_login_error(Server *s, const uint8 *err, uint32 len)
{
	AqPool	   *ap = s->authq;
	ProtoErrorFields f;

	if (err && len > PROTO_HDR_LEN &&
		proto_parse_error_fields(err + PROTO_HDR_LEN, len - PROTO_HDR_LEN, &f) && f.message)
		snprintf(ap->login_error, sizeof(ap->login_error), "%.200s", f.message);
	else
		strlcpy(ap->login_error, "the login did not succeed", sizeof(ap->login_error));
	if (ap->no_credentials)
		strlcat(ap->login_error, " (pgbun knows no password for it: add it to pgbun.auth_file)",
				sizeof(ap->login_error));
	/* as for a pool's login: server_login_retry before the next attempt */
	s->pool->last_login_failure = W->now;
}

void
auth_query_server_closed(Server *s, const char *reason)
{
	AqPool	   *ap = s->authq;
	bool		was_ready;

	if (ap->launching)
	{
		strlcpy(ap->launch_error, reason, sizeof(ap->launch_error));
		return;
	}
	if (ap->conn != s)
		return;
	ap->conn = NULL;
	was_ready = ap->ready;
	ap->ready = false;
	/* what it had in flight goes back to the front of the queue, in order */
	while (!dlist_is_empty(&ap->sent))
	{
		AqRequest  *r = dlist_container(AqRequest, node, dlist_tail_node(&ap->sent));
		Client	   *c = r->client;
		char		user[NAMEDATALEN];
		TimestampTz deadline = r->deadline;
		struct AqPool *owner = r->ap;

		dlist_delete(&r->node);
		if (!c)
		{
			aq_request_free(r);
			continue;
		}
		strlcpy(user, r->user, sizeof(user));
		memset(r, 0, sizeof(*r));
		r->ap = owner;
		r->client = c;
		r->deadline = deadline;
		strlcpy(r->user, user, sizeof(r->user));
		dlist_push_head(&ap->waiting, &r->node);
	}
	ap->n_sent = 0;
	if (dlist_is_empty(&ap->waiting))
		return;
	if (!was_ready && !ap->login_error[0] && s->hslot >= 0 &&
		++ap->attempts < s->pool->target->n_hosts)
	{
		aq_launch(ap);			/* a host of a list: the next one */
		return;
	}
	if (!was_ready)
	{
		ap->attempts = 0;
		aq_fail_waiting(ap, "auth_user \"%s\" could not log in to the server of database \"%s\": %s",
						ap->auth_user, ap->database, ap->login_error[0] ? ap->login_error : reason);
		return;
	}
	aq_launch(ap);
}

/* One message of the auth connection after its login. */
static PktAction
aq_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	AqPool	   *ap = s->authq;
	uint32		size = proto_msg_size(hdr);
	AqRequest  *r = dlist_is_empty(&ap->sent) ? NULL :
		dlist_container(AqRequest, node, dlist_head_node(&ap->sent));

	switch (hdr->type)
	{
		case 'D':
			{
				ProtoReader rd;
				int			ncols;
				int32		len;

				if (!r)
					break;
				r->rows++;
				if (size > AQ_ROW_MAX)
				{
					r->too_long = true;
					return PKT_SKIP;
				}
				if (avail < size)
					return PKT_NEED_FULL;
				if (r->rows > 1)
					return PKT_CONSUME;
				proto_reader_init(&rd, msg + PROTO_HDR_LEN, hdr->len - 4);
				ncols = proto_read_int16(&rd);
				if (rd.error || ncols != 2)
				{
					r->bad_shape = true;
					return PKT_CONSUME;
				}
				len = (int32) proto_read_int32(&rd);	/* the name: not used */
				if (len > 0)
					(void) proto_read_bytes(&rd, len);
				len = (int32) proto_read_int32(&rd);
				if (rd.error)
				{
					r->bad_shape = true;
					return PKT_CONSUME;
				}
				if (len < 0)
					r->secret_null = true;
				else if (len > AQ_SECRET_MAX)
					r->too_long = true;
				else
				{
					const uint8 *p = proto_read_bytes(&rd, len);

					if (!p || memchr(p, '\0', len))
						r->bad_shape = true;
					else
					{
						memcpy(r->secret, p, len);
						r->secret[len] = '\0';
					}
				}
				return PKT_CONSUME;
			}
		case 'E':
			{
				ProtoErrorFields f;

				if (size > AQ_ROW_MAX)
				{
					if (r)
					{
						r->failed = true;
						strlcpy(r->error, "(an error message too long to read)", sizeof(r->error));
					}
					return PKT_SKIP;
				}
				if (avail < size)
					return PKT_NEED_FULL;
				if (!proto_parse_error_fields(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, &f))
					memset(&f, 0, sizeof(f));
				if (!r)
				{
					/* outside a look-up: the server is ending the connection (a close follows) */
					ereport(LOG, (errmsg("pgbun: the auth connection of database \"%s\" got an error: %s",
										 ap->database, f.message ? f.message : "?")));
					return PKT_CONSUME;
				}
				r->failed = true;
				snprintf(r->error, sizeof(r->error), "%s: %.150s", f.sqlstate ? f.sqlstate : "?",
						 f.message ? f.message : "?");
				return PKT_CONSUME;
			}
		case 'Z':
			if (!r)
				break;
			dlist_delete(&r->node);
			ap->n_sent--;
			dlist_push_tail(&ap->done, &r->node);
			return PKT_CONSUME;
		case '1':				/* ParseComplete */
		case '2':				/* BindComplete */
		case 'C':				/* CommandComplete */
		case 'n':				/* NoData */
		case 'T':				/* RowDescription */
		case 'I':				/* EmptyQueryResponse */
		case 's':				/* PortalSuspended */
		case 'N':				/* NoticeResponse */
		case 'S':				/* ParameterStatus */
		case 'A':				/* NotificationResponse */
			return PKT_SKIP;
		default:
			break;
	}
	ereport(LOG, (errmsg("pgbun: unexpected message '%c' on the auth connection of database \"%s\"",
						 (hdr->type >= 0x20 && hdr->type < 0x7f) ? hdr->type : '?', ap->database)));
	return PKT_CLOSE;
}

void
auth_query_server_event(Server *s, uint32 events)
{
	AqPool	   *ap = s->authq;
	PumpResult	r = PUMP_YIELD;
	uint64		rd = 0;
	uint64		wr = 0;

	if (sbuf_out_pending(&s->sb) && sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "write to server failed");
		aq_deliver_done(ap);
		return;
	}
	for (int i = 0; i < 16 && r == PUMP_YIELD && !s->closed; i++)
		r = sbuf_pump(&s->sb, NULL, PG_INT32_MAX, aq_handler, s, &rd, &wr);
	if (!s->closed)
	{
		switch (r)
		{
			case PUMP_EOF:
				server_close(s, "server closed the auth connection");
				break;
			case PUMP_CLOSE:
			case PUMP_SRC_ERROR:
			case PUMP_DST_ERROR:
				server_close(s, s->sb.error ? s->sb.error : "protocol error on the auth connection");
				break;
			default:
				break;			/* a yield left over: the janitor pumps again */
		}
	}
	aq_deliver_done(ap);
	if (!s->closed)
		aq_run(ap);
}

/* ---- clients ---- */

bool
auth_query_submit(Client *c, const char *database, const char *user)
{
	char		auth_user[NAMEDATALEN];
	AqPool	   *ap;
	AqRequest  *r;

	if (!auth_query_user_for(database, auth_user))
	{
		client_close(c, "XX000", "database \"%s\" does not use auth_query", database);
		return false;
	}
	if (n_requests >= AQ_MAX_WAITING)
	{
		client_close(c, "53300", "too many logins waiting for auth_query; try again");
		return false;
	}
	ap = aq_pool_get(database, auth_user);
	r = ap ? calloc(1, sizeof(AqRequest)) : NULL;
	if (!r)
	{
		client_close(c, "53200", "out of memory");
		return false;
	}
	n_requests++;
	r->ap = ap;
	r->client = c;
	strlcpy(r->user, user, sizeof(r->user));
	r->deadline = W->now + (int64) aq_timeout_ms() * 1000;
	dlist_push_tail(&ap->waiting, &r->node);
	client_login_auth_query_started(c, r);
	aq_run(ap);
	return !c->closed;
}

void
auth_query_forget(struct AqRequest *r)
{
	if (!r)
		return;
	r->client = NULL;
	if (!r->sent)
	{
		dlist_delete(&r->node);
		aq_request_free(r);
	}
}

/* ---- janitor ---- */

static bool
expired(TimestampTz since, int timeout_ms)
{
	return timeout_ms > 0 && since > 0 && W->now - since >= (int64) timeout_ms * 1000;
}

/*
 * Why an idle auth connection should close now, or NULL: shutdown, idle or
 * old (server_idle_timeout, server_lifetime), a reload that gave the
 * database another auth_user, or clients waiting for a server of its
 * database (or of auth_user) while a max_db_connections /
 * max_user_connections limit applies: the idle auth connection gives its
 * place up, as PgBouncer evicts an idle connection of another pool.
 */
static const char *
aq_idle_close_reason(AqPool *ap, Server *s)
{
	char		auth_user[NAMEDATALEN];
	dlist_iter	it;

	if (W->draining)
		return "server shutdown";
	if (expired(s->last_used, pgbun_cfg->server_idle_timeout))
		return "server_idle_timeout reached";
	if (expired(s->connect_time, config_server_lifetime(ap->database)))
		return "server_lifetime reached";
	if (!auth_query_user_for(ap->database, auth_user) || strcmp(auth_user, ap->auth_user) != 0)
		return "the database's auth_user changed";
	if (s->pool->reconnect_before && s->connect_time < s->pool->reconnect_before)
		return "RECONNECT on the admin console";
	dlist_foreach(it, &W->pools)
	{
		Pool	   *pool = dlist_container(Pool, node, it.cur);

		if (dlist_is_empty(&pool->waiting_clients) && dlist_is_empty(&pool->waitlogin_clients))
			continue;
		if ((config_max_db_connections(ap->database) > 0 && strcmp(pool->database, ap->database) == 0) ||
			(pgbun_cfg->max_user_connections > 0 && strcmp(pool->user, ap->auth_user) == 0))
			return "clients wait for a server where a limit counts the idle auth connection";
	}
	return NULL;
}

void
auth_query_janitor(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &aq_pools)
	{
		AqPool	   *ap = dlist_container(AqPool, node, it.cur);
		Server	   *s = ap->conn;
		dlist_mutable_iter ri;
		dlist_iter	si;
		bool		stuck = false;
		char		why[300];

		snprintf(why, sizeof(why), "auth_query for database \"%s\" not answered within %d ms (pgbun.server_connect_timeout)",
				 ap->database, aq_timeout_ms());
		dlist_foreach_modify(ri, &ap->waiting)
		{
			AqRequest  *r = dlist_container(AqRequest, node, ri.cur);

			if (W->now >= r->deadline)
			{
				dlist_delete(&r->node);
				aq_fail(r, why);
			}
		}
		dlist_foreach(si, &ap->sent)
		{
			AqRequest  *r = dlist_container(AqRequest, node, si.cur);

			if (W->now >= r->deadline)
			{
				Client	   *c = r->client;

				r->client = NULL;	/* stays on the list: its answer is still owed */
				if (c)
					client_login_auth_query_done(c, NULL, why);
				stuck = true;
			}
		}
		if (stuck && s && !s->closed)
		{
			/* the query hangs (a lock, a slow function): stop it, and the connection */
			ereport(LOG, (errmsg("pgbun: %s; cancelling it and closing the auth connection", why)));
			server_cancel_query(s);
			server_close(s, "auth_query timed out");
		}
		s = ap->conn;
		if (s && !ap->ready && expired(s->connect_time, pgbun_cfg->server_connect_timeout))
		{
			ereport(LOG, (errmsg("pgbun: server_connect_timeout: the auth connection to %s took too long", s->addr_text)));
			server_login_host_failed(s, "server_connect_timeout");
		}
		else if (s && ap->ready && !s->closed)
		{
			const char *why_close = NULL;

			if (ap->n_sent == 0 && dlist_is_empty(&ap->waiting))
				why_close = aq_idle_close_reason(ap, s);
			if (why_close)
				server_close(s, why_close);
			else
				auth_query_server_event(s, 0);	/* anything a yield left behind */
		}
		else if (!s)
			aq_run(ap);			/* waiting for room in the pool, or for DNS */
		if (!ap->conn && dlist_is_empty(&ap->waiting) && dlist_is_empty(&ap->sent) &&
			dlist_is_empty(&ap->done))
		{
			dlist_delete(&ap->node);
			free(ap);
		}
	}
}

/*
 * server.c - the server side of the pooler: non-blocking connect, login as
 * the client's role (SCRAM pass-through or md5 from the stored verifier),
 * forwarding to the linked client, the pooler's own hidden queries (SET of
 * client parameters, server_reset_query), release and close.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "params.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "auth.h"
#include "cancel.h"
#include "tls.h"

#define SET_SQL_MAX 4096

static void
server_publish(Server *s)
{
	PgbunConnSlot *slot;

	if (s->slot < 0)
		return;
	slot = pgbun_conn_slot(s->slot);
	PGBUN_SLOT_WRITE_BEGIN(slot);
	slot->state = (uint8) s->state;
	slot->peer = s->link ? s->link->slot : -1;
	slot->request_time = s->last_used;
	slot->cancel_pid = s->be_pid;
	slot->cancel_key = s->be_key;
	PGBUN_SLOT_WRITE_END(slot);
}

static dlist_head *
server_state_list(Pool *pool, ServerState st)
{
	switch (st)
	{
		case SV_LOGIN:
			return &pool->login_servers;
		case SV_IDLE:
			return &pool->idle_servers;
		case SV_ACTIVE:
			return &pool->active_servers;
		case SV_USED:
		case SV_TESTED:
			return &pool->used_servers;
	}
	return NULL;
}

/* The only way a server changes state: move lists (idle is LIFO), publish. */
void
server_set_state(Server *s, ServerState st)
{
	if (s->state != 0)
		dlist_delete(&s->node);
	s->state = st;
	if (st == SV_IDLE)
		dlist_push_head(server_state_list(s->pool, st), &s->node);
	else
		dlist_push_tail(server_state_list(s->pool, st), &s->node);
	server_publish(s);
}

void
server_free(Server *s)
{
	prepared_server_free(s);
	free(s->params);
	free(s->scram);
	free(s);
}

/* Close a server connection (sending Terminate when it is idle and logged in). */
void
server_close(Server *s, const char *reason)
{
	Pool	   *pool = s->pool;

	if (s->closed)
		return;
	s->closed = true;
	if (s->state != SV_LOGIN && !sbuf_has_pending_forward(&s->sb) && !sbuf_out_pending(&s->sb))
	{
		ProtoBuf	pb;

		if (sbuf_out_begin(&s->sb, &pb) && proto_put_terminate(&pb))
		{
			sbuf_out_commit(&s->sb, &pb);
			(void) sbuf_flush_out(&s->sb);
		}
	}
	if (s->link)
	{
		Client	   *c = s->link;

		s->link = NULL;
		c->link = NULL;
		client_close(c, "08006", "server connection lost: %s", reason);
	}
	ereport(DEBUG1, (errmsg("pgbun: server connection closed: %s", reason)));
	dlist_delete(&s->node);
	dlist_push_tail(&W->closed_servers, &s->node);
	poll_remove(s->sb.fd);
	sbuf_close(&s->sb);
	if (s->slot >= 0)
	{
		pgbun_conn_slot_free(s->slot);
		s->slot = -1;
	}
	pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
	pool->n_servers--;
	pool_kick_waiting(pool);
}

static bool
server_queue_query(Server *s, const char *sql)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_query(&pb, sql))
		return false;
	sbuf_out_commit(&s->sb, &pb);
	s->hidden_rfq++;
	return true;
}

/* Queue the startup packet that logs in as the pool's role. */
static bool
server_queue_startup(Server *s)
{
	const char *names[2] = {"user", "database"};
	const char *values[2];
	ProtoBuf	pb;

	values[0] = s->pool->user;
	values[1] = s->pool->database;
	if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_startup(&pb, names, values, 2))
		return false;
	sbuf_out_commit(&s->sb, &pb);
	return true;
}

/* Open a new connection for the pool (counted already by the caller). */
Server *
server_launch(Pool *pool)
{
	Server	   *s;
	int			fd;
	int			rc;
	ProtoBuf	pb;
	bool		queued;

	s = calloc(1, sizeof(Server));
	fd = s ? socket(W->server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
	if (fd < 0)
	{
		/* not opened: give back the count the caller reserved (server_close does it otherwise) */
		ereport(LOG, (errmsg("pgbun: could not create a socket for a server connection: %m")));
		pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
		free(s);
		return NULL;
	}
	if (W->server_addr.ss_family != AF_UNIX)
	{
		int			one = 1;

		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	config_set_keepalive(fd, W->server_addr.ss_family != AF_UNIX);
	s->io.kind = IO_SERVER;
	s->pool = pool;
	s->tx_status = 'I';
	s->connect_time = s->last_used = W->now;
	sbuf_init(&s->sb, fd);
	s->slot = pgbun_conn_slot_alloc(CONN_SERVER, W->id);
	if (s->slot >= 0)
	{
		PgbunConnSlot *slot = pgbun_conn_slot(s->slot);

		PGBUN_SLOT_WRITE_BEGIN(slot);
		slot->pool = pool->slot;
		slot->connect_time = s->connect_time;
		strlcpy(slot->addr, W->server_addr_text, sizeof(slot->addr));
		slot->port = W->server_port;
		memcpy(&slot->sv_sockaddr, &W->server_addr, W->server_addr_len);
		slot->sv_sockaddr_len = W->server_addr_len;
		PGBUN_SLOT_WRITE_END(slot);
	}
	pool->n_servers++;
	server_set_state(s, SV_LOGIN);

	rc = connect(fd, (struct sockaddr *) &W->server_addr, W->server_addr_len);
	if (rc < 0 && errno != EINPROGRESS && errno != EAGAIN)
	{
		char		reason[256];

		snprintf(reason, sizeof(reason), "could not connect to server %s: %m", W->server_addr_text);
		ereport(LOG, (errmsg("pgbun: %s", reason)));
		/* registered nowhere yet: close through the common path */
		s->sb.fd = fd;
		pool->last_login_failure = W->now;
		server_close(s, reason);
		return NULL;
	}
	s->connecting = (rc < 0);
	if (poll_add_conn(fd, &s->io) < 0)
	{
		server_close(s, "could not watch socket");
		return NULL;
	}

	/* TLS first (server_tls_sslmode prefer and up, TCP only): SSLRequest instead of the startup packet */
	if (tls_server_wanted(W->server_addr.ss_family))
	{
		queued = sbuf_out_begin(&s->sb, &pb) && proto_put_ssl_request(&pb);
		if (queued)
			sbuf_out_commit(&s->sb, &pb);
		s->tls_step = SV_TLS_ANSWER;
	}
	else
		queued = server_queue_startup(s);
	if (!queued)
	{
		server_close(s, "out of memory");
		return NULL;
	}
	if (!s->connecting)
		(void) sbuf_flush_out(&s->sb);
	return s;
}

/* ---- login ---- */

/* The TLS set-up with the server failed: log it, count a failed login, close. */
static void
server_tls_failed(Server *s, const char *reason)
{
	ereport(LOG, (errmsg("pgbun: TLS with server %s failed: %s", W->server_addr_text, reason)));
	s->pool->last_login_failure = W->now;
	pool_server_login_failed(s->pool, NULL, 0);
	server_close(s, reason);
}

/*
 * Before the startup packet: read the answer to SSLRequest, then run the
 * handshake. true once the startup packet is on its way (TLS or, for
 * prefer with a server that said 'N', plain); false while waiting or when
 * the connection was closed.
 */
static bool
server_tls_progress(Server *s)
{
	if (s->tls_step == SV_TLS_ANSWER)
	{
		int			r;
		uint8		answer;

		if (sbuf_out_pending(&s->sb))
			return false;		/* the SSLRequest is not out yet */
		r = sbuf_fill(&s->sb);
		if (r == 0)
			return false;
		if (r < 0)
		{
			server_tls_failed(s, "server closed the connection after SSLRequest");
			return false;
		}
		answer = s->sb.in[s->sb.parse_pos];
		if (sbuf_unparsed(&s->sb) != 1)
		{
			/* nothing may follow the answer before the handshake (CVE-2021-23222) */
			server_tls_failed(s, answer == 'E' ? "server refused SSLRequest" :
							  "server sent unencrypted data after its answer to SSLRequest");
			return false;
		}
		sbuf_consume(&s->sb, 1);
		if (answer == 'S')
		{
			if (!tls_connect_start(&s->sb, W->server_addr_text))
			{
				server_tls_failed(s, "could not start TLS");
				return false;
			}
			s->tls_step = SV_TLS_HANDSHAKE;
		}
		else if (answer == 'N' && !tls_server_required())
		{
			s->tls_step = SV_TLS_NONE;
			if (!server_queue_startup(s) || sbuf_flush_out(&s->sb) < 0)
			{
				server_close(s, "could not send the startup packet");
				return false;
			}
			return true;
		}
		else
		{
			server_tls_failed(s, answer == 'N' ? "server does not support SSL, but pgbun.server_tls_sslmode requires it" :
							  "invalid answer to SSLRequest");
			return false;
		}
	}
	if (s->tls_step == SV_TLS_HANDSHAKE)
	{
		int			r = tls_handshake(&s->sb);

		if (r == 0)
			return false;
		if (r < 0)
		{
			server_tls_failed(s, s->sb.error);
			return false;
		}
		s->tls_step = SV_TLS_NONE;
		pgbun_conn_slot_set_tls(s->slot, tls_version(&s->sb));
		if (!server_queue_startup(s) || sbuf_flush_out(&s->sb) < 0)
		{
			server_close(s, "could not send the startup packet");
			return false;
		}
	}
	return true;
}

/* The server refused pgbun's login: tell the pool (and the log, with a hint). */
static void
server_login_error(Server *s, const uint8 *msg, uint32 len)
{
	ProtoErrorFields f;
	Pool	   *pool = s->pool;

	if (proto_parse_error_fields(msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN, &f))
	{
		if (f.sqlstate && strcmp(f.sqlstate, "53300") == 0)
			ereport(LOG,
					(errmsg("pgbun: the server refused a new connection for pool %s/%s: %s",
							pool->database, pool->user, f.message ? f.message : "too many clients"),
					 errhint("Server connections count against max_connections; raise it or lower pgbun.default_pool_size / pgbun.max_db_connections.")));
		else
			ereport(LOG,
					(errmsg("pgbun: server login failed for user \"%s\" database \"%s\": %s",
							pool->user, pool->database, f.message ? f.message : "?"),
					 errhint("pgbun logs in to %s as the client's role using SCRAM (or md5 for md5 passwords): pg_hba.conf needs a line such as \"%s all all scram-sha-256\" for it, above any peer/ident line.",
							 W->server_addr_text,
							 W->server_addr.ss_family == AF_UNIX ? "local" : "host")));
	}
	pool_server_login_failed(pool, msg, len);
}


/* Answer one Authentication request from the server. false: give up (already closed). */
static bool
server_answer_auth(Server *s, const uint8 *body, uint32 len)
{
	ProtoReader r;
	uint32		code;
	ProtoBuf	pb;
	Pool	   *pool = s->pool;
	char		msg[SCRAM_MSG_MAX];
	const char *err = NULL;

	proto_reader_init(&r, body, len);
	code = proto_read_int32(&r);
	if (r.error)
		goto protocol_error;
	switch (code)
	{
		case PROTO_AUTH_OK:
			return true;
		case PROTO_AUTH_MD5:
			{
				const uint8 *salt = proto_read_bytes(&r, 4);
				char		answer[36];

				if (!salt)
					goto protocol_error;
				if (!pool->md5_verifier || !auth_md5_response(pool->md5_verifier, salt, answer))
				{
					ereport(LOG, (errmsg("pgbun: server asked for md5 authentication for user \"%s\" but the role has no md5 password",
										 pool->user),
								  errhint("Use scram-sha-256 in pg_hba.conf for pgbun's connections.")));
					goto fail;
				}
				if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_password(&pb, answer))
					goto fail;
				sbuf_out_commit(&s->sb, &pb);
				goto send;
			}
		case PROTO_AUTH_SASL:
			{
				bool		offered = false;
				const char *mech;

				while ((mech = proto_read_string(&r)) != NULL && mech[0] != '\0')
					if (strcmp(mech, "SCRAM-SHA-256") == 0)
						offered = true;
				if (!offered || !pool->have_scram_keys)
				{
					ereport(LOG, (errmsg("pgbun: cannot log in to the server as \"%s\" with SCRAM: %s",
										 pool->user, offered ? "no client of this role has logged in with SCRAM yet" : "server did not offer SCRAM-SHA-256")));
					goto fail;
				}
				s->scram = calloc(1, sizeof(ScramClient));
				if (!s->scram)
					goto fail;
				memcpy(s->scram->client_key, pool->client_key, SCRAM_KEY_BYTES);
				memcpy(s->scram->server_key, pool->server_key, SCRAM_KEY_BYTES);
				if (!scram_client_first(s->scram, msg, sizeof(msg)) ||
					!sbuf_out_begin(&s->sb, &pb) ||
					!proto_put_sasl_initial(&pb, "SCRAM-SHA-256", (const uint8 *) msg, strlen(msg)))
					goto fail;
				sbuf_out_commit(&s->sb, &pb);
				goto send;
			}
		case PROTO_AUTH_SASL_CONTINUE:
			if (!s->scram ||
				scram_client_final(s->scram, (const char *) body + 4, len - 4, msg, sizeof(msg), &err) != 1)
			{
				ereport(LOG, (errmsg("pgbun: SCRAM exchange with the server failed: %s", err ? err : "unexpected message")));
				goto fail;
			}
			if (!sbuf_out_begin(&s->sb, &pb) ||
				!proto_put_sasl_response(&pb, (const uint8 *) msg, strlen(msg)))
				goto fail;
			sbuf_out_commit(&s->sb, &pb);
			goto send;
		case PROTO_AUTH_SASL_FINAL:
			if (!s->scram || !scram_client_verify_final(s->scram, (const char *) body + 4, len - 4))
			{
				ereport(LOG, (errmsg("pgbun: the server's SCRAM signature did not verify; closing")));
				goto fail;
			}
			free(s->scram);
			s->scram = NULL;
			return true;
		default:
			ereport(LOG, (errmsg("pgbun: server asked for an authentication method pgbun cannot answer (code %u) for user \"%s\"",
								 code, pool->user),
						  errhint("pgbun never knows passwords: use scram-sha-256, md5 or trust in pg_hba.conf for pgbun's connections.")));
			goto fail;
	}

send:
	/* a failed write ends the login here, not at server_connect_timeout */
	if (sbuf_flush_out(&s->sb) >= 0)
		return true;
	ereport(LOG, (errmsg("pgbun: could not send the authentication answer to the server: %m")));
	goto fail;
protocol_error:
	ereport(LOG, (errmsg("pgbun: malformed authentication request from the server")));
fail:
	pool->last_login_failure = W->now;
	pool_server_login_failed(pool, NULL, 0);
	server_close(s, "login failed");
	return false;
}

static PktAction
server_login_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	uint32		size = proto_msg_size(hdr);

	if (avail < size)
		return PKT_NEED_FULL;
	switch (hdr->type)
	{
		case 'R':
			if (!server_answer_auth(s, msg + PROTO_HDR_LEN, hdr->len - 4))
				return PKT_STOP;
			return PKT_CONSUME;
		case 'S':
			{
				ProtoReader r;
				const char *name;
				const char *value;

				proto_reader_init(&r, msg + PROTO_HDR_LEN, hdr->len - 4);
				name = proto_read_string(&r);
				value = proto_read_string(&r);
				if (!r.error)
				{
					(void) params_set(&s->params, &s->params_len, name, value);
					s->params_fp_valid = false;
				}
				return PKT_CONSUME;
			}
		case 'K':
			{
				ProtoReader r;

				proto_reader_init(&r, msg + PROTO_HDR_LEN, hdr->len - 4);
				s->be_pid = proto_read_int32(&r);
				s->be_key = proto_read_int32(&r);
				return PKT_CONSUME;
			}
		case 'E':
			server_login_error(s, msg, size);
			server_close(s, "login refused by the server");
			return PKT_STOP;
		case 'N':
		case 'v':
			return PKT_CONSUME;
		case 'Z':
			{
				Pool	   *pool = s->pool;

				if (!pool->welcome && s->params)
				{
					pool->welcome = malloc(s->params_len);
					if (pool->welcome)
					{
						memcpy(pool->welcome, s->params, s->params_len);
						pool->welcome_len = s->params_len;
					}
				}
				pool->last_login_failure = 0;
				free(pool->login_error);
				pool->login_error = NULL;
				s->last_used = W->now;
				server_publish(s);	/* BackendKeyData, for cancels */
				/* joining the pool (maybe linking a client) happens after this pump */
				s->login_done = true;
				return PKT_CONSUME_STOP;
			}
		default:
			ereport(LOG, (errmsg("pgbun: unexpected message '%c' from the server during login",
								 (hdr->type >= 0x20 && hdr->type < 0x7f) ? hdr->type : '?')));
			pool_server_login_failed(s->pool, NULL, 0);
			server_close(s, "protocol error during login");
			return PKT_STOP;
	}
}

/* ---- linked / hidden-query traffic ---- */

/* Record a ParameterStatus on the server (and, when linked, the client's wanted value). */
static void
note_parameter_status(Server *s, const uint8 *msg, uint32 size)
{
	ProtoReader r;
	const char *name;
	const char *value;
	const char *tracked;

	proto_reader_init(&r, msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN);
	name = proto_read_string(&r);
	value = proto_read_string(&r);
	if (r.error)
		return;
	(void) params_set(&s->params, &s->params_len, name, value);
	s->params_fp_valid = false;
	if (s->link && s->hidden_rfq == 0 && (tracked = params_tracked_name(name)) != NULL)
	{
		(void) params_set(&s->link->params, &s->link->params_len, tracked, value);
		s->link->params_fp_valid = false;
	}
}

/* A ReadyForQuery answering the client: stats, transaction state. */
static void
note_ready_for_query(Server *s, char status)
{
	PgbunPoolSlot *ps = &pgbun_shared->pools[s->pool->slot];

	if (s->query_start)
	{
		pg_atomic_fetch_add_u64(&ps->query_count, 1);
		pg_atomic_fetch_add_u64(&ps->query_time_us, (uint64) Max(W->now - s->query_start, 0));
		s->query_start = 0;
	}
	if (status == 'I' && s->xact_start)
	{
		pg_atomic_fetch_add_u64(&ps->xact_count, 1);
		pg_atomic_fetch_add_u64(&ps->xact_time_us, (uint64) Max(W->now - s->xact_start, 0));
		s->xact_start = 0;
	}
	s->tx_status = status;
	if (s->outstanding > 0)
		s->outstanding--;
	s->busy = s->outstanding > 0 || s->unsynced;
	s->last_ready = W->now;
	s->cancel_sent = false;
	if (s->link)
		s->link->tx_status = status;
}

/* The pooler's own query (SET or reset) finished. */
static void
hidden_query_done(Server *s)
{
	if (s->state == SV_TESTED)
	{
		if (s->hidden_error || s->tx_status != 'I')
		{
			server_close(s, "server_reset_query failed");
			return;
		}
		pool_server_available(s->pool, s);
	}
}

static PktAction
server_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	uint32		size = proto_msg_size(hdr);
	PktAction	forward = PKT_FORWARD;

	if (s->hidden_rfq > 0)
	{
		/* answers to the pooler's own query: the client never sees them */
		switch (hdr->type)
		{
			case 'Z':
				if (avail < size)
					return PKT_NEED_FULL;
				s->tx_status = (hdr->len >= 5) ? (char) msg[PROTO_HDR_LEN] : 'I';
				s->hidden_rfq--;
				if (s->hidden_rfq == 0)
				{
					/* the state change (release to the pool, relink) happens outside the pump */
					s->hidden_done = true;
					return PKT_CONSUME_STOP;
				}
				return PKT_CONSUME;
			case 'S':
				if (avail < size)
					return PKT_NEED_FULL;
				note_parameter_status(s, msg, size);
				return PKT_CONSUME;
			case 'E':
				if (avail < size)
					return PKT_NEED_FULL;
				{
					ProtoErrorFields f;

					if (proto_parse_error_fields(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, &f))
						ereport(LOG, (errmsg("pgbun: pooler query failed on the server: %s",
											 f.message ? f.message : "?")));
					s->hidden_error = true;
					if (s->link)
					{
						ProtoBuf	pb;

						/* a notice is safe to slip in: clients accept one at any time */
						if (sbuf_out_begin(&s->link->sb, &pb) &&
							proto_put_notice(&pb, f.sqlstate ? f.sqlstate : "XX000",
											 f.message ? f.message : "pgbun: could not apply a session parameter"))
							sbuf_out_commit(&s->link->sb, &pb);
					}
				}
				return PKT_CONSUME;
			default:
				return PKT_SKIP;
		}
	}

	if (!s->link)
	{
		/* unsolicited traffic on an unlinked connection */
		switch (hdr->type)
		{
			case 'S':
				if (avail < size)
					return PKT_NEED_FULL;
				note_parameter_status(s, msg, size);
				return PKT_CONSUME;
			case 'N':
			case 'A':
				return PKT_SKIP;
			case 'E':
				server_close(s, "server sent an error while idle");
				return PKT_STOP;
			default:
				server_close(s, "unexpected message from an idle server");
				return PKT_STOP;
		}
	}

	if ((hdr->type == 'Z' || hdr->type == 'S') && avail < size)
		return PKT_NEED_FULL;	/* before any bookkeeping: the handler runs again */
	if (s->track)
	{
		PktAction	pa = prepared_server_message(s, hdr, msg, avail);

		switch (pa)
		{
			case PKT_STOP:
				return PKT_STOP;	/* pgbun's own answers go out first */
			case PKT_CLOSE:
				s->lost_track = true;
				return PKT_STOP;
			case PKT_CONSUME:
			case PKT_CONSUME_STOP:
				return pa;
			case PKT_FORWARD_STOP:
				forward = PKT_FORWARD_STOP;
				break;
			default:
				break;
		}
	}

	switch (hdr->type)
	{
		case 'Z':
			{
				char		status = hdr->len >= 5 ? (char) msg[PROTO_HDR_LEN] : 'I';
				int			mode = s->pool->mode;

				note_ready_for_query(s, status);
				s->copy_in = false;	/* COPY is over, done or failed; stray copy data is dropped */
				if (mode == POOL_MODE_SESSION || s->busy || !prepared_queue_empty(s))
					return forward;
				if (status == 'I')
				{
					/* every request answered, no transaction: the server goes back once at rest */
					s->release_pending = true;
					return PKT_FORWARD_STOP;
				}
				if (mode == POOL_MODE_STATEMENT)
				{
					s->mode_violation = true;
					return PKT_STOP;
				}
				return forward;
			}
		case 'S':
			note_parameter_status(s, msg, size);
			return forward;
		case 'G':				/* CopyInResponse */
		case 'W':				/* CopyBothResponse */
			s->copy_in = true;
			return forward;
		default:
			return forward;
	}
}

/*
 * Transaction/statement mode: the client's transaction is over; unlink and
 * give the server to the next waiter. The client may already have sent its
 * next request: it is picked up next turn, outside this server's pump.
 */
static void
server_return_to_pool(Server *s)
{
	Client	   *c = s->link;

	s->link = NULL;
	s->query_start = s->xact_start = 0;
	if (c)
	{
		c->link = NULL;
		client_publish(c);
		if (!c->closed && (c->sb.in || tls_pending(&c->sb)) && !c->in_busy)
		{
			c->in_busy = true;
			dlist_push_tail(&W->busy_clients, &c->busy_node);
		}
	}
	if (!prepared_queue_empty(s))
	{
		/* cannot happen when the counts agree; never hand on a server mid-exchange */
		server_close(s, "unanswered requests at release");
		return;
	}
	if (pgbun_server_lifetime > 0 &&
		W->now - s->connect_time >= (int64) pgbun_server_lifetime * 1000)
	{
		server_close(s, "server_lifetime reached");
		return;
	}
	pool_server_available(s->pool, s);
}

/* query_timeout: ask the server to cancel what it is running for this connection. */
void
server_cancel_query(Server *s)
{
	s->cancel_sent = true;
	cancel_send(&W->server_addr, W->server_addr_len, s->be_pid, s->be_key);
}

/* Pump what the server sent toward its client (or through the hidden-query handler). */
void
server_pump_out(Server *s)
{
	uint64		rd = 0;
	uint64		wr = 0;
	PumpResult	r;
	Client	   *c = s->link;

again:
	if (s->closed)
		return;
	c = s->link;
	r = sbuf_pump(&s->sb, c ? &c->sb : NULL, PG_INT32_MAX, server_msg_handler, s, &rd, &wr);
	if (wr && s->pool)
		pg_atomic_fetch_add_u64(&pgbun_shared->pools[s->pool->slot].bytes_sent, wr);
	if (s->closed)
		return;
	switch (r)
	{
		case PUMP_IDLE:
		case PUMP_WAIT_WRITE:
			break;
		case PUMP_STOPPED:
			if (s->lost_track)
			{
				ereport(LOG, (errmsg("pgbun: a server answer matched no request; closing the connection")));
				server_close(s, "protocol tracking lost");
				return;
			}
			if (s->track && c && prepared_answers_waiting(s))
			{
				prepared_emit_answers(s);
				if (!prepared_answers_waiting(s))
				{
					rd = wr = 0;
					goto again;
				}
				break;
			}
			if (s->mode_violation && c)
			{
				s->mode_violation = false;
				client_close(c, "0A000", "transaction blocks not allowed in statement pooling mode");
				return;
			}
			if (s->hidden_done)
			{
				s->hidden_done = false;
				hidden_query_done(s);
				/* the client may have sent nothing that needs an answer (a lone Flush) */
				if (!s->closed && s->link && s->pool->mode != POOL_MODE_SESSION)
					s->release_pending = true;
				/* more may be buffered, now for a (possibly new) client */
				rd = wr = 0;
				goto again;
			}
			break;
		case PUMP_YIELD:
			/* the client's writable/readable edge or the next event resumes it */
			if (s->link && !s->link->in_busy)
			{
				s->link->in_busy = true;
				dlist_push_tail(&W->busy_clients, &s->link->busy_node);
			}
			break;
		case PUMP_CLOSE:
		case PUMP_EOF:
			server_close(s, "server closed the connection");
			break;
		case PUMP_SRC_ERROR:
			server_close(s, s->sb.error ? s->sb.error : "protocol error from server");
			break;
		case PUMP_DST_ERROR:
			if (c)
				client_close(c, NULL, "write to client failed");
			return;
	}
	/* answers pgbun owes the client, now that the server's bytes before them are out */
	if (s->track && s->link && prepared_answers_waiting(s))
		prepared_emit_answers(s);
	if (server_try_release(s))
	{
		rd = wr = 0;
		goto again;				/* anything left is unsolicited traffic of an idle server */
	}
}

/*
 * Transaction/statement mode: a ReadyForQuery 'I' asked for release
 * (release_pending). Unlink and give the server back only when it is at rest:
 * nothing in flight (no Query/Sync unanswered, no unsynced extended-protocol
 * message, no tracked request), its answer fully written to the client, and
 * the client not in the middle of a message still streaming to it. A new
 * request from the client cancels the release (its own ReadyForQuery asks
 * again); a half message only delays it. true: released.
 */
bool
server_try_release(Server *s)
{
	Client	   *c = s->link;

	if (!s->release_pending || s->closed)
		return false;
	if (s->busy || s->outstanding > 0 || s->unsynced || s->tx_status != 'I' ||
		s->hidden_rfq > 0 || s->copy_in || !prepared_queue_empty(s))
	{
		s->release_pending = false;
		return false;
	}
	if (sbuf_has_pending_forward(&s->sb) || (c && sbuf_has_pending_forward(&c->sb)))
		return false;
	s->release_pending = false;
	server_return_to_pool(s);
	return true;
}

/* Link an idle server to a client; bring its session parameters in line first. */
void
server_link(Server *s, Client *c)
{
	char		sql[SET_SQL_MAX];
	int			n;

	s->link = c;
	c->link = s;
	s->hidden_error = false;
	s->track = (s->pool->mode != POOL_MODE_SESSION && pgbun_max_prepared_statements > 0);
	/* the common case, nothing to SET, decided by comparing two cached hashes */
	if (!c->params_fp_valid)
	{
		c->params_fp = params_fingerprint(c->params, c->params_len,
										  s->pool->welcome, s->pool->welcome_len);
		c->params_fp_valid = true;
	}
	if (!s->params_fp_valid)
	{
		s->params_fp = params_fingerprint(s->params, s->params_len, NULL, 0);
		s->params_fp_valid = true;
	}
	if (c->params_fp == s->params_fp)
		n = 0;
	else
		n = params_build_set_sql(c->params, c->params_len, s->params, s->params_len,
								 s->pool->welcome, s->pool->welcome_len, sql, sizeof(sql));
	if (n > 0 && !server_queue_query(s, sql))
		n = -1;
	if (n > 0)
	{
		/* the server will not report the extra parameters: remember what it was told */
		if (!params_note_extra(c->params, c->params_len, &s->params, &s->params_len))
			n = -1;
		s->params_fp_valid = false;
	}
	server_set_state(s, SV_ACTIVE);
	if (n < 0)
	{
		client_close(c, "54000", "session parameters too long to apply");
		return;
	}
	if (n > 0 && sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "write to server failed");
		return;
	}
	client_server_ready(c);
}

/*
 * A client is done with this server. Reuse it only when it is provably at
 * rest (idle transaction state, nothing in flight); otherwise closing is the
 * only safe choice.
 */
void
server_release(Server *s)
{
	s->link = NULL;
	s->last_used = W->now;
	s->query_start = s->xact_start = 0;
	s->release_pending = false;
	if (s->closed)
		return;
	if (s->busy || s->tx_status != 'I' || s->hidden_rfq > 0 ||
		sbuf_has_pending_forward(&s->sb) || sbuf_out_pending(&s->sb) || W->shutting_down)
	{
		server_close(s, "released while not idle");
		return;
	}
	if (pgbun_server_lifetime > 0 &&
		W->now - s->connect_time >= (int64) pgbun_server_lifetime * 1000)
	{
		server_close(s, "server_lifetime reached");
		return;
	}
	/* as PgBouncer: the reset query belongs to session pooling */
	if (s->pool->mode == POOL_MODE_SESSION && pgbun_server_reset_query && pgbun_server_reset_query[0])
	{
		server_set_state(s, SV_USED);
		s->hidden_error = false;
		prepared_server_forget_all(s);	/* DISCARD ALL and the like drop them */
		/* ... and put unreported parameters back to their defaults */
		(void) params_note_extra(NULL, 0, &s->params, &s->params_len);
		s->params_fp_valid = false;
		if (!server_queue_query(s, pgbun_server_reset_query) || sbuf_flush_out(&s->sb) < 0)
		{
			server_close(s, "could not send server_reset_query");
			return;
		}
		server_set_state(s, SV_TESTED);
		return;
	}
	pool_server_available(s->pool, s);
}

void
server_on_event(Server *s, uint32 events)
{
	if (s->closed)
		return;
	if (s->connecting)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (!(events & (PEV_OUT | PEV_HUP)))
			return;
		if (getsockopt(s->sb.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
		{
			char		reason[256];

			errno = err;
			snprintf(reason, sizeof(reason), "could not connect to server %s: %m", W->server_addr_text);
			ereport(LOG, (errmsg("pgbun: %s", reason)));
			s->pool->last_login_failure = W->now;
			pool_server_login_failed(s->pool, NULL, 0);
			server_close(s, reason);
			return;
		}
		s->connecting = false;
	}
	if (sbuf_out_pending(&s->sb))
	{
		int			r = sbuf_flush_out(&s->sb);

		if (r < 0)
		{
			server_close(s, "write to server failed");
			return;
		}
	}
	if (s->tls_step != SV_TLS_NONE && !server_tls_progress(s))
		return;
	if (s->state == SV_LOGIN)
	{
		uint64		rd = 0;
		uint64		wr = 0;
		PumpResult	r = sbuf_pump(&s->sb, NULL, SBUF_SIZE, server_login_handler, s, &rd, &wr);

		if (s->closed)
			return;
		switch (r)
		{
			case PUMP_EOF:
				pool_server_login_failed(s->pool, NULL, 0);
				server_close(s, "server closed the connection during login");
				return;
			case PUMP_SRC_ERROR:
				pool_server_login_failed(s->pool, NULL, 0);
				server_close(s, s->sb.error ? s->sb.error : "protocol error during login");
				return;
			default:
				break;
		}
		if (s->login_done)
		{
			s->login_done = false;
			pool_server_available(s->pool, s);
			if (s->closed)
				return;
			/* a just-linked server may already have more to read */
			server_pump_out(s);
			return;
		}
		if (s->state == SV_LOGIN)
			return;
	}
	/* the client's data may have been waiting for this server to drain */
	if ((events & PEV_OUT) && s->link)
		client_pump_in(s->link);
	if (!s->closed && (events & (PEV_IN | PEV_HUP)))
		server_pump_out(s);
}

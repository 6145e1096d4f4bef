/*
 * server.c - a server connection in the pool: its state lists, forwarding
 * its answers to the linked client, the pooler's own hidden queries (SET of
 * client parameters, server_reset_query), link, release and close.
 * Connect and login live in server_login.c.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "counters.h"
#include "params.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "auth.h"
#include "cancel.h"
#include "server_login.h"
#include "tls.h"

#define SET_SQL_MAX 4096

void
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

bool
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
		counters_observe(s->pool->slot, HIST_QUERY, W->now - s->query_start);
		s->query_start = 0;
	}
	if (status == 'I' && s->xact_start)
	{
		pg_atomic_fetch_add_u64(&ps->xact_count, 1);
		pg_atomic_fetch_add_u64(&ps->xact_time_us, (uint64) Max(W->now - s->xact_start, 0));
		counters_observe(s->pool->slot, HIST_XACT, W->now - s->xact_start);
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
			case PKT_NEED_FULL: /* a hidden answer must be whole before it is consumed */
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
		case 'E':				/* by SQLSTATE class, for metrics */
			counters_note_server_error(s->pool->slot, msg, Min(avail, size));
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
	pg_atomic_fetch_add_u64(&pgbun_shared->pools[s->pool->slot].assign_count, 1);
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
	if (!server_login_event(s, events))
		return;
	/* the client's data may have been waiting for this server to drain */
	if ((events & PEV_OUT) && s->link)
		client_pump_in(s->link);
	if (!s->closed && (events & (PEV_IN | PEV_HUP)))
		server_pump_out(s);
}

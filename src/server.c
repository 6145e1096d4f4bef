/*
 * server.c - a server connection in the pool: its state lists, forwarding
 * its answers to the linked client, the pooler's own hidden queries (SET of
 * client parameters, server_reset_query), link, release and close. While a
 * cancel sent for the server may still land, its hidden queries wait:
 * output held (out_held), or the reset deferred (reset_due), until
 * server_cancels_done. Connect and login live in server_login.c.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "counters.h"
#include "notify.h"
#include "params.h"
#include "prepared.h"
#include "poll.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "auth.h"
#include "cancel.h"
#include "server_login.h"
#include "session.h"
#include "health.h"
#include "settings.h"
#include "target.h"
#include "tls.h"
#include "auth_query.h"
#include "websocket.h"

static void send_reset_query(Server *s);

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
	slot->setting_up = s->link && s->hidden_rfq > 0;
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
		case SV_BEING_CANCELED:
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
	if (s->listener)
		dlist_push_tail(notify_server_list(s), &s->node);	/* on no pool list */
	else if (s->authq)
		dlist_push_tail(auth_query_server_list(s), &s->node);
	else if (st == SV_IDLE)
		dlist_push_head(server_state_list(s->pool, st), &s->node);
	else
		dlist_push_tail(server_state_list(s->pool, st), &s->node);
	server_publish(s);
}

void
server_free(Server *s)
{
	prepared_server_free(s);
	session_server_free(s);
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
	server_login_forget(s);		/* no derivation delivered to a closed connection */
	health_server_closed(s);
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
		if (s->fatal_forwarded)
			client_close(c, NULL, "server connection lost after its FATAL error: %s", reason);
		else
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
	if (s->listener)
	{
		notify_server_closed(s);	/* not counted in the pool */
		return;
	}
	pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
	if (s->hslot >= 0)
		pg_atomic_fetch_sub_u32(&pgbun_shared->hosts[s->hslot].n_servers, 1);
	pool->n_servers--;
	pool_kick_waiting(pool);
	if (s->authq)
		auth_query_server_closed(s, reason);	/* counted in the pool as any server */
}

bool
server_queue_query(Server *s, const char *sql)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_query(&pb, sql))
		return false;
	sbuf_out_commit(&s->sb, &pb);
	s->hidden_rfq++;
	s->unnamed_id = 0;			/* a simple query drops the unnamed statement */
	/* the first for a linked client (a restore, a look-up): cancels wait till done; a new link publishes it itself */
	if (s->link && s->state == SV_ACTIVE && s->hidden_rfq == 1)
	{
		server_publish(s);

		/*
		 * A cancel of the client's query that passed its check before that
		 * publish may be on its way still: it would stop this query, not the
		 * client's (over by now). Nothing goes out until it is done
		 * (server_cancels_done).
		 */
		if (s->slot >= 0 && cancel_hold_state(s->slot) == CANCEL_HOLD_PENDING)
			s->sb.out_held = true;
	}
	return true;
}

/*
 * A server whose output waited for cancels in flight (server_queue_query,
 * server_release): once they are done, send what was queued, and what the
 * client had for it meanwhile.
 */
void
server_cancels_done(Server *s)
{
	if (s->reset_due)
	{
		/* RECONNECT is seen once the reset is answered (pool_server_available), the lifetime at the next release */
		s->reset_due = false;
		send_reset_query(s);
		return;
	}
	if (s->slot >= 0 && cancel_hold_state(s->slot) == CANCEL_HOLD_UNSURE)
		ereport(LOG, (errmsg("pgbun: a cancel request sent for a client of %s/%s was given up on and may still land; pgbun's own queries for it go now",
							 s->pool->database, s->pool->user)));
	s->sb.out_held = false;
	if (sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "could not send a pooler query");
		return;
	}
	if (s->link)
		client_pump_in(s->link);
}

/* A ReadyForQuery answering the client: stats, transaction state. */
static void
note_ready_for_query(Server *s, char status)
{
	int			slot = s->pool->slot;

	if (s->query_start)
	{
		POOL_STAT_ADD(slot, query_count, 1);
		POOL_STAT_ADD(slot, query_time_us, Max(W->now - s->query_start, 0));
		counters_observe(slot, HIST_QUERY, W->now - s->query_start);
		s->query_start = 0;
	}
	if (status == 'I' && s->xact_start)
	{
		POOL_STAT_ADD(slot, xact_count, 1);
		POOL_STAT_ADD(slot, xact_time_us, Max(W->now - s->xact_start, 0));
		counters_observe(slot, HIST_XACT, W->now - s->xact_start);
		s->xact_start = 0;
	}
	s->tx_status = status;
	s->last_ready = W->now;
	s->cancel_sent = false;
	if (s->link)
		s->link->tx_status = status;
}

/* A restore of the linked client's connect-time values is still to run (session.c). */
static inline bool
c_reapply_pending(const Server *s)
{
	return s->link && s->link->reapply;
}

/* The client's ReadyForQuery that waited for pgbun's restore (session_ready). */
void
emit_held_ready(Server *s)
{
	Client	   *c = s->link;
	char		status = s->held_ready;
	ProtoBuf	pb;

	s->held_ready = 0;
	if (!c)
		return;
	if (!session_release_held(s) ||
		!sbuf_out_begin(&c->sb, &pb) || !proto_put_ready(&pb, status) || pb.overflow)
	{
		client_close(c, "53200", "out of memory for a ReadyForQuery");
		return;
	}
	sbuf_out_commit(&c->sb, &pb);
	(void) sbuf_flush_out(&c->sb);
}

/* The pooler's own query (SET or reset) finished. */
static void
hidden_query_done(Server *s)
{
	notify_hidden_done(s);		/* the client's channels were read: its ReadyForQuery */
	health_server_answered(s);	/* a role probe's answer (health.c) */
	if (s->state == SV_TESTED)
	{
		bool		connect_query = s->connect_query;

		s->lag_check = false;
		s->connect_query = false;
		if (s->hidden_error || s->tx_status != 'I')
		{
			if (connect_query)
			{
				/* as a failed login: the waiters for the pool's first server hear of it */
				ereport(LOG, (errmsg("pgbun: connect_query of database \"%s\" failed; closing the connection",
									 s->pool->database)));
				pool_server_login_failed(s->pool, NULL, 0);
			}
			server_close(s, connect_query ? "connect_query failed" : "server_reset_query or check failed");
			return;
		}
		pool_server_available(s->pool, s);
	}
}

/*
 * The SQLSTATE of an ErrorResponse from the fields buffered so far (the 'C'
 * field comes early; a long message need not be read whole). "" if absent.
 */
static void
error_sqlstate(const uint8 *body, uint32 len, char *out)
{
	uint32		pos = 0;

	out[0] = '\0';
	while (pos < len && body[pos] != '\0')
	{
		char		field = (char) body[pos++];
		const uint8 *end = memchr(body + pos, '\0', len - pos);

		if (!end)
			return;
		if (field == 'C' && end - (body + pos) == 5)
		{
			memcpy(out, body + pos, 5);
			out[5] = '\0';
			return;
		}
		pos = (uint32) (end - body) + 1;
	}
}

/* Is this ErrorResponse FATAL or PANIC (its 'V' field, else its 'S' field)? */
static bool
error_is_fatal(const uint8 *body, uint32 len)
{
	uint32		pos = 0;

	while (pos < len && body[pos] != '\0')
	{
		char		field = (char) body[pos++];
		const uint8 *end = memchr(body + pos, '\0', len - pos);

		if (!end)
			return false;
		if ((field == 'V' || field == 'S') &&
			(strcmp((const char *) body + pos, "FATAL") == 0 || strcmp((const char *) body + pos, "PANIC") == 0))
			return true;
		pos = (uint32) (end - body) + 1;
	}
	return false;
}

static PktAction
server_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	uint32		size = proto_msg_size(hdr);
	PktAction	forward = PKT_FORWARD;
	char		detail = 0;

	if (s->hidden_rfq > 0)
	{
		/* answers to the pooler's own query: the client never sees them */
		if ((hdr->type == 'T' || hdr->type == 'D' || hdr->type == 'C') && s->learning)
		{
			if (avail < size)
				return PKT_NEED_FULL;
			if (session_learn_message(s, hdr, msg, size))
				return PKT_CONSUME;
		}
		if (s->notify_step == NOTIFY_STEP_READING &&
			(hdr->type == 'T' || hdr->type == 'D' || hdr->type == 'C'))
		{
			if (avail < size)
				return PKT_NEED_FULL;
			(void) notify_hidden_message(s, (char) hdr->type, msg, size);
			return PKT_CONSUME;
		}
		if (hdr->type == 'A' && s->notify_step == NOTIFY_STEP_READING)
			return notify_server_notification(s, msg, avail, size);
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
				{
					bool		fwd = session_parameter_status(s, msg, size, true) && s->link;

					health_server_parameter(s, msg, size);
					/* the client sees the values pgbun's own SET changed for it (session.c) */
					return fwd ? PKT_FORWARD : PKT_CONSUME;
				}
			case 'D':
				if (!s->lag_check)
					return PKT_SKIP;
				if (avail < size)
					return size > 1024 ? PKT_SKIP : PKT_NEED_FULL;
				health_check_row(s, msg, size);
				return PKT_CONSUME;
			case 'E':
				if (avail < size)
					return PKT_NEED_FULL;
				{
					ProtoErrorFields f;

					session_hidden_error(s);

					if (proto_parse_error_fields(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, &f))
						ereport(LOG, (errmsg("pgbun: pooler query failed on the server: %s",
											 f.message ? f.message : "?")));
					else
						ereport(LOG, (errmsg("pgbun: pooler query failed on the server (malformed error message)")));
					s->hidden_error = true;
					if (s->link)
					{
						ProtoBuf	pb;

						/* a notice is safe to slip in: clients accept one at any time */
						if (sbuf_out_begin(&s->link->sb, &pb) &&
							proto_put_notice(&pb, proto_valid_sqlstate(f.sqlstate) ? f.sqlstate : "XX000",
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
				(void) session_parameter_status(s, msg, size, false);
				health_server_parameter(s, msg, size);
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

	if (hdr->type == 'A' && s->link_mode != POOL_MODE_SESSION)
		return notify_server_notification(s, msg, avail, size);	/* the listener delivers them */
	if ((hdr->type == 'Z' || hdr->type == 'S' || hdr->type == 'C') && avail < size)
		return PKT_NEED_FULL;	/* before any bookkeeping: the handler runs again */
	if (track_synth_due(&s->tracker))
		return PKT_STOP;		/* pgbun's own answers go out first */
	if (hdr->type == 'E')
	{
		error_sqlstate(msg + PROTO_HDR_LEN, avail - PROTO_HDR_LEN, s->last_sqlstate);
		/* the client gets the server's FATAL; pgbun adds no error of its own when it goes */
		if (error_is_fatal(msg + PROTO_HDR_LEN, avail - PROTO_HDR_LEN))
			s->fatal_forwarded = true;
	}

	if (hdr->type == 'E' && s->rewrite && prepared_hides_error(s) && strcmp(s->last_sqlstate, "25P02") != 0)
	{
		/*
		 * The error to pgbun's poison message (a Parse pgbun refused): the
		 * client gets pgbun's error in its place (a 25P02 of a failed block
		 * is the client's as it is).
		 */
		if (avail < size)
			return PKT_NEED_FULL;
		if (sbuf_has_unflushed(&s->sb))
			return PKT_STOP;	/* earlier answers go out first */
		if (!prepared_put_refusal(s))
		{
			client_close(s->link, "53200", "out of memory for an error message");
			return PKT_STOP;
		}
		(void) track_server(&s->tracker, 'E', 0);
		s->sb.replace_len = size;
		return PKT_REPLACE_PREFIX;
	}
	if (hdr->type == 'Z')
		detail = hdr->len >= 5 ? (char) msg[PROTO_HDR_LEN] : 'I';
	else if (hdr->type == 'E' && strcmp(s->last_sqlstate, "08P01") == 0)
		detail = TRACK_ERR_PROTOCOL;
	if (hdr->type == 'E' && s->rewrite && prepared_error_may_name_statement(s, size))
	{
		/*
		 * The client's own statement name in the text, as a direct session
		 * has it. Whole first: the name may lie past the bytes at hand.
		 */
		if (avail < size)
			return PKT_NEED_FULL;
		if (prepared_error_names_statement(s, msg, size, s->last_sqlstate))
		{
			if (sbuf_has_unflushed(&s->sb))
				return PKT_STOP;	/* earlier answers go out first */
			if (prepared_put_renamed_error(s, msg, size))
			{
				counters_note_server_error(s->pool->slot, msg, size);
				(void) track_server(&s->tracker, 'E', detail);
				s->sb.replace_len = size;
				return PKT_REPLACE_PREFIX;
			}
		}
	}
	if (hdr->type == 'C')
	{
		/* the request this CommandComplete answers, before the tracker lets go of it */
		TrackEntry *h = track_head(&s->tracker);

		s->answer_mark = (h && (h->type == 'E' || h->type == 'Q')) ? h->data : NULL;
	}
	switch (track_server(&s->tracker, hdr->type, detail))
	{
		case TRACK_CONSUME:
			return track_synth_due(&s->tracker) ? PKT_CONSUME_STOP : PKT_CONSUME;
		case TRACK_LOST:
			if (!s->lost_logged)
			{
				char		desc[128];

				s->lost_logged = true;
				ereport(LOG, (errmsg("pgbun: a server answer matched no request: '%c' (%s); the connection will not be reused",
									 hdr->type, track_describe(&s->tracker, desc, sizeof(desc)))));
			}
			if (s->rewrite || s->link_mode != POOL_MODE_SESSION)
			{
				/* pgbun's own answers can no longer be placed, nor the server shared: close */
				s->lost_track = true;
				return PKT_STOP;
			}
			break;			/* session mode: forward; closed when the client leaves */
		default:
			break;
	}
	if (track_synth_due(&s->tracker))
		forward = PKT_FORWARD_STOP;

	switch (hdr->type)
	{
		case 'Z':
			{
				char		status = hdr->len >= 5 ? (char) msg[PROTO_HDR_LEN] : 'I';

				note_ready_for_query(s, status);
				if (session_ready(s))
				{
					/* after the client's RESET / DISCARD ALL: its values back, then this */
					s->held_ready = status;
					(void) notify_hold_ready(s);	/* and its channels read (notify.c) */
					return PKT_CONSUME;
				}
				if (session_has_held(s) && (!c_reapply_pending(s) || status != 'I'))
				{
					/* no restore to wait for (or not now, in a transaction block): the held ParameterStatus go out first */
					s->held_ready = status;
					if (!notify_hold_ready(s))
						s->hidden_done = true;
					return PKT_CONSUME_STOP;
				}
				if (s->link_mode == POOL_MODE_SESSION || server_busy(s))
					return forward;
				if (status == 'I' && forward == PKT_FORWARD && notify_hold_ready(s))
					return PKT_CONSUME_STOP;	/* held until its channels are known (notify.c) */
				if (status == 'I')
					return PKT_FORWARD_STOP;	/* at rest: released after the pump (pool_release_if_at_rest) */
				if (s->link_mode == POOL_MODE_STATEMENT)
				{
					s->mode_violation = true;
					return PKT_STOP;
				}
				return forward;
			}
		case 'S':
			health_server_parameter(s, msg, size);
			if (session_parameter_status(s, msg, size, false))
				return forward == PKT_FORWARD_STOP ? PKT_CONSUME_STOP : PKT_CONSUME;
			return forward;
		case 'E':				/* by SQLSTATE class, for metrics */
			counters_note_server_error(s->pool->slot, msg, Min(avail, size));
			return forward;
		case 'G':				/* CopyInResponse */
		case 'W':				/* CopyBothResponse */
			{
				/*
				 * A message the client sent after this COPY's Execute that pgbun
				 * answered itself (a Close, a Parse the server has) would have
				 * gone into the COPY and broken it: as the backend, 08P01.
				 */
				for (uint32 i = 1; i < s->tracker.count; i++)
				{
					TrackEntry *e = track_entry_at(&s->tracker, i);

					if (e->flags & TRACK_SYNTH)
					{
						s->copy_violation = e->type;
						return PKT_FORWARD_STOP;
					}
					if (e->type != 'S')
						break;	/* a real message goes to the COPY and breaks it itself */
				}
				return forward;
			}
		case 'C':
			{
				const char *tag = (const char *) msg + PROTO_HDR_LEN;

				if (size > PROTO_HDR_LEN && memchr(tag, '\0', size - PROTO_HDR_LEN))
					server_on_command_complete(s, tag);
				return forward;
			}
		default:
			return forward;
	}
}

/*
 * The one place every CommandComplete of the client's traffic (simple or
 * extended protocol, any statement of a multi-statement query) passes
 * through, with its tag. Statements dropped on the server (DISCARD ALL,
 * DEALLOCATE) are forgotten here; session parameter handling hooks in here
 * too.
 */
void
server_on_command_complete(Server *s, const char *tag)
{
	prepared_command_complete(s, tag, s->answer_mark);
	session_command_complete(s, tag);
	notify_command_complete(s, tag);
}

/*
 * server_lifetime (the database entry's, else the setting) is over, or the
 * server's host no longer has the role its target wants (a failover): do
 * not hand it on.
 */
static bool
server_lifetime_over(Server *s)
{
	int			lifetime = s->pool->server_lifetime;

	if (s->pool->target && target_route_changed(s->pool->target, s->route_id))
		return true;
	if (s->hslot >= 0 && s->pool->target && target_role_mismatch(s->pool->target, s->hslot))
		return true;
	return lifetime > 0 && W->now - s->connect_time >= (int64) lifetime * 1000;
}

/*
 * Transaction/statement mode: the client's transaction is over; unlink and
 * give the server to the next waiter. The client may already have sent its
 * next request: it is picked up next turn, outside this server's pump.
 */
void
server_return_to_pool(Server *s)
{
	Client	   *c = s->link;

	s->link = NULL;
	s->query_start = s->xact_start = 0;
	if (c)
	{
		c->link = NULL;
		client_publish(c);
		if (!c->closed && (c->sb.in || tls_pending(&c->sb) || ws_pending(&c->sb)) && !c->in_busy)
		{
			c->in_busy = true;
			dlist_push_tail(&W->busy_clients, &c->busy_node);
		}
	}
	if (server_lifetime_over(s))
	{
		server_close(s, "server_lifetime reached");
		return;
	}
	pool_server_available(s->pool, s);
}

/*
 * A released server for which a cancel was given up on (it may still land
 * at any time), or went out uncounted (no slot): closed, with a LOG line,
 * never handed on. true: closed. Call after publishing it unlinked.
 */
bool
server_close_if_cancel_may_land(Server *s)
{
	if (!s->cancel_unheld && (s->slot < 0 || cancel_hold_state(s->slot) != CANCEL_HOLD_UNSURE))
		return false;
	ereport(LOG, (errmsg("pgbun: closing a server connection of %s/%s: a cancel request sent for it may still land",
						 s->pool->database, s->pool->user)));
	server_close(s, "a cancel request sent for it may still land");
	return true;
}

/* query_timeout: ask the server to cancel what it is running for this connection. false: not sent yet (a full listen queue). */
bool
server_cancel_query(Server *s)
{
	bool		held = cancel_hold_own(s->slot);

	/* a full listen queue sent nothing: the janitor's next tick tries again */
	s->cancel_sent = cancel_send(&s->addr, s->addr_len, s->be_pid, s->be_key,
								 held ? s->slot : -1, held ? pgbun_conn_slot(s->slot)->id : 0,
								 NULL) != CANCEL_SEND_BUSY;
	s->cancel_unheld |= !held && s->cancel_sent;
	return s->cancel_sent;
}

/* Pump what the server sent toward its client (or through the hidden-query handler). */
void
server_pump_out(Server *s)
{
	uint64		rd = 0;
	uint64		wr = 0;
	PumpResult	r;
	Client	   *c = s->link;
	int			retries = 0;

again:
	if (s->closed || s->notify_step == NOTIFY_STEP_WAITING)
		return;					/* a held ReadyForQuery goes first (notify.c) */
	c = s->link;
	r = sbuf_pump(&s->sb, c ? &c->sb : NULL, PG_INT32_MAX, server_msg_handler, s, &rd, &wr);
	if (wr && s->pool)
		POOL_STAT_ADD(s->pool->slot, bytes_sent, wr);
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
				ereport(LOG, (errmsg("pgbun: lost track of a shared server connection; closing it")));
				server_close(s, "protocol tracking lost");
				return;
			}
			if (s->hidden_done)
			{
				s->hidden_done = false;
				if (s->slot >= 0 && pgbun_conn_slot(s->slot)->setting_up)
					server_publish(s);	/* a cancel may go now: the client's own request runs */
				hidden_query_done(s);
				if (s->held_ready && !s->closed && s->notify_step == NOTIFY_STEP_NONE)
					emit_held_ready(s); /* unless notify.c still waits for the listener */
				/* more may be buffered, now for a (possibly new) client */
				rd = wr = 0;
				goto again;
			}
			if (s->rewrite && c && prepared_answers_waiting(s))
			{
				prepared_emit_answers(s);
				if (!prepared_answers_waiting(s))
				{
					rd = wr = 0;
					goto again;
				}
				break;
			}
			if (s->copy_violation && c)
			{
				char		text[64];
				ProtoBuf	pb;

				snprintf(text, sizeof(text), "unexpected message type 0x%02X during COPY from stdin",
						 (unsigned char) s->copy_violation);
				/* the backend's own two errors, word for word */
				if (sbuf_out_begin(&c->sb, &pb) && proto_put_error(&pb, false, "08P01", text, NULL, NULL) &&
					proto_put_error(&pb, true, "08P01", "terminating connection because protocol synchronization was lost",
									NULL, NULL) && !pb.overflow)
					sbuf_out_commit(&c->sb, &pb);
				(void) sbuf_flush_out(&c->sb);
				client_close(c, NULL, "a message pgbun answered itself was sent into a COPY");
				server_close(s, "a client message broke a COPY");
				return;
			}
			if (s->mode_violation && c)
			{
				s->mode_violation = false;
				client_close(c, "0A000", "transaction blocks not allowed in statement pooling mode");
				return;
			}
			if (rd > 0 || wr > 0 || ++retries < 64)
			{
				/* stopped until earlier answers were out (they are now): go on */
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
	if (s->rewrite && s->link && prepared_answers_waiting(s))
		prepared_emit_answers(s);
	/* pgbun's own bytes in place of a server message (a replaced error) go out now */
	if (s->link && sbuf_out_pending(&s->link->sb))
		(void) sbuf_flush_out(&s->link->sb);	/* a failed write shows up on the next one */
	if (s->link && s->link->wait_answers && !s->link->in_busy)
	{
		/* its held message may go on now: looked at again after this turn */
		s->link->wait_answers = false;
		s->link->in_busy = true;
		dlist_push_tail(&W->busy_clients, &s->link->busy_node);
	}
	if (s->link && s->link->notify)
		notify_client_writable(s->link);	/* notifications held while a message streamed */
	/* the client may have sent nothing that needs an answer (a lone Flush) */
	if (pool_release_if_at_rest(s))
	{
		rd = wr = 0;
		goto again;				/* anything left is unsolicited traffic of an idle server */
	}
}

/*
 * Link an idle server to a client and queue what brings its session in line
 * (SETs, LISTENs) in the server's out buffer, unsent: the client's next pump
 * sends them ahead of its message, in one sendmsg with it when that message
 * is already read (sbuf.c, may_join_out). false: the client was closed.
 */
bool
server_attach(Server *s, Client *c)
{
	int			n;

	s->link = c;
	c->link = s;
	POOL_STAT_ADD(s->pool->slot, assign_count, 1);
	s->hidden_error = false;
	/*
	 * The link keeps the mode in force now, whatever a reload says later. A
	 * client that has pgbun-named statements keeps them rewritten even on a
	 * session link (its pool became a session pool by a reload).
	 */
	s->link_mode = (uint8) s->pool->mode;
	s->rewrite = pgbun_cfg->max_prepared_statements > 0 &&
		(s->link_mode != POOL_MODE_SESSION || c->stmts != NULL);
	n = session_link(s, c);
	if (n >= 0)
	{
		int			m = notify_link(s, c);	/* the client's LISTEN channels, and only those */

		n = m < 0 ? m : n + m;
	}
	server_set_state(s, SV_ACTIVE);
	if (n < 0)
	{
		client_close(c, "54000", "session parameters too long to apply");
		return false;
	}
	return true;
}

/* Link an idle server to a waiting client and pump what the client sent. */
void
server_link(Server *s, Client *c)
{
	if (!server_attach(s, c))
		return;
	if (sbuf_out_pending(&s->sb) && sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "write to server failed");
		return;
	}
	client_server_ready(c);
}

/*
 * Session mode: server_reset_query on a released server; it goes back to the
 * pool once answered. One a cancel may still land on is closed instead.
 */
static void
send_reset_query(Server *s)
{
	if (server_close_if_cancel_may_land(s))
		return;
	s->hidden_error = false;
	prepared_server_forget_all(s);	/* DISCARD ALL and the like drop them */
	/* ... and what pgbun knows of its parameters */
	session_server_reset(s, pgbun_cfg->server_reset_query);
	if (!server_queue_query(s, pgbun_cfg->server_reset_query) || sbuf_flush_out(&s->sb) < 0)
	{
		server_close(s, "could not send server_reset_query");
		return;
	}
	server_set_state(s, SV_TESTED);
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
	s->held_ready = 0;			/* its client is gone */
	free(s->held);
	s->held = NULL;
	s->held_len = 0;
	s->last_used = W->now;
	s->query_start = s->xact_start = 0;
	if (s->closed)
		return;
	if (s->hidden_rfq > 0 && track_at_rest(&s->tracker) && s->link_mode != POOL_MODE_SESSION &&
		!sbuf_has_pending_forward(&s->sb) && !W->shutting_down)
	{
		/*
		 * Only pgbun's own queries are in flight (a client's values being put
		 * back, or set for a client that left at once): the server goes back
		 * once they are answered, as after the reset query.
		 */
		server_set_state(s, SV_TESTED);
		return;
	}
	if (!server_at_rest(s) ||
		sbuf_has_pending_forward(&s->sb) || sbuf_out_pending(&s->sb) || W->shutting_down)
	{
		{
			char		desc[128];

			ereport(DEBUG1, (errmsg("pgbun: released while not idle: tx_status=%c hidden=%d %s", s->tx_status,
									s->hidden_rfq, track_describe(&s->tracker, desc, sizeof(desc)))));
		}
		/* a COPY the client left (PostgreSQL's backend ends such a session too) */
		server_close(s, s->tracker.copy_in ? "client left during COPY" : "released while not idle");
		return;
	}
	if (server_lifetime_over(s))
	{
		server_close(s, "server_lifetime reached");
		return;
	}
	/* as PgBouncer: the reset query belongs to session pooling */
	if (s->link_mode == POOL_MODE_SESSION && pgbun_cfg->server_reset_query && pgbun_cfg->server_reset_query[0])
	{
		server_set_state(s, SV_USED);	/* published unlinked: no cancel goes out for it now */
		/* one already on its way would stop the reset: it waits (pool.c, release_canceled_servers) */
		if (s->slot >= 0 && cancel_hold_state(s->slot) == CANCEL_HOLD_PENDING)
		{
			s->reset_due = true;
			server_set_state(s, SV_BEING_CANCELED);
			return;
		}
		send_reset_query(s);
		return;
	}
	pool_server_available(s->pool, s);
}

/* SBufOutWatch of a plain server connection past login (sbuf_out_on_demand). */
int
server_out_watch(SBuf *sb, bool on)
{
	Server	   *s = (Server *) ((char *) sb - offsetof(Server, sb));

	return poll_conn_watch_out(sb->fd, &s->io, on);
}

void
server_on_event(Server *s, uint32 events)
{
	if (s->closed)
		return;
	if (events & PEV_OUT)
		sbuf_out_event(&s->sb);	/* off until a write sticks again */
	if (!server_login_event(s, events))
		return;
	if (s->listener)
	{
		notify_listener_event(s);
		return;
	}
	if (s->authq)
	{
		auth_query_server_event(s, events);
		return;
	}
	/* the client's data may have been waiting for this server to drain */
	if ((events & PEV_OUT) && s->link)
		client_pump_in(s->link);
	else if ((events & PEV_OUT) && sbuf_out_pending(&s->sb) && sbuf_flush_out(&s->sb) < 0)
	{
		/* the rest of a reset, or of pgbun's queries for a client that left */
		server_close(s, "could not send a pooler query");
		return;
	}
	if (!s->closed && (events & (PEV_IN | PEV_HUP)))
		server_pump_out(s);
}

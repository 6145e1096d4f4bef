/*
 * client.c - a logged-in client: its state lists, forwarding its messages to
 * the linked server, answers pgbun gives while it has none, and close.
 *
 * A client is in one ClientState at a time (client_set_state moves it between
 * its lists and publishes the state to its shared slot). Accept and login live
 * in client_login.c; once logged in a client keeps only its startup
 * parameters, so an idle client costs its struct and its socket, no buffers.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "cancel.h"
#include "client_login.h"
#include "console.h"
#include "config.h"
#include "counters.h"
#include "log.h"
#include "notify.h"
#include "params.h"
#include "poll.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "session.h"
#include "settings.h"
#include "tls.h"
#include "websocket.h"

static bool client_left(Client *c);

/* Publish the client's state, pool and link to its shared slot. */
void
client_publish(Client *c)
{
	PgbunConnSlot *s;

	if (c->slot < 0)
		return;
	s = pgbun_conn_slot(c->slot);
	PGBUN_SLOT_WRITE_BEGIN(s);
	s->state = (uint8) c->state;
	s->pool = c->pool ? c->pool->slot : client_is_cancel_request(c) ? c->cancel_pool : -1;
	s->peer = c->link ? c->link->slot : -1;
	s->request_time = c->request_time;
	s->wait_start = c->wait_start;
	PGBUN_SLOT_WRITE_END(s);
}

static dlist_head *
client_state_list(Client *c, ClientState st)
{
	switch (st)
	{
		case CL_LOGIN:
			return &W->login_clients;
		case CL_WAITING_LOGIN:
			return &c->pool->waitlogin_clients;
		case CL_ACTIVE:
			return c->console ? &W->console_clients : &c->pool->active_clients;
		case CL_WAITING:
			return &c->pool->waiting_clients;
		case CL_WAITING_CANCEL:
		case CL_ACTIVE_CANCEL:
			return &W->cancel_clients;
	}
	return NULL;
}

/* The only way a client changes state: move lists, publish. */
void
client_set_state(Client *c, ClientState st)
{
	if (c->state != 0)
		dlist_delete(&c->node);
	c->state = st;
	dlist_push_tail(client_state_list(c, st), &c->node);
	if (st == CL_WAITING && c->slot >= 0)
		c->cancels_seen = pg_atomic_read_u32(&pgbun_conn_slot(c->slot)->cancels_waiting);
	client_publish(c);
}

const char *
client_param(Client *c, const char *name)
{
	return params_get(c->params, c->params_len, name);
}

/* Queue an ErrorResponse; the message text gets no prefix here (callers add "pgbun: "). */
bool
client_send_error(Client *c, bool fatal, const char *sqlstate, const char *msg)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&c->sb, &pb))
		return false;
	proto_put_error(&pb, fatal, sqlstate, msg, NULL, NULL);
	if (pb.overflow)
		return false;
	sbuf_out_commit(&c->sb, &pb);
	counters_note_pooler_error(c->pool ? c->pool->slot : -1, sqlstate);
	if (pgbun_cfg->log_pooler_errors)
		pgbun_log_client(LOG, c, "pooler_error", sqlstate, "pgbun: error sent to the client: %s", msg);
	return true;
}

/* Best-effort flush of pooler-made output; on a real error close the client. */
bool
client_flush(Client *c)
{
	if (sbuf_flush_out(&c->sb) < 0)
	{
		client_close(c, NULL, "write failed: %m");
		return false;
	}
	return true;
}

/*
 * Close a client. With a sqlstate, first send it a FATAL ErrorResponse with
 * the message (when the byte stream to it is at a message boundary). The
 * reason goes to the log when log_disconnections is on.
 */
void
client_close(Client *c, const char *sqlstate, const char *fmt,...)
{
	char		reason[512];
	va_list		ap;

	if (c->closed)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	/* a CancelRequest's connection never gets an answer, as from PostgreSQL */
	if (sqlstate && sbuf_can_send(&c->sb) && !client_is_cancel_request(c) &&
		(!c->link || !sbuf_has_pending_forward(&c->link->sb)))
	{
		char		msg[600];

		snprintf(msg, sizeof(msg), "pgbun: %s", reason);
		if (client_send_error(c, true, sqlstate, msg))
			(void) sbuf_flush_out(&c->sb);
	}
	if (c->state == CL_LOGIN && sqlstate)
	{
		const char *db;
		const char *user;

		client_login_names(c, &db, &user);
		counters_note_login_failure(db, user);
	}
	if (client_is_cancel_request(c))
		;						/* as PostgreSQL, which logs no CancelRequest */
	else if (pgbun_cfg->log_disconnections && c->state != CL_LOGIN)
		pgbun_log_client(LOG, c, "client_close", sqlstate, "pgbun: client closed: user=%s database=%s: %s",
						 c->pool ? c->pool->user : "?", c->pool ? c->pool->database : "?", reason);
	else if (pgbun_cfg->log_disconnections && sqlstate)
		pgbun_log_client(LOG, c, "login_failed", sqlstate, "pgbun: client login failed: %s", reason);

	c->closed = true;
	client_login_forget(c);		/* no password check or look-up delivered to a closed client */
	if (client_is_cancel_request(c))
		cancel_requester_gone(c);	/* its cancel goes on without it */
	notify_client_close(c);		/* its channels go (before its server is released) */
	if (c->in_busy)
	{
		dlist_delete(&c->busy_node);
		c->in_busy = false;
	}
	if (c->link)
	{
		Server	   *s = c->link;

		c->link = NULL;
		s->link = NULL;
		/* a message cut short leaves the server waiting for its rest: not reusable */
		if (sbuf_has_pending_forward(&c->sb))
			server_close(s, "client left in the middle of a message");
		else
			server_release(s);
	}
	dlist_delete(&c->node);
	dlist_push_tail(&W->closed_clients, &c->node);
	/* close() takes the socket out of the epoll set (nothing else holds it): no EPOLL_CTL_DEL */
	sbuf_close(&c->sb);
	if (c->slot >= 0)
	{
		pgbun_conn_slot_free(c->slot);
		c->slot = -1;
	}
	if (c->refuse)
		client_login_refused_closed(c); /* refused at accept: never counted */
	else
		pg_atomic_fetch_sub_u32(&pgbun_shared->client_count, 1);
	W->n_clients--;
	if (c->pool)
		pool_kick_waiting(c->pool);
}

void
client_free(Client *c)
{
	console_free(c);
	notify_client_free(c);
	prepared_client_free(c);
	client_login_forget(c);
	session_client_free(c);
	free(c->params);
	free(c->auth);
	free(c);
}


/* ---- logged in: forward to the server ---- */

static PktAction
client_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Client	   *c = owner;
	Server	   *s = c->link;
	PktAction	action = PKT_FORWARD;
	bool		was_busy;

	if (hdr->type == 'X')
	{
		/*
		 * The backend would answer everything sent before the Terminate
		 * first (errors of a broken COPY, the rest of a pipeline): wait for
		 * those answers, then close.
		 */
		if (s && server_busy(s) && !s->closed)
		{
			c->wait_answers = true;
			return PKT_STOP;
		}
		return PKT_CLOSE;
	}
	if (!s)
	{
		/*
		 * No server: nothing is in flight, so CopyData/CopyDone/CopyFail are
		 * outside any COPY, and PostgreSQL would ignore them (the COPY failed
		 * while the client was still sending): drop them rather than take a
		 * server for nothing.
		 */
		if (hdr->type == 'd' || hdr->type == 'c' || hdr->type == 'f')
			return PKT_SKIP;
		/* needs a server first (no side effects before that), unless pgbun can answer */
		if (c->pool->mode != POOL_MODE_SESSION && pgbun_cfg->max_prepared_statements > 0)
			return prepared_unlinked_message(c, hdr, msg, avail);
		return PKT_STOP;
	}
	was_busy = server_busy(s);
	if (s->rewrite)
	{
		action = prepared_client_message(c, s, hdr, msg, avail);
		if (action == PKT_NEED_FULL || action == PKT_STOP)
			return action;
	}
	else
	{
		if (hdr->type == 'P' && s->link_mode != POOL_MODE_SESSION)
		{
			/* the statement name is the body's first string */
			const uint8 *body = msg + PROTO_HDR_LEN;
			uint32		have = avail > PROTO_HDR_LEN ? avail - PROTO_HDR_LEN : 0;

			if (!memchr(body, '\0', have) && avail < proto_msg_size(hdr))
				return PKT_NEED_FULL;
			if (have > 0 && body[0] != '\0')
			{
				c->named_parse = true;
				return PKT_STOP;
			}
		}
		if (track_client(&s->tracker, hdr->type, 0, 0, 0, NULL, NULL) == TRACK_FULL)
		{
			c->stmt_error = "too many requests in flight on one server connection (more than 2048 answers owed)";
			c->stmt_sqlstate = "54000";
			return PKT_STOP;
		}
	}
	/* busy means something is in flight, never just "a message went by" */
	if (!was_busy && server_busy(s))
	{
		/* first message of a new request */
		s->query_start = W->now;
		if (s->xact_start == 0)
			s->xact_start = W->now;
		c->request_time = W->now;
		client_publish(c);
	}
	return action;
}

/* Pump whatever the client sent toward its server (asking the pool for one if needed). */
void
client_pump_in(Client *c)
{
	uint64		rd = 0;
	uint64		wr = 0;
	PumpResult	r;

	int			retries = 0;

	if (c->closed || c->state == CL_WAITING || c->state == CL_WAITING_LOGIN || client_is_cancel_request(c))
		return;
	if (c->console)
	{
		console_on_event(c, 0);
		return;
	}
again:
	c->wait_answers = false;	/* set again by the handler if it still has to wait */
	r = sbuf_pump(&c->sb, c->link ? &c->link->sb : NULL, (uint32) pgbun_cfg->max_packet_size,
				  client_msg_handler, c, &rd, &wr);
	if (rd && c->pool)
		POOL_STAT_ADD(c->pool->slot, bytes_received, rd);
	/* answers pgbun gave itself while no server was linked */
	if (!c->link && sbuf_out_pending(&c->sb) && !client_flush(c))
		return;
	switch (r)
	{
		case PUMP_IDLE:
		case PUMP_WAIT_WRITE:
			break;
		case PUMP_YIELD:
			if (!c->closed && !c->in_busy)
			{
				c->in_busy = true;
				dlist_push_tail(&W->busy_clients, &c->busy_node);
			}
			break;
		case PUMP_STOPPED:
			if (c->closed)
				break;
			if (c->stmt_error)
			{
				client_close(c, c->stmt_sqlstate ? c->stmt_sqlstate : "08P01", "%s", c->stmt_error);
				break;
			}
			if (c->named_parse)
			{
				client_close(c, "0A000", "named prepared statements are off in %s pooling mode (pgbun.max_prepared_statements = 0); raise it, or use pool_mode=session for this client (pgbun.users / pgbun.databases)",
							 pool_mode_name(c->pool->mode));
				break;
			}
			if (!c->link)
			{
				if (pool_link_idle_now(c->pool, c))
				{
					rd = wr = 0;
					goto again;
				}
				if (!c->closed)
				{
					pool_request_server(c->pool, c);
					/* it may have hung up with the bytes just read: no event will say so again */
					if (c->sb.hup_seen && client_left(c))
						client_close(c, NULL, "client disconnected while waiting");
				}
			}
			else if (c->wait_answers)
				break;			/* the server's answers wake it */
			else if (++retries < 64)
			{
				/* earlier messages are out now: the handler can rewrite this one */
				rd = wr = 0;
				goto again;
			}
			else if (!c->in_busy)
			{
				c->in_busy = true;
				dlist_push_tail(&W->busy_clients, &c->busy_node);
			}
			break;
		case PUMP_CLOSE:
			client_close(c, NULL, "client sent Terminate");
			break;
		case PUMP_EOF:
			client_close(c, NULL, "client disconnected");
			break;
		case PUMP_SRC_ERROR:
			client_close(c, "08P01", "%s", c->sb.error ? c->sb.error : "protocol error");
			break;
		case PUMP_DST_ERROR:
			{
				Server	   *s = c->link;

				if (s && s->fatal_forwarded)
					client_close(c, NULL, "server connection lost after its FATAL error");
				else
					client_close(c, "08006", "server connection lost");
				if (s)
					server_close(s, "write to server failed");
				break;
			}
	}
	/*
	 * Transaction/statement mode: a server left at rest by what the client
	 * sent (a lone Flush, the end of a message that held a release back)
	 * goes back to the pool; pool.c refuses while anything is in flight.
	 */
	if (!c->closed && c->link)
		(void) pool_release_if_at_rest(c->link);
}

/* A server has just been linked to this waiting client. */
void
client_server_ready(Client *c)
{
	if (c->wait_start)
	{
		POOL_STAT_ADD(c->pool->slot, wait_time_us, Max(W->now - c->wait_start, 0));
		counters_observe(c->pool->slot, HIST_WAIT, W->now - c->wait_start);
		c->wait_start = 0;
	}
	client_set_state(c, CL_ACTIVE);
	client_pump_in(c);
}

/* SBufOutWatch of a plain client socket (sbuf_out_on_demand from accept). */
int
client_out_watch(SBuf *sb, bool on)
{
	Client	   *c = (Client *) ((char *) sb - offsetof(Client, sb));

	return poll_conn_watch_out(sb->fd, &c->io, on);
}

/*
 * A client waiting for a server hung up over TLS or WebSocket: what is left
 * on its socket can only be told apart (a close_notify or a close frame from
 * the last piece of a request) by reading it through the layer. Read it into
 * the client's buffer, where it waits for the server as its request does (one
 * buffer at most). true: the layer reached its end of file.
 */
static bool
layered_input_at_end(Client *c)
{
	sbuf_ready_to_read(&c->sb, true);
	for (;;)
	{
		int			r = sbuf_fill(&c->sb);

		if (r > 0)
			continue;
		if (r == -1)
			return true;
		/*
		 * A broken connection ends too. No buffer to read into, no memory
		 * for the WebSocket layer's, or a full one tell nothing.
		 */
		return r == -2 && c->sb.in != NULL && errno != ENOMEM;
	}
}

/*
 * Has a client whose input is not being read (a login that waits, a client
 * waiting for a server) left, with nothing the server would still run? Its
 * socket is at its end -- plain: end of file; TLS or WebSocket while it
 * waits for a server: read through the layer to its end of file; TLS during
 * a login: nothing unread but alerts (a close_notify) -- and what pgbun
 * holds of its input has no complete message. A request sent in full before
 * the hang-up is run once the client gets its server, as PostgreSQL runs a
 * request whose sender has gone (and PgBouncer does); a partial one
 * PostgreSQL would drop at the end of file too, and so it would a request
 * cancelled while it waited.
 */
static bool
client_left(Client *c)
{
	uint32		buffered;
	ProtoHeader hdr;
	bool		at_end;
	bool		layered = (c->sb.ssl || c->sb.ws) && c->state == CL_WAITING;

	if (layered)
		at_end = layered_input_at_end(c);
	else if (c->sb.ssl)
		at_end = tls_only_alerts_unread(&c->sb);
	else
	{
		char		b;
		ssize_t		n = recv(c->sb.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		at_end = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
	}
	/* read to its end, bytes the layer left (after a close frame, a cut frame) are no input */
	if (!at_end || (!layered && c->sb.ws && ws_pending(&c->sb)))
		return false;
	buffered = sbuf_unparsed(&c->sb);
	/* a request cancelled while it waited would not run directly */
	if (c->state == CL_WAITING && c->slot >= 0 &&
		pg_atomic_read_u32(&pgbun_conn_slot(c->slot)->cancels_waiting) != c->cancels_seen)
		return true;
	/* a lone Terminate asks for nothing to be run; a malformed header neither */
	if (buffered > 0 &&
		proto_parse_header(c->sb.in + c->sb.parse_pos, buffered, UINT32_MAX, &hdr) == PROTO_OK &&
		buffered >= proto_msg_size(&hdr) && hdr.type != 'X')
		return false;
	return true;
}

/*
 * A CancelRequest connection waiting for its cancel: nothing it sends means
 * anything (some drivers send a Terminate before they give up), so it is
 * read and dropped; its hang-up closes it, and its cancel goes on.
 */
static void
drain_cancel_request(Client *c)
{
	/* a bounded read per event: a client that keeps sending must not hold the loop */
	for (int i = 0; i < 4; i++)
	{
		int			r = sbuf_fill(&c->sb);

		if (r > 0 || r == -3)
		{
			sbuf_consume(&c->sb, sbuf_unparsed(&c->sb));
			continue;
		}
		/* no buffer, or no memory in a layer, says nothing of the client (its hang-up comes again) */
		if (r == -1 || (r == -2 && c->sb.in != NULL && errno != ENOMEM))
			client_close(c, NULL, "client left its cancel request");
		return;
	}
}

void
client_on_event(Client *c, uint32 events)
{
	if (c->closed)
		return;
	if (events & PEV_OUT)
		sbuf_out_event(&c->sb);	/* off until a write sticks again (the handlers below retry) */
	switch (c->state)
	{
		case CL_LOGIN:
			if (sbuf_out_pending(&c->sb) && !client_flush(c))
				return;
			client_login_input(c);
			/*
			 * A login that waits (a thread, a look-up, a delayed failure)
			 * reads nothing: notice a hang-up. After a failure nothing the
			 * client sent will ever be read, so the hang-up alone ends it.
			 */
			if (!c->closed && c->state == CL_LOGIN && (events & PEV_HUP) && client_login_waiting(c) &&
				(client_login_failed(c) || client_left(c)))
				client_close(c, NULL, "client disconnected during login");
			break;
		case CL_WAITING_CANCEL:
		case CL_ACTIVE_CANCEL:
			if (events & (PEV_IN | PEV_HUP))
				drain_cancel_request(c);
			break;
		case CL_WAITING_LOGIN:
		case CL_WAITING:
			/* leave its next message unread until a server is there; notice a hang-up */
			if (sbuf_out_pending(&c->sb) && !client_flush(c))
				return;
			if (c->notify && (events & PEV_OUT))
			{
				notify_client_writable(c);	/* queued notifications */
				if (c->closed)
					return;
			}
			if ((events & PEV_HUP) && client_left(c))
				client_close(c, NULL, "client disconnected while waiting");
			break;
		case CL_ACTIVE:
			if (c->console)
			{
				console_on_event(c, events);
				break;
			}
			if ((events & PEV_OUT))
			{
				if (sbuf_out_pending(&c->sb) && !client_flush(c))
					return;
				if (c->notify)
					notify_client_writable(c);	/* queued notifications */
				if (c->closed)
					return;
				if (c->link)
					server_pump_out(c->link);
			}
			if (!c->closed && (events & (PEV_IN | PEV_HUP)))
				client_pump_in(c);
			break;
	}
}

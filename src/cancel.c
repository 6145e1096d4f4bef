/*
 * cancel.c - forward a CancelRequest to the linked server (see cancel.h).
 *
 * The key a client holds maps, through the shared cancel table, to its
 * connection slot; the slot says which server slot it is linked to, and that
 * slot holds the backend's real pid/key and address. Any worker can do this,
 * so a cancel works whichever worker's socket it lands on. Nothing here
 * waits: the connect is non-blocking, and a slot caught mid-write by its
 * owner is read again at the next loop turn rather than waited for. The
 * client's own CancelRequest connection stays open until the cancel is
 * done, as PostgreSQL keeps it (requester_wait).
 *
 * A CancelRequest reaches the backend some time after it is sent: the server
 * takes the connection, signals the backend, and only then closes it. If the
 * query ends by itself meanwhile, the server must not be running another
 * client's query when the signal lands. So every cancel in flight is counted
 * in the server's slot (cancel_holds) until its connection ends, and the
 * owner keeps a released server out of the pool while the count is not zero
 * (SV_BEING_CANCELED, pool.c), and holds back its own queries for it (a
 * session reset, a client's values put back: server.c). The count goes up
 * before the sender checks the server is still linked to the client and not
 * running pgbun's SETs, and the owner publishes the unlink (or setting_up)
 * before it reads the count (full barriers both sides): either the sender
 * sees the change and sends nothing, or the owner sees the count.
 */
#include "postgres.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ilist.h"

#include "cancel.h"
#include "pooler.h"
#include "proto.h"

#define CANCEL_TIMEOUT_US ((int64) CANCEL_TIMEOUT_MS * 1000)

/* Cancel connections one worker keeps open at most: a flood of CancelRequests opens no more. */
#define MAX_CANCEL_CONNS 256

typedef struct CancelConn
{
	IoObj		io;				/* IO_CANCEL; first member */
	dlist_node	node;
	int			fd;
	bool		sent;			/* the packet is out: waiting for the server to close */
	bool		taken;			/* the server closed it: the backend has been signalled */
	int			hold_slot;		/* server slot whose cancel_holds this counts in, -1: none */
	uint64		hold_id;		/* that server's connection id */
	TimestampTz start;
	Client	   *req;			/* the client connection that asked, closed once this is done */
	uint8		packet[16];
} CancelConn;

static dlist_head cancels = DLIST_STATIC_INIT(cancels);
static int	n_cancels = 0;

/*
 * A CancelRequest that cannot go yet: its slots could not be read
 * consistently (a writer was mid-write), its server is running pgbun's
 * own SETs for the client, which the cancel would stop in place of the
 * client's query (leaving the query to run in the wrong session state), or
 * the server's Unix socket has a full listen queue (connect says EAGAIN:
 * then every BUSY_RETRY_US).
 * Tried again every loop turn (cancel_retry) until CANCEL_TIMEOUT_US. At
 * most MAX_PENDING; beyond that the oldest goes.
 */
#define MAX_PENDING 64
/* After a full listen queue, wait this long before the next try (each costs a socket and a connect). */
#define BUSY_RETRY_US 10000

typedef enum TryResult
{
	TRY_DONE,					/* sent, or nothing to send */
	TRY_LATER,					/* cannot go yet: try at the next turn */
	TRY_BUSY,					/* the server's listen queue is full: try in BUSY_RETRY_US */
} TryResult;

typedef struct PendingCancel
{
	dlist_node	node;
	uint32		pid;
	uint32		key;
	TimestampTz start;
	TimestampTz next_try;		/* not before this */
	int			cidx;			/* the client's slot, once looked up (no lock on a retry) */
	Client	   *req;			/* the client connection that asked, or NULL */
} PendingCancel;

static dlist_head pending = DLIST_STATIC_INIT(pending);
static int	n_pending = 0;

/* Count one more cancel in flight for slot idx, if it still holds connection id. */
static bool
cancel_hold(int idx, uint64 id)
{
	pg_atomic_uint64 *holds = &pgbun_conn_slot(idx)->cancel_holds;
	uint64		old = pg_atomic_read_u64(holds);

	do
	{
		if ((old >> 32) != HOLD_ID(id))
			return false;
	} while (!pg_atomic_compare_exchange_u64(holds, &old, old + 1));
	return true;
}

/*
 * One cancel for slot idx is over: sent and closed by the server, failed, or
 * not sent; unsure: sent, and given up on before the server closed it. The
 * last one wakes the owner, which gives the server back, or closes it after
 * an unsure one (pool.c). A slot since reused for another connection is
 * left alone.
 */
static void
cancel_unhold(int idx, uint64 id, bool unsure)
{
	PgbunConnSlot *slot = pgbun_conn_slot(idx);
	uint64		old = pg_atomic_read_u64(&slot->cancel_holds);
	int			owner;

	do
	{
		if ((old >> 32) != HOLD_ID(id) || HOLD_COUNT(old) == 0)
			return;
	} while (!pg_atomic_compare_exchange_u64(&slot->cancel_holds, &old,
											  (old - 1) | (unsure ? HOLD_UNSURE : 0)));
	if (HOLD_COUNT(old) != 1)
		return;
	/* a stale owner costs a spare wake-up; the janitor catches a missed one */
	owner = slot->worker;
	if (owner < 0 || owner >= PGBUN_MAX_WORKERS)
		return;
	pg_atomic_write_u32(&pgbun_shared->workers[owner].cancels_done, 1);
	pgbun_wake_workers(UINT64CONST(1) << owner);
}

bool
cancel_hold_own(int slot)
{
	return slot >= 0 && cancel_hold(slot, pgbun_conn_slot(slot)->id);
}

CancelHold
cancel_hold_state(int slot)
{
	uint64		v;

	/* after the caller published the server unlinked (see the header) */
	pg_memory_barrier();
	v = pg_atomic_read_u64(&pgbun_conn_slot(slot)->cancel_holds);
	/* while some are in flight, wait for them all, unsure or not */
	if (HOLD_COUNT(v) > 0)
		return CANCEL_HOLD_PENDING;
	return (v & HOLD_UNSURE) ? CANCEL_HOLD_UNSURE : CANCEL_HOLD_NONE;
}

/*
 * The client connection a CancelRequest came on waits until it is done, as
 * PostgreSQL closes it only once the backend is signalled: a client that
 * goes on when its cancel returns (libpq's PQcancel, JDBC) must not have it
 * land on its next query. st: CL_WAITING_CANCEL (not sent yet) or
 * CL_ACTIVE_CANCEL (its cancel connection is open).
 */
static void
requester_wait(Client *req, ClientState st)
{
	if (req && req->state != st)
		client_set_state(req, st);
}

/* Its cancel was sent and taken, given up on, or found nothing to stop: close it, as PostgreSQL does. */
static void
requester_done(Client *req)
{
	if (req)
		client_close(req, NULL, "cancel request done");
}

void
cancel_requester_gone(Client *req)
{
	dlist_iter	it;

	dlist_foreach(it, &cancels)
	{
		CancelConn *cc = dlist_container(CancelConn, node, it.cur);

		if (cc->req == req)
			cc->req = NULL;
	}
	dlist_foreach(it, &pending)
	{
		PendingCancel *pc = dlist_container(PendingCancel, node, it.cur);

		if (pc->req == req)
			pc->req = NULL;
	}
}

/* Close a cancel connection; given up on after sending, its server is not reused. */
static void
cancel_conn_close(CancelConn *cc)
{
	poll_remove(cc->fd);
	close(cc->fd);
	dlist_delete(&cc->node);
	n_cancels--;
	if (cc->hold_slot >= 0)
		cancel_unhold(cc->hold_slot, cc->hold_id, cc->sent && !cc->taken);
	requester_done(cc->req);
	free(cc);
}

/*
 * Look the key up and send the cancel if its client is linked; req (the
 * client connection that asked, or NULL) then waits on the cancel
 * connection (CL_ACTIVE_CANCEL). TRY_LATER / TRY_BUSY when it cannot go
 * yet (see PendingCancel). *cidx: the client's slot, -1 until the key
 * was looked up in the shared table (under its lock); a retry reads the
 * slot directly, and the pid and key in it say whether it is still that
 * client's.
 */
static TryResult
cancel_try_forward(uint32 pid, uint32 key, Client *req, int *cidx_p)
{
	int			cidx = *cidx_p >= 0 ? *cidx_p : (*cidx_p = pgbun_cancel_lookup(pid, key));
	PgbunConnSlot client;
	PgbunConnSlot server;
	PgbunConnSlot server_again;
	PgbunConnSlot client_again;
	int			sidx;

	if (cidx < 0)
		return TRY_DONE;			/* unknown key: silently ignored, as PostgreSQL does */
	if (!pgbun_conn_slot_try_read(cidx, &client))
		return TRY_LATER;
	/* a slot since taken by another client (the lookup and this read are not atomic) */
	if (client.kind != CONN_CLIENT || client.cancel_pid != pid || client.cancel_key != key)
		return TRY_DONE;
	if (req && req->cancel_pool != client.pool)
	{
		req->cancel_pool = client.pool; /* shown under that pool while it waits */
		client_publish(req);
	}
	if (client.peer < 0)
	{
		/*
		 * Not linked: nothing runs for it yet, and a cancel cannot be sent.
		 * Its request stays queued (as with PgBouncer), but should the
		 * client now leave, its owner drops it rather than run what the
		 * client cancelled (client.c, client_left).
		 */
		if (client.state == CL_WAITING)
		{
			pg_atomic_fetch_add_u32(&pgbun_conn_slot(cidx)->cancels_waiting, 1);
			ereport(DEBUG1, (errmsg("pgbun: cancel request for a client waiting for a server")));
		}
		return TRY_DONE;
	}
	sidx = client.peer;
	if (!pgbun_conn_slot_try_read(sidx, &server))
		return TRY_LATER;
	if (server.kind != CONN_SERVER || server.peer != cidx || server.sv_sockaddr_len == 0)
		return TRY_DONE;
	if (server.setting_up)
		return TRY_LATER;			/* it would stop pgbun's SETs, not the client's query: soon */
	if (!cancel_hold(sidx, server.id))
		return TRY_DONE;			/* the server connection is gone */
	/* counted: now make sure the server is still this client's (see the header) */
	if (!pgbun_conn_slot_try_read(sidx, &server_again) ||
		!pgbun_conn_slot_try_read(cidx, &client_again))
	{
		cancel_unhold(sidx, server.id, false);
		return TRY_LATER;
	}
	if (server_again.id != server.id || server_again.peer != cidx || client_again.id != client.id)
	{
		/* released meanwhile: the query it was meant for is over */
		cancel_unhold(sidx, server.id, false);
		return TRY_DONE;
	}
	if (server_again.setting_up)
	{
		cancel_unhold(sidx, server.id, false);
		return TRY_LATER;
	}
	/* a full listen queue: the cancel waits for room, as a client's connect would */
	return cancel_send(&server.sv_sockaddr, server.sv_sockaddr_len, server.cancel_pid, server.cancel_key,
					   sidx, server.id, req) == CANCEL_SEND_BUSY ? TRY_BUSY : TRY_DONE;
}

bool
cancel_forward(uint32 pid, uint32 key, Client *req)
{
	PendingCancel *pc;
	int			cidx = -1;
	TryResult	r = cancel_try_forward(pid, key, req, &cidx);

	if (r == TRY_DONE)
		return req && req->state == CL_ACTIVE_CANCEL;
	if (n_pending >= MAX_PENDING)
	{
		pc = dlist_container(PendingCancel, node, dlist_pop_head_node(&pending));
		n_pending--;
		requester_done(pc->req);
		free(pc);
	}
	pc = malloc(sizeof(PendingCancel));
	if (!pc)
		return false;
	pc->pid = pid;
	pc->key = key;
	pc->start = W->now;
	pc->next_try = r == TRY_BUSY ? W->now + BUSY_RETRY_US : 0;
	pc->cidx = cidx;
	pc->req = req;
	dlist_push_tail(&pending, &pc->node);
	n_pending++;
	requester_wait(req, CL_WAITING_CANCEL);
	return req != NULL;
}

CancelSend
cancel_send(const struct sockaddr_storage *addr, socklen_t addrlen, uint32 pid, uint32 key,
			int hold_slot, uint64 hold_id, Client *req)
{
	CancelConn *cc = NULL;
	ProtoBuf	pb;
	int			fd = -1;
	CancelSend	result = CANCEL_SEND_FAILED;

	if (n_cancels >= MAX_CANCEL_CONNS)
	{
		ereport(LOG, (errmsg("pgbun: %d cancel requests in flight already; this one is dropped", n_cancels)));
		goto fail;
	}
	cc = calloc(1, sizeof(CancelConn));
	if (!cc)
		goto fail;
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, (const struct sockaddr *) addr, addrlen) < 0 && errno != EINPROGRESS)
	{
		/*
		 * EAGAIN: a Unix socket whose listen queue is full (the server is
		 * swamped with connections, or stopped); nothing is connecting
		 */
		if (errno == EAGAIN)
		{
			ereport(DEBUG1, (errmsg("pgbun: the server's listen queue is full; the cancel request waits")));
			result = CANCEL_SEND_BUSY;
		}
		else
			ereport(LOG, (errmsg("pgbun: could not send a cancel request: %m")));
		goto fail;
	}
	cc->io.kind = IO_CANCEL;
	cc->fd = fd;
	cc->start = W->now;
	cc->hold_slot = hold_slot;
	cc->hold_id = hold_id;
	proto_buf_init(&pb, cc->packet, sizeof(cc->packet));
	proto_put_cancel(&pb, pid, key);
	if (poll_add_conn(fd, &cc->io) < 0)
	{
		ereport(LOG, (errmsg("pgbun: could not send a cancel request: %m")));
		goto fail;
	}
	dlist_push_tail(&cancels, &cc->node);
	n_cancels++;
	cc->req = req;
	requester_wait(req, CL_ACTIVE_CANCEL);
	return CANCEL_SEND_OK;

fail:
	if (fd >= 0)
		close(fd);
	free(cc);
	if (hold_slot >= 0)
		cancel_unhold(hold_slot, hold_id, false);
	return result;
}

void
cancel_on_event(void *obj, uint32 events)
{
	CancelConn *cc = obj;
	char		b[16];
	ssize_t		n;

	if (!cc->sent && (events & PEV_OUT))
	{
		/* 16 bytes into an empty socket buffer: all or nothing in practice */
		if (send(cc->fd, cc->packet, sizeof(cc->packet), MSG_NOSIGNAL) != sizeof(cc->packet))
		{
			ereport(LOG, (errmsg("pgbun: could not send a cancel request to the server")));
			cancel_conn_close(cc);
			return;
		}
		cc->sent = true;
	}
	else if (!cc->sent)
	{
		if (events & PEV_HUP)
			cancel_conn_close(cc);	/* refused */
		return;
	}
	/* the server closes the connection once it has signalled the backend (it sends nothing) */
	while ((n = recv(cc->fd, b, sizeof(b), MSG_DONTWAIT)) > 0 || (n < 0 && errno == EINTR))
		;
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
	{
		cc->taken = true;		/* closed (or reset) by the server after reading the request */
		cancel_conn_close(cc);
	}
}

bool
cancel_retry(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &pending)
	{
		PendingCancel *pc = dlist_container(PendingCancel, node, it.cur);
		TryResult	r;
		bool		done;

		if (W->now < pc->next_try)
			continue;
		r = cancel_try_forward(pc->pid, pc->key, pc->req, &pc->cidx);
		done = r == TRY_DONE;
		if (r == TRY_BUSY)
			pc->next_try = W->now + BUSY_RETRY_US;
		if (!done && W->now - pc->start > CANCEL_TIMEOUT_US)
		{
			ereport(LOG, (errmsg("pgbun: a cancel request could not be sent within %d ms (its server was running pgbun's own queries, or its listen queue was full); dropped",
								 CANCEL_TIMEOUT_MS)));
			done = true;
		}
		if (done)
		{
			dlist_delete(&pc->node);
			n_pending--;
			/* handed to its cancel connection, or nothing will be sent: closed */
			if (pc->req && pc->req->state != CL_ACTIVE_CANCEL)
				requester_done(pc->req);
			free(pc);
		}
	}
	return n_pending > 0;
}

void
cancel_janitor(void)
{
	dlist_mutable_iter it;

	(void) cancel_retry();

	dlist_foreach_modify(it, &cancels)
	{
		CancelConn *cc = dlist_container(CancelConn, node, it.cur);

		if (W->now - cc->start > CANCEL_TIMEOUT_US)
		{
			/* sent, not taken: it may still land, so its server is closed, not handed on */
			if (cc->sent && cc->hold_slot >= 0)
				ereport(LOG, (errmsg("pgbun: a cancel request was not taken within %d ms; its server connection will not be reused",
									 CANCEL_TIMEOUT_MS)));
			cancel_conn_close(cc);
		}
	}
}

void
cancel_close_all(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &cancels)
		cancel_conn_close(dlist_container(CancelConn, node, it.cur));
	dlist_foreach_modify(it, &pending)
	{
		PendingCancel *pc = dlist_container(PendingCancel, node, it.cur);

		dlist_delete(it.cur);
		n_pending--;
		requester_done(pc->req);
		free(pc);
	}
}

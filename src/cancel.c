/*
 * cancel.c - forward a CancelRequest to the linked server (see cancel.h).
 *
 * The key a client holds maps, through the shared cancel table, to its
 * connection slot; the slot says which server slot it is linked to, and that
 * slot holds the backend's real pid/key and address. Any worker can do this,
 * so a cancel works whichever worker's socket it lands on. Nothing here
 * waits: the connect is non-blocking, and a slot caught mid-write by its
 * owner is read again at the next janitor tick rather than waited for.
 */
#include "postgres.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ilist.h"

#include "cancel.h"
#include "pooler.h"
#include "proto.h"

/* Give up on a cancel connection the server does not accept within this. */
#define CANCEL_TIMEOUT_US (5 * USECS_PER_SEC)

typedef struct CancelConn
{
	IoObj		io;				/* IO_CANCEL; first member */
	dlist_node	node;
	int			fd;
	TimestampTz start;
	uint8		packet[16];
} CancelConn;

static dlist_head cancels = DLIST_STATIC_INIT(cancels);

static void
cancel_conn_close(CancelConn *cc)
{
	poll_remove(cc->fd);
	close(cc->fd);
	dlist_delete(&cc->node);
	free(cc);
}

/*
 * A CancelRequest whose slots could not be read consistently (a writer was
 * mid-write): tried again by the janitor instead of waiting for the writer,
 * until CANCEL_TIMEOUT_US. At most MAX_PENDING; beyond that the oldest goes.
 */
#define MAX_PENDING 64

typedef struct PendingCancel
{
	dlist_node	node;
	uint32		pid;
	uint32		key;
	TimestampTz start;
} PendingCancel;

static dlist_head pending = DLIST_STATIC_INIT(pending);
static int	n_pending = 0;

/*
 * Look the key up and send the cancel if its client is linked. false when a
 * slot could not be read without waiting (try again later).
 */
static bool
cancel_try_forward(uint32 pid, uint32 key)
{
	int			cidx = pgbun_cancel_lookup(pid, key);
	PgbunConnSlot client;
	PgbunConnSlot server;

	if (cidx < 0)
		return true;			/* unknown key: silently ignored, as PostgreSQL does */
	if (!pgbun_conn_slot_try_read(cidx, &client))
		return false;
	if (client.kind != CONN_CLIENT)
		return true;
	if (client.peer < 0)
	{
		/*
		 * Not linked: nothing runs for it yet, and a cancel cannot be sent.
		 * Its request stays queued (as with PgBouncer), but should the
		 * client now leave, its owner drops it rather than run what the
		 * client cancelled (client.c, client_left).
		 */
		if (client.state == CL_WAITING && client.cancel_pid == pid && client.cancel_key == key)
		{
			pg_atomic_fetch_add_u32(&pgbun_conn_slot(cidx)->cancels_waiting, 1);
			ereport(DEBUG1, (errmsg("pgbun: cancel request for a client waiting for a server")));
		}
		return true;
	}
	if (!pgbun_conn_slot_try_read(client.peer, &server))
		return false;
	if (server.kind != CONN_SERVER || server.peer != cidx || server.sv_sockaddr_len == 0)
		return true;

	cancel_send(&server.sv_sockaddr, server.sv_sockaddr_len, server.cancel_pid, server.cancel_key);
	return true;
}

void
cancel_forward(uint32 pid, uint32 key)
{
	PendingCancel *pc;

	if (cancel_try_forward(pid, key))
		return;
	if (n_pending >= MAX_PENDING)
	{
		pc = dlist_container(PendingCancel, node, dlist_pop_head_node(&pending));
		n_pending--;
		free(pc);
	}
	pc = malloc(sizeof(PendingCancel));
	if (!pc)
		return;
	pc->pid = pid;
	pc->key = key;
	pc->start = W->now;
	dlist_push_tail(&pending, &pc->node);
	n_pending++;
}

void
cancel_send(const struct sockaddr_storage *addr, socklen_t addrlen, uint32 pid, uint32 key)
{
	CancelConn *cc;
	ProtoBuf	pb;

	cc = calloc(1, sizeof(CancelConn));
	if (!cc)
		return;
	cc->io.kind = IO_CANCEL;
	cc->start = W->now;
	proto_buf_init(&pb, cc->packet, sizeof(cc->packet));
	proto_put_cancel(&pb, pid, key);
	cc->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cc->fd < 0)
	{
		free(cc);
		return;
	}
	dlist_push_tail(&cancels, &cc->node);
	if ((connect(cc->fd, (const struct sockaddr *) addr, addrlen) < 0 &&
		 errno != EINPROGRESS && errno != EAGAIN) ||
		poll_add_conn(cc->fd, &cc->io) < 0)
	{
		ereport(LOG, (errmsg("pgbun: could not send a cancel request: %m")));
		poll_remove(cc->fd);
		close(cc->fd);
		dlist_delete(&cc->node);
		free(cc);
	}
}

void
cancel_on_event(void *obj, uint32 events)
{
	CancelConn *cc = obj;

	if (events & PEV_OUT)
	{
		/* 16 bytes into an empty socket buffer: all or nothing in practice */
		if (send(cc->fd, cc->packet, sizeof(cc->packet), MSG_NOSIGNAL) != sizeof(cc->packet))
			ereport(LOG, (errmsg("pgbun: could not send a cancel request to the server")));
		cancel_conn_close(cc);
	}
	else if (events & PEV_HUP)
		cancel_conn_close(cc);
}

void
cancel_janitor(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &pending)
	{
		PendingCancel *pc = dlist_container(PendingCancel, node, it.cur);

		if (cancel_try_forward(pc->pid, pc->key) || W->now - pc->start > CANCEL_TIMEOUT_US)
		{
			dlist_delete(&pc->node);
			n_pending--;
			free(pc);
		}
	}

	dlist_foreach_modify(it, &cancels)
	{
		CancelConn *cc = dlist_container(CancelConn, node, it.cur);

		if (W->now - cc->start > CANCEL_TIMEOUT_US)
			cancel_conn_close(cc);
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
		dlist_delete(it.cur);
		free(dlist_container(PendingCancel, node, it.cur));
	}
	n_pending = 0;
}

/*
 * cancel.c - forward a CancelRequest to the linked server (see cancel.h).
 *
 * The key a client holds maps, through the shared cancel table, to its
 * connection slot; the slot says which server slot it is linked to, and that
 * slot holds the backend's real pid/key and address. Any worker can do this,
 * so a cancel works whichever worker's socket it lands on.
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

void
cancel_forward(uint32 pid, uint32 key)
{
	int			cidx = pgbun_cancel_lookup(pid, key);
	PgbunConnSlot client;
	PgbunConnSlot server;

	if (cidx < 0)
		return;					/* unknown key: silently ignored, as PostgreSQL does */
	pgbun_conn_slot_read(cidx, &client);
	if (client.kind != CONN_CLIENT || client.peer < 0)
		return;					/* not linked: nothing is running for this client */
	pgbun_conn_slot_read(client.peer, &server);
	if (server.kind != CONN_SERVER || server.peer != cidx || server.sv_sockaddr_len == 0)
		return;

	cancel_send(&server.sv_sockaddr, server.sv_sockaddr_len, server.cancel_pid, server.cancel_key);
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
}

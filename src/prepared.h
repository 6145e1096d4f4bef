/*
 * prepared.h - protocol-level named prepared statements in transaction and
 * statement pooling, and the request queue that keeps responses in order.
 *
 * A client's statement names are its own; the statement itself (query text
 * and parameter types) lives once per worker under a pgbun name
 * ("pgbun_<id>"). Each server connection keeps an LRU of at most
 * pgbun.max_prepared_statements of those. Client messages naming a
 * statement are rewritten to the pgbun name; a Bind/Describe on a server
 * that lacks the statement gets a Parse injected first (its ParseComplete
 * hidden); a Parse the server already has, and every Close of a statement,
 * are answered by pgbun itself (ParseComplete / CloseComplete).
 *
 * For those answers to land in the right place, every request sent on a
 * tracked server is queued, and each response pops the request it answers;
 * an error in the extended protocol drops the requests the server skips up
 * to the next Sync, exactly as the server does.
 */
#ifndef PGBUN_PREPARED_H
#define PGBUN_PREPARED_H

#include "postgres.h"

#include "pooler.h"
#include "proto.h"
#include "sbuf.h"

/* Client message on a tracked link; returns what the pump should do with it. */
extern PktAction prepared_client_message(Client *c, Server *s, const ProtoHeader *hdr,
										 const uint8 *msg, uint32 avail);

/*
 * Client message while no server is linked (transaction/statement pooling):
 * PKT_CONSUME when pgbun answered it itself - a named Parse of a statement a
 * server of this pool already accepted, a Close of a statement, a Sync or a
 * Flush with nothing in flight - else PKT_STOP (a server is needed). Keeps a
 * client that only prepares from waiting for a server.
 */
extern PktAction prepared_unlinked_message(Client *c, const ProtoHeader *hdr, const uint8 *msg,
										   uint32 avail);

/*
 * Server message on a tracked link. Returns PKT_FORWARD when the normal
 * handling should go on, PKT_CONSUME for a hidden answer, PKT_STOP when a
 * pgbun-made answer must go out first, PKT_CLOSE when the stream no longer
 * matches the requests (the caller closes both ends).
 */
extern PktAction prepared_server_message(Server *s, const ProtoHeader *hdr, const uint8 *msg,
										 uint32 avail);

/* Send pgbun-made answers now at the head of the queue, if the stream allows. */
extern void prepared_emit_answers(Server *s);
extern bool prepared_answers_waiting(Server *s);
/* True when no request on the server is unanswered. */
extern bool prepared_queue_empty(Server *s);

extern void prepared_server_free(Server *s);
/* The server dropped every statement (reset query): forget them. */
extern void prepared_server_forget_all(Server *s);
extern void prepared_client_free(Client *c);
/* A pool is freed: statements forget that its servers accepted them. */
extern void prepared_pool_forget(const Pool *pool);

#endif							/* PGBUN_PREPARED_H */

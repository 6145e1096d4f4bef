/*
 * prepared.h - protocol-level named prepared statements in transaction and
 * statement pooling, on top of the protocol tracker.
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
 * For those answers to land in the right place, every request sent on the
 * server is an entry of its protocol tracker (track.h), tagged with what
 * pgbun needs to know when it is answered, fails or is skipped
 * (prepared_entry_gone). pgbun's own answers are tracker entries too, given
 * when they reach the head.
 *
 * The unnamed statement: a client's unnamed Parse (up to the buffer size,
 * 16 kB) is kept, and Parsed again (hidden) on a server that does not have
 * it before the client's Bind or Describe of it, until the client replaces
 * it (its next unnamed Parse, a simple Query, a Close).
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

/* Send pgbun-made answers now at the head of the tracker, if the stream allows. */
extern void prepared_emit_answers(Server *s);
extern bool prepared_answers_waiting(Server *s);
/* Is the server's next answer owed to pgbun's poison message (fail_in_place)? */
extern bool prepared_hides_error(Server *s);
/* Queue pgbun's error for that poison message to the client. false: no room. */
extern bool prepared_put_refusal(Server *s);

/*
 * A server's ErrorResponse (the first avail bytes of it) about a client's
 * named statement, under pgbun's name for it ("pgbun_7")? The client must
 * see its own name: prepared_put_renamed_error queues the error with the
 * name replaced (false: no room, or no name for it any more).
 */
extern bool prepared_error_names_statement(Server *s, const uint8 *msg, uint32 avail);
extern bool prepared_put_renamed_error(Server *s, const uint8 *msg, uint32 size);

/* The tracker's callback for entries leaving it (server_login.c sets it up). */
extern void prepared_entry_gone(void *owner, Track *t, TrackEntry *e, TrackFate fate);

/* A CommandComplete tag of the client's traffic (DISCARD ALL, DEALLOCATE ...). */
extern void prepared_command_complete(Server *s, const char *tag, void *mark);

extern void prepared_server_free(Server *s);
/* The server dropped every statement (reset query): forget them. */
extern void prepared_server_forget_all(Server *s);
extern void prepared_client_free(Client *c);
/* A pool is freed: statements forget that its servers accepted them. */
extern void prepared_pool_forget(const Pool *pool);

#endif							/* PGBUN_PREPARED_H */

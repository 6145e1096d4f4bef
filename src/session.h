/*
 * session.h - the session state each client owns: its connect-time
 * parameters (startup packet and options, validated against the server's
 * GUCs), what it wants now, and what each server connection holds, so a
 * server is brought to the client's values before the client's queries run
 * and a client's RESET / DISCARD ALL restores its own connect-time values.
 *
 * server.c and client_login.c call in here at the points named below;
 * params.c does the pure set arithmetic and SQL text.
 */
#ifndef PGBUN_SESSION_H
#define PGBUN_SESSION_H

#include "postgres.h"

#include "pooler.h"

/*
 * After authentication: check every startup setting the client gave
 * (exists, may be set by this role, value accepted), keep them as its
 * connect-time values. false: the client was closed with PostgreSQL's
 * SQLSTATE and a "pgbun:" message naming the parameter.
 */
extern bool session_client_login(Client *c, bool superuser);
/* The client is welcomed: it keeps (a reference to) the pool's welcome as its defaults. */
extern void session_client_welcomed(Client *c);
extern void session_client_free(Client *c);

/*
 * Linking: queue the hidden SET/RESET that brings the server to the
 * client's values. 1 queued, 0 nothing to do, -1 too long to apply.
 */
extern int	session_link(Server *s, Client *c);

/*
 * A ParameterStatus from the server (hidden: answering pgbun's own query).
 * Records it on the server and, when linked, as the client's wanted value.
 * Hidden: true = forward it to the client, whose value it changes. Not
 * hidden: true = hold it back, it is the server's own default after the
 * client's RESET / DISCARD ALL, and the restore that follows puts the
 * client's connect-time value back.
 */
extern bool session_parameter_status(Server *s, const uint8 *msg, uint32 size, bool hidden);
/* A CommandComplete of the linked client's traffic: SET / RESET / DISCARD ALL. */
extern void session_command_complete(Server *s, const char *tag);
/*
 * A ReadyForQuery of the linked client's traffic: restore its values once at
 * rest. true: a restore was queued; the ReadyForQuery waits for it, so the
 * client sees the ParameterStatus of its RESET before it, as from PostgreSQL.
 */
extern bool session_ready(Server *s);
/*
 * Before the held ReadyForQuery goes out: the held ParameterStatus whose
 * value the restore left standing (the client's own SET) go to the client.
 * false: the client's buffer is full (closed).
 */
extern bool session_release_held(Server *s);
static inline bool
session_has_held(const Server *s)
{
	return s->held_len > 0;
}
/* Before a transaction-mode release: true when a restore was queued (release waits for it). */
extern bool session_before_release(Server *s);
/*
 * The answers of the hidden query that reads back a client's own session
 * values (see session_ready): true: this hidden message was one of them
 * and is consumed here.
 */
extern bool session_learn_message(Server *s, const ProtoHeader *hdr, const uint8 *msg, uint32 size);
/* One of pgbun's hidden queries failed: what the server holds is unknown. */
extern void session_hidden_error(Server *s);
/* Session mode: server_reset_query was queued on a released server. */
extern void session_server_reset(Server *s, const char *query);
/* A new server login finished: its ParameterStatus becomes the pool's welcome. */
extern void session_server_login(Server *s);
/* The pool's welcome: the latest any worker's server login reported; NULL: none yet. */
extern struct ParamSet *session_pool_welcome(Pool *pool);
extern void session_server_free(Server *s);

#endif							/* PGBUN_SESSION_H */

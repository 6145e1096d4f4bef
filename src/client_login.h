/*
 * client_login.h - accept and login of clients (client_login.c).
 */
#ifndef PGBUN_CLIENT_LOGIN_H
#define PGBUN_CLIENT_LOGIN_H

#include "pooler.h"

/* Read and act on what a client in CL_LOGIN sent (startup, TLS, auth answers). */
extern void client_login_input(Client *c);
/* Accept a batch of connections. -1 (errno set): accept failed for lack of resources. */
extern int	client_accept(int listen_fd, bool unix_socket);
/* Send ParameterStatus, BackendKeyData and ReadyForQuery: the client is in. */
extern void client_login_finished(Client *c);
/* A login failed under pgbun.auth_failure_delay and its time has come: closed, true. */
extern bool client_login_fail_due(Client *c);
/* Refused at accept (c->refuse): send 53300 and close. */
extern void client_login_refuse(Client *c);
/* client_close of a refused client: its place among the refusals in progress is free. */
extern void client_login_refused_closed(Client *c);
/*
 * Its login waits for a kdf.c thread, an auth_query look-up, an auth_file
 * secret or the answer to its failure (auth_failure_delay): nothing is read.
 */
extern bool client_login_waiting(Client *c);
/* ... the answer to a failure, that is (nothing of it will ever run). */
extern bool client_login_failed(Client *c);
/* The client is being freed: cancel what its login still has running. */
extern void client_login_forget(Client *c);
struct RoleInfo;
struct AqRequest;

/* auth_query.c took the client's look-up (r, until answered or forgotten). */
extern void client_login_auth_query_started(Client *c, struct AqRequest *r);
/*
 * auth_query.c answers: the role as the target has it, or error (then
 * role is NULL and the client is closed with 08006 and the reason).
 */
extern void client_login_auth_query_done(Client *c, const struct RoleInfo *role, const char *error);
/* The database and user a client in login asked for (NULL: not known yet). */
extern void client_login_names(Client *c, const char **database, const char **user);
/* Milliseconds a client may take to log in (0: no limit); short for a refused one. */
extern int	client_login_deadline_ms(Client *c);

#endif							/* PGBUN_CLIENT_LOGIN_H */

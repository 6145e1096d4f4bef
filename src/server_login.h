/*
 * server_login.h - opening and logging in server connections (server_login.c).
 */
#ifndef PGBUN_SERVER_LOGIN_H
#define PGBUN_SERVER_LOGIN_H

#include "pooler.h"

/*
 * Open a new connection for the pool (counted already by the caller) to
 * host number host of its target; NULL on failure.
 */
extern Server *server_launch(struct Pool *pool, int host);
/* Open the pool's LISTEN connection (notify.c), outside the pool's counts. */
extern Server *server_launch_listener(struct Pool *pool);
struct AqPool;

/* Open an auth_query connection (auth_query.c) of the pool, counted already by the caller. */
extern Server *server_launch_auth_query(struct Pool *pool, int host, struct AqPool *authq);
/*
 * A connection or login failed for a reason of the host (connect refused,
 * closed, timeout, TLS, "starting up"): a host of a list is marked down and
 * the next one tried; the default target keeps server_login_retry per pool;
 * the pool's LISTEN connection tells notify.c. Closes s.
 */
extern void server_login_host_failed(Server *s, const char *reason);
/*
 * Socket event of a server: finish connect, TLS and login as far as they go.
 * true: the server is logged in and the event is for normal traffic.
 */
extern bool server_login_event(Server *s, uint32 events);
/* The connection is closing: drop its key derivation in flight (kdf.c), if any. */
extern void server_login_forget(Server *s);

#endif							/* PGBUN_SERVER_LOGIN_H */

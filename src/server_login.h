/*
 * server_login.h - opening and logging in server connections (server_login.c).
 */
#ifndef PGBUN_SERVER_LOGIN_H
#define PGBUN_SERVER_LOGIN_H

#include "pooler.h"

/* Open a new connection for the pool (counted already by the caller); NULL on failure. */
extern Server *server_launch(struct Pool *pool);
/* Open the pool's LISTEN connection (notify.c), outside the pool's counts. */
extern Server *server_launch_listener(struct Pool *pool);
/*
 * Socket event of a server: finish connect, TLS and login as far as they go.
 * true: the server is logged in and the event is for normal traffic.
 */
extern bool server_login_event(Server *s, uint32 events);

#endif							/* PGBUN_SERVER_LOGIN_H */

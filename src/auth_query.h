/*
 * auth_query.h - auth_user + auth_query: a client's verifier read from the
 * target's own catalog, for databases whose roles the local server does not
 * have (auth_query.c).
 *
 * A database entry with auth_user (or, for an entry with a host list, the
 * global pgbun.auth_user) checks its clients against what pgbun.auth_query
 * (or the entry's auth_query) returns on the entry's target, run as
 * auth_user with the client's name as the one parameter $1 of the extended
 * protocol. The look-up is asynchronous: the client waits in its login while
 * the loop serves everything else; the answer (or a failure) comes back
 * through client_login_auth_query_done().
 *
 * The auth connections are server connections of the pool (database,
 * auth_user): they count against its pool_size, max_db_connections and
 * max_user_connections and show in pgbun.servers, but no client is ever
 * linked to them. They log in with search_path = 'pg_catalog, pg_temp' in
 * the startup packet (which beats ALTER ROLE / DATABASE ... SET), never with
 * anything from the client (PgBouncer's CVE-2025-12819).
 */
#ifndef PGBUN_AUTH_QUERY_H
#define PGBUN_AUTH_QUERY_H

#include "pooler.h"

struct AqPool;
struct AqRequest;

/*
 * The role a database's clients are looked up as (its entry's auth_user, or
 * pgbun.auth_user for an entry with a host list) copied to out; false: the
 * database does not use auth_query.
 */
extern bool auth_query_user_for(const char *database, char *out /* NAMEDATALEN */ );

/*
 * Look user up for a client of database (in login). false: refused at once
 * (the client was closed with the reason); true: the answer comes later.
 */
extern bool auth_query_submit(Client *c, const char *database, const char *user);
/* The client goes away: its look-up (client_login_auth_query_started) is dropped. */
extern void auth_query_forget(struct AqRequest *r);
/* Timeouts, idle auth connections, retries (from the pool janitor). */
extern void auth_query_janitor(void);

/* Hooks of server.c / server_login.c for the auth connections (Server.authq set). */
extern dlist_head *auth_query_server_list(Server *s);
extern void auth_query_server_ready(Server *s);
extern void auth_query_server_event(Server *s, uint32 events);
extern void auth_query_server_login_error(Server *s, const uint8 *err, uint32 len);
extern void auth_query_server_closed(Server *s, const char *reason);

/* Call fn with every auth connection's server list (backend_sched.c walks all open servers). */
extern void auth_query_foreach_server_list(void (*fn) (dlist_head *list));

#endif							/* PGBUN_AUTH_QUERY_H */

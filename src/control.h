/*
 * control.h - the admin console's commands that act on every worker: KILL,
 * RECONNECT, DISABLE / ENABLE, KILL_CLIENT and SHUTDOWN (control.c).
 *
 * Like pause, they are declarative state in shared memory that each worker
 * converges on when its latch is set: "close what of database d was
 * connected before time t" is safe to apply twice, or late, and a worker
 * started afterwards has nothing from before t. Each request returns the
 * control generation it created; the console answers once every running
 * worker has applied it (control_done), so a command's effect is in place
 * when its CommandComplete arrives.
 */
#ifndef PGBUN_CONTROL_H
#define PGBUN_CONTROL_H

#include "postgres.h"

#include "datatype/timestamp.h"

struct Server;

/*
 * Requests (console.c, in any worker). Each returns the generation to wait
 * for, or 0 when the per-database table is full.
 */
extern uint64 control_kill_database(const char *database); /* NULL: every database */
extern uint64 control_reconnect_database(const char *database);	/* NULL: every database */
extern uint64 control_set_disabled(const char *database, bool disabled);
/* KILL_CLIENT: 0 when no client has this connection id. */
extern uint64 control_kill_client(uint64 conn_id);
extern void control_request_shutdown(void);

/* Has every running worker applied generation gen? */
extern bool control_done(uint64 gen);

/* Is this database disabled (new clients refused)? */
extern bool control_db_disabled(const char *database);
/* The disabled databases' names (SHOW DATABASES), at most max; their count. */
extern int	control_disabled_names(char (*names)[NAMEDATALEN], int max);
/* Must this server be closed instead of reused (RECONNECT since it connected)? */
extern bool control_server_outdated(const struct Server *s);

/*
 * In each worker's loop: apply the shared state to this worker's clients
 * and servers. true: SHUTDOWN was asked for (the worker exits, not restarted).
 */
extern bool control_apply(void);

#endif							/* PGBUN_CONTROL_H */

/*
 * console.h - PgBouncer's admin console, inside the worker (console.c).
 *
 * A client that logs in to the virtual database "pgbouncer" (or "pgbun") is
 * linked to the console instead of a server connection: it answers simple
 * queries (SHOW ..., PAUSE, RESUME, RELOAD, ...) with PgBouncer's column names
 * and types, read from the same shared memory as the SQL views.
 */
#ifndef PGBUN_CONSOLE_H
#define PGBUN_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

struct Client;

/* Is this database name the admin console ("pgbouncer" or "pgbun")? */
extern bool console_is_database(const char *database);

/*
 * Authentication succeeded for the console: refuse a role without the
 * privilege to SHOW (42501), else welcome the client and make it a console
 * client. show: pg_monitor's privileges; admin: pgbun_admin's (commands).
 */
extern void console_start(struct Client *c, const char *user, bool show, bool admin);

/* Socket event of a console client. */
extern void console_on_event(struct Client *c, uint32_t events);

/* From the loop: console clients waiting for a PAUSE to take effect. */
extern void console_tick(void);

/* The client is being freed. */
extern void console_free(struct Client *c);

#endif							/* PGBUN_CONSOLE_H */

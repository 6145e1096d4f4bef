/*
 * metrics.h - pgbun's HTTP port (pgbun.metrics_port): Prometheus metrics
 * (GET /metrics), the status page (GET /) and its data (GET /status.json).
 *
 * Worker 0 owns the port and serves it from its own loop, non-blocking, like
 * any other socket: bounded request heads, a bounded number of connections,
 * a deadline per connection. Every number comes from shared memory, so the
 * answers are cluster-wide whichever worker renders them.
 */
#ifndef PGBUN_METRICS_H
#define PGBUN_METRICS_H

#include "postgres.h"

extern int	pgbun_metrics_port;
extern char *pgbun_metrics_listen_addresses;

/* Define pgbun.metrics_* and the log settings (from pgbun_define_gucs). */
extern void metrics_define_gucs(void);
/* Open (start, after a reload: re-bind if the settings changed) or close the port. */
extern void metrics_reconfigure(void);
extern void metrics_close(void);
/* A readiness event for an IO_HTTP object (listener or connection). */
extern void metrics_on_event(void *obj, uint32 events);
/* Janitor: deadlines of HTTP connections, the stats log line. */
extern void metrics_janitor(void);

#endif							/* PGBUN_METRICS_H */

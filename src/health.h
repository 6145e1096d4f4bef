/*
 * health.h - the role and health of the hosts of pgbun.databases host lists.
 *
 * State lives in shared host slots (shmem.h PgbunHostSlot), one per
 * (host, port), so all workers share it. A host is learnt from its own
 * servers: the role from in_hot_standby / default_transaction_read_only
 * ParameterStatus at login and whenever the server reports a change (a
 * promoted standby reports in_hot_standby = off on a session only before
 * its next ReadyForQuery, so role probes ask when a target needs to know), and the
 * replica lag from a check on idle connections every
 * pgbun.server_check_delay. A connection or login that fails marks the host
 * down; it is tried again after server_login_retry, doubling per further
 * failure up to server_login_retry_max, with jitter (the wait is 75-100 %
 * of the doubled value), and one worker's attempt decides.
 */
#ifndef PGBUN_HEALTH_H
#define PGBUN_HEALTH_H

#include "postgres.h"

#include "shmem.h"

struct Server;

/* The slot of (host, port), created if need be; -1 when the table is full. */
extern int	health_host_slot(const char *host, int port, const char *addr_text);
/* May a new connection go to this host now? Claims a due retry (HOST_CHECKING) for the caller. */
extern bool health_host_usable(int hslot, bool claim);
/* A connection or login to it failed. */
extern void health_host_failed(int hslot, const char *why);
/* A login to it succeeded, with the role the server reported. */
extern void health_host_login(int hslot, int role, bool read_only);
/* A server reported its role (login or a ParameterStatus later). */
extern void health_host_role(int hslot, int role, bool read_only);
/* A check measured the replica lag (ms). */
extern void health_host_lag(int hslot, int lag_ms);
/* The role and read-only flag a server's reported parameters say. */
extern void health_server_role(const struct Server *s, int *role, bool *read_only);
/* Every ParameterStatus of a logged-in server passes here (role changes). */
extern void health_server_parameter(struct Server *s, const uint8 *msg, uint32 size);
/* The answer of a check query (a DataRow with the lag) on a server. */
extern void health_check_row(struct Server *s, const uint8 *msg, uint32 size);
/*
 * Role probes (a target with no host of the role it wants asks the others,
 * at most once per server_login_retry per host). health_probe: NONE (not
 * due, or down), PENDING (one is in flight: wait for it; this call may have
 * started it as a check on an idle server), LOGIN (claimed for the caller,
 * who opens a server to the host: its login tells).
 */
#define HEALTH_PROBE_NONE		0
#define HEALTH_PROBE_PENDING	1
#define HEALTH_PROBE_LOGIN		2
extern int	health_probe(int hslot, bool may_login);
/* A probe of the host is in flight (any worker). */
extern bool health_probe_pending(int hslot);
/* The host's probe answered (a login, a failure, a check): its waiters are kicked. */
extern void health_probe_done(int hslot);
/* A pooler query on the server was answered (its ReadyForQuery carried any role change). */
extern void health_server_answered(struct Server *s);
/* The server closes. */
extern void health_server_closed(struct Server *s);
/* From the janitor: checks on idle servers, closing servers on hosts their target no longer takes. */
extern void health_janitor(void);
/* The query a check runs on a server of this target (static text). */
extern const char *health_check_sql(bool want_lag);

#endif							/* PGBUN_HEALTH_H */

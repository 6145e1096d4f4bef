/*
 * dns.h - looking up pgbun.server_host without ever blocking the worker.
 *
 * c-ares runs inside the worker's own event loop: its sockets are watched in
 * the inner epoll set (IO_DNS objects) and its timeouts are driven by the
 * janitor; there is no thread. A server host that is a name (not an address
 * or a socket directory) is looked up when it is configured (start, reload),
 * again every pgbun.dns_max_ttl, and whenever a pool needs a server while
 * there is no address. Until the first answer there is no address: pools do
 * not open servers and clients wait as for any server. A failed first
 * lookup fails the waiting clients with 08006; a failed refresh keeps the
 * address in use.
 */
#ifndef PGBUN_DNS_H
#define PGBUN_DNS_H

#include "postgres.h"

#include <sys/socket.h>

/* Apply pgbun.dns_servers / pgbun.dns_timeout: (re)create the resolver when they changed. */
extern void dns_configure(void);
/* The server target is this name: look it up (now, or once the loop runs). */
extern void dns_resolve_server(const char *host, int port);
/* The server target is not a name (address or socket): nothing to look up. */
extern void dns_forget_server(void);
/* A pool wants a server and there is no address: start a lookup unless one runs. */
extern void dns_server_needed(void);
/* Readiness of one of the resolver's sockets. */
extern void dns_on_event(void *obj, uint32 events);
/* From the janitor: the resolver's timeouts, pgbun.dns_timeout, pgbun.dns_max_ttl. */
extern void dns_janitor(void);

/*
 * A host name of a pgbun.databases host list: looked up like the server
 * target, each on its own (at most 64 names). Register returns its handle
 * (the same for the same name and port), -1 when the table is full.
 * dns_name_address copies the address in use: 1, or 0 while the first
 * lookup runs, -1 when it failed (a new lookup starts, at most once a
 * second). Every answer kicks the pools (pool_target_resolved).
 */
extern int	dns_name_register(const char *name, int port);
extern int	dns_name_address(int idx, struct sockaddr_storage *addr, socklen_t *len);
/* Around a rebuild of the targets: forget the names no target registered again. */
extern void dns_names_unmark(void);
extern void dns_names_sweep(void);

/*
 * Addresses of a name from /etc/hosts only, never DNS (a file read; for the
 * listen addresses, which are opened synchronously): IPv4 and IPv6, with the
 * port set, at most max. "localhost" missing from the file is the loopback
 * address. Returns how many.
 */
extern int	dns_hosts_lookup(const char *name, int port, struct sockaddr_storage *addrs,
							 socklen_t *lens, int max);

#endif							/* PGBUN_DNS_H */

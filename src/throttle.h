/*
 * throttle.h - per-address delay of failed logins (pgbun.auth_failure_delay).
 */
#ifndef PGBUN_THROTTLE_H
#define PGBUN_THROTTLE_H

#include "postgres.h"

#include <sys/socket.h>

#include "utils/timestamp.h"

/*
 * Count a failed login from addr; returns how long (ms) to hold the answer:
 * base_ms doubled for each earlier failure from there within a minute, at
 * most 30 s; 0 when base_ms is 0.
 */
extern int	throttle_failure(const struct sockaddr_storage *addr, bool unix_socket, int base_ms,
							 TimestampTz now);
/* A successful login from addr clears its count. */
extern void throttle_success(const struct sockaddr_storage *addr, bool unix_socket, TimestampTz now);

#endif							/* PGBUN_THROTTLE_H */

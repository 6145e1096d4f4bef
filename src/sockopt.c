/*
 * sockopt.c - TCP socket options from the settings: keepalives and
 * TCP_USER_TIMEOUT per connection (config_set_keepalive), TCP_DEFER_ACCEPT
 * per listener (config_set_defer_accept).
 *
 * As PgBouncer: pgbun.tcp_keepalive turns SO_KEEPALIVE on (or explicitly
 * off), and pgbun.tcp_keepidle / tcp_keepintvl / tcp_keepcnt /
 * tcp_user_timeout set their option only when not 0, leaving the operating
 * system's value otherwise. Applied to every accepted client TCP socket and
 * every server TCP socket when it is made, so a reload changes new
 * connections only. A vanished client (cable cut, VM gone) is then noticed by
 * the kernel and closed, and stops holding a server connection.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "config.h"
#include "settings.h"

/* setsockopt that logs a failure (none is expected on a TCP socket). */
static void
set_int_option(int fd, int level, int name, int value, const char *label)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
		ereport(LOG, (errmsg("pgbun: could not set %s on a socket: %m", label)));
}

void
config_set_keepalive(int fd, bool tcp)
{
	if (!tcp)
		return;
	set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, pgbun_cfg->tcp_keepalive ? 1 : 0, "SO_KEEPALIVE");
	if (pgbun_cfg->tcp_keepalive)
	{
#ifdef TCP_KEEPIDLE
		if (pgbun_cfg->tcp_keepidle > 0)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, pgbun_cfg->tcp_keepidle, "TCP_KEEPIDLE");
#endif
#ifdef TCP_KEEPINTVL
		if (pgbun_cfg->tcp_keepintvl > 0)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, pgbun_cfg->tcp_keepintvl, "TCP_KEEPINTVL");
#endif
#ifdef TCP_KEEPCNT
		if (pgbun_cfg->tcp_keepcnt > 0)
			set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, pgbun_cfg->tcp_keepcnt, "TCP_KEEPCNT");
#endif
	}
#ifdef TCP_USER_TIMEOUT
	if (pgbun_cfg->tcp_user_timeout > 0)
		set_int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, pgbun_cfg->tcp_user_timeout, "TCP_USER_TIMEOUT");
#endif
}

/*
 * As PgBouncer's tcp_defer_accept: the kernel hands a connection over once
 * its first bytes (SSLRequest, startup packet, TLS ClientHello) are in, so
 * the read right after accept finds them. Set on every reload (0 turns it
 * off): it affects connections still to come only.
 */
void
config_set_defer_accept(int fd)
{
#ifdef TCP_DEFER_ACCEPT
	set_int_option(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, pgbun_cfg->tcp_defer_accept, "TCP_DEFER_ACCEPT");
#endif
}

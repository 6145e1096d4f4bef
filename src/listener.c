/*
 * listener.c - open, re-bind and close the listening sockets (listener.h).
 *
 * Every worker binds the TCP addresses with SO_REUSEPORT, so the kernel
 * spreads new connections across workers. Unix sockets cannot be shared that
 * way; worker 0 owns them. A reload that changes the addresses opens the new
 * set first and closes the old one only if that worked, so a typo never
 * leaves the pooler deaf. Listen addresses are IP addresses, '*' or names
 * from /etc/hosts: nothing here waits for DNS.
 */
#include "postgres.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nodes/pg_list.h"
#include "postmaster/postmaster.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "config.h"
#include "dns.h"
#include "listener.h"
#include "pooler.h"

#define MAX_LISTENERS 32

typedef struct Listener
{
	IoObj		io;				/* IO_LISTENER; first member */
	int			fd;
	bool		unix_socket;
	char		path[MAXPGPATH];	/* Unix socket file we created */
} Listener;

static Listener *listeners[MAX_LISTENERS];
static int	n_listeners = 0;

/* The settings the current listeners were opened with. */
static char *open_addresses = NULL;
static char *open_socket_dirs = NULL;
static int	open_port = 0;

/* Paused after an accept failure for lack of resources (listeners_pause). */
#define PAUSE_MIN_MS 100
#define PAUSE_MAX_MS 5000

static bool paused = false;
static int	pause_ms = 0;
static TimestampTz resume_at = 0;

int
listeners_count(void)
{
	return n_listeners;
}

static Listener *
listener_new(int fd, bool unix_socket, const char *path)
{
	Listener   *l = calloc(1, sizeof(Listener));

	if (!l)
	{
		close(fd);
		return NULL;
	}
	l->io.kind = IO_LISTENER;
	l->fd = fd;
	l->unix_socket = unix_socket;
	if (path)
		strlcpy(l->path, path, sizeof(l->path));
	return l;
}

static void
listener_free(Listener *l)
{
	poll_remove(l->fd);
	close(l->fd);
	if (l->path[0])
		unlink(l->path);
	free(l);
}

static Listener *
open_tcp(struct addrinfo *ai)
{
	int			fd;
	int			one = 1;
	char		host[NI_MAXHOST] = "?";

	getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
	{
		ereport(WARNING, (errmsg("pgbun: could not create socket for %s: %m", host)));
		return NULL;
	}
	(void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (pgbun_workers > 1)
		(void) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		(void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0)
	{
		ereport(WARNING, (errmsg("pgbun: could not listen on %s port %d: %m", host, pgbun_port)));
		close(fd);
		return NULL;
	}
	ereport(LOG, (errmsg("pgbun: listening on %s port %d", host, pgbun_port)));
	return listener_new(fd, false, NULL);
}

static Listener *
open_unix(const char *dir)
{
	struct sockaddr_un sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, pgbun_port) >=
		(int) sizeof(sun.sun_path))
	{
		ereport(WARNING, (errmsg("pgbun: Unix socket path in \"%s\" is too long", dir)));
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;

	/*
	 * A file already there: in use if something listens on it, else a
	 * leftover of ours. The probe is non-blocking: a blocking connect to a
	 * listener whose backlog is full would hang the worker until that
	 * process accepts. Connected, or refused for a full backlog (EAGAIN):
	 * someone listens. Refused outright or no file: free to take.
	 */
	if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) == 0 ||
		errno == EAGAIN || errno == EINPROGRESS)
	{
		ereport(WARNING, (errmsg("pgbun: Unix socket \"%s\" is in use by another process", sun.sun_path)));
		close(fd);
		return NULL;
	}
	close(fd);
	unlink(sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (bind(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0 || listen(fd, 4096) < 0)
	{
		ereport(WARNING, (errmsg("pgbun: could not listen on Unix socket \"%s\": %m", sun.sun_path)));
		close(fd);
		return NULL;
	}
	(void) chmod(sun.sun_path, 0777);
	ereport(LOG, (errmsg("pgbun: listening on Unix socket \"%s\"", sun.sun_path)));
	return listener_new(fd, true, sun.sun_path);
}

/*
 * A listen address that is a name: its addresses from /etc/hosts (never
 * DNS, see build_listeners). Returns how many listeners it opened.
 */
static int
open_tcp_from_hosts_file(const char *host, Listener **out, int max, bool *complete)
{
	struct sockaddr_storage addrs[8];
	socklen_t	lens[8];
	int			k = dns_hosts_lookup(host, pgbun_port, addrs, lens, lengthof(addrs));
	int			n = 0;

	if (k == 0)
	{
		ereport(WARNING,
				(errmsg("pgbun: listen address \"%s\" is neither an IP address nor a name in /etc/hosts", host),
				 errhint("pgbun does not ask DNS for pgbun.listen_addresses; give the address.")));
		*complete = false;
		return 0;
	}
	for (int i = 0; i < k && n < max; i++)
	{
		struct addrinfo ai;
		Listener   *l;

		memset(&ai, 0, sizeof(ai));
		ai.ai_family = addrs[i].ss_family;
		ai.ai_socktype = SOCK_STREAM;
		ai.ai_addr = (struct sockaddr *) &addrs[i];
		ai.ai_addrlen = lens[i];
		l = open_tcp(&ai);
		if (l)
			out[n++] = l;
		else
			*complete = false;
	}
	return n;
}

/* Split a comma-separated GUC list (copied: SplitIdentifierString scribbles). */
static List *
split_list(const char *value)
{
	char	   *copy = pstrdup(value ? value : "");
	List	   *items = NIL;

	if (!SplitDirectoriesString(copy, ',', &items))
	{
		ereport(WARNING, (errmsg("pgbun: invalid list syntax: \"%s\"", value)));
		return NIL;
	}
	return items;
}

/* Build a listener set for the current settings into out[]; returns how many. */
static int
build_listeners(Listener **out, int max, bool *complete)
{
	int			n = 0;
	ListCell   *lc;
	List	   *addrs = split_list(pgbun_listen_addresses);
	const char *dirs_setting = (pgbun_unix_socket_directories && pgbun_unix_socket_directories[0]) ?
		pgbun_unix_socket_directories : Unix_socket_directories;
	List	   *dirs = split_list(dirs_setting);
	char		portstr[16];

	*complete = true;
	snprintf(portstr, sizeof(portstr), "%d", pgbun_port);
	foreach(lc, addrs)
	{
		const char *host = lfirst(lc);
		struct addrinfo hints;
		struct addrinfo *res = NULL;
		int			rc;

		/*
		 * Only IP addresses, '*' and names in /etc/hosts (localhost): the
		 * listeners are opened synchronously, so DNS is never asked here.
		 */
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
		rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
		if (rc == EAI_NONAME)
		{
			n += open_tcp_from_hosts_file(host, out + n, max - n, complete);
			continue;
		}
		if (rc != 0)
		{
			ereport(WARNING, (errmsg("pgbun: could not resolve listen address \"%s\": %s", host, gai_strerror(rc))));
			*complete = false;
			continue;
		}
		for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next)
		{
			Listener   *l = open_tcp(ai);

			if (l)
				out[n++] = l;
			else
				*complete = false;
		}
		freeaddrinfo(res);
	}
	if (W->id == 0)
	{
		foreach(lc, dirs)
		{
			Listener   *l;

			if (n >= max)
				break;
			l = open_unix((const char *) lfirst(lc));
			if (l)
				out[n++] = l;
			else
				*complete = false;
		}
	}
	return n;
}

static void
remember_settings(void)
{
	free(open_addresses);
	free(open_socket_dirs);
	open_addresses = strdup(pgbun_listen_addresses ? pgbun_listen_addresses : "");
	open_socket_dirs = strdup(pgbun_unix_socket_directories ? pgbun_unix_socket_directories : "");
	open_port = pgbun_port;
}

static void
install(Listener **set, int n)
{
	paused = false;				/* a new set is watched right away */
	for (int i = 0; i < n; i++)
	{
		listeners[i] = set[i];
		if (poll_add_listener(set[i]->fd, &set[i]->io) < 0)
			ereport(WARNING, (errmsg("pgbun: could not watch a listening socket: %m")));
	}
	n_listeners = n;
}

void
listeners_open(void)
{
	Listener   *set[MAX_LISTENERS];
	bool		complete;
	int			n = build_listeners(set, MAX_LISTENERS, &complete);

	install(set, n);
	remember_settings();
}

void
listeners_reconfigure(void)
{
	Listener   *set[MAX_LISTENERS];
	bool		complete;
	int			n;
	bool		changed = open_port != pgbun_port ||
		strcmp(open_addresses ? open_addresses : "", pgbun_listen_addresses ? pgbun_listen_addresses : "") != 0 ||
		strcmp(open_socket_dirs ? open_socket_dirs : "",
			   pgbun_unix_socket_directories ? pgbun_unix_socket_directories : "") != 0;

	if (!changed)
		return;
	/* Unix socket files of the same path must go before the new bind */
	if (open_port == pgbun_port)
	{
		for (int i = 0; i < n_listeners; i++)
			if (listeners[i]->unix_socket)
			{
				listener_free(listeners[i]);
				listeners[i] = NULL;
			}
	}
	/* TCP with the same address and port would clash: close everything first then */
	if (open_port == pgbun_port)
	{
		for (int i = 0; i < n_listeners; i++)
			if (listeners[i])
				listener_free(listeners[i]);
		n_listeners = 0;
		n = build_listeners(set, MAX_LISTENERS, &complete);
		install(set, n);
		remember_settings();
		return;
	}
	n = build_listeners(set, MAX_LISTENERS, &complete);
	if (n == 0 && (pgbun_listen_addresses[0] != '\0'))
	{
		ereport(WARNING, (errmsg("pgbun: none of the new listen addresses could be opened; keeping the old ones")));
		return;
	}
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i])
			listener_free(listeners[i]);
	install(set, n);
	remember_settings();
}

void
listeners_close(void)
{
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i])
			listener_free(listeners[i]);
	n_listeners = 0;
}

/*
 * Accept failures for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM)
 * leave the connection in the backlog, so a level-triggered listener would
 * report it again at once: the worker would spin and flood the log. Instead
 * every listener leaves the poll set for a while (doubling up to
 * PAUSE_MAX_MS while it keeps failing) and listeners_resume_due() puts them
 * back; one log line per pause.
 */

static void
listeners_pause(int err)
{
	pause_ms = pause_ms ? Min(pause_ms * 2, PAUSE_MAX_MS) : PAUSE_MIN_MS;
	errno = err;
	ereport(LOG,
			(errmsg("pgbun: accept failed: %m; not accepting new connections for %d ms", pause_ms),
			 err == EMFILE || err == ENFILE ?
			 errhint("Raise the file descriptor limit of the PostgreSQL server or lower pgbun.max_client_conn.") : 0));
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i])
			poll_remove(listeners[i]->fd);
	paused = true;
	resume_at = W->now + (int64) pause_ms * 1000;
}

void
listeners_resume_due(void)
{
	if (!paused || W->now < resume_at)
		return;
	paused = false;
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i] && poll_add_listener(listeners[i]->fd, &listeners[i]->io) < 0)
			ereport(WARNING, (errmsg("pgbun: could not watch a listening socket: %m")));
}

void
listener_on_event(void *obj)
{
	Listener   *l = obj;

	if (paused)
		return;					/* an event fetched before the pause */
	if (client_accept(l->fd, l->unix_socket) < 0)
	{
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			listeners_pause(errno);
		else
			ereport(LOG, (errmsg("pgbun: accept failed: %m")));
	}
	else if (!paused)
		pause_ms = 0;			/* accepting again: the next failure starts a short pause */
}

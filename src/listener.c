/*
 * listener.c - open, re-bind and close the listening sockets (listener.h).
 *
 * Every worker binds the TCP addresses with SO_REUSEPORT, so the kernel
 * spreads new connections across workers. Unix sockets cannot be shared that
 * way; worker 0 owns them. A reload that changes the settings works out the
 * wanted set (every address each name resolves to, every socket path), keeps
 * the listeners already bound to one of them, binds the others, and closes
 * the listeners no longer wanted only when the whole new set could be opened:
 * a typo, a name that does not resolve or an address this machine does not
 * have is logged and leaves the old listeners serving. Listen addresses are
 * IP addresses, '*' or names from /etc/hosts: nothing here waits for DNS.
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
#include "client_login.h"
#include "pooler.h"
#include "settings.h"

#define MAX_LISTENERS 32

typedef struct Listener
{
	IoObj		io;				/* IO_LISTENER; first member */
	int			fd;
	bool		unix_socket;
	char		path[MAXPGPATH];	/* Unix socket file we created */
	struct sockaddr_storage addr;	/* TCP: the address bound */
	socklen_t	addr_len;
} Listener;

/* One listener the settings ask for (build_wanted). */
typedef struct Wanted
{
	bool		unix_socket;
	char		dir[MAXPGPATH]; /* Unix: the directory */
	char		path[MAXPGPATH];	/* Unix: the socket file */
	struct addrinfo ai;			/* TCP: family, type, protocol ... */
	struct sockaddr_storage addr;	/* ... and the address (ai.ai_addr points here) */
	Listener   *l;				/* open, kept or new; NULL: could not open */
	int			err;			/* errno of the failed bind */
} Wanted;

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

/* Log why a TCP listener could not be opened. */
static void
warn_listen_failed(const struct addrinfo *ai, int err)
{
	char		host[NI_MAXHOST] = "?";

	getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	errno = err;
	ereport(WARNING, (errmsg("pgbun: could not listen on %s port %d: %m", host, pgbun_cfg->port)));
}

/*
 * Open a TCP listener; NULL with *err set if it cannot be. quiet_in_use: an
 * EADDRINUSE is not logged (the caller may make way and try again).
 */
static Listener *
open_tcp(struct addrinfo *ai, int *err, bool quiet_in_use)
{
	int			fd;
	int			one = 1;
	char		host[NI_MAXHOST] = "?";
	Listener   *l;

	getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
	{
		*err = errno;
		ereport(WARNING, (errmsg("pgbun: could not create socket for %s: %m", host)));
		return NULL;
	}
	(void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (pgbun_workers > 1)
		(void) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		(void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	config_set_defer_accept(fd);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0)
	{
		*err = errno;
		if (!(quiet_in_use && *err == EADDRINUSE))
			warn_listen_failed(ai, *err);
		close(fd);
		return NULL;
	}
	ereport(LOG, (errmsg("pgbun: listening on %s port %d", host, pgbun_cfg->port)));
	l = listener_new(fd, false, NULL);
	if (l)
	{
		memcpy(&l->addr, ai->ai_addr, ai->ai_addrlen);
		l->addr_len = ai->ai_addrlen;
	}
	return l;
}

static Listener *
open_unix(const char *dir)
{
	struct sockaddr_un sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, pgbun_cfg->port) >=
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

/* Add a TCP address to the wanted set unless it is there already (names may overlap). */
static int
want_tcp(Wanted *want, int n, int max, const struct addrinfo *ai)
{
	for (int i = 0; i < n; i++)
		if (!want[i].unix_socket && want[i].ai.ai_addrlen == ai->ai_addrlen &&
			memcmp(&want[i].addr, ai->ai_addr, ai->ai_addrlen) == 0)
			return n;
	if (n >= max || ai->ai_addrlen > sizeof(want[n].addr))
		return n;
	memset(&want[n], 0, sizeof(Wanted));
	want[n].ai = *ai;
	memcpy(&want[n].addr, ai->ai_addr, ai->ai_addrlen);
	want[n].ai.ai_addr = (struct sockaddr *) &want[n].addr;
	want[n].ai.ai_next = NULL;
	want[n].ai.ai_canonname = NULL;
	return n + 1;
}

/*
 * A listen address that is a name: its addresses from /etc/hosts (never
 * DNS, see build_wanted) added to want[]; returns the new count.
 */
static int
want_hosts_file(Wanted *want, int n, int max, const char *host, bool *complete)
{
	struct sockaddr_storage addrs[8];
	socklen_t	lens[8];
	int			k = dns_hosts_lookup(host, pgbun_cfg->port, addrs, lens, lengthof(addrs));

	if (k == 0)
	{
		ereport(WARNING,
				(errmsg("pgbun: could not resolve listen address \"%s\": neither an IP address nor a name in /etc/hosts", host),
				 errhint("pgbun does not ask DNS for pgbun.listen_addresses; give the address.")));
		*complete = false;
		return n;
	}
	for (int i = 0; i < k; i++)
	{
		struct addrinfo ai;

		memset(&ai, 0, sizeof(ai));
		ai.ai_family = addrs[i].ss_family;
		ai.ai_socktype = SOCK_STREAM;
		ai.ai_addr = (struct sockaddr *) &addrs[i];
		ai.ai_addrlen = lens[i];
		n = want_tcp(want, n, max, &ai);
	}
	return n;
}

/*
 * Work out the listeners the current settings ask for into want[]; returns
 * how many. *complete is cleared (and the reason logged) when a name does not
 * resolve or the list is malformed.
 */
static int
build_wanted(Wanted *want, int max, bool *complete)
{
	int			n = 0;
	ListCell   *lc;
	List	   *addrs = split_list(pgbun_cfg->listen_addresses);
	const char *dirs_setting = (pgbun_cfg->unix_socket_directories && pgbun_cfg->unix_socket_directories[0]) ?
		pgbun_cfg->unix_socket_directories : Unix_socket_directories;
	List	   *dirs = split_list(dirs_setting);
	char		portstr[16];

	*complete = true;
	if ((addrs == NIL && pgbun_cfg->listen_addresses && pgbun_cfg->listen_addresses[0]) ||
		(dirs == NIL && dirs_setting && dirs_setting[0]))
		*complete = false;		/* split_list said why */
	snprintf(portstr, sizeof(portstr), "%d", pgbun_cfg->port);
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
			n = want_hosts_file(want, n, max, host, complete);
			continue;
		}
		if (rc != 0)
		{
			ereport(WARNING, (errmsg("pgbun: could not resolve listen address \"%s\": %s", host, gai_strerror(rc))));
			*complete = false;
			continue;
		}
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
			n = want_tcp(want, n, max, ai);
		freeaddrinfo(res);
	}
	if (W->id == 0)
	{
		foreach(lc, dirs)
		{
			const char *dir = lfirst(lc);

			if (n >= max)
				break;
			memset(&want[n], 0, sizeof(Wanted));
			want[n].unix_socket = true;
			strlcpy(want[n].dir, dir, sizeof(want[n].dir));
			snprintf(want[n].path, sizeof(want[n].path), "%s/.s.PGSQL.%d", dir, pgbun_cfg->port);
			n++;
		}
	}
	return n;
}

/* Is l the listener w asks for? */
static bool
listener_matches(const Listener *l, const Wanted *w)
{
	if (l->unix_socket != w->unix_socket)
		return false;
	if (l->unix_socket)
		return strcmp(l->path, w->path) == 0;
	return l->addr_len == w->ai.ai_addrlen && memcmp(&l->addr, &w->addr, l->addr_len) == 0;
}

/* Open what w asks for; false (w->err set for TCP) if it could not be. */
static bool
open_wanted(Wanted *w, bool quiet_in_use)
{
	w->err = 0;
	w->l = w->unix_socket ? open_unix(w->dir) : open_tcp(&w->ai, &w->err, quiet_in_use);
	return w->l != NULL;
}

static void
remember_settings(void)
{
	free(open_addresses);
	free(open_socket_dirs);
	open_addresses = strdup(pgbun_cfg->listen_addresses ? pgbun_cfg->listen_addresses : "");
	open_socket_dirs = strdup(pgbun_cfg->unix_socket_directories ? pgbun_cfg->unix_socket_directories : "");
	open_port = pgbun_cfg->port;
}

static void
forget_settings(void)
{
	free(open_addresses);
	free(open_socket_dirs);
	open_addresses = open_socket_dirs = NULL;
	open_port = 0;
}

/*
 * Make the listeners match the settings: keep those still wanted, open the
 * missing ones, close the unwanted ones only if everything wanted is open.
 * A TCP bind that failed with EADDRINUSE may clash with an unwanted
 * listener of ours (127.0.0.1 -> '*'): then those are closed and the bind
 * retried, and reopened should it fail again.
 */
static void
apply_settings(void)
{
	Wanted	   *want = palloc(MAX_LISTENERS * sizeof(Wanted));
	bool		keep[MAX_LISTENERS] = {0};
	Listener   *next[MAX_LISTENERS];
	bool		names_ok;
	bool		complete;
	bool		in_use = false;
	int			n_want = build_wanted(want, MAX_LISTENERS, &names_ok);
	int			n = 0;

	complete = names_ok;

	for (int i = 0; i < n_want; i++)
	{
		for (int j = 0; j < n_listeners; j++)
			if (listeners[j] && !keep[j] && listener_matches(listeners[j], &want[i]))
			{
				keep[j] = true;
				want[i].l = listeners[j];
				break;
			}
		if (!want[i].l && !open_wanted(&want[i], true))
		{
			complete = false;
			in_use |= (want[i].err == EADDRINUSE);
		}
	}
	if (in_use)
	{
		bool		ours = false;

		for (int j = 0; j < n_listeners; j++)
			ours |= (listeners[j] && !keep[j] && !listeners[j]->unix_socket);
		if (!ours)
		{
			/* nothing of ours in the way: another process has the address */
			for (int i = 0; i < n_want; i++)
				if (!want[i].l && want[i].err == EADDRINUSE)
					warn_listen_failed(&want[i].ai, EADDRINUSE);
			in_use = false;
		}
	}

	if (!complete && in_use)
	{
		Wanted	   *gone = palloc(MAX_LISTENERS * sizeof(Wanted));
		int			n_gone = 0;

		/* make way: close our unwanted TCP listeners, remembering what they were */
		for (int j = 0; j < n_listeners; j++)
			if (listeners[j] && !keep[j] && !listeners[j]->unix_socket)
			{
				memset(&gone[n_gone], 0, sizeof(Wanted));
				gone[n_gone].ai.ai_family = listeners[j]->addr.ss_family;
				gone[n_gone].ai.ai_socktype = SOCK_STREAM;
				gone[n_gone].ai.ai_addrlen = listeners[j]->addr_len;
				memcpy(&gone[n_gone].addr, &listeners[j]->addr, listeners[j]->addr_len);
				gone[n_gone].ai.ai_addr = (struct sockaddr *) &gone[n_gone].addr;
				n_gone++;
				listener_free(listeners[j]);
				listeners[j] = NULL;
			}
		for (int i = 0; i < n_want; i++)
			if (!want[i].l && want[i].err == EADDRINUSE)
				(void) open_wanted(&want[i], false);
		complete = names_ok;
		for (int i = 0; i < n_want; i++)
			if (!want[i].l)
				complete = false;
		if (!complete)
		{
			/* still not all there: put the old ones back, as far as they go */
			for (int g = 0; g < n_gone && n_listeners < MAX_LISTENERS; g++)
				if (open_wanted(&gone[g], false))
				{
					for (int j = 0; j < n_listeners; j++)
						if (!listeners[j])
						{
							listeners[j] = gone[g].l;
							keep[j] = false;
							gone[g].l = NULL;
							break;
						}
					if (gone[g].l)
						listeners[n_listeners++] = gone[g].l;
				}
		}
		pfree(gone);
	}

	/* the new set: what is wanted and open, plus (if incomplete) the old ones not wanted */
	for (int i = 0; i < n_want; i++)
		if (want[i].l && n < MAX_LISTENERS)
		{
			bool		is_new = true;

			for (int j = 0; j < n_listeners; j++)
				if (listeners[j] == want[i].l)
					is_new = false;
			if (is_new && !paused && poll_add_listener(want[i].l->fd, &want[i].l->io) < 0)
				ereport(WARNING, (errmsg("pgbun: could not watch a listening socket: %m")));
			next[n++] = want[i].l;
		}
	for (int j = 0; j < n_listeners; j++)
	{
		if (!listeners[j] || keep[j])
			continue;
		if (complete || n >= MAX_LISTENERS)
			listener_free(listeners[j]);
		else
		{
			/* a re-opened old listener is not in the poll set yet */
			if (!paused)
			{
				poll_remove(listeners[j]->fd);
				(void) poll_add_listener(listeners[j]->fd, &listeners[j]->io);
			}
			next[n++] = listeners[j];
		}
	}
	memcpy(listeners, next, n * sizeof(Listener *));
	n_listeners = n;
	pfree(want);

	if (complete)
		remember_settings();
	else
	{
		/* not applied in full: try again at the next reload */
		forget_settings();
		ereport(LOG, (errmsg("pgbun: listen settings (pgbun.listen_addresses = '%s', port %d) could not be applied in full; %d listening sockets are open, those no longer wanted are kept until the settings work",
							 pgbun_cfg->listen_addresses ? pgbun_cfg->listen_addresses : "", pgbun_cfg->port, n_listeners)));
	}
}

void
listeners_open(void)
{
	apply_settings();
}

void
listeners_reconfigure(void)
{
	bool		changed = open_addresses == NULL || open_port != pgbun_cfg->port ||
		strcmp(open_addresses, pgbun_cfg->listen_addresses ? pgbun_cfg->listen_addresses : "") != 0 ||
		strcmp(open_socket_dirs ? open_socket_dirs : "",
			   pgbun_cfg->unix_socket_directories ? pgbun_cfg->unix_socket_directories : "") != 0;

	if (changed)
		apply_settings();
	/* pgbun.tcp_defer_accept may have changed: the listeners that stay get it too */
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i] && !listeners[i]->unix_socket)
			config_set_defer_accept(listeners[i]->fd);
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

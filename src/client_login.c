/*
 * client_login.c - a client's way in: accept, the startup packet (with TLS
 * negotiation), hba, authentication (SCRAM, md5, password, cert, peer,
 * trust) and the welcome that ends the login.
 *
 * The role comes from the local catalog (auth.c), pgbun.auth_file
 * (auth_file.c) or, for a database with auth_user, auth_query on its target
 * (auth_query.c: the login waits in STEP_AUTH_QUERY, reading nothing, until
 * client_login_auth_query_done). An auth_file plain password's SCRAM secret
 * and a cleartext password's check are PBKDF2 runs on kdf.c's threads: the
 * login waits in STEP_AUTH_SECRET or STEP_PASSWORD_CHECK meanwhile.
 *
 * During login a client owns a malloc'd AuthState (freed when the login
 * ends); from then on client.c forwards its traffic.
 */
#include "postgres.h"

#include <pwd.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "auth.h"
#include "cancel.h"
#include "client_login.h"
#include "config.h"
#include "counters.h"
#include "log.h"
#include "console.h"
#include "control.h"
#include "hba.h"
#include "http_sql.h"
#include "kdf.h"
#include "params.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "session.h"
#include "settings.h"
#include "target.h"
#include "auth_file.h"
#include "auth_query.h"
#include "startup_options.h"
#include "throttle.h"
#include "tls.h"
#include "websocket.h"


/* PostgreSQL's own limit on a startup packet. */
#define STARTUP_PACKET_MAX 10000

typedef enum LoginStep
{
	STEP_STARTUP = 0,			/* waiting for the startup packet */
	STEP_SASL_INITIAL,			/* sent AuthenticationSASL */
	STEP_SASL_FINAL,			/* sent AuthenticationSASLContinue */
	STEP_MD5,					/* sent AuthenticationMD5Password */
	STEP_PASSWORD,				/* sent AuthenticationCleartextPassword (hba "password") */
	STEP_PASSWORD_CHECK,		/* its PBKDF2 runs on a kdf.c thread; nothing more is read */
	STEP_AUTH_QUERY,			/* its role is being looked up on the target (auth_query.c); nothing is read */
	STEP_AUTH_SECRET,			/* its auth_file password's SCRAM secret is being derived; nothing is read */
	STEP_DONE,					/* authenticated */
} LoginStep;

typedef struct AuthState
{
	LoginStep	step;
	char		user[NAMEDATALEN];
	char		database[NAMEDATALEN];
	RoleInfo	role;
	ScramServer scram;
	uint8		md5_salt[4];
	uint8		client_key[SCRAM_KEY_BYTES];
	bool		have_client_key;
	TimestampTz fail_at;		/* failed: answer then (pgbun.auth_failure_delay), 0 if not */
	struct KdfJob *kdf_job;		/* STEP_PASSWORD_CHECK: the check in flight */
	struct AqRequest *aq_req;	/* STEP_AUTH_QUERY: the look-up in flight */
	AuthFileWaiter secret_wait; /* STEP_AUTH_SECRET: on the derivation's list */
	int			method;			/* STEP_AUTH_SECRET: the challenge to send once the secret is in */
	bool		tls_direct;		/* TLS began without SSLRequest (PostgreSQL 17 sslnegotiation=direct) */
	bool		tls_no_alpn;	/* ... and without ALPN "postgresql": only a WebSocket upgrade may follow */
	bool		have_peer;		/* peer: the client's address as accept() gave it (TCP) */
	struct sockaddr_storage peer;
} AuthState;


static void auth_succeeded(Client *c);
static void drain_unread(Client *c);
static void begin_challenge(Client *c);
static void send_challenge(Client *c, int method);

/* Waiting for a kdf.c thread or a look-up: nothing more of the client's is read meanwhile. */
static bool
login_waiting(const AuthState *a)
{
	return a->step == STEP_PASSWORD_CHECK || a->step == STEP_AUTH_QUERY || a->step == STEP_AUTH_SECRET;
}

/* ---- helpers ---- */

static void
format_addr(const struct sockaddr_storage *sa, char *out, int outlen, int32 *port)
{
	*port = 0;
	out[0] = '\0';
	if (sa->ss_family == AF_INET)
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

		inet_ntop(AF_INET, &in->sin_addr, out, outlen);
		*port = ntohs(in->sin_port);
	}
	else if (sa->ss_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, out, outlen);
		*port = ntohs(in6->sin6_port);
	}
	else if (sa->ss_family == AF_UNIX)
		strlcpy(out, "unix", outlen);
}


/* The client's TCP address: as accept() gave it, else asked of the socket. */
static bool
client_peer(Client *c, struct sockaddr_storage *addr)
{
	socklen_t	len = sizeof(*addr);

	if (c->auth && c->auth->have_peer)
	{
		*addr = c->auth->peer;
		return true;
	}
	return getpeername(c->sb.fd, (struct sockaddr *) addr, &len) == 0;
}


/* ---- accept ---- */

/*
 * Clients refused at accept (max_client_conn reached, or no shared
 * connection slot left) wait at most this long for their first packet, and
 * at most this many per worker do so at a time; beyond that the refusal is
 * written at once, without reading (a CancelRequest among those is lost).
 */
#define REFUSING_MAX 64
#define REFUSE_DEADLINE_MS 5000

static int	n_refusing = 0;

/* Send a refused client its 53300 and close it. */
void
client_login_refuse(Client *c)
{
	if (c->refuse == REFUSE_NO_SLOT)
		client_close(c, "53300", "no more connections allowed: all %d client connection slots are in use (pgbun.max_client_conn above its value at server start needs a restart)",
					 pgbun_shared->n_client_slots);
	else
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
}

/* A refused client is gone (client_close). */
void
client_login_refused_closed(Client *c)
{
	if (c->refuse_counted)
	{
		n_refusing--;
		c->refuse_counted = false;
	}
}

/* How long a client may take to log in: client_login_timeout, shorter for a refused one. */
int
client_login_deadline_ms(Client *c)
{
	if (!c->refuse)
		return pgbun_cfg->client_login_timeout;
	if (pgbun_cfg->client_login_timeout > 0)
		return Min(pgbun_cfg->client_login_timeout, REFUSE_DEADLINE_MS);
	return REFUSE_DEADLINE_MS;
}

int
client_accept(int listen_fd, bool unix_socket)
{
	/* Level-triggered listener: take a bounded batch, the rest next turn. */
	for (int i = 0; i < 64; i++)
	{
		struct sockaddr_storage peer;
		struct sockaddr_storage local;
		socklen_t	plen = sizeof(peer);
		socklen_t	llen = sizeof(local);
		int			fd;
		Client	   *c;
		int			one = 1;
		uint32		prev;

		fd = accept4(listen_fd, (struct sockaddr *) &peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
				return 0;
			return -1;			/* the listener backs off (listener.c) */
		}
		if (W->shutting_down)
		{
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(Client));
		if (!c)
		{
			close(fd);
			continue;
		}
		if (!unix_socket)
			(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		config_set_keepalive(fd, !unix_socket);
		c->io.kind = IO_CLIENT;
		c->unix_socket = unix_socket;
		c->cancel_pool = -1;
		sbuf_init(&c->sb, fd);
		c->connect_time = c->request_time = W->now;
		c->tx_status = 'I';
		W->n_clients++;
		/*
		 * max_client_conn and the shared connection slots are checked
		 * before anything else: a client that does not fit is counted
		 * nowhere, holds no slot, and is refused once its first packet is
		 * in (a CancelRequest is still served).
		 */
		prev = pg_atomic_fetch_add_u32(&pgbun_shared->client_count, 1);
		c->slot = -1;
		if (prev >= (uint32) pgbun_cfg->max_client_conn)
			c->refuse = REFUSE_MAX_CLIENT_CONN;
		/* the rest of the slots are the server connections' (max_connections + spares) */
		else if (prev >= (uint32) pgbun_shared->n_client_slots ||
				 (c->slot = pgbun_conn_slot_alloc(CONN_CLIENT, W->id)) < 0)
			c->refuse = REFUSE_NO_SLOT;
		if (c->refuse)
			pg_atomic_fetch_sub_u32(&pgbun_shared->client_count, 1);
		if (c->refuse && n_refusing >= REFUSING_MAX)
		{
			/* too many refusals in progress already: say so now, read nothing */
			client_set_state(c, CL_LOGIN);
			client_login_refuse(c);
			continue;
		}
		if (c->refuse)
		{
			c->refuse_counted = true;
			n_refusing++;
		}
		if (c->slot >= 0)
		{
			PgbunConnSlot *s = pgbun_conn_slot(c->slot);

			PGBUN_SLOT_WRITE_BEGIN(s);
			format_addr(&peer, s->addr, sizeof(s->addr), &s->port);
			if (getsockname(fd, (struct sockaddr *) &local, &llen) == 0)
				format_addr(&local, s->local_addr, sizeof(s->local_addr), &s->local_port);
			s->connect_time = c->connect_time;
			PGBUN_SLOT_WRITE_END(s);
		}
		client_set_state(c, CL_LOGIN);
		/* the login's state, with the address hba and the failure delay need (no getpeername) */
		c->auth = calloc(1, sizeof(AuthState));
		if (!c->auth)
		{
			client_close(c, NULL, "out of memory");
			continue;
		}
		if (!unix_socket && plen <= sizeof(c->auth->peer))
		{
			memcpy(&c->auth->peer, &peer, plen);
			c->auth->have_peer = true;
		}
		/* no write events until a write is stuck: a Unix-socket client reading its answer would wake us */
		if (poll_add_conn_in(fd, &c->io) < 0)
		{
			client_close(c, NULL, "could not watch socket: %m");
			continue;
		}
		sbuf_out_on_demand(&c->sb, client_out_watch, false);
		/*
		 * The first packet is usually there already (the client sent it
		 * right after connecting): read it this turn rather than after a
		 * wait. An event queued by the registration is dropped by the
		 * kernel at the next wait if the read used it up.
		 */
		c->in_busy = true;
		dlist_push_tail(&W->busy_clients, &c->busy_node);
	}
	return 0;
}

/*
 * The HTTP query adapter made input for this client that no socket event
 * will announce: look at it next loop turn.
 */
static void
client_login_kick(void *owner)
{
	Client	   *c = owner;

	if (!c->closed && !c->in_busy)
	{
		c->in_busy = true;
		dlist_push_tail(&W->busy_clients, &c->busy_node);
	}
}

/* ---- startup packet ---- */

static bool
send_single_byte(Client *c, char b)
{
	return sbuf_queue(&c->sb, &b, 1) && client_flush(c);
}

/* Keep one startup setting (a tracked name in its canonical spelling); false: closed. */
static bool
keep_startup_param(Client *c, const char *name, const char *value)
{
	const char *tracked = params_tracked_name(name);

	if (!params_set(&c->params, &c->params_len, tracked ? tracked : name, value))
	{
		client_close(c, "53200", "out of memory for startup parameters");
		return false;
	}
	c->params_fp_valid = false;
	return true;
}

/*
 * The startup packet's "options": -c name=value / --name=value settings,
 * kept like plain startup parameters. A plain parameter of the same name
 * wins, as in PostgreSQL (options are applied first). false: closed.
 */
static bool
parse_startup_options(Client *c, const char *options, const char *plain, uint16 plain_len)
{
	size_t		cap = strlen(options) + 2;
	char	   *pairs = malloc(cap);
	char		err[256];
	int			n;
	const char *p;

	if (!pairs)
	{
		client_close(c, "53200", "out of memory for startup parameters");
		return false;
	}
	n = startup_options_split(options, pairs, cap, err, sizeof(err));
	if (n < 0)
	{
		free(pairs);
		/* PostgreSQL reports both a bad switch and a missing value as a syntax error */
		client_close(c, "42601", "%s", err);
		return false;
	}
	p = pairs;
	for (int i = 0; i < n; i++)
	{
		const char *v = p + strlen(p) + 1;
		const char *tracked = params_tracked_name(p);

		if (!params_get(plain, plain_len, tracked ? tracked : p) &&
			(tracked || !config_ignores_startup_param(p)) &&
			!keep_startup_param(c, p, v))
		{
			free(pairs);
			return false;
		}
		p = v + strlen(v) + 1;
	}
	free(pairs);
	return true;
}

/*
 * Parse a v3 startup packet body: keep user/database, and every other
 * setting (tracked ones, plain GUCs, options) for session_client_login to
 * check once the client has authenticated.
 */
static bool
parse_startup_params(Client *c, const uint8 *body, uint32 len, const char **unsupported_pq,
					 int *n_unsupported_pq)
{
	ProtoReader r;
	const char *name;
	const char *value;
	const char *options = NULL;
	int			rc;
	AuthState  *a = c->auth;

	proto_reader_init(&r, body, len);
	while ((rc = proto_next_startup_param(&r, &name, &value)) == 1)
	{
		if (strcmp(name, "user") == 0)
		{
			if (strlen(value) >= NAMEDATALEN)
			{
				client_close(c, "08P01", "user name too long");
				return false;
			}
			strlcpy(a->user, value, sizeof(a->user));
		}
		else if (strcmp(name, "database") == 0)
		{
			if (strlen(value) >= NAMEDATALEN)
			{
				client_close(c, "08P01", "database name too long");
				return false;
			}
			strlcpy(a->database, value, sizeof(a->database));
		}
		else if (strncmp(name, "_pq_.", 5) == 0)
		{
			if (*n_unsupported_pq < 16)
				unsupported_pq[(*n_unsupported_pq)++] = name;
		}
		else if (strcmp(name, "replication") == 0)
		{
			if (strcmp(value, "false") != 0 && strcmp(value, "0") != 0 && strcmp(value, "off") != 0)
			{
				client_close(c, "08P01", "replication connections are not supported by pgbun");
				return false;
			}
		}
		else if (strcmp(name, "options") == 0)
		{
			/* pgbun.ignore_startup_parameters may list it: dropped whole, as before */
			if (!config_ignores_startup_param(name))
				options = value;
		}
		else if (params_tracked_name(name) == NULL && config_ignores_startup_param(name))
			 /* pgbun.ignore_startup_parameters */ ;
		else if (name[0] == '\0')
		{
			client_close(c, "08P01", "invalid startup packet layout");
			return false;
		}
		else if (!keep_startup_param(c, name, value))
			return false;
	}
	if (rc < 0)
	{
		client_close(c, "08P01", "invalid startup packet layout");
		return false;
	}
	if (options && options[0])
	{
		char	   *plain = c->params_len ? malloc(c->params_len) : NULL;
		uint16		plain_len = c->params_len;
		bool		ok;

		if (plain_len && !plain)
		{
			client_close(c, "53200", "out of memory for startup parameters");
			return false;
		}
		if (plain_len)
			memcpy(plain, c->params, plain_len);
		ok = parse_startup_options(c, options, plain, plain_len);
		free(plain);
		if (!ok)
			return false;
	}
	/* bounded: every link may have to send them all (documented in README) */
	if (params_count(c->params, c->params_len) > PARAMS_MAX_CARRIED ||
		c->params_len > PARAMS_MAX_BYTES)
	{
		client_close(c, "54000", "too many or too long startup parameters: pgbun carries at most %d, %d bytes in all",
					 PARAMS_MAX_CARRIED, PARAMS_MAX_BYTES);
		return false;
	}
	if (a->user[0] == '\0')
	{
		client_close(c, "28000", "no PostgreSQL user name specified in startup packet");
		return false;
	}
	if (a->database[0] == '\0')
		strlcpy(a->database, a->user, sizeof(a->database));
	if (c->params)
		(void) params_get(c->params, c->params_len, "application_name");
	return true;
}

/* Copy the client's application_name to its slot for pgbun.clients. */
static void
publish_application_name(Client *c)
{
	const char *app = client_param(c, "application_name");

	if (c->slot >= 0)
	{
		PgbunConnSlot *s = pgbun_conn_slot(c->slot);

		PGBUN_SLOT_WRITE_BEGIN(s);
		strlcpy(s->application_name, app ? app : "", sizeof(s->application_name));
		PGBUN_SLOT_WRITE_END(s);
	}
}

/*
 * The user name of a uid, for hba "peer". getpwuid_r may ask NSS (files,
 * but also LDAP or sssd) and so block the loop: names are cached per uid
 * for PEER_CACHE_TTL in a small fixed table (the stalest entry is reused),
 * so a burst of peer logins costs one look-up per user a minute.
 */
#define PEER_CACHE_SLOTS 16
#define PEER_CACHE_TTL (60 * USECS_PER_SEC)

typedef struct PeerName
{
	uid_t		uid;
	TimestampTz fetched;		/* 0: empty */
	char		name[NAMEDATALEN];
} PeerName;

static PeerName peer_cache[PEER_CACHE_SLOTS];

static const char *
peer_user_name(uid_t uid)
{
	PeerName   *stalest = &peer_cache[0];
	struct passwd pwbuf;
	struct passwd *pw = NULL;
	char		buf[1024];

	for (int i = 0; i < PEER_CACHE_SLOTS; i++)
	{
		PeerName   *e = &peer_cache[i];

		if (e->fetched && e->uid == uid && W->now - e->fetched < PEER_CACHE_TTL)
			return e->name;
		if (e->fetched < stalest->fetched)
			stalest = e;
	}
	if (getpwuid_r(uid, &pwbuf, buf, sizeof(buf), &pw) != 0 || pw == NULL ||
		strlen(pw->pw_name) >= NAMEDATALEN)
		return NULL;			/* not cached: a user added later is found at once */
	stalest->uid = uid;
	stalest->fetched = W->now;
	strlcpy(stalest->name, pw->pw_name, sizeof(stalest->name));
	return stalest->name;
}

/* What hba rules match on: the client's connection, user and database. false: closed. */
static bool
hba_conn_of(Client *c, HbaConn *conn)
{
	memset(conn, 0, sizeof(*conn));
	conn->unix_socket = c->unix_socket;
	conn->tls = c->sb.ssl != NULL;
	conn->user = c->auth->user;
	conn->database = c->auth->database;
	if (!c->unix_socket && !client_peer(c, &conn->addr))
	{
		client_close(c, "08006", "could not get the client's address: %m");
		return false;
	}
	return true;
}

/*
 * pgbun.auth_type = hba and no rule lets the client in (no match, reject):
 * known before its role is looked up, so a refused client never makes
 * pgbun ask a target (auth_query). hba_method says so to the client.
 */
static bool
hba_refuses(Client *c)
{
	HbaConn		conn;
	int			line;
	HbaClientCert clientcert;
	const char *usermap;
	HbaDecision decision;

	if (!hba_conn_of(c, &conn))
		return true;
	decision = hba_decide(&conn, &line, &clientcert, &usermap);
	return decision == HBA_NO_MATCH || decision == HBA_REJECT;
}

/*
 * pgbun.auth_type = hba: the first matching rule's method, as an AuthType,
 * or -1 when the client was refused (and closed) or logged in already.
 */
static int
hba_method(Client *c)
{
	AuthState  *a = c->auth;
	HbaConn		conn;
	int			line;
	char		host[64];
	int32		port;
	bool		tls = c->sb.ssl != NULL;
	HbaClientCert clientcert;
	HbaDecision decision;
	const char *usermap;
	char		cn[NAMEDATALEN + 1];
	bool		have_cert;

	if (!hba_conn_of(c, &conn))
		return -1;
	if (c->unix_socket)
		strlcpy(host, "[local]", sizeof(host));
	else
		format_addr(&conn.addr, host, sizeof(host), &port);
	decision = hba_decide(&conn, &line, &clientcert, &usermap);
	have_cert = tls_peer_common_name(&c->sb, cn, sizeof(cn));
	if ((clientcert != HBA_CERT_OFF || decision == HBA_CERT) && !have_cert)
	{
		client_close(c, "28000", "connection requires a valid client certificate");
		return -1;
	}
	/* cert lines imply clientcert=verify-full; the CN must be the role, or map to it */
	if ((clientcert == HBA_CERT_FULL || decision == HBA_CERT) &&
		(usermap ? !hba_usermap_ok(usermap, cn, a->user) : strcmp(cn, a->user) != 0))
	{
		pgbun_log_client(LOG, c, "hba_reject", "28000", "pgbun: hba line %d: certificate CN \"%s\" is not user \"%s\"",
						 line, cn, a->user);
		client_close(c, "28000", "certificate authentication failed for user \"%s\"", a->user);
		return -1;
	}
	switch (decision)
	{
		case HBA_NO_MATCH:
			client_close(c, "28000", "no hba entry for host \"%s\", user \"%s\", database \"%s\", %s",
						 host, a->user, a->database, tls ? "SSL encryption" : "no encryption");
			return -1;
		case HBA_REJECT:
			pgbun_log_client(LOG, c, "hba_reject", "28000", "pgbun: hba line %d rejects user \"%s\" database \"%s\" from %s",
							 line, a->user, a->database, host);
			client_close(c, "28000", "hba rejects connection for host \"%s\", user \"%s\", database \"%s\", %s",
						 host, a->user, a->database, tls ? "SSL encryption" : "no encryption");
			return -1;
		case HBA_TRUST:
		case HBA_CERT:			/* the certificate was checked above */
			auth_succeeded(c);
			return -1;
		case HBA_PEER:
			{
				uid_t		uid;
				gid_t		gid;
				const char *os_user = NULL;

				if (!c->unix_socket || getpeereid(c->sb.fd, &uid, &gid) != 0 ||
					(os_user = peer_user_name(uid)) == NULL ||
					(usermap ? !hba_usermap_ok(usermap, os_user, a->user) :
					 strcmp(os_user, a->user) != 0))
				{
					client_close(c, "28000", "peer authentication failed for user \"%s\"", a->user);
					return -1;
				}
				auth_succeeded(c);
				return -1;
			}
		case HBA_SCRAM:
			return AUTH_TYPE_SCRAM;
		case HBA_MD5:
			return AUTH_TYPE_MD5;
		case HBA_PASSWORD:
			return AUTH_TYPE_HBA;	/* here: cleartext password */
	}
	return -1;
}

/* Start authentication once the startup packet is in. */
static void
begin_auth(Client *c)
{
	AuthState  *a = c->auth;
	char		auth_user[NAMEDATALEN];

	if (pg_atomic_read_u32(&pgbun_shared->client_count) > (uint32) pgbun_max_client_conn)
	{
		client_close(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (!auth_lookup(a->user, a->database, &a->role))
	{
		if (a->role.catalog_locked)
			client_close(c, "55P03", "could not look up role \"%s\": a role or database catalog is locked by another session; try again",
						 a->user);
		else
			client_close(c, "XX000", "could not look up role \"%s\"", a->user);
		return;
	}
	publish_application_name(c);
	if (!console_is_database(a->database) && auth_query_user_for(a->database, auth_user))
	{
		const char *pw;
		bool		db_exists = a->role.db_exists;
		bool		db_allows_conn = a->role.db_allows_conn;

		/*
		 * The database's roles are the target's: pgbun.auth_file first (as
		 * PgBouncer), else auth_query there. The local pg_authid is not
		 * asked: a local role of the same name is another role.
		 */
		memset(&a->role, 0, sizeof(a->role));
		a->role.db_exists = db_exists;
		a->role.db_allows_conn = db_allows_conn;
		if (!auth_file_lookup(a->user, &a->role, &pw))
		{
			if (pgbun_cfg->auth_type == AUTH_TYPE_HBA && hba_refuses(c))
			{
				if (!c->closed)
					(void) hba_method(c);	/* closes it with the rule's words */
				return;
			}
			a->step = STEP_AUTH_QUERY;
			(void) auth_query_submit(c, a->database, a->user);
			return;				/* client_login_auth_query_done goes on */
		}
	}
	else if (!a->role.role_exists)
	{
		const char *pw;

		/* a role the local server lacks may be in pgbun.auth_file */
		(void) auth_file_lookup(a->user, &a->role, &pw);
	}
	begin_challenge(c);
}

void
client_login_auth_query_started(Client *c, struct AqRequest *r)
{
	if (c->auth)
		c->auth->aq_req = r;
}

void
client_login_auth_query_done(Client *c, const RoleInfo *role, const char *error)
{
	AuthState  *a = c->auth;
	bool		db_exists;
	bool		db_allows_conn;

	/* the look-up is over, whatever became of the client (closed, not yet freed) */
	if (a)
		a->aq_req = NULL;
	if (c->closed || !a || a->step != STEP_AUTH_QUERY)
		return;
	if (!role)
	{
		client_close(c, "08006", "could not look up role \"%s\": %s", a->user, error ? error : "?");
		return;
	}
	db_exists = a->role.db_exists;
	db_allows_conn = a->role.db_allows_conn;
	a->role = *role;
	a->role.db_exists = db_exists;
	a->role.db_allows_conn = db_allows_conn;
	a->step = STEP_STARTUP;
	begin_challenge(c);
	/* trust logged it in: anything it sent already goes on to a server */
	if (!c->closed && c->state == CL_ACTIVE)
		client_pump_in(c);
}

/* An auth_file password's SCRAM secret came from a kdf.c thread (loop thread, kdf_collect). */
static void
auth_file_secret_ready(AuthFileWaiter *w, const ScramSecret *secret)
{
	Client	   *c = w->owner;
	AuthState  *a = c->auth;

	if (c->closed || !a || a->step != STEP_AUTH_SECRET)
		return;
	if (!secret)
	{
		client_close(c, "08006", "could not derive the SCRAM secret of role \"%s\" (its auth_file entry changed?); try again",
					 a->user);
		return;
	}
	a->role.scram = *secret;
	a->role.scram_pending = false;
	a->step = STEP_STARTUP;
	send_challenge(c, a->method);
}

/* The role is known: apply hba and send the challenge (or log in, for trust). */
static void
begin_challenge(Client *c)
{
	AuthState  *a = c->auth;
	int			method = pgbun_cfg->auth_type;

	if (method == AUTH_TYPE_HBA && (method = hba_method(c)) < 0)
		return;
	if (method == AUTH_TYPE_TRUST)
	{
		auth_succeeded(c);
		return;
	}
	if (a->role.scram_pending)
	{
		/* every challenge but md5's needs it; PBKDF2 runs on a kdf.c thread */
		a->secret_wait.owner = c;
		a->secret_wait.ready = auth_file_secret_ready;
		switch (auth_file_secret(a->user, &a->role, &a->secret_wait))
		{
			case AUTH_FILE_SECRET_READY:
				break;
			case AUTH_FILE_SECRET_PENDING:
				a->method = method;
				a->step = STEP_AUTH_SECRET;
				return;
			case AUTH_FILE_SECRET_FAILED:
				client_close(c, "XX000", "could not derive the SCRAM secret of role \"%s\"", a->user);
				return;
		}
	}
	send_challenge(c, method);
}

/* Send the challenge of method (not trust) for the role in c->auth. */
static void
send_challenge(Client *c, int method)
{
	AuthState  *a = c->auth;
	ProtoBuf	pb;

	if (c->sb.hsql)
	{
		/*
		 * An HTTP query request carries its password: asked for in the
		 * clear (http_sql.c answers) and checked against the role's
		 * verifier as for hba "password". auth_type scram refuses md5
		 * verifiers, as it does over SCRAM.
		 */
		if (method == AUTH_TYPE_SCRAM && a->role.verifier_type == VERIFIER_MD5)
			a->role.verifier_type = VERIFIER_NONE;
		method = AUTH_TYPE_HBA;
	}
	if (!sbuf_out_begin(&c->sb, &pb))
	{
		client_close(c, NULL, "out of memory");
		return;
	}
	if (method == AUTH_TYPE_HBA)
	{
		/* hba "password": the client sends its password in the clear */
		proto_put_auth(&pb, PROTO_AUTH_CLEARTEXT, NULL, 0);
		a->step = STEP_PASSWORD;
	}
	else if (a->role.verifier_type == VERIFIER_SCRAM || method == AUTH_TYPE_SCRAM || a->role.mock_scram)
	{
		static const char *const mechs[] = {"SCRAM-SHA-256", NULL};
		static const char *const mechs_plus[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", NULL};
		int			cbind_len;

		/* SCRAM: real verifier, or a mock one so unknown roles look like known ones */
		if (a->role.verifier_type == VERIFIER_SCRAM)
			a->scram.secret = a->role.scram;
		else
		{
			int			nlen;
			const uint8 *nonce = auth_mock_nonce(&nlen);

			scram_mock_secret(a->user, nonce, nlen, &a->scram.secret);
			a->scram.mock = true;
		}
		/* over TLS, channel binding to pgbun's certificate (tls-server-end-point) */
		cbind_len = tls_server_end_point(&c->sb, a->scram.cbind_data, sizeof(a->scram.cbind_data));
		if (cbind_len > 0)
		{
			a->scram.cbind_len = cbind_len;
			a->scram.cbind_offered = true;
		}
		proto_put_auth_sasl(&pb, a->scram.cbind_offered ? mechs_plus : mechs);
		a->step = STEP_SASL_INITIAL;
	}
	else
	{
		/* md5 (auth_type md5 with an md5 verifier, or no verifier at all) */
		if (!pgbun_random(a->md5_salt, sizeof(a->md5_salt)))
		{
			client_close(c, NULL, "could not generate a salt");
			return;
		}
		proto_put_auth(&pb, PROTO_AUTH_MD5, a->md5_salt, 4);
		a->step = STEP_MD5;
	}
	sbuf_out_commit(&c->sb, &pb);
	(void) client_flush(c);
}

/*
 * Advance the client's TLS handshake. true once it is done (the startup
 * packet comes next, through TLS); false while it waits for the socket or
 * when the client was closed. A client that never finishes is closed by
 * the janitor at client_login_timeout.
 */
static bool
client_tls_handshake(Client *c)
{
	int			r = tls_handshake(&c->sb);

	if (r == 0)
		return false;
	if (r < 0)
	{
		if (pgbun_cfg->log_disconnections)
			ereport(LOG, (errmsg("pgbun: TLS handshake with a client failed: %s", c->sb.error)));
		client_close(c, NULL, "TLS handshake failed");
		return false;
	}
	if (c->auth->tls_direct && !tls_alpn_postgresql(&c->sb) && (pgbun_cfg->websocket || pgbun_cfg->http_sql))
		c->auth->tls_no_alpn = true;	/* wss:// or https://: an HTTP client, checked at its first bytes */
	else if (c->auth->tls_direct && !tls_alpn_postgresql(&c->sb))
	{
		/* as PostgreSQL 17: direct TLS must say it is for postgresql */
		client_close(c, "08P01", "direct TLS connection without ALPN protocol \"postgresql\"");
		return false;
	}
	pgbun_conn_slot_set_tls(c->slot, tls_version(&c->sb));
	return true;
}

/* Switch the client's socket to TLS (after 'S', or for direct TLS) and start the handshake. */
static bool
client_start_tls(Client *c, bool direct)
{
	/* SSL_read may want to write, with no write of ours stuck: write events stay on */
	if (sbuf_out_always(&c->sb) < 0)
	{
		client_close(c, NULL, "could not watch socket: %m");
		return false;
	}
	if (!tls_accept_start(&c->sb))
	{
		client_close(c, NULL, "could not start TLS");
		return false;
	}
	c->auth->tls_direct = direct;
	return client_tls_handshake(c);
}

/*
 * Read and act on one startup-phase packet (untyped). Returns true when the
 * caller should look for more input.
 */
static bool
read_startup_packet(Client *c)
{
	StartupHeader sh;
	uint32		maxlen = Min((uint32) pgbun_cfg->max_packet_size, STARTUP_PACKET_MAX);
	const uint8 *p;

	for (;;)
	{
		ProtoResult pr;

		if (!c->sb.ws && !c->sb.hsql &&
			http_sql_wanted(c->sb.in ? c->sb.in + c->sb.parse_pos : NULL, sbuf_unparsed(&c->sb)))
		{
			/*
			 * An HTTP request where a startup packet's length belongs: Neon's
			 * HTTP query API (http_sql.c makes the startup packet and the
			 * rest from it), or a WebSocket upgrade for the code below.
			 */
			const char *why = NULL;
			int			r;

			if (sbuf_out_always(&c->sb) < 0)	/* the adapters wait for room on their own */
			{
				client_close(c, NULL, "could not watch socket: %m");
				return false;
			}
			r = http_sql_accept(&c->sb, client_login_kick, c, &why);
			if (r < 0)
			{
				(void) sbuf_flush_out(&c->sb);
				client_close(c, NULL, "HTTP request refused: %s", why);
				return false;
			}
			if (r == 1)
				continue;
			if (r == 0)
				goto read_more;
		}
		if (!c->sb.ws && !c->sb.hsql && ws_wanted(c->sb.in ? c->sb.in + c->sb.parse_pos : NULL, sbuf_unparsed(&c->sb)))
		{
			/*
			 * An HTTP request where a startup packet's length belongs ('G'
			 * would announce a packet of a gigabyte): a WebSocket upgrade,
			 * plain or inside the TLS just negotiated. The startup packet
			 * then comes inside its frames.
			 */
			const char *why = NULL;
			int			r;

			if (sbuf_out_always(&c->sb) < 0)
			{
				client_close(c, NULL, "could not watch socket: %m");
				return false;
			}
			r = ws_accept_upgrade(&c->sb, &why);
			if (r < 0)
			{
				(void) sbuf_flush_out(&c->sb);
				client_close(c, NULL, "WebSocket upgrade refused: %s", why);
				return false;
			}
			if (r > 0)
				continue;
		}
		if (c->auth->tls_no_alpn && !c->sb.ws && !c->sb.hsql && sbuf_unparsed(&c->sb) > 0)
		{
			/* as PostgreSQL 17: direct TLS must say it is for postgresql (or be a wss:// upgrade) */
			client_close(c, "08P01", "direct TLS connection without ALPN protocol \"postgresql\"");
			return false;
		}
		pr = proto_parse_startup_header(c->sb.in ? c->sb.in + c->sb.parse_pos : NULL,
													sbuf_unparsed(&c->sb), maxlen, &sh);

		if (pr == PROTO_BAD_LENGTH)
		{
			client_close(c, "08P01", "invalid startup packet length");
			return false;
		}
		if (pr == PROTO_OK && sbuf_unparsed(&c->sb) >= sh.len)
			break;
		if (sbuf_unparsed(&c->sb) == 0 && !c->sb.ssl && !c->sb.ws && !c->sb.hsql && tls_client_offered(c->unix_socket))
		{
			uint8		b;
			ssize_t		n;

			/*
			 * PostgreSQL 17 direct TLS: a ClientHello (a TLS handshake
			 * record, first byte 0x16) where a startup packet's length
			 * belongs. Peek so that OpenSSL reads it from the socket. While
			 * there is no byte yet, read nothing: a ClientHello landing
			 * between the peek and a read would be taken as plaintext.
			 */
			do
				n = recv(c->sb.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
			while (n < 0 && errno == EINTR);
			if (n == 1 && b == 0x16)
				return client_start_tls(c, true);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return false;	/* its arrival is the next read event */
		}
read_more:
		switch (sbuf_fill(&c->sb))
		{
			case 0:
				return false;
			case -1:
				client_close(c, NULL, "connection closed during startup");
				return false;
			case -2:
			case -3:
				{
					const char *e = ws_error(&c->sb) ? ws_error(&c->sb) : http_sql_error(&c->sb);

					client_close(c, NULL, "read failed during startup%s%s", e ? ": " : "", e ? e : "");
					return false;
				}
			default:
				break;
		}
	}

	p = c->sb.in + c->sb.parse_pos;
	if (c->refuse && sh.kind == STARTUP_V3)
	{
		/*
		 * Over the limit: refused at its startup packet, once TLS is
		 * negotiated as usual (libpq does not show an error sent in answer
		 * to SSLRequest), and the packet read, so the close that follows
		 * the error is not a reset.
		 */
		sbuf_consume(&c->sb, sh.len);
		client_login_refuse(c);
		return false;
	}
	switch (sh.kind)
	{
		case STARTUP_SSL:
			sbuf_consume(&c->sb, sh.len);
			if (c->sb.ws)
				return send_single_byte(c, PROTO_SSL_NO);	/* wss:// is the WebSocket's TLS */
			if (c->sb.ssl)
			{
				client_close(c, "08P01", "SSLRequest after TLS was already set up");
				return false;
			}
			if (!tls_client_offered(c->unix_socket))
				return send_single_byte(c, PROTO_SSL_NO);	/* plain text, or the client gives up */
			if (sbuf_unparsed(&c->sb) > 0)
			{
				/* bytes sent before the answer cannot be part of the TLS session (CVE-2021-23214) */
				client_close(c, "08P01", "received unencrypted data after SSL request");
				return false;
			}
			if (!send_single_byte(c, PROTO_SSL_YES))
				return false;
			if (sbuf_out_pending(&c->sb))
			{
				client_close(c, NULL, "could not send the answer to SSLRequest");
				return false;
			}
			return client_start_tls(c, false);
		case STARTUP_GSSENC:
			sbuf_consume(&c->sb, sh.len);
			if (c->sb.ws)
				return send_single_byte(c, PROTO_SSL_NO);
			if (c->sb.ssl)
			{
				client_close(c, "08P01", "GSSENCRequest after TLS was already set up");
				return false;
			}
			/* no GSSAPI encryption: the client continues in plain text, asks for TLS, or gives up */
			return send_single_byte(c, PROTO_SSL_NO);
		case STARTUP_CANCEL:
			{
				ProtoReader r;
				uint32		pid;
				uint32		key;

				proto_reader_init(&r, p + 8, 8);
				pid = proto_read_int32(&r);
				key = proto_read_int32(&r);
				sbuf_consume(&c->sb, sh.len);
				/* like PostgreSQL: no answer; closed once the cancel is done */
				if (!cancel_forward(pid, key, c))
					client_close(c, NULL, "cancel request");
				else if (c->refuse)
					client_login_refused_closed(c); /* its place among refusals in progress is free */
				return false;
			}
		case STARTUP_UNSUPPORTED:
			client_close(c, "08P01", "unsupported frontend protocol %u.%u: pgbun supports 3.0",
						 sh.code >> 16, sh.code & 0xFFFF);
			return false;
		case STARTUP_V3:
			{
				const char *unsupported[16];
				int			n_unsupported = 0;

				if (!c->sb.ssl && tls_client_required(c->unix_socket))
				{
					client_close(c, "28000", "SSL required (pgbun.client_tls_sslmode)");
					return false;
				}
				if (!parse_startup_params(c, p + 8, sh.len - 8, unsupported, &n_unsupported))
					return false;
				if (sh.minor > 0 || n_unsupported > 0)
				{
					ProtoBuf	pb;

					if (!sbuf_out_begin(&c->sb, &pb) ||
						!proto_put_negotiate_version(&pb, 0, unsupported, n_unsupported))
					{
						client_close(c, "08P01", "startup packet has too many options");
						return false;
					}
					sbuf_out_commit(&c->sb, &pb);
				}
				sbuf_consume(&c->sb, sh.len);
				begin_auth(c);
				return false;
			}
	}
	return false;
}

/* ---- authentication messages ---- */

static void
auth_failed(Client *c)
{
	struct sockaddr_storage addr;
	int			delay_ms;

	if (c->auth->role.detail[0])
		ereport(LOG, (errmsg("pgbun: password authentication failed for user \"%s\"", c->auth->user),
					  errdetail_log("%s", c->auth->role.detail)));
	memset(&addr, 0, sizeof(addr));
	if (!c->unix_socket)
		(void) client_peer(c, &addr);
	delay_ms = throttle_failure(&addr, c->unix_socket, pgbun_cfg->auth_failure_delay, W->now);
	if (delay_ms > 0)
	{
		/* the answer waits; the janitor gives it (client_login_fail_due) */
		c->auth->fail_at = W->now + (int64) delay_ms * 1000;
		return;
	}
	drain_unread(c);
	client_close(c, "28P01", "password authentication failed for user \"%s\"", c->auth->user);
}

/*
 * Read and drop what a refused client sent after its failed attempt (a
 * bounded amount), so that closing the socket does not reset the
 * connection before the client has read the error.
 */
static void
drain_unread(Client *c)
{
	char		scratch[4096];

	if (c->sb.ssl || c->sb.ws)
		return;					/* TLS records and frames cannot be skipped; a close follows anyway */
	for (int i = 0; i < 16; i++)
		if (recv(c->sb.fd, scratch, sizeof(scratch), MSG_DONTWAIT) <= 0)
			break;
}

bool
client_login_fail_due(Client *c)
{
	if (!c->auth || c->auth->fail_at == 0 || W->now < c->auth->fail_at)
		return false;
	drain_unread(c);
	client_close(c, "28P01", "password authentication failed for user \"%s\"", c->auth->user);
	return true;
}

static bool
send_auth(Client *c, uint32 code, const char *data, int len)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&c->sb, &pb) || !proto_put_auth(&pb, code, (const uint8 *) data, len))
	{
		client_close(c, NULL, "out of memory");
		return false;
	}
	sbuf_out_commit(&c->sb, &pb);
	return client_flush(c);
}

static void password_checked(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key);

/*
 * A cleartext password and a SCRAM verifier: PBKDF2 goes to a kdf.c thread.
 * true when it did (or the client was refused: too many checks in flight);
 * false to check inline, when the threads cannot run.
 */
static bool
check_password_async(Client *c, const char *password)
{
	AuthState  *a = c->auth;
	uint8		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	char	   *pw;

	if (!worker_kdf_ready())
		return false;
	pw = scram_password_inputs(&a->role.scram, password, salt, &salt_len);
	if (!pw)
		return false;			/* an unusable secret: the inline check refuses it */
	a->kdf_job = kdf_submit(pw, salt, salt_len, a->role.scram.iterations, a->role.scram.stored_key,
							 password_checked, c);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (!a->kdf_job)
	{
		client_close(c, "53300", "too many password checks in progress; try again");
		return true;
	}
	a->step = STEP_PASSWORD_CHECK;
	return true;
}

/* A kdf.c thread finished a client's password check (loop thread, kdf_collect). */
static void
password_checked(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key pg_attribute_unused())
{
	Client	   *c = owner;
	AuthState  *a = c->auth;

	/* kdf_collect freed the job already: forget it whatever became of the client */
	if (a)
		a->kdf_job = NULL;
	if (c->closed || !a || a->step != STEP_PASSWORD_CHECK)
		return;
	if (!ok)
	{
		auth_failed(c);
		return;
	}
	/* the ClientKey also lets pgbun log in to the server as the role */
	memcpy(a->client_key, client_key, SCRAM_KEY_BYTES);
	a->scram.secret = a->role.scram;
	a->have_client_key = true;
	auth_succeeded(c);
	/* anything it sent after the password goes on to a server */
	if (!c->closed && c->state == CL_ACTIVE)
		client_pump_in(c);
}

bool
client_login_waiting(Client *c)
{
	return c->auth && (c->auth->fail_at || login_waiting(c->auth));
}

bool
client_login_failed(Client *c)
{
	return c->auth && c->auth->fail_at;
}

void
client_login_forget(Client *c)
{
	if (c->auth && c->auth->kdf_job)
	{
		kdf_cancel(c->auth->kdf_job);
		c->auth->kdf_job = NULL;
	}
	if (c->auth && c->auth->aq_req)
	{
		auth_query_forget(c->auth->aq_req);
		c->auth->aq_req = NULL;
	}
	if (c->auth)
		auth_file_waiter_forget(&c->auth->secret_wait);
}

/* Handle one complete password-type ('p') message during login. */
static void
handle_password_message(Client *c, const uint8 *body, uint32 len)
{
	AuthState  *a = c->auth;
	ProtoReader r;
	char		reply[SCRAM_MSG_MAX];
	const char *err = NULL;

	proto_reader_init(&r, body, len);
	switch (a->step)
	{
		case STEP_SASL_INITIAL:
			{
				const char *mech = proto_read_string(&r);
				int32		dlen = (int32) proto_read_int32(&r);
				const uint8 *data;

				if (!r.error && a->scram.cbind_offered && strcmp(mech, "SCRAM-SHA-256-PLUS") == 0)
					a->scram.plus = true;
				else if (r.error || strcmp(mech, "SCRAM-SHA-256") != 0)
				{
					client_close(c, "08P01", "client selected an invalid SASL authentication mechanism");
					return;
				}
				data = dlen > 0 ? proto_read_bytes(&r, dlen) : NULL;
				if (!data || proto_reader_remaining(&r) != 0)
				{
					client_close(c, "08P01", "malformed SCRAM message");
					return;
				}
				if (scram_server_first(&a->scram, (const char *) data, dlen, reply, sizeof(reply), &err) < 0)
				{
					client_close(c, "08P01", "%s", err);
					return;
				}
				a->step = STEP_SASL_FINAL;
				send_auth(c, PROTO_AUTH_SASL_CONTINUE, reply, strlen(reply));
				return;
			}
		case STEP_SASL_FINAL:
			{
				int			rc = scram_server_final(&a->scram, (const char *) body, len, reply,
													sizeof(reply), a->client_key, &err);

				if (rc < 0)
				{
					client_close(c, "08P01", "%s", err);
					return;
				}
				if (rc == 0)
				{
					auth_failed(c);
					return;
				}
				a->have_client_key = true;
				if (!send_auth(c, PROTO_AUTH_SASL_FINAL, reply, strlen(reply)))
					return;
				auth_succeeded(c);
				return;
			}
		case STEP_MD5:
			{
				const char *answer = proto_read_string(&r);
				char		expected[36];

				if (r.error || proto_reader_remaining(&r) != 0)
				{
					client_close(c, "08P01", "malformed password message");
					return;
				}
				if (a->role.verifier_type != VERIFIER_MD5 ||
					!auth_md5_response(a->role.md5, a->md5_salt, expected) ||
					strcmp(answer, expected) != 0)
				{
					auth_failed(c);
					return;
				}
				auth_succeeded(c);
				return;
			}
		case STEP_PASSWORD:
			{
				const char *password = proto_read_string(&r);
				char		expected[36];
				char		hex[33];
				char	   *salted;

				if (r.error || proto_reader_remaining(&r) != 0)
				{
					client_close(c, "08P01", "malformed password message");
					return;
				}
				if (a->role.verifier_type == VERIFIER_SCRAM && check_password_async(c, password))
					return;		/* the answer comes from password_checked() */
				if (a->role.verifier_type == VERIFIER_SCRAM && !c->closed &&
					scram_check_password(&a->role.scram, password, a->client_key))
				{
					/* the ClientKey also lets pgbun log in to the server as the role */
					a->scram.secret = a->role.scram;
					a->have_client_key = true;
					auth_succeeded(c);
					return;
				}
				if (a->role.verifier_type == VERIFIER_MD5)
				{
					/* an md5 verifier is "md5" + md5(password || user name) */
					bool		hashed;

					salted = psprintf("%s%s", password, a->user);
					hashed = pgbun_md5_hex(salted, strlen(salted), hex);
					pfree(salted);
					snprintf(expected, sizeof(expected), "md5%s", hashed ? hex : "");
					if (hashed && strcmp(expected, a->role.md5) == 0)
					{
						auth_succeeded(c);
						return;
					}
				}
				auth_failed(c);
				return;
			}
		default:
			client_close(c, "08P01", "unexpected password message");
			return;
	}
}

static PktAction
login_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Client	   *c = owner;

	if (hdr->type == 'X')
		return PKT_CLOSE;
	if (hdr->type != 'p' || c->auth->step == STEP_DONE)
	{
		client_close(c, "08P01", "expected a password response, got message type '%c'",
					 (hdr->type >= 0x20 && hdr->type < 0x7f) ? hdr->type : '?');
		return PKT_STOP;
	}
	if (c->auth->fail_at || login_waiting(c->auth))
		return PKT_STOP;		/* failed (one attempt per connection), or being checked: the rest stays unread */
	if (avail < proto_msg_size(hdr))
		return PKT_NEED_FULL;
	handle_password_message(c, msg + PROTO_HDR_LEN, hdr->len - 4);
	if (c->closed)
		return PKT_STOP;
	if (c->auth && (c->auth->fail_at || c->auth->step == STEP_PASSWORD_CHECK))
		return PKT_CONSUME_STOP;	/* guesses pipelined behind this one are never looked at */
	/* logged in: what follows is for a server, not for this handler */
	return c->state == CL_LOGIN ? PKT_CONSUME : PKT_CONSUME_STOP;
}

static void
client_login_steps(Client *c);

/* Login input; once logged in, anything the client already sent goes on to a server. */
void
client_login_input(Client *c)
{
	client_login_steps(c);
	if (!c->closed && c->state == CL_ACTIVE)
		client_pump_in(c);
}

static void
client_login_steps(Client *c)
{
	if (c->auth && (c->auth->fail_at || login_waiting(c->auth)))
		return;					/* failed, or its password or role is being checked: nothing more is read */
	if (!c->auth)
	{
		c->auth = calloc(1, sizeof(AuthState));
		if (!c->auth)
		{
			client_close(c, NULL, "out of memory");
			return;
		}
	}
	while (!c->closed && c->state == CL_LOGIN)
	{
		if (c->sb.tls_state == SBUF_TLS_HANDSHAKE && !client_tls_handshake(c))
			return;
		if (c->auth->step == STEP_STARTUP)
		{
			bool		more = read_startup_packet(c);

			/* trust logs in right here, and frees the auth state */
			if (c->closed || c->state != CL_LOGIN)
				return;
			if (!more && c->auth->step == STEP_STARTUP)
				return;
		}
		else
		{
			uint64		rd = 0;
			uint64		wr = 0;
			PumpResult	r;

			r = sbuf_pump(&c->sb, NULL, STARTUP_PACKET_MAX, login_msg_handler, c, &rd, &wr);
			if (c->closed)
				return;
			switch (r)
			{
				case PUMP_IDLE:
				case PUMP_STOPPED:
					return;
				case PUMP_YIELD:
					continue;
				case PUMP_CLOSE:
				case PUMP_EOF:
					client_close(c, NULL, "client disconnected during authentication");
					return;
				default:
					client_close(c, "08P01", "%s", c->sb.error ? c->sb.error : "protocol error");
					return;
			}
		}
	}
}

/* Authentication passed: check what PostgreSQL checks next, then join the pool. */
static void
auth_succeeded(Client *c)
{
	AuthState  *a = c->auth;
	Pool	   *pool;
	ProtoBuf	pb;

	a->step = STEP_DONE;
	if (!c->unix_socket)
	{
		struct sockaddr_storage addr;

		if (client_peer(c, &addr))
			throttle_success(&addr, false, W->now);
	}
	else
		throttle_success(NULL, true, W->now);
	if (!a->role.role_exists || (!a->role.can_login))
	{
		if (!a->role.role_exists)
		{
			/* only reachable with auth_type=trust */
			client_close(c, "28000", "role \"%s\" does not exist", a->user);
			return;
		}
		client_close(c, "28000", "role \"%s\" is not permitted to log in", a->user);
		return;
	}
	/* a database routed by pgbun.databases need not exist here: its server says */
	if (!a->role.db_exists && !target_database_routed(a->database))
	{
		client_close(c, "3D000", "database \"%s\" does not exist", a->database);
		return;
	}
	if (!a->role.db_allows_conn && !target_database_routed(a->database))
	{
		client_close(c, "55000", "database \"%s\" is not currently accepting connections", a->database);
		return;
	}
	if (console_is_database(a->database))
	{
		char		user[NAMEDATALEN];
		bool		show = a->role.console_show;
		bool		admin = a->role.console_admin;

		strlcpy(user, a->user, sizeof(user));
		free(c->auth);
		c->auth = NULL;
		console_start(c, user, show, admin);
		return;
	}
	if (control_db_disabled(a->database))
	{
		client_close(c, "55000", "database \"%s\" is disabled", a->database);
		return;
	}
	/* as PostgreSQL, the startup settings are checked once the client is known */
	if (!session_client_login(c, a->role.superuser))
		return;
	pool = pool_get(a->database, a->user);
	if (!pool)
	{
		client_close(c, "53300", "too many pools (database/user pairs)");
		return;
	}
	/* Remember how to log in to the server as this role (pass-through; nothing stored on disk). */
	if (a->have_client_key)
	{
		memcpy(pool->client_key, a->client_key, SCRAM_KEY_BYTES);
		memcpy(pool->server_key, a->scram.secret.server_key, SCRAM_KEY_BYTES);
		pool->have_scram_keys = true;
	}
	else if (a->role.verifier_type == VERIFIER_SCRAM && pool->have_scram_keys &&
			 memcmp(pool->server_key, a->role.scram.server_key, SCRAM_KEY_BYTES) != 0)
		pool->have_scram_keys = false;	/* the password changed: the old key is useless */
	if (a->role.verifier_type == VERIFIER_MD5)
	{
		free(pool->md5_verifier);
		pool->md5_verifier = strdup(a->role.md5);
	}
	{
		const char *pw = NULL;
		RoleInfo	tmp;

		/* an auth_file role with a plain password: pgbun logs in to the server with it */
		memset(&tmp, 0, sizeof(tmp));
		if (a->role.from_auth_file && auth_file_lookup(a->user, &tmp, &pw) && pw &&
			(!pool->password || strcmp(pool->password, pw) != 0))
		{
			free(pool->password);
			pool->password = strdup(pw);
			if (pool->pw_keys)
				pool->pw_keys->valid = false;
		}
	}

	c->pool = pool;
	{
		uint32		r[2];

		/* one draw for both: pgbun_random (scram.c) takes them from its block */
		if (!pgbun_random(r, sizeof(r)))
		{
			client_close(c, NULL, "could not generate a cancel key");
			return;
		}
		c->cancel_pid = r[0] & 0x7FFFFFFF;	/* clients expect a positive pid */
		c->cancel_key = r[1];
		explicit_bzero(r, sizeof(r));
	}
	if (c->slot >= 0)
		pgbun_cancel_register(c->slot, c->cancel_pid, c->cancel_key);

	if (!sbuf_out_begin(&c->sb, &pb) || !proto_put_auth(&pb, PROTO_AUTH_OK, NULL, 0))
	{
		client_close(c, NULL, "out of memory");
		return;
	}
	sbuf_out_commit(&c->sb, &pb);
	free(c->auth);
	c->auth = NULL;

	if (session_pool_welcome(pool))
		client_login_finished(c);
	else
	{
		/* no welcome yet (no server login of the pool anywhere, or one too long to share) */
		client_set_state(c, CL_WAITING_LOGIN);
		c->wait_start = W->now;
		client_publish(c);
		pool_kick_waiting(pool);
	}
	if (!c->closed)
		(void) client_flush(c);
}

/* Send ParameterStatus, BackendKeyData and ReadyForQuery: the client is in. */
void
client_login_finished(Client *c)
{
	Pool	   *pool = c->pool;
	ProtoBuf	pb;
	const char *p;

	if (!sbuf_out_begin(&c->sb, &pb))
	{
		client_close(c, NULL, "out of memory");
		return;
	}
	/* what a server login reported (the client keeps it as its defaults), with its own values */
	session_client_welcomed(c);
	for (p = c->welcome ? c->welcome->data : NULL; p && p < c->welcome->data + c->welcome->len;)
	{
		const char *v = p + strlen(p) + 1;
		const char *own = client_param(c, p);

		proto_put_parameter_status(&pb, p, own ? own : v);
		p = v + strlen(v) + 1;
	}
	proto_put_backend_key(&pb, c->cancel_pid, c->cancel_key);
	proto_put_ready(&pb, 'I');
	if (pb.overflow)
	{
		client_close(c, "08P01", "startup parameters too large");
		return;
	}
	sbuf_out_commit(&c->sb, &pb);
	c->wait_start = 0;
	client_set_state(c, CL_ACTIVE);
	counters_note_login(pool->slot);
	if (pgbun_cfg->log_connections)
		pgbun_log_client(LOG, c, "client_login", NULL, "pgbun: client login: user=%s database=%s", pool->user, pool->database);
	(void) client_flush(c);
	/* the caller pumps the client's input once it is outside any pump of this client */
}

/* The database and user a client in login asked for (log lines, login failure counts). */
void
client_login_names(Client *c, const char **database, const char **user)
{
	*database = (c->auth && c->auth->database[0]) ? c->auth->database : NULL;
	*user = (c->auth && c->auth->user[0]) ? c->auth->user : NULL;
}

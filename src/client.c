/*
 * client.c - the client side of the pooler: accept, startup packet,
 * authentication, login completion, forwarding to the linked server, close.
 *
 * A client is in one ClientState at a time (client_set_state moves it between
 * its lists and publishes the state to its shared slot). During login it owns
 * a malloc'd AuthState; once logged in it keeps only its startup parameters,
 * so an idle client costs its struct and its socket, no buffers.
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
#include "utils/timestamp.h"

#include "auth.h"
#include "cancel.h"
#include "config.h"
#include "hba.h"
#include "params.h"
#include "prepared.h"
#include "pooler.h"
#include "proto.h"
#include "scram.h"
#include "throttle.h"
#include "tls.h"

/* PostgreSQL's own limit on a startup packet. */
#define STARTUP_PACKET_MAX 10000

typedef enum LoginStep
{
	STEP_STARTUP = 0,			/* waiting for the startup packet */
	STEP_SASL_INITIAL,			/* sent AuthenticationSASL */
	STEP_SASL_FINAL,			/* sent AuthenticationSASLContinue */
	STEP_MD5,					/* sent AuthenticationMD5Password */
	STEP_PASSWORD,				/* sent AuthenticationCleartextPassword (hba "password") */
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
	bool		tls_direct;		/* TLS began without SSLRequest (PostgreSQL 17 sslnegotiation=direct) */
} AuthState;

static void client_login_input(Client *c);
static void auth_succeeded(Client *c);

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

/* Publish the client's state, pool and link to its shared slot. */
void
client_publish(Client *c)
{
	PgbunConnSlot *s;

	if (c->slot < 0)
		return;
	s = pgbun_conn_slot(c->slot);
	PGBUN_SLOT_WRITE_BEGIN(s);
	s->state = (uint8) c->state;
	s->pool = c->pool ? c->pool->slot : -1;
	s->peer = c->link ? c->link->slot : -1;
	s->request_time = c->request_time;
	s->wait_start = c->wait_start;
	PGBUN_SLOT_WRITE_END(s);
}

static dlist_head *
client_state_list(Client *c, ClientState st)
{
	switch (st)
	{
		case CL_LOGIN:
			return &W->login_clients;
		case CL_WAITING_LOGIN:
			return &c->pool->waitlogin_clients;
		case CL_ACTIVE:
			return &c->pool->active_clients;
		case CL_WAITING:
			return &c->pool->waiting_clients;
	}
	return NULL;
}

/* The only way a client changes state: move lists, publish. */
void
client_set_state(Client *c, ClientState st)
{
	if (c->state != 0)
		dlist_delete(&c->node);
	c->state = st;
	dlist_push_tail(client_state_list(c, st), &c->node);
	client_publish(c);
}

const char *
client_param(Client *c, const char *name)
{
	return params_get(c->params, c->params_len, name);
}

/* Queue an ErrorResponse; the message text gets no prefix here (callers add "pgbun: "). */
bool
client_send_error(Client *c, bool fatal, const char *sqlstate, const char *msg)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(&c->sb, &pb))
		return false;
	proto_put_error(&pb, fatal, sqlstate, msg, NULL, NULL);
	if (pb.overflow)
		return false;
	sbuf_out_commit(&c->sb, &pb);
	return true;
}

/* Best-effort flush of pooler-made output; on a real error close the client. */
static bool
client_flush(Client *c)
{
	if (sbuf_flush_out(&c->sb) < 0)
	{
		client_close(c, NULL, "write failed: %m");
		return false;
	}
	return true;
}

/*
 * Close a client. With a sqlstate, first send it a FATAL ErrorResponse with
 * the message (when the byte stream to it is at a message boundary). The
 * reason goes to the log when log_disconnections is on.
 */
void
client_close(Client *c, const char *sqlstate, const char *fmt,...)
{
	char		reason[512];
	va_list		ap;

	if (c->closed)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	if (sqlstate && sbuf_can_send(&c->sb) && (!c->link || !sbuf_has_pending_forward(&c->link->sb)))
	{
		char		msg[600];

		snprintf(msg, sizeof(msg), "pgbun: %s", reason);
		if (client_send_error(c, true, sqlstate, msg))
			(void) sbuf_flush_out(&c->sb);
	}
	if (pgbun_log_disconnections && c->state != CL_LOGIN)
		ereport(LOG,
				(errmsg("pgbun: client closed: user=%s database=%s: %s",
						c->pool ? c->pool->user : "?", c->pool ? c->pool->database : "?", reason)));
	else if (pgbun_log_disconnections && sqlstate)
		ereport(LOG, (errmsg("pgbun: client login failed: %s", reason)));

	c->closed = true;
	if (c->in_busy)
	{
		dlist_delete(&c->busy_node);
		c->in_busy = false;
	}
	if (c->link)
	{
		Server	   *s = c->link;

		c->link = NULL;
		s->link = NULL;
		/* a message cut short leaves the server waiting for its rest: not reusable */
		if (sbuf_has_pending_forward(&c->sb))
			server_close(s, "client left in the middle of a message");
		else
			server_release(s);
	}
	dlist_delete(&c->node);
	dlist_push_tail(&W->closed_clients, &c->node);
	poll_remove(c->sb.fd);
	sbuf_close(&c->sb);
	if (c->slot >= 0)
	{
		pgbun_conn_slot_free(c->slot);
		c->slot = -1;
	}
	pg_atomic_fetch_sub_u32(&pgbun_shared->client_count, 1);
	W->n_clients--;
	if (c->pool)
		pool_kick_waiting(c->pool);
}

void
client_free(Client *c)
{
	prepared_client_free(c);
	free(c->params);
	free(c->auth);
	free(c);
}

/* ---- accept ---- */

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
		sbuf_init(&c->sb, fd);
		c->connect_time = c->request_time = W->now;
		c->tx_status = 'I';
		pg_atomic_fetch_add_u32(&pgbun_shared->client_count, 1);
		W->n_clients++;
		c->slot = pgbun_conn_slot_alloc(CONN_CLIENT, W->id);
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
		if (poll_add_conn(fd, &c->io) < 0)
		{
			client_close(c, NULL, "could not watch socket: %m");
			continue;
		}
		/* data may already be there; edge-triggered registration reports it anyway */
	}
	return 0;
}

/* ---- startup packet ---- */

static bool
send_single_byte(Client *c, char b)
{
	return sbuf_queue(&c->sb, &b, 1) && client_flush(c);
}

/* Parse a v3 startup packet body: keep user/database and tracked parameters. */
static bool
parse_startup_params(Client *c, const uint8 *body, uint32 len, const char **unsupported_pq,
					 int *n_unsupported_pq)
{
	ProtoReader r;
	const char *name;
	const char *value;
	int			rc;
	AuthState  *a = c->auth;

	proto_reader_init(&r, body, len);
	while ((rc = proto_next_startup_param(&r, &name, &value)) == 1)
	{
		const char *tracked;

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
		else if ((tracked = params_tracked_name(name)) != NULL)
		{
			if (!params_set(&c->params, &c->params_len, tracked, value))
			{
				client_close(c, "53200", "out of memory for startup parameters");
				return false;
			}
			c->params_fp_valid = false;
		}
		else if (strcmp(name, "options") == 0 && value[0] == '\0')
			 /* empty options: nothing to carry */ ;
		else if (config_ignores_startup_param(name))
			 /* pgbun.ignore_startup_parameters */ ;
		else
		{
			client_close(c, "08P01", "unsupported startup parameter: %s", name);
			return false;
		}
	}
	if (rc < 0)
	{
		client_close(c, "08P01", "invalid startup packet layout");
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
 * pgbun.auth_type = hba: the first matching rule's method, as an AuthType,
 * or -1 when the client was refused (and closed) or logged in already.
 */
static int
hba_method(Client *c)
{
	AuthState  *a = c->auth;
	HbaConn		conn;
	socklen_t	len = sizeof(conn.addr);
	int			line;
	char		host[64];
	int32		port;
	bool		tls = c->sb.ssl != NULL;
	HbaClientCert clientcert;
	HbaDecision decision;
	const char *usermap;
	char		cn[NAMEDATALEN + 1];
	bool		have_cert;

	memset(&conn, 0, sizeof(conn));
	conn.unix_socket = c->unix_socket;
	conn.tls = tls;
	conn.user = a->user;
	conn.database = a->database;
	if (!c->unix_socket && getpeername(c->sb.fd, (struct sockaddr *) &conn.addr, &len) < 0)
	{
		client_close(c, "08006", "could not get the client's address: %m");
		return -1;
	}
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
		ereport(LOG, (errmsg("pgbun: hba line %d: certificate CN \"%s\" is not user \"%s\"",
							 line, cn, a->user)));
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
			ereport(LOG, (errmsg("pgbun: hba line %d rejects user \"%s\" database \"%s\" from %s",
								 line, a->user, a->database, host)));
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
				struct passwd pwbuf;
				struct passwd *pw = NULL;
				char		buf[1024];

				if (!c->unix_socket || getpeereid(c->sb.fd, &uid, &gid) != 0 ||
					getpwuid_r(uid, &pwbuf, buf, sizeof(buf), &pw) != 0 || pw == NULL ||
					(usermap ? !hba_usermap_ok(usermap, pw->pw_name, a->user) :
					 strcmp(pw->pw_name, a->user) != 0))
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
	ProtoBuf	pb;
	int			method = pgbun_auth_type;

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

	if (method == AUTH_TYPE_HBA && (method = hba_method(c)) < 0)
		return;
	if (method == AUTH_TYPE_TRUST)
	{
		auth_succeeded(c);
		return;
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
	else if (a->role.verifier_type == VERIFIER_SCRAM || method == AUTH_TYPE_SCRAM)
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
		pg_strong_random(a->md5_salt, sizeof(a->md5_salt));
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
		if (pgbun_log_disconnections)
			ereport(LOG, (errmsg("pgbun: TLS handshake with a client failed: %s", c->sb.error)));
		client_close(c, NULL, "TLS handshake failed");
		return false;
	}
	if (c->auth->tls_direct && !tls_alpn_postgresql(&c->sb))
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
	uint32		maxlen = Min((uint32) pgbun_max_packet_size, STARTUP_PACKET_MAX);
	const uint8 *p;

	for (;;)
	{
		ProtoResult pr = proto_parse_startup_header(c->sb.in ? c->sb.in + c->sb.parse_pos : NULL,
													sbuf_unparsed(&c->sb), maxlen, &sh);

		if (pr == PROTO_BAD_LENGTH)
		{
			client_close(c, "08P01", "invalid startup packet length");
			return false;
		}
		if (pr == PROTO_OK && sbuf_unparsed(&c->sb) >= sh.len)
			break;
		if (sbuf_unparsed(&c->sb) == 0 && !c->sb.ssl && tls_client_offered(c->unix_socket))
		{
			uint8		b;

			/*
			 * PostgreSQL 17 direct TLS: a ClientHello (a TLS handshake
			 * record, first byte 0x16) where a startup packet's length
			 * belongs. Peek so that OpenSSL reads it from the socket.
			 */
			if (recv(c->sb.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1 && b == 0x16)
				return client_start_tls(c, true);
		}
		switch (sbuf_fill(&c->sb))
		{
			case 0:
				return false;
			case -1:
				client_close(c, NULL, "connection closed during startup");
				return false;
			case -2:
			case -3:
				client_close(c, NULL, "read failed during startup");
				return false;
			default:
				break;
		}
	}

	p = c->sb.in + c->sb.parse_pos;
	switch (sh.kind)
	{
		case STARTUP_SSL:
			sbuf_consume(&c->sb, sh.len);
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
				cancel_forward(pid, key);
				/* like PostgreSQL: no answer, just close */
				client_close(c, NULL, "cancel request");
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
	socklen_t	len = sizeof(addr);
	int			delay_ms;

	if (c->auth->role.detail[0])
		ereport(LOG, (errmsg("pgbun: password authentication failed for user \"%s\"", c->auth->user),
					  errdetail_log("%s", c->auth->role.detail)));
	memset(&addr, 0, sizeof(addr));
	if (!c->unix_socket)
		(void) getpeername(c->sb.fd, (struct sockaddr *) &addr, &len);
	delay_ms = throttle_failure(&addr, c->unix_socket, pgbun_auth_failure_delay, W->now);
	if (delay_ms > 0)
	{
		/* the answer waits; the janitor gives it (client_login_fail_due) */
		c->auth->fail_at = W->now + (int64) delay_ms * 1000;
		return;
	}
	client_close(c, "28P01", "password authentication failed for user \"%s\"", c->auth->user);
}

bool
client_login_fail_due(Client *c)
{
	if (!c->auth || c->auth->fail_at == 0 || W->now < c->auth->fail_at)
		return false;
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
				if (a->role.verifier_type == VERIFIER_SCRAM &&
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
	if (avail < proto_msg_size(hdr))
		return PKT_NEED_FULL;
	handle_password_message(c, msg + PROTO_HDR_LEN, hdr->len - 4);
	if (c->closed)
		return PKT_STOP;
	/* logged in: what follows is for a server, not for this handler */
	return c->state == CL_LOGIN ? PKT_CONSUME : PKT_CONSUME_STOP;
}

static void
client_login_steps(Client *c);

/* Login input; once logged in, anything the client already sent goes on to a server. */
static void
client_login_input(Client *c)
{
	client_login_steps(c);
	if (!c->closed && c->state == CL_ACTIVE)
		client_pump_in(c);
}

static void
client_login_steps(Client *c)
{
	if (c->auth && c->auth->fail_at)
		return;					/* failed; nothing more is read until the answer goes out */
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
		socklen_t	len = sizeof(addr);

		if (getpeername(c->sb.fd, (struct sockaddr *) &addr, &len) == 0)
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
	if (!a->role.db_exists)
	{
		client_close(c, "3D000", "database \"%s\" does not exist", a->database);
		return;
	}
	if (!a->role.db_allows_conn)
	{
		client_close(c, "55000", "database \"%s\" is not currently accepting connections", a->database);
		return;
	}
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

	c->pool = pool;
	pg_strong_random(&c->cancel_pid, sizeof(c->cancel_pid));
	pg_strong_random(&c->cancel_key, sizeof(c->cancel_key));
	c->cancel_pid &= 0x7FFFFFFF;	/* clients expect a positive pid */
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

	if (pool->welcome)
		client_login_finished(c);
	else
	{
		/* the pool has never reached its server: its first login tells us the parameters */
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
	for (p = pool->welcome; p < pool->welcome + pool->welcome_len;)
	{
		const char *v = p + strlen(p) + 1;
		const char *own = client_param(c, p);

		proto_put_parameter_status(&pb, p, own ? own : v);
		p = v + strlen(v) + 1;
	}
	/* tracked parameters the client set that the server does not report */
	for (p = c->params; p && p < c->params + c->params_len;)
	{
		const char *v = p + strlen(p) + 1;

		if (!params_get(pool->welcome, pool->welcome_len, p))
			proto_put_parameter_status(&pb, p, v);
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
	if (pgbun_log_connections)
		ereport(LOG, (errmsg("pgbun: client login: user=%s database=%s", pool->user, pool->database)));
	(void) client_flush(c);
	/* the caller pumps the client's input once it is outside any pump of this client */
}

/* ---- logged in: forward to the server ---- */

static PktAction
client_msg_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Client	   *c = owner;
	Server	   *s = c->link;
	PktAction	action = PKT_FORWARD;

	if (hdr->type == 'X')
		return PKT_CLOSE;
	if ((hdr->type == 'd' || hdr->type == 'c' || hdr->type == 'f') && !(s && s->copy_in))
	{
		/*
		 * CopyData/CopyDone/CopyFail outside COPY FROM STDIN: PostgreSQL
		 * ignores them (the COPY failed while the client was still sending),
		 * so drop them here too rather than pin a server for nothing.
		 */
		return PKT_SKIP;
	}
	if (!s)
	{
		/* needs a server first (no side effects before that), unless pgbun can answer */
		if (c->pool->mode != POOL_MODE_SESSION && pgbun_max_prepared_statements > 0)
			return prepared_unlinked_message(c, hdr, msg, avail);
		return PKT_STOP;
	}
	if (s->track)
	{
		action = prepared_client_message(c, s, hdr, msg, avail);
		if (action == PKT_NEED_FULL || action == PKT_STOP)
			return action;
	}
	else if (hdr->type == 'P' && c->pool->mode != POOL_MODE_SESSION)
	{
		/* the statement name is the body's first string */
		const uint8 *body = msg + PROTO_HDR_LEN;
		uint32		have = avail > PROTO_HDR_LEN ? avail - PROTO_HDR_LEN : 0;

		if (!memchr(body, '\0', have) && avail < proto_msg_size(hdr))
			return PKT_NEED_FULL;
		if (have > 0 && body[0] != '\0')
		{
			c->named_parse = true;
			return PKT_STOP;
		}
	}
	switch (hdr->type)
	{
		case 'Q':				/* simple query */
		case 'S':				/* Sync */
		case 'F':				/* function call */
			s->outstanding++;
			s->unsynced = false;
			break;
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
			s->unsynced = true;
			break;
		case 'c':				/* CopyDone / CopyFail: the COPY ends (its Query is counted) */
		case 'f':
			s->copy_in = false;
			break;
		default:
			break;				/* Flush, COPY data: nothing new to answer */
	}
	/* busy means something is in flight, never just "a message went by" */
	if (!s->busy && (s->outstanding > 0 || s->unsynced))
	{
		/* first message of a new request */
		s->busy = true;
		s->query_start = W->now;
		if (s->xact_start == 0)
			s->xact_start = W->now;
		c->request_time = W->now;
		client_publish(c);
	}
	return action;
}

/* Pump whatever the client sent toward its server (asking the pool for one if needed). */
void
client_pump_in(Client *c)
{
	uint64		rd = 0;
	uint64		wr = 0;
	PumpResult	r;

	int			retries = 0;

	if (c->closed || c->state == CL_WAITING || c->state == CL_WAITING_LOGIN)
		return;
again:
	r = sbuf_pump(&c->sb, c->link ? &c->link->sb : NULL, (uint32) pgbun_max_packet_size,
				  client_msg_handler, c, &rd, &wr);
	if (rd && c->pool)
		pg_atomic_fetch_add_u64(&pgbun_shared->pools[c->pool->slot].bytes_received, rd);
	/* answers pgbun gave itself while no server was linked */
	if (!c->link && sbuf_out_pending(&c->sb) && !client_flush(c))
		return;
	switch (r)
	{
		case PUMP_IDLE:
		case PUMP_WAIT_WRITE:
			break;
		case PUMP_YIELD:
			if (!c->closed && !c->in_busy)
			{
				c->in_busy = true;
				dlist_push_tail(&W->busy_clients, &c->busy_node);
			}
			break;
		case PUMP_STOPPED:
			if (c->closed)
				break;
			if (c->stmt_error)
			{
				client_close(c, "08P01", "%s", c->stmt_error);
				break;
			}
			if (c->named_parse)
			{
				client_close(c, "0A000", "named prepared statements are off in %s pooling mode (pgbun.max_prepared_statements = 0); raise it, or use pool_mode=session for this client (pgbun.users / pgbun.databases)",
							 pool_mode_name(c->pool->mode));
				break;
			}
			if (!c->link)
				pool_request_server(c->pool, c);
			else if (++retries < 64)
			{
				/* earlier messages are out now: the handler can rewrite this one */
				rd = wr = 0;
				goto again;
			}
			else if (!c->in_busy)
			{
				c->in_busy = true;
				dlist_push_tail(&W->busy_clients, &c->busy_node);
			}
			break;
		case PUMP_CLOSE:
			client_close(c, NULL, "client sent Terminate");
			break;
		case PUMP_EOF:
			client_close(c, NULL, "client disconnected");
			break;
		case PUMP_SRC_ERROR:
			client_close(c, "08P01", "%s", c->sb.error ? c->sb.error : "protocol error");
			break;
		case PUMP_DST_ERROR:
			{
				Server	   *s = c->link;

				client_close(c, "08006", "server connection lost");
				if (s)
					server_close(s, "write to server failed");
				break;
			}
	}
	/*
	 * Transaction/statement mode: a server left at rest by what the client
	 * sent (a lone Flush, the end of a message that held a release back)
	 * goes back to the pool; server_try_release refuses while anything is in
	 * flight.
	 */
	if (!c->closed && c->link && c->pool->mode != POOL_MODE_SESSION)
	{
		c->link->release_pending = true;
		(void) server_try_release(c->link);
	}
}

/* A server has just been linked to this waiting client. */
void
client_server_ready(Client *c)
{
	if (c->wait_start)
	{
		pg_atomic_fetch_add_u64(&pgbun_shared->pools[c->pool->slot].wait_time_us,
								(uint64) Max(W->now - c->wait_start, 0));
		c->wait_start = 0;
	}
	client_set_state(c, CL_ACTIVE);
	client_pump_in(c);
}

void
client_on_event(Client *c, uint32 events)
{
	if (c->closed)
		return;
	switch (c->state)
	{
		case CL_LOGIN:
			if (sbuf_out_pending(&c->sb) && !client_flush(c))
				return;
			client_login_input(c);
			break;
		case CL_WAITING_LOGIN:
		case CL_WAITING:
			/* leave its next message unread until a server is there; notice a hang-up */
			if (sbuf_out_pending(&c->sb) && !client_flush(c))
				return;
			if (events & PEV_HUP)
			{
				char		b;
				ssize_t		n = recv(c->sb.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
					client_close(c, NULL, "client disconnected while waiting");
			}
			break;
		case CL_ACTIVE:
			if ((events & PEV_OUT))
			{
				if (sbuf_out_pending(&c->sb) && !client_flush(c))
					return;
				if (c->link)
					server_pump_out(c->link);
			}
			if (!c->closed && (events & (PEV_IN | PEV_HUP)))
				client_pump_in(c);
			break;
	}
}

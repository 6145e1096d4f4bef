/*
 * server_login.c - a new server connection: non-blocking connect, the
 * optional TLS set-up (SSLRequest, handshake), the startup packet and login
 * as the pool's role (SCRAM pass-through with the client's keys, or md5 from
 * the stored verifier), until the server's first ReadyForQuery hands it to
 * the pool.
 */
#include "postgres.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_sched.h"
#include "config.h"
#include "config_parse.h"
#include "counters.h"
#include "notify.h"
#include "params.h"
#include "pooler.h"
#include "prepared.h"
#include "proto.h"
#include "scram.h"
#include "auth.h"
#include "server_login.h"
#include "session.h"
#include "health.h"
#include "kdf.h"
#include "target.h"
#include "tls.h"
#include "auth_query.h"

/* The role a server connection logs in as: an auth connection's is its pool's (auth_user). */
static const char *
login_user(const Server *s)
{
	return s->authq ? s->pool->user : target_server_user(s->pool);
}

static bool
server_queue_startup(Server *s)
{
	const char *names[4] = {"user", "database", "search_path", "application_name"};
	const char *values[4];
	ProtoBuf	pb;

	values[0] = login_user(s);
	values[1] = target_server_dbname(s->pool);
	/*
	 * An auth connection pins search_path for its query (a startup setting
	 * beats ALTER ROLE / DATABASE ... SET), so nothing the auth_user's or
	 * the database's settings put first can shadow what the query names
	 * (PgBouncer's CVE-2025-12819).
	 */
	values[2] = "pg_catalog, pg_temp";
	values[3] = "pgbun auth_query";
	if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_startup(&pb, names, values, s->authq ? 4 : 2))
		return false;
	sbuf_out_commit(&s->sb, &pb);
	return true;
}

/*
 * A login failed: the pool's waiters hear of it, and pool logins wait
 * server_login_retry when throttle says so. Not for the pool's LISTEN
 * connection (notify.c), whose failures are its own.
 */
static void
login_failed(Server *s, bool throttle, const uint8 *err, uint32 len)
{
	if (s->listener)
	{
		notify_listener_login_failed(s);
		return;
	}
	if (s->authq)
	{
		auth_query_server_login_error(s, err, len);
		return;
	}
	if (throttle)
		s->pool->last_login_failure = W->now;
	pool_server_login_failed(s->pool, err, len);
}

static Server *server_open(Pool *pool, int host, bool listener, struct AqPool *authq);

void
server_login_host_failed(Server *s, const char *reason)
{
	Pool	   *pool = s->pool;

	if (s->closed)
		return;
	if (s->hslot >= 0)
		health_host_failed(s->hslot, reason);	/* a host of a list: the pool tries the next */
	if (s->listener)
		notify_listener_login_failed(s);
	else if (s->authq)
		;						/* auth_query.c hears of it when it closes */
	else if (s->hslot < 0)
	{
		pool->last_login_failure = W->now;
		pool_server_login_failed(pool, NULL, 0);
	}
	server_close(s, reason);
}

/* Open a new connection for the pool (counted already by the caller). */
Server *
server_launch(Pool *pool, int host)
{
	return server_open(pool, host, false, NULL);
}

/* Open an auth_query connection (auth_query.c): counted in the pool, on no pool list. */
Server *
server_launch_auth_query(Pool *pool, int host, struct AqPool *authq)
{
	return server_open(pool, host, false, authq);
}

/* Open the pool's LISTEN connection (notify.c): not counted in pool_size. */
Server *
server_launch_listener(Pool *pool)
{
	const char *why;
	int			host = pool->target && pool->target->health ? target_pick_host(pool->target, &why) : 0;

	if (host < 0)
		return NULL;			/* no usable host now: notify.c tries again later */
	return server_open(pool, host, true, NULL);
}

static Server *
server_open(Pool *pool, int host, bool listener, struct AqPool *authq)
{
	Server	   *s;
	int			fd;
	int			rc;
	ProtoBuf	pb;
	bool		queued;
	Target	   *t = pool->target;

	s = calloc(1, sizeof(Server));
	if (s)
	{
		if (!t || t->is_default)
		{
			memcpy(&s->addr, &W->server_addr, W->server_addr_len);
			s->addr_len = W->server_addr_len;
			strlcpy(s->addr_text, W->server_addr_text, sizeof(s->addr_text));
			s->port = W->server_port;
			s->hslot = -1;
		}
		else
		{
			TargetHost *h = &t->hosts[host];

			memcpy(&s->addr, &h->addr, h->addr_len);
			s->addr_len = h->addr_len;
			strlcpy(s->addr_text, h->addr_text, sizeof(s->addr_text));
			s->port = h->addr.ss_family == AF_UNIX ? 0 : h->port;
			s->hslot = h->hslot;
		}
		s->last_check = W->now;
		s->route_id = t ? t->route_id : 0;
		s->sched_batch = -1;	/* no backend pid yet: backend_sched_login decides */
	}
	fd = s ? socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
	if (fd < 0)
	{
		/* not opened: give back the count the caller reserved (server_close does it otherwise) */
		ereport(LOG, (errmsg("pgbun: could not create a socket for a server connection: %m")));
		if (!listener)
			pg_atomic_fetch_sub_u32(&pgbun_shared->pools[pool->slot].server_count, 1);
		free(s);
		return NULL;
	}
	if (s->addr.ss_family != AF_UNIX)
	{
		int			one = 1;

		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	config_set_keepalive(fd, s->addr.ss_family != AF_UNIX);
	if (s->hslot >= 0)
		pg_atomic_fetch_add_u32(&pgbun_shared->hosts[s->hslot].n_servers, 1);
	s->io.kind = IO_SERVER;
	s->pool = pool;
	s->listener = listener;
	s->authq = authq;
	s->tx_status = 'I';
	track_init(&s->tracker, prepared_entry_gone, s);
	s->connect_time = s->last_used = W->now;
	sbuf_init(&s->sb, fd);
	s->slot = pgbun_conn_slot_alloc(CONN_SERVER, W->id);
	if (s->slot >= 0)
	{
		PgbunConnSlot *slot = pgbun_conn_slot(s->slot);

		PGBUN_SLOT_WRITE_BEGIN(slot);
		slot->pool = pool->slot;
		slot->connect_time = s->connect_time;
		strlcpy(slot->addr, s->addr_text, sizeof(slot->addr));
		slot->port = s->port;
		memcpy(&slot->sv_sockaddr, &s->addr, s->addr_len);
		slot->sv_sockaddr_len = s->addr_len;
		slot->host_slot = (int16) s->hslot;
		strlcpy(slot->target, (t && !t->is_default) || (t && t->entry.name[0]) ? t->entry.name : "",
				sizeof(slot->target));
		PGBUN_SLOT_WRITE_END(slot);
	}
	if (!listener)
		pool->n_servers++;
	server_set_state(s, SV_LOGIN);

	rc = connect(fd, (struct sockaddr *) &s->addr, s->addr_len);
	/* EAGAIN is no connect under way: a Unix socket's full listen queue, or no local port left */
	if (rc < 0 && errno != EINPROGRESS)
	{
		char		reason[256];

		snprintf(reason, sizeof(reason), "could not connect to server %s: %m", s->addr_text);
		ereport(LOG, (errmsg("pgbun: %s", reason)));
		/* registered nowhere yet: close through the common path */
		s->sb.fd = fd;
		if (s->hslot >= 0)
			health_host_failed(s->hslot, reason);
		else if (!listener)
			pool->last_login_failure = W->now;
		server_close(s, reason);
		return NULL;
	}
	s->connecting = (rc < 0);
	if (poll_add_conn(fd, &s->io) < 0)
	{
		server_close(s, "could not watch socket");
		return NULL;
	}

	/* TLS first (server_tls_sslmode prefer and up, TCP only): SSLRequest instead of the startup packet */
	if (tls_server_wanted(s->addr.ss_family))
	{
		queued = sbuf_out_begin(&s->sb, &pb) && proto_put_ssl_request(&pb);
		if (queued)
			sbuf_out_commit(&s->sb, &pb);
		s->tls_step = SV_TLS_ANSWER;
	}
	else
		queued = server_queue_startup(s);
	if (!queued)
	{
		server_close(s, "out of memory");
		return NULL;
	}
	if (!s->connecting)
		(void) sbuf_flush_out(&s->sb);
	return s;
}

/* ---- login ---- */

/* The TLS set-up with the server failed: log it, count a failed login, close. */
static void
server_tls_failed(Server *s, const char *reason)
{
	ereport(LOG, (errmsg("pgbun: TLS with server %s failed: %s", s->addr_text, reason)));
	server_login_host_failed(s, reason);
}

/*
 * Before the startup packet: read the answer to SSLRequest, then run the
 * handshake. true once the startup packet is on its way (TLS or, for
 * prefer with a server that said 'N', plain); false while waiting or when
 * the connection was closed.
 */
static bool
server_tls_progress(Server *s)
{
	if (s->tls_step == SV_TLS_ANSWER)
	{
		int			r;
		uint8		answer;

		if (sbuf_out_pending(&s->sb))
			return false;		/* the SSLRequest is not out yet */
		r = sbuf_fill(&s->sb);
		if (r == 0)
			return false;
		if (r < 0)
		{
			server_tls_failed(s, "server closed the connection after SSLRequest");
			return false;
		}
		answer = s->sb.in[s->sb.parse_pos];
		if (sbuf_unparsed(&s->sb) != 1)
		{
			/* nothing may follow the answer before the handshake (CVE-2021-23222) */
			server_tls_failed(s, answer == 'E' ? "server refused SSLRequest" :
							  "server sent unencrypted data after its answer to SSLRequest");
			return false;
		}
		sbuf_consume(&s->sb, 1);
		if (answer == 'S')
		{
			if (!tls_connect_start(&s->sb, s->addr_text))
			{
				server_tls_failed(s, "could not start TLS");
				return false;
			}
			s->tls_step = SV_TLS_HANDSHAKE;
		}
		else if (answer == 'N' && !tls_server_required())
		{
			s->tls_step = SV_TLS_NONE;
			if (!server_queue_startup(s) || sbuf_flush_out(&s->sb) < 0)
			{
				server_close(s, "could not send the startup packet");
				return false;
			}
			return true;
		}
		else
		{
			server_tls_failed(s, answer == 'N' ? "server does not support SSL, but pgbun.server_tls_sslmode requires it" :
							  "invalid answer to SSLRequest");
			return false;
		}
	}
	if (s->tls_step == SV_TLS_HANDSHAKE)
	{
		int			r = tls_handshake(&s->sb);

		if (r == 0)
			return false;
		if (r < 0)
		{
			server_tls_failed(s, s->sb.error);
			return false;
		}
		s->tls_step = SV_TLS_NONE;
		pgbun_conn_slot_set_tls(s->slot, tls_version(&s->sb));
		if (!server_queue_startup(s) || sbuf_flush_out(&s->sb) < 0)
		{
			server_close(s, "could not send the startup packet");
			return false;
		}
	}
	return true;
}

/* The server refused pgbun's login: tell the pool (and the log, with a hint). */
static void
server_login_error(Server *s, const uint8 *msg, uint32 len)
{
	ProtoErrorFields f;
	Pool	   *pool = s->pool;

	if (proto_parse_error_fields(msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN, &f))
	{
		if (f.sqlstate && strcmp(f.sqlstate, "53300") == 0)
			ereport(LOG,
					(errmsg("pgbun: the server refused a new connection for pool %s/%s: %s",
							pool->database, pool->user, f.message ? f.message : "too many clients"),
					 errhint("Server connections count against max_connections; raise it or lower pgbun.default_pool_size / pgbun.max_db_connections.")));
		else
			ereport(LOG,
					(errmsg("pgbun: server login failed for user \"%s\" database \"%s\": %s",
							pool->user, pool->database, f.message ? f.message : "?"),
					 errhint("pgbun logs in to %s as the client's role using SCRAM (or md5 for md5 passwords): pg_hba.conf needs a line such as \"%s all all scram-sha-256\" for it, above any peer/ident line.",
							 s->addr_text,
							 s->addr.ss_family == AF_UNIX ? "local" : "host")));
	}
	else
		ereport(LOG,
				(errmsg("pgbun: server login failed for user \"%s\" database \"%s\": the server sent a malformed error message",
						pool->user, pool->database)));
	login_failed(s, false, msg, len);
}


/* The login ends here: counted against the host, the connection closed. Returns false. */
static bool
server_auth_fail(Server *s)
{
	login_failed(s, true, NULL, 0);
	server_close(s, "login failed");
	return false;
}

/* Send the authentication answer queued; a failed write ends the login now, not at server_connect_timeout. */
static bool
server_auth_send(Server *s)
{
	if (sbuf_flush_out(&s->sb) >= 0)
		return true;
	ereport(LOG, (errmsg("pgbun: could not send the authentication answer to the server: %m")));
	return server_auth_fail(s);
}

/*
 * The password pgbun logs in with, if it has one, and where its SCRAM keys
 * are kept: a forced user's on the target, an auth_file role's on the pool
 * (allocated at first use). An auth connection logs in as auth_user: the
 * forced password only if that is the forced user.
 */
static void
server_password_source(Server *s, const char **password, ScramPasswordKeys **keys)
{
	Pool	   *pool = s->pool;
	Target	   *t = pool->target;
	bool		forced = t && t->entry.user[0] &&
		(!s->authq || strcmp(t->entry.user, pool->user) == 0);

	*password = forced ? (t->entry.password[0] ? t->entry.password : NULL) : pool->password;
	if (forced)
		*keys = &t->pw_keys;
	else
	{
		if (*password && !pool->pw_keys)
			pool->pw_keys = calloc(1, sizeof(ScramPasswordKeys));
		*keys = pool->pw_keys;
	}
}

/*
 * The salt (base64, into salt of SCRAM_SALT_B64_MAX) and iteration count of
 * the server's first SCRAM message (r=...,s=salt,i=n); 0 when malformed.
 */
static long
server_first_salt(const char *sf, uint32 len, char *salt_out)
{
	char		buf[SCRAM_MSG_MAX];
	char	   *salt;
	char	   *iter;
	char	   *end;
	long		n;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, sf, len);
	buf[len] = '\0';
	salt = strstr(buf, ",s=");
	iter = strstr(buf, ",i=");
	if (!salt || !iter)
		return 0;
	salt += 3;
	end = strchr(salt, ',');
	if (end)
		*end = '\0';
	n = strtol(iter + 3, NULL, 10);
	if (n < 1 || strlen(salt) >= SCRAM_SALT_B64_MAX)
		return 0;
	strlcpy(salt_out, salt, SCRAM_SALT_B64_MAX);
	return n;
}

/*
 * Iteration counts pgbun derives keys for. Off the loop up to 1,000,000
 * (PostgreSQL's default is 4096): a server's count is CPU of pgbun's two
 * threads, and a running derivation cannot be stopped, so a shutdown may
 * wait for one (about a second at most). Inline, when the threads cannot
 * run or are all taken, about 50 ms at most.
 */
#define SERVER_PASSWORD_MAX_ITERATIONS 1000000
#define SERVER_PASSWORD_MAX_INLINE_ITERATIONS 100000

typedef enum KeysResult
{
	KEYS_READY,					/* in s->scram: answer now */
	KEYS_PENDING,				/* a kdf.c thread derives them: server_keys_derived() answers */
	KEYS_FAILED,				/* logged; the login fails */
} KeysResult;

static void server_keys_derived(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key);

/* The derivation in flight (if any) is over: forget what it kept. */
static void
server_kdf_forget(Server *s)
{
	free(s->sasl_first);
	s->sasl_first = NULL;
	s->sasl_first_len = 0;
	if (s->kdf_pw)
	{
		explicit_bzero(s->kdf_pw, strlen(s->kdf_pw));
		free(s->kdf_pw);
		s->kdf_pw = NULL;
	}
}

/*
 * A configured password: the SCRAM keys for the salt and iteration count of
 * the server's first message, kept (keys) so that PBKDF2 runs once per salt,
 * not per login. A new salt goes to a kdf.c thread: the loop never runs it.
 */
static KeysResult
server_password_keys(Server *s, ScramPasswordKeys *k, const char *password, const char *sf, uint32 len)
{
	char		salt_b64[SCRAM_SALT_B64_MAX];
	long		n = server_first_salt(sf, len, salt_b64);
	ScramSecret secret;
	uint8		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	char	   *pw;

	if (!k || n == 0)
		return KEYS_FAILED;
	if (n > SERVER_PASSWORD_MAX_ITERATIONS)
	{
		ereport(LOG, (errmsg("pgbun: the server asks for %ld SCRAM iterations; pgbun derives keys from a password for at most %d",
							 n, SERVER_PASSWORD_MAX_ITERATIONS)));
		return KEYS_FAILED;
	}
	if (k->valid && k->iterations == n && strcmp(k->salt_b64, salt_b64) == 0)
	{
		memcpy(s->scram->client_key, k->client_key, SCRAM_KEY_BYTES);
		memcpy(s->scram->server_key, k->server_key, SCRAM_KEY_BYTES);
		return KEYS_READY;
	}
	if (!worker_kdf_ready() || kdf_jobs_in_flight() >= KDF_QUEUE_MAX)
	{
		/* no threads, or all queued up: inline, within a bound the loop can afford */
		if (n > SERVER_PASSWORD_MAX_INLINE_ITERATIONS)
		{
			ereport(LOG, (errmsg("pgbun: the server asks for %ld SCRAM iterations and pgbun cannot derive keys off its event loop now (%s); it does at most %d there",
								 n, worker_kdf_ready() ? "too many derivations and password checks in progress" : "no helper threads",
								 SERVER_PASSWORD_MAX_INLINE_ITERATIONS)));
			return KEYS_FAILED;
		}
		k->valid = false;
		if (!scram_keys_from_password(password, salt_b64, (int) n, k->client_key, k->server_key))
			return KEYS_FAILED;
		strlcpy(k->salt_b64, salt_b64, sizeof(k->salt_b64));
		k->iterations = (int) n;
		k->valid = true;
		ereport(DEBUG1, (errmsg("pgbun: derived the SCRAM keys of the password for user \"%s\" (inline)",
								target_server_user(s->pool))));
		memcpy(s->scram->client_key, k->client_key, SCRAM_KEY_BYTES);
		memcpy(s->scram->server_key, k->server_key, SCRAM_KEY_BYTES);
		return KEYS_READY;
	}
	memset(&secret, 0, sizeof(secret));
	strlcpy(secret.salt_b64, salt_b64, sizeof(secret.salt_b64));
	secret.iterations = (int) n;
	pw = scram_password_inputs(&secret, password, salt, &salt_len);
	if (!pw)
		return KEYS_FAILED;
	s->sasl_first = malloc(len);
	s->kdf_pw = strdup(password);
	if (s->sasl_first && s->kdf_pw)
	{
		memcpy(s->sasl_first, sf, len);
		s->sasl_first_len = len;
		s->kdf_job = kdf_submit(pw, salt, salt_len, (int) n, NULL, server_keys_derived, s);
	}
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (!s->kdf_job)
	{
		ereport(LOG, (errmsg("pgbun: out of memory for a SCRAM key derivation")));
		server_kdf_forget(s);
		return KEYS_FAILED;
	}
	ereport(DEBUG1, (errmsg("pgbun: deriving the SCRAM keys of the password for user \"%s\" off the event loop (%ld iterations)",
							target_server_user(s->pool), n)));
	return KEYS_PENDING;
}

/* The server's first SCRAM message, keys in hand: send the client-final message. */
static bool
server_sasl_final(Server *s, const char *sf, uint32 len)
{
	char		msg[SCRAM_MSG_MAX];
	const char *err = NULL;
	ProtoBuf	pb;

	if (!s->scram || scram_client_final(s->scram, sf, len, msg, sizeof(msg), &err) != 1)
	{
		ereport(LOG, (errmsg("pgbun: SCRAM exchange with the server failed: %s", err ? err : "unexpected message")));
		goto fail;
	}
	if (!sbuf_out_begin(&s->sb, &pb) ||
		!proto_put_sasl_response(&pb, (const uint8 *) msg, strlen(msg)))
		goto fail;
	sbuf_out_commit(&s->sb, &pb);
	return server_auth_send(s);
fail:
	return server_auth_fail(s);
}

/* A kdf.c thread derived the keys for a login's salt (loop thread, kdf_collect). */
static void
server_keys_derived(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key)
{
	Server	   *s = owner;
	char	   *sf = s->sasl_first;
	uint32		len = s->sasl_first_len;
	const char *password;
	ScramPasswordKeys *k;

	s->kdf_job = NULL;
	s->sasl_first = NULL;
	if (!ok || !s->scram)
	{
		ereport(LOG, (errmsg("pgbun: could not derive SCRAM keys from the password of user \"%s\"",
							 target_server_user(s->pool))));
		server_kdf_forget(s);
		free(sf);
		(void) server_auth_fail(s);
		return;
	}
	memcpy(s->scram->client_key, client_key, SCRAM_KEY_BYTES);
	memcpy(s->scram->server_key, server_key, SCRAM_KEY_BYTES);
	ereport(DEBUG1, (errmsg("pgbun: derived the SCRAM keys of the password for user \"%s\"",
							target_server_user(s->pool))));
	/* kept for the next login, unless a reload changed the password meanwhile */
	server_password_source(s, &password, &k);
	if (k && password && strcmp(password, s->kdf_pw) == 0)
	{
		long		n = server_first_salt(sf, len, k->salt_b64);

		k->iterations = (int) n;
		memcpy(k->client_key, client_key, SCRAM_KEY_BYTES);
		memcpy(k->server_key, server_key, SCRAM_KEY_BYTES);
		k->valid = n > 0;
	}
	server_kdf_forget(s);
	(void) server_sasl_final(s, sf, len);
	free(sf);
}

/* The server connection goes away: a derivation in flight is not delivered. */
void
server_login_forget(Server *s)
{
	if (s->kdf_job)
	{
		kdf_cancel(s->kdf_job);
		s->kdf_job = NULL;
	}
	server_kdf_forget(s);
}

/* Answer one Authentication request from the server. false: give up (already closed). */
static bool
server_answer_auth(Server *s, const uint8 *body, uint32 len)
{
	ProtoReader r;
	uint32		code;
	ProtoBuf	pb;
	Pool	   *pool = s->pool;
	char		msg[SCRAM_MSG_MAX];
	/* the entry's forced password, else the role's own from pgbun.auth_file */
	const char *forced_pw;
	ScramPasswordKeys *keys;

	server_password_source(s, &forced_pw, &keys);
	proto_reader_init(&r, body, len);
	code = proto_read_int32(&r);
	if (r.error)
		goto protocol_error;
	switch (code)
	{
		case PROTO_AUTH_OK:
			return true;
		case PROTO_AUTH_CLEARTEXT:
			if (!forced_pw)
			{
				ereport(LOG, (errmsg("pgbun: server asked for a cleartext password for user \"%s\"; pgbun knows none",
									 target_server_user(pool)),
							  errhint("Give the database entry user= and password=, or use scram-sha-256 in pg_hba.conf for pgbun's connections.")));
				goto fail;
			}
			if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_password(&pb, forced_pw))
				goto fail;
			sbuf_out_commit(&s->sb, &pb);
			goto send;
		case PROTO_AUTH_MD5:
			{
				const uint8 *salt = proto_read_bytes(&r, 4);
				char		answer[36];

				if (!salt)
					goto protocol_error;
				if (forced_pw)
				{
					char		verifier[40];
					char		buf[NAMEDATALEN * 4];

					/* md5(password || user), as CREATE ROLE stores it */
					snprintf(buf, sizeof(buf), "%s%s", forced_pw, login_user(s));
					strcpy(verifier, "md5");
					if (!pgbun_md5_hex(buf, strlen(buf), verifier + 3) ||
						!auth_md5_response(verifier, salt, answer))
						goto fail;
				}
				else if (!pool->md5_verifier || !auth_md5_response(pool->md5_verifier, salt, answer))
				{
					ereport(LOG, (errmsg("pgbun: server asked for md5 authentication for user \"%s\" but the role has no md5 password",
										 pool->user),
								  errhint("Use scram-sha-256 in pg_hba.conf for pgbun's connections.")));
					goto fail;
				}
				if (!sbuf_out_begin(&s->sb, &pb) || !proto_put_password(&pb, answer))
					goto fail;
				sbuf_out_commit(&s->sb, &pb);
				goto send;
			}
		case PROTO_AUTH_SASL:
			{
				bool		offered = false;
				const char *mech;

				while ((mech = proto_read_string(&r)) != NULL && mech[0] != '\0')
					if (strcmp(mech, "SCRAM-SHA-256") == 0)
						offered = true;
				if (!offered || (!pool->have_scram_keys && !forced_pw))
				{
					ereport(LOG, (errmsg("pgbun: cannot log in to the server as \"%s\" with SCRAM: %s",
										 pool->user, offered ? "no client of this role has logged in with SCRAM yet" : "server did not offer SCRAM-SHA-256")));
					goto fail;
				}
				s->scram = calloc(1, sizeof(ScramClient));
				if (!s->scram)
					goto fail;
				if (!forced_pw)
				{
					memcpy(s->scram->client_key, pool->client_key, SCRAM_KEY_BYTES);
					memcpy(s->scram->server_key, pool->server_key, SCRAM_KEY_BYTES);
				}
				if (!scram_client_first(s->scram, msg, sizeof(msg)) ||
					!sbuf_out_begin(&s->sb, &pb) ||
					!proto_put_sasl_initial(&pb, "SCRAM-SHA-256", (const uint8 *) msg, strlen(msg)))
					goto fail;
				sbuf_out_commit(&s->sb, &pb);
				goto send;
			}
		case PROTO_AUTH_SASL_CONTINUE:
			if (s->scram && forced_pw)
			{
				switch (server_password_keys(s, keys, forced_pw, (const char *) body + 4, len - 4))
				{
					case KEYS_READY:
						break;
					case KEYS_PENDING:
						return true;	/* server_keys_derived() answers */
					case KEYS_FAILED:
						ereport(LOG, (errmsg("pgbun: could not derive SCRAM keys from the password of user \"%s\"",
											 target_server_user(pool))));
						goto fail;
				}
			}
			return server_sasl_final(s, (const char *) body + 4, len - 4);
		case PROTO_AUTH_SASL_FINAL:
			if (!s->scram || !scram_client_verify_final(s->scram, (const char *) body + 4, len - 4))
			{
				ereport(LOG, (errmsg("pgbun: the server's SCRAM signature did not verify; closing")));
				goto fail;
			}
			free(s->scram);
			s->scram = NULL;
			return true;
		default:
			ereport(LOG, (errmsg("pgbun: server asked for an authentication method pgbun cannot answer (code %u) for user \"%s\"",
								 code, pool->user),
						  errhint("pgbun never knows passwords: use scram-sha-256, md5 or trust in pg_hba.conf for pgbun's connections.")));
			goto fail;
	}

send:
	return server_auth_send(s);
protocol_error:
	ereport(LOG, (errmsg("pgbun: malformed authentication request from the server")));
fail:
	return server_auth_fail(s);
}

static PktAction
server_login_handler(void *owner, const ProtoHeader *hdr, const uint8 *msg, uint32 avail)
{
	Server	   *s = owner;
	uint32		size = proto_msg_size(hdr);

	if (avail < size)
		return PKT_NEED_FULL;
	if (s->kdf_job && hdr->type != 'E' && hdr->type != 'N')
	{
		/* the server owes pgbun's SASL response an answer before anything else */
		ereport(LOG, (errmsg("pgbun: the server sent '%c' while pgbun was still deriving its SCRAM keys; closing",
							 hdr->type)));
		(void) server_auth_fail(s);
		return PKT_STOP;
	}
	switch (hdr->type)
	{
		case 'R':
			if (!server_answer_auth(s, msg + PROTO_HDR_LEN, hdr->len - 4))
				return PKT_STOP;
			return PKT_CONSUME;
		case 'S':
			{
				ProtoReader r;
				const char *name;
				const char *value;

				proto_reader_init(&r, msg + PROTO_HDR_LEN, hdr->len - 4);
				name = proto_read_string(&r);
				value = proto_read_string(&r);
				if (!r.error)
				{
					(void) params_set(&s->params, &s->params_len, name, value);
					s->params_fp_valid = false;
				}
				return PKT_CONSUME;
			}
		case 'K':
			{
				ProtoReader r;

				proto_reader_init(&r, msg + PROTO_HDR_LEN, hdr->len - 4);
				s->be_pid = proto_read_int32(&r);
				s->be_key = proto_read_int32(&r);
				return PKT_CONSUME;
			}
		case 'E':
			if (s->hslot >= 0)
			{
				ProtoErrorFields f;

				/* shutting down, starting up, recovering, too many: the host's trouble, not the role's */
				if (proto_parse_error_fields(msg + PROTO_HDR_LEN, size - PROTO_HDR_LEN, &f) &&
					f.sqlstate && (strncmp(f.sqlstate, "57", 2) == 0 || strncmp(f.sqlstate, "08", 2) == 0 ||
								   strcmp(f.sqlstate, "53300") == 0))
				{
					char		reason[200];

					snprintf(reason, sizeof(reason), "%s: %.150s", f.sqlstate, f.message ? f.message : "?");
					ereport(LOG, (errmsg("pgbun: server %s refused a login: %s", s->addr_text, reason)));
					server_login_host_failed(s, reason);
					return PKT_STOP;
				}
			}
			server_login_error(s, msg, size);
			server_close(s, "login refused by the server");
			return PKT_STOP;
		case 'N':
		case 'v':
			return PKT_CONSUME;
		case 'Z':
			{
				Pool	   *pool = s->pool;

				if (s->hslot >= 0)
				{
					int			role;
					bool		ro;

					health_server_role(s, &role, &ro);
					health_host_login(s->hslot, role, ro);
					if (role != HOST_ROLE_UNKNOWN && pool->target && !target_accepts(pool->target, s->hslot))
					{
						/* the wrong kind of host (libpq's target_session_attrs): the next one is tried */
						ereport(DEBUG1, (errmsg("pgbun: server %s is a %s; database \"%s\" wants %s",
												s->addr_text, role == HOST_ROLE_PRIMARY ? "primary" : "standby",
												pool->database, tsa_name(pool->target->entry.tsa))));
						server_close(s, "the host does not have the role the database wants");
						return PKT_STOP;
					}
				}
				/* every login refreshes the defaults new clients are shown (not an auth connection's) */
				if (!s->authq)
					session_server_login(s);
				pool->last_login_failure = 0;
				free(pool->login_error);
				pool->login_error = NULL;
				s->last_used = W->now;
				backend_sched_login(s);
				/* a Unix-socket backend reading a query would wake an EPOLLOUT watcher each time */
				if (!s->sb.ssl && !s->listener && !s->authq)
					sbuf_out_on_demand(&s->sb, server_out_watch, true);
				server_publish(s);	/* BackendKeyData, for cancels */
				/* joining the pool (maybe linking a client) happens after this pump */
				s->login_done = true;
				counters_note_server_login(pool->slot, true, W->now);
				return PKT_CONSUME_STOP;
			}
		default:
			ereport(LOG, (errmsg("pgbun: unexpected message '%c' from the server during login",
								 (hdr->type >= 0x20 && hdr->type < 0x7f) ? hdr->type : '?')));
			login_failed(s, false, NULL, 0);
			server_close(s, "protocol error during login");
			return PKT_STOP;
	}
}

/* ---- linked / hidden-query traffic ---- */



/*
 * Drive a connection that is not yet in the pool: finish the connect, the
 * TLS set-up and the login. true: the caller goes on with normal traffic
 * (the server is past login); false: nothing more to do for this event.
 */
bool
server_login_event(Server *s, uint32 events)
{
	if (s->connecting)
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		if (!(events & (PEV_OUT | PEV_HUP)))
			return false;
		if (getsockopt(s->sb.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
		{
			char		reason[256];

			errno = err;
			snprintf(reason, sizeof(reason), "could not connect to server %s: %m", s->addr_text);
			ereport(LOG, (errmsg("pgbun: %s", reason)));
			server_login_host_failed(s, reason);
			return false;
		}
		s->connecting = false;
	}
	if (sbuf_out_pending(&s->sb))
	{
		int			r = sbuf_flush_out(&s->sb);

		if (r < 0)
		{
			server_close(s, "write to server failed");
			return false;
		}
	}
	if (s->tls_step != SV_TLS_NONE && !server_tls_progress(s))
		return false;
	if (s->state == SV_LOGIN)
	{
		uint64		rd = 0;
		uint64		wr = 0;
		PumpResult	r = sbuf_pump(&s->sb, NULL, SBUF_SIZE, server_login_handler, s, &rd, &wr);

		if (s->closed)
			return false;
		switch (r)
		{
			case PUMP_EOF:
				if (s->hslot >= 0 || s->listener || s->authq)
					server_login_host_failed(s, "server closed the connection during login");
				else
				{
					pool_server_login_failed(s->pool, NULL, 0);
					server_close(s, "server closed the connection during login");
				}
				return false;
			case PUMP_SRC_ERROR:
				if (s->hslot >= 0 || s->listener || s->authq)
					server_login_host_failed(s, s->sb.error ? s->sb.error : "protocol error during login");
				else
				{
					pool_server_login_failed(s->pool, NULL, 0);
					server_close(s, s->sb.error ? s->sb.error : "protocol error during login");
				}
				return false;
			default:
				break;
		}
		if (s->login_done)
		{
			s->login_done = false;
			if (s->listener)
			{
				notify_listener_ready(s);	/* never joins the pool */
				return false;
			}
			if (s->authq)
			{
				auth_query_server_ready(s); /* never joins the pool either */
				return false;
			}
			if (s->pool->target && s->pool->target->entry.connect_query[0])
			{
				/* the entry's connect_query first; hidden_query_done makes it available */
				server_set_state(s, SV_USED);
				s->connect_query = true;
				if (!server_queue_query(s, s->pool->target->entry.connect_query) || sbuf_flush_out(&s->sb) < 0)
				{
					server_close(s, "could not send connect_query");
					return false;
				}
				server_set_state(s, SV_TESTED);
				return false;
			}
			pool_server_available(s->pool, s);
			if (s->closed)
				return false;
			/* a just-linked server may already have more to read */
			server_pump_out(s);
			return false;
		}
		if (s->state == SV_LOGIN)
			return false;
	}
	return true;
}

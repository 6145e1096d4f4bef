/*
 * tls.c - TLS contexts, handshakes and record I/O with OpenSSL (tls.h).
 *
 * Two contexts: accept_ctx for clients that connect to pgbun (pgbun is the
 * TLS server; by default with the server's own ssl_cert_file/ssl_key_file
 * when pgbun.client_tls_* name none and ssl = on), connect_ctx for pgbun's
 * TCP connections to a server (pgbun is the TLS client). Both run with
 * partial writes and moving write buffers allowed (sbuf.c writes straight
 * from its input buffers, which move), released idle buffers (an idle TLS
 * connection keeps no 16 kB record buffers), no renegotiation, no session
 * tickets or cache (as PostgreSQL), and never a pass-phrase prompt.
 *
 * All calls are non-blocking: WANT_READ/WANT_WRITE become EAGAIN for
 * sbuf.c, and the edge-triggered epoll registration reports the socket
 * again. OpenSSL's error queue is cleared before every call so that
 * SSL_get_error() sees only this call's outcome.
 */
#include "postgres.h"

#include <errno.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "libpq/libpq.h"
#include "postmaster/postmaster.h"

#include "config.h"
#include "settings.h"
#include "tls.h"

static SSL_CTX *accept_ctx = NULL;
static SSL_CTX *connect_ctx = NULL;
static int	connect_mode = TLS_MODE_DISABLE;

/* Why the last handshake failed (sb->error points here; read before the next one). */
static char tls_error_buf[256];

static const unsigned char alpn_postgresql[] = "\x0apostgresql";

/* Never prompt for a key pass-phrase: an encrypted key simply fails to load. */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	if (size > 0)
		buf[0] = '\0';
	return 0;
}

/* The text of OpenSSL's oldest queued error (static strings only), or fallback. */
static const char *
ssl_error_text(const char *fallback)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : fallback;
}

bool
tls_parse_protocols(const char *value, int *min_version, int *max_version)
{
	static const struct
	{
		const char *name;
		int			version;
	}			names[] = {
		{"tlsv1.0", TLS1_VERSION},
		{"tlsv1.1", TLS1_1_VERSION},
		{"tlsv1.2", TLS1_2_VERSION},
		{"tlsv1.3", TLS1_3_VERSION},
	};
	const char *p = value ? value : "";
	int			lo = 0;
	int			hi = 0;

	while (*p)
	{
		size_t		n;
		int			v = 0;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if ((n == 6 && pg_strncasecmp(p, "secure", n) == 0) ||
			(n == 7 && pg_strncasecmp(p, "default", n) == 0))
		{
			lo = lo && lo < TLS1_2_VERSION ? lo : TLS1_2_VERSION;
			hi = TLS1_3_VERSION;
		}
		else if ((n == 3 && pg_strncasecmp(p, "all", n) == 0) ||
				 (n == 6 && pg_strncasecmp(p, "legacy", n) == 0))
		{
			lo = TLS1_VERSION;
			hi = TLS1_3_VERSION;
		}
		else
		{
			for (int i = 0; i < lengthof(names); i++)
				if (strlen(names[i].name) == n && pg_strncasecmp(p, names[i].name, n) == 0)
					v = names[i].version;
			if (v == 0)
				return false;
			if (lo == 0 || v < lo)
				lo = v;
			if (v > hi)
				hi = v;
		}
		p += n;
	}
	if (lo == 0)
		return false;
	*min_version = lo;
	*max_version = hi;
	return true;
}

/* ALPN: take "postgresql" when the client offers it; otherwise go on without ALPN. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel = NULL;

	if (SSL_select_next_proto(&sel, outlen, alpn_postgresql, sizeof(alpn_postgresql) - 1,
							  in, inlen) == OPENSSL_NPN_NEGOTIATED)
	{
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * Build one context. server_side: pgbun accepts (clients); else pgbun
 * connects (servers). NULL with *why set (static or tls_error_buf text).
 */
static SSL_CTX *
build_ctx(bool server_side, int mode, const char *cert, const char *key, const char *ca,
		  const char *protocols, const char *ciphers, const char **why)
{
	SSL_CTX    *ctx;
	int			min_v;
	int			max_v;

	if (!tls_parse_protocols(protocols, &min_v, &max_v))
	{
		*why = "invalid protocols setting";
		return NULL;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(server_side ? TLS_server_method() : TLS_client_method());
	if (!ctx)
	{
		*why = ssl_error_text("could not create an SSL context");
		return NULL;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
						| SSL_OP_IGNORE_UNEXPECTED_EOF
#endif
		);
	if (!SSL_CTX_set_min_proto_version(ctx, min_v) || !SSL_CTX_set_max_proto_version(ctx, max_v))
	{
		*why = "protocol versions not supported by this OpenSSL";
		goto fail;
	}
	if (ciphers && ciphers[0] && pg_strcasecmp(ciphers, "default") != 0 &&
		SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
	{
		*why = "no usable cipher in the ciphers setting";
		goto fail;
	}
	if (cert && cert[0])
	{
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		{
			snprintf(tls_error_buf, sizeof(tls_error_buf), "could not load certificate file \"%s\": %s",
					 cert, ssl_error_text("unknown error"));
			*why = tls_error_buf;
			goto fail;
		}
		if (!key || !key[0] || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
			SSL_CTX_check_private_key(ctx) != 1)
		{
			snprintf(tls_error_buf, sizeof(tls_error_buf), "could not load private key file \"%s\": %s",
					 key ? key : "", ssl_error_text("no key file set"));
			*why = tls_error_buf;
			goto fail;
		}
	}
	if (ca && ca[0])
	{
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		{
			snprintf(tls_error_buf, sizeof(tls_error_buf), "could not load root certificate file \"%s\": %s",
					 ca, ssl_error_text("unknown error"));
			*why = tls_error_buf;
			goto fail;
		}
		if (server_side)
		{
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);

			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
	}
	else if (!server_side && mode >= TLS_MODE_VERIFY_CA)
		(void) SSL_CTX_set_default_verify_paths(ctx);
	if (server_side)
	{
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		/* PgBouncer's meaning: verify-ca and verify-full both want a valid client certificate */
		if (mode >= TLS_MODE_VERIFY_CA)
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		else if (ca && ca[0])
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);	/* asked for, optional (hba cert) */
		else
			SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	else
	{
		(void) SSL_CTX_set_alpn_protos(ctx, alpn_postgresql, sizeof(alpn_postgresql) - 1);
		SSL_CTX_set_verify(ctx, mode >= TLS_MODE_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	}
	ERR_clear_error();
	return ctx;

fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

/* The client-side context: pgbun.client_tls_*, or the server's own files. */
static void
reload_accept_ctx(void)
{
	int			mode = pgbun_cfg->client_tls_sslmode;
	const char *cert = pgbun_cfg->client_tls_cert_file;
	const char *key = pgbun_cfg->client_tls_key_file;
	const char *ca = pgbun_cfg->client_tls_ca_file;
	const char *why = NULL;
	SSL_CTX    *ctx;

	if (mode == TLS_MODE_DISABLE)
	{
		SSL_CTX_free(accept_ctx);
		accept_ctx = NULL;
		return;
	}
	if ((!cert || !cert[0]) && (!key || !key[0]))
	{
		/* nothing of pgbun's own: the server's certificate when it has ssl = on */
		if (!EnableSSL || !ssl_cert_file || !ssl_cert_file[0])
		{
			if (mode >= TLS_MODE_REQUIRE)
				ereport(WARNING,
						(errmsg("pgbun: pgbun.client_tls_sslmode requires TLS but there is no certificate: TCP clients are refused"),
						 errhint("Set pgbun.client_tls_cert_file and pgbun.client_tls_key_file, or ssl = on in the server.")));
			SSL_CTX_free(accept_ctx);
			accept_ctx = NULL;
				return;
		}
		cert = ssl_cert_file;
		key = ssl_key_file;
		if (!ca || !ca[0])
			ca = ssl_ca_file;
	}
	ctx = build_ctx(true, mode, cert, key, ca, pgbun_cfg->client_tls_protocols,
					pgbun_cfg->client_tls_ciphers, &why);
	if (!ctx)
	{
		ereport(WARNING,
				(errmsg("pgbun: could not set up TLS for clients: %s", why),
				 errdetail(accept_ctx ? "The previous TLS settings stay in force." :
						   "Clients get no TLS until this is fixed.")));
		return;
	}
	if (mode >= TLS_MODE_VERIFY_CA && (!ca || !ca[0]))
		ereport(WARNING,
				(errmsg("pgbun: pgbun.client_tls_sslmode verifies client certificates but no CA file is set: every TLS client is refused"),
				 errhint("Set pgbun.client_tls_ca_file.")));
	SSL_CTX_free(accept_ctx);
	accept_ctx = ctx;
}

/* The context for pgbun's own server connections: pgbun.server_tls_*. */
static void
reload_connect_ctx(void)
{
	int			mode = pgbun_cfg->server_tls_sslmode;
	const char *why = NULL;
	SSL_CTX    *ctx;

	if (mode <= TLS_MODE_ALLOW)
	{
		SSL_CTX_free(connect_ctx);
		connect_ctx = NULL;
		connect_mode = mode;
		return;
	}
	ctx = build_ctx(false, mode, pgbun_cfg->server_tls_cert_file, pgbun_cfg->server_tls_key_file,
					pgbun_cfg->server_tls_ca_file, pgbun_cfg->server_tls_protocols,
					pgbun_cfg->server_tls_ciphers, &why);
	if (!ctx)
	{
		ereport(WARNING,
				(errmsg("pgbun: could not set up TLS for server connections: %s", why),
				 errdetail(connect_ctx ? "The previous TLS settings stay in force." :
						   "Server connections go without TLS (and fail where it is required).")));
		return;
	}
	SSL_CTX_free(connect_ctx);
	connect_ctx = ctx;
	connect_mode = mode;
}

void
tls_reload(void)
{
	reload_accept_ctx();
	reload_connect_ctx();
}

bool
tls_client_offered(bool unix_socket)
{
	return !unix_socket && accept_ctx != NULL;
}

bool
tls_client_required(bool unix_socket)
{
	return !unix_socket && pgbun_cfg->client_tls_sslmode >= TLS_MODE_REQUIRE;
}

bool
tls_server_wanted(int family)
{
	return family != AF_UNIX && pgbun_cfg->server_tls_sslmode >= TLS_MODE_PREFER &&
		(connect_ctx != NULL || pgbun_cfg->server_tls_sslmode >= TLS_MODE_REQUIRE);
}

bool
tls_server_required(void)
{
	return pgbun_cfg->server_tls_sslmode >= TLS_MODE_REQUIRE;
}

/* Attach a new SSL to sb's socket. */
static bool
start_ssl(SBuf *sb, SSL_CTX *ctx)
{
	SSL		   *ssl;

	if (!ctx)
		return false;
	ERR_clear_error();
	ssl = SSL_new(ctx);
	if (!ssl)
		return false;
	if (SSL_set_fd(ssl, sb->fd) != 1)
	{
		SSL_free(ssl);
		ERR_clear_error();
		return false;
	}
	sb->ssl = ssl;
	sb->tls_state = SBUF_TLS_HANDSHAKE;
	sb->tls_wpend = SBUF_WPEND_NONE;
	sb->drained = false;		/* TLS reads go on until SSL_read wants more */
	return true;
}

bool
tls_accept_start(SBuf *sb)
{
	if (!start_ssl(sb, accept_ctx))
		return false;
	SSL_set_accept_state(sb->ssl);
	return true;
}

bool
tls_connect_start(SBuf *sb, const char *host)
{
	unsigned char addr[16];
	bool		is_ip;

	if (!start_ssl(sb, connect_ctx))
		return false;
	SSL_set_connect_state(sb->ssl);
	is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	/* SNI only for names (RFC 6066), as libpq does */
	if (!is_ip && host[0])
		(void) SSL_set_tlsext_host_name(sb->ssl, host);
	if (connect_mode == TLS_MODE_VERIFY_FULL)
	{
		X509_VERIFY_PARAM *param = SSL_get0_param(sb->ssl);
		int			ok;

		if (is_ip)
			ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
		else
		{
			X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(sb->ssl, host);
		}
		if (ok != 1)
		{
			tls_close(sb);
			ERR_clear_error();
			return false;
		}
	}
	return true;
}

int
tls_handshake(SBuf *sb)
{
	int			rc;
	int			err;

	if (!sb->ssl || sb->tls_state == SBUF_TLS_FAILED)
	{
		sb->error = "TLS connection failed";
		return -1;
	}
	if (sb->tls_state == SBUF_TLS_READY)
		return 1;
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(sb->ssl);
	if (rc == 1)
	{
		sb->tls_state = SBUF_TLS_READY;
		return 1;
	}
	err = SSL_get_error(sb->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	sb->tls_state = SBUF_TLS_FAILED;
	if (SSL_get_verify_result(sb->ssl) != X509_V_OK)
		snprintf(tls_error_buf, sizeof(tls_error_buf), "certificate verify failed: %s",
				 X509_verify_cert_error_string(SSL_get_verify_result(sb->ssl)));
	else if ((err == SSL_ERROR_SYSCALL && rc == 0) || err == SSL_ERROR_ZERO_RETURN ||
			 (err == SSL_ERROR_SSL && ERR_peek_error() == 0))
		strlcpy(tls_error_buf, "peer closed the connection during the TLS handshake",
				sizeof(tls_error_buf));
	else if (err == SSL_ERROR_SYSCALL)
		snprintf(tls_error_buf, sizeof(tls_error_buf), "TLS handshake: %s",
				 errno ? strerror(errno) : ssl_error_text("connection closed"));
	else
		snprintf(tls_error_buf, sizeof(tls_error_buf), "TLS handshake: %s",
				 ssl_error_text("protocol error"));
	ERR_clear_error();
	sb->error = tls_error_buf;
	return -1;
}

/*
 * What an SSL_read/SSL_write that returned n <= 0 means, said the way
 * read()/send() would: -1 with errno EAGAIN to wait for the socket, 0 for
 * a reader's end of stream (close_notify, or TCP EOF without it), else -1
 * with the session marked failed.
 */
static ssize_t
io_outcome(SBuf *sb, int n, bool reading)
{
	switch (SSL_get_error(sb->ssl, n))
	{
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			errno = EAGAIN;
			return -1;
		case SSL_ERROR_ZERO_RETURN:
			if (reading)
				return 0;		/* close_notify: a clean end, answered on close */
			break;
		case SSL_ERROR_SYSCALL:
			if (reading && n == 0 && ERR_peek_error() == 0)
			{
				sb->tls_state = SBUF_TLS_FAILED;
				return 0;
			}
			break;
		default:
			break;
	}
	sb->tls_state = SBUF_TLS_FAILED;
	ERR_clear_error();
	errno = reading ? ECONNRESET : EPIPE;
	return -1;
}

ssize_t
tls_read(SBuf *sb, void *buf, size_t len)
{
	int			n;

	if (sb->tls_state != SBUF_TLS_READY)
	{
		errno = EIO;
		return -1;
	}
	ERR_clear_error();
	n = SSL_read(sb->ssl, buf, (int) Min(len, (size_t) INT_MAX));
	sb->tls_read_empty = n <= 0 && SSL_get_error(sb->ssl, n) == SSL_ERROR_WANT_READ;
	return n > 0 ? n : io_outcome(sb, n, true);
}

ssize_t
tls_write(SBuf *sb, const void *buf, size_t len)
{
	int			n;

	if (sb->tls_state != SBUF_TLS_READY)
	{
		errno = EPIPE;
		return -1;
	}
	ERR_clear_error();
	n = SSL_write(sb->ssl, buf, (int) Min(len, (size_t) INT_MAX));
	return n > 0 ? n : io_outcome(sb, n, false);
}

bool
tls_pending(const SBuf *sb)
{
	return sb->ssl && sb->tls_state == SBUF_TLS_READY && SSL_pending(sb->ssl) > 0;
}

/* Peeked at most: alerts alone come in a few small records. */
#define TLS_PEEK_MAX 128
#define TLS_RECORD_ALERT 21
#define TLS_RECORD_DATA 23
/* A TLS 1.3 record of an alert: 2 bytes, its inner content type, a 16-byte AEAD tag. */
#define TLS13_ALERT_RECORD_LEN 19

/*
 * Only alerts (a close_notify) wait on the socket, or nothing. Peeked, so
 * OpenSSL's state and sbuf.c's view of the socket stay as they were. TLS
 * 1.2 sends an alert as content type 21; TLS 1.3 encrypts it as data, in a
 * record of 19 bytes, where the smallest protocol message (5 bytes) makes
 * one of 22.
 */
bool
tls_only_alerts_unread(const SBuf *sb)
{
	uint8		buf[TLS_PEEK_MAX];
	ssize_t		n;
	ssize_t		off = 0;

	if (!sb->ssl || sb->tls_state != SBUF_TLS_READY || SSL_has_pending(sb->ssl))
		return false;
	n = recv(sb->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
	if (n == sizeof(buf))
		return false;			/* more than alerts */
	while (off < n)
	{
		uint32		len;

		if (n - off < 5)
			return false;		/* a record still arriving */
		len = ((uint32) buf[off + 3] << 8) | buf[off + 4];
		if (buf[off] != TLS_RECORD_ALERT &&
			!(buf[off] == TLS_RECORD_DATA && len == TLS13_ALERT_RECORD_LEN))
			return false;
		off += 5 + len;
	}
	return off == n;
}

void
tls_close(SBuf *sb)
{
	if (!sb->ssl)
		return;
	if (sb->tls_state == SBUF_TLS_READY && sb->tls_wpend == SBUF_WPEND_NONE)
	{
		/* one non-blocking try: the socket closes right after either way */
		ERR_clear_error();
		(void) SSL_shutdown(sb->ssl);
	}
	SSL_free(sb->ssl);
	ERR_clear_error();
	sb->ssl = NULL;
	sb->tls_state = SBUF_TLS_NONE;
	sb->tls_wpend = SBUF_WPEND_NONE;
}

const char *
tls_version(const SBuf *sb)
{
	return sb->ssl ? SSL_get_version(sb->ssl) : "";
}

bool
tls_peer_common_name(const SBuf *sb, char *out, int cap)
{
	X509	   *cert;
	int			n = -1;

	out[0] = '\0';
	if (!sb->ssl || SSL_get_verify_result(sb->ssl) != X509_V_OK ||
		(cert = SSL_get1_peer_certificate(sb->ssl)) == NULL)
		return false;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, cap);
	X509_free(cert);
	/* a CN with a NUL inside, or too long, matches no role */
	if (n <= 0 || n >= cap || (int) strlen(out) != n)
	{
		out[0] = '\0';
		return n == -1;			/* a verified certificate without a CN */
	}
	return true;
}

bool
tls_alpn_postgresql(const SBuf *sb)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;

	if (!sb->ssl)
		return false;
	SSL_get0_alpn_selected(sb->ssl, &p, &len);
	return p && len == sizeof(alpn_postgresql) - 2 && memcmp(p, alpn_postgresql + 1, len) == 0;
}

/*
 * RFC 5929 tls-server-end-point: the hash of the certificate pgbun presented,
 * with the certificate's signature hash, SHA-256 when that is MD5 or SHA-1
 * (as PostgreSQL's be_tls_get_certificate_hash).
 */
int
tls_server_end_point(const SBuf *sb, uint8 *out, int cap)
{
	X509	   *cert;
	int			algo_nid;
	const EVP_MD *md;
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!sb->ssl || sb->tls_state != SBUF_TLS_READY)
		return -1;
	cert = SSL_get_certificate(sb->ssl);
	if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo_nid, NULL))
		return -1;
	if (algo_nid == NID_md5 || algo_nid == NID_sha1)
		algo_nid = NID_sha256;
	md = EVP_get_digestbynid(algo_nid);
	if (!md || !X509_digest(cert, md, hash, &len) || (int) len > cap)
	{
		ERR_clear_error();
		return -1;
	}
	memcpy(out, hash, len);
	return (int) len;
}

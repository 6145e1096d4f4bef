/*
 * tls.h - TLS for pgbun's sockets (OpenSSL): the two contexts (one for
 * clients connecting to pgbun, one for pgbun's own server connections),
 * non-blocking handshakes, record I/O for sbuf.c, and the facts other
 * modules ask about a TLS connection (protocol version, the
 * tls-server-end-point channel-binding hash).
 *
 * Contexts are built from the pgbun.*_tls_* GUCs at worker start and on
 * every reload; a context that cannot be built (bad file, bad cipher list)
 * is reported in the log and the previous one stays in force. Connections
 * keep the context they started with (OpenSSL reference-counts it).
 *
 * No OpenSSL types leak out of here: callers see an SBuf and plain values.
 */
#ifndef PGBUN_TLS_H
#define PGBUN_TLS_H

#include "postgres.h"

#include <sys/types.h>

#include "sbuf.h"

/* pgbun.client_tls_sslmode / pgbun.server_tls_sslmode values (PgBouncer's). */
typedef enum TlsMode
{
	TLS_MODE_DISABLE = 0,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
} TlsMode;

/* Longest tls-server-end-point hash (SHA-512). */
#define TLS_CBIND_MAX 64

/* Build (or rebuild) both contexts from the GUCs. Worker start and reload. */
extern void tls_reload(void);

/* Does a client on this kind of socket get 'S' for an SSLRequest? */
extern bool tls_client_offered(bool unix_socket);
/* Must a TCP client use TLS (client_tls_sslmode require or stricter)? */
extern bool tls_client_required(bool unix_socket);
/* Should a new server connection over this address family ask for TLS? */
extern bool tls_server_wanted(int family);
extern bool tls_server_required(void);

/*
 * Put sb into TLS: accept (pgbun is the TLS server, for a client) or
 * connect (pgbun is the TLS client, to a server named host). The handshake
 * then runs in tls_handshake(). false: no context or out of memory.
 */
extern bool tls_accept_start(SBuf *sb);
extern bool tls_connect_start(SBuf *sb, const char *host);
/* Advance the handshake: 1 done, 0 waiting for the socket, -1 failed (sb->error says why). */
extern int	tls_handshake(SBuf *sb);

/* read()/send() look-alikes over TLS: -1 with errno EAGAIN when the socket must wait. */
extern ssize_t tls_read(SBuf *sb, void *buf, size_t len);
extern ssize_t tls_write(SBuf *sb, const void *buf, size_t len);
/* Decrypted bytes wait inside OpenSSL (no epoll event will report them). */
extern bool tls_pending(const SBuf *sb);
/* Nothing but TLS alerts (a close_notify) unread on the socket, or nothing at all. */
extern bool tls_only_alerts_unread(const SBuf *sb);
/* Send close_notify when the session is healthy, then free it. */
extern void tls_close(SBuf *sb);

/* "TLSv1.3" and the like, "" when sb is not TLS. */
extern const char *tls_version(const SBuf *sb);
/* The client asked for ALPN "postgresql" and got it. */
extern bool tls_alpn_postgresql(const SBuf *sb);
/*
 * The client presented a certificate that verified against the CA file:
 * true, with its subject's common name in out ("" when it has none or an
 * unusable one). false: no verified certificate.
 */
extern bool tls_peer_common_name(const SBuf *sb, char *out, int cap);
/* tls-server-end-point data (RFC 5929) for pgbun's own certificate on sb: bytes, or -1. */
extern int	tls_server_end_point(const SBuf *sb, uint8 *out, int cap);

/* Parse a protocols setting ("secure", "all", "tlsv1.2,tlsv1.3", ...) into min/max versions. */
extern bool tls_parse_protocols(const char *value, int *min_version, int *max_version);

#endif							/* PGBUN_TLS_H */

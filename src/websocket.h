/*
 * websocket.h - the PostgreSQL protocol inside WebSocket (RFC 6455) on
 * pgbun's own port, for clients that have no raw TCP (serverless and edge
 * runtimes: @neondatabase/serverless).
 *
 * A client whose first bytes are an HTTP/1.1 GET with "Upgrade: websocket"
 * (plain, or inside TLS) gets the handshake; from then on its socket is
 * read and written through a WsConn under sbuf.c, the same way TLS sits
 * there: ws_read() hands sbuf the unmasked payload of the client's binary
 * frames, ws_write() sends sbuf's bytes as unmasked binary frames. Login,
 * pooling and forwarding above see a plain byte stream.
 *
 * Bounds: each connection holds one small WsConn from the handshake to its
 * close, and a 16 kB buffer each way only while bytes wait in it (from a
 * per-worker free list, like sbuf's); a frame header is at most 14 bytes, a control
 * frame's payload 125, a data frame's payload pgbun.websocket_max_frame_size
 * (streamed, never buffered whole).
 */
#ifndef PGBUN_WEBSOCKET_H
#define PGBUN_WEBSOCKET_H

#include "postgres.h"

#include <sys/types.h>

#include "sbuf.h"
#include "settings.h"

extern bool pgbun_websocket;
extern char *pgbun_websocket_path;
extern char *pgbun_websocket_allowed_origins;
extern int	pgbun_websocket_max_frame_size;

/* Close codes pgbun sends (RFC 6455 section 7.4.1). */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_DATA		1003	/* text frames: pgbun carries binary only */
#define WS_CLOSE_TOO_BIG	1009

extern void websocket_define_gucs(void);

/* The start of a connection (n >= 1 bytes) is an HTTP request pgbun should answer. */
static inline bool
ws_wanted(const uint8 *p, uint32 n)
{
	return pgbun_cfg->websocket && n > 0 && p[0] == 'G';
}

/*
 * The upgrade request head at sb's unparsed input. 1: accepted, the 101
 * answer is on its way and sb reads and writes frames from now on (bytes
 * after the head were kept for the frame decoder); 0: the head is not
 * complete yet, read more; -1: refused, an HTTP error answer is queued in
 * sb's out buffer (flush it, then close) and *why says why.
 */
extern int	ws_accept_upgrade(SBuf *sb, const char **why);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: out gets 28 characters and a NUL. */
extern bool ws_accept_key(const char *key, size_t key_len, char out[29]);

/* read()/send() look-alikes for sbuf.c (errno EAGAIN when the socket must wait). */
extern ssize_t ws_read(SBuf *sb, void *buf, size_t len);
extern ssize_t ws_write(SBuf *sb, const void *buf, size_t len);
/* Undecoded frame bytes wait in the WsConn (no epoll event will report them). */
extern bool ws_pending(const SBuf *sb);
/* Send a close frame (one non-blocking try) and free the WsConn. */
extern void ws_close(SBuf *sb);
/* Frame buffers sb holds now (0, 1 or 2: none while idle). */
extern int	ws_buffers_held(const SBuf *sb);
/* Why the connection's last ws_read failed, or NULL. */
extern const char *ws_error(const SBuf *sb);

#endif							/* PGBUN_WEBSOCKET_H */

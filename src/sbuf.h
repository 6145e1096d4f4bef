/*
 * sbuf.h - non-blocking buffered socket I/O between a client and a server.
 *
 * The input buffer of one side doubles as the send queue to the other side
 * (no copy): sbuf_pump() reads from src, frames messages with proto.c, asks
 * a handler what to do with each one, and writes runs of forwarded messages
 * to dst in one write. A message larger than the buffer is streamed through;
 * only messages the pooler must read (NEED_FULL) have to fit.
 *
 * Buffers come from a per-worker pool and are taken only while data flows:
 * an idle connection holds no buffer at all.
 */
#ifndef PGBUN_SBUF_H
#define PGBUN_SBUF_H

#include "postgres.h"

#include "proto.h"

#define SBUF_SIZE (16 * 1024)

struct ssl_st;
struct WsConn;
struct HttpSqlConn;

/* Where a connection's TLS stands (tls.c moves it). */
typedef enum SBufTls
{
	SBUF_TLS_NONE = 0,			/* plain socket */
	SBUF_TLS_HANDSHAKE,			/* ssl set, handshake running */
	SBUF_TLS_READY,				/* application data flows through ssl */
	SBUF_TLS_FAILED,			/* a fatal TLS error: no more I/O, no close_notify */
} SBufTls;

/* Which buffer an unfinished SSL_write was given (it must be retried with the same bytes). */
typedef enum SBufWPend
{
	SBUF_WPEND_NONE = 0,
	SBUF_WPEND_OUT,				/* the pooler-made out buffer */
	SBUF_WPEND_FORWARD,			/* the peer's forwarded bytes */
} SBufWPend;

struct SBuf;

/*
 * Turns the socket's write-readiness events on or off (0: done). An SBuf
 * with one gets them only while a write is stuck: a Unix-socket peer that
 * reads what it was sent wakes an EPOLLOUT watcher every time, one wakeup
 * of the worker per query for nothing.
 */
typedef int (*SBufOutWatch) (struct SBuf *s, bool on);

typedef struct SBuf
{
	int			fd;
	uint8	   *in;				/* pooled buffer or NULL */
	uint32		send_pos;		/* next byte to write to the peer */
	uint32		send_end;		/* end of the bytes committed for forwarding */
	uint32		parse_pos;		/* next byte not yet framed */
	uint32		in_end;			/* end of bytes read */
	uint32		pkt_remain;		/* bytes of the current message still to arrive */
	bool		pkt_skip;		/* ... and they are dropped, not forwarded */
	int8		decided;		/* action waiting for a flush, -1 if none */
	bool		stop_pending;	/* return PUMP_STOPPED once forwarded bytes are out */
	bool		drained;		/* the last read was short: nothing to read until the next
								 * readiness event (sbuf_ready_to_read) */
	bool		hup_seen;		/* the peer hung up: read until EOF, no shortcut */
	uint32		replace_len;	/* PKT_REPLACE_PREFIX: bytes of the message to drop */
	uint8	   *out;			/* pooler-made bytes for this socket, or NULL */
	uint32		out_pos;
	uint32		out_end;
	const char *error;			/* why the last pump failed (static text) */
	struct ssl_st *ssl;			/* TLS session, or NULL for a plain socket */
	uint8		tls_state;		/* SBufTls */
	uint8		tls_wpend;		/* SBufWPend (WebSocket frames too) */
	bool		tls_read_empty; /* the last SSL_read wanted bytes the socket did not have */
	struct WsConn *ws;			/* WebSocket framing above TLS or the socket, or NULL */
	struct HttpSqlConn *hsql;	/* HTTP query API adapter above TLS or the socket, or NULL */
	SBufOutWatch out_watch;		/* NULL: write events always on; else only after EAGAIN */
	bool		out_armed;		/* ... and they are on now */
	bool		out_held;		/* nothing is written until cleared: pgbun's own queries
								 * for a server's client, and the client's bytes behind
								 * them, wait for a cancel in flight (server.c); reads
								 * go on */
} SBuf;

typedef enum PktAction
{
	PKT_FORWARD = 0,			/* pass the message to dst */
	PKT_FORWARD_STOP,			/* pass it on, then (once flushed) return PUMP_STOPPED */
	PKT_REPLACE_PREFIX,			/* the handler queued a new start of this message in dst's
								 * out buffer: drop replace_len bytes, forward the rest */
	PKT_SKIP,					/* drop it (may still be arriving) */
	PKT_CONSUME,				/* the handler used the complete message */
	PKT_NEED_FULL,				/* call again with more of the message buffered (an error
								 * once the message fills the whole buffer) */
	PKT_STOP,					/* leave it; return PUMP_STOPPED once earlier forwarded bytes
								 * are out (the handler sees it again next time, so it
								 * must have had no side effect) */
	PKT_CLOSE,					/* drop it and return PUMP_CLOSE */
	PKT_CONSUME_STOP,			/* used the complete message; return PUMP_STOPPED so the
								 * caller can change state outside the pump */
} PktAction;

/*
 * Called once per message at its header. msg points at the type byte; avail
 * bytes of the message are buffered (avail == proto_msg_size(hdr) when it is
 * complete).
 */
typedef PktAction (*SBufHandler) (void *owner, const ProtoHeader *hdr,
								  const uint8 *msg, uint32 avail);

typedef enum PumpResult
{
	PUMP_IDLE,					/* src has nothing more to read now */
	PUMP_WAIT_WRITE,			/* dst cannot take more now */
	PUMP_YIELD,					/* did a fair share; call again next turn */
	PUMP_STOPPED,				/* handler returned PKT_STOP */
	PUMP_CLOSE,					/* handler returned PKT_CLOSE */
	PUMP_EOF,					/* src closed */
	PUMP_SRC_ERROR,				/* src failed or broke the protocol (see src->error) */
	PUMP_DST_ERROR,				/* writing to dst failed */
} PumpResult;

extern void sbuf_init(SBuf *s, int fd);
/* Close the socket and give back buffers. */
extern void sbuf_close(SBuf *s);
extern PumpResult sbuf_pump(SBuf *src, SBuf *dst, uint32 max_packet, SBufHandler handler,
							void *owner, uint64 *bytes_read, uint64 *bytes_written);

/* Startup-phase helpers: read what is available; bytes between parse_pos and in_end. */
extern int	sbuf_fill(SBuf *s);	/* >0 read, 0 nothing now, -1 EOF, -2 error, -3 buffer full */
extern void sbuf_consume(SBuf *s, uint32 n);
static inline uint32
sbuf_unparsed(const SBuf *s)
{
	return s->in_end - s->parse_pos;
}
/*
 * The socket reported readable (or hung up): reads go to the kernel again.
 * After a hang-up the end of file may already sit behind the data with no
 * further event to come, so from then on only EAGAIN or EOF ends reading.
 */
static inline void
sbuf_ready_to_read(SBuf *s, bool hup)
{
	s->drained = false;
	s->hup_seen |= hup;
}

/* Bytes committed for forwarding but not written yet. */
static inline bool
sbuf_has_unflushed(const SBuf *s)
{
	return s->send_pos < s->send_end;
}
static inline bool
sbuf_has_pending_forward(const SBuf *s)
{
	return s->send_pos < s->send_end || s->pkt_remain > 0 || s->decided >= 0;
}

/* Pooler-made output: reserve space as a ProtoBuf, commit what was built. */
extern bool sbuf_out_begin(SBuf *s, ProtoBuf *pb);
extern void sbuf_out_commit(SBuf *s, ProtoBuf *pb);
extern bool sbuf_queue(SBuf *s, const void *data, uint32 len);
/* 1 all written, 0 would block, -1 error. */
extern int	sbuf_flush_out(SBuf *s);
static inline bool
sbuf_out_pending(const SBuf *s)
{
	return s->out != NULL && s->out_pos < s->out_end;
}
/* Can pooler-made bytes be sent now (plain, or TLS past its handshake)? */
static inline bool
sbuf_can_send(const SBuf *s)
{
	return s->fd >= 0 && (s->ssl == NULL || s->tls_state == SBUF_TLS_READY);
}

/*
 * Write events on demand (plain sockets only: SSL_read may want to write):
 * from now on they are on only from a write that hit EAGAIN until the
 * event that follows it (sbuf_out_event). registered_out: the socket is
 * registered with write events now (they go off unless output waits).
 */
extern void sbuf_out_on_demand(SBuf *s, SBufOutWatch watch, bool registered_out);
/* A write event came: off again until the next EAGAIN. */
extern void sbuf_out_event(SBuf *s);
/*
 * Write events on for good (TLS, WebSocket, HTTP, console, notifications:
 * layers that may wait for room without a write of their own). 0, or -1
 * with errno when the socket could not be re-registered.
 */
extern int	sbuf_out_always(SBuf *s);

/* Buffer pool accounting (for logs). */
extern int	sbuf_buffers_in_use(void);

#endif							/* PGBUN_SBUF_H */

/*
 * sbuf.c - buffered non-blocking socket I/O and the message pump (sbuf.h).
 */
#include "postgres.h"

#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>

#include "sbuf.h"
#include "tls.h"
#include "websocket.h"
#include "http_sql.h"

/* Keep a few free buffers around; beyond that give memory back. */
#define SBUF_POOL_KEEP 64
/* Reads per pump call before yielding so one busy socket cannot starve the rest. */
#define SBUF_FAIR_READS 8

typedef struct FreeBuf
{
	struct FreeBuf *next;
} FreeBuf;

static FreeBuf *free_bufs = NULL;
static int	n_free_bufs = 0;
static int	n_bufs_in_use = 0;

static uint8 *
buf_get(void)
{
	uint8	   *b;

	if (free_bufs)
	{
		b = (uint8 *) free_bufs;
		free_bufs = free_bufs->next;
		n_free_bufs--;
	}
	else
		b = malloc(SBUF_SIZE);
	if (b)
		n_bufs_in_use++;
	return b;
}

static void
buf_put(uint8 *b)
{
	n_bufs_in_use--;
	if (n_free_bufs < SBUF_POOL_KEEP)
	{
		FreeBuf    *f = (FreeBuf *) b;

		f->next = free_bufs;
		free_bufs = f;
		n_free_bufs++;
	}
	else
		free(b);
}

int
sbuf_buffers_in_use(void)
{
	return n_bufs_in_use;
}

void
sbuf_init(SBuf *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->decided = -1;
}

/*
 * A write hit EAGAIN: the socket must say when it has room again. false
 * (errno set) if it cannot be asked: no event would ever come, so the
 * caller treats it as a failed write and the connection is closed.
 */
static bool
want_out(SBuf *s)
{
	if (!s->out_watch || s->out_armed)
		return true;
	if (s->out_watch(s, true) != 0)
		return false;
	s->out_armed = true;
	return true;
}

void
sbuf_out_on_demand(SBuf *s, SBufOutWatch watch, bool registered_out)
{
	s->out_watch = watch;
	s->out_armed = registered_out;
	if (registered_out && !sbuf_out_pending(s))
		sbuf_out_event(s);
	else if (!registered_out && sbuf_out_pending(s))
		(void) want_out(s);		/* never with output at the call sites (accept, login) */
}

int
sbuf_out_always(SBuf *s)
{
	if (!s->out_watch)
		return 0;
	if (!s->out_armed && s->out_watch(s, true) != 0)
		return -1;
	s->out_watch = NULL;
	s->out_armed = false;
	return 0;
}

void
sbuf_out_event(SBuf *s)
{
	if (s->out_watch && s->out_armed && s->out_watch(s, false) == 0)
		s->out_armed = false;
}

/* Give the input buffer back once everything in it has been dealt with. */
static void
release_in_if_empty(SBuf *s)
{
	if (s->in && s->send_pos == s->in_end && s->parse_pos == s->in_end && s->decided < 0)
	{
		buf_put(s->in);
		s->in = NULL;
		s->send_pos = s->send_end = s->parse_pos = s->in_end = 0;
	}
}

void
sbuf_close(SBuf *s)
{
	if (s->ws)
		ws_close(s);			/* its close frame goes inside TLS */
	if (s->hsql)
		http_sql_close(s);		/* likewise its HTTP answer */
	if (s->ssl)
		tls_close(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->in)
		buf_put(s->in);
	if (s->out)
		buf_put(s->out);
	s->in = s->out = NULL;
	/* a pump still on the stack (closed from its handler) must see nothing left to do */
	s->send_pos = s->send_end = s->parse_pos = s->in_end = 0;
	s->out_pos = s->out_end = 0;
	s->pkt_remain = 0;
	s->decided = -1;
	s->stop_pending = false;
	s->drained = false;
	s->hup_seen = false;
}

/* Make room at the end of the input buffer, keeping bytes still needed. */
static bool
make_room(SBuf *s)
{
	uint32		keep_from = s->send_pos;

	if (!s->in)
	{
		s->in = buf_get();
		if (!s->in)
			return false;
		s->send_pos = s->send_end = s->parse_pos = s->in_end = 0;
		return true;
	}
	if (s->send_pos == s->in_end)
	{
		s->send_pos = s->send_end = s->parse_pos = s->in_end = 0;
		return true;
	}
	if (s->in_end < SBUF_SIZE || keep_from == 0)
		return s->in_end < SBUF_SIZE;
	memmove(s->in, s->in + keep_from, s->in_end - keep_from);
	s->send_end -= keep_from;
	s->parse_pos -= keep_from;
	s->in_end -= keep_from;
	s->send_pos = 0;
	return true;
}

int
sbuf_fill(SBuf *s)
{
	ssize_t		n;
	size_t		want;

	if (s->drained)
	{
		/* a short read emptied the socket; the next readiness event clears this */
		release_in_if_empty(s);
		return 0;
	}
	if (!make_room(s))
		return s->in ? -3 : -2;
	want = SBUF_SIZE - s->in_end;
	/* recv, not read: a socket needs none of read()'s file bookkeeping (fdget_pos, fsnotify) */
	n = s->hsql ? http_sql_read(s, s->in + s->in_end, want) :
		s->ws ? ws_read(s, s->in + s->in_end, want) :
		s->ssl ? tls_read(s, s->in + s->in_end, want) : recv(s->fd, s->in + s->in_end, want, 0);
	if (n > 0)
	{
		/*
		 * Stream socket: fewer bytes than asked for means the receive queue
		 * is empty now, so the read that would only say EAGAIN is skipped
		 * (a quarter of the worker's syscalls in pgbench -S). Edge-triggered
		 * epoll reports anything that arrives later. Not so over TLS: a
		 * short read ends a record, and more records may wait in OpenSSL's
		 * buffer or the kernel, for which no new edge comes; TLS reads go on
		 * until SSL_read wants more. Nor over WebSocket: a read ends with
		 * a frame, and more may wait decoded in the WsConn; nor from the
		 * HTTP query adapter, whose input is made, not read.
		 */
		s->drained = ((size_t) n < want) && !s->hup_seen && !s->ssl && !s->ws && !s->hsql;
		s->in_end += n;
		return (int) n;
	}
	if (n == 0)
		return -1;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
	{
		/*
		 * TLS: SSL_read wanted bytes and the socket had none (it said
		 * EAGAIN), so, as after a short plain read, the next edge brings
		 * the rest; until then the EPOLLOUT events that pump this side
		 * cost no SSL_read and no read syscall.
		 */
		if (s->ssl && !s->ws && !s->hsql && s->tls_read_empty && !s->hup_seen)
			s->drained = true;
		release_in_if_empty(s);
		return 0;
	}
	return -2;
}

void
sbuf_consume(SBuf *s, uint32 n)
{
	s->parse_pos += n;
	s->send_pos = s->send_end = s->parse_pos;
	release_in_if_empty(s);
}

bool
sbuf_out_begin(SBuf *s, ProtoBuf *pb)
{
	if (!s->out)
	{
		s->out = buf_get();
		if (!s->out)
			return false;
		s->out_pos = s->out_end = 0;
	}
	else if (s->out_pos == s->out_end)
		s->out_pos = s->out_end = 0;
	proto_buf_init(pb, s->out + s->out_end, SBUF_SIZE - s->out_end);
	return true;
}

void
sbuf_out_commit(SBuf *s, ProtoBuf *pb)
{
	s->out_end += pb->len;
}

bool
sbuf_queue(SBuf *s, const void *data, uint32 len)
{
	ProtoBuf	pb;

	if (!sbuf_out_begin(s, &pb) || len > pb.cap)
		return false;
	memcpy(pb.data, data, len);
	pb.len = len;
	sbuf_out_commit(s, &pb);
	return true;
}

/*
 * Write n bytes until done or the socket is full: bytes written, or -1 on
 * error. from says which buffer the bytes are in: an SSL_write that could
 * not finish must be repeated with the same bytes, so the other buffer
 * waits until it has (tls_wpend).
 */
static ssize_t
write_some(SBuf *s, const uint8 *data, size_t n, SBufWPend from)
{
	size_t		done = 0;

	if (s->out_held)
		return 0;				/* as a full socket, but no write event is asked for */
	while (done < n)
	{
		ssize_t		w = s->hsql ? http_sql_write(s, data + done, n - done) :
			s->ws ? ws_write(s, data + done, n - done) :
			s->ssl ? tls_write(s, data + done, n - done) :
			send(s->fd, data + done, n - done, MSG_NOSIGNAL);

		if (w > 0)
		{
			done += w;
			s->tls_wpend = SBUF_WPEND_NONE;
		}
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			if (s->ssl || s->ws || s->hsql)
				s->tls_wpend = (uint8) from;
			if (!want_out(s))
				return -1;
			break;
		}
		else
			return -1;
	}
	return (ssize_t) done;
}

int
sbuf_flush_out(SBuf *s)
{
	ssize_t		w;

	if (!s->out)
		return 1;
	if (s->ssl && s->tls_state != SBUF_TLS_READY)
		return -1;				/* nothing but the handshake may be written */
	if (s->tls_wpend == SBUF_WPEND_FORWARD)
		return 0;				/* forwarded bytes are half-way through SSL_write */
	w = write_some(s, s->out + s->out_pos, s->out_end - s->out_pos, SBUF_WPEND_OUT);
	if (w < 0)
		return -1;
	s->out_pos += w;
	if (s->out_pos < s->out_end)
		return 0;
	buf_put(s->out);
	s->out = NULL;
	s->out_pos = s->out_end = 0;
	return 1;
}

/*
 * Apply a non-forward action to the complete (or streaming) message at
 * parse_pos; only called with nothing pending before it.
 */
static void
drop_message(SBuf *s, uint32 size, uint32 avail)
{
	s->parse_pos += avail;
	s->send_pos = s->send_end = s->parse_pos;
	s->pkt_remain = size - avail;
	s->pkt_skip = true;
}

/*
 * A plain socket with pooler-made bytes and forwarded bytes both waiting
 * (a rewritten Bind, then the client's Execute and Sync; a link's SETs,
 * then the client's message): one sendmsg for
 * the two, in that order, instead of a send each. 1: some or all written
 * (what is left goes the usual way, which writes until EAGAIN, as
 * edge-triggered epoll needs); 0: EAGAIN; -1: error.
 */
static int
flush_out_and_forward(SBuf *dst, SBuf *src, uint64 *bytes_written)
{
	struct iovec iov[2];
	struct msghdr msg;
	size_t		out_len = dst->out_end - dst->out_pos;
	size_t		fwd_len = src->send_end - src->send_pos;
	ssize_t		w;

	if (dst->out_held)
		return 0;
	iov[0].iov_base = dst->out + dst->out_pos;
	iov[0].iov_len = out_len;
	iov[1].iov_base = src->in + src->send_pos;
	iov[1].iov_len = fwd_len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	do
		w = sendmsg(dst->fd, &msg, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
	{
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		return want_out(dst) ? 0 : -1;
	}
	if ((size_t) w < out_len)
	{
		dst->out_pos += w;
		return 1;				/* the usual writes go on until EAGAIN (edge-triggered) */
	}
	buf_put(dst->out);
	dst->out = NULL;
	dst->out_pos = dst->out_end = 0;
	src->send_pos += (uint32) (w - out_len);
	*bytes_written += w - out_len;
	return 1;
}

/*
 * Pooler-made bytes were queued in dst before this pump (a link's SETs, an
 * answer pgbun made) and src holds bytes not framed yet: frame them first,
 * so that what they forward leaves together with dst's bytes in one sendmsg
 * (flush_out_and_forward) instead of a send each.
 */
static bool
may_join_out(const SBuf *src, const SBuf *dst)
{
	return !dst->ssl && !dst->ws && !dst->hsql &&
		src->send_pos == src->send_end && src->parse_pos < src->in_end &&
		src->pkt_remain == 0 && src->decided < 0 && !src->stop_pending;
}

/* Leaving the pump early after may_join_out: dst's bytes still go first, as before the framing. */
static PumpResult
end_early(SBuf *dst, bool out_deferred, PumpResult r)
{
	if (out_deferred && sbuf_out_pending(dst))
		(void) sbuf_flush_out(dst);	/* best effort: src is closing */
	return r;
}

PumpResult
sbuf_pump(SBuf *src, SBuf *dst, uint32 max_packet, SBufHandler handler, void *owner,
		  uint64 *bytes_read, uint64 *bytes_written)
{
	int			reads = 0;
	bool		out_deferred = false;	/* may_join_out applied (once per pump) */

	for (;;)
	{
		/* 1. Flush: pooler-made bytes to dst first, then committed forward bytes. */
		if (dst && sbuf_out_pending(dst) && src->send_pos < src->send_end && !dst->ssl && !dst->ws && !dst->hsql)
		{
			int			r = flush_out_and_forward(dst, src, bytes_written);

			if (r < 0)
				return PUMP_DST_ERROR;
			if (r == 0)
				return PUMP_WAIT_WRITE;
		}
		if (dst && sbuf_out_pending(dst) && dst->tls_wpend != SBUF_WPEND_FORWARD)
		{
			if (!out_deferred && may_join_out(src, dst))
				out_deferred = true;	/* frame first; flushed with it, or at need_read */
			else
			{
				int			r = sbuf_flush_out(dst);

				if (r < 0)
					return PUMP_DST_ERROR;
				if (r == 0)
					return PUMP_WAIT_WRITE;
			}
		}
		if (src->send_pos < src->send_end)
		{
			ssize_t		w;

			if (!dst)
			{
				/* the rest of a forwarded message, and its peer is gone: never write to NULL */
				src->error = "message arrived with no peer to forward it to";
				return PUMP_SRC_ERROR;
			}
			w = write_some(dst, src->in + src->send_pos, src->send_end - src->send_pos,
						   SBUF_WPEND_FORWARD);

			if (w < 0)
				return PUMP_DST_ERROR;
			src->send_pos += w;
			*bytes_written += w;
			if (src->send_pos < src->send_end)
				return PUMP_WAIT_WRITE;
		}
		/* a stop asked for earlier takes effect once everything before it is out */
		if (src->stop_pending)
		{
			src->stop_pending = false;
			return PUMP_STOPPED;
		}

		/* 2. Frame what is buffered. */
		while (src->parse_pos < src->in_end && !src->stop_pending)
		{
			ProtoHeader hdr;
			uint32		size;
			uint32		avail;
			PktAction	action;

			if (src->pkt_remain > 0)
			{
				uint32		n = Min(src->pkt_remain, src->in_end - src->parse_pos);

				if (src->pkt_skip)
				{
					if (src->send_pos != src->send_end)
						break;
					src->parse_pos += n;
					src->send_pos = src->send_end = src->parse_pos;
				}
				else
				{
					src->parse_pos += n;
					src->send_end = src->parse_pos;
				}
				src->pkt_remain -= n;
				continue;
			}

			switch (proto_parse_header(src->in + src->parse_pos, src->in_end - src->parse_pos,
									   max_packet, &hdr))
			{
				case PROTO_INCOMPLETE:
					goto need_read;
				case PROTO_BAD_LENGTH:
					src->error = "invalid message length";
					return end_early(dst, out_deferred, PUMP_SRC_ERROR);
				case PROTO_OK:
					break;
			}
			size = (uint32) proto_msg_size(&hdr);
			avail = Min(size, src->in_end - src->parse_pos);

			if (src->decided >= 0)
			{
				action = (PktAction) src->decided;
				src->decided = -1;
			}
			else
				action = handler(owner, &hdr, src->in + src->parse_pos, avail);

			switch (action)
			{
				case PKT_FORWARD:
				case PKT_FORWARD_STOP:
				case PKT_REPLACE_PREFIX:
					if (!dst)
					{
						src->error = "message arrived with no peer to forward it to";
						return PUMP_SRC_ERROR;
					}
					if (action == PKT_REPLACE_PREFIX)
					{
						/* the handler queued a new start in dst->out; drop the old one */
						Assert(src->send_pos == src->send_end && src->replace_len <= avail);
						src->parse_pos += src->replace_len;
						src->send_pos = src->send_end = src->parse_pos;
						size -= src->replace_len;
						avail -= src->replace_len;
						src->replace_len = 0;
					}
					src->parse_pos += avail;
					src->send_end = src->parse_pos;
					src->pkt_remain = size - avail;
					src->pkt_skip = false;
					if (action == PKT_FORWARD_STOP)
						src->stop_pending = true;
					break;
				case PKT_NEED_FULL:
					if (avail == size || avail >= SBUF_SIZE)
					{
						src->error = "message too large for the pooler to read";
						return end_early(dst, out_deferred, PUMP_SRC_ERROR);
					}
					goto need_read;
				case PKT_STOP:
					src->stop_pending = true;
					break;
				case PKT_SKIP:
				case PKT_CONSUME:
				case PKT_CONSUME_STOP:
				case PKT_CLOSE:
					if (src->send_pos != src->send_end)
					{
						/* Earlier forwarded bytes must reach dst before this takes effect. */
						src->decided = (int8) action;
						goto flush;
					}
					if (action == PKT_CLOSE)
						return end_early(dst, out_deferred, PUMP_CLOSE);
					if (action == PKT_CONSUME || action == PKT_CONSUME_STOP)
					{
						Assert(avail == size);
						src->parse_pos += size;
						src->send_pos = src->send_end = src->parse_pos;
						if (action == PKT_CONSUME_STOP)
							src->stop_pending = true;
					}
					else
						drop_message(src, size, avail);
					break;
			}
		}
flush:
		if (src->send_pos < src->send_end || src->decided >= 0 || src->stop_pending)
			continue;			/* flush first (and stop, or apply the decision) */

need_read:
		if (src->send_pos < src->send_end)
			continue;
		if (out_deferred && sbuf_out_pending(dst))
			continue;			/* nothing framed went with them: they go alone, before any read */
		if (++reads > SBUF_FAIR_READS)
			return PUMP_YIELD;
		{
			int			r = sbuf_fill(src);

			if (r > 0)
			{
				*bytes_read += r;
				continue;
			}
			if (r == 0)
				return PUMP_IDLE;
			if (r == -1)
				return PUMP_EOF;
			src->error = (r == -3) ? "message too large for the pooler to read" :
				(src->ws && ws_error(src)) ? ws_error(src) :
				(src->hsql && http_sql_error(src)) ? http_sql_error(src) : "could not read from socket";
			return PUMP_SRC_ERROR;
		}
	}
}

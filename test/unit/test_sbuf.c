/*
 * test_sbuf.c - unit tests for src/sbuf.c, the message pump, over
 * socketpairs: forwarding, skipping, consuming with a pooler-made answer,
 * waiting for a whole message, a message larger than the buffer streamed
 * through, STOP (the handler sees the message again), replacing the start of
 * a message, pooler-made bytes leaving in one write with the message behind
 * them, a bad length, end of file. Sockets are non-blocking, as in the
 * worker; TLS is not used (the stubs below are never called).
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbuf.h"
#include "tls.h"
#include "unit.h"

/* sbuf.c calls these only for a connection with TLS: never here */
ssize_t
tls_read(SBuf *sb, void *buf, size_t len)
{
	(void) sb;
	(void) buf;
	(void) len;
	return -1;
}

ssize_t
tls_write(SBuf *sb, const void *buf, size_t len)
{
	(void) sb;
	(void) buf;
	(void) len;
	return -1;
}

void
tls_close(SBuf *sb)
{
	(void) sb;
}

bool
tls_pending(const SBuf *sb)
{
	(void) sb;
	return false;
}

/* Two socketpairs: the test writes to peer_in, src reads it; dst writes, the test reads peer_out. */
typedef struct Pipe
{
	int			peer_in;
	int			peer_out;
	SBuf		src;
	SBuf		dst;
} Pipe;

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* dst_type SOCK_SEQPACKET: every send of dst arrives at peer_out as one record */
static void
pipe_open_type(Pipe *p, int dst_type)
{
	int			a[2];
	int			b[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
	CHECK(socketpair(AF_UNIX, dst_type, 0, b) == 0);
	nonblock(a[1]);
	nonblock(b[0]);
	nonblock(b[1]);
	p->peer_in = a[0];
	sbuf_init(&p->src, a[1]);
	sbuf_init(&p->dst, b[0]);
	p->peer_out = b[1];
}

static void
pipe_open(Pipe *p)
{
	pipe_open_type(p, SOCK_STREAM);
}

static void
pipe_close(Pipe *p)
{
	sbuf_close(&p->src);
	sbuf_close(&p->dst);
	close(p->peer_in);
	close(p->peer_out);
}

static size_t
msg(uint8_t *out, char type, const char *body, uint32_t blen)
{
	uint32_t	len = 4 + blen;

	out[0] = (uint8_t) type;
	out[1] = (uint8_t) (len >> 24);
	out[2] = (uint8_t) (len >> 16);
	out[3] = (uint8_t) (len >> 8);
	out[4] = (uint8_t) len;
	memcpy(out + 5, body, blen);
	return 5 + blen;
}

static void
feed(Pipe *p, const uint8_t *data, size_t len)
{
	size_t		off = 0;

	while (off < len)
	{
		ssize_t		n = write(p->peer_in, data + off, len - off);

		CHECK(n > 0);
		if (n <= 0)
			return;
		off += (size_t) n;
	}
	/* a new readiness edge, as epoll would report */
	sbuf_ready_to_read(&p->src, false);
}

/* Everything written to dst so far. */
static size_t
drain(Pipe *p, uint8_t *out, size_t cap)
{
	size_t		len = 0;

	for (;;)
	{
		ssize_t		n = read(p->peer_out, out + len, cap - len);

		if (n <= 0)
			break;
		len += (size_t) n;
	}
	return len;
}

/* ---- handlers ---- */

typedef struct Seen
{
	char		types[64];
	int			n;
	int			stop_once;		/* PKT_STOP the first time a 'S' is seen */
	uint32		last_avail;
} Seen;

static void
note(Seen *s, char type, uint32 avail)
{
	if (s->n < (int) sizeof(s->types) - 1)
		s->types[s->n++] = type;
	s->types[s->n] = '\0';
	s->last_avail = avail;
}

static PktAction
forward_all(void *owner, const ProtoHeader *hdr, const uint8 *m, uint32 avail)
{
	(void) m;
	note(owner, hdr->type, avail);
	return PKT_FORWARD;
}

/* 'd' skipped, 'H' consumed, 'S' stopped once, 'Q' needs the whole message, rest forwarded. */
static PktAction
mixed(void *owner, const ProtoHeader *hdr, const uint8 *m, uint32 avail)
{
	Seen	   *s = owner;

	(void) m;
	note(s, hdr->type, avail);
	switch (hdr->type)
	{
		case 'd':
			return PKT_SKIP;
		case 'H':
			return avail < proto_msg_size(hdr) ? PKT_NEED_FULL : PKT_CONSUME;
		case 'Q':
			return avail < proto_msg_size(hdr) ? PKT_NEED_FULL : PKT_FORWARD;
		case 'S':
			if (s->stop_once)
			{
				s->stop_once = 0;
				return PKT_STOP;
			}
			return PKT_FORWARD;
		default:
			return PKT_FORWARD;
	}
}

static SBuf *rewrite_dst;

/* A Bind's first string is replaced by "XY" in dst's out buffer. */
static PktAction
rewrite_bind(void *owner, const ProtoHeader *hdr, const uint8 *m, uint32 avail)
{
	SBuf	   *src = owner;
	const uint8 *body = m + PROTO_HDR_LEN;
	size_t		name_len;
	ProtoBuf	pb;

	if (hdr->type != 'B')
		return PKT_FORWARD;
	if (avail < proto_msg_size(hdr))
		return PKT_NEED_FULL;
	name_len = strlen((const char *) body);
	CHECK(sbuf_out_begin(rewrite_dst, &pb));
	{
		uint32		len = hdr->len - (uint32) name_len + 2;
		uint8		h[5] = {'B', (uint8) (len >> 24), (uint8) (len >> 16), (uint8) (len >> 8), (uint8) len};

		memcpy(pb.data, h, 5);
		memcpy(pb.data + 5, "XY", 3);
		pb.len = 8;
	}
	sbuf_out_commit(rewrite_dst, &pb);
	src->replace_len = PROTO_HDR_LEN + (uint32) name_len + 1;
	return PKT_REPLACE_PREFIX;
}

/* ---- tests ---- */

static void
test_forward_and_eof(void)
{
	Pipe		p;
	Seen		seen = {0};
	uint8_t		in[256];
	uint8_t		out[256];
	size_t		len = 0;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	len += msg(in + len, 'Q', "SELECT 1", 9);
	len += msg(in + len, 'S', "", 0);
	feed(&p, in, len);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, forward_all, &seen, &rd, &wr) == PUMP_IDLE);
	CHECK(strcmp(seen.types, "QS") == 0);
	CHECK(rd == len && wr == len);
	CHECK_BYTES(out, drain(&p, out, sizeof(out)), in, len);
	/* an idle connection gives its buffer back */
	CHECK(p.src.in == NULL);
	close(p.peer_in);
	p.peer_in = -1;
	sbuf_ready_to_read(&p.src, true);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, forward_all, &seen, &rd, &wr) == PUMP_EOF);
	pipe_close(&p);
}

static void
test_skip_consume_stop_need_full(void)
{
	Pipe		p;
	Seen		seen = {0};
	uint8_t		in[256];
	uint8_t		want[256];
	uint8_t		out[256];
	size_t		len = 0;
	size_t		wlen = 0;
	size_t		qlen;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	seen.stop_once = 1;
	len += msg(in + len, 'P', "\0x\0\0\0", 5);
	wlen += msg(want + wlen, 'P', "\0x\0\0\0", 5);
	len += msg(in + len, 'd', "data", 4);	/* skipped */
	len += msg(in + len, 'H', "", 0);	/* consumed */
	len += msg(in + len, 'S', "", 0);	/* stopped once, then forwarded */
	wlen += msg(want + wlen, 'S', "", 0);
	qlen = msg(in + len, 'Q', "SELECT 2", 9);
	wlen += msg(want + wlen, 'Q', "SELECT 2", 9);
	/* the Query arrives in two pieces: the handler waits for all of it */
	feed(&p, in, len + 8);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_STOPPED);
	CHECK(strcmp(seen.types, "PdHS") == 0);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	/* STOP: the handler sees 'S' again; NEED_FULL: 'Q' again when more came */
	CHECK(strncmp(seen.types, "PdHSSQ", 6) == 0);
	feed(&p, in + len + 8, qlen - 8);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	CHECK(seen.types[seen.n - 1] == 'Q' && seen.last_avail == qlen);
	CHECK_BYTES(out, drain(&p, out, sizeof(out)), want, wlen);
	pipe_close(&p);
}

static void
test_large_message_streams(void)
{
	Pipe		p;
	Seen		seen = {0};
	size_t		big = 3 * SBUF_SIZE + 123;
	uint8_t    *in = malloc(big + 64);
	uint8_t    *out = malloc(big + 64);
	uint8_t    *body = malloc(big);
	size_t		len;
	size_t		got = 0;
	size_t		fed = 0;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	for (size_t i = 0; i < big; i++)
		body[i] = (uint8_t) (i * 7);
	len = msg(in, 'd', (const char *) body, (uint32) big);
	len += msg(in + len, 'c', "", 0);
	/* feed and pump in turns: the message is larger than the buffer */
	for (int turns = 0; (fed < len || got < len) && turns < 10000; turns++)
	{
		if (fed < len)
		{
			size_t		n = Min(len - fed, (size_t) 5000);

			feed(&p, in + fed, n);
			fed += n;
		}
		(void) sbuf_pump(&p.src, &p.dst, 1 << 24, forward_all, &seen, &rd, &wr);
		got += drain(&p, out + got, big + 64 - got);
		if (fed == len && rd == len && got == len)
			break;
	}
	CHECK(strcmp(seen.types, "dc") == 0);	/* the handler saw each message once */
	CHECK_BYTES(out, got, in, len);
	/* a length over max_packet is refused before anything is read into it */
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 24, forward_all, &seen, &rd, &wr) == PUMP_IDLE);
	len = msg(in, 'd', (const char *) body, 2000);
	feed(&p, in, len);
	CHECK(sbuf_pump(&p.src, &p.dst, 1000, forward_all, &seen, &rd, &wr) == PUMP_SRC_ERROR);
	CHECK(p.src.error && strstr(p.src.error, "length"));
	pipe_close(&p);
	free(in);
	free(out);
	free(body);
}

static void
test_replace_prefix(void)
{
	Pipe		p;
	uint8_t		in[256];
	uint8_t		want[256];
	uint8_t		out[256];
	size_t		len = 0;
	size_t		wlen = 0;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	rewrite_dst = &p.dst;
	len += msg(in + len, 'B', "stmt_name\0rest-of-bind", 22);
	wlen += msg(want + wlen, 'B', "XY\0rest-of-bind", 15);
	len += msg(in + len, 'S', "", 0);
	wlen += msg(want + wlen, 'S', "", 0);
	feed(&p, in, len);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, rewrite_bind, &p.src, &rd, &wr) == PUMP_IDLE);
	CHECK_BYTES(out, drain(&p, out, sizeof(out)), want, wlen);
	pipe_close(&p);
}

/*
 * A rewritten Bind (pooler-made bytes) and a large forwarded rest behind it,
 * into a socket that takes only part at a time: every byte arrives, in
 * order, however the one sendmsg for both is cut.
 */
static void
test_out_and_forward_partial(void)
{
	Pipe		p;
	static uint8_t in[60000];
	static uint8_t want[60000];
	static uint8_t out[60000];
	static char data[40000];
	size_t		len = 0;
	size_t		wlen = 0;
	size_t		got = 0;
	uint64		rd = 0;
	uint64		wr = 0;
	int			sndbuf = 4096;
	int			waits = 0;
	PumpResult	r;

	pipe_open(&p);
	CHECK(setsockopt(p.dst.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	rewrite_dst = &p.dst;
	memset(data, 'r', sizeof(data));
	len += msg(in + len, 'B', "stmt_name\0rest-of-bind", 22);
	wlen += msg(want + wlen, 'B', "XY\0rest-of-bind", 15);
	len += msg(in + len, 'd', data, sizeof(data));
	wlen += msg(want + wlen, 'd', data, sizeof(data));
	len += msg(in + len, 'S', "", 0);
	wlen += msg(want + wlen, 'S', "", 0);
	feed(&p, in, len);
	while ((r = sbuf_pump(&p.src, &p.dst, 1 << 20, rewrite_bind, &p.src, &rd, &wr)) == PUMP_WAIT_WRITE &&
		   waits < 10000)
	{
		waits++;
		got += drain(&p, out + got, sizeof(out) - got);
	}
	CHECK(r == PUMP_IDLE);
	CHECK(waits > 0);			/* the socket did take only part at a time */
	got += drain(&p, out + got, sizeof(out) - got);
	CHECK_BYTES(out, got, want, wlen);
	pipe_close(&p);
}

/* Queue a pooler-made message in dst's out buffer, as server_attach queues a link's SETs. */
static size_t
queue_out(SBuf *dst, uint8_t *copy, char type, const char *body, uint32_t blen)
{
	ProtoBuf	pb;
	size_t		n;

	CHECK(sbuf_out_begin(dst, &pb));
	n = msg(pb.data, type, body, blen);
	pb.len = n;
	sbuf_out_commit(dst, &pb);
	memcpy(copy, pb.data, n);
	return n;
}

/*
 * A client's message already read when its server is linked (the pump had
 * stopped at it: no server yet), and the link's SET queued in the server's
 * out buffer: both leave in one write (one record on a SOCK_SEQPACKET
 * pair), the SET first. With only part of a message at hand the SET goes
 * alone, at once, not held until the rest arrives.
 */
static void
test_out_joins_framed(void)
{
	Pipe		p;
	Seen		seen = {.stop_once = 1};
	uint8_t		in[64];
	uint8_t		want[128];
	uint8_t		rec[256];
	size_t		len;
	size_t		wlen;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open_type(&p, SOCK_SEQPACKET);
	len = msg(in, 'Q', "SELECT 1", 9);
	len += msg(in + len, 'S', "", 0);
	feed(&p, in, len);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_STOPPED);
	CHECK(recv(p.peer_out, rec, sizeof(rec), MSG_DONTWAIT) == 5 + 9);	/* the Q went, the S stopped */
	wlen = queue_out(&p.dst, want, 'Q', "SET a = 1", 10);
	memcpy(want + wlen, in + 5 + 9, 5);
	wlen += 5;
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	CHECK_BYTES(rec, recv(p.peer_out, rec, sizeof(rec), MSG_DONTWAIT), want, wlen);
	CHECK(recv(p.peer_out, rec, sizeof(rec), MSG_DONTWAIT) < 0);	/* and nothing else */

	/* three bytes of a header read: the queued bytes go out alone, before the pump waits */
	len = msg(in, 'Q', "SELECT 2", 9);
	feed(&p, in, 3);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	wlen = queue_out(&p.dst, want, 'Q', "SET b = 2", 10);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	CHECK_BYTES(rec, recv(p.peer_out, rec, sizeof(rec), MSG_DONTWAIT), want, wlen);
	feed(&p, in + 3, len - 3);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, mixed, &seen, &rd, &wr) == PUMP_IDLE);
	CHECK_BYTES(rec, recv(p.peer_out, rec, sizeof(rec), MSG_DONTWAIT), in, len);
	CHECK(strcmp(seen.types, "QSSQ") == 0);
	pipe_close(&p);
}

static void
test_bad_length(void)
{
	Pipe		p;
	Seen		seen = {0};
	uint8_t		in[8] = {'Q', 0, 0, 0, 2};	/* length below its own 4 bytes */
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	feed(&p, in, 5);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, forward_all, &seen, &rd, &wr) == PUMP_SRC_ERROR);
	CHECK(seen.n == 0);
	pipe_close(&p);
}

/* The SBufOutWatch under test: the events of a real epoll set, as poll.c sets them. */
static int	watch_epfd = -1;
static int	watch_calls_on = 0;

static int
watch_out(SBuf *sb, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0)};

	watch_calls_on += on ? 1 : 0;
	return epoll_ctl(watch_epfd, EPOLL_CTL_MOD, sb->fd, &ev);
}

static int
out_events(void)
{
	struct epoll_event ev[4];
	int			n = epoll_wait(watch_epfd, ev, 4, 0);
	int			outs = 0;

	for (int i = 0; i < n; i++)
		outs += (ev[i].events & EPOLLOUT) ? 1 : 0;
	return outs;
}

/*
 * Shrink dst's send buffer and pump a 60,000-byte message into it: more than
 * the socket takes, so the write sticks (EAGAIN) until the peer reads.
 */
static PumpResult
pump_stuck_write(Pipe *p)
{
	static uint8_t in[70000];
	static char data[60000];
	Seen		seen = {0};
	uint64		rd = 0;
	uint64		wr = 0;
	int			sndbuf = 4096;
	size_t		len;

	CHECK(setsockopt(p->dst.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	memset(data, 'x', sizeof(data));
	len = msg(in, 'd', data, sizeof(data));
	feed(p, in, len);
	return sbuf_pump(&p->src, &p->dst, 1 << 20, forward_all, &seen, &rd, &wr);
}

/*
 * Write events on demand: none while the peer reads what it was sent (a
 * Unix socket wakes a write watcher at every read), on after a write hit
 * EAGAIN, one event once there is room, and off again after it.
 */
static void
test_out_on_demand(void)
{
	Pipe		p;
	Seen		seen = {0};
	static uint8_t in[200000];
	static uint8_t out[200000];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	size_t		len = 0;
	size_t		got = 0;
	uint64		rd = 0;
	uint64		wr = 0;

	pipe_open(&p);
	watch_epfd = epoll_create1(0);
	watch_calls_on = 0;
	CHECK(epoll_ctl(watch_epfd, EPOLL_CTL_ADD, p.dst.fd, &ev) == 0);
	(void) out_events();		/* the registration's first report */
	sbuf_out_on_demand(&p.dst, watch_out, true);
	CHECK(!p.dst.out_armed);

	/* a small message, read by the peer: no write event */
	len = msg(in, 'Q', "SELECT 1\0", 9);
	feed(&p, in, len);
	CHECK(sbuf_pump(&p.src, &p.dst, 1 << 20, forward_all, &seen, &rd, &wr) == PUMP_IDLE);
	got = drain(&p, out, sizeof(out));
	CHECK(got == len);
	CHECK(out_events() == 0);
	CHECK(watch_calls_on == 0);

	/* more than the socket takes: EAGAIN asks for write events */
	CHECK(pump_stuck_write(&p) == PUMP_WAIT_WRITE);
	CHECK(p.dst.out_armed);
	CHECK(watch_calls_on == 1);
	CHECK(out_events() == 0);	/* still full */
	got = drain(&p, out, sizeof(out));
	CHECK(got > 0);
	CHECK(out_events() == 1);	/* room again: the event the pump waits for */
	sbuf_out_event(&p.dst);
	CHECK(!p.dst.out_armed);
	pipe_close(&p);
	close(watch_epfd);
}

/*
 * A socket registered without write events (a client from accept): on
 * demand from the start, with no re-registration; sbuf_out_always (TLS,
 * console, notifications) turns them on for good, once.
 */
static void
test_out_always(void)
{
	Pipe		p;
	static uint8_t out[200000];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};

	pipe_open(&p);
	watch_epfd = epoll_create1(0);
	watch_calls_on = 0;
	CHECK(epoll_ctl(watch_epfd, EPOLL_CTL_ADD, p.dst.fd, &ev) == 0);
	sbuf_out_on_demand(&p.dst, watch_out, false);
	CHECK(!p.dst.out_armed);
	CHECK(watch_calls_on == 0);
	CHECK(out_events() == 0);	/* writable, but nobody asked */

	/* always-on from off: one re-registration, then events with no EAGAIN of ours */
	CHECK(sbuf_out_always(&p.dst) == 0);
	CHECK(watch_calls_on == 1);
	CHECK(p.dst.out_watch == NULL);
	CHECK(out_events() == 1);	/* the registration reports the room there is */
	CHECK(sbuf_out_always(&p.dst) == 0);	/* a second call changes nothing */
	CHECK(watch_calls_on == 1);

	/* a stuck write no longer asks the watch: events are on already */
	CHECK(pump_stuck_write(&p) == PUMP_WAIT_WRITE);
	CHECK(watch_calls_on == 1);
	CHECK(!p.dst.out_armed);
	CHECK(drain(&p, out, sizeof(out)) > 0);
	CHECK(out_events() == 1);
	pipe_close(&p);

	/* always-on while armed (a write was stuck): no re-registration needed */
	pipe_open(&p);
	watch_calls_on = 0;
	CHECK(epoll_ctl(watch_epfd, EPOLL_CTL_ADD, p.dst.fd, &ev) == 0);
	sbuf_out_on_demand(&p.dst, watch_out, false);
	CHECK(pump_stuck_write(&p) == PUMP_WAIT_WRITE);
	CHECK(p.dst.out_armed);
	CHECK(watch_calls_on == 1);
	CHECK(sbuf_out_always(&p.dst) == 0);
	CHECK(watch_calls_on == 1);
	CHECK(p.dst.out_watch == NULL);
	pipe_close(&p);
	close(watch_epfd);
}

static int
watch_fails(SBuf *sb, bool on)
{
	(void) sb;
	(void) on;
	errno = ENOMEM;
	return -1;
}

/* A stuck write whose socket cannot be asked for write events is a failed write, not a wait forever. */
static void
test_out_watch_fails(void)
{
	Pipe		p;

	pipe_open(&p);
	sbuf_out_on_demand(&p.dst, watch_fails, false);
	CHECK(pump_stuck_write(&p) == PUMP_DST_ERROR);
	CHECK(!p.dst.out_armed);
	pipe_close(&p);
}

void
sbuf_suite(void)
{
	UNIT_RUN(test_forward_and_eof);
	UNIT_RUN(test_skip_consume_stop_need_full);
	UNIT_RUN(test_large_message_streams);
	UNIT_RUN(test_replace_prefix);
	UNIT_RUN(test_out_and_forward_partial);
	UNIT_RUN(test_out_joins_framed);
	UNIT_RUN(test_bad_length);
	UNIT_RUN(test_out_on_demand);
	UNIT_RUN(test_out_always);
	UNIT_RUN(test_out_watch_fails);
}

/*
 * test_websocket.c - unit tests for src/websocket.c over a socketpair: the
 * Sec-WebSocket-Accept of RFC 6455's example, the upgrade answer, refused
 * upgrades, masked and fragmented client frames decoded through sbuf_fill
 * with a ping answered in between, server bytes sent as an unmasked binary
 * frame, and the close codes for an unmasked frame (1002), a text frame
 * (1003), an oversized frame (1009) and a client's close (echoed, then end
 * of file), and a frame the socket takes only in parts (the repeated write
 * finishes it; no frame buffer is held once idle).
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbuf.h"
#include "unit.h"
#include "websocket.h"

typedef struct WsPair
{
	int			peer;			/* the test's end: the client */
	SBuf		sb;				/* pgbun's end */
} WsPair;

static void
pair_open(WsPair *p)
{
	int			a[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
	fcntl(a[1], F_SETFL, fcntl(a[1], F_GETFL) | O_NONBLOCK);
	fcntl(a[0], F_SETFL, fcntl(a[0], F_GETFL) | O_NONBLOCK);
	p->peer = a[0];
	sbuf_init(&p->sb, a[1]);
}

static void
pair_close(WsPair *p)
{
	sbuf_close(&p->sb);
	close(p->peer);
}

static void
send_peer(WsPair *p, const void *data, size_t len)
{
	CHECK(write(p->peer, data, len) == (ssize_t) len);
	sbuf_ready_to_read(&p->sb, false);
}

static size_t
recv_peer(WsPair *p, uint8_t *out, size_t cap)
{
	ssize_t		n = read(p->peer, out, cap);

	return n > 0 ? (size_t) n : 0;
}

/* A masked client frame: returns its length. */
static size_t
client_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len, bool masked)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t		h = 0;

	out[h++] = b0;
	if (len < 126)
		out[h++] = (masked ? 0x80 : 0) | (uint8_t) len;
	else
	{
		out[h++] = (masked ? 0x80 : 0) | 126;
		out[h++] = (uint8_t) (len >> 8);
		out[h++] = (uint8_t) len;
	}
	if (masked)
	{
		memcpy(out + h, mask, 4);
		h += 4;
	}
	for (size_t i = 0; i < len; i++)
		out[h + i] = payload[i] ^ (masked ? mask[i & 3] : 0);
	return h + len;
}

static const char upgrade_req[] =
"GET /pg?address=x:5432 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
"Sec-WebSocket-Version: 13\r\n\r\n";

/* Upgrade p: the request, sbuf_fill, ws_accept_upgrade, the 101 read back. */
static void
upgrade(WsPair *p)
{
	const char *why = NULL;
	uint8_t		resp[512];
	size_t		n;

	send_peer(p, upgrade_req, sizeof(upgrade_req) - 1);
	CHECK(sbuf_fill(&p->sb) > 0);
	CHECK(ws_accept_upgrade(&p->sb, &why) == 1);
	CHECK(p->sb.ws != NULL);
	n = recv_peer(p, resp, sizeof(resp) - 1);
	resp[n] = '\0';
	CHECK(strncmp((char *) resp, "HTTP/1.1 101 ", 13) == 0);
	CHECK(strstr((char *) resp, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
	CHECK(strstr((char *) resp, "\r\n\r\n") == (char *) resp + n - 4);
}

static void
test_accept_key(void)
{
	char		out[29];

	CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out));
	CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

static void
test_refused(void)
{
	static const char *bad[] = {
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",	/* no Upgrade */
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", /* no key */
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
		"GARBAGE\r\n\r\n",
	};
	static const char *status[] = {"HTTP/1.1 400 ", "HTTP/1.1 400 ", "HTTP/1.1 426 ", "HTTP/1.1 400 "};

	for (size_t i = 0; i < lengthof(bad); i++)
	{
		WsPair		p;
		const char *why = NULL;

		pair_open(&p);
		send_peer(&p, bad[i], strlen(bad[i]));
		CHECK(sbuf_fill(&p.sb) > 0);
		CHECK(ws_accept_upgrade(&p.sb, &why) == -1);
		CHECK(why != NULL);
		CHECK(p.sb.ws == NULL);
		CHECK(sbuf_out_pending(&p.sb));
		CHECK(p.sb.out && memcmp(p.sb.out, status[i], 13) == 0);
		pair_close(&p);
	}
	/* an incomplete head: read more */
	{
		WsPair		p;
		const char *why = NULL;

		pair_open(&p);
		send_peer(&p, upgrade_req, 30);
		CHECK(sbuf_fill(&p.sb) > 0);
		CHECK(ws_accept_upgrade(&p.sb, &why) == 0);
		pair_close(&p);
	}
}

static void
test_frames(void)
{
	WsPair		p;
	uint8_t		f[256];
	uint8_t		got[256];
	size_t		n = 0;
	int			r;

	pair_open(&p);
	upgrade(&p);
	/* "hello " (no FIN), a ping, "world" (continuation, FIN) */
	n += client_frame(f + n, 0x02, (const uint8_t *) "hello ", 6, true);
	n += client_frame(f + n, 0x89, (const uint8_t *) "pi", 2, true);
	n += client_frame(f + n, 0x80, (const uint8_t *) "world", 5, true);
	send_peer(&p, f, n);
	r = 0;
	for (int i = 0; i < 5; i++)
	{
		int			k = sbuf_fill(&p.sb);

		if (k > 0)
			r += k;
	}
	CHECK(r == 11);
	CHECK(sbuf_unparsed(&p.sb) == 11 && memcmp(p.sb.in + p.sb.parse_pos, "hello world", 11) == 0);
	CHECK(ws_buffers_held(&p.sb) == 0);	/* everything decoded: no frame buffer kept */
	/* the pong, unmasked, same payload */
	n = recv_peer(&p, got, sizeof(got));
	CHECK(n == 4 && got[0] == 0x8A && got[1] == 2 && memcmp(got + 2, "pi", 2) == 0);
	/* server bytes: one unmasked binary frame */
	CHECK(sbuf_queue(&p.sb, "Z\0\0\0\5I", 6));
	CHECK(sbuf_flush_out(&p.sb) == 1);
	n = recv_peer(&p, got, sizeof(got));
	CHECK(n == 8 && got[0] == 0x82 && got[1] == 6 && memcmp(got + 2, "Z\0\0\0\5I", 6) == 0);
	/* the client closes: echoed, then end of file */
	n = client_frame(f, 0x88, (const uint8_t *) "\x03\xe8", 2, true);
	send_peer(&p, f, n);
	sbuf_consume(&p.sb, 11);
	CHECK(sbuf_fill(&p.sb) == -1);
	n = recv_peer(&p, got, sizeof(got));
	CHECK(n == 4 && got[0] == 0x88 && got[1] == 2 && got[2] == 0x03 && got[3] == 0xe8);
	pair_close(&p);
}

/*
 * A frame the socket cannot take whole waits in the WsConn; the repeated
 * write (same bytes, as sbuf does after EAGAIN) finishes it, and the peer
 * sees exactly one frame with the whole payload.
 */
static void
test_partial_write(void)
{
	WsPair		p;
	static uint8_t data[16000];
	static uint8_t got[40000];
	size_t		n = 0;
	int			small = 4096;
	int			r = 0;
	int			waits = 0;

	pair_open(&p);
	upgrade(&p);
	setsockopt(p.sb.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t) (i * 7);
	CHECK(sbuf_queue(&p.sb, data, sizeof(data)));
	for (int i = 0; i < 1000 && (r = sbuf_flush_out(&p.sb)) == 0; i++)
	{
		CHECK(ws_buffers_held(&p.sb) == 1);	/* the frame waits */
		waits++;
		n += recv_peer(&p, got + n, sizeof(got) - n);
	}
	CHECK(r == 1);
	CHECK(waits > 0);			/* the write did have to wait */
	CHECK(ws_buffers_held(&p.sb) == 0);
	for (int i = 0; i < 100; i++)
		n += recv_peer(&p, got + n, sizeof(got) - n);
	CHECK(n == 4 + sizeof(data));
	CHECK(got[0] == 0x82 && got[1] == 126 && got[2] * 256 + got[3] == (int) sizeof(data));
	CHECK(memcmp(got + 4, data, sizeof(data)) == 0);
	pair_close(&p);
}

/* Frames sent right behind the request, in the same read: kept for the decoder. */
static void
test_frames_behind_request(void)
{
	WsPair		p;
	uint8_t		f[1024];
	size_t		n = sizeof(upgrade_req) - 1;
	const char *why = NULL;
	int			r = 0;

	pair_open(&p);
	memcpy(f, upgrade_req, n);
	n += client_frame(f + n, 0x82, (const uint8_t *) "startup", 7, true);
	send_peer(&p, f, n);
	CHECK(sbuf_fill(&p.sb) == (int) n);
	CHECK(ws_accept_upgrade(&p.sb, &why) == 1);
	CHECK(sbuf_unparsed(&p.sb) == 0);
	CHECK(ws_pending(&p.sb));
	for (int i = 0; i < 3; i++)
	{
		int			k = sbuf_fill(&p.sb);

		if (k > 0)
			r += k;
	}
	CHECK(r == 7 && memcmp(p.sb.in + p.sb.parse_pos, "startup", 7) == 0);
	pair_close(&p);
}

/* A bad frame fails the read and closes with code. */
static void
check_bad_frame(const uint8_t *frame, size_t len, int code)
{
	WsPair		p;
	uint8_t		got[64];
	size_t		n;

	pair_open(&p);
	upgrade(&p);
	send_peer(&p, frame, len);
	CHECK(sbuf_fill(&p.sb) == -2);
	CHECK(ws_error(&p.sb) != NULL);
	/* an error message still goes out, then the close frame at the close */
	CHECK(sbuf_queue(&p.sb, "E\0\0\0\4", 5));
	CHECK(sbuf_flush_out(&p.sb) == 1);
	n = recv_peer(&p, got, sizeof(got));
	CHECK(n == 7 && got[0] == 0x82 && got[1] == 5 && got[2] == 'E');
	sbuf_close(&p.sb);
	n = recv_peer(&p, got, sizeof(got));
	CHECK(n == 4 && got[0] == 0x88 && got[1] == 2 && got[2] * 256 + got[3] == code);
	close(p.peer);
}

static void
test_bad_frames(void)
{
	uint8_t		f[2100];
	uint8_t		big[2000];
	size_t		n;
	int			saved = pgbun_unit_settings.websocket_max_frame_size;

	n = client_frame(f, 0x82, (const uint8_t *) "abc", 3, false);
	check_bad_frame(f, n, WS_CLOSE_PROTOCOL);	/* unmasked */
	n = client_frame(f, 0x81, (const uint8_t *) "abc", 3, true);
	check_bad_frame(f, n, WS_CLOSE_DATA);	/* text */
	n = client_frame(f, 0x80, (const uint8_t *) "abc", 3, true);
	check_bad_frame(f, n, WS_CLOSE_PROTOCOL);	/* continuation without a message */
	n = client_frame(f, 0xC2, (const uint8_t *) "abc", 3, true);
	check_bad_frame(f, n, WS_CLOSE_PROTOCOL);	/* reserved bit */
	n = client_frame(f, 0x09, (const uint8_t *) "abc", 3, true);
	check_bad_frame(f, n, WS_CLOSE_PROTOCOL);	/* fragmented ping */
	memset(big, 'x', sizeof(big));
	pgbun_unit_settings.websocket_max_frame_size = 1024;
	n = client_frame(f, 0x82, big, sizeof(big), true);
	check_bad_frame(f, n, WS_CLOSE_TOO_BIG);
	pgbun_unit_settings.websocket_max_frame_size = saved;
}

void
websocket_suite(void)
{
	UNIT_RUN(test_accept_key);
	UNIT_RUN(test_refused);
	UNIT_RUN(test_frames);
	UNIT_RUN(test_bad_frames);
	UNIT_RUN(test_partial_write);
	UNIT_RUN(test_frames_behind_request);
}

/*
 * websocket.c - the WebSocket transport under sbuf.c (websocket.h).
 *
 * Reading: raw bytes (from the socket, or from TLS) go into the WsConn's
 * input buffer; frame headers are parsed there and each binary frame's
 * payload is unmasked straight into the caller's buffer, a piece at a
 * time, so a frame of any allowed size costs no more memory. Control
 * frames (at most 125 bytes) are handled whole: a ping is answered with a
 * pong, a close with a close (the connection then reads as end of file).
 * Anything RFC 6455 forbids from a client (an unmasked frame, reserved
 * bits, unknown opcodes, a continuation with no message, a fragmented
 * control frame) fails the read, and the close frame sent when the
 * connection closes (after the ErrorResponse saying why, once logged in)
 * has code 1002; a text frame gets 1003, a frame above
 * pgbun.websocket_max_frame_size 1009.
 *
 * Writing: the caller's bytes become one unmasked binary frame, built in
 * the WsConn's output buffer. A frame the socket cannot take whole stays
 * there and the write says EAGAIN; the caller repeats it with the same
 * bytes (as with SSL_write: sbuf.c's tls_wpend), and the repeat reports
 * the frame's payload written once it is out. Control frames (the 101
 * answer, pongs, the close) wait in a small buffer of their own and go out
 * between data frames.
 */
#include "postgres.h"

#include <errno.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#ifndef PGBUN_UNIT_TEST
#include "utils/guc.h"
#endif

#include "http.h"
#include "settings.h"
#include "tls.h"
#include "websocket.h"

bool		pgbun_websocket = false;
char	   *pgbun_websocket_path = NULL;
char	   *pgbun_websocket_allowed_origins = NULL;
int			pgbun_websocket_max_frame_size = 16 * 1024 * 1024;

#define WS_HDR_MAX		14		/* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_BUF_SIZE		(WS_HDR_MAX + SBUF_SIZE)
#define WS_IN_CAP		WS_BUF_SIZE
#define WS_OUT_PAYLOAD	SBUF_SIZE
#define WS_POOL_KEEP	64		/* free buffers kept for reuse */
#define WS_CTRL_CAP		512		/* the 101 answer, a pong and a close */
#define WS_PROTOCOL_MAX 64		/* longest Sec-WebSocket-Protocol token echoed */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

typedef struct WsConn
{
	uint8	   *in;				/* raw bytes read, not yet decoded (pooled, or NULL) */
	uint32		in_pos;
	uint32		in_end;
	uint64		remain;			/* payload bytes of the current data frame still to come */
	uint8		mask[4];
	uint32		mask_off;		/* payload bytes of the current frame unmasked so far */
	bool		in_message;		/* a fragmented message goes on (last data frame had no FIN) */
	bool		close_received; /* reads say end of file */
	bool		close_queued;	/* no more frames after it */
	bool		failed;			/* a protocol error: reads fail */
	uint16		fail_code;		/* ... and the close frame will say this */
	const char *error;			/* why (static text) */
	uint8	   *out;			/* one data frame (pooled, or NULL) */
	uint32		out_pos;
	uint32		out_end;
	uint32		out_payload;	/* payload bytes in it (reported once it is out) */
	uint8		ctrl[WS_CTRL_CAP];
	uint32		ctrl_pos;
	uint32		ctrl_end;
} WsConn;

/*
 * Frame buffers are taken only while bytes wait in them (an idle WebSocket
 * holds none, as an idle SBuf), from a per-worker free list.
 */
typedef struct WsFreeBuf
{
	struct WsFreeBuf *next;
} WsFreeBuf;

static WsFreeBuf *ws_free_bufs = NULL;
static int	ws_n_free = 0;

static uint8 *
wsbuf_get(void)
{
	uint8	   *b;

	if (ws_free_bufs)
	{
		b = (uint8 *) ws_free_bufs;
		ws_free_bufs = ws_free_bufs->next;
		ws_n_free--;
		return b;
	}
	return malloc(WS_BUF_SIZE);
}

static void
wsbuf_put(uint8 *b)
{
	if (ws_n_free < WS_POOL_KEEP)
	{
		WsFreeBuf  *f = (WsFreeBuf *) b;

		f->next = ws_free_bufs;
		ws_free_bufs = f;
		ws_n_free++;
	}
	else
		free(b);
}

/* Give the buffers back once nothing waits in them. */
static void
release_idle(WsConn *w)
{
	if (w->in && w->in_pos == w->in_end)
	{
		wsbuf_put(w->in);
		w->in = NULL;
		w->in_pos = w->in_end = 0;
	}
	if (w->out && w->out_pos == w->out_end)
	{
		wsbuf_put(w->out);
		w->out = NULL;
		w->out_pos = w->out_end = 0;
	}
}

#ifndef PGBUN_UNIT_TEST
void
websocket_define_gucs(void)
{
	DefineCustomBoolVariable("pgbun.websocket",
							 "Accept the PostgreSQL protocol inside WebSocket (RFC 6455) on pgbun's port.",
							 "A connection whose first bytes are an HTTP GET with Upgrade: websocket; over TLS too (wss://).",
							 &pgbun_websocket, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.websocket_path",
							   "Request path WebSocket upgrades must use (empty: any path).",
							   NULL, &pgbun_websocket_path, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.websocket_allowed_origins",
							   "Origin header values allowed on WebSocket upgrades (comma-separated; empty: any).",
							   "A request without an Origin header (not from a browser) is allowed.",
							   &pgbun_websocket_allowed_origins, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.websocket_max_frame_size",
							"Largest WebSocket frame payload pgbun accepts from a client (larger: close code 1009).",
							NULL, &pgbun_websocket_max_frame_size, 16 * 1024 * 1024, 1024, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
}
#endif

/* ---- the handshake ---- */

bool
ws_accept_key(const char *key, size_t key_len, char out[29])
{
	char		buf[64 + sizeof(ws_guid)];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (key_len > 64)
		return false;
	memcpy(buf, key, key_len);
	memcpy(buf + key_len, ws_guid, sizeof(ws_guid) - 1);
	if (!EVP_Digest(buf, key_len + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(), NULL) ||
		md_len != 20)
		return false;
	return EVP_EncodeBlock((unsigned char *) out, md, 20) == 28;
}

/* A base64 Sec-WebSocket-Key of 16 bytes: 22 characters and "==". */
static bool
key_valid(const HttpHeader *h)
{
	if (!h || h->value_len != 24 || h->value[22] != '=' || h->value[23] != '=')
		return false;
	for (int i = 0; i < 22; i++)
	{
		char		ch = h->value[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			  ch == '+' || ch == '/'))
			return false;
	}
	return true;
}

/* Does a comma-separated header value list hold token (case-insensitive)? */
static bool
has_token(const HttpHeader *h, const char *token)
{
	size_t		tl = strlen(token);
	const char *p;
	const char *end;

	if (!h)
		return false;
	p = h->value;
	end = h->value + h->value_len;
	while (p < end)
	{
		const char *s;
		const char *e;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t) (e - s) == tl && strncasecmp(s, token, tl) == 0)
			return true;
	}
	return false;
}

/* Is the Origin allowed by pgbun.websocket_allowed_origins (exact, case-insensitive)? */
static bool
origin_allowed(const HttpHeader *h)
{
	const char *p = pgbun_cfg->websocket_allowed_origins ? pgbun_cfg->websocket_allowed_origins : "";

	if (p[strspn(p, ", \t")] == '\0' || h == NULL)
		return true;			/* no list, or no browser (browsers always send Origin) */
	while (*p)
	{
		size_t		n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if ((n == 1 && *p == '*') ||
			(n == h->value_len && strncasecmp(p, h->value, n) == 0))
			return true;
		p += n;
	}
	return false;
}

/* Queue a refusal: an HTTP error with a one-line body, then the caller closes. */
static int
refuse(SBuf *sb, const char *status, const char *extra, const char *why, const char **why_out)
{
	char		resp[512];
	int			n;

	n = snprintf(resp, sizeof(resp),
				 "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\npgbun: %s\n",
				 status, extra, (int) strlen(why) + 8, why);
	if (n > 0 && n < (int) sizeof(resp))
		(void) sbuf_queue(sb, resp, (uint32) n);
	*why_out = why;
	return -1;
}

static void ctrl_flush(SBuf *sb);

int
ws_accept_upgrade(SBuf *sb, const char **why)
{
	HttpRequest req;
	const char *head = (const char *) sb->in + sb->parse_pos;
	uint32		avail = sbuf_unparsed(sb);
	int			len;
	const HttpHeader *key;
	const HttpHeader *proto;
	char		accept[29];
	char		proto_line[WS_PROTOCOL_MAX + 40];
	WsConn	   *w;
	int			n;

	len = http_parse_request(head, avail, &req);
	if (len == HTTP_NEED_MORE)
	{
		/* the head must fit in the input buffer, as the metrics port's does */
		if (sb->parse_pos + avail >= SBUF_SIZE)
			return refuse(sb, "431 Request Header Fields Too Large", "",
						  "WebSocket upgrade request head too large", why);
		return 0;
	}
	if (len == HTTP_TOO_MANY)
		return refuse(sb, "431 Request Header Fields Too Large", "",
					  "too many header fields in the WebSocket upgrade request", why);
	if (len < 0)
		return refuse(sb, "400 Bad Request", "", "malformed HTTP request", why);
	if (!http_method_is(&req, "GET") || req.minor_version < 1)
		return refuse(sb, "400 Bad Request", "", "expected an HTTP/1.1 GET WebSocket upgrade", why);
	if (!has_token(http_find_header(&req, "Upgrade"), "websocket") ||
		!has_token(http_find_header(&req, "Connection"), "upgrade"))
		return refuse(sb, "400 Bad Request", "", "expected a WebSocket upgrade (Upgrade: websocket)", why);
	if (pgbun_cfg->websocket_path && pgbun_cfg->websocket_path[0] && !http_path_is(&req, pgbun_cfg->websocket_path))
		return refuse(sb, "404 Not Found", "", "no WebSocket endpoint at this path", why);
	if (!origin_allowed(http_find_header(&req, "Origin")))
		return refuse(sb, "403 Forbidden", "", "WebSocket Origin not allowed (pgbun.websocket_allowed_origins)", why);
	{
		const HttpHeader *v = http_find_header(&req, "Sec-WebSocket-Version");

		if (!v || v->value_len != 2 || memcmp(v->value, "13", 2) != 0)
			return refuse(sb, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
						  "unsupported WebSocket version (13 is)", why);
	}
	key = http_find_header(&req, "Sec-WebSocket-Key");
	if (!key_valid(key) || !ws_accept_key(key->value, key->value_len, accept))
		return refuse(sb, "400 Bad Request", "", "missing or malformed Sec-WebSocket-Key", why);

	/* a subprotocol offered: take the first (pgbun speaks one protocol inside whatever name) */
	proto_line[0] = '\0';
	proto = http_find_header(&req, "Sec-WebSocket-Protocol");
	if (proto && proto->value_len > 0)
	{
		size_t		tl = strcspn(proto->value, ", \t");

		if (tl > proto->value_len)
			tl = proto->value_len;
		if (tl == 0 || tl > WS_PROTOCOL_MAX)
			return refuse(sb, "400 Bad Request", "", "malformed Sec-WebSocket-Protocol", why);
		snprintf(proto_line, sizeof(proto_line), "Sec-WebSocket-Protocol: %.*s\r\n", (int) tl, proto->value);
	}

	w = calloc(1, sizeof(WsConn));
	if (!w)
		return refuse(sb, "503 Service Unavailable", "", "out of memory", why);
	n = snprintf((char *) w->ctrl, sizeof(w->ctrl),
				 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
				 "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept, proto_line);
	Assert(n > 0 && n < (int) sizeof(w->ctrl));
	w->ctrl_end = (uint32) n;
	/* frames the client sent right behind the request: the decoder's first input */
	if (avail > (uint32) len)
	{
		w->in = wsbuf_get();
		if (!w->in)
		{
			free(w);
			return refuse(sb, "503 Service Unavailable", "", "out of memory", why);
		}
		memcpy(w->in, head + len, avail - len);
		w->in_end = avail - len;
	}
	sbuf_consume(sb, avail);
	sb->ws = w;
	sb->drained = false;		/* those frames are there to read with no new event */
	ctrl_flush(sb);
	return 1;
}

/* ---- raw I/O below the frames ---- */

static ssize_t
lower_read(SBuf *sb, void *buf, size_t len)
{
	return sb->ssl ? tls_read(sb, buf, len) : read(sb->fd, buf, len);
}

static ssize_t
lower_write(SBuf *sb, const void *buf, size_t len)
{
	return sb->ssl ? tls_write(sb, buf, len) : send(sb->fd, buf, len, MSG_NOSIGNAL);
}

/* Write buf[*pos..end): 1 all out, 0 would block (errno EAGAIN), -1 error. */
static int
write_all(SBuf *sb, const uint8 *buf, uint32 *pos, uint32 end)
{
	while (*pos < end)
	{
		ssize_t		w = lower_write(sb, buf + *pos, end - *pos);

		if (w > 0)
			*pos += (uint32) w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			errno = EAGAIN;
			return 0;
		}
		else
		{
			if (w == 0)
				errno = EPIPE;
			return -1;
		}
	}
	return 1;
}

/* Send queued control bytes unless a data frame is half-way out (it must finish first). */
static void
ctrl_flush(SBuf *sb)
{
	WsConn	   *w = sb->ws;

	if (w->out_pos < w->out_end || w->ctrl_pos == w->ctrl_end)
		return;
	if (write_all(sb, w->ctrl, &w->ctrl_pos, w->ctrl_end) != 0)
		w->ctrl_pos = w->ctrl_end = 0;	/* out, or the socket failed (the next write says so) */
}

/* Queue a control frame (server frames are unmasked); dropped when there is no room. */
static void
ctrl_queue(WsConn *w, uint8 opcode, const uint8 *payload, uint32 len)
{
	if (w->close_queued || len > 125)
		return;
	if (w->ctrl_pos == w->ctrl_end)
		w->ctrl_pos = w->ctrl_end = 0;
	if (w->ctrl_end + 2 + len > WS_CTRL_CAP)
		return;					/* a pong may answer only the latest ping (RFC 6455 5.5.3) */
	w->ctrl[w->ctrl_end++] = 0x80 | opcode;
	w->ctrl[w->ctrl_end++] = (uint8) len;
	if (len > 0)
		memcpy(w->ctrl + w->ctrl_end, payload, len);
	w->ctrl_end += len;
	if (opcode == 0x8)
		w->close_queued = true;
}

static void
queue_close(WsConn *w, uint16 code)
{
	uint8		b[2] = {code >> 8, code & 0xff};

	ctrl_queue(w, 0x8, b, 2);
}

/* A protocol error: close with code, reads fail from now on. */
static ssize_t
fail(SBuf *sb, uint16 code, const char *why)
{
	WsConn	   *w = sb->ws;

	w->failed = true;
	w->fail_code = code;
	w->error = why;
	/* the close frame goes at ws_close, after the ErrorResponse that tells why */
	errno = EPROTO;
	return -1;
}

/* ---- reading ---- */

static ssize_t ws_read_frames(SBuf *sb, uint8 *dst, size_t len);

ssize_t
ws_read(SBuf *sb, void *buf, size_t len)
{
	ssize_t		n = ws_read_frames(sb, buf, len);
	int			saved = errno;

	release_idle(sb->ws);
	errno = saved;
	return n;
}

static ssize_t
ws_read_frames(SBuf *sb, uint8 *dst, size_t len)
{
	WsConn	   *w = sb->ws;
	size_t		got = 0;

	ctrl_flush(sb);
	for (;;)
	{
		uint32		avail;
		const uint8 *p;
		uint8		op;
		uint64		plen;
		uint32		hlen;

		if (w->failed)
		{
			if (got > 0)
				return (ssize_t) got;
			errno = EPROTO;
			return -1;
		}
		if (w->close_received)
			return (ssize_t) got;	/* 0: end of file */

		avail = w->in_end - w->in_pos;
		if (w->remain > 0 && avail > 0)
		{
			/* payload of a data frame: unmask into the caller's buffer */
			uint32		n = (uint32) Min(w->remain, (uint64) Min(avail, len - got));
			const uint8 *src = w->in + w->in_pos;

			for (uint32 i = 0; i < n; i++)
				dst[got + i] = src[i] ^ w->mask[(w->mask_off + i) & 3];
			got += n;
			w->in_pos += n;
			w->mask_off += n;
			w->remain -= n;
			if (got == len)
				return (ssize_t) got;
			continue;
		}
		if (w->remain == 0 && avail >= 2)
		{
			bool		fin;

			p = w->in + w->in_pos;
			fin = (p[0] & 0x80) != 0;
			op = p[0] & 0x0f;
			if (p[0] & 0x70)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "WebSocket frame with reserved bits set");
			if (!(p[1] & 0x80))
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "unmasked WebSocket frame from the client");
			plen = p[1] & 0x7f;
			hlen = 2;
			if (plen == 126)
				hlen = 4;
			else if (plen == 127)
				hlen = 10;
			if (avail < hlen + 4)
				goto read_more;
			if (plen == 126)
				plen = ((uint64) p[2] << 8) | p[3];
			else if (plen == 127)
			{
				plen = 0;
				for (int i = 2; i < 10; i++)
					plen = (plen << 8) | p[i];
				if (plen >> 63)
					return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "WebSocket frame length out of range");
			}
			if (op & 0x8)
			{
				/* control frame: whole, at most 125 bytes */
				uint8		payload[125];

				if (!fin || plen > 125)
					return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "fragmented or oversized WebSocket control frame");
				if (op != 0x8 && op != 0x9 && op != 0xA)
					return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "unknown WebSocket opcode");
				if (avail < hlen + 4 + plen)
					goto read_more;
				for (uint32 i = 0; i < plen; i++)
					payload[i] = p[hlen + 4 + i] ^ p[hlen + (i & 3)];
				w->in_pos += hlen + 4 + (uint32) plen;
				if (op == 0x9)
				{
					ctrl_queue(w, 0xA, payload, (uint32) plen);
					ctrl_flush(sb);
				}
				else if (op == 0x8)
				{
					/* echo the status code (RFC 6455 5.5.1), then the caller sees end of file */
					if (plen >= 2)
						ctrl_queue(w, 0x8, payload, 2);
					else
						ctrl_queue(w, 0x8, NULL, 0);
					ctrl_flush(sb);
					w->close_received = true;
				}
				continue;		/* a pong: nothing to do */
			}
			if (op == 0x1)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_DATA, "WebSocket text frame (pgbun carries binary frames only)");
			if (op != 0x0 && op != 0x2)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "unknown WebSocket opcode");
			if (op == 0x0 && !w->in_message)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "WebSocket continuation frame outside a message");
			if (op == 0x2 && w->in_message)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_PROTOCOL, "new WebSocket message inside a fragmented one");
			if (plen > (uint64) pgbun_cfg->websocket_max_frame_size)
				return got > 0 ? (ssize_t) got : fail(sb, WS_CLOSE_TOO_BIG, "WebSocket frame larger than pgbun.websocket_max_frame_size");
			memcpy(w->mask, p + hlen, 4);
			w->mask_off = 0;
			w->remain = plen;
			w->in_message = !fin;
			w->in_pos += hlen + 4;
			continue;
		}

read_more:
		if (got > 0)
			return (ssize_t) got;	/* the caller asks again */
		if (!w->in)
		{
			w->in = wsbuf_get();
			if (!w->in)
			{
				errno = ENOMEM;
				return -1;
			}
			w->in_pos = w->in_end = 0;
		}
		else if (w->in_pos > 0)
		{
			memmove(w->in, w->in + w->in_pos, w->in_end - w->in_pos);
			w->in_end -= w->in_pos;
			w->in_pos = 0;
		}
		{
			ssize_t		n = lower_read(sb, w->in + w->in_end, WS_IN_CAP - w->in_end);

			if (n <= 0)
				return n;		/* end of file without a close frame, EAGAIN, or an error */
			w->in_end += (uint32) n;
		}
	}
}

bool
ws_pending(const SBuf *sb)
{
	return sb->ws && (sb->ws->in_pos < sb->ws->in_end || tls_pending(sb));
}

int
ws_buffers_held(const SBuf *sb)
{
	return sb->ws ? (sb->ws->in != NULL) + (sb->ws->out != NULL) : 0;
}

const char *
ws_error(const SBuf *sb)
{
	return sb->ws ? sb->ws->error : NULL;
}

/* ---- writing ---- */

static ssize_t ws_write_frame(SBuf *sb, const void *buf, size_t len);

ssize_t
ws_write(SBuf *sb, const void *buf, size_t len)
{
	ssize_t		n = ws_write_frame(sb, buf, len);
	int			saved = errno;

	release_idle(sb->ws);
	errno = saved;
	return n;
}

static ssize_t
ws_write_frame(SBuf *sb, const void *buf, size_t len)
{
	WsConn	   *w = sb->ws;
	uint32		m;
	uint32		h = 0;
	int			r;

	if (w->out_pos < w->out_end)
	{
		/* the repeat of a write that could not finish: its frame first */
		r = write_all(sb, w->out, &w->out_pos, w->out_end);
		if (r <= 0)
			return -1;
		w->out_pos = w->out_end = 0;
		ctrl_flush(sb);
		return (ssize_t) w->out_payload;
	}
	if (w->close_queued)
	{
		errno = EPIPE;			/* nothing may follow a close frame */
		return -1;
	}
	if (w->ctrl_pos < w->ctrl_end)
	{
		r = write_all(sb, w->ctrl, &w->ctrl_pos, w->ctrl_end);
		if (r <= 0)
			return -1;
		w->ctrl_pos = w->ctrl_end = 0;
	}
	if (len == 0)
		return 0;
	m = (uint32) Min(len, (size_t) WS_OUT_PAYLOAD);
	if (!w->out)
	{
		w->out = wsbuf_get();
		if (!w->out)
		{
			errno = ENOMEM;
			return -1;
		}
	}
	w->out[h++] = 0x82;			/* FIN, binary */
	if (m < 126)
		w->out[h++] = (uint8) m;
	else if (m <= 0xffff)
	{
		w->out[h++] = 126;
		w->out[h++] = (uint8) (m >> 8);
		w->out[h++] = (uint8) m;
	}
	else
	{
		w->out[h++] = 127;
		for (int i = 7; i >= 0; i--)
			w->out[h++] = (uint8) ((uint64) m >> (i * 8));
	}
	memcpy(w->out + h, buf, m);
	w->out_pos = 0;
	w->out_end = h + m;
	w->out_payload = m;
	r = write_all(sb, w->out, &w->out_pos, w->out_end);
	if (r <= 0)
		return -1;				/* EAGAIN: the frame waits for the repeat */
	w->out_pos = w->out_end = 0;
	return (ssize_t) m;
}

void
ws_close(SBuf *sb)
{
	WsConn	   *w = sb->ws;

	if (!w)
		return;
	if (sb->fd >= 0 && !(sb->ssl && sb->tls_state != SBUF_TLS_READY))
	{
		/* one non-blocking try, as TLS's close_notify: finish the frame, then say goodbye */
		if (w->out_pos < w->out_end &&
			write_all(sb, w->out, &w->out_pos, w->out_end) > 0)
			w->out_pos = w->out_end = 0;
		queue_close(w, w->fail_code ? w->fail_code : WS_CLOSE_NORMAL);
		ctrl_flush(sb);
	}
	if (w->in)
		wsbuf_put(w->in);
	if (w->out)
		wsbuf_put(w->out);
	free(w);
	sb->ws = NULL;
}

/*
 * fuzz_http_sql.c - libFuzzer target: the HTTP query adapter
 * (src/http_sql.c under src/sbuf.c), with both of its sides fuzzed: the
 * request a client sends and the protocol bytes pgbun answers with.
 *
 * The input: two bytes (big-endian) saying how long the request is, the
 * request, then pgbun's answers. The request is written into a socketpair
 * whose far end then closes; pgbun's end reads it the way client_login.c
 * does (http_sql_accept on the head, then reads through the adapter), and
 * after each read writes the next piece of the answers (a byte n, then
 * n + 1 bytes of answers) through sbuf, until
 * the answers run out or the adapter is done. What the client gets is
 * collected.
 *
 * Invariants beyond "no crash, no sanitizer report, no leak": a refused
 * head leaves no adapter and an HTTP status line in the out buffer; the
 * protocol stream read from the adapter is bounded (a few times the
 * request); whatever reaches the client is HTTP responses (a 100 Continue,
 * then one final answer) whose Content-Length body, when it all arrived,
 * is valid JSON.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http_sql.h"
#include "json.h"
#include "sbuf.h"
#include "tls.h"
#include "websocket.h"

#include "tls_stubs.h"	/* sbuf.c calls TLS only over TLS: never here */

static void
kick(void *owner)
{
	(*(int *) owner)++;
}

#define CLIENT_CAP (1 << 20)

/* Collect what the client got (bounded). */
static void
collect(int fd, char *buf, size_t *len)
{
	char		sink[65536];
	ssize_t		n;

	while ((n = read(fd, sink, sizeof(sink))) > 0)
	{
		size_t		take = Min((size_t) n, CLIENT_CAP - *len);

		memcpy(buf + *len, sink, take);
		*len += take;
	}
}

static const char *
find(const char *p, size_t n, const char *needle)
{
	size_t		nl = strlen(needle);

	for (size_t i = 0; i + nl <= n; i++)
		if (memcmp(p + i, needle, nl) == 0)
			return p + i;
	return NULL;
}

/* The client's bytes: HTTP responses with JSON bodies. */
static void
check_client(const char *buf, size_t len)
{
	const char *p = buf;
	const char *end = buf + len;

	if (len >= 25 && memcmp(p, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0)
		p += 25;
	if (p == end)
		return;
	FUZZ_ASSERT(end - p >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0);
	{
		const char *body = find(p, end - p, "\r\n\r\n");
		const char *cl = find(p, end - p, "Content-Length: ");
		size_t		blen;

		if (!body || !cl)
			return;				/* cut short (the socket took part of it) */
		body += 4;
		blen = strtoul(cl + 16, NULL, 10);
		if ((size_t) (end - body) >= blen)
		{
			JsonNode   *nodes = malloc(sizeof(JsonNode) * (blen + 1));
			size_t		off;

			if (json_parse(body, blen, nodes, (uint32) blen + 1, &off) <= 0)
			{
				fprintf(stderr, "not JSON (at byte %zu): %.*s\n", off, (int) blen, body);
				FUZZ_ASSERT(!"the answer's body is JSON");
			}
			FUZZ_ASSERT((size_t) (end - body) == blen);	/* nothing after the answer */
			free(nodes);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			sv[2];
	SBuf		sb;
	size_t		req_len;
	const uint8_t *answers;
	size_t		ans_len;
	size_t		ans_off = 0;
	size_t		off = 0;
	size_t		streamed = 0;
	int			kicks = 0;
	char	   *client = malloc(CLIENT_CAP);
	size_t		client_len = 0;

	if (size < 2 || size > 60000 || !client)
	{
		free(client);
		return 0;
	}
	req_len = Min((size_t) (data[0] << 8 | data[1]), size - 2);
	answers = data + 2 + req_len;
	ans_len = size - 2 - req_len;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	{
		int			big = 1 << 20;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	while (off < req_len)
	{
		ssize_t		n = write(sv[0], data + 2 + off, req_len - off);

		if (n <= 0)
			abort();
		off += (size_t) n;
	}
	shutdown(sv[0], SHUT_WR);
	sbuf_init(&sb, sv[1]);
	pgbun_unit_settings.http_sql = true;
	pgbun_unit_settings.http_sql_max_request_size = 4096;
	pgbun_unit_settings.http_sql_max_response_size = 8192;

	for (int step = 0; step < 10000; step++)
	{
		int			r;

		sbuf_ready_to_read(&sb, true);
		r = sbuf_fill(&sb);
		if (!sb.hsql)
		{
			const char *why = NULL;
			int			u;

			if (r < 0 && r != -3)
				break;
			if (sbuf_unparsed(&sb) == 0)
				continue;
			if (!http_sql_wanted(sb.in + sb.parse_pos, sbuf_unparsed(&sb)))
				break;			/* a startup packet: not this target's business */
			u = http_sql_accept(&sb, kick, &kicks, &why);
			if (u < 0)
			{
				FUZZ_ASSERT(why != NULL && sb.hsql == NULL);
				FUZZ_ASSERT(sb.out && memcmp(sb.out, "HTTP/1.1 ", 9) == 0);
				(void) sbuf_flush_out(&sb);
				break;
			}
			if (u != 1 && r <= 0)
				break;			/* incomplete head at end of input */
			continue;
		}
		if (r > 0)
		{
			streamed += sbuf_unparsed(&sb);
			FUZZ_ASSERT(streamed <= 3 * req_len + 4096);
			sbuf_consume(&sb, sbuf_unparsed(&sb));
		}
		else if (r < 0)
			break;				/* refused, or done (a Terminate, then end of file) */
		if (ans_off < ans_len)
		{
			/* a byte saying how long the piece after it is (1 to 256) */
			size_t		piece = (size_t) answers[ans_off++] + 1;

			piece = Min(piece, ans_len - ans_off);
			if (piece > 0 && sbuf_queue(&sb, answers + ans_off, (uint32) piece))
				(void) sbuf_flush_out(&sb);
			ans_off += piece;
		}
		else if (r == 0)
			break;				/* nothing more will come */
		collect(sv[0], client, &client_len);
	}
	sbuf_close(&sb);
	collect(sv[0], client, &client_len);
	check_client(client, client_len);
	close(sv[0]);
	free(client);
	return 0;
}

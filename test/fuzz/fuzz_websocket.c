/*
 * fuzz_websocket.c - libFuzzer target: the bytes a WebSocket client sends
 * (src/websocket.c under src/sbuf.c), read the way client_login.c reads
 * them: the upgrade request head (http.c), then frames.
 *
 * The input is the byte stream of a fresh client socket, written into a
 * socketpair whose far end then closes. pgbun's end fills its buffer, tries
 * the upgrade while it has none, and once upgraded reads decoded payload to
 * the end, answering each read with a server message so the write path
 * (frames, a pong or close waiting behind them) runs too; the far end's
 * input is drained as it goes.
 *
 * Invariants beyond "no crash, no sanitizer report, no leak": the decoded
 * payload is never longer than the input; a refused upgrade leaves no
 * WsConn and an HTTP status line in the out buffer; every read ends, in a
 * bounded number of steps, with end of file or an error.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "sbuf.h"
#include "tls.h"
#include "websocket.h"

#include "tls_stubs.h"	/* sbuf.c calls TLS only over TLS: never here */

static void
drain(int fd)
{
	char		sink[65536];

	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			sv[2];
	SBuf		sb;
	size_t		off = 0;
	size_t		decoded = 0;
	bool		done = false;

	if (size > 60000)
		return 0;				/* fits the socket buffer: written whole up front */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	{
		int			big = 1 << 20;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	while (off < size)
	{
		ssize_t		n = write(sv[0], data + off, size - off);

		if (n <= 0)
			abort();
		off += (size_t) n;
	}
	shutdown(sv[0], SHUT_WR);
	sbuf_init(&sb, sv[1]);
	pgbun_unit_settings.websocket = true;
	pgbun_unit_settings.websocket_max_frame_size = 4096;

	for (int step = 0; step < 100000 && !done; step++)
	{
		int			r;

		sbuf_ready_to_read(&sb, true);
		r = sbuf_fill(&sb);
		if (!sb.ws)
		{
			const char *why = NULL;
			int			u;

			if (r < 0 && r != -3)
				break;
			if (sbuf_unparsed(&sb) == 0)
				continue;
			if (sb.in[sb.parse_pos] != 'G')
				break;			/* a startup packet: not this target's business */
			u = ws_accept_upgrade(&sb, &why);
			if (u < 0)
			{
				FUZZ_ASSERT(why != NULL && sb.ws == NULL);
				FUZZ_ASSERT(sb.out && memcmp(sb.out, "HTTP/1.1 ", 9) == 0);
				break;
			}
			if (u == 0 && r <= 0)
				break;			/* incomplete head at end of input */
			continue;
		}
		if (r > 0)
		{
			decoded += sbuf_unparsed(&sb);
			FUZZ_ASSERT(decoded <= size);
			sbuf_consume(&sb, sbuf_unparsed(&sb));
			if (sbuf_queue(&sb, "Z\0\0\0\5I", 6))
				(void) sbuf_flush_out(&sb);
		}
		else if (r < 0)
			done = true;
		drain(sv[0]);
	}
	sbuf_close(&sb);
	drain(sv[0]);
	close(sv[0]);
	return 0;
}

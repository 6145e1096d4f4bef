/*
 * test_http_sql.c - the HTTP query adapter (src/http_sql.c) over a
 * socketpair, with the test playing both the HTTP client (its end of the
 * pair) and pgbun (reads and writes of the SBuf): the protocol stream made
 * from a request (StartupMessage, the password when asked, Parse/Bind/
 * Describe/Execute/Sync with text parameters and NULL once logged in), the
 * JSON answer made from RowDescription/DataRow/CommandComplete in array
 * and object mode, a batch inside BEGIN .. COMMIT, a failed batch rolled
 * back and answered 400 with the server's error fields, a login error,
 * an answer over the size limit, and requests refused at the head or the
 * body with their HTTP status.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_sql.h"
#include "sbuf.h"
#include "unit.h"

typedef struct HsPair
{
	int			peer;			/* the HTTP client */
	SBuf		sb;				/* pgbun's end */
	int			kicks;
} HsPair;

static void
kick(void *owner)
{
	((HsPair *) owner)->kicks++;
}

static void
pair_open(HsPair *p)
{
	int			a[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
	fcntl(a[1], F_SETFL, fcntl(a[1], F_GETFL) | O_NONBLOCK);
	fcntl(a[0], F_SETFL, fcntl(a[0], F_GETFL) | O_NONBLOCK);
	p->peer = a[0];
	p->kicks = 0;
	sbuf_init(&p->sb, a[1]);
}

static void
pair_close(HsPair *p)
{
	sbuf_close(&p->sb);
	close(p->peer);
}

/* Send an HTTP request with a JSON body; extra: more header lines. */
static void
send_request(HsPair *p, const char *method, const char *path, const char *extra, const char *body)
{
	char		req[8192];
	int			n;

	n = snprintf(req, sizeof(req),
				 "%s %s HTTP/1.1\r\nHost: localhost\r\n"
				 "Neon-Connection-String: postgresql://alice:s%%65cret@db.example/app?application_name=t%%20a&x=1\r\n"
				 "Neon-Raw-Text-Output: true\r\n%sContent-Length: %zu\r\n\r\n%s",
				 method, path, extra, strlen(body), body);
	CHECK(write(p->peer, req, n) == n);
	sbuf_ready_to_read(&p->sb, false);
}

/* pgbun reads: everything the adapter has now, as one byte string. */
static size_t
pgbun_reads(HsPair *p, uint8_t *out, size_t cap)
{
	size_t		got = 0;

	while (sbuf_fill(&p->sb) > 0)
	{
		uint32		n = sbuf_unparsed(&p->sb);

		if (got + n <= cap)
			memcpy(out + got, p->sb.in + p->sb.parse_pos, n);
		got += n;
		sbuf_consume(&p->sb, n);
	}
	return got;
}

/* pgbun writes protocol bytes to the client. */
static void
pgbun_writes(HsPair *p, const void *data, size_t len)
{
	CHECK(sbuf_queue(&p->sb, data, (uint32) len));
	CHECK(sbuf_flush_out(&p->sb) == 1);
}

static void
put_msg(uint8_t **w, char type, const void *body, size_t len)
{
	uint32_t	l = (uint32_t) len + 4;

	*(*w)++ = (uint8_t) type;
	*(*w)++ = (uint8_t) (l >> 24);
	*(*w)++ = (uint8_t) (l >> 16);
	*(*w)++ = (uint8_t) (l >> 8);
	*(*w)++ = (uint8_t) l;
	memcpy(*w, body, len);
	*w += len;
}

/* The HTTP response at the client's end, NUL-terminated. */
static size_t
client_reads(HsPair *p, char *out, size_t cap)
{
	size_t		got = 0;
	ssize_t		n;

	while (got + 1 < cap && (n = read(p->peer, out + got, cap - 1 - got)) > 0)
		got += (size_t) n;
	out[got] = '\0';
	return got;
}

static bool
contains(const uint8_t *hay, size_t n, const char *needle, size_t nl)
{
	for (size_t i = 0; i + nl <= n; i++)
		if (memcmp(hay + i, needle, nl) == 0)
			return true;
	return false;
}

/* Log in: the startup packet, the password, AuthenticationOk + ReadyForQuery; returns the query stream. */
static size_t
login(HsPair *p, uint8_t *got, size_t cap)
{
	uint8_t		m[256];
	uint8_t    *w = m;
	size_t		n;
	static const uint8_t auth3[] = {0, 0, 0, 3};
	static const uint8_t auth0[] = {0, 0, 0, 0};
	const char *why = NULL;

	CHECK(sbuf_fill(&p->sb) > 0);
	CHECK(http_sql_accept(&p->sb, kick, p, &why) == 1);
	n = pgbun_reads(p, got, cap);
	CHECK(n > 8 && got[4] == 0 && got[5] == 3);
	CHECK(contains(got, n, "user\0alice\0database\0app\0client_encoding\0UTF8\0application_name\0t a\0\0", 64));
	put_msg(&w, 'R', auth3, 4);
	pgbun_writes(p, m, w - m);
	n = pgbun_reads(p, got, cap);
	CHECK(n == 12 && got[0] == 'p' && memcmp(got + 5, "secret", 7) == 0);
	w = m;
	put_msg(&w, 'R', auth0, 4);
	put_msg(&w, 'S', "a\0b", 4);
	put_msg(&w, 'Z', "I", 1);
	pgbun_writes(p, m, w - m);
	return pgbun_reads(p, got, cap);
}

/* RowDescription with one or two text columns. */
static size_t
row_description(uint8_t *b, int nf)
{
	static const uint8_t one[] = {
		'a', 0, 0, 0, 0x40, 0, 0, 2, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
	};
	static const uint8_t two[] = {
		'b', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0,
	};
	size_t		n = 0;

	b[n++] = 0;
	b[n++] = (uint8_t) nf;
	memcpy(b + n, one, sizeof(one));
	n += sizeof(one);
	if (nf > 1)
	{
		memcpy(b + n, two, sizeof(two));
		n += sizeof(two);
	}
	return n;
}

static void
test_single_query(void)
{
	HsPair		p;
	uint8_t		got[4096];
	uint8_t		m[1024];
	uint8_t    *w = m;
	uint8_t		rd[64];
	size_t		n;
	char		resp[4096];
	static const uint8_t row1[] = {0, 2, 0, 0, 0, 3, 'x', '"', 'y', 0xff, 0xff, 0xff, 0xff};
	static const uint8_t row2[] = {0, 2, 0, 0, 0, 0, 0, 0, 0, 2, '4', '2'};

	pair_open(&p);
	send_request(&p, "POST", "/sql", "Neon-Array-Mode: true\r\n",
				 "{\"query\":\"SELECT $1::text AS a, $2::int AS b\",\"params\":[\"x\\\"y\",null]}");
	n = login(&p, got, sizeof(got));
	/* Parse, Bind with two text parameters (the second NULL), Describe portal, Execute, Sync */
	CHECK(n > 0 && got[0] == 'P');
	CHECK(contains(got, n, "SELECT $1::text AS a, $2::int AS b\0\0\0", 37));
	CHECK(contains(got, n, "\0\0\0\0\0\x02\0\0\0\x03x\"y\xff\xff\xff\xff\0\0", 19));
	CHECK(contains(got, n, "D\0\0\0\x06P\0E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04", 22));
	CHECK(got[n - 5] == 'S');
	CHECK(p.kicks >= 2);

	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'T', rd, row_description(rd, 2));
	put_msg(&w, 'D', row1, sizeof(row1));
	put_msg(&w, 'D', row2, sizeof(row2));
	put_msg(&w, 'C', "SELECT 2", 9);
	/* the client sees nothing until the whole answer is in */
	pgbun_writes(&p, m, w - m);
	CHECK(client_reads(&p, resp, sizeof(resp)) == 0);
	w = m;
	put_msg(&w, 'Z', "I", 1);
	pgbun_writes(&p, m, w - m);
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(resp, "Connection: close\r\n") != NULL);
	CHECK(strstr(resp, "\r\n\r\n{\"fields\":[{\"name\":\"a\",\"tableID\":16384,\"columnID\":2,\"dataTypeID\":25,\"dataTypeSize\":-1,\"dataTypeModifier\":-1,\"format\":\"text\"},"
				 "{\"name\":\"b\",\"tableID\":0,\"columnID\":0,\"dataTypeID\":23,\"dataTypeSize\":4,\"dataTypeModifier\":-1,\"format\":\"text\"}],"
				 "\"rowAsArray\":true,\"rows\":[[\"x\\\"y\",null],[\"\",\"42\"]],\"command\":\"SELECT\",\"rowCount\":2}") != NULL);
	/* then pgbun reads a Terminate, then end of file */
	n = pgbun_reads(&p, got, sizeof(got));
	CHECK(n == 5 && got[0] == 'X');
	CHECK(sbuf_fill(&p.sb) == -1);
	pair_close(&p);
}

static void
test_object_mode_and_batch(void)
{
	HsPair		p;
	uint8_t		got[4096];
	uint8_t		m[1024];
	uint8_t    *w = m;
	uint8_t		rd[64];
	size_t		n;
	char		resp[4096];
	static const uint8_t row[] = {0, 1, 0, 0, 0, 1, '7'};

	pair_open(&p);
	send_request(&p, "POST", "/sql", "Neon-Batch-Isolation-Level: Serializable\r\nNeon-Batch-Read-Only: false\r\nNeon-Batch-Deferrable: true\r\n",
				 "{\"queries\":[{\"query\":\"SELECT 7 AS a\",\"params\":[]},{\"query\":\"INSERT INTO t VALUES (1)\"}]}");
	n = login(&p, got, sizeof(got));
	CHECK(contains(got, n, "BEGIN ISOLATION LEVEL SERIALIZABLE DEFERRABLE\0", 46));
	CHECK(contains(got, n, "SELECT 7 AS a\0", 14));
	CHECK(contains(got, n, "INSERT INTO t VALUES (1)\0", 25));
	CHECK(!contains(got, n, "COMMIT", 6));
	/* BEGIN, then the two queries, then Sync: 'T' asks for the COMMIT */
	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'C', "BEGIN", 6);
	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'T', rd, row_description(rd, 1));
	put_msg(&w, 'D', row, sizeof(row));
	put_msg(&w, 'C', "SELECT 1", 9);
	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'n', "", 0);
	put_msg(&w, 'C', "INSERT 0 1", 11);
	put_msg(&w, 'Z', "T", 1);
	pgbun_writes(&p, m, w - m);
	n = pgbun_reads(&p, got, sizeof(got));
	CHECK(n == 12 && got[0] == 'Q' && memcmp(got + 5, "COMMIT", 7) == 0);
	w = m;
	put_msg(&w, 'C', "COMMIT", 7);
	put_msg(&w, 'Z', "I", 1);
	pgbun_writes(&p, m, w - m);
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
	CHECK(strstr(resp, "\r\n\r\n{\"results\":[{\"fields\":[{\"name\":\"a\",") != NULL);
	CHECK(strstr(resp, "\"rowAsArray\":false,\"rows\":[{\"a\":\"7\"}],\"command\":\"SELECT\",\"rowCount\":1},"
				 "{\"fields\":[],\"rowAsArray\":false,\"rows\":[],\"command\":\"INSERT\",\"rowCount\":1}]}") != NULL);
	pair_close(&p);
}

static void
test_failed_batch(void)
{
	HsPair		p;
	uint8_t		got[4096];
	uint8_t		m[1024];
	uint8_t    *w = m;
	size_t		n;
	char		resp[4096];
	static const char err[] = "SERROR\0VERROR\0C23505\0Mduplicate key value\0DKey (id)=(1) already exists.\0sPublic\0tt\0nt_pkey\0Fnbtinsert.c\0L663\0Rf\0";

	pair_open(&p);
	send_request(&p, "POST", "/sql", "", "{\"queries\":[{\"query\":\"INSERT INTO t VALUES (1)\",\"params\":[]}]}");
	n = login(&p, got, sizeof(got));
	CHECK(contains(got, n, "BEGIN\0", 6));
	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'C', "BEGIN", 6);
	put_msg(&w, '1', "", 0);
	put_msg(&w, '2', "", 0);
	put_msg(&w, 'n', "", 0);
	put_msg(&w, 'E', err, sizeof(err));
	put_msg(&w, 'Z', "E", 1);
	pgbun_writes(&p, m, w - m);
	n = pgbun_reads(&p, got, sizeof(got));
	CHECK(n == 14 && got[0] == 'Q' && memcmp(got + 5, "ROLLBACK", 9) == 0);
	CHECK(client_reads(&p, resp, sizeof(resp)) == 0);
	w = m;
	put_msg(&w, 'C', "ROLLBACK", 9);
	put_msg(&w, 'Z', "I", 1);
	pgbun_writes(&p, m, w - m);
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	CHECK(strstr(resp, "\r\n\r\n{\"code\":\"23505\",\"message\":\"duplicate key value\",\"detail\":\"Key (id)=(1) already exists.\","
				 "\"schema\":\"Public\",\"table\":\"t\",\"constraint\":\"t_pkey\",\"file\":\"nbtinsert.c\",\"line\":\"663\",\"routine\":\"f\",\"severity\":\"ERROR\"}") != NULL);
	pair_close(&p);
}

static void
test_login_error_and_limit(void)
{
	HsPair		p;
	uint8_t		got[4096];
	uint8_t		m[1024];
	uint8_t    *w = m;
	char		resp[4096];
	static const uint8_t auth3[] = {0, 0, 0, 3};
	static const char err[] = "SFATAL\0C28P01\0Mpgbun: password authentication failed for user \"alice\"\0";
	int			saved = pgbun_unit_settings.http_sql_max_response_size;
	const char *why = NULL;

	/* a login error is answered at once: pgbun closes next */
	pair_open(&p);
	send_request(&p, "POST", "/sql", "", "{\"query\":\"SELECT 1\"}");
	CHECK(sbuf_fill(&p.sb) > 0);
	CHECK(http_sql_accept(&p.sb, kick, &p, &why) == 1);
	(void) pgbun_reads(&p, got, sizeof(got));
	put_msg(&w, 'R', auth3, 4);
	pgbun_writes(&p, m, w - m);
	(void) pgbun_reads(&p, got, sizeof(got));
	w = m;
	put_msg(&w, 'E', err, sizeof(err));
	pgbun_writes(&p, m, w - m);
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	CHECK(strstr(resp, "{\"code\":\"28P01\",\"message\":\"pgbun: password authentication failed for user \\\"alice\\\"\",\"severity\":\"FATAL\"}") != NULL);
	pair_close(&p);

	/* an answer over the limit: its rows are dropped, the answer is an error */
	pgbun_unit_settings.http_sql_max_response_size = 1024;
	pair_open(&p);
	send_request(&p, "POST", "/sql", "", "{\"query\":\"SELECT repeat('x', 100) FROM generate_series(1, 100)\"}");
	(void) login(&p, got, sizeof(got));
	{
		uint8_t		rd[64];
		uint8_t		row[110] = {0, 1, 0, 0, 0, 100};

		memset(row + 6, 'x', 100);
		w = m;
		put_msg(&w, 'T', rd, row_description(rd, 1));
		pgbun_writes(&p, m, w - m);
		for (int i = 0; i < 100; i++)
		{
			w = m;
			put_msg(&w, 'D', row, 106);
			pgbun_writes(&p, m, w - m);
		}
		w = m;
		put_msg(&w, 'C', "SELECT 100", 11);
		put_msg(&w, 'Z', "I", 1);
		pgbun_writes(&p, m, w - m);
	}
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	CHECK(strstr(resp, "\"code\":\"54000\"") != NULL);
	CHECK(strstr(resp, "pgbun: the answer is larger than pgbun.http_sql_max_response_size") != NULL);
	pair_close(&p);
	pgbun_unit_settings.http_sql_max_response_size = saved;
}

/* A request refused at its head: the status line the client gets. */
static void
refused_head(const char *method, const char *path, const char *extra, const char *body, const char *status)
{
	HsPair		p;
	char		resp[4096];
	const char *why = NULL;

	pair_open(&p);
	send_request(&p, method, path, extra, body);
	CHECK(sbuf_fill(&p.sb) > 0);
	CHECK(http_sql_accept(&p.sb, kick, &p, &why) == -1 && why != NULL);
	CHECK(sbuf_flush_out(&p.sb) == 1);
	client_reads(&p, resp, sizeof(resp));
	if (strncmp(resp, status, strlen(status)) != 0)
		printf("  %s %s: got %.40s\n", method, path, resp);
	CHECK(strncmp(resp, status, strlen(status)) == 0);
	CHECK(strstr(resp, "{\"message\":\"pgbun: ") != NULL);
	pair_close(&p);
}

/* A request refused at its body: accepted at the head, then the read fails. */
static void
refused_body(const char *extra, const char *body, const char *status, const char *text)
{
	HsPair		p;
	char		resp[4096];
	uint8_t		got[256];
	const char *why = NULL;

	pair_open(&p);
	send_request(&p, "POST", "/sql", extra, body);
	CHECK(sbuf_fill(&p.sb) > 0);
	CHECK(http_sql_accept(&p.sb, kick, &p, &why) == 1);
	CHECK(pgbun_reads(&p, got, sizeof(got)) == 0);
	CHECK(sbuf_fill(&p.sb) == -2);
	client_reads(&p, resp, sizeof(resp));
	if (strncmp(resp, status, strlen(status)) != 0 || !strstr(resp, text))
		printf("  %s: got %.300s\n", body, resp);
	CHECK(strncmp(resp, status, strlen(status)) == 0);
	CHECK(strstr(resp, text) != NULL);
	pair_close(&p);
}

static void
test_refused(void)
{
	char		big[2100];

	refused_head("GET", "/sql", "", "", "HTTP/1.1 405 ");
	refused_head("POST", "/other", "", "{}", "HTTP/1.1 404 ");
	refused_head("POST", "/sql", "Transfer-Encoding: chunked\r\n", "", "HTTP/1.1 411 ");
	refused_head("POST", "/sql", "Authorization: Bearer x\r\n", "{}", "HTTP/1.1 400 ");
	pgbun_unit_settings.http_sql_max_request_size = 1024;
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	refused_head("POST", "/sql", "", big, "HTTP/1.1 413 ");
	pgbun_unit_settings.http_sql_max_request_size = 1024 * 1024;

	refused_body("", "{\"query\":", "HTTP/1.1 400 ", "invalid JSON");
	refused_body("", "[1]", "HTTP/1.1 400 ", "must be a JSON object");
	refused_body("", "{\"params\":[]}", "HTTP/1.1 400 ", "needs a \\\"query\\\" string");
	refused_body("", "{\"query\":\"x\",\"params\":[[1]]}", "HTTP/1.1 400 ", "parameters must be");
	refused_body("", "{\"query\":\"a\\u0000b\"}", "HTTP/1.1 400 ", "\\\\u0000");
	refused_body("", "{\"query\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "HTTP/1.1 400 ", "nested too deep");
	refused_body("Neon-Batch-Isolation-Level: Chaos\r\n", "{\"queries\":[]}", "HTTP/1.1 400 ", "Neon-Batch-Isolation-Level must be");
}

/* A head in pieces: the adapter reads the rest; a timeout meanwhile is a 408. */
static void
test_slow_head(void)
{
	HsPair		p;
	uint8_t		got[512];
	uint8_t		m[256];
	uint8_t    *w = m;
	char		resp[2048];
	const char *why = NULL;
	static const char part1[] = "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: postgresql://bob@h/d";
	static const char part2[] = "b\r\nContent-Length: 20\r\n\r\n{\"query\":";
	static const char part3[] = "\"SELECT 1\"}";
	static const char err[] = "SFATAL\0C08P01\0Mpgbun: client_login_timeout: login not finished in time\0";

	pair_open(&p);
	CHECK(write(p.peer, part1, sizeof(part1) - 1) == sizeof(part1) - 1);
	CHECK(sbuf_fill(&p.sb) > 0);
	CHECK(http_sql_accept(&p.sb, kick, &p, &why) == 1);
	CHECK(pgbun_reads(&p, got, sizeof(got)) == 0);
	CHECK(write(p.peer, part2, sizeof(part2) - 1) == sizeof(part2) - 1);
	CHECK(pgbun_reads(&p, got, sizeof(got)) == 0);
	CHECK(write(p.peer, part3, sizeof(part3) - 1) == sizeof(part3) - 1);
	CHECK(pgbun_reads(&p, got, sizeof(got)) > 8);
	CHECK(contains(got, sizeof(got), "user\0bob\0database\0db\0", 21));
	pair_close(&p);

	pair_open(&p);
	CHECK(write(p.peer, part1, sizeof(part1) - 1) == sizeof(part1) - 1);
	CHECK(sbuf_fill(&p.sb) > 0);
	CHECK(http_sql_accept(&p.sb, kick, &p, &why) == 1);
	CHECK(pgbun_reads(&p, got, sizeof(got)) == 0);
	put_msg(&w, 'E', err, sizeof(err));
	pgbun_writes(&p, m, w - m);
	client_reads(&p, resp, sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
	CHECK(strstr(resp, "\"message\":\"pgbun: client_login_timeout") != NULL);
	pair_close(&p);
}

/*
 * Answers PostgreSQL never sends (found by fuzz_http_sql): a DataRow
 * shorter than its column count, a ReadyForQuery with no result, a second
 * RowDescription before the first result's CommandComplete. The client
 * gets a 502 with a JSON body, never broken JSON or an over-read.
 */
static void
test_malformed_answer(void)
{
	static const uint8_t short_row[] = {0, 2, 0, 0, 0, 1, 'U'};

	for (int k = 0; k < 3; k++)
	{
		HsPair		p;
		uint8_t		got[1024];
		uint8_t		m[512];
		uint8_t    *w = m;
		uint8_t		rd[64];
		char		resp[2048];

		pair_open(&p);
		send_request(&p, "POST", "/sql", "Neon-Array-Mode: true\r\n", "{\"query\":\"SELECT 1\"}");
		(void) login(&p, got, sizeof(got));
		if (k == 0)
		{
			put_msg(&w, 'T', rd, row_description(rd, 2));
			put_msg(&w, 'D', short_row, sizeof(short_row));
			put_msg(&w, 'C', "SELECT 1", 9);
		}
		else if (k == 2)
		{
			put_msg(&w, 'T', rd, row_description(rd, 2));
			put_msg(&w, 'T', rd, row_description(rd, 2));
			put_msg(&w, 'C', "SELECT 0", 9);
		}
		put_msg(&w, 'Z', "I", 1);
		pgbun_writes(&p, m, w - m);
		client_reads(&p, resp, sizeof(resp));
		CHECK(strncmp(resp, "HTTP/1.1 502 ", 13) == 0);
		CHECK(strstr(resp, "\r\n\r\n{\"message\":\"pgbun: malformed answer from the server\",\"code\":\"08P01\"") != NULL);
		pair_close(&p);
	}
}

void
http_sql_suite(void)
{
	UNIT_RUN(test_malformed_answer);
	UNIT_RUN(test_slow_head);
	UNIT_RUN(test_single_query);
	UNIT_RUN(test_object_mode_and_batch);
	UNIT_RUN(test_failed_batch);
	UNIT_RUN(test_login_error_and_limit);
	UNIT_RUN(test_refused);
}

/*
 * http_sql.c - Neon's HTTP query API under sbuf.c (http_sql.h).
 *
 * A connection goes through these phases:
 *
 *   HS_HEAD      the head began but is not complete: read here, so that a
 *                client too slow for client_login_timeout gets an HTTP 408.
 *   HS_BODY      the head was accepted (http_sql_accept); the body is read
 *                from the socket (or TLS) into a buffer of Content-Length
 *                bytes, then parsed (json.c) and turned into the protocol
 *                stream: the StartupMessage now, the queries for later.
 *   HS_LOGIN     pgbun logs the client in: AuthenticationCleartextPassword
 *                is answered with the connection string's password
 *                (client_login.c checks it against the role's verifier as
 *                for hba "password"), an ErrorResponse is the answer.
 *   HS_QUERIES   the first ReadyForQuery released the queries; answers are
 *                collected into the JSON body.
 *   HS_COMMIT /  a batch ran inside BEGIN and its Sync said 'T': COMMIT
 *   HS_ROLLBACK  (or ROLLBACK after an error, an over-size answer, or a
 *                single query that left a transaction open).
 *   HS_RESPOND   the HTTP response is going out.
 *   HS_DONE      it is out: reads give a Terminate, then end of file.
 *   HS_FAILED    refused before login: an HTTP error is queued; reads fail.
 *
 * pgbun's writes are parsed a message at a time (a message split over
 * writes is reassembled, bounded by the answer limit) and always taken
 * whole, except the one that completes the answer: when the socket cannot
 * take the response, that write says EAGAIN and sbuf.c repeats it
 * (tls_wpend) until the response is out, so the server stays linked, as
 * for any client with unsent answers.
 */
#include "postgres.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef PGBUN_UNIT_TEST
#include "utils/guc.h"
#endif

#include "http.h"
#include "http_sql.h"
#include "json.h"
#include "tls.h"
#include "websocket.h"

bool		pgbun_http_sql = false;
int			pgbun_http_sql_max_request_size = 1024 * 1024;
int			pgbun_http_sql_max_response_size = 10 * 1024 * 1024;

#define HS_PASSWORD_MAX		1024
#define HS_APPNAME_MAX		64
#define HS_ERROR_MAX		(256 * 1024)	/* one ErrorResponse as JSON */
#define HS_MAX_FIELDS		1664	/* PostgreSQL's MaxTupleAttributeNumber */
#define HS_MAX_PARAMS		65535	/* the protocol's Int16 */

typedef enum HsPhase
{
	HS_HEAD,
	HS_BODY,
	HS_LOGIN,
	HS_QUERIES,
	HS_COMMIT,
	HS_ROLLBACK,
	HS_RESPOND,
	HS_DONE,
	HS_FAILED,
} HsPhase;

typedef struct HttpSqlConn
{
	HsPhase		phase;
	void		(*kick) (void *owner);
	void	   *owner;
	const char *error;			/* why reads fail (static text) */

	/* the request */
	char	   *head;			/* HS_HEAD: the head so far (SBUF_SIZE bytes) */
	uint32		head_len;
	HttpHeadScan head_scan;		/* ... and where its end was looked for */
	char	   *body;
	uint32		body_len;		/* Content-Length */
	uint32		body_have;
	bool		array_mode;		/* Neon-Array-Mode: rows as arrays, not objects */
	char		user[NAMEDATALEN];
	char		database[NAMEDATALEN];
	char		appname[HS_APPNAME_MAX];
	char		password[HS_PASSWORD_MAX];
	char		begin_sql[96];	/* BEGIN with the batch's options */
	const char *batch_error;	/* ... or why they are wrong */
	bool		batch;
	int			n_queries;

	/* the protocol stream for pgbun: given out from in_pos */
	JsonBuf		in;
	size_t		in_pos;
	bool		in_secret;		/* in holds the password message: zeroed once read */
	JsonBuf		queries;		/* appended to in at the first ReadyForQuery */
	bool		terminate_given;

	/* pgbun's answers, reassembled a message at a time */
	uint8		hdr[5];
	uint32		hdr_have;
	uint32		msg_len;		/* body bytes of the current message */
	uint32		msg_have;
	bool		msg_drop;		/* too large for the answer limit: skipped */
	uint8	   *msg;
	uint32		msg_cap;

	/* the answer */
	int			exec_idx;		/* Execute whose answers come now (batch: 0 is BEGIN) */
	bool		result_open;	/* a result object is open in out */
	int			n_results;
	uint64		n_rows;			/* rows of the open result */
	int			n_fields;
	char	  **field_names;	/* object mode: the open result's column names */
	JsonBuf		out;			/* the JSON body on success */
	JsonBuf		err;			/* the first ErrorResponse as JSON */
	bool		have_error;
	bool		bad_answer;		/* a malformed message came (never from PostgreSQL) */

	/* the response going out */
	char		resp_head[320];
	uint32		resp_head_len;
	uint32		resp_head_pos;
	JsonBuf    *resp_body;
	size_t		resp_body_pos;
	JsonBuf		own_body;		/* pgbun-made error bodies */
	size_t		owed;			/* bytes of a write that said EAGAIN, reported at its repeat */
} HttpSqlConn;

#ifndef PGBUN_UNIT_TEST
void
http_sql_define_gucs(void)
{
	DefineCustomBoolVariable("pgbun.http_sql",
							 "Serve Neon's HTTP query API (POST /sql, as neon() sends it) on pgbun's port.",
							 "Plain HTTP only from loopback; other clients must use TLS (https://).",
							 &pgbun_http_sql, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.http_sql_max_request_size",
							"Largest request body the HTTP query endpoint accepts (larger: 413).",
							NULL, &pgbun_http_sql_max_request_size, 1024 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.http_sql_max_response_size",
							"Largest JSON answer the HTTP query endpoint builds (larger: an error, SQLSTATE 54000).",
							NULL, &pgbun_http_sql_max_response_size, 10 * 1024 * 1024, 1024, 1024 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
}
#endif

/* ---- raw I/O below the adapter ---- */

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

/* ---- HTTP answers ---- */

static const char *
status_text(int status)
{
	switch (status)
	{
		case 200:
			return "OK";
		case 400:
			return "Bad Request";
		case 403:
			return "Forbidden";
		case 404:
			return "Not Found";
		case 405:
			return "Method Not Allowed";
		case 408:
			return "Request Timeout";
		case 411:
			return "Length Required";
		case 413:
			return "Content Too Large";
		case 431:
			return "Request Header Fields Too Large";
		case 501:
			return "Not Implemented";
		case 502:
			return "Bad Gateway";
		case 503:
			return "Service Unavailable";
	}
	return "Error";
}

/* {"message":"pgbun: ...","code":"..."} */
static void
put_error_body(JsonBuf *b, const char *sqlstate, const char *msg)
{
	char		m[512];

	snprintf(m, sizeof(m), "pgbun: %s", msg);
	json_put_cstr(b, "{\"message\":");
	json_put_string(b, m, strlen(m));
	json_put_cstr(b, ",\"code\":");
	json_put_string(b, sqlstate, strlen(sqlstate));
	json_put_cstr(b, ",\"severity\":\"ERROR\"}");
}

/*
 * A refusal at the head, before there is an adapter: queued in sb's out
 * buffer (the caller flushes it and closes).
 */
static int
refuse_head(SBuf *sb, int status, const char *extra, const char *sqlstate, const char *why,
			const char **why_out)
{
	JsonBuf		b;
	char		head[256];
	int			n;

	json_buf_init(&b, 2048);
	put_error_body(&b, sqlstate, why);
	n = snprintf(head, sizeof(head),
				 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
				 status, status_text(status), extra, b.len);
	if (!b.overflow && n > 0 && n < (int) sizeof(head) && n + b.len <= SBUF_SIZE)
	{
		(void) sbuf_queue(sb, head, (uint32) n);
		(void) sbuf_queue(sb, b.data, (uint32) b.len);
	}
	json_buf_free(&b);
	*why_out = why;
	return -1;
}

/* Make the response: status line, headers (extra: more of them) and body (owned by h). */
static void
respond_with(HttpSqlConn *h, int status, const char *extra, JsonBuf *body)
{
	int			n;

	n = snprintf(h->resp_head, sizeof(h->resp_head),
				 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
				 status, status_text(status), extra, body->len);
	h->resp_head_len = (uint32) Min(n, (int) sizeof(h->resp_head) - 1);
	h->resp_head_pos = 0;
	h->resp_body = body;
	h->resp_body_pos = 0;
	if (h->phase != HS_FAILED)
		h->phase = HS_RESPOND;
}

static void
respond(HttpSqlConn *h, int status, JsonBuf *body)
{
	respond_with(h, status, "", body);
}

/* A pgbun-made error response. */
static void
respond_error(HttpSqlConn *h, int status, const char *extra, const char *sqlstate, const char *msg)
{
	json_buf_reset(&h->own_body);
	put_error_body(&h->own_body, sqlstate, msg);
	respond_with(h, status, extra, &h->own_body);
}

/* Write what is left of the response: 1 all out, 0 would block, -1 error. */
static int
flush_response(SBuf *sb)
{
	HttpSqlConn *h = sb->hsql;

	while (h->resp_head_pos < h->resp_head_len ||
		   (h->resp_body && h->resp_body_pos < h->resp_body->len))
	{
		const char *p;
		size_t		n;
		ssize_t		w;

		if (h->resp_head_pos < h->resp_head_len)
		{
			p = h->resp_head + h->resp_head_pos;
			n = h->resp_head_len - h->resp_head_pos;
		}
		else
		{
			p = h->resp_body->data + h->resp_body_pos;
			n = h->resp_body->len - h->resp_body_pos;
		}
		w = lower_write(sb, p, n);
		if (w > 0)
		{
			if (h->resp_head_pos < h->resp_head_len)
				h->resp_head_pos += (uint32) w;
			else
				h->resp_body_pos += (size_t) w;
		}
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		else
			return -1;
	}
	return 1;
}

/* ---- the head ---- */

static bool
peer_is_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t	len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *) &ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_UNIX)
		return true;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *) &ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6)
	{
		const struct in6_addr *a = &((struct sockaddr_in6 *) &ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static bool
header_is(const HttpHeader *h, const char *value)
{
	return h && h->value_len == strlen(value) && strncasecmp(h->value, value, h->value_len) == 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..len) into out (cap bytes with the NUL); false if bad or too long. */
static bool
url_decode(const char *s, size_t len, bool plus_is_space, char *out, size_t cap)
{
	size_t		o = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		ch = s[i];

		if (ch == '%')
		{
			int			hi;
			int			lo;

			if (i + 2 >= len)
				return false;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			ch = (char) (hi << 4 | lo);
			i += 2;
		}
		else if (ch == '+' && plus_is_space)
			ch = ' ';
		if (o + 1 >= cap)
			return false;
		out[o++] = ch;
	}
	out[o] = '\0';
	return true;
}

/*
 * Neon-Connection-String: postgres[ql]://user[:password]@host[:port]/dbname[?params].
 * The host names the endpoint at Neon; pgbun is the endpoint, so it is not
 * looked at. Of the parameters only application_name is kept.
 */
static const char *
parse_connection_string(HttpSqlConn *h, const char *s, size_t len)
{
	const char *end = s + len;
	const char *auth;
	const char *auth_end;
	const char *at = NULL;
	const char *colon;
	const char *path;
	const char *q;

	if (len >= 13 && strncasecmp(s, "postgresql://", 13) == 0)
		auth = s + 13;
	else if (len >= 11 && strncasecmp(s, "postgres://", 11) == 0)
		auth = s + 11;
	else
		return "Neon-Connection-String is not a postgresql:// URL";
	auth_end = auth;
	while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
		auth_end++;
	for (const char *p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return "Neon-Connection-String has no user name";
	colon = memchr(auth, ':', at - auth);
	if (!url_decode(auth, (colon ? colon : at) - auth, false, h->user, sizeof(h->user)))
		return "bad or too long user name in Neon-Connection-String";
	if (colon && !url_decode(colon + 1, at - colon - 1, false, h->password, sizeof(h->password)))
		return "bad or too long password in Neon-Connection-String";
	if (h->user[0] == '\0')
		return "Neon-Connection-String has no user name";
	path = auth_end;
	q = path;
	while (q < end && *q != '?' && *q != '#')
		q++;
	if (path < q && *path == '/')
	{
		if (!url_decode(path + 1, q - path - 1, false, h->database, sizeof(h->database)))
			return "bad or too long database name in Neon-Connection-String";
	}
	if (h->database[0] == '\0')
		strlcpy(h->database, h->user, sizeof(h->database));
	if (q < end && *q == '?')
	{
		const char *p = q + 1;

		while (p < end && *p != '#')
		{
			const char *e = p;
			const char *eq;

			while (e < end && *e != '&' && *e != '#')
				e++;
			eq = memchr(p, '=', e - p);
			if (eq && eq - p == 16 && strncmp(p, "application_name", 16) == 0)
			{
				char		v[256];

				if (url_decode(eq + 1, e - eq - 1, true, v, sizeof(v)))
					strlcpy(h->appname, v, sizeof(h->appname));
			}
			p = (e < end && *e == '&') ? e + 1 : e;
		}
	}
	return NULL;
}

/* The batch's BEGIN from the Neon-Batch-* headers; NULL or why not. */
static const char *
batch_begin(HttpSqlConn *h, const HttpRequest *req)
{
	const HttpHeader *iso = http_find_header(req, "Neon-Batch-Isolation-Level");
	const HttpHeader *ro = http_find_header(req, "Neon-Batch-Read-Only");
	const HttpHeader *def = http_find_header(req, "Neon-Batch-Deferrable");

	strlcpy(h->begin_sql, "BEGIN", sizeof(h->begin_sql));
	if (iso)
	{
		if (header_is(iso, "Serializable"))
			strlcat(h->begin_sql, " ISOLATION LEVEL SERIALIZABLE", sizeof(h->begin_sql));
		else if (header_is(iso, "RepeatableRead"))
			strlcat(h->begin_sql, " ISOLATION LEVEL REPEATABLE READ", sizeof(h->begin_sql));
		else if (header_is(iso, "ReadCommitted"))
			strlcat(h->begin_sql, " ISOLATION LEVEL READ COMMITTED", sizeof(h->begin_sql));
		else if (header_is(iso, "ReadUncommitted"))
			strlcat(h->begin_sql, " ISOLATION LEVEL READ UNCOMMITTED", sizeof(h->begin_sql));
		else
			return "Neon-Batch-Isolation-Level must be Serializable, RepeatableRead, ReadCommitted or ReadUncommitted";
	}
	if (ro && header_is(ro, "true"))
		strlcat(h->begin_sql, " READ ONLY", sizeof(h->begin_sql));
	else if (ro && !header_is(ro, "false"))
		return "Neon-Batch-Read-Only must be true or false";
	if (def && header_is(def, "true"))
		strlcat(h->begin_sql, " DEFERRABLE", sizeof(h->begin_sql));
	else if (def && !header_is(def, "false"))
		return "Neon-Batch-Deferrable must be true or false";
	return NULL;
}

/* How a request is refused at its head. */
typedef struct Refusal
{
	int			status;
	const char *extra;			/* more header lines */
	const char *sqlstate;
	const char *why;
} Refusal;

static bool
refusal(Refusal *r, int status, const char *extra, const char *sqlstate, const char *why)
{
	r->status = status;
	r->extra = extra;
	r->sqlstate = sqlstate;
	r->why = why;
	return false;
}

/*
 * A whole request head: check it and set h up for the body (rest_len bytes
 * of it came with the head). false: refused, *r says how.
 */
static bool
take_head(SBuf *sb, HttpSqlConn *h, const HttpRequest *req, const char *rest, uint32 rest_len, Refusal *r)
{
	const HttpHeader *cs;
	const HttpHeader *cl;
	const HttpHeader *expect;
	uint64		clen = 0;
	const char *bad;

	if (!http_path_is(req, "/sql"))
		return refusal(r, 404, "", "08P01", "no HTTP endpoint at this path (POST /sql is the query endpoint)");
	if (!http_method_is(req, "POST"))
		return refusal(r, 405, "Allow: POST\r\n", "08P01", "the query endpoint takes POST");
	if (!sb->ssl && !peer_is_local(sb->fd))
		return refusal(r, 403, "", "28000", "the HTTP query endpoint requires TLS (https://) except from loopback");
	if (http_find_header(req, "Transfer-Encoding"))
		return refusal(r, 411, "", "08P01", "send the request body with Content-Length (no Transfer-Encoding)");
	cl = http_find_header(req, "Content-Length");
	if (!cl || cl->value_len == 0)
		return refusal(r, 411, "", "08P01", "the request needs a Content-Length");
	for (size_t i = 0; i < cl->value_len; i++)
	{
		if (cl->value[i] < '0' || cl->value[i] > '9')
			return refusal(r, 400, "", "08P01", "malformed Content-Length");
		if (clen <= (uint64) pgbun_cfg->http_sql_max_request_size)
			clen = clen * 10 + (cl->value[i] - '0');
	}
	if (clen > (uint64) pgbun_cfg->http_sql_max_request_size)
		return refusal(r, 413, "", "54000", "request body larger than pgbun.http_sql_max_request_size");
	if (http_find_header(req, "Authorization"))
		return refusal(r, 400, "", "28000", "JWT authentication (Authorization header) is not supported; put the password in the connection string");
	cs = http_find_header(req, "Neon-Connection-String");
	if (!cs || cs->value_len == 0)
		return refusal(r, 400, "", "08P01", "missing Neon-Connection-String header");
	bad = parse_connection_string(h, cs->value, cs->value_len);
	if (bad)
		return refusal(r, 400, "", "28000", bad);
	/* the Neon-Batch-* headers count only for a batch: checked once the body says it is one */
	h->batch_error = batch_begin(h, req);
	h->array_mode = header_is(http_find_header(req, "Neon-Array-Mode"), "true");
	h->body = malloc(clen + 1);
	if (!h->body)
		return refusal(r, 503, "", "53200", "out of memory");
	h->body_len = (uint32) clen;
	/* body bytes that came with the head (bytes after the body: ignored, we close) */
	h->body_have = Min(rest_len, (uint32) clen);
	memcpy(h->body, rest, h->body_have);
	h->phase = HS_BODY;

	expect = http_find_header(req, "Expect");
	if (header_is(expect, "100-continue") && h->body_have < h->body_len)
	{
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		(void) lower_write(sb, cont, sizeof(cont) - 1);	/* one try: tiny, on a fresh socket */
	}
	return true;
}

static HttpSqlConn *
new_conn(void (*kick) (void *owner), void *owner)
{
	HttpSqlConn *h = calloc(1, sizeof(HttpSqlConn));

	if (!h)
		return NULL;
	h->kick = kick;
	h->owner = owner;
	/* the queries, and what may still be unread when they are added */
	json_buf_init(&h->in, (size_t) pgbun_cfg->http_sql_max_request_size * 2 + 2 * 65536);
	json_buf_init(&h->queries, (size_t) pgbun_cfg->http_sql_max_request_size * 2 + 65536);
	json_buf_init(&h->out, (size_t) pgbun_cfg->http_sql_max_response_size);
	json_buf_init(&h->err, HS_ERROR_MAX);
	json_buf_init(&h->own_body, 4096);
	return h;
}

static void free_conn(HttpSqlConn *h);

int
http_sql_accept(SBuf *sb, void (*kick) (void *owner), void *owner, const char **why)
{
	HttpRequest req;
	const char *head = (const char *) sb->in + sb->parse_pos;
	uint32		avail = sbuf_unparsed(sb);
	int			len;
	HttpSqlConn *h;
	Refusal		r;

	len = http_parse_request(head, avail, &req);
	if (len == HTTP_NEED_MORE)
	{
		/* the head must fit in the input buffer, as the metrics port's does */
		if (sb->parse_pos + avail >= SBUF_SIZE)
			return refuse_head(sb, 431, "", "54000", "HTTP request head too large", why);
		/* a GET may be a WebSocket upgrade: websocket.c wants its whole head in sb */
		if (pgbun_cfg->websocket && strncmp(head, "GET", Min(avail, 3)) == 0)
			return 0;
		/* the rest of the head comes through the adapter, which can answer a timeout in HTTP */
		h = new_conn(kick, owner);
		if (!h || !(h->head = malloc(SBUF_SIZE)))
		{
			free(h);
			return refuse_head(sb, 503, "", "53200", "out of memory", why);
		}
		memcpy(h->head, head, avail);
		h->head_len = avail;
		h->phase = HS_HEAD;
	}
	else
	{
		if (len == HTTP_TOO_MANY)
			return refuse_head(sb, 431, "", "54000", "too many header fields in the HTTP request", why);
		if (len < 0)
			return refuse_head(sb, 400, "", "08P01", "malformed HTTP request", why);
		if (http_method_is(&req, "GET") && http_find_header(&req, "Upgrade") && pgbun_cfg->websocket)
			return HTTP_SQL_WEBSOCKET;
		h = new_conn(kick, owner);
		if (!h)
			return refuse_head(sb, 503, "", "53200", "out of memory", why);
		if (!take_head(sb, h, &req, head + len, avail - (uint32) len, &r))
		{
			free_conn(h);
			return refuse_head(sb, r.status, r.extra, r.sqlstate, r.why, why);
		}
	}
	sbuf_consume(sb, avail);
	sb->hsql = h;
	sb->drained = false;		/* the body may be complete already: no event will come */
	return 1;
}

/* ---- building the protocol stream ---- */

static size_t
msg_begin(JsonBuf *b, char type)
{
	size_t		at = b->len;

	json_put_char(b, type);
	json_put_raw(b, "\0\0\0\0", 4);
	return at;
}

static void
msg_end(JsonBuf *b, size_t at)
{
	uint32		l;

	if (b->overflow)
		return;
	l = (uint32) (b->len - at - 1);
	b->data[at + 1] = (char) (l >> 24);
	b->data[at + 2] = (char) (l >> 16);
	b->data[at + 3] = (char) (l >> 8);
	b->data[at + 4] = (char) l;
}

static void
put_i16(JsonBuf *b, int v)
{
	char		x[2] = {(char) (v >> 8), (char) v};

	json_put_raw(b, x, 2);
}

static void
put_i32(JsonBuf *b, int32 v)
{
	char		x[4] = {(char) (v >> 24), (char) (v >> 16), (char) (v >> 8), (char) v};

	json_put_raw(b, x, 4);
}

static void
put_str(JsonBuf *b, const char *s)
{
	json_put_raw(b, s, strlen(s) + 1);
}

static void
put_simple_query(JsonBuf *b, const char *sql)
{
	size_t		at = msg_begin(b, 'Q');

	put_str(b, sql);
	msg_end(b, at);
}

/* Parse/Bind/Execute of an internal statement (BEGIN). */
static void
put_internal(JsonBuf *b, const char *sql)
{
	size_t		at;

	at = msg_begin(b, 'P');
	put_str(b, "");
	put_str(b, sql);
	put_i16(b, 0);
	msg_end(b, at);
	at = msg_begin(b, 'B');
	put_str(b, "");
	put_str(b, "");
	put_i16(b, 0);
	put_i16(b, 0);
	put_i16(b, 0);
	msg_end(b, at);
	at = msg_begin(b, 'E');
	put_str(b, "");
	put_i32(b, 0);
	msg_end(b, at);
}

/*
 * Parse/Bind/Describe/Execute of one {query, params} object; NULL or why
 * not. Parameters go as text: strings as they are, numbers and booleans
 * as their JSON spelling, null as NULL (neon() has made every value a
 * string or null already, as node-postgres does).
 */
static const char *
put_query(HttpSqlConn *h, const char *in, const JsonNode *nodes, int obj, char *scratch)
{
	JsonBuf    *b = &h->queries;
	int			qi = json_object_get(in, nodes, obj, "query");
	int			pi = json_object_get(in, nodes, obj, "params");
	size_t		at;
	size_t		l;

	if (qi < 0 || nodes[qi].type != JSON_STRING)
		return "each query needs a \"query\" string";
	if (pi >= 0 && nodes[pi].type != JSON_ARRAY && nodes[pi].type != JSON_NULL)
		return "\"params\" must be an array";
	if (pi >= 0 && nodes[pi].type == JSON_ARRAY && nodes[pi].count > HS_MAX_PARAMS)
		return "more than 65535 parameters in one query";
	if (!json_string_decode(in, &nodes[qi], scratch, nodes[qi].len + 1, &l))
		return "bad string in \"query\" (an invalid escape, a lone surrogate or \\u0000)";
	at = msg_begin(b, 'P');
	put_str(b, "");
	json_put_raw(b, scratch, l + 1);
	put_i16(b, 0);				/* parameter types: the server infers them */
	msg_end(b, at);

	at = msg_begin(b, 'B');
	put_str(b, "");
	put_str(b, "");
	put_i16(b, 0);				/* every parameter in text */
	if (pi >= 0 && nodes[pi].type == JSON_ARRAY)
	{
		uint32		e = (uint32) pi + 1;

		put_i16(b, (int) nodes[pi].count);
		for (uint32 k = 0; k < nodes[pi].count; k++)
		{
			const JsonNode *v = &nodes[e];

			switch (v->type)
			{
				case JSON_NULL:
					put_i32(b, -1);
					break;
				case JSON_STRING:
					if (!json_string_decode(in, v, scratch, v->len + 1, &l))
						return "bad string in \"params\" (an invalid escape, a lone surrogate or \\u0000)";
					put_i32(b, (int32) l);
					json_put_raw(b, scratch, l);
					break;
				case JSON_NUMBER:
				case JSON_TRUE:
				case JSON_FALSE:
					put_i32(b, (int32) v->len);
					json_put_raw(b, in + v->start, v->len);
					break;
				default:
					return "query parameters must be strings, numbers, booleans or null";
			}
			e = v->next;
		}
	}
	else
		put_i16(b, 0);
	put_i16(b, 0);				/* every result column in text */
	msg_end(b, at);

	at = msg_begin(b, 'D');
	json_put_char(b, 'P');
	put_str(b, "");
	msg_end(b, at);
	at = msg_begin(b, 'E');
	put_str(b, "");
	put_i32(b, 0);
	msg_end(b, at);
	return NULL;
}

/* The StartupMessage (untyped). */
static void
put_startup(HttpSqlConn *h)
{
	JsonBuf    *b = &h->in;
	size_t		at = b->len;
	uint32		l;

	put_i32(b, 0);
	put_i32(b, 196608);
	put_str(b, "user");
	put_str(b, h->user);
	put_str(b, "database");
	put_str(b, h->database);
	put_str(b, "client_encoding");
	put_str(b, "UTF8");
	if (h->appname[0])
	{
		put_str(b, "application_name");
		put_str(b, h->appname);
	}
	json_put_char(b, '\0');
	if (b->overflow)
		return;
	l = (uint32) (b->len - at);
	b->data[at] = (char) (l >> 24);
	b->data[at + 1] = (char) (l >> 16);
	b->data[at + 2] = (char) (l >> 8);
	b->data[at + 3] = (char) l;
}

/* Refuse the request from the adapter: the error answer goes out, reads fail. */
static ssize_t
fail_request_with(SBuf *sb, int status, const char *extra, const char *sqlstate, const char *msg)
{
	HttpSqlConn *h = sb->hsql;

	respond_error(h, status, extra, sqlstate, msg);
	h->phase = HS_FAILED;
	h->error = "HTTP request refused";
	(void) flush_response(sb);
	errno = EPROTO;
	return -1;
}

static ssize_t
fail_request(SBuf *sb, int status, const char *sqlstate, const char *msg)
{
	return fail_request_with(sb, status, "", sqlstate, msg);
}

/* The whole body is in: parse it and make the protocol stream. */
static ssize_t
take_body(SBuf *sb)
{
	HttpSqlConn *h = sb->hsql;
	uint32		max_nodes = Min(h->body_len + 1, 200000);
	JsonNode   *nodes = malloc(sizeof(JsonNode) * max_nodes);
	char	   *scratch = malloc(h->body_len + 1);
	size_t		err_off = 0;
	int			n;
	int			top;
	const char *bad = NULL;
	char		msg[160];

	if (!nodes || !scratch)
	{
		free(nodes);
		free(scratch);
		return fail_request(sb, 503, "53200", "out of memory");
	}
	n = json_parse(h->body, h->body_len, nodes, max_nodes, &err_off);
	if (n < 0)
	{
		free(nodes);
		free(scratch);
		snprintf(msg, sizeof(msg), "%s in the request body at byte %zu",
				 n == JSON_ERR_DEPTH ? "JSON nested too deep" :
				 n == JSON_ERR_NODES ? "too many JSON values" : "invalid JSON", err_off);
		return fail_request(sb, 400, "08P01", msg);
	}
	top = 0;
	if (nodes[0].type != JSON_OBJECT)
		bad = "the request body must be a JSON object";
	else
	{
		int			qs = json_object_get(h->body, nodes, 0, "queries");

		if (qs >= 0)
		{
			uint32		e = (uint32) qs + 1;

			h->batch = true;
			if (nodes[qs].type != JSON_ARRAY)
				bad = "\"queries\" must be an array";
			else if (nodes[qs].count > HTTP_SQL_MAX_QUERIES)
				bad = "more queries in one batch than pgbun allows (1000)";
			else if (h->batch_error)
				bad = h->batch_error;
			else
			{
				put_internal(&h->queries, h->begin_sql);
				h->n_queries = (int) nodes[qs].count;
				for (uint32 k = 0; k < nodes[qs].count && !bad; k++)
				{
					if (nodes[e].type != JSON_OBJECT)
						bad = "each element of \"queries\" must be an object";
					else
						bad = put_query(h, h->body, nodes, (int) e, scratch);
					e = nodes[e].next;
				}
			}
		}
		else
		{
			h->n_queries = 1;
			bad = put_query(h, h->body, nodes, top, scratch);
		}
	}
	free(nodes);
	free(scratch);
	if (bad)
		return fail_request(sb, 400, "08P01", bad);
	{
		size_t		at = msg_begin(&h->queries, 'S');

		msg_end(&h->queries, at);
	}
	if (h->queries.overflow)
		return fail_request(sb, 413, "54000", "request too large");
	free(h->body);
	h->body = NULL;
	put_startup(h);
	if (h->in.overflow)
		return fail_request(sb, 503, "53200", "out of memory");
	h->phase = HS_LOGIN;
	return 0;
}

/* Everything in in was read: empty it (and wipe the password if it was there). */
static void
in_consumed(HttpSqlConn *h)
{
	if (h->in_secret && h->in.data)
		explicit_bzero(h->in.data, h->in.len);
	h->in_secret = false;
	h->in_pos = 0;
	json_buf_reset(&h->in);
}

/* Append bytes for pgbun to read, and make sure it does. */
static void
give(HttpSqlConn *h, const char *p, size_t n)
{
	if (h->in_pos == h->in.len)
		in_consumed(h);
	json_put_raw(&h->in, p, n);
	if (h->kick)
		h->kick(h->owner);
}

ssize_t
http_sql_read(SBuf *sb, void *buf, size_t len)
{
	HttpSqlConn *h = sb->hsql;

	while (h->phase == HS_HEAD)
	{
		HttpRequest req;
		int			hl = HTTP_NEED_MORE;
		Refusal		r;
		ssize_t		n;

		/* parse only once a blank line came: a head sent a byte at a time is scanned once */
		if (http_head_may_be_complete(&h->head_scan, h->head, h->head_len))
			hl = http_parse_request(h->head, h->head_len, &req);
		if (hl == HTTP_NEED_MORE)
		{
			if (h->head_len >= SBUF_SIZE)
				return fail_request(sb, 431, "54000", "HTTP request head too large");
			n = lower_read(sb, h->head + h->head_len, SBUF_SIZE - h->head_len);
			if (n == 0)
				return 0;		/* gone before the head was in */
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;		/* EAGAIN: wait for the rest */
			h->head_len += (uint32) n;
			continue;
		}
		if (hl == HTTP_TOO_MANY)
			return fail_request(sb, 431, "54000", "too many header fields in the HTTP request");
		if (hl < 0)
			return fail_request(sb, 400, "08P01", "malformed HTTP request");
		if (!take_head(sb, h, &req, h->head + hl, h->head_len - (uint32) hl, &r))
			return fail_request_with(sb, r.status, r.extra, r.sqlstate, r.why);
		free(h->head);
		h->head = NULL;
	}
	if (h->phase == HS_BODY)
	{
		while (h->body_have < h->body_len)
		{
			ssize_t		n = lower_read(sb, h->body + h->body_have, h->body_len - h->body_have);

			if (n == 0)
				return 0;		/* gone before the body was in */
			if (n < 0)
			{
				if (errno == EINTR)
					continue;
				return -1;		/* EAGAIN: wait for the rest */
			}
			h->body_have += (uint32) n;
		}
		if (take_body(sb) < 0)
			return -1;
	}
	if (h->phase == HS_FAILED)
	{
		errno = EPROTO;
		return -1;
	}
	if (h->phase == HS_DONE)
	{
		static const char term[5] = {'X', 0, 0, 0, 4};

		if (h->terminate_given || len < sizeof(term))
			return 0;
		h->terminate_given = true;
		memcpy(buf, term, sizeof(term));
		return sizeof(term);
	}
	if (h->in_pos < h->in.len)
	{
		size_t		n = Min(len, h->in.len - h->in_pos);

		memcpy(buf, h->in.data + h->in_pos, n);
		h->in_pos += n;
		if (h->in_pos == h->in.len)
			in_consumed(h);
		return (ssize_t) n;
	}
	errno = EAGAIN;				/* the next input comes with pgbun's next answer */
	return -1;
}

/* ---- pgbun's answers ---- */

static uint32
get_u32(const uint8 *p)
{
	return (uint32) p[0] << 24 | (uint32) p[1] << 16 | (uint32) p[2] << 8 | p[3];
}

static uint16
get_u16(const uint8 *p)
{
	return (uint16) (p[0] << 8 | p[1]);
}

/* An ErrorResponse as the driver's error object; only the first one counts. */
static void
take_error(HttpSqlConn *h, const uint8 *b, uint32 len)
{
	static const struct
	{
		char		code;
		const char *name;
	}			names[] = {
		{'M', "message"}, {'C', "code"}, {'D', "detail"}, {'H', "hint"},
		{'P', "position"}, {'p', "internalPosition"}, {'q', "internalQuery"},
		{'W', "where"}, {'s', "schema"}, {'t', "table"}, {'c', "column"},
		{'d', "dataType"}, {'n', "constraint"}, {'F', "file"}, {'L', "line"},
		{'R', "routine"},
	};
	uint32		i = 0;
	bool		first = true;
	const char *severity = NULL;
	size_t		severity_len = 0;

	if (h->have_error)
		return;
	h->have_error = true;
	json_buf_reset(&h->err);
	json_put_char(&h->err, '{');
	while (i < len && b[i] != 0)
	{
		char		code = (char) b[i++];
		const uint8 *v = b + i;
		const uint8 *z = memchr(v, 0, len - i);
		size_t		vl;

		if (!z)
			break;
		vl = z - v;
		i += (uint32) vl + 1;
		if (code == 'V' || (code == 'S' && !severity))
		{
			severity = (const char *) v;
			severity_len = vl;
			continue;
		}
		for (int k = 0; k < (int) lengthof(names); k++)
			if (names[k].code == code)
			{
				if (!first)
					json_put_char(&h->err, ',');
				first = false;
				json_put_char(&h->err, '"');
				json_put_cstr(&h->err, names[k].name);
				json_put_cstr(&h->err, "\":");
				json_put_string(&h->err, (const char *) v, vl);
				break;
			}
	}
	if (severity)
	{
		if (!first)
			json_put_char(&h->err, ',');
		json_put_cstr(&h->err, "\"severity\":");
		json_put_string(&h->err, severity, severity_len);
	}
	json_put_char(&h->err, '}');
}

/* Is Execute number exec_idx one of the user's queries (not BEGIN)? */
static bool
exec_is_user(HttpSqlConn *h)
{
	int			q = h->exec_idx - (h->batch ? 1 : 0);

	return h->phase == HS_QUERIES && q >= 0 && q < h->n_queries;
}

static void
free_field_names(HttpSqlConn *h)
{
	if (h->field_names)
	{
		for (int i = 0; i < h->n_fields; i++)
			free(h->field_names[i]);
		free(h->field_names);
	}
	h->field_names = NULL;
	h->n_fields = 0;
}

/* RowDescription (or NoData: n == 0): open the result object. */
static void
open_result(HttpSqlConn *h, const uint8 *b, uint32 len, bool nodata)
{
	JsonBuf    *o = &h->out;
	uint32		i = 2;
	int			nf = nodata || len < 2 ? 0 : get_u16(b);

	if (h->result_open)
	{
		/* a second description before CommandComplete: never from PostgreSQL */
		h->bad_answer = true;
		return;
	}
	free_field_names(h);
	if (h->batch && h->n_results == 0)
		json_put_cstr(o, "{\"results\":[");
	if (h->batch && h->n_results > 0)
		json_put_char(o, ',');
	json_put_cstr(o, "{\"fields\":[");
	if (nf > HS_MAX_FIELDS)
		nf = 0;
	if (!h->array_mode && nf > 0)
		h->field_names = calloc(nf, sizeof(char *));
	h->n_fields = h->field_names ? nf : 0;
	for (int f = 0; f < nf; f++)
	{
		const uint8 *name = b + i;
		const uint8 *z = i < len ? memchr(name, 0, len - i) : NULL;
		size_t		nl;

		if (!z || (uint32) (z - b) + 19 > len)
		{
			h->bad_answer = true;
			break;
		}
		nl = z - name;
		i += (uint32) nl + 1;
		if (f > 0)
			json_put_char(o, ',');
		json_put_cstr(o, "{\"name\":");
		json_put_string(o, (const char *) name, nl);
		json_put_cstr(o, ",\"tableID\":");
		json_put_int(o, (long long) get_u32(b + i));
		json_put_cstr(o, ",\"columnID\":");
		json_put_int(o, (long long) (int16) get_u16(b + i + 4));
		json_put_cstr(o, ",\"dataTypeID\":");
		json_put_int(o, (long long) get_u32(b + i + 6));
		json_put_cstr(o, ",\"dataTypeSize\":");
		json_put_int(o, (long long) (int16) get_u16(b + i + 10));
		json_put_cstr(o, ",\"dataTypeModifier\":");
		json_put_int(o, (long long) (int32) get_u32(b + i + 12));
		json_put_cstr(o, get_u16(b + i + 16) ? ",\"format\":\"binary\"}" : ",\"format\":\"text\"}");
		i += 18;
		if (h->field_names)
		{
			JsonBuf		nb;

			/* the name as a JSON key, escaped once */
			json_buf_init(&nb, 4096);
			json_put_string(&nb, (const char *) name, nl);
			json_put_char(&nb, '\0');
			h->field_names[f] = nb.overflow ? NULL : nb.data;
			if (nb.overflow)
				json_buf_free(&nb);
		}
	}
	json_put_cstr(o, "],\"rowAsArray\":");
	json_put_cstr(o, h->array_mode ? "true" : "false");
	json_put_cstr(o, ",\"rows\":[");
	h->result_open = true;
	h->n_rows = 0;
}

static void
add_row(HttpSqlConn *h, const uint8 *b, uint32 len)
{
	JsonBuf    *o = &h->out;
	int			nc = len >= 2 ? get_u16(b) : 0;
	uint32		i = 2;

	if (o->overflow)
		return;					/* the answer is refused anyway */
	/* the server's rows are well formed; anything else must not break the JSON */
	for (int c = 0; c < nc; c++)
	{
		int32		vl;

		if (i + 4 > len)
		{
			i = len + 1;
			break;
		}
		vl = (int32) get_u32(b + i);
		i += 4;
		if (vl > 0 && (uint32) vl > len - i)
		{
			i = len + 1;
			break;
		}
		if (vl > 0)
			i += (uint32) vl;
	}
	if (len < 2 || i != len)
	{
		h->bad_answer = true;
		return;
	}
	i = 2;
	if (h->n_rows++ > 0)
		json_put_char(o, ',');
	json_put_char(o, h->array_mode ? '[' : '{');
	for (int c = 0; c < nc; c++)
	{
		int32		vl = (int32) get_u32(b + i);

		i += 4;
		if (c > 0)
			json_put_char(o, ',');
		if (!h->array_mode)
		{
			json_put_cstr(o, (c < h->n_fields && h->field_names[c]) ? h->field_names[c] : "\"?\"");
			json_put_char(o, ':');
		}
		if (vl < 0)
			json_put_cstr(o, "null");
		else
		{
			json_put_string(o, (const char *) b + i, (size_t) vl);
			i += (uint32) vl;
		}
	}
	json_put_char(o, h->array_mode ? ']' : '}');
}

/* CommandComplete (or EmptyQueryResponse: tag NULL): close the result object. */
static void
close_result(HttpSqlConn *h, const char *tag)
{
	JsonBuf    *o = &h->out;
	const char *sp;
	const char *last;
	size_t		cmd_len;
	bool		num = false;

	if (!h->result_open)
		open_result(h, NULL, 0, true);
	tag = tag ? tag : "";
	sp = strchr(tag, ' ');
	cmd_len = sp ? (size_t) (sp - tag) : strlen(tag);
	last = strrchr(tag, ' ');
	if (last && last[1])
	{
		num = true;
		for (const char *p = last + 1; *p; p++)
			if (*p < '0' || *p > '9')
				num = false;
	}
	json_put_cstr(o, "],\"command\":");
	json_put_string(o, tag, cmd_len);
	json_put_cstr(o, ",\"rowCount\":");
	if (num)
		json_put_cstr(o, last + 1);
	else
		json_put_cstr(o, "null");
	json_put_char(o, '}');
	h->result_open = false;
	h->n_results++;
	free_field_names(h);
}

/* The last ReadyForQuery: the answer is complete. */
static void
finish(HttpSqlConn *h)
{
	if (h->result_open)
		h->bad_answer = true;	/* rows, but no CommandComplete */
	if (h->have_error)
		respond(h, 400, &h->err);
	else if (h->bad_answer || (!h->out.overflow && h->n_results != h->n_queries))
		respond_error(h, 502, "", "08P01", "malformed answer from the server");
	else if (h->out.overflow)
	{
		char		m[160];

		snprintf(m, sizeof(m), "the answer is larger than pgbun.http_sql_max_response_size (%d bytes)%s",
				 pgbun_cfg->http_sql_max_response_size, h->batch ? "; the transaction was rolled back" : "");
		respond_error(h, 400, "", "54000", m);
	}
	else
	{
		if (h->batch && h->n_results == 0)
			json_put_cstr(&h->out, "{\"results\":[");
		if (h->batch)
			json_put_cstr(&h->out, "]}");
		respond(h, 200, &h->out);
	}
}

/* One complete message from pgbun (the body of len bytes at b). */
static void
take_message(HttpSqlConn *h, char type, const uint8 *b, uint32 len)
{
	switch (type)
	{
		case 'R':
			if (len >= 4 && get_u32(b) == 3 && h->phase == HS_LOGIN)
			{
				/* AuthenticationCleartextPassword: the connection string's password */
				char		m[HS_PASSWORD_MAX + 8];
				uint32		pl = (uint32) strlen(h->password) + 1;
				uint32		l = pl + 4;

				m[0] = 'p';
				m[1] = (char) (l >> 24);
				m[2] = (char) (l >> 16);
				m[3] = (char) (l >> 8);
				m[4] = (char) l;
				memcpy(m + 5, h->password, pl);
				give(h, m, pl + 5);
				h->in_secret = true;
				explicit_bzero(m, sizeof(m));
				explicit_bzero(h->password, sizeof(h->password));
			}
			else if (len >= 4 && get_u32(b) != 0)
			{
				/* another method (client_login.c asks for the password in the clear) */
				static const char term[5] = {'X', 0, 0, 0, 4};

				if (!h->have_error)
					respond_error(h, 502, "", "08P01", "unexpected authentication request");
				give(h, term, sizeof(term));
			}
			break;
		case 'E':
			take_error(h, b, len);
			if (h->phase == HS_HEAD || h->phase == HS_BODY)
				respond(h, 408, &h->err);	/* pgbun gave up waiting for the request */
			else if (h->phase == HS_LOGIN)
				respond(h, 400, &h->err);	/* the login failed; pgbun closes now */
			break;
		case 'T':
			if (exec_is_user(h))
				open_result(h, b, len, false);
			break;
		case 'n':
			if (exec_is_user(h))
				open_result(h, b, len, true);
			break;
		case 'D':
			if (exec_is_user(h) && h->result_open)
				add_row(h, b, len);
			break;
		case 'C':
		case 'I':
			if (h->phase != HS_QUERIES)
				break;
			if (exec_is_user(h))
			{
				char		tag[64];
				uint32		tl = Min(len, sizeof(tag) - 1);

				memcpy(tag, b, tl);
				tag[tl] = '\0';
				close_result(h, type == 'C' ? tag : NULL);
			}
			h->exec_idx++;
			break;
		case 'G':
			{
				/*
				 * COPY FROM STDIN: there is no data to send. The Sync sent
				 * with the query was ignored during the copy: another one.
				 */
				static const char fmsg[] = "pgbun: COPY FROM STDIN is not supported over HTTP";
				char		m[5 + sizeof(fmsg) + 5];
				uint32		l = 4 + sizeof(fmsg);

				m[0] = 'f';
				m[1] = 0;
				m[2] = 0;
				m[3] = (char) (l >> 8);
				m[4] = (char) l;
				memcpy(m + 5, fmsg, sizeof(fmsg));
				memcpy(m + 5 + sizeof(fmsg), "S\0\0\0\4", 5);
				give(h, m, sizeof(m));
				break;
			}
		case 'Z':
			{
				char		st = len >= 1 ? (char) b[0] : 'I';

				if (h->phase == HS_LOGIN)
				{
					/* logged in: the queries go */
					h->phase = HS_QUERIES;
					give(h, h->queries.data, h->queries.len);
					json_buf_free(&h->queries);
				}
				else if (h->phase == HS_QUERIES && st != 'I')
				{
					/* a batch inside its BEGIN, or a query that left a transaction open */
					bool		commit = h->batch && st == 'T' && !h->have_error && !h->out.overflow;
					JsonBuf		q;

					json_buf_init(&q, 64);
					put_simple_query(&q, commit ? "COMMIT" : "ROLLBACK");
					h->phase = commit ? HS_COMMIT : HS_ROLLBACK;
					if (!q.overflow)
						give(h, q.data, q.len);
					json_buf_free(&q);
				}
				else if (h->phase == HS_QUERIES || h->phase == HS_COMMIT || h->phase == HS_ROLLBACK)
					finish(h);
				break;
			}
		default:
			/* ParameterStatus, BackendKeyData, notices, notifications, Parse/BindComplete, COPY OUT data */
			break;
	}
}

/*
 * Feed pgbun's bytes through the message parser; stops right after a
 * message that made the response (the rest is for the repeat). Returns the
 * bytes taken.
 */
static size_t
feed(HttpSqlConn *h, const uint8 *p, size_t len)
{
	size_t		i = 0;

	while (i < len && h->phase != HS_RESPOND && h->phase != HS_DONE && h->phase != HS_FAILED)
	{
		if (h->hdr_have < 5)
		{
			h->hdr[h->hdr_have++] = p[i++];
			if (h->hdr_have < 5)
				continue;
			h->msg_len = get_u32(h->hdr + 1);
			h->msg_len = h->msg_len >= 4 ? h->msg_len - 4 : 0;
			h->msg_have = 0;
			/* a message the answer could not hold anyway is skipped, not stored */
			h->msg_drop = h->msg_len > (uint32) pgbun_cfg->http_sql_max_response_size + 1024;
			if (!h->msg_drop && h->msg_len > h->msg_cap)
			{
				uint8	   *m = realloc(h->msg, h->msg_len);

				if (!m)
					h->msg_drop = true;
				else
				{
					h->msg = m;
					h->msg_cap = h->msg_len;
				}
			}
			if (h->msg_drop && exec_is_user(h) && h->hdr[0] == 'D')
				h->out.overflow = true;
		}
		{
			size_t		n = Min(len - i, (size_t) (h->msg_len - h->msg_have));

			if (!h->msg_drop && n > 0)
				memcpy(h->msg + h->msg_have, p + i, n);
			h->msg_have += (uint32) n;
			i += n;
		}
		if (h->msg_have == h->msg_len)
		{
			h->hdr_have = 0;
			if (!h->msg_drop)
				take_message(h, (char) h->hdr[0], h->msg ? h->msg : (const uint8 *) "", h->msg_len);
			else if (h->hdr[0] == 'Z')
				take_message(h, 'Z', (const uint8 *) "I", 1);
		}
	}
	if (h->phase == HS_DONE || h->phase == HS_FAILED)
		return len;				/* after the answer: nothing more to say */
	return i;
}

ssize_t
http_sql_write(SBuf *sb, const void *buf, size_t len)
{
	HttpSqlConn *h = sb->hsql;
	size_t		taken;
	int			r;

	if (h->owed == 0)
		taken = feed(h, buf, len);
	else
		taken = h->owed;		/* the repeat of the write that completed the answer */
	if (h->phase == HS_RESPOND)
	{
		r = flush_response(sb);
		if (r == 0)
		{
			h->owed = taken;
			errno = EAGAIN;
			return -1;
		}
		h->owed = 0;
		if (r < 0)
		{
			h->phase = HS_FAILED;
			errno = EPIPE;
			return -1;
		}
		/* out: pgbun reads a Terminate next */
		h->phase = HS_DONE;
		if (h->kick)
			h->kick(h->owner);
	}
	return (ssize_t) taken;
}

void
http_sql_close(SBuf *sb)
{
	HttpSqlConn *h = sb->hsql;

	if (!h)
		return;
	if (sb->fd >= 0 && !(sb->ssl && sb->tls_state != SBUF_TLS_READY))
	{
		/* an answer owed: the error pgbun saw, or a generic one; one non-blocking try */
		if (h->phase != HS_RESPOND && h->phase != HS_DONE && h->phase != HS_FAILED)
		{
			if (h->have_error)
				respond(h, 400, &h->err);
			else
				respond_error(h, 502, "", "08006", "the connection ended before the answer was complete");
		}
		if (h->phase == HS_RESPOND || h->phase == HS_FAILED)
			(void) flush_response(sb);
	}
	free_conn(h);
	sb->hsql = NULL;
}

static void
free_conn(HttpSqlConn *h)
{
	explicit_bzero(h->password, sizeof(h->password));
	if (h->in_secret && h->in.data)
		explicit_bzero(h->in.data, h->in.len);
	free_field_names(h);
	free(h->head);
	free(h->body);
	free(h->msg);
	json_buf_free(&h->in);
	json_buf_free(&h->queries);
	json_buf_free(&h->out);
	json_buf_free(&h->err);
	json_buf_free(&h->own_body);
	free(h);
}

const char *
http_sql_error(const SBuf *sb)
{
	return sb->hsql ? sb->hsql->error : NULL;
}

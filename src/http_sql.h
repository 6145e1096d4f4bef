/*
 * http_sql.h - Neon's HTTP query API ("POST /sql", what neon() from
 * @neondatabase/serverless and drizzle's neon-http send) on pgbun's own
 * port, for serverless and edge runtimes.
 *
 * An adapter under sbuf.c, the way WebSocket framing sits there: a client
 * whose first bytes are an HTTP request (plain from loopback, else inside
 * TLS) gets an HttpSqlConn. Reads of its SBuf then yield a PostgreSQL
 * protocol stream made from the request: a StartupMessage with the
 * Neon-Connection-String's user and database, the password when pgbun
 * asks for it, and once logged in Parse/Bind/Describe/Execute per query
 * (parameters as text), BEGIN .. COMMIT around a batch, Sync; writes to it
 * are pgbun's answers (authentication, RowDescription, DataRow,
 * CommandComplete, ErrorResponse, ReadyForQuery), turned into the JSON
 * answer the driver parses and sent as one HTTP response. Login, hba,
 * pooling and forwarding above see an ordinary client.
 *
 * One request per connection: the answer says "Connection: close".
 *
 * Bounds: the request head must fit in sbuf's 16 kB buffer; the body is at
 * most pgbun.http_sql_max_request_size; JSON nesting at most
 * JSON_MAX_DEPTH, a batch at most HTTP_SQL_MAX_QUERIES queries, a query at
 * most 65535 parameters; the answer (JSON) at most
 * pgbun.http_sql_max_response_size, built in memory (a larger one is
 * refused with 54000, its rows dropped as they come).
 */
#ifndef PGBUN_HTTP_SQL_H
#define PGBUN_HTTP_SQL_H

#include "postgres.h"

#include <sys/types.h>

#include "sbuf.h"
#include "settings.h"

extern bool pgbun_http_sql;
extern int	pgbun_http_sql_max_request_size;
extern int	pgbun_http_sql_max_response_size;

#define HTTP_SQL_MAX_QUERIES	1000

/* http_sql_accept: the request is a WebSocket upgrade for websocket.c. */
#define HTTP_SQL_WEBSOCKET		2

extern void http_sql_define_gucs(void);

/*
 * The start of a connection (n >= 1 bytes) may be an HTTP request for the
 * query endpoint: an upper-case letter starts every method, and as a
 * startup packet's length it would announce more than a gigabyte.
 */
static inline bool
http_sql_wanted(const uint8 *p, uint32 n)
{
	return pgbun_cfg->http_sql && n > 0 && p[0] >= 'A' && p[0] <= 'Z';
}

/*
 * The request head at sb's unparsed input. 1: accepted, reads of sb give
 * the protocol stream from now on (kick(owner) is called whenever the
 * adapter has new input for pgbun that no socket event will announce);
 * 0: the head is not complete yet, read more; HTTP_SQL_WEBSOCKET: a
 * WebSocket upgrade (pgbun.websocket is on), not for this module; -1:
 * refused, an HTTP error answer is queued in sb's out buffer (flush it,
 * then close) and *why says why.
 */
extern int	http_sql_accept(SBuf *sb, void (*kick) (void *owner), void *owner, const char **why);

/* read()/send() look-alikes for sbuf.c (errno EAGAIN when the socket must wait). */
extern ssize_t http_sql_read(SBuf *sb, void *buf, size_t len);
extern ssize_t http_sql_write(SBuf *sb, const void *buf, size_t len);
/* Answer what is still unanswered (one non-blocking try) and free the adapter. */
extern void http_sql_close(SBuf *sb);
/* Why the connection's last read failed, or NULL. */
extern const char *http_sql_error(const SBuf *sb);

#endif							/* PGBUN_HTTP_SQL_H */

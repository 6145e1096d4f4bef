/*
 * http.h - a small incremental HTTP/1.x request parser (picohttpparser style)
 * for the metrics port.
 *
 * Pure C, no postgres.h: unit-tested and fuzzable on its own. It parses from
 * the bytes at hand, stores nothing but pointers into the caller's buffer and
 * allocates nothing: http_parse_request() says "need more", "bad", or how
 * long the request head is. Every bound is the caller's buffer plus
 * HTTP_MAX_HEADERS; a head that does not fit is the caller's 431.
 */
#ifndef PGBUN_HTTP_H
#define PGBUN_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEADERS	32

#define HTTP_NEED_MORE		(-2)	/* incomplete: read more (if the buffer has room) */
#define HTTP_BAD			(-1)	/* not a request we accept: 400 */
#define HTTP_TOO_MANY		(-3)	/* more than HTTP_MAX_HEADERS header fields: 431 */

typedef struct HttpHeader
{
	const char *name;
	size_t		name_len;
	const char *value;			/* leading and trailing blanks stripped */
	size_t		value_len;
} HttpHeader;

typedef struct HttpRequest
{
	const char *method;
	size_t		method_len;
	const char *target;			/* request target as sent: "/metrics?x=1" */
	size_t		target_len;
	size_t		path_len;		/* of target, up to '?' or '#' */
	int			minor_version;	/* HTTP/1.<minor> */
	int			n_headers;
	HttpHeader	headers[HTTP_MAX_HEADERS];
} HttpRequest;

/*
 * Parse the request head in buf[0..len): returns its length in bytes (up to
 * and including the blank line) and fills *req, or one of the negative codes.
 * Lines may end in CRLF or LF; header continuation lines are refused.
 */
extern int	http_parse_request(const char *buf, size_t len, HttpRequest *req);

/*
 * Looking for the end of a head as bytes arrive, each byte looked at once:
 * zero it for a new request, then call http_head_may_be_complete() with the
 * whole buffer after every read. It says true once a blank line has come
 * after something other than empty lines (the parser skips those), which is
 * when http_parse_request() may have a whole head to find; before that,
 * parsing again would only re-scan the same bytes.
 */
typedef struct HttpHeadScan
{
	size_t		scanned;		/* bytes of the buffer looked at */
	int			seen_text;		/* a byte other than CR or LF came */
} HttpHeadScan;

extern int	http_head_may_be_complete(HttpHeadScan *scan, const char *buf, size_t len);

/* The value of the first header named name (case-insensitive), or NULL. */
extern const HttpHeader *http_find_header(const HttpRequest *req, const char *name);

/* Does the request's method / path equal the C string? */
extern int	http_method_is(const HttpRequest *req, const char *method);
extern int	http_path_is(const HttpRequest *req, const char *path);

#endif							/* PGBUN_HTTP_H */

/*
 * http.c - the HTTP/1.x request-head parser (http.h).
 *
 * Stateless: each call parses from the start of the buffer, which is small
 * and bounded by the caller, so a request arriving a byte at a time costs at
 * most a few kilobytes of re-scanning per read and no state can go stale.
 */
#include <string.h>
#include <strings.h>

#include "http.h"

/* RFC 9110 tchar: what a method or a header name is made of. */
static int
is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Visible characters of a request target (no spaces, no controls). */
static int
is_target_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f;
}

/* Field value characters: visible, blanks, and obs-text (bytes >= 0x80). */
static int
is_value_char(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/*
 * At p, expect the end of a line: CRLF or LF. Returns the position after it,
 * NULL for anything else; *more is set when the buffer ends first.
 */
static const char *
eat_eol(const char *p, const char *end, int *more)
{
	if (p >= end)
	{
		*more = 1;
		return NULL;
	}
	if (*p == '\n')
		return p + 1;
	if (*p == '\r')
	{
		if (p + 1 >= end)
		{
			*more = 1;
			return NULL;
		}
		if (p[1] == '\n')
			return p + 2;
	}
	return NULL;
}

int
http_parse_request(const char *buf, size_t len, HttpRequest *req)
{
	const char *p = buf;
	const char *end = buf + len;
	const char *start;
	int			more = 0;

	memset(req, 0, sizeof(*req));

	/* RFC 9112: a server should ignore empty lines before the request line */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;

	/* method */
	start = p;
	while (p < end && is_tchar((unsigned char) *p))
		p++;
	if (p >= end)
		return HTTP_NEED_MORE;
	if (p == start || *p != ' ')
		return HTTP_BAD;
	req->method = start;
	req->method_len = p - start;
	p++;

	/* request target */
	start = p;
	while (p < end && is_target_char((unsigned char) *p))
		p++;
	if (p >= end)
		return HTTP_NEED_MORE;
	if (p == start || *p != ' ')
		return HTTP_BAD;
	req->target = start;
	req->target_len = p - start;
	req->path_len = req->target_len;
	for (size_t i = 0; i < req->target_len; i++)
		if (start[i] == '?' || start[i] == '#')
		{
			req->path_len = i;
			break;
		}
	p++;

	/* version: exactly "HTTP/1.<digit>" */
	if ((size_t) (end - p) < 8)
		return memcmp(p, "HTTP/1.", (size_t) (end - p) < 7 ? (size_t) (end - p) : 7) == 0 ?
			HTTP_NEED_MORE : HTTP_BAD;
	if (memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
		return HTTP_BAD;
	req->minor_version = p[7] - '0';
	p += 8;
	p = eat_eol(p, end, &more);
	if (!p)
		return more ? HTTP_NEED_MORE : HTTP_BAD;

	/* header fields, up to the blank line */
	for (;;)
	{
		HttpHeader *h;
		const char *vend;

		if (p >= end)
			return HTTP_NEED_MORE;
		if (*p == '\r' || *p == '\n')
		{
			p = eat_eol(p, end, &more);
			if (!p)
				return more ? HTTP_NEED_MORE : HTTP_BAD;
			return (int) (p - buf);
		}
		if (*p == ' ' || *p == '\t')
			return HTTP_BAD;	/* obsolete line folding */
		start = p;
		while (p < end && is_tchar((unsigned char) *p))
			p++;
		if (p >= end)
			return HTTP_NEED_MORE;
		if (p == start || *p != ':')
			return HTTP_BAD;
		if (req->n_headers >= HTTP_MAX_HEADERS)
			return HTTP_TOO_MANY;
		h = &req->headers[req->n_headers];
		h->name = start;
		h->name_len = p - start;
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		start = p;
		while (p < end && is_value_char((unsigned char) *p))
			p++;
		if (p >= end)
			return HTTP_NEED_MORE;
		vend = p;
		while (vend > start && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		h->value = start;
		h->value_len = vend - start;
		p = eat_eol(p, end, &more);
		if (!p)
			return more ? HTTP_NEED_MORE : HTTP_BAD;
		req->n_headers++;
	}
}

const HttpHeader *
http_find_header(const HttpRequest *req, const char *name)
{
	size_t		n = strlen(name);

	for (int i = 0; i < req->n_headers; i++)
		if (req->headers[i].name_len == n && strncasecmp(req->headers[i].name, name, n) == 0)
			return &req->headers[i];
	return NULL;
}

int
http_method_is(const HttpRequest *req, const char *method)
{
	return req->method_len == strlen(method) && memcmp(req->method, method, req->method_len) == 0;
}

int
http_path_is(const HttpRequest *req, const char *path)
{
	return req->path_len == strlen(path) && memcmp(req->target, path, req->path_len) == 0;
}

int
http_head_may_be_complete(HttpHeadScan *scan, const char *buf, size_t len)
{
	for (size_t i = scan->scanned; i < len; i++)
	{
		char		ch = buf[i];

		if (!scan->seen_text)
		{
			scan->seen_text = ch != '\r' && ch != '\n';
			continue;
		}
		/* i >= 1 here, and buf[i - 1] is CR only if i >= 2: the first text byte is neither */
		if (ch == '\n' && (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && buf[i - 2] == '\n')))
		{
			scan->scanned = i + 1;
			return 1;
		}
	}
	scan->scanned = len;
	return 0;
}

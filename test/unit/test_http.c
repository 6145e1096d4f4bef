/*
 * test_http.c - the HTTP request-head parser (src/http.c): whole requests,
 * every prefix of one ("need more"), bad input, the header bound, and the
 * byte-at-a-time search for the end of a head.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "unit.h"

static const char *const simple = "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost:9187\r\nAccept:  text/plain \r\n\r\n";

static void
test_whole_request(void)
{
	HttpRequest r;
	int			n = http_parse_request(simple, strlen(simple), &r);
	const HttpHeader *h;

	CHECK(n == (int) strlen(simple));
	CHECK(http_method_is(&r, "GET"));
	CHECK(http_path_is(&r, "/metrics"));
	CHECK(!http_path_is(&r, "/metrics?x=1"));
	CHECK(r.target_len == strlen("/metrics?x=1"));
	CHECK(r.minor_version == 1);
	CHECK(r.n_headers == 2);
	h = http_find_header(&r, "accept");
	CHECK(h && h->value_len == 10 && memcmp(h->value, "text/plain", 10) == 0);
	CHECK(http_find_header(&r, "cookie") == NULL);
}

/* Bytes after the head (a pipelined request, a body) are not part of it. */
static void
test_trailing_bytes(void)
{
	char		buf[256];
	HttpRequest r;

	snprintf(buf, sizeof(buf), "%sGET / HTTP/1.0\r\n", simple);
	CHECK(http_parse_request(buf, strlen(buf), &r) == (int) strlen(simple));
	CHECK(http_parse_request("GET / HTTP/1.0\n\n", 16, &r) == 16);	/* bare LF */
	CHECK(r.minor_version == 0 && http_path_is(&r, "/"));
}

static void
test_every_prefix_needs_more(void)
{
	HttpRequest r;
	size_t		len = strlen(simple);
	int			bad = 0;

	for (size_t i = 0; i < len; i++)
		if (http_parse_request(simple, i, &r) != HTTP_NEED_MORE)
			bad++;
	CHECK(bad == 0);
}

static void
test_bad_input(void)
{
	static const char *const bad[] = {
		"GET\r\n\r\n",
		" GET / HTTP/1.1\r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1x\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\n\r\n",
		"G\x80T / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
		"GET / HTTP/1.1\rX\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",	/* a TLS ClientHello */
	};
	HttpRequest r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		int			n = http_parse_request(bad[i], strlen(bad[i]), &r);

		if (n != HTTP_BAD)
		{
			printf("  input %zu: got %d\n", i, n);
			CHECK(n == HTTP_BAD);
		}
	}
}

static void
test_header_bound(void)
{
	char		buf[4096];
	size_t		len = 0;
	HttpRequest r;

	len += snprintf(buf + len, sizeof(buf) - len, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		len += snprintf(buf + len, sizeof(buf) - len, "X-%d: %d\r\n", i, i);
	snprintf(buf + len, sizeof(buf) - len, "\r\n");
	CHECK(http_parse_request(buf, strlen(buf), &r) == (int) strlen(buf));
	CHECK(r.n_headers == HTTP_MAX_HEADERS);
	snprintf(buf + len, sizeof(buf) - len, "One-more: x\r\n\r\n");
	CHECK(http_parse_request(buf, strlen(buf), &r) == HTTP_TOO_MANY);
}

/*
 * Fed a byte at a time, the scan says "may be complete" exactly when the
 * parser finds a whole head (CRLF, bare LF, empty lines before the request),
 * and looks at each byte once.
 */
static void
test_head_scan(void)
{
	static const char *const heads[] = {
		"GET /metrics?x=1 HTTP/1.1\r\nHost: localhost:9187\r\nAccept:  text/plain \r\n\r\n",
		"GET / HTTP/1.0\n\n",
		"GET / HTTP/1.1\nA: b\n\n",
		"\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\n\r\n",
	};
	HttpRequest r;

	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++)
	{
		const char *h = heads[k];
		size_t		len = strlen(h);
		HttpHeadScan scan = {0};
		int			early = 0;

		for (size_t i = 1; i < len; i++)
		{
			if (http_head_may_be_complete(&scan, h, i))
				early++;
			CHECK(scan.scanned == i);
			CHECK(http_parse_request(h, i, &r) == HTTP_NEED_MORE);
		}
		if (early)
			printf("  head %zu: complete too early\n", k);
		CHECK(early == 0);
		CHECK(http_head_may_be_complete(&scan, h, len));
		CHECK(http_parse_request(h, len, &r) == (int) len);
	}

	/* empty lines alone are not a head; a bad head is found at its blank line */
	{
		HttpHeadScan scan = {0};
		const char *bad = "GET / HTTP/1.1\r\nNo colon\r\n\r\n";

		CHECK(!http_head_may_be_complete(&scan, "\r\n\r\n\n\n", 6));
		memset(&scan, 0, sizeof(scan));
		CHECK(!http_head_may_be_complete(&scan, bad, strlen(bad) - 2));
		CHECK(http_head_may_be_complete(&scan, bad, strlen(bad)));
		CHECK(http_parse_request(bad, strlen(bad), &r) == HTTP_BAD);
	}
}

void
http_suite(void)
{
	UNIT_RUN(test_whole_request);
	UNIT_RUN(test_trailing_bytes);
	UNIT_RUN(test_every_prefix_needs_more);
	UNIT_RUN(test_bad_input);
	UNIT_RUN(test_header_bound);
	UNIT_RUN(test_head_scan);
}

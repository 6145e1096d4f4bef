/*
 * test_json.c - the strict JSON parser and the bounded writer (src/json.c):
 * documents and their node trees, member look-up, string decoding (escapes,
 * surrogate pairs, refused \u0000 and lone surrogates), what RFC 8259
 * refuses, the depth and node bounds, and the writer's escaping, U+FFFD
 * for bytes that are not UTF-8, and its size limit.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "unit.h"

static int
parse(const char *s, JsonNode *nodes, uint32_t max)
{
	size_t		off;

	return json_parse(s, strlen(s), nodes, max, &off);
}

static void
test_document(void)
{
	const char *doc = " {\"query\":\"SELECT $1\", \"params\":[\"a\",null,1.5e3,true,{\"x\":[]}]} ";
	JsonNode	n[32];
	int			cnt = parse(doc, n, 32);
	int			q;
	int			p;
	char		buf[64];
	size_t		l;

	CHECK(cnt == 12);
	CHECK(n[0].type == JSON_OBJECT && n[0].count == 2 && n[0].next == 12);
	q = json_object_get(doc, n, 0, "query");
	p = json_object_get(doc, n, 0, "params");
	CHECK(q == 2 && n[q].type == JSON_STRING);
	CHECK(json_string_decode(doc, &n[q], buf, sizeof(buf), &l) && l == 9 && strcmp(buf, "SELECT $1") == 0);
	CHECK(p == 4 && n[p].type == JSON_ARRAY && n[p].count == 5);
	CHECK(n[5].type == JSON_STRING && n[6].type == JSON_NULL);
	CHECK(n[7].type == JSON_NUMBER && n[7].len == 5 && memcmp(doc + n[7].start, "1.5e3", 5) == 0);
	CHECK(n[8].type == JSON_TRUE && n[9].type == JSON_OBJECT && n[9].next == 12);
	CHECK(json_object_get(doc, n, 0, "queries") == -1);
	CHECK(json_object_get(doc, n, 4, "query") == -1);	/* not an object */
}

static void
test_strings(void)
{
	const char *doc = "[\"a\\\"b\\\\c\\/\\n\\t\", \"\\u00e9\\u20ac\", \"\\ud83d\\ude00\", \"\\u0000\", \"\\ud83d\", \"\\ude00x\"]";
	JsonNode	n[8];
	char		buf[64];
	size_t		l;

	CHECK(parse(doc, n, 8) == 7);
	CHECK(json_string_decode(doc, &n[1], buf, sizeof(buf), &l) && strcmp(buf, "a\"b\\c/\n\t") == 0);
	CHECK(json_string_decode(doc, &n[2], buf, sizeof(buf), &l) && strcmp(buf, "\xc3\xa9\xe2\x82\xac") == 0);
	CHECK(json_string_decode(doc, &n[3], buf, sizeof(buf), &l) && strcmp(buf, "\xf0\x9f\x98\x80") == 0 && l == 4);
	CHECK(!json_string_decode(doc, &n[4], buf, sizeof(buf), &l));	/* text cannot hold NUL */
	CHECK(!json_string_decode(doc, &n[5], buf, sizeof(buf), &l));	/* lone high surrogate */
	CHECK(!json_string_decode(doc, &n[6], buf, sizeof(buf), &l));	/* lone low surrogate */
	CHECK(!json_string_decode(doc, &n[1], buf, 3, &l));	/* out too small */
	CHECK(parse("\"a\\u0062\"", n, 8) == 1 && json_string_is("\"a\\u0062\"", &n[0], "ab"));
}

static void
test_refused(void)
{
	static const char *const bad[] = {
		"", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "[01]", "[1.]", "[.5]", "[1e]", "[-]",
		"\"a\nb\"", "\"\\x\"", "\"\\u12g4\"", "[1] [2]", "{\"a\" 1}", "{1:2}", "tru", "nul", "[true false]",
		"\"unterminated", "[1}", "{\"a\":1]",
	};
	JsonNode	n[16];

	for (int i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++)
	{
		int			r = parse(bad[i], n, 16);

		if (r != JSON_ERR_SYNTAX)
			printf("  accepted or wrong code (%d): %s\n", r, bad[i]);
		CHECK(r == JSON_ERR_SYNTAX);
	}
	CHECK(parse("[-0.5e-3, 0, -1, 1E+2]", n, 16) == 5);
	CHECK(parse("\"\"", n, 16) == 1);
}

static void
test_bounds(void)
{
	char		deep[200];
	JsonNode	n[200];
	int			i;

	for (i = 0; i < JSON_MAX_DEPTH; i++)
		deep[i] = '[';
	for (int j = 0; j < JSON_MAX_DEPTH; j++)
		deep[i++] = ']';
	deep[i] = '\0';
	CHECK(parse(deep, n, 200) == JSON_MAX_DEPTH);
	for (i = 0; i <= JSON_MAX_DEPTH; i++)
		deep[i] = '[';
	for (int j = 0; j <= JSON_MAX_DEPTH; j++)
		deep[i++] = ']';
	deep[i] = '\0';
	CHECK(parse(deep, n, 200) == JSON_ERR_DEPTH);
	CHECK(parse("[1,2,3]", n, 3) == JSON_ERR_NODES);
	CHECK(parse("[1,2,3]", n, 4) == 4);
}

static void
test_writer(void)
{
	JsonBuf		b;

	json_buf_init(&b, 1024);
	json_put_char(&b, '[');
	json_put_string(&b, "a\"\\\n\x01\xc3\xa9", 7);
	json_put_char(&b, ',');
	json_put_string(&b, "x\xff\xc3y\xed\xa0\x80", 7);	/* bad bytes, a cut sequence, a surrogate */
	json_put_char(&b, ',');
	json_put_int(&b, -42);
	json_put_char(&b, ']');
	CHECK(!b.overflow);
	CHECK(b.len == strlen("[\"a\\\"\\\\\\n\\u0001\xc3\xa9\",\"x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",-42]"));
	CHECK(memcmp(b.data, "[\"a\\\"\\\\\\n\\u0001\xc3\xa9\",\"x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",-42]", b.len) == 0);
	{
		/* what it writes, it parses back */
		JsonNode	n[8];
		size_t		off;

		CHECK(json_parse(b.data, b.len, n, 8, &off) == 4);
	}
	json_buf_free(&b);

	/* the limit: stops growing, says overflow */
	json_buf_init(&b, 10);
	json_put_cstr(&b, "0123456789");
	CHECK(!b.overflow && b.len == 10);
	json_put_char(&b, 'x');
	CHECK(b.overflow && b.len == 10 && b.cap <= 10);
	json_buf_reset(&b);
	CHECK(!b.overflow && b.len == 0);
	json_buf_free(&b);
}

void
json_suite(void)
{
	UNIT_RUN(test_document);
	UNIT_RUN(test_strings);
	UNIT_RUN(test_refused);
	UNIT_RUN(test_bounds);
	UNIT_RUN(test_writer);
}

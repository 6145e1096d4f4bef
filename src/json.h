/*
 * json.h - a small strict JSON parser and writer for the HTTP query
 * endpoint (http_sql.c).
 *
 * Pure C, no postgres.h: unit-tested on its own. The parser is
 * jsmn-shaped: it allocates nothing for values, it fills a caller's array
 * of JsonNode, each a typed slice of the input, in document order, with the
 * index of the node after its subtree so callers can skip. Every bound is
 * explicit: the node array's size (the caller's), and JSON_MAX_DEPTH
 * levels of nesting. Input that RFC 8259 does not allow (trailing commas,
 * single quotes, bare control characters in strings, leading zeros, a
 * second top-level value) is refused.
 *
 * The writer appends to a JsonBuf that grows up to its limit; past it the
 * buffer stops growing and says overflow, so a caller builds a whole
 * answer and checks once.
 */
#ifndef PGBUN_JSON_H
#define PGBUN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH	32

typedef enum JsonType
{
	JSON_NULL = 0,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,				/* start/len: between the quotes, escapes undecoded */
	JSON_ARRAY,
	JSON_OBJECT,				/* children: key (a string), value, key, value, ... */
} JsonType;

typedef struct JsonNode
{
	JsonType	type;
	uint32_t	start;			/* offset in the input */
	uint32_t	len;
	uint32_t	count;			/* arrays: elements; objects: members */
	uint32_t	next;			/* index of the first node after this one's subtree */
} JsonNode;

#define JSON_OK				0
#define JSON_ERR_SYNTAX		(-1)
#define JSON_ERR_DEPTH		(-2)
#define JSON_ERR_NODES		(-3)	/* more values than the node array holds */

/*
 * Parse in[0..len) into nodes[0..max_nodes). Returns the number of nodes
 * (node 0 is the top-level value) or a JSON_ERR_* code; *err_off gets the
 * offset of the trouble.
 */
extern int	json_parse(const char *in, size_t len, JsonNode *nodes, uint32_t max_nodes,
					   size_t *err_off);

/*
 * Decode string node n: out gets its UTF-8 bytes and a NUL, *out_len their
 * number. false for a bad escape, a lone surrogate, \u0000 (text cannot hold
 * it) or when out (cap bytes) is too small. A decoded string is never longer
 * than its encoded form, so n->len + 1 bytes always suffice.
 */
extern bool json_string_decode(const char *in, const JsonNode *n, char *out, size_t cap,
							   size_t *out_len);

/* Does string node n equal the C string s (comparing decoded)? */
extern bool json_string_is(const char *in, const JsonNode *n, const char *s);

/* The value of member key in object node obj (index), or -1. */
extern int	json_object_get(const char *in, const JsonNode *nodes, int obj, const char *key);

typedef struct JsonBuf
{
	char	   *data;			/* malloc'd, or NULL */
	size_t		len;
	size_t		cap;
	size_t		max;			/* never grows past this */
	bool		overflow;		/* something did not fit (or malloc failed) */
} JsonBuf;

extern void json_buf_init(JsonBuf *b, size_t max);
extern void json_buf_free(JsonBuf *b);
extern void json_buf_reset(JsonBuf *b);
extern void json_put_raw(JsonBuf *b, const char *s, size_t len);
extern void json_put_cstr(JsonBuf *b, const char *s);	/* raw C string */
extern void json_put_char(JsonBuf *b, char ch);
extern void json_put_int(JsonBuf *b, long long v);
/* A JSON string of s[0..len): escapes, and invalid UTF-8 as U+FFFD. */
extern void json_put_string(JsonBuf *b, const char *s, size_t len);

#endif							/* PGBUN_JSON_H */

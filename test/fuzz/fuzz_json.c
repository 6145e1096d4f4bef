/*
 * fuzz_json.c - libFuzzer target: src/json.c, the JSON the HTTP query
 * endpoint parses from a request body and the JSON it writes.
 *
 * The input is parsed (into a node array smaller than the input allows, so
 * the node bound is hit too); every string node is decoded. Then the input
 * is written as a JSON string and that is parsed back.
 *
 * Invariants beyond "no crash, no sanitizer report, no leak": a parse
 * returns a node count or an error code; every node lies inside the input
 * and its subtree ends after it; a decoded string is never longer than its
 * encoded form; whatever json_put_string writes parses as exactly one
 * string, which decodes (unless it holds U+0000) to no more bytes than
 * were written.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "json.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *in = fuzz_copy(data, size);
	JsonNode	nodes[256];
	size_t		off = 0;
	int			n = json_parse((const char *) in, size, nodes, 256, &off);
	JsonBuf		b;

	FUZZ_ASSERT(n > 0 || n == JSON_ERR_SYNTAX || n == JSON_ERR_DEPTH || n == JSON_ERR_NODES);
	for (int i = 0; i < n; i++)
	{
		FUZZ_ASSERT(nodes[i].start + nodes[i].len <= size);
		FUZZ_ASSERT(nodes[i].next > (uint32_t) i && nodes[i].next <= (uint32_t) n);
		if (nodes[i].type == JSON_STRING)
		{
			char	   *out = malloc(nodes[i].len + 1);
			size_t		l = 0;

			if (json_string_decode((const char *) in, &nodes[i], out, nodes[i].len + 1, &l))
				FUZZ_ASSERT(l <= nodes[i].len && out[l] == '\0');
			free(out);
		}
	}
	if (n > 0 && nodes[0].type == JSON_OBJECT)
		(void) json_object_get((const char *) in, nodes, 0, "query");

	json_buf_init(&b, 8 * size + 16);
	json_put_string(&b, (const char *) in, size);
	FUZZ_ASSERT(!b.overflow);
	{
		JsonNode	s[2];
		int			m = json_parse(b.data, b.len, s, 2, &off);

		FUZZ_ASSERT(m == 1 && s[0].type == JSON_STRING);
		if (!memchr(in, 0, size))
		{
			char	   *out = malloc(s[0].len + 1);
			size_t		l = 0;

			FUZZ_ASSERT(json_string_decode(b.data, &s[0], out, s[0].len + 1, &l));
			FUZZ_ASSERT(l <= 3 * size);
			free(out);
		}
	}
	json_buf_free(&b);
	free(in);
	return 0;
}

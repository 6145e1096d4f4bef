/*
 * test_proto.c - unit tests and a deterministic fuzz loop for src/proto.c.
 *
 * Expected wire bytes are written out by hand (lengths counted by hand), so a
 * builder and its test cannot share a mistake. The fuzz tests feed seeded
 * pseudo-random buffers to every parser and compare each answer with a small
 * reference model written differently from the code under test; the buffers
 * are exact-size heap blocks so an over-read also shows up under
 * -fsanitize=address.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "unit.h"

/* Four big-endian bytes of v, for expected-byte arrays. */
#define I32(v) (uint8_t) ((uint32_t) (v) >> 24), (uint8_t) ((uint32_t) (v) >> 16), \
	(uint8_t) ((uint32_t) (v) >> 8), (uint8_t) (v)

/* A string literal (possibly with embedded NULs) as bytes + length. */
#define LIT(s) (const uint8_t *) (s), sizeof(s) - 1

/* Compare a whole ProtoBuf with an expected array. */
#define CHECK_BUF(b, want) CHECK_BYTES((b)->data, (b)->len, (want), sizeof(want))

/* ------------------------------------------------------------ header parse */

static void
test_header_incomplete(void)
{
	uint8_t		buf[5] = {'Q', 0, 0, 0, 8};
	ProtoHeader h;
	size_t		avail;

	for (avail = 0; avail < 5; avail++)
	{
		h.type = '?';
		h.len = 12345;
		CHECK(proto_parse_header(buf, avail, 100, &h) == PROTO_INCOMPLETE);
		CHECK(h.type == '?' && h.len == 12345);
	}
	CHECK(proto_parse_header(NULL, 0, 100, &h) == PROTO_INCOMPLETE);
	CHECK(proto_parse_header(buf, 5, 100, &h) == PROTO_OK);
	CHECK(h.type == 'Q' && h.len == 8);
	CHECK(proto_msg_size(&h) == 9);
}

/* Parse a header 'T' + len with the given maximum. */
static ProtoResult
parse_len(uint32_t len, uint32_t max_packet, ProtoHeader *h)
{
	uint8_t		buf[] = {'T', I32(len)};

	return proto_parse_header(buf, sizeof(buf), max_packet, h);
}

static void
test_header_lengths(void)
{
	ProtoHeader h;

	CHECK(parse_len(0, 100, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(1, 100, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(3, 100, &h) == PROTO_BAD_LENGTH);
	CHECK(h.len == 3 && h.type == 'T');
	CHECK(parse_len(4, 100, &h) == PROTO_OK);
	CHECK(h.len == 4 && proto_msg_size(&h) == 5);
	/* max: the whole message (len + type byte) is exactly max_packet */
	CHECK(parse_len(99, 100, &h) == PROTO_OK);
	CHECK(proto_msg_size(&h) == 100);
	/* max + 1 */
	CHECK(parse_len(100, 100, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(0xFFFFFFFFu, 100, &h) == PROTO_BAD_LENGTH);
	CHECK(h.len == 0xFFFFFFFFu);
	/* len + 1 must not wrap to 0 */
	CHECK(parse_len(0xFFFFFFFFu, 0xFFFFFFFFu, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(0xFFFFFFFEu, 0xFFFFFFFFu, &h) == PROTO_OK);
	CHECK(parse_len(0x7FFFFFFFu, 0x7FFFFFFFu, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(0x7FFFFFFEu, 0x7FFFFFFFu, &h) == PROTO_OK);
	/* a maximum too small for any message */
	CHECK(parse_len(4, 4, &h) == PROTO_BAD_LENGTH);
	CHECK(parse_len(4, 5, &h) == PROTO_OK);
	CHECK(parse_len(4, 0, &h) == PROTO_BAD_LENGTH);
	/* big-endian decode of every byte */
	CHECK(parse_len(0x01020304u, 0xFFFFFFFFu, &h) == PROTO_OK);
	CHECK(h.len == 0x01020304u);
}

/* ----------------------------------------------------------- startup header */

static ProtoResult
parse_startup(uint32_t len, uint32_t code, uint32_t max_packet, StartupHeader *s)
{
	uint8_t		buf[] = {I32(len), I32(code)};

	return proto_parse_startup_header(buf, sizeof(buf), max_packet, s);
}

static void
test_startup_header_incomplete(void)
{
	uint8_t		buf[8] = {I32(8), I32(PROTO_CODE_SSL)};
	StartupHeader s;
	size_t		avail;

	for (avail = 0; avail < 8; avail++)
		CHECK(proto_parse_startup_header(buf, avail, 10000, &s) == PROTO_INCOMPLETE);
	CHECK(proto_parse_startup_header(NULL, 0, 10000, &s) == PROTO_INCOMPLETE);
	CHECK(proto_parse_startup_header(buf, 8, 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_SSL);
}

static void
test_startup_header_kinds(void)
{
	StartupHeader s;

	CHECK(PROTO_CODE_CANCEL == 80877102u);
	CHECK(PROTO_CODE_SSL == 80877103u);
	CHECK(PROTO_CODE_GSSENC == 80877104u);

	CHECK(parse_startup(8, PROTO_CODE_SSL, 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_SSL && s.len == 8 && s.code == PROTO_CODE_SSL);
	CHECK(parse_startup(8, PROTO_CODE_GSSENC, 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_GSSENC);
	CHECK(parse_startup(16, PROTO_CODE_CANCEL, 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_CANCEL && s.len == 16);
	CHECK(parse_startup(40, PROTO_VERSION(3, 0), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_V3 && s.minor == 0 && s.len == 40);
	CHECK(parse_startup(40, PROTO_VERSION(3, 2), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_V3 && s.minor == 2);
	CHECK(parse_startup(40, PROTO_VERSION(3, 0xFFFF), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_V3 && s.minor == 0xFFFF);
	/* a startup with no parameters at all is still 8 header bytes + 1 */
	CHECK(parse_startup(8, PROTO_VERSION(3, 0), 10000, &s) == PROTO_OK);
	CHECK(parse_startup(40, PROTO_VERSION(2, 0), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_UNSUPPORTED && s.code == 0x00020000u);
	CHECK(parse_startup(40, PROTO_VERSION(4, 0), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_UNSUPPORTED);
	CHECK(parse_startup(40, PROTO_VERSION(1234, 5681), 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_UNSUPPORTED);
	CHECK(parse_startup(40, 0, 10000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_UNSUPPORTED);
}

static void
test_startup_header_bad_lengths(void)
{
	StartupHeader s;

	/* below the header itself */
	CHECK(parse_startup(0, PROTO_VERSION(3, 0), 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(7, PROTO_VERSION(3, 0), 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(4, PROTO_CODE_SSL, 10000, &s) == PROTO_BAD_LENGTH);
	/* over the maximum; equal to it is fine */
	CHECK(parse_startup(10000, PROTO_VERSION(3, 0), 10000, &s) == PROTO_OK);
	CHECK(parse_startup(10001, PROTO_VERSION(3, 0), 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(s.len == 10001 && s.kind == STARTUP_V3);
	CHECK(parse_startup(0xFFFFFFFFu, PROTO_VERSION(3, 0), 0xFFFFFFFEu, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(0xFFFFFFFFu, PROTO_VERSION(3, 0), 0xFFFFFFFFu, &s) == PROTO_OK);
	/* SSL / GSSENC must be exactly 8 */
	CHECK(parse_startup(9, PROTO_CODE_SSL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(16, PROTO_CODE_SSL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(s.kind == STARTUP_SSL);
	CHECK(parse_startup(12, PROTO_CODE_GSSENC, 10000, &s) == PROTO_BAD_LENGTH);
	/* cancel must be exactly 16 */
	CHECK(parse_startup(8, PROTO_CODE_CANCEL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(12, PROTO_CODE_CANCEL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(15, PROTO_CODE_CANCEL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(17, PROTO_CODE_CANCEL, 10000, &s) == PROTO_BAD_LENGTH);
	CHECK(parse_startup(0xFFFFFFFFu, PROTO_CODE_CANCEL, 0xFFFFFFFFu, &s) == PROTO_BAD_LENGTH);
	/* a valid cancel over a tiny maximum is still refused */
	CHECK(parse_startup(16, PROTO_CODE_CANCEL, 10, &s) == PROTO_BAD_LENGTH);
}

/* --------------------------------------------------------------- readers */

static void
test_reader_values(void)
{
	const uint8_t data[] = {0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
	'a', 'b', 0, 0, 'x', 'y', 'z'};
	ProtoReader r;
	const uint8_t *p;
	const char *s;

	proto_reader_init(&r, data, sizeof(data));
	CHECK(r.pos == 0 && !r.error && proto_reader_remaining(&r) == sizeof(data));
	CHECK(proto_read_byte(&r) == 0x81);
	CHECK(proto_read_int16(&r) == 0x8283);
	CHECK(proto_read_int32(&r) == 0x84858687u);
	s = proto_read_string(&r);
	CHECK(s != NULL && strcmp(s, "ab") == 0 && s == (const char *) data + 7);
	s = proto_read_string(&r);
	CHECK(s != NULL && s[0] == '\0');
	p = proto_read_bytes(&r, 0);
	CHECK(p == data + 11);
	p = proto_read_bytes(&r, 3);
	CHECK(p == data + 11);
	CHECK(proto_reader_remaining(&r) == 0 && !r.error);
	p = proto_read_bytes(&r, 0);
	CHECK(p == data + sizeof(data) && !r.error);
}

static void
test_reader_bounds(void)
{
	const uint8_t data[] = {1, 2, 3};
	const uint8_t unterminated[] = {'a', 'b', 'c'};
	ProtoReader r;

	/* each read type past the end: 0 / NULL, error set, pos unchanged */
	proto_reader_init(&r, data, 3);
	CHECK(proto_read_int32(&r) == 0 && r.error && r.pos == 0);

	proto_reader_init(&r, data, 3);
	CHECK(proto_read_int16(&r) == 0x0102);
	CHECK(proto_read_int16(&r) == 0 && r.error && r.pos == 2);

	proto_reader_init(&r, data, 3);
	CHECK(proto_read_bytes(&r, 3) == data);
	CHECK(proto_read_byte(&r) == 0 && r.error && r.pos == 3);

	proto_reader_init(&r, data, 3);
	CHECK(proto_read_bytes(&r, 4) == NULL && r.error && r.pos == 0);

	proto_reader_init(&r, data, 3);
	CHECK(proto_read_bytes(&r, SIZE_MAX) == NULL && r.error);

	proto_reader_init(&r, data, 3);
	proto_read_byte(&r);
	CHECK(proto_read_bytes(&r, SIZE_MAX) == NULL && r.error && r.pos == 1);

	/* unterminated string: NULL, error, nothing consumed */
	proto_reader_init(&r, unterminated, 3);
	CHECK(proto_read_string(&r) == NULL && r.error && r.pos == 0);

	/* string at the very end */
	proto_reader_init(&r, data, 3);
	proto_read_bytes(&r, 3);
	CHECK(proto_read_string(&r) == NULL && r.error);

	/* empty body */
	proto_reader_init(&r, NULL, 0);
	CHECK(proto_read_byte(&r) == 0 && r.error);
	proto_reader_init(&r, NULL, 0);
	CHECK(proto_read_string(&r) == NULL && r.error);
	proto_reader_init(&r, NULL, 0);
	CHECK(proto_read_int16(&r) == 0 && r.error);
	proto_reader_init(&r, NULL, 0);
	CHECK(proto_read_bytes(&r, 1) == NULL && r.error);
}

static void
test_reader_sticky(void)
{
	const uint8_t data[] = {7, 8, 'a', 0};
	ProtoReader r;

	proto_reader_init(&r, data, sizeof(data));
	CHECK(proto_read_bytes(&r, 5) == NULL && r.error);
	/* once in error, reads that would fit fail too */
	CHECK(proto_read_byte(&r) == 0);
	CHECK(proto_read_int16(&r) == 0);
	CHECK(proto_read_bytes(&r, 0) == NULL);
	CHECK(proto_read_string(&r) == NULL);
	CHECK(r.error && r.pos == 0);
}

/* ------------------------------------------------------- startup parameters */

static void
test_startup_params_good(void)
{
	static const char body[] = "user\0alice\0database\0db\0options\0\0";
	ProtoReader r;
	const char *n = NULL;
	const char *v = NULL;

	proto_reader_init(&r, (const uint8_t *) body, sizeof(body));	/* incl. final \0 */
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(n && v && strcmp(n, "user") == 0 && strcmp(v, "alice") == 0);
	CHECK(n == body);
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(n && v && strcmp(n, "database") == 0 && strcmp(v, "db") == 0);
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(n && v && strcmp(n, "options") == 0 && v[0] == '\0');
	CHECK(proto_next_startup_param(&r, &n, &v) == 0);
	CHECK(!r.error && proto_reader_remaining(&r) == 0);

	/* only the terminator: no parameters, properly ended */
	proto_reader_init(&r, LIT("\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == 0);
}

static void
test_startup_params_bad(void)
{
	ProtoReader r;
	const char *n;
	const char *v;

	/* empty body */
	proto_reader_init(&r, NULL, 0);
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);

	/* pairs without the final terminator */
	proto_reader_init(&r, LIT("user\0alice\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);	/* stays bad */

	/* unterminated name */
	proto_reader_init(&r, LIT("user"));
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);

	/* name with no value at all */
	proto_reader_init(&r, LIT("user\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);

	/* unterminated value */
	proto_reader_init(&r, LIT("user\0alice"));
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);

	/* trailing junk after the terminator */
	proto_reader_init(&r, LIT("user\0alice\0\0x"));
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);
	proto_reader_init(&r, LIT("\0\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);
	proto_reader_init(&r, LIT("user\0alice\0\0\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == 1);
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);
	proto_reader_init(&r, LIT("\0user\0alice\0\0"));
	CHECK(proto_next_startup_param(&r, &n, &v) == -1);
}

/* ------------------------------------------------------------ error fields */

static void
test_error_fields_good(void)
{
	static const char body[] =
		"SFEHLER\0VERROR\0C28P01\0Mpassword authentication failed\0"
		"Dsome detail\0Hsome hint\0Fauth.c\0L123\0";
	ProtoErrorFields f;

	CHECK(proto_parse_error_fields((const uint8_t *) body, sizeof(body), &f));
	CHECK(f.severity && strcmp(f.severity, "ERROR") == 0);
	CHECK(f.sqlstate && strcmp(f.sqlstate, "28P01") == 0);
	CHECK(f.message && strcmp(f.message, "password authentication failed") == 0);
	CHECK(f.detail && strcmp(f.detail, "some detail") == 0);
	CHECK(f.hint && strcmp(f.hint, "some hint") == 0);
	CHECK(f.severity == body + 9);

	/* 'V' wins even when it comes first */
	CHECK(proto_parse_error_fields(LIT("VFATAL\0SFATALE\0\0"), &f));
	CHECK(f.severity && strcmp(f.severity, "FATAL") == 0);
	CHECK(f.sqlstate == NULL && f.message == NULL && f.detail == NULL && f.hint == NULL);

	/* only 'S' (pre-9.6 servers) */
	CHECK(proto_parse_error_fields(LIT("SWARNING\0Mw\0\0"), &f));
	CHECK(f.severity && strcmp(f.severity, "WARNING") == 0);
	CHECK(f.message && strcmp(f.message, "w") == 0);

	/* nothing but the terminator; empty field values */
	CHECK(proto_parse_error_fields(LIT("\0"), &f));
	CHECK(f.severity == NULL && f.message == NULL);
	CHECK(proto_parse_error_fields(LIT("M\0C\0\0"), &f));
	CHECK(f.message && f.message[0] == '\0' && f.sqlstate && f.sqlstate[0] == '\0');
}

static void
test_error_fields_bad(void)
{
	ProtoErrorFields f;

	CHECK(!proto_parse_error_fields(NULL, 0, &f));
	CHECK(f.severity == NULL && f.message == NULL);
	/* fields but no terminating 0 */
	CHECK(!proto_parse_error_fields(LIT("SERROR\0Mboom\0"), &f));
	CHECK(f.severity == NULL && f.message == NULL && f.sqlstate == NULL);
	/* unterminated value */
	CHECK(!proto_parse_error_fields(LIT("SERROR\0Mboom"), &f));
	CHECK(!proto_parse_error_fields(LIT("M"), &f));
	/* junk after the terminator */
	CHECK(!proto_parse_error_fields(LIT("Mboom\0\0x"), &f));
	CHECK(!proto_parse_error_fields(LIT("\0\0"), &f));
	CHECK(f.message == NULL);
}

/*
 * A server's error with fields missing (PgBouncer's CVE-2026-6666: a NULL
 * SQLSTATE dereferenced): it parses, the missing fields are NULL rather than
 * garbage, and proto_valid_sqlstate says the SQLSTATE cannot be used, so the
 * callers (server.c, pool.c) fall back to their defaults.
 */
static void
test_error_fields_absent(void)
{
	ProtoErrorFields f;

	/* no 'C' */
	CHECK(proto_parse_error_fields(LIT("SFATAL\0VFATAL\0Mno state\0\0"), &f));
	CHECK(f.sqlstate == NULL && f.message && strcmp(f.message, "no state") == 0);
	CHECK(!proto_valid_sqlstate(f.sqlstate));
	/* no 'M' */
	CHECK(proto_parse_error_fields(LIT("SFATAL\0C28P01\0\0"), &f));
	CHECK(f.message == NULL && proto_valid_sqlstate(f.sqlstate));
	/* neither, nor a severity */
	CHECK(proto_parse_error_fields(LIT("Dd\0Hh\0\0"), &f));
	CHECK(f.severity == NULL && f.sqlstate == NULL && f.message == NULL);
	CHECK(f.detail && f.hint);
	/* an empty body (length 4 on the wire) and a lone type byte */
	CHECK(!proto_parse_error_fields((const uint8_t *) "", 0, &f));
	CHECK(f.sqlstate == NULL && f.message == NULL);
	CHECK(!proto_parse_error_fields(LIT("C"), &f));
	CHECK(f.sqlstate == NULL);
	/* unterminated SQLSTATE: not read past the body */
	CHECK(!proto_parse_error_fields(LIT("C28P01"), &f));
	CHECK(f.sqlstate == NULL && f.message == NULL);
	/* a 'C' that is not a SQLSTATE parses, but is not valid */
	CHECK(proto_parse_error_fields(LIT("Cboom\0Mm\0\0"), &f));
	CHECK(f.sqlstate && !proto_valid_sqlstate(f.sqlstate));
}

static void
test_valid_sqlstate(void)
{
	CHECK(proto_valid_sqlstate("28P01"));
	CHECK(proto_valid_sqlstate("XX000"));
	CHECK(proto_valid_sqlstate("00000"));
	CHECK(proto_valid_sqlstate("ZZZZZ"));
	CHECK(!proto_valid_sqlstate(NULL));
	CHECK(!proto_valid_sqlstate(""));
	CHECK(!proto_valid_sqlstate("2"));
	CHECK(!proto_valid_sqlstate("28P0"));
	CHECK(!proto_valid_sqlstate("28P011"));
	CHECK(!proto_valid_sqlstate("28p01"));
	CHECK(!proto_valid_sqlstate("28 01"));
	CHECK(!proto_valid_sqlstate("28P0\n"));
	CHECK(!proto_valid_sqlstate("\xc3\xa9" "000"));
}

/* ----------------------------------------------------------------- builders */

static void
test_put_error(void)
{
	uint8_t		mem[256];
	ProtoBuf	b;
	static const uint8_t want[] = {
		'E', I32(38),
		'S', 'E', 'R', 'R', 'O', 'R', 0,
		'V', 'E', 'R', 'R', 'O', 'R', 0,
		'C', '0', '8', 'P', '0', '1', 0,
		'M', 'p', 'g', 'b', 'u', 'n', ':', ' ', 'b', 'a', 'd', 0,
		0
	};
	static const uint8_t want_full[] = {
		'E', I32(45),
		'S', 'F', 'A', 'T', 'A', 'L', 0,
		'V', 'F', 'A', 'T', 'A', 'L', 0,
		'C', '0', '8', 'P', '0', '1', 0,
		'M', 'p', 'g', 'b', 'u', 'n', ':', ' ', 'b', 'a', 'd', 0,
		'D', 'd', '1', 0,
		'H', 'h', 0,
		0
	};
	static const uint8_t want_hint_only[] = {
		'E', I32(30),
		'S', 'E', 'R', 'R', 'O', 'R', 0,
		'V', 'E', 'R', 'R', 'O', 'R', 0,
		'C', 'X', 'X', '0', '0', '0', 0,
		'M', 0,
		'H', 0,
		0
	};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(b.len == 0 && b.cap == sizeof(mem) && !b.overflow);
	CHECK(proto_put_error(&b, false, "08P01", "pgbun: bad", NULL, NULL));
	CHECK_BUF(&b, want);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_error(&b, true, "08P01", "pgbun: bad", "d1", "h"));
	CHECK_BUF(&b, want_full);

	/* NULL sqlstate becomes XX000, NULL message the empty string */
	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_error(&b, false, NULL, NULL, NULL, ""));
	CHECK_BUF(&b, want_hint_only);
	CHECK(!b.overflow);
}

static void
test_put_notice(void)
{
	uint8_t		mem[64];
	ProtoBuf	b;
	static const uint8_t want[] = {
		'N', I32(32),
		'S', 'N', 'O', 'T', 'I', 'C', 'E', 0,
		'V', 'N', 'O', 'T', 'I', 'C', 'E', 0,
		'C', '0', '0', '0', '0', '0', 0,
		'M', 'h', 'i', 0,
		0
	};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_notice(&b, "00000", "hi"));
	CHECK_BUF(&b, want);
}

static void
test_put_auth(void)
{
	uint8_t		mem[128];
	ProtoBuf	b;
	static const uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
	static const uint8_t want_ok[] = {'R', I32(8), I32(0)};
	static const uint8_t want_md5[] = {'R', I32(12), I32(5), 0xde, 0xad, 0xbe, 0xef};
	static const uint8_t want_sasl[] = {
		'R', I32(23), I32(10),
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		0
	};
	static const uint8_t want_sasl2[] = {
		'R', I32(42), I32(10),
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', '-', 'P', 'L', 'U', 'S', 0,
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		0
	};
	static const uint8_t want_sasl0[] = {'R', I32(9), I32(10), 0};
	const char *const mechs[] = {"SCRAM-SHA-256", NULL};
	const char *const mechs2[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", NULL};
	const char *const mechs0[] = {NULL};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_auth(&b, PROTO_AUTH_OK, NULL, 0));
	CHECK_BUF(&b, want_ok);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_auth(&b, PROTO_AUTH_MD5, salt, 4));
	CHECK_BUF(&b, want_md5);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_auth_sasl(&b, mechs));
	CHECK_BUF(&b, want_sasl);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_auth_sasl(&b, mechs2));
	CHECK_BUF(&b, want_sasl2);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_auth_sasl(&b, mechs0));
	CHECK_BUF(&b, want_sasl0);
}

static void
test_put_small_backend_messages(void)
{
	uint8_t		mem[128];
	ProtoBuf	b;
	static const uint8_t want_ps[] = {
		'S', I32(25),
		'c', 'l', 'i', 'e', 'n', 't', '_', 'e', 'n', 'c', 'o', 'd', 'i', 'n', 'g', 0,
		'U', 'T', 'F', '8', 0
	};
	static const uint8_t want_key[] = {'K', I32(12), 0x00, 0x00, 0x30, 0x39,
	0xCA, 0xFE, 0xBA, 0xBE};
	static const uint8_t want_ready[] = {'Z', I32(5), 'T'};
	static const uint8_t want_nv[] = {
		'v', I32(27), I32(0), I32(2),
		'_', 'p', 'q', '_', '.', 'a', 0,
		'_', 'p', 'q', '_', '.', 'b', 'b', 0
	};
	static const uint8_t want_nv0[] = {'v', I32(12), I32(2), I32(0)};
	const char *const opts[] = {"_pq_.a", "_pq_.bb"};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_parameter_status(&b, "client_encoding", "UTF8"));
	CHECK_BUF(&b, want_ps);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_backend_key(&b, 12345, 0xCAFEBABEu));
	CHECK_BUF(&b, want_key);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_ready(&b, 'T'));
	CHECK_BUF(&b, want_ready);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_negotiate_version(&b, 0, opts, 2));
	CHECK_BUF(&b, want_nv);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_negotiate_version(&b, 2, NULL, 0));
	CHECK_BUF(&b, want_nv0);
}

static void
test_put_frontend_messages(void)
{
	uint8_t		mem[128];
	ProtoBuf	b;
	static const uint8_t want_startup[] = {
		I32(32), 0x00, 0x03, 0x00, 0x00,
		'u', 's', 'e', 'r', 0, 'a', 'l', 'i', 'c', 'e', 0,
		'd', 'a', 't', 'a', 'b', 'a', 's', 'e', 0, 'd', 'b', 0,
		0
	};
	static const uint8_t want_startup0[] = {I32(9), I32(196608), 0};
	static const uint8_t want_query[] = {'Q', I32(13),
	'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
	static const uint8_t want_term[] = {'X', 0, 0, 0, 4};
	static const uint8_t want_cancel[] = {0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E,
	0x00, 0x01, 0x02, 0x03, 0xFF, 0xFE, 0xFD, 0xFC};
	static const uint8_t want_pw[] = {'p', I32(7), 'p', 'w', 0};
	static const uint8_t want_sasl_init[] = {
		'p', I32(33),
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		I32(11), 'n', ',', ',', 'n', '=', ',', 'r', '=', 'a', 'b', 'c'
	};
	static const uint8_t want_sasl_init_none[] = {
		'p', I32(22),
		'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,
		0xFF, 0xFF, 0xFF, 0xFF
	};
	static const uint8_t want_sasl_resp[] = {'p', I32(10), 'c', '=', 'b', 'i', 'w', 's'};
	const char *const names[] = {"user", "database"};
	const char *const values[] = {"alice", "db"};
	const char *const names_skip[] = {"user", "", NULL, "database"};
	const char *const values_skip[] = {"alice", "x", "y", "db"};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_startup(&b, names, values, 2));
	CHECK_BUF(&b, want_startup);

	/* empty / NULL names are left out rather than ending the list early */
	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_startup(&b, names_skip, values_skip, 4));
	CHECK_BUF(&b, want_startup);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_startup(&b, NULL, NULL, 0));
	CHECK_BUF(&b, want_startup0);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_query(&b, "SELECT 1"));
	CHECK_BUF(&b, want_query);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_terminate(&b));
	CHECK_BUF(&b, want_term);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_cancel(&b, 0x00010203u, 0xFFFEFDFCu));
	CHECK_BUF(&b, want_cancel);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_password(&b, "pw"));
	CHECK_BUF(&b, want_pw);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_sasl_initial(&b, "SCRAM-SHA-256", (const uint8_t *) "n,,n=,r=abc", 11));
	CHECK_BUF(&b, want_sasl_init);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_sasl_initial(&b, "SCRAM-SHA-256", NULL, 0));
	CHECK_BUF(&b, want_sasl_init_none);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_sasl_response(&b, (const uint8_t *) "c=biws", 6));
	CHECK_BUF(&b, want_sasl_resp);
}

/* Several messages in a row land back to back. */
static void
test_put_appends(void)
{
	uint8_t		mem[64];
	ProtoBuf	b;
	static const uint8_t want[] = {
		'K', I32(12), I32(1), I32(2),
		'Z', I32(5), 'I',
		'X', I32(4)
	};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_backend_key(&b, 1, 2));
	CHECK(proto_put_ready(&b, 'I'));
	CHECK(proto_put_terminate(&b));
	CHECK_BUF(&b, want);
}

/* One builder call with fixed arguments, for the overflow sweep. */
typedef bool (*BuildFn) (ProtoBuf *b);

static bool
b_error(ProtoBuf *b)
{
	return proto_put_error(b, true, "57P01", "pgbun: shutting down", "detail", "hint");
}
static bool
b_notice(ProtoBuf *b)
{
	return proto_put_notice(b, "01000", "note");
}
static bool
b_auth(ProtoBuf *b)
{
	return proto_put_auth(b, PROTO_AUTH_SASL_CONTINUE, (const uint8_t *) "r=xyz,s=abc,i=4096", 18);
}
static bool
b_auth_sasl(ProtoBuf *b)
{
	static const char *const m[] = {"SCRAM-SHA-256", NULL};

	return proto_put_auth_sasl(b, m);
}
static bool
b_param(ProtoBuf *b)
{
	return proto_put_parameter_status(b, "TimeZone", "UTC");
}
static bool
b_key(ProtoBuf *b)
{
	return proto_put_backend_key(b, 1, 2);
}
static bool
b_ready(ProtoBuf *b)
{
	return proto_put_ready(b, 'E');
}
static bool
b_negotiate(ProtoBuf *b)
{
	static const char *const u[] = {"_pq_.x"};

	return proto_put_negotiate_version(b, 0, u, 1);
}
static bool
b_startup(ProtoBuf *b)
{
	static const char *const n[] = {"user", "database", "application_name"};
	static const char *const v[] = {"u", "d", "pgbun"};

	return proto_put_startup(b, n, v, 3);
}
static bool
b_query(ProtoBuf *b)
{
	return proto_put_query(b, "DISCARD ALL");
}
static bool
b_terminate(ProtoBuf *b)
{
	return proto_put_terminate(b);
}
static bool
b_cancel(ProtoBuf *b)
{
	return proto_put_cancel(b, 3, 4);
}
static bool
b_password(ProtoBuf *b)
{
	return proto_put_password(b, "md5abcdef");
}
static bool
b_sasl_initial(ProtoBuf *b)
{
	return proto_put_sasl_initial(b, "SCRAM-SHA-256", (const uint8_t *) "n,,n=,r=1", 9);
}
static bool
b_sasl_response(ProtoBuf *b)
{
	return proto_put_sasl_response(b, (const uint8_t *) "c=biws,r=1,p=2", 14);
}

static const BuildFn all_builders[] = {
	b_error, b_notice, b_auth, b_auth_sasl, b_param, b_key, b_ready,
	b_negotiate, b_startup, b_query, b_terminate, b_cancel, b_password,
	b_sasl_initial, b_sasl_response
};

#define N_BUILDERS (sizeof(all_builders) / sizeof(all_builders[0]))

/*
 * For every builder and every capacity short of what it needs (after a few
 * bytes already in the buffer): false, len unchanged, overflow set, the old
 * bytes intact and nothing written at or past cap. With exactly enough room
 * it succeeds and produces the same bytes as in a big buffer.
 */
static void
test_put_overflow(void)
{
	size_t		i;

	for (i = 0; i < N_BUILDERS; i++)
	{
		uint8_t		ref[256];
		uint8_t		mem[256 + 16];
		ProtoBuf	b;
		size_t		need;
		size_t		prefix = 3;
		size_t		cap;
		size_t		k;

		proto_buf_init(&b, ref, sizeof(ref));
		CHECK(all_builders[i] (&b));
		need = b.len;
		CHECK(need >= 5 && need < 200);

		for (cap = 0; cap <= prefix + need; cap++)
		{
			bool		fits = cap >= prefix + need;
			bool		ok;
			bool		canary_ok = true;

			if (cap < prefix)
				continue;
			memset(mem, 0xA5, sizeof(mem));
			proto_buf_init(&b, mem, cap);
			memcpy(mem, "abc", 3);
			b.len = prefix;
			ok = all_builders[i] (&b);
			CHECK(ok == fits);
			CHECK(memcmp(mem, "abc", 3) == 0);
			for (k = cap; k < sizeof(mem); k++)
				if (mem[k] != 0xA5)
					canary_ok = false;
			CHECK(canary_ok);
			if (fits)
			{
				CHECK(b.len == prefix + need && !b.overflow);
				CHECK_BYTES(mem + prefix, b.len - prefix, ref, need);
			}
			else
				CHECK(b.len == prefix && b.overflow);
		}
	}
}

static void
test_put_overflow_sticky(void)
{
	uint8_t		mem[16];
	ProtoBuf	b;
	static const uint8_t want[] = {'Z', I32(5), 'I', 'X', I32(4)};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_ready(&b, 'I'));
	CHECK(!proto_put_query(&b, "SELECT 'far too long for this buffer'"));
	CHECK(b.overflow && b.len == 6);
	/* a later message that fits is still appended; the flag stays set */
	CHECK(proto_put_terminate(&b));
	CHECK(b.overflow);
	CHECK_BUF(&b, want);

	/* zero capacity, and a buffer whose len is already beyond cap */
	proto_buf_init(&b, NULL, 0);
	CHECK(!proto_put_terminate(&b) && b.len == 0 && b.overflow);
	proto_buf_init(&b, mem, 8);
	b.len = 9;
	CHECK(!proto_put_ready(&b, 'I') && b.len == 9 && b.overflow);
}

/* What a builder makes, read back by the parsers. */
static void
test_round_trip(void)
{
	uint8_t		mem[256];
	ProtoBuf	b;
	ProtoHeader h;
	ProtoErrorFields f;
	StartupHeader s;
	ProtoReader r;
	const char *n;
	const char *v;
	const char *const names[] = {"user", "options"};
	const char *const values[] = {"bob", ""};

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_error(&b, false, "53300", "pgbun: too many clients", NULL, "later"));
	CHECK(proto_parse_header(b.data, b.len, 1000, &h) == PROTO_OK);
	CHECK(h.type == 'E' && proto_msg_size(&h) == b.len);
	CHECK(proto_parse_error_fields(b.data + 5, b.len - 5, &f));
	CHECK(f.severity && strcmp(f.severity, "ERROR") == 0);
	CHECK(f.sqlstate && strcmp(f.sqlstate, "53300") == 0);
	CHECK(f.message && strcmp(f.message, "pgbun: too many clients") == 0);
	CHECK(f.detail == NULL);
	CHECK(f.hint && strcmp(f.hint, "later") == 0);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_startup(&b, names, values, 2));
	CHECK(proto_parse_startup_header(b.data, b.len, 1000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_V3 && s.minor == 0 && s.len == b.len);
	proto_reader_init(&r, b.data + 8, b.len - 8);
	CHECK(proto_next_startup_param(&r, &n, &v) == 1 && strcmp(n, "user") == 0 && strcmp(v, "bob") == 0);
	CHECK(proto_next_startup_param(&r, &n, &v) == 1 && strcmp(n, "options") == 0 && v[0] == 0);
	CHECK(proto_next_startup_param(&r, &n, &v) == 0);

	proto_buf_init(&b, mem, sizeof(mem));
	CHECK(proto_put_cancel(&b, 77, 88));
	CHECK(proto_parse_startup_header(b.data, b.len, 1000, &s) == PROTO_OK);
	CHECK(s.kind == STARTUP_CANCEL);
	proto_reader_init(&r, b.data + 8, b.len - 8);
	CHECK(proto_read_int32(&r) == 77 && proto_read_int32(&r) == 88 && !r.error);
}

/* -------------------------------------------------------------------- fuzz */

#define FUZZ_ITERATIONS 200000

static uint64_t fuzz_state;

/* xorshift64: fixed seed, so every run sees the same inputs. */
static uint64_t
fuzz_next(void)
{
	uint64_t	x = fuzz_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	fuzz_state = x;
	return x;
}

static uint32_t
fuzz_below(uint32_t n)
{
	return (uint32_t) (fuzz_next() % n);
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/*
 * Fill buf with bytes that are either uniformly random or drawn from a small
 * alphabet rich in NULs and field letters, so the parsers' interesting paths
 * (terminators, known field types) come up often.
 */
static void
fuzz_fill(uint8_t *buf, size_t len)
{
	static const uint8_t alphabet[] = {0, 0, 0, 'a', 'b', 'S', 'V', 'C', 'M', 'D', 'H', 'x'};
	int			mode = (int) fuzz_below(3);
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (mode == 0)
			buf[i] = (uint8_t) fuzz_next();
		else
			buf[i] = alphabet[fuzz_below(sizeof(alphabet))];
	}
	/* often make the body end properly, so valid inputs are common too */
	if (len > 0 && mode == 2)
		buf[len - 1] = 0;
}

static uint32_t
fuzz_max_packet(void)
{
	static const uint32_t picks[] = {0, 4, 5, 8, 16, 100, 0x7FFFFFFFu, 0xFFFFFFFFu};

	if (fuzz_below(4) == 0)
		return (uint32_t) fuzz_next();
	return picks[fuzz_below(sizeof(picks) / sizeof(picks[0]))];
}

static void
fuzz_one_header(const uint8_t *buf, size_t len)
{
	uint32_t	max = fuzz_max_packet();
	ProtoHeader h;
	ProtoResult res = proto_parse_header(buf, len, max, &h);
	uint32_t	wl;

	if (len < 5)
	{
		CHECK(res == PROTO_INCOMPLETE);
		return;
	}
	wl = get_be32(buf + 1);
	CHECK(res == ((wl >= 4 && (uint64_t) wl + 1 <= max) ? PROTO_OK : PROTO_BAD_LENGTH));
	CHECK(h.type == (char) buf[0] && h.len == wl);
}

static void
fuzz_one_startup_header(const uint8_t *buf, size_t len)
{
	uint32_t	max = fuzz_max_packet();
	StartupHeader s;
	ProtoResult res = proto_parse_startup_header(buf, len, max, &s);
	uint32_t	wl;
	uint32_t	code;
	bool		ok;

	if (len < 8)
	{
		CHECK(res == PROTO_INCOMPLETE);
		return;
	}
	wl = get_be32(buf);
	code = get_be32(buf + 4);
	CHECK(s.len == wl && s.code == code);
	ok = wl >= 8 && wl <= max;
	switch (code)
	{
		case 80877103:
			CHECK(s.kind == STARTUP_SSL);
			ok = ok && wl == 8;
			break;
		case 80877104:
			CHECK(s.kind == STARTUP_GSSENC);
			ok = ok && wl == 8;
			break;
		case 80877102:
			CHECK(s.kind == STARTUP_CANCEL);
			ok = ok && wl == 16;
			break;
		default:
			if (buf[4] == 0 && buf[5] == 3)
				CHECK(s.kind == STARTUP_V3 && s.minor == (uint16_t) (buf[6] << 8 | buf[7]));
			else
				CHECK(s.kind == STARTUP_UNSUPPORTED);
			break;
	}
	CHECK(res == (ok ? PROTO_OK : PROTO_BAD_LENGTH));
}

/*
 * Startup parameters, reference model: a well-formed body ends in NUL, so it
 * splits into strings s0..s(m-1) at its NULs; it is valid when m is odd, the
 * last string is empty and every other even-indexed string (a name) is not.
 * Pair k is then (s(2k), s(2k+1)).
 */
static void
fuzz_one_startup_params(const uint8_t *buf, size_t len)
{
	size_t		starts[300];
	size_t		m = 0;
	size_t		i;
	bool		valid;
	ProtoReader r;
	int			rc;
	size_t		pairs = 0;

	if (len > 0 && buf[len - 1] == 0)
	{
		starts[m++] = 0;
		for (i = 0; i + 1 < len; i++)
			if (buf[i] == 0)
				starts[m++] = i + 1;
	}
	valid = m > 0 && m % 2 == 1 && buf[starts[m - 1]] == 0;
	for (i = 0; valid && i + 1 < m; i += 2)
		if (buf[starts[i]] == 0)
			valid = false;

	proto_reader_init(&r, buf, len);
	for (;;)
	{
		const char *n = NULL;
		const char *v = NULL;

		rc = proto_next_startup_param(&r, &n, &v);
		if (rc != 1)
			break;
		/* each pair must be the next two strings of the body, in bounds */
		CHECK(n != NULL && v != NULL);
		if (n == NULL || v == NULL)
			break;
		CHECK((const uint8_t *) n >= buf && (const uint8_t *) v < buf + len);
		CHECK((const uint8_t *) v == (const uint8_t *) n + strlen(n) + 1);
		CHECK(n[0] != '\0');
		if (valid && 2 * pairs + 1 < m)
		{
			CHECK((const uint8_t *) n == buf + starts[2 * pairs]);
			CHECK((const uint8_t *) v == buf + starts[2 * pairs + 1]);
		}
		pairs++;
		CHECK(pairs <= len);
		if (pairs > len)
			break;
	}
	CHECK(rc == (valid ? 0 : -1));
	if (valid)
		CHECK(pairs == m / 2 && r.pos == len && !r.error);
	else
		CHECK(r.error);
	CHECK(r.pos <= len);
}

/*
 * Error fields, reference model: walk (type, string) pairs by index; a 0 type
 * byte must be the last byte. Remember the offset of the last value of each
 * interesting type and check the parser returned exactly those.
 */
static void
fuzz_one_error_fields(const uint8_t *buf, size_t len)
{
	long		last[256];
	bool		valid = false;
	size_t		i = 0;
	ProtoErrorFields f;
	bool		res;
	const char *want_sev;

	for (i = 0; i < 256; i++)
		last[i] = -1;
	i = 0;
	while (i < len)
	{
		size_t		j;

		if (buf[i] == 0)
		{
			valid = (i == len - 1);
			break;
		}
		for (j = i + 1; j < len && buf[j] != 0; j++)
			;
		if (j >= len)
			break;				/* unterminated value */
		last[buf[i]] = (long) (i + 1);
		i = j + 1;
	}

	res = proto_parse_error_fields(buf, len, &f);
	CHECK(res == valid);
	if (!valid)
	{
		CHECK(f.severity == NULL && f.sqlstate == NULL && f.message == NULL &&
			  f.detail == NULL && f.hint == NULL);
		return;
	}
#define FIELD_IS(ptr, t) ((ptr) == (last[(t)] < 0 ? NULL : (const char *) buf + last[(t)]))
	want_sev = last['V'] >= 0 ? (const char *) buf + last['V'] :
		last['S'] >= 0 ? (const char *) buf + last['S'] : NULL;
	CHECK(f.severity == want_sev);
	CHECK(FIELD_IS(f.sqlstate, 'C'));
	CHECK(FIELD_IS(f.message, 'M'));
	CHECK(FIELD_IS(f.detail, 'D'));
	CHECK(FIELD_IS(f.hint, 'H'));
#undef FIELD_IS
}

/* Random reads against a model of pos / error. */
static void
fuzz_one_reader(const uint8_t *buf, size_t len)
{
	ProtoReader r;
	size_t		pos = 0;
	bool		err = false;
	int			ops = (int) fuzz_below(8);
	int			k;

	proto_reader_init(&r, buf, len);
	for (k = 0; k < ops; k++)
	{
		int			op = (int) fuzz_below(5);
		size_t		left = len - pos;

		switch (op)
		{
			case 0:
				{
					uint8_t		got = proto_read_byte(&r);

					if (!err && left >= 1)
					{
						CHECK(got == buf[pos]);
						pos++;
					}
					else
					{
						CHECK(got == 0);
						err = true;
					}
					break;
				}
			case 1:
				{
					uint16_t	got = proto_read_int16(&r);

					if (!err && left >= 2)
					{
						CHECK(got == (uint16_t) (buf[pos] << 8 | buf[pos + 1]));
						pos += 2;
					}
					else
					{
						CHECK(got == 0);
						err = true;
					}
					break;
				}
			case 2:
				{
					uint32_t	got = proto_read_int32(&r);

					if (!err && left >= 4)
					{
						CHECK(got == get_be32(buf + pos));
						pos += 4;
					}
					else
					{
						CHECK(got == 0);
						err = true;
					}
					break;
				}
			case 3:
				{
					const char *got = proto_read_string(&r);
					const uint8_t *nul = (!err && left > 0) ? memchr(buf + pos, 0, left) : NULL;

					if (nul != NULL)
					{
						CHECK(got == (const char *) buf + pos);
						pos = (size_t) (nul - buf) + 1;
					}
					else
					{
						CHECK(got == NULL);
						err = true;
					}
					break;
				}
			default:
				{
					size_t		n = fuzz_below(8) == 0 ? SIZE_MAX - fuzz_below(4) : fuzz_below((uint32_t) len + 3);
					const uint8_t *got = proto_read_bytes(&r, n);

					if (!err && n <= left)
					{
						CHECK(got == buf + pos);
						pos += n;
					}
					else
					{
						CHECK(got == NULL);
						err = true;
					}
					break;
				}
		}
		CHECK(r.pos == pos && r.error == err && r.pos <= r.len);
	}
}

static void
test_fuzz_parsers(void)
{
	int			it;

	fuzz_state = 0x9E3779B97F4A7C15ull;
	for (it = 0; it < FUZZ_ITERATIONS; it++)
	{
		size_t		len = fuzz_below(8) == 0 ? fuzz_below(256) : fuzz_below(24);
		uint8_t    *buf = malloc(len > 0 ? len : 1);

		if (buf == NULL)
		{
			CHECK(buf != NULL);
			return;
		}
		fuzz_fill(buf, len);
		/* startup-phase bytes that often carry an interesting code */
		if (len >= 8 && fuzz_below(3) == 0)
		{
			static const uint32_t codes[] = {80877102, 80877103, 80877104, 0x00030000, 0x00030002, 0x00020000};
			uint32_t	c = codes[fuzz_below(6)];

			buf[4] = (uint8_t) (c >> 24);
			buf[5] = (uint8_t) (c >> 16);
			buf[6] = (uint8_t) (c >> 8);
			buf[7] = (uint8_t) c;
			buf[0] = buf[1] = 0;
			buf[2] = 0;
			buf[3] = (uint8_t) fuzz_below(24);
		}
		fuzz_one_header(buf, len);
		fuzz_one_startup_header(buf, len);
		fuzz_one_startup_params(buf, len);
		fuzz_one_error_fields(buf, len);
		fuzz_one_reader(buf, len);
		free(buf);
	}
}

/* A random C string of up to 40 non-NUL bytes in the caller's storage. */
static const char *
fuzz_string(char *store)
{
	size_t		n = fuzz_below(41);
	size_t		i;

	for (i = 0; i < n; i++)
		store[i] = (char) (1 + fuzz_below(255));
	store[n] = '\0';
	return store;
}

/*
 * Random builder calls into random small capacities: success exactly when the
 * independently computed size fits, a well-formed header on success, len and
 * overflow as promised on failure, nothing written past cap.
 */
static void
test_fuzz_builders(void)
{
	int			it;

	fuzz_state = 0xD1B54A32D192ED03ull;
	for (it = 0; it < FUZZ_ITERATIONS / 4; it++)
	{
		char		s1[48];
		char		s2[48];
		char		s3[48];
		const char *a = fuzz_string(s1);
		const char *c = fuzz_string(s2);
		const char *d = fuzz_string(s3);
		size_t		cap = fuzz_below(160);
		size_t		prefix = cap > 0 ? fuzz_below((uint32_t) cap + 1) : 0;
		uint8_t    *mem = malloc(cap + 8);
		ProtoBuf	b;
		size_t		need = 0;
		char		type = 0;
		bool		ok = false;
		bool		canary_ok = true;
		size_t		k;
		int			which = (int) fuzz_below(8);

		if (mem == NULL)
		{
			CHECK(mem != NULL);
			return;
		}
		memset(mem, 0x5A, cap + 8);
		proto_buf_init(&b, mem, cap);
		b.len = prefix;
		switch (which)
		{
			case 0:
				{
					bool		fatal = fuzz_below(2) == 0;
					bool		with_detail = fuzz_below(2) == 0;

					ok = proto_put_error(&b, fatal, a, c, with_detail ? d : NULL, NULL);
					/* S and V ("ERROR" or "FATAL"), C, M, maybe D, end */
					need = 5 + 2 * 7 + (2 + strlen(a)) + (2 + strlen(c)) + 1;
					if (with_detail)
						need += 2 + strlen(d);
					type = 'E';
					break;
				}
			case 1:
				ok = proto_put_notice(&b, a, c);
				need = 5 + 2 * 8 + (2 + strlen(a)) + (2 + strlen(c)) + 1;
				type = 'N';
				break;
			case 2:
				ok = proto_put_parameter_status(&b, a, c);
				need = 5 + strlen(a) + 1 + strlen(c) + 1;
				type = 'S';
				break;
			case 3:
				ok = proto_put_query(&b, a);
				need = 5 + strlen(a) + 1;
				type = 'Q';
				break;
			case 4:
				ok = proto_put_password(&b, a);
				need = 5 + strlen(a) + 1;
				type = 'p';
				break;
			case 5:
				ok = proto_put_sasl_initial(&b, a, (const uint8_t *) c, strlen(c));
				need = 5 + strlen(a) + 1 + 4 + strlen(c);
				type = 'p';
				break;
			case 6:
				{
					const char *names[2] = {a, c};
					const char *values[2] = {c, d};

					ok = proto_put_startup(&b, names, values, 2);
					need = 8 + 1;
					if (a[0])
						need += strlen(a) + 1 + strlen(c) + 1;
					if (c[0])
						need += strlen(c) + 1 + strlen(d) + 1;
					type = 0;
					break;
				}
			default:
				{
					const char *opts[3] = {a, c, d};

					ok = proto_put_negotiate_version(&b, 0, opts, 3);
					need = 5 + 8 + strlen(a) + strlen(c) + strlen(d) + 3;
					type = 'v';
					break;
				}
		}
		for (k = cap; k < cap + 8; k++)
			if (mem[k] != 0x5A)
				canary_ok = false;
		CHECK(canary_ok);
		for (k = 0; k < prefix; k++)
			if (mem[k] != 0x5A)
				canary_ok = false;
		CHECK(canary_ok);
		CHECK(b.len <= b.cap);
		if (prefix + need <= cap)
		{
			CHECK(ok && !b.overflow && b.len == prefix + need);
			if (ok && type != 0)
			{
				ProtoHeader h;

				CHECK(proto_parse_header(mem + prefix, need, (uint32_t) need, &h) == PROTO_OK);
				CHECK(h.type == type && proto_msg_size(&h) == need);
			}
			else if (ok)
			{
				StartupHeader s;

				CHECK(proto_parse_startup_header(mem + prefix, need, (uint32_t) need, &s) == PROTO_OK);
				CHECK(s.kind == STARTUP_V3 && s.len == need);
			}
			if (ok && (which == 0 || which == 1))
			{
				ProtoErrorFields f;

				CHECK(proto_parse_error_fields(mem + prefix + 5, need - 5, &f));
				CHECK(f.sqlstate && strcmp(f.sqlstate, a) == 0);
				CHECK(f.message && strcmp(f.message, c) == 0);
			}
		}
		else
			CHECK(!ok && b.overflow && b.len == prefix);
		free(mem);
	}
}

void
proto_suite(void)
{
	UNIT_RUN(test_header_incomplete);
	UNIT_RUN(test_header_lengths);
	UNIT_RUN(test_startup_header_incomplete);
	UNIT_RUN(test_startup_header_kinds);
	UNIT_RUN(test_startup_header_bad_lengths);
	UNIT_RUN(test_reader_values);
	UNIT_RUN(test_reader_bounds);
	UNIT_RUN(test_reader_sticky);
	UNIT_RUN(test_startup_params_good);
	UNIT_RUN(test_startup_params_bad);
	UNIT_RUN(test_error_fields_good);
	UNIT_RUN(test_error_fields_bad);
	UNIT_RUN(test_error_fields_absent);
	UNIT_RUN(test_valid_sqlstate);
	UNIT_RUN(test_put_error);
	UNIT_RUN(test_put_notice);
	UNIT_RUN(test_put_auth);
	UNIT_RUN(test_put_small_backend_messages);
	UNIT_RUN(test_put_frontend_messages);
	UNIT_RUN(test_put_appends);
	UNIT_RUN(test_put_overflow);
	UNIT_RUN(test_put_overflow_sticky);
	UNIT_RUN(test_round_trip);
	UNIT_RUN(test_fuzz_parsers);
	UNIT_RUN(test_fuzz_builders);
}

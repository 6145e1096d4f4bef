/*
 * fuzz_messages.c - libFuzzer target: typed protocol messages (src/proto.c)
 * and the bodies pgbun reads itself, from servers and from clients.
 *
 * Input: one flag byte, then a byte stream of typed messages. Bit 0 of the
 * flag says who sent the stream (1: a server, 0: a client); bits 1-2 pick
 * the packet limit (pgbun.max_packet_size is configurable; the smallest
 * values exercise the length check). Each message is framed with
 * proto_parse_header and, for the types pgbun parses, its body is read the
 * way src/server.c, src/pool.c and src/client.c read it:
 *
 *  server: ErrorResponse / NoticeResponse (proto_parse_error_fields, then
 *          the client-facing error pgbun makes of a login error it will not
 *          pass on as is), ParameterStatus (two strings, kept in a params.c
 *          block), Authentication (code, md5 salt, SASL mechanism list),
 *          BackendKeyData, ReadyForQuery;
 *  client: PasswordMessage as SASLInitialResponse (mechanism, int32 length,
 *          data: the reads of client.c's STEP_SASL_INITIAL) and as a plain
 *          password / md5 answer (one string filling the body).
 *
 * Invariants: a parsed header's length is in [4, limit - 1]; error fields
 * point inside the body and the 'V' severity wins; an error that parses is
 * rebuilt with proto_put_error and parses back to the same fields; a value
 * just stored in a parameter block reads back unchanged.
 */
#include "postgres.h"

#include "fuzz.h"
#include "params.h"
#include "proto.h"

static const uint32_t fuzz_limits[4] = {16, 300, 8192, 1 << 20};

/* An 'E' / 'N' body from a server. */
static void
fuzz_error(const uint8_t *body, size_t len)
{
	ProtoErrorFields f;
	bool		ok = proto_parse_error_fields(body, len, &f);

	if (!ok)
	{
		FUZZ_ASSERT(!f.severity && !f.sqlstate && !f.message && !f.detail && !f.hint);
		FUZZ_ASSERT(!proto_valid_sqlstate(f.sqlstate));
	}
	else
	{
		const char *const fields[] = {f.severity, f.sqlstate, f.message, f.detail, f.hint};

		FUZZ_ASSERT(len >= 1 && body[len - 1] == 0);
		for (int i = 0; i < 5; i++)
			FUZZ_ASSERT(!fields[i] || fuzz_string_inside(fields[i], body, len));
		if (proto_valid_sqlstate(f.sqlstate))
		{
			FUZZ_ASSERT(strlen(f.sqlstate) == 5);
			for (int i = 0; i < 5; i++)
				FUZZ_ASSERT((f.sqlstate[i] >= '0' && f.sqlstate[i] <= '9') ||
							(f.sqlstate[i] >= 'A' && f.sqlstate[i] <= 'Z'));
		}
	}

	/*
	 * What pgbun sends a client for it (pool.c): the server's own SQLSTATE
	 * when it has a proper one, else XX000; it must parse back the same.
	 */
	{
		uint8_t    *out = malloc(len + 128);
		ProtoBuf	b;
		ProtoHeader h;
		ProtoErrorFields g;
		const char *state = proto_valid_sqlstate(f.sqlstate) ? f.sqlstate : "XX000";
		const char *msg = f.message ? f.message : "pgbun: the server sent an error without a message";

		if (!out)
			abort();
		proto_buf_init(&b, out, len + 128);
		FUZZ_ASSERT(proto_put_error(&b, true, state, msg, f.detail, f.hint));
		FUZZ_ASSERT(proto_parse_header(out, b.len, (uint32_t) b.len, &h) == PROTO_OK);
		FUZZ_ASSERT(h.type == 'E' && proto_msg_size(&h) == b.len);
		FUZZ_ASSERT(proto_parse_error_fields(out + PROTO_HDR_LEN, b.len - PROTO_HDR_LEN, &g));
		FUZZ_ASSERT(g.sqlstate && strcmp(g.sqlstate, state) == 0 && proto_valid_sqlstate(g.sqlstate));
		FUZZ_ASSERT(g.message && strcmp(g.message, msg) == 0);
		FUZZ_ASSERT(g.severity && strcmp(g.severity, "FATAL") == 0);
		FUZZ_ASSERT((!f.detail && !g.detail) || (f.detail && g.detail && strcmp(f.detail, g.detail) == 0));
		FUZZ_ASSERT((!f.hint && !g.hint) || (f.hint && g.hint && strcmp(f.hint, g.hint) == 0));
		free(out);
	}
}

/* An 'R' body from a server, read as server.c's server_answer_auth does. */
static void
fuzz_auth(const uint8_t *body, size_t len)
{
	ProtoReader r;
	uint32_t	code;

	proto_reader_init(&r, body, len);
	code = proto_read_int32(&r);
	if (r.error)
		return;
	switch (code)
	{
		case PROTO_AUTH_MD5:
			if (proto_read_bytes(&r, 4) == NULL)
				FUZZ_ASSERT(len < 8);
			break;
		case PROTO_AUTH_SASL:
			{
				const char *mech;

				while ((mech = proto_read_string(&r)) != NULL && mech[0] != '\0')
					FUZZ_ASSERT(fuzz_string_inside(mech, body, len));
				FUZZ_ASSERT(r.pos <= r.len);
				break;
			}
		default:
			/* SASLContinue / SASLFinal: the rest goes to scram.c (fuzz_scram_client) */
			FUZZ_ASSERT(proto_reader_remaining(&r) == len - 4);
			break;
	}
}

/* A 'p' body from a client, read the ways client.c reads it. */
static void
fuzz_password(const uint8_t *body, size_t len)
{
	ProtoReader r;
	const char *mech;
	int32_t		dlen;
	const uint8_t *data;
	const char *pw;

	/* SASLInitialResponse */
	proto_reader_init(&r, body, len);
	mech = proto_read_string(&r);
	dlen = (int32_t) proto_read_int32(&r);
	data = dlen > 0 ? proto_read_bytes(&r, (size_t) dlen) : NULL;
	if (!r.error)
	{
		FUZZ_ASSERT(fuzz_string_inside(mech, body, len));
		if (data)
			FUZZ_ASSERT(data > body && data + dlen <= body + len);
	}
	else
		FUZZ_ASSERT(data == NULL);
	/* password / md5 answer: exactly one string */
	proto_reader_init(&r, body, len);
	pw = proto_read_string(&r);
	if (!r.error && proto_reader_remaining(&r) == 0)
		FUZZ_ASSERT(strlen(pw) + 1 == len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool		from_server;
	uint32_t	limit;
	size_t		pos = 1;
	char	   *block = NULL;
	uint16		block_len = 0;

	if (size < 1)
		return 0;
	from_server = (data[0] & 1) != 0;
	limit = fuzz_limits[(data[0] >> 1) & 3];

	while (pos < size)
	{
		ProtoHeader h;
		ProtoResult pr = proto_parse_header(data + pos, size - pos, limit, &h);
		uint8_t    *msg;
		const uint8_t *body;
		size_t		blen;

		if (pr == PROTO_INCOMPLETE)
		{
			FUZZ_ASSERT(size - pos < PROTO_HDR_LEN);
			break;
		}
		if (pr == PROTO_BAD_LENGTH)
		{
			FUZZ_ASSERT(h.len < 4 || (uint64_t) h.len + 1 > limit);
			break;
		}
		FUZZ_ASSERT(h.len >= 4 && (uint64_t) h.len + 1 <= limit);
		if (proto_msg_size(&h) > size - pos)
			break;
		msg = fuzz_copy(data + pos, proto_msg_size(&h));
		body = msg + PROTO_HDR_LEN;
		blen = h.len - 4;

		if (from_server)
		{
			switch (h.type)
			{
				case 'E':
				case 'N':
					fuzz_error(body, blen);
					break;
				case 'S':
					{
						ProtoReader r;
						const char *name;
						const char *value;

						proto_reader_init(&r, body, blen);
						name = proto_read_string(&r);
						value = proto_read_string(&r);
						if (!r.error && params_set(&block, &block_len, name, value))
						{
							const char *got = params_get(block, block_len, name);

							FUZZ_ASSERT(got && strcmp(got, value) == 0);
						}
						break;
					}
				case 'R':
					fuzz_auth(body, blen);
					break;
				case 'K':
					{
						ProtoReader r;

						proto_reader_init(&r, body, blen);
						(void) proto_read_int32(&r);
						(void) proto_read_int32(&r);
						FUZZ_ASSERT(r.error == (blen < 8));
						break;
					}
				case 'Z':
					/* server.c: the status byte if there is one */
					if (h.len >= 5)
						(void) *(volatile const uint8_t *) body;
					break;
				default:
					break;
			}
		}
		else if (h.type == 'p')
			fuzz_password(body, blen);
		free(msg);
		pos += proto_msg_size(&h);
	}
	free(block);
	return 0;
}

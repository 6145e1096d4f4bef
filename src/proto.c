/*
 * proto.c - PostgreSQL v3 wire-protocol framing, readers and message builders.
 *
 * This is the only place that knows the byte layout of the messages pgbun
 * parses or makes itself; everything else forwards bytes. It is plain C with
 * no postgres.h so the unit tests can build, run and fuzz it without a
 * server, and it never allocates:
 *
 *  - header parsers look at the first bytes of a caller's buffer and refuse
 *    impossible or oversized lengths before the caller reserves anything;
 *  - ProtoReader walks one message body with bounds checks and a sticky error
 *    flag, so a parser can read a whole message and check once at the end;
 *  - builders append one complete message to a caller's fixed ProtoBuf, or
 *    nothing at all when it does not fit.
 *
 * All integers on the wire are big-endian. Every function here must be safe
 * on arbitrary client input: no read past the given length, ever.
 */
#include <stdint.h>
#include <string.h>

#include "proto.h"

/* Largest length a message may carry: the protocol's lengths are int32. */
#define PROTO_MAX_WIRE_LEN 0x7FFFFFFFu

/* The 3.0 protocol version number sent in our own startup packets. */
#define PROTO_V3_0 PROTO_VERSION(3, 0)

static uint32_t
proto_get_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static void
proto_set_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

/*
 * proto_parse_header - decode a typed message header (type byte + int32
 * length) at the start of buf.
 *
 * The length is validated here, before anyone acts on it, so a client cannot
 * make the caller wait for or allocate an absurd amount: below 4 it cannot
 * even cover itself, and the whole message (length + type byte) must not
 * exceed max_packet. The sum is done in 64 bits so 0xFFFFFFFF cannot wrap.
 * On PROTO_BAD_LENGTH *out is still filled, so the caller can log what came.
 */
ProtoResult
proto_parse_header(const uint8_t *buf, size_t avail, uint32_t max_packet,
				   ProtoHeader *out)
{
	uint32_t	len;

	if (avail < PROTO_HDR_LEN)
		return PROTO_INCOMPLETE;

	len = proto_get_u32(buf + 1);
	out->type = (char) buf[0];
	out->len = len;

	if (len < 4 || (uint64_t) len + 1 > (uint64_t) max_packet)
		return PROTO_BAD_LENGTH;
	return PROTO_OK;
}

/*
 * proto_parse_startup_header - decode the untyped int32 length + int32 code
 * that starts every startup-phase packet, and say what kind of request it is.
 *
 * SSLRequest and GSSENCRequest carry nothing but the code, so any other
 * length is a protocol violation; a v3 CancelRequest carries exactly a pid
 * and a 4-byte key. Major version 3 is a StartupMessage whatever the minor
 * (the caller negotiates the minor); everything else is UNSUPPORTED so the
 * caller can answer with a proper error rather than guess. On
 * PROTO_BAD_LENGTH *out is still filled for logging.
 */
ProtoResult
proto_parse_startup_header(const uint8_t *buf, size_t avail, uint32_t max_packet,
						   StartupHeader *out)
{
	uint32_t	len;
	uint32_t	code;

	if (avail < PROTO_STARTUP_HDR_LEN)
		return PROTO_INCOMPLETE;

	len = proto_get_u32(buf);
	code = proto_get_u32(buf + 4);
	out->len = len;
	out->code = code;
	out->minor = 0;

	if (code == PROTO_CODE_SSL)
		out->kind = STARTUP_SSL;
	else if (code == PROTO_CODE_GSSENC)
		out->kind = STARTUP_GSSENC;
	else if (code == PROTO_CODE_CANCEL)
		out->kind = STARTUP_CANCEL;
	else if ((code >> 16) == 3)
	{
		out->kind = STARTUP_V3;
		out->minor = (uint16_t) (code & 0xFFFF);
	}
	else
		out->kind = STARTUP_UNSUPPORTED;

	if (len < PROTO_STARTUP_HDR_LEN || len > max_packet)
		return PROTO_BAD_LENGTH;
	if ((out->kind == STARTUP_SSL || out->kind == STARTUP_GSSENC) &&
		len != PROTO_STARTUP_HDR_LEN)
		return PROTO_BAD_LENGTH;
	if (out->kind == STARTUP_CANCEL && len != 16)
		return PROTO_BAD_LENGTH;
	return PROTO_OK;
}

/* ---------------------------------------------------------------- readers */

void
proto_reader_init(ProtoReader *r, const uint8_t *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->error = false;
}

/*
 * proto_reader_take - claim the next n bytes, or fail.
 *
 * The one place that checks bounds for all the read functions. After the
 * first failure every read fails too (the flag is sticky), so a parser that
 * reads several fields and checks r->error once cannot act on a field read
 * from the wrong place. A failed read does not move pos.
 */
static const uint8_t *
proto_reader_take(ProtoReader *r, size_t n)
{
	const uint8_t *p;

	if (r->error || r->pos > r->len || n > r->len - r->pos)
	{
		r->error = true;
		return NULL;
	}
	p = r->data + r->pos;
	r->pos += n;
	return p;
}

uint8_t
proto_read_byte(ProtoReader *r)
{
	const uint8_t *p = proto_reader_take(r, 1);

	return p ? p[0] : 0;
}

uint16_t
proto_read_int16(ProtoReader *r)
{
	const uint8_t *p = proto_reader_take(r, 2);

	return p ? (uint16_t) (((uint16_t) p[0] << 8) | p[1]) : 0;
}

uint32_t
proto_read_int32(ProtoReader *r)
{
	const uint8_t *p = proto_reader_take(r, 4);

	return p ? proto_get_u32(p) : 0;
}

/*
 * proto_read_string - return the NUL-terminated string at pos and step past
 * its terminator. The NUL must lie inside the body: a string running off the
 * end is an error, never a read into whatever follows the message.
 */
const char *
proto_read_string(ProtoReader *r)
{
	const uint8_t *start;
	const uint8_t *nul;

	if (r->error || r->pos >= r->len)
	{
		r->error = true;
		return NULL;
	}
	start = r->data + r->pos;
	nul = memchr(start, 0, r->len - r->pos);
	if (nul == NULL)
	{
		r->error = true;
		return NULL;
	}
	r->pos += (size_t) (nul - start) + 1;
	return (const char *) start;
}

const uint8_t *
proto_read_bytes(ProtoReader *r, size_t n)
{
	return proto_reader_take(r, n);
}

/*
 * proto_next_startup_param - return the next name/value pair of a
 * StartupMessage body (the bytes after the 8-byte header).
 *
 * The list ends with an empty name, which must be the body's last byte:
 * anything after it, a name or value without its NUL, or a body that ends
 * without the terminator, is malformed. Values may be empty; names may not
 * (an empty name is the terminator). Call until it returns 0 (done) or -1
 * (reject the connection); once it has returned -1 it keeps doing so.
 */
int
proto_next_startup_param(ProtoReader *r, const char **name, const char **value)
{
	const char *n;
	const char *v;

	n = proto_read_string(r);
	if (n == NULL)
		return -1;
	if (n[0] == '\0')
	{
		if (proto_reader_remaining(r) != 0)
		{
			r->error = true;
			return -1;
		}
		return 0;
	}
	v = proto_read_string(r);
	if (v == NULL)
		return -1;
	*name = n;
	*value = v;
	return 1;
}

/*
 * proto_parse_error_fields - pick the fields pgbun cares about out of an
 * ErrorResponse or NoticeResponse body.
 *
 * The body is a list of (type byte, C string) ended by a 0 type byte, which
 * must be the last byte. Unknown field types are skipped, as the protocol
 * asks. The untranslated severity 'V' wins over the localised 'S' whatever
 * their order, because pgbun compares severities. The returned pointers
 * point into body. On malformed input every field is NULL and false comes
 * back, so a caller cannot use half a message by mistake.
 */
bool
proto_parse_error_fields(const uint8_t *body, size_t len, ProtoErrorFields *out)
{
	ProtoReader r;
	const char *sev_s = NULL;
	const char *sev_v = NULL;

	memset(out, 0, sizeof(*out));
	proto_reader_init(&r, body, len);

	for (;;)
	{
		uint8_t		type = proto_read_byte(&r);
		const char *val;

		if (r.error)
			break;
		if (type == 0)
		{
			if (proto_reader_remaining(&r) != 0)
				break;
			out->severity = sev_v ? sev_v : sev_s;
			return true;
		}
		val = proto_read_string(&r);
		if (val == NULL)
			break;
		switch (type)
		{
			case 'S':
				sev_s = val;
				break;
			case 'V':
				sev_v = val;
				break;
			case 'C':
				out->sqlstate = val;
				break;
			case 'M':
				out->message = val;
				break;
			case 'D':
				out->detail = val;
				break;
			case 'H':
				out->hint = val;
				break;
			default:
				break;
		}
	}

	memset(out, 0, sizeof(*out));
	return false;
}

/*
 * proto_valid_sqlstate - true when s is a SQLSTATE as the protocol defines
 * it: exactly five characters, each a digit or an upper-case letter. A
 * server's error whose 'C' field is missing (NULL) or not like that is not
 * passed on to clients as it came (they, and pgbun, compare SQLSTATEs).
 */
bool
proto_valid_sqlstate(const char *s)
{
	if (s == NULL)
		return false;
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return s[5] == '\0';
}

/* --------------------------------------------------------------- builders */

void
proto_buf_init(ProtoBuf *b, uint8_t *data, size_t cap)
{
	b->data = data;
	b->len = 0;
	b->cap = cap;
	b->overflow = false;
}

/*
 * ProtoWriter - one message being appended to a ProtoBuf.
 *
 * Bytes are written past b->len (never past b->cap) while the message is
 * assembled; b->len moves only when the whole message fitted and its length
 * field has been filled in. That is what makes a builder all-or-nothing
 * without measuring every message twice.
 */
typedef struct ProtoWriter
{
	ProtoBuf   *b;
	size_t		start;			/* b->len when the message began */
	size_t		lenpos;			/* where the int32 length goes */
	size_t		pos;			/* next byte to write */
	bool		failed;
} ProtoWriter;

static void
proto_w_bytes(ProtoWriter *w, const void *p, size_t n)
{
	if (w->failed)
		return;
	if (n > w->b->cap - w->pos)
	{
		w->failed = true;
		return;
	}
	if (n > 0)
		memcpy(w->b->data + w->pos, p, n);
	w->pos += n;
}

static void
proto_w_byte(ProtoWriter *w, uint8_t c)
{
	proto_w_bytes(w, &c, 1);
}

static void
proto_w_int32(ProtoWriter *w, uint32_t v)
{
	uint8_t		tmp[4];

	proto_set_u32(tmp, v);
	proto_w_bytes(w, tmp, 4);
}

/* A C string with its NUL; NULL is written as the empty string. */
static void
proto_w_string(ProtoWriter *w, const char *s)
{
	if (s == NULL)
		s = "";
	proto_w_bytes(w, s, strlen(s) + 1);
}

/*
 * Start a message: type byte (0 = untyped startup-phase packet) and room for
 * the length. A buffer whose len is already beyond cap accepts nothing.
 */
static void
proto_w_begin(ProtoWriter *w, ProtoBuf *b, char type)
{
	w->b = b;
	w->start = b->len;
	w->pos = b->len;
	w->failed = b->len > b->cap;
	if (type != 0)
		proto_w_byte(w, (uint8_t) type);
	w->lenpos = w->pos;
	proto_w_int32(w, 0);
}

/*
 * Finish a message: fill in its length and commit it, or, if anything did
 * not fit (or the length would not fit an int32), leave b->len where it was
 * and flag the overflow.
 */
static bool
proto_w_end(ProtoWriter *w)
{
	size_t		msglen = 0;

	if (!w->failed)
	{
		msglen = w->pos - w->lenpos;
		if (msglen > PROTO_MAX_WIRE_LEN)
			w->failed = true;
	}
	if (w->failed)
	{
		w->b->len = w->start;
		w->b->overflow = true;
		return false;
	}
	proto_set_u32(w->b->data + w->lenpos, (uint32_t) msglen);
	w->b->len = w->pos;
	return true;
}

/*
 * proto_put_error - ErrorResponse with the fields clients rely on: severity
 * both localised ('S') and not ('V'), SQLSTATE, message, and detail / hint
 * only when given. A NULL sqlstate is sent as XX000 (internal error) rather
 * than leaving clients without one.
 */
bool
proto_put_error(ProtoBuf *b, bool fatal, const char *sqlstate,
				const char *message, const char *detail, const char *hint)
{
	ProtoWriter w;
	const char *sev = fatal ? "FATAL" : "ERROR";

	proto_w_begin(&w, b, 'E');
	proto_w_byte(&w, 'S');
	proto_w_string(&w, sev);
	proto_w_byte(&w, 'V');
	proto_w_string(&w, sev);
	proto_w_byte(&w, 'C');
	proto_w_string(&w, sqlstate ? sqlstate : "XX000");
	proto_w_byte(&w, 'M');
	proto_w_string(&w, message);
	if (detail != NULL)
	{
		proto_w_byte(&w, 'D');
		proto_w_string(&w, detail);
	}
	if (hint != NULL)
	{
		proto_w_byte(&w, 'H');
		proto_w_string(&w, hint);
	}
	proto_w_byte(&w, 0);
	return proto_w_end(&w);
}

/* NoticeResponse with severity NOTICE; a NULL sqlstate is sent as 00000. */
bool
proto_put_notice(ProtoBuf *b, const char *sqlstate, const char *message)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'N');
	proto_w_byte(&w, 'S');
	proto_w_string(&w, "NOTICE");
	proto_w_byte(&w, 'V');
	proto_w_string(&w, "NOTICE");
	proto_w_byte(&w, 'C');
	proto_w_string(&w, sqlstate ? sqlstate : "00000");
	proto_w_byte(&w, 'M');
	proto_w_string(&w, message);
	proto_w_byte(&w, 0);
	return proto_w_end(&w);
}

/* Authentication request 'R': the code, then code-specific bytes (salt...). */
bool
proto_put_auth(ProtoBuf *b, uint32_t code, const uint8_t *extra, size_t extra_len)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'R');
	proto_w_int32(&w, code);
	proto_w_bytes(&w, extra, extra_len);
	return proto_w_end(&w);
}

/* AuthenticationSASL: mechanism names as C strings, then an empty one. */
bool
proto_put_auth_sasl(ProtoBuf *b, const char *const *mechanisms)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'R');
	proto_w_int32(&w, PROTO_AUTH_SASL);
	for (; mechanisms != NULL && *mechanisms != NULL; mechanisms++)
		proto_w_string(&w, *mechanisms);
	proto_w_byte(&w, 0);
	return proto_w_end(&w);
}

bool
proto_put_parameter_status(ProtoBuf *b, const char *name, const char *value)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'S');
	proto_w_string(&w, name);
	proto_w_string(&w, value);
	return proto_w_end(&w);
}

bool
proto_put_backend_key(ProtoBuf *b, uint32_t pid, uint32_t key)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'K');
	proto_w_int32(&w, pid);
	proto_w_int32(&w, key);
	return proto_w_end(&w);
}

bool
proto_put_ready(ProtoBuf *b, char txstatus)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'Z');
	proto_w_byte(&w, (uint8_t) txstatus);
	return proto_w_end(&w);
}

/*
 * NegotiateProtocolVersion: the newest minor version pgbun speaks and the
 * startup options ("_pq_.*") it did not recognise. A negative count is
 * treated as zero.
 */
bool
proto_put_negotiate_version(ProtoBuf *b, uint16_t newest_minor,
							const char *const *unsupported, int n_unsupported)
{
	ProtoWriter w;
	int			i;

	if (n_unsupported < 0 || unsupported == NULL)
		n_unsupported = 0;
	proto_w_begin(&w, b, 'v');
	proto_w_int32(&w, newest_minor);
	proto_w_int32(&w, (uint32_t) n_unsupported);
	for (i = 0; i < n_unsupported; i++)
		proto_w_string(&w, unsupported[i]);
	return proto_w_end(&w);
}

/*
 * proto_put_startup - StartupMessage for protocol 3.0 with the given
 * parameters. Pairs with a NULL or empty name are skipped: an empty name
 * would end the list early on the server and turn the rest into junk. A
 * NULL value is sent as the empty string. A negative n is treated as zero.
 */
bool
proto_put_startup(ProtoBuf *b, const char *const *names, const char *const *values, int n)
{
	ProtoWriter w;
	int			i;

	if (n < 0 || names == NULL)
		n = 0;
	proto_w_begin(&w, b, 0);
	proto_w_int32(&w, PROTO_V3_0);
	for (i = 0; i < n; i++)
	{
		if (names[i] == NULL || names[i][0] == '\0')
			continue;
		proto_w_string(&w, names[i]);
		proto_w_string(&w, values ? values[i] : NULL);
	}
	proto_w_byte(&w, 0);
	return proto_w_end(&w);
}

/* SSLRequest: an untyped 8-byte packet asking the server for TLS. */
bool
proto_put_ssl_request(ProtoBuf *b)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 0);
	proto_w_int32(&w, PROTO_CODE_SSL);
	return proto_w_end(&w);
}

bool
proto_put_query(ProtoBuf *b, const char *sql)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'Q');
	proto_w_string(&w, sql);
	return proto_w_end(&w);
}

bool
proto_put_terminate(ProtoBuf *b)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'X');
	return proto_w_end(&w);
}

/* CancelRequest (untyped, 16 bytes), sent on a fresh server connection. */
bool
proto_put_cancel(ProtoBuf *b, uint32_t pid, uint32_t key)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 0);
	proto_w_int32(&w, PROTO_CODE_CANCEL);
	proto_w_int32(&w, pid);
	proto_w_int32(&w, key);
	return proto_w_end(&w);
}

bool
proto_put_password(ProtoBuf *b, const char *password)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'p');
	proto_w_string(&w, password);
	return proto_w_end(&w);
}

/*
 * SASLInitialResponse: the chosen mechanism, then the length-prefixed
 * client-first message. data == NULL means "no initial response", which the
 * protocol encodes as length -1 with no bytes.
 */
bool
proto_put_sasl_initial(ProtoBuf *b, const char *mechanism,
					   const uint8_t *data, size_t len)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'p');
	proto_w_string(&w, mechanism);
	if (data == NULL)
		proto_w_int32(&w, 0xFFFFFFFFu);
	else if (len > PROTO_MAX_WIRE_LEN)
		w.failed = true;
	else
	{
		proto_w_int32(&w, (uint32_t) len);
		proto_w_bytes(&w, data, len);
	}
	return proto_w_end(&w);
}

/* SASLResponse: the raw client-final message. */
bool
proto_put_sasl_response(ProtoBuf *b, const uint8_t *data, size_t len)
{
	ProtoWriter w;

	proto_w_begin(&w, b, 'p');
	proto_w_bytes(&w, data, len);
	return proto_w_end(&w);
}

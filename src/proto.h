/*
 * proto.h - PostgreSQL v3 wire-protocol framing, readers and message builders.
 *
 * Pure C (no postgres.h) so it is unit-tested and fuzzed on its own. Nothing
 * here allocates: readers walk a caller's buffer with bounds checks, builders
 * append to a caller's ProtoBuf and report overflow instead of growing it.
 * Every length that arrives from the network is checked against the header
 * size and the caller's maximum before anyone acts on it.
 */
#ifndef PGBUN_PROTO_H
#define PGBUN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Typed message header: 1 type byte + 4 length bytes (length counts itself). */
#define PROTO_HDR_LEN 5
/* Untyped startup-phase packet header: 4 length bytes + 4 code bytes. */
#define PROTO_STARTUP_HDR_LEN 8

/* Startup-phase request codes (the 4 bytes after the length). */
#define PROTO_VERSION(major, minor) (((uint32_t) (major) << 16) | (uint32_t) (minor))
#define PROTO_CODE_CANCEL   PROTO_VERSION(1234, 5678)
#define PROTO_CODE_SSL      PROTO_VERSION(1234, 5679)
#define PROTO_CODE_GSSENC   PROTO_VERSION(1234, 5680)

/* Authentication request codes ('R' message). */
#define PROTO_AUTH_OK            0
#define PROTO_AUTH_CLEARTEXT     3
#define PROTO_AUTH_MD5           5
#define PROTO_AUTH_SASL          10
#define PROTO_AUTH_SASL_CONTINUE 11
#define PROTO_AUTH_SASL_FINAL    12

typedef enum ProtoResult
{
	PROTO_OK = 0,				/* header parsed, fields filled */
	PROTO_INCOMPLETE,			/* need more bytes; nothing consumed */
	PROTO_BAD_LENGTH,			/* length below the header or above the maximum */
} ProtoResult;

/* A parsed typed header. len is the full wire length minus the type byte. */
typedef struct ProtoHeader
{
	char		type;
	uint32_t	len;			/* as on the wire: includes its own 4 bytes */
} ProtoHeader;

/* Total bytes the message occupies on the wire (type byte included). */
static inline size_t
proto_msg_size(const ProtoHeader *h)
{
	return (size_t) h->len + 1;
}

/*
 * Parse a typed header from buf[0..avail). Rejects len < 4 and len + 1 >
 * max_packet before returning PROTO_OK; returns PROTO_INCOMPLETE when fewer
 * than 5 bytes are there.
 */
extern ProtoResult proto_parse_header(const uint8_t *buf, size_t avail,
									  uint32_t max_packet, ProtoHeader *out);

/* Kinds of startup-phase packet. */
typedef enum StartupKind
{
	STARTUP_V3,					/* protocol 3.x startup; minor in StartupHeader */
	STARTUP_SSL,
	STARTUP_GSSENC,
	STARTUP_CANCEL,
	STARTUP_UNSUPPORTED,		/* any other code (protocol 2, 4.x, junk) */
} StartupKind;

typedef struct StartupHeader
{
	uint32_t	len;			/* whole packet length incl. the length field */
	uint32_t	code;
	StartupKind kind;
	uint16_t	minor;			/* for STARTUP_V3 */
} StartupHeader;

/*
 * Parse an untyped startup packet header. Needs 8 bytes. len must be >= 8
 * and <= max_packet; SSL/GSSENC requests must be exactly 8, a cancel exactly
 * 16 (else PROTO_BAD_LENGTH).
 */
extern ProtoResult proto_parse_startup_header(const uint8_t *buf, size_t avail,
											  uint32_t max_packet, StartupHeader *out);

/* Bounds-checked sequential reader over one message body. */
typedef struct ProtoReader
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
	bool		error;			/* sticky: set on any out-of-bounds read */
} ProtoReader;

extern void proto_reader_init(ProtoReader *r, const uint8_t *data, size_t len);
extern uint8_t proto_read_byte(ProtoReader *r);
extern uint16_t proto_read_int16(ProtoReader *r);
extern uint32_t proto_read_int32(ProtoReader *r);
/* NUL-terminated string inside the body; NULL (and error) if unterminated. */
extern const char *proto_read_string(ProtoReader *r);
/* n raw bytes; NULL (and error) if fewer remain. */
extern const uint8_t *proto_read_bytes(ProtoReader *r, size_t n);
static inline size_t
proto_reader_remaining(const ProtoReader *r)
{
	return r->len - r->pos;
}

/*
 * Startup parameters: a sequence of name\0value\0 pairs ended by one \0.
 * Returns 1 and sets *name and *value for each pair, 0 at the proper end,
 * -1 if malformed (unterminated, missing value, trailing junk, empty body).
 */
extern int	proto_next_startup_param(ProtoReader *r, const char **name, const char **value);

/* Fields pulled out of an ErrorResponse / NoticeResponse body. */
typedef struct ProtoErrorFields
{
	const char *severity;		/* 'V' (or 'S') */
	const char *sqlstate;		/* 'C' */
	const char *message;		/* 'M' */
	const char *detail;			/* 'D' */
	const char *hint;			/* 'H' */
} ProtoErrorFields;

/* Parse an 'E'/'N' body. Missing fields stay NULL. false if malformed. */
extern bool proto_parse_error_fields(const uint8_t *body, size_t len, ProtoErrorFields *out);
/* Is s (may be NULL) a SQLSTATE: five digits or upper-case letters? */
extern bool proto_valid_sqlstate(const char *s);

/* Output buffer: builders append at len, never past cap. */
typedef struct ProtoBuf
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
	bool		overflow;		/* sticky: set when an append did not fit */
} ProtoBuf;

extern void proto_buf_init(ProtoBuf *b, uint8_t *data, size_t cap);

/*
 * Builders. Each appends one complete message and returns false (leaving
 * b->len unchanged, overflow set) if it does not fit.
 */
extern bool proto_put_error(ProtoBuf *b, bool fatal, const char *sqlstate,
							const char *message, const char *detail, const char *hint);
extern bool proto_put_notice(ProtoBuf *b, const char *sqlstate, const char *message);
extern bool proto_put_auth(ProtoBuf *b, uint32_t code, const uint8_t *extra, size_t extra_len);
/* AuthenticationSASL listing mechanisms (NULL-terminated array). */
extern bool proto_put_auth_sasl(ProtoBuf *b, const char *const *mechanisms);
extern bool proto_put_parameter_status(ProtoBuf *b, const char *name, const char *value);
extern bool proto_put_backend_key(ProtoBuf *b, uint32_t pid, uint32_t key);
extern bool proto_put_ready(ProtoBuf *b, char txstatus);
extern bool proto_put_negotiate_version(ProtoBuf *b, uint16_t newest_minor,
										const char *const *unsupported, int n_unsupported);
/* Frontend messages pgbun sends to servers. */
extern bool proto_put_startup(ProtoBuf *b, const char *const *names, const char *const *values, int n);
extern bool proto_put_ssl_request(ProtoBuf *b);
extern bool proto_put_query(ProtoBuf *b, const char *sql);
extern bool proto_put_terminate(ProtoBuf *b);
extern bool proto_put_cancel(ProtoBuf *b, uint32_t pid, uint32_t key);
extern bool proto_put_password(ProtoBuf *b, const char *password);	/* 'p' with a C string */
extern bool proto_put_sasl_initial(ProtoBuf *b, const char *mechanism,
								   const uint8_t *data, size_t len);
extern bool proto_put_sasl_response(ProtoBuf *b, const uint8_t *data, size_t len);

/* Single-byte answers to SSLRequest / GSSENCRequest. */
#define PROTO_SSL_NO 'N'
#define PROTO_SSL_YES 'S'

#endif							/* PGBUN_PROTO_H */

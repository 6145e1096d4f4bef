/*
 * fuzz_startup.c - libFuzzer target: the startup-phase packets a client sends
 * before it has logged in (src/proto.c), read the way src/client.c reads them.
 *
 * The input is a byte stream as it arrives on a fresh client socket: any
 * number of untyped packets (SSLRequest, GSSENCRequest, CancelRequest,
 * StartupMessage, junk). Each is framed with proto_parse_startup_header
 * (limit 10000 bytes, client.c's STARTUP_PACKET_MAX); a CancelRequest's pid
 * and key are read with a ProtoReader, a StartupMessage's body is walked with
 * proto_next_startup_param until it ends or is refused.
 *
 * Invariants checked beyond "no crash, no sanitizer report": a header that
 * parses has a length inside [8, limit] and the kind its code says; every
 * name and value lies inside the packet; a body that parses to the end is
 * rebuilt with proto_put_startup and parses again to the same pairs.
 *
 * The settings (plain parameters and those of "options", split by
 * src/startup_options.c) then go through src/params.c as client_login.c
 * stores them, and the SET / set_config SQL pgbun would run on a server for
 * them (params_build_set_sql) is parsed back here: each statement must be
 * one of the two expected shapes whose string literals decode to the
 * client's name and value, byte for byte, one statement per setting. A value
 * that could end the literal early would be SQL injection from a startup
 * packet (the class of PgBouncer's CVE-2025-12819).
 */
#include "postgres.h"

#include "fuzz.h"
#include "params.h"
#include "proto.h"
#include "startup_options.h"

#define FUZZ_STARTUP_MAX 10000
#define FUZZ_MAX_PARAMS 64

/*
 * Decode the SQL string literal at *p ('...' or E'...', quotes doubled,
 * backslashes doubled in E'') into out; advance *p past it. false if it is
 * not exactly such a literal.
 */
static bool
fuzz_decode_literal(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	bool		e = false;
	size_t		n = 0;

	if (*s == 'E')
	{
		e = true;
		s++;
	}
	if (*s++ != '\'')
		return false;
	for (;;)
	{
		char		c = *s++;

		if (c == '\0')
			return false;
		if (c == '\'')
		{
			if (*s != '\'')
				break;
			s++;
		}
		else if (c == '\\' && e)
		{
			if (*s != '\\')
				return false;	/* an escape other than \\ : not what pgbun writes */
			s++;
		}
		else if (c == '\\')
			return false;		/* a backslash needs E'' (standard_conforming_strings may be off) */
		if (n + 1 >= cap)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	*p = s;
	return true;
}

/*
 * Parse the SQL params_build_set_sql made for want (the server had nothing)
 * and check that every statement sets a tracked name to want's value.
 */
static void
fuzz_check_set_sql(const char *sql, const char *want, uint16 want_len)
{
	const char *p = sql;
	char	   *val = malloc(strlen(sql) + 1);
	char	   *lname = malloc(strlen(sql) + 1);
	int			statements = 0;

	if (!val || !lname)
		abort();
	while (*p)
	{
		char		name[PARAMS_NAME_MAX];
		size_t		n = 0;
		const char *w;
		const char *setname;
		bool		list = strncmp(p, "SELECT pg_catalog.set_config(", 29) == 0;

		if (list)
		{
			/* set_config(name literal, value literal, false): search_path and untracked names */
			p += 29;
			FUZZ_ASSERT(fuzz_decode_literal(&p, lname, strlen(sql) + 1));
			FUZZ_ASSERT(strncmp(p, ", ", 2) == 0);
			p += 2;
			setname = lname;
			FUZZ_ASSERT(!params_tracked_name(setname) || strcmp(setname, "search_path") == 0);
		}
		else
		{
			FUZZ_ASSERT(strncmp(p, "SET ", 4) == 0);
			p += 4;
			while (*p && *p != ' ' && n + 1 < sizeof(name))
				name[n++] = *p++;
			name[n] = '\0';
			/* only the built-in tracked names, spelled as pgbun spells them */
			FUZZ_ASSERT(params_tracked_name(name) && strcmp(params_tracked_name(name), name) == 0);
			FUZZ_ASSERT(strcmp(name, "search_path") != 0);
			FUZZ_ASSERT(strncmp(p, " = ", 3) == 0);
			p += 3;
			setname = name;
		}
		FUZZ_ASSERT(fuzz_decode_literal(&p, val, strlen(sql) + 1));
		w = params_get(want, want_len, setname);
		FUZZ_ASSERT(w && strcmp(w, val) == 0);
		if (list)
		{
			FUZZ_ASSERT(strncmp(p, ", false);", 9) == 0);
			p += 9;
		}
		else
		{
			FUZZ_ASSERT(*p == ';');
			p++;
		}
		statements++;
	}
	/* the server had nothing: one statement per wanted value */
	FUZZ_ASSERT(statements == params_count(want, want_len));
	free(lname);
	free(val);
}

/* Keep one setting as client_login.c does (a tracked name in its canonical spelling). */
static bool
fuzz_keep(char **block, uint16 *len, const char *name, const char *value)
{
	const char *tracked = params_tracked_name(name);

	return params_set(block, len, tracked ? tracked : name, value);
}

/*
 * The settings of a startup packet (plain ones and those of "options"),
 * stored and turned into SQL as pgbun does for a server that holds nothing.
 */
static void
fuzz_startup_params_sql(const char *const *names, const char *const *values, int n)
{
	char	   *block = NULL;
	uint16		len = 0;
	char		sql[16384];
	int			rc;
	const char *options = NULL;
	ParamsState st;

	for (int i = 0; i < n; i++)
	{
		if (strcmp(names[i], "user") == 0 || strcmp(names[i], "database") == 0 ||
			strcmp(names[i], "replication") == 0 || strncmp(names[i], "_pq_.", 5) == 0)
			continue;
		if (strcmp(names[i], "options") == 0)
		{
			options = values[i];
			continue;
		}
		if (!fuzz_keep(&block, &len, names[i], values[i]))
			goto done;			/* client_login.c: 53200, connection closed */
	}
	if (options && options[0])
	{
		size_t		cap = strlen(options) + 2;
		char	   *pairs = malloc(cap);
		char		err[256];
		int			np;
		const char *p;

		if (!pairs)
			abort();
		np = startup_options_split(options, pairs, cap, err, sizeof(err));
		p = pairs;
		for (int i = 0; i < np; i++)
		{
			const char *v = p + strlen(p) + 1;
			const char *tracked = params_tracked_name(p);

			/* a plain parameter wins; the block never holds a name twice */
			if (!params_get(block, len, tracked ? tracked : p) && !fuzz_keep(&block, &len, p, v))
				break;
			p = v + strlen(v) + 1;
		}
		free(pairs);
	}
	memset(&st, 0, sizeof(st));
	st.want = block;
	st.want_len = len;
	rc = params_build_set_sql(&st, sql, sizeof(sql));
	FUZZ_ASSERT(rc >= -1 && rc < (int) sizeof(sql));
	if (rc >= 0)
	{
		FUZZ_ASSERT((size_t) rc == strlen(sql));
		fuzz_check_set_sql(sql, block, len);
	}
done:
	free(block);
}

/* Walk one StartupMessage body; if it is well-formed, check the round trip. */
static void
fuzz_startup_body(const uint8_t *body, size_t len)
{
	ProtoReader r;
	const char *names[FUZZ_MAX_PARAMS];
	const char *values[FUZZ_MAX_PARAMS];
	const char *name = NULL;
	const char *value = NULL;
	int			n = 0;
	int			rc;

	proto_reader_init(&r, body, len);
	while ((rc = proto_next_startup_param(&r, &name, &value)) == 1)
	{
		FUZZ_ASSERT(fuzz_string_inside(name, body, len));
		FUZZ_ASSERT(fuzz_string_inside(value, body, len));
		FUZZ_ASSERT(name[0] != '\0');
		FUZZ_ASSERT(r.pos <= r.len);
		if (n < FUZZ_MAX_PARAMS)
		{
			names[n] = name;
			values[n] = value;
			n++;
		}
	}
	FUZZ_ASSERT(rc == 0 || rc == -1);
	/* once refused, always refused */
	if (rc < 0)
		FUZZ_ASSERT(proto_next_startup_param(&r, &name, &value) == -1);
	if (rc == 0 && n < FUZZ_MAX_PARAMS)
	{
		uint8_t    *out = malloc(len + 64);
		ProtoBuf	b;
		StartupHeader sh;
		ProtoReader r2;
		int			i = 0;

		if (!out)
			abort();
		proto_buf_init(&b, out, len + 64);
		FUZZ_ASSERT(proto_put_startup(&b, names, values, n));
		FUZZ_ASSERT(proto_parse_startup_header(out, b.len, (uint32_t) b.len, &sh) == PROTO_OK);
		FUZZ_ASSERT(sh.kind == STARTUP_V3 && sh.len == b.len);
		proto_reader_init(&r2, out + PROTO_STARTUP_HDR_LEN, b.len - PROTO_STARTUP_HDR_LEN);
		while ((rc = proto_next_startup_param(&r2, &name, &value)) == 1)
		{
			FUZZ_ASSERT(i < n);
			FUZZ_ASSERT(strcmp(name, names[i]) == 0 && strcmp(value, values[i]) == 0);
			i++;
		}
		FUZZ_ASSERT(rc == 0 && i == n);
		free(out);
		fuzz_startup_params_sql(names, values, n);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		pos = 0;

	while (pos < size)
	{
		StartupHeader sh;
		ProtoResult pr = proto_parse_startup_header(data + pos, size - pos, FUZZ_STARTUP_MAX, &sh);
		uint8_t    *pkt;

		if (pr == PROTO_INCOMPLETE)
		{
			FUZZ_ASSERT(size - pos < PROTO_STARTUP_HDR_LEN);
			break;
		}
		if (pr == PROTO_BAD_LENGTH)
			break;				/* client.c closes the connection here */
		FUZZ_ASSERT(pr == PROTO_OK);
		FUZZ_ASSERT(sh.len >= PROTO_STARTUP_HDR_LEN && sh.len <= FUZZ_STARTUP_MAX);
		if (sh.kind == STARTUP_SSL || sh.kind == STARTUP_GSSENC)
			FUZZ_ASSERT(sh.len == PROTO_STARTUP_HDR_LEN);
		if (sh.kind == STARTUP_CANCEL)
			FUZZ_ASSERT(sh.len == 16);
		if (sh.kind == STARTUP_V3)
			FUZZ_ASSERT((sh.code >> 16) == 3 && sh.minor == (sh.code & 0xFFFF));
		if (sh.len > size - pos)
			break;				/* waits for more bytes */

		/* the packet alone, so reading past it is an ASan report */
		pkt = fuzz_copy(data + pos, sh.len);
		if (sh.kind == STARTUP_CANCEL)
		{
			ProtoReader r;

			proto_reader_init(&r, pkt + 8, 8);
			(void) proto_read_int32(&r);
			(void) proto_read_int32(&r);
			FUZZ_ASSERT(!r.error && proto_reader_remaining(&r) == 0);
		}
		else if (sh.kind == STARTUP_V3)
			fuzz_startup_body(pkt + PROTO_STARTUP_HDR_LEN, sh.len - PROTO_STARTUP_HDR_LEN);
		free(pkt);
		pos += sh.len;
	}
	return 0;
}

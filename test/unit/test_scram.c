/*
 * test_scram.c - unit tests and deterministic fuzz loops for src/scram.c.
 *
 * The known-good side comes from libpgcommon, not from scram.c: verifiers
 * are built with scram_build_secret() and the client's keys are derived from
 * the password with scram_SaltedPassword() / scram_ClientKey(), so a full
 * exchange checks pgbun's client half against its server half *and* both
 * against PostgreSQL's own key derivation. Messages handed to the parsers are
 * exact-size heap copies, so an over-read shows up under -fsanitize=address.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "common/scram-common.h"

#include "compat.h"
#include "scram.h"
#include "unit.h"

/*
 * libpgcommon's SCRAM helpers gained (hash type, key length) arguments in
 * PG16; compat.h wraps only what src/ calls, these are for the tests alone.
 */
#if PG_VERSION_NUM >= 160000
#define test_salted_password(pw, salt, saltlen, iter, out, err) \
	scram_SaltedPassword((pw), PG_SHA256, SCRAM_SHA_256_KEY_LEN, (const void *) (salt), (saltlen), \
						 (iter), (out), (err))
#define test_client_key(salted, out, err) \
	scram_ClientKey((salted), PG_SHA256, SCRAM_SHA_256_KEY_LEN, (out), (err))
#define test_server_key(salted, out, err) \
	scram_ServerKey((salted), PG_SHA256, SCRAM_SHA_256_KEY_LEN, (out), (err))
#define test_build_secret(salt, saltlen, iter, pw, err) \
	scram_build_secret(PG_SHA256, SCRAM_SHA_256_KEY_LEN, (const void *) (salt), (saltlen), (iter), \
					   (pw), (err))
#else
#define test_salted_password(pw, salt, saltlen, iter, out, err) \
	scram_SaltedPassword((pw), (const void *) (salt), (saltlen), (iter), (out), (err))
#define test_client_key(salted, out, err) scram_ClientKey((salted), (out), (err))
#define test_server_key(salted, out, err) scram_ServerKey((salted), (out), (err))
#define test_build_secret(salt, saltlen, iter, pw, err) \
	scram_build_secret((const void *) (salt), (saltlen), (iter), (pw), (err))
#endif

#define TEST_ITERATIONS 4096

static const uint8 test_salt[16] = {
	0x5e, 0x1a, 0x00, 0x93, 0x7c, 0xff, 0x21, 0x08, 0x44, 0xd0, 0x3b, 0x6a, 0x0f, 0x80, 0xc2, 0x19
};

/* What a client that knows the password can compute. */
typedef struct TestKeys
{
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		server_key[SCRAM_KEY_BYTES];
	uint8		stored_key[SCRAM_KEY_BYTES];
} TestKeys;

/* Keys for password over test_salt / TEST_ITERATIONS, via libpgcommon and OpenSSL. */
static bool
derive_keys(const char *password, TestKeys *k)
{
	uint8		salted[SCRAM_KEY_BYTES];
	const char *err = NULL;
	unsigned int outlen = 0;

	if (test_salted_password(password, test_salt, sizeof(test_salt), TEST_ITERATIONS, salted, &err) < 0 ||
		test_client_key(salted, k->client_key, &err) < 0 ||
		test_server_key(salted, k->server_key, &err) < 0)
		return false;
	return EVP_Digest(k->client_key, SCRAM_KEY_BYTES, k->stored_key, &outlen, EVP_sha256(), NULL) == 1 &&
		outlen == SCRAM_KEY_BYTES;
}

/* A verifier as PostgreSQL stores it for "password" (malloc'd; caller frees). */
static char *
real_verifier(void)
{
	const char *err = NULL;

	return test_build_secret(test_salt, sizeof(test_salt), TEST_ITERATIONS, "password", &err);
}

/* An exact-size heap copy of len bytes (at least one byte is allocated). */
static char *
heap_copy(const char *src, int len)
{
	char	   *p = malloc(len > 0 ? len : 1);

	if (len > 0)
		memcpy(p, src, len);
	return p;
}

/* ------------------------------------------------------ parse_secret */

static void
test_parse_secret_real(void)
{
	char	   *v = real_verifier();
	ScramSecret sec;
	TestKeys	k;
	char		salt_b64[64];
	int			n;

	CHECK(v != NULL);
	if (!v)
		return;
	CHECK(derive_keys("password", &k));
	n = pgbun_b64_encode(test_salt, sizeof(test_salt), salt_b64, sizeof(salt_b64));
	CHECK(n == 24);
	salt_b64[n] = '\0';

	memset(&sec, 0xAA, sizeof(sec));
	CHECK(scram_parse_secret(v, &sec));
	CHECK(sec.iterations == TEST_ITERATIONS);
	CHECK(strcmp(sec.salt_b64, salt_b64) == 0);
	CHECK_BYTES(sec.stored_key, SCRAM_KEY_BYTES, k.stored_key, SCRAM_KEY_BYTES);
	CHECK_BYTES(sec.server_key, SCRAM_KEY_BYTES, k.server_key, SCRAM_KEY_BYTES);
	free(v);
}

/* The four parts of the real verifier, for building variants of it. */
typedef struct SecretParts
{
	char		salt[64];
	char		stored[64];
	char		server[64];
} SecretParts;

static bool
split_verifier(const char *v, SecretParts *sp)
{
	return sscanf(v, "SCRAM-SHA-256$4096:%63[^$]$%63[^:]:%63s", sp->salt, sp->stored, sp->server) == 3;
}

/* Parse a heap copy of s; CHECK the answer at the caller's line. */
static void
check_parse(int line, const char *s, bool want)
{
	size_t		len = strlen(s) + 1;
	char	   *copy = heap_copy(s, (int) len);
	ScramSecret sec;

	if (scram_parse_secret(copy, &sec) != want)
	{
		unit_fail(__FILE__, line, want ? "verifier refused" : "malformed verifier accepted");
		printf("    verifier: %s\n", s);
	}
	free(copy);
}

static void
test_parse_secret_malformed(void)
{
	char	   *v = real_verifier();
	SecretParts sp;
	char		buf[512];
	char		b64[160];
	uint8		raw[40];
	int			n;

	CHECK(v != NULL && split_verifier(v, &sp));
	if (!v)
		return;
	memset(raw, 0x42, sizeof(raw));

#define VARIANT(want, ...) \
	do { \
		snprintf(buf, sizeof(buf), __VA_ARGS__); \
		check_parse(__LINE__, buf, (want)); \
	} while (0)

	/* the pieces put back together are fine (the split itself is right) */
	VARIANT(true, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(true, "SCRAM-SHA-256$1:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(true, "SCRAM-SHA-256$2147483647:%s$%s:%s", sp.salt, sp.stored, sp.server);

	/* wrong or missing prefix */
	check_parse(__LINE__, "", false);
	check_parse(__LINE__, "SCRAM-SHA-256", false);
	check_parse(__LINE__, "SCRAM-SHA-256$", false);
	check_parse(__LINE__, "md5a3556571e93b0d20722ba62be61e8c2d", false);
	VARIANT(false, "SCRAM-SHA-1$4096:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "scram-sha-256$4096:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256-PLUS$4096:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "$4096:%s$%s:%s", sp.salt, sp.stored, sp.server);

	/* iterations */
	VARIANT(false, "SCRAM-SHA-256$0:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$-1:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$-4096:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$abc:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096x:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$2147483648:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$99999999999999999999999:%s$%s:%s", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096$%s:%s", sp.stored, sp.server);

	/* missing parts */
	VARIANT(false, "SCRAM-SHA-256$4096:%s", sp.salt);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$", sp.salt);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s", sp.salt, sp.stored);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:", sp.salt, sp.stored);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$:%s", sp.salt, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:$%s:%s", sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s%s:%s", sp.salt, sp.stored, sp.server);

	/* a salt too long for the struct */
	memset(b64, 'A', 128);
	b64[128] = '\0';
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", b64, sp.stored, sp.server);
	b64[SCRAM_SALT_B64_MAX - 1] = '\0';
	VARIANT(true, "SCRAM-SHA-256$4096:%s$%s:%s", b64, sp.stored, sp.server);

	/* bad base64 in a key */
	VARIANT(false, "SCRAM-SHA-256$4096:%s$!%s:%s", sp.salt, sp.stored + 1, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s*", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s:%s", sp.salt, sp.stored, sp.server, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s$", sp.salt, sp.stored, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%sAAAA", sp.salt, sp.stored, sp.server);

	/* keys of the wrong length: 31, 33 and 40 bytes, and a short one */
	n = pgbun_b64_encode(raw, 31, b64, sizeof(b64));
	b64[n] = '\0';
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, b64, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, sp.stored, b64);
	n = pgbun_b64_encode(raw, 33, b64, sizeof(b64));
	b64[n] = '\0';
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, b64, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, sp.stored, b64);
	n = pgbun_b64_encode(raw, 40, b64, sizeof(b64));
	b64[n] = '\0';
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, b64, sp.server);
	VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:AAAA", sp.salt, sp.stored);
	n = pgbun_b64_encode(raw, 32, b64, sizeof(b64));
	b64[n] = '\0';
	VARIANT(true, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, b64, b64);
	/* a very long key is refused without overflowing the decoder's buffer */
	memset(buf, 0, sizeof(buf));
	{
		char		longkey[400];

		memset(longkey, 'Q', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = '\0';
		VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, longkey, sp.server);
		VARIANT(false, "SCRAM-SHA-256$4096:%s$%s:%s", sp.salt, sp.stored, longkey);
	}
#undef VARIANT
	free(v);
}

/* ------------------------------------------------------ whole exchange */

/* A server holding the parsed real verifier for "password". */
static bool
server_with_real_secret(ScramServer *srv)
{
	char	   *v = real_verifier();
	bool		ok;

	memset(srv, 0, sizeof(*srv));
	ok = v != NULL && scram_parse_secret(v, &srv->secret);
	free(v);
	return ok;
}

/*
 * One whole exchange of a client holding k against srv. Returns what
 * scram_server_final said; *recovered gets the ClientKey the server
 * recovered and *client_ok whether the client accepted the server's final
 * message (false unless the server answered 1).
 */
static int
exchange(ScramServer *srv, const TestKeys *k, uint8 *recovered, bool *client_ok)
{
	ScramClient cl;
	char		cfirst[SCRAM_MSG_MAX];
	char		sfirst[SCRAM_MSG_MAX];
	char		cfinal[SCRAM_MSG_MAX];
	char		sfinal[SCRAM_MSG_MAX];
	const char *err = NULL;
	int			rc;

	*client_ok = false;
	memset(&cl, 0, sizeof(cl));
	memcpy(cl.client_key, k->client_key, SCRAM_KEY_BYTES);
	memcpy(cl.server_key, k->server_key, SCRAM_KEY_BYTES);
	CHECK(scram_client_first(&cl, cfirst, sizeof(cfirst)));
	CHECK(strncmp(cfirst, "n,,n=,r=", 8) == 0);
	CHECK(scram_server_first(srv, cfirst, strlen(cfirst), sfirst, sizeof(sfirst), &err) == 1);
	CHECK(scram_client_final(&cl, sfirst, strlen(sfirst), cfinal, sizeof(cfinal), &err) == 1);
	CHECK(strncmp(cfinal, "c=biws,r=", 9) == 0);
	rc = scram_server_final(srv, cfinal, strlen(cfinal), sfinal, sizeof(sfinal), recovered, &err);
	if (rc == 1)
		*client_ok = scram_client_verify_final(&cl, sfinal, strlen(sfinal));
	return rc;
}

static void
test_exchange_success(void)
{
	ScramServer srv;
	TestKeys	k;
	uint8		recovered[SCRAM_KEY_BYTES];
	bool		client_ok;

	CHECK(derive_keys("password", &k));
	CHECK(server_with_real_secret(&srv));
	memset(recovered, 0, sizeof(recovered));
	CHECK(exchange(&srv, &k, recovered, &client_ok) == 1);
	CHECK_BYTES(recovered, SCRAM_KEY_BYTES, k.client_key, SCRAM_KEY_BYTES);
	CHECK(client_ok);
}

/* The nonces and the server-first message, field by field. */
static void
test_exchange_messages(void)
{
	ScramServer srv;
	ScramClient cl;
	char		cfirst[SCRAM_MSG_MAX];
	char		sfirst[SCRAM_MSG_MAX];
	char		expect_tail[128];
	const char *err = NULL;
	size_t		cn;
	size_t		sl;
	size_t		tl;

	CHECK(server_with_real_secret(&srv));
	memset(&cl, 0, sizeof(cl));
	CHECK(scram_client_first(&cl, cfirst, sizeof(cfirst)));
	cn = strlen(cl.client_nonce);
	CHECK(cn == 24);
	CHECK(strlen(cfirst) == 8 + cn && strcmp(cfirst + 8, cl.client_nonce) == 0);
	CHECK(scram_server_first(&srv, cfirst, strlen(cfirst), sfirst, sizeof(sfirst), &err) == 1);
	/* r=<client nonce><24 more>,s=<salt>,i=4096 */
	snprintf(expect_tail, sizeof(expect_tail), ",s=%s,i=4096", srv.secret.salt_b64);
	sl = strlen(sfirst);
	tl = strlen(expect_tail);
	CHECK(strncmp(sfirst, "r=", 2) == 0 && strncmp(sfirst + 2, cl.client_nonce, cn) == 0);
	CHECK(sl == 2 + cn + 24 + tl && strcmp(sfirst + sl - tl, expect_tail) == 0);
	CHECK(strcmp(srv.server_first, sfirst) == 0);

	/* two clients never share a nonce */
	{
		ScramClient other;
		char		again[SCRAM_MSG_MAX];

		memset(&other, 0, sizeof(other));
		CHECK(scram_client_first(&other, again, sizeof(again)));
		CHECK(strcmp(other.client_nonce, cl.client_nonce) != 0);
	}
	/* no room for the answer: refused */
	CHECK(scram_server_first(&srv, cfirst, strlen(cfirst), sfirst, 20, &err) == -1);
	CHECK(!scram_client_first(&cl, cfirst, 10));
}

static void
test_exchange_wrong_password(void)
{
	ScramServer srv;
	TestKeys	k;
	uint8		recovered[SCRAM_KEY_BYTES];
	uint8		untouched[SCRAM_KEY_BYTES];
	bool		client_ok;

	CHECK(derive_keys("passwore", &k));
	CHECK(server_with_real_secret(&srv));
	memset(recovered, 0x77, sizeof(recovered));
	memset(untouched, 0x77, sizeof(untouched));
	CHECK(exchange(&srv, &k, recovered, &client_ok) == 0);
	CHECK_BYTES(recovered, SCRAM_KEY_BYTES, untouched, SCRAM_KEY_BYTES);
	CHECK(!client_ok);

	/* the right ClientKey with a wrong ServerKey: the server accepts, the client does not */
	CHECK(derive_keys("password", &k));
	k.server_key[0] ^= 1;
	CHECK(exchange(&srv, &k, recovered, &client_ok) == 1);
	CHECK(!client_ok);
}

/* Server-first's salt from a server primed by scram_mock_secret for user. */
static void
mock_salt(const char *user, const uint8 *nonce, int nonce_len, char *salt_out, ScramSecret *sec)
{
	ScramServer srv;
	char		sfirst[SCRAM_MSG_MAX];
	const char *cfirst = "n,,n=,r=abcdefghijklmnop";
	const char *err = NULL;
	const char *s;

	memset(&srv, 0, sizeof(srv));
	scram_mock_secret(user, nonce, nonce_len, &srv.secret);
	srv.mock = true;
	*sec = srv.secret;
	salt_out[0] = '\0';
	CHECK(scram_server_first(&srv, cfirst, strlen(cfirst), sfirst, sizeof(sfirst), &err) == 1);
	s = strstr(sfirst, ",s=");
	CHECK(s != NULL && strstr(sfirst, ",i=4096") != NULL);
	if (s)
		sscanf(s + 3, "%63[^,]", salt_out);
}

static void
test_exchange_mock(void)
{
	static const uint8 nonce[] = "cluster-mock-nonce-0123456789";
	static const uint8 other_nonce[] = "another-cluster-mock-nonce-000";
	char		alice1[64],
				alice2[64],
				bob[64],
				alice_other[64];
	ScramSecret s1,
				s2,
				s3,
				s4;
	ScramServer srv;
	TestKeys	k;
	uint8		recovered[SCRAM_KEY_BYTES];
	uint8		untouched[SCRAM_KEY_BYTES];
	bool		client_ok;
	char		longname[200];

	mock_salt("alice", nonce, sizeof(nonce) - 1, alice1, &s1);
	mock_salt("alice", nonce, sizeof(nonce) - 1, alice2, &s2);
	mock_salt("bob", nonce, sizeof(nonce) - 1, bob, &s3);
	mock_salt("alice", other_nonce, sizeof(other_nonce) - 1, alice_other, &s4);
	CHECK(strlen(alice1) == 24);
	CHECK(strcmp(alice1, alice2) == 0);
	CHECK(strcmp(alice1, bob) != 0);
	CHECK(strcmp(alice1, alice_other) != 0);
	CHECK(s1.iterations == SCRAM_DEFAULT_ITERATIONS);
	/* the keys themselves are random every time */
	CHECK(memcmp(s1.stored_key, s2.stored_key, SCRAM_KEY_BYTES) != 0);

	/* over-long names and nonces are cut, not overrun */
	memset(longname, 'z', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	mock_salt(longname, (const uint8 *) longname, sizeof(longname), alice2, &s2);
	CHECK(strlen(alice2) == 24);

	/* a mock exchange fails, whatever the client sends */
	CHECK(derive_keys("password", &k));
	memset(&srv, 0, sizeof(srv));
	scram_mock_secret("alice", nonce, sizeof(nonce) - 1, &srv.secret);
	srv.mock = true;
	memset(recovered, 0x33, sizeof(recovered));
	memset(untouched, 0x33, sizeof(untouched));
	CHECK(exchange(&srv, &k, recovered, &client_ok) == 0);
	CHECK(!client_ok);
	/* ... even a proof that is right for the secret it holds */
	CHECK(server_with_real_secret(&srv));
	srv.mock = true;
	CHECK(exchange(&srv, &k, recovered, &client_ok) == 0);
	CHECK_BYTES(recovered, SCRAM_KEY_BYTES, untouched, SCRAM_KEY_BYTES);
	CHECK(!client_ok);
}

/* --------------------------------------------- client side, bad servers */

static void
test_client_bad_server(void)
{
	TestKeys	k;
	ScramClient cl;
	char		cfirst[SCRAM_MSG_MAX];
	char		msg[2 * SCRAM_MSG_MAX];
	char		out[SCRAM_MSG_MAX];
	const char *err;
	int			n;

	CHECK(derive_keys("password", &k));
	memset(&cl, 0, sizeof(cl));
	memcpy(cl.client_key, k.client_key, SCRAM_KEY_BYTES);
	memcpy(cl.server_key, k.server_key, SCRAM_KEY_BYTES);
	CHECK(scram_client_first(&cl, cfirst, sizeof(cfirst)));

#define CLIENT_FINAL(len) (err = NULL, scram_client_final(&cl, msg, (len), out, sizeof(out), &err))

	snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==,i=4096", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == 1);
	CHECK(CLIENT_FINAL(0) == -1 && err);
	/* nonce that does not start with ours */
	snprintf(msg, sizeof(msg), "r=X%sSERVER,s=c2FsdA==,i=4096", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err && strstr(err, "nonce"));
	snprintf(msg, sizeof(msg), "r=%.10s,s=c2FsdA==,i=4096", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err);
	/* missing attributes */
	snprintf(msg, sizeof(msg), "r=%sSERVER,i=4096", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err);
	snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err);
	snprintf(msg, sizeof(msg), "r=%sSERVER", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err);
	snprintf(msg, sizeof(msg), "s=c2FsdA==,r=%sSERVER,i=4096", cl.client_nonce);
	CHECK(CLIENT_FINAL(strlen(msg)) == -1 && err);
	/* embedded NUL, over-long */
	n = snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==,i=4096", cl.client_nonce);
	msg[5] = '\0';
	CHECK(CLIENT_FINAL(n) == -1 && err);
	n = snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==,i=4096,", cl.client_nonce);
	memset(msg + n, 'x', SCRAM_MSG_MAX - n);
	CHECK(CLIENT_FINAL(SCRAM_MSG_MAX) == -1 && err);
#undef CLIENT_FINAL

	/* the server's final message */
	CHECK(!scram_client_verify_final(&cl, "", 0));
	CHECK(!scram_client_verify_final(&cl, "v=", 2));
	CHECK(!scram_client_verify_final(&cl, "e=invalid-proof", 15));
	CHECK(!scram_client_verify_final(&cl, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 46));
	CHECK(!scram_client_verify_final(&cl, "v=!!!!", 6));
}

/*
 * A server's nonce, salt and iteration count at and past the limits
 * (PgBouncer's CVE-2026-6665: a long server nonce overflowed the buffer the
 * client-final-message was built in). pgbun's reply must fit its buffer or
 * fail cleanly; the salt and iteration count are not used (pgbun answers
 * with the stored ClientKey, it never runs PBKDF2 with the server's count),
 * so absurd ones cost nothing.
 */
static void
test_client_long_nonce(void)
{
	TestKeys	k;
	ScramClient cl;
	char		cfirst[SCRAM_MSG_MAX];
	char		msg[4 * SCRAM_MSG_MAX];
	char		out[SCRAM_MSG_MAX];
	char		small[64];
	const char *err;
	int			head;
	int			rc;

	CHECK(derive_keys("password", &k));
	memset(&cl, 0, sizeof(cl));
	memcpy(cl.client_key, k.client_key, SCRAM_KEY_BYTES);
	memcpy(cl.server_key, k.server_key, SCRAM_KEY_BYTES);
	CHECK(scram_client_first(&cl, cfirst, sizeof(cfirst)));

	/*
	 * Server nonce parts of every length up to the message limit: the
	 * client-final is "c=biws,r=" + nonce + ",p=" + 44, so it fits out
	 * exactly while the nonce leaves room for that; past it, -1 with an
	 * error, never a longer string.
	 */
	for (int extra = 1; extra < SCRAM_MSG_MAX; extra += 7)
	{
		head = snprintf(msg, sizeof(msg), "r=%s", cl.client_nonce);
		memset(msg + head, 'N', extra);
		snprintf(msg + head + extra, sizeof(msg) - head - extra, ",s=c2FsdA==,i=4096");
		err = NULL;
		memset(out, 0x7f, sizeof(out));
		rc = scram_client_final(&cl, msg, strlen(msg), out, sizeof(out), &err);
		if ((int) strlen(msg) >= SCRAM_MSG_MAX ||
			9 + (int) strlen(cl.client_nonce) + extra + 3 + 44 >= (int) sizeof(out))
			CHECK(rc == -1 && err && err[0]);
		else
			CHECK(rc == 1 && (int) strlen(out) == 9 + (int) strlen(cl.client_nonce) + extra + 47);
	}
	/* a nonce far past the message limit */
	head = snprintf(msg, sizeof(msg), "r=%s", cl.client_nonce);
	memset(msg + head, 'N', 3 * SCRAM_MSG_MAX);
	msg[head + 3 * SCRAM_MSG_MAX] = '\0';
	CHECK(scram_client_final(&cl, msg, strlen(msg), out, sizeof(out), &err) == -1);
	/* a reply buffer too small for an ordinary answer */
	snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==,i=4096", cl.client_nonce);
	CHECK(scram_client_final(&cl, msg, strlen(msg), small, sizeof(small), &err) == -1);
	CHECK(scram_client_final(&cl, msg, strlen(msg), out, 0, &err) == -1);

	/* absurd salts and iteration counts: nothing is computed from them */
	{
		static const char *const tails[] = {
			",s=,i=4096", ",s=c2FsdA,i=4096", ",s=!!!,i=4096", ",s=c2FsdA==,i=0",
			",s=c2FsdA==,i=-1", ",s=c2FsdA==,i=99999999999999999999", ",s=c2FsdA==,i=",
			",s=c2FsdA==,i=4096,x=extension",
		};

		for (int i = 0; i < (int) lengthof(tails); i++)
		{
			snprintf(msg, sizeof(msg), "r=%sSERVER%s", cl.client_nonce, tails[i]);
			err = NULL;
			CHECK(scram_client_final(&cl, msg, strlen(msg), out, sizeof(out), &err) == 1);
		}
	}
	/* the server's final message: an error attribute, junk after the signature */
	CHECK(!scram_client_verify_final(&cl, "e=other-error", 13));
	snprintf(msg, sizeof(msg), "r=%sSERVER,s=c2FsdA==,i=4096", cl.client_nonce);
	CHECK(scram_client_final(&cl, msg, strlen(msg), out, sizeof(out), &err) == 1);
	{
		char		good[64];
		int			n;

		memcpy(good, "v=", 2);
		n = pgbun_b64_encode(cl.expected_server_sig, SCRAM_KEY_BYTES, good + 2, sizeof(good) - 2);
		CHECK(n == 44);
		CHECK(scram_client_verify_final(&cl, good, 46));
		CHECK(!scram_client_verify_final(&cl, good, 45));
		snprintf(msg, sizeof(msg), "%.46s,x=1", good);
		CHECK(!scram_client_verify_final(&cl, msg, strlen(msg)));
		snprintf(msg, sizeof(msg), "%.46s%.44s", good, good + 2);
		CHECK(!scram_client_verify_final(&cl, msg, strlen(msg)));
	}
}

/* ------------------------------------------- server side, bad clients */

/* Feed a heap copy of msg[0..len) to scram_server_first; CHECK rc, err and err's text. */
static void
check_first(int line, ScramServer *srv, const char *msg, int len, int want, const char *err_part)
{
	char	   *copy = heap_copy(msg, len);
	char		out[SCRAM_MSG_MAX];
	const char *err = NULL;
	int			rc = scram_server_first(srv, copy, len, out, sizeof(out), &err);

	if (rc != want || (rc == -1 && (!err || !err[0])) ||
		(err_part && (!err || !strstr(err, err_part))))
	{
		unit_fail(__FILE__, line, "unexpected scram_server_first result");
		printf("    rc %d (want %d), err \"%s\", message \"%.*s\"\n", rc, want, err ? err : "(null)",
			   len > 80 ? 80 : len, msg);
	}
	free(copy);
}

#define FIRST(msg, want, err_part) check_first(__LINE__, &srv, (msg), sizeof(msg) - 1, (want), (err_part))

static void
test_server_first_malformed(void)
{
	ScramServer srv;
	char		big[SCRAM_MSG_MAX + 8];
	int			n;

	CHECK(server_with_real_secret(&srv));
	/* accepted shapes */
	FIRST("n,,n=,r=abc", 1, NULL);
	FIRST("y,,n=bob,r=abc", 1, NULL);
	FIRST("n,,n=user,r=abc,ext=1", 1, NULL);
	FIRST("n,,n=,r=!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~", 1, NULL);

	FIRST("", -1, NULL);
	FIRST("n", -1, NULL);
	FIRST("n,", -1, NULL);
	FIRST("n,,", -1, NULL);
	FIRST("n,,n", -1, NULL);
	FIRST("n,,n=", -1, NULL);
	/* no gs2 header */
	FIRST("n=,r=abc", -1, NULL);
	FIRST(",,n=,r=abc", -1, NULL);
	FIRST("N,,n=,r=abc", -1, NULL);
	FIRST("x,,n=,r=abc", -1, NULL);
	FIRST(" n,,n=,r=abc", -1, NULL);
	FIRST("n;,n=,r=abc", -1, NULL);
	FIRST("n,n=,r=abc", -1, NULL);
	/* channel binding, authzid, extensions */
	FIRST("p=tls-server-end-point,,n=,r=abc", -1, "channel binding");
	FIRST("p,,n=,r=abc", -1, "channel binding");
	FIRST("n,a=bob,n=,r=abc", -1, "authorization identity");
	FIRST("y,a=,n=,r=abc", -1, "authorization identity");
	FIRST("n,,m=ext,n=,r=abc", -1, "extension");
	/* missing or misplaced n= / r= */
	FIRST("n,,r=abc", -1, NULL);
	FIRST("n,,n=bob", -1, NULL);
	FIRST("n,,n=bob,", -1, NULL);
	FIRST("n,,n=bob,r", -1, NULL);
	FIRST("n,,n=bob,r=", -1, NULL);
	FIRST("n,,n=bob,r=,x=1", -1, NULL);
	FIRST("n,,n=bob,x=abc", -1, NULL);
	FIRST("n,,n=bob,x=1,r=abc", -1, NULL);
	FIRST("n,,x=bob,r=abc", -1, NULL);
	/* bad nonce characters */
	FIRST("n,,n=,r=ab c", -1, NULL);
	FIRST("n,,n=,r=ab\tc", -1, NULL);
	FIRST("n,,n=,r=ab\x7f", -1, NULL);
	FIRST("n,,n=,r=\xc3\xa9t\xc3\xa9", -1, NULL);
	FIRST("n,,n=,r=abc\x01", -1, NULL);
	/* embedded NUL anywhere */
	FIRST("n,,n=,r=ab\0c", -1, NULL);
	FIRST("n,,n=\0,r=abc", -1, NULL);
	FIRST("\0,,n=,r=abc", -1, NULL);
	FIRST("n,,n=,r=abc\0", -1, NULL);

	/* nonce length limit: 128 accepted, 129 refused */
	n = snprintf(big, sizeof(big), "n,,n=,r=");
	memset(big + n, 'N', 128);
	check_first(__LINE__, &srv, big, n + 128, 1, NULL);
	memset(big + n, 'N', 129);
	check_first(__LINE__, &srv, big, n + 129, -1, NULL);

	/* message length limit: 1023 bytes accepted, 1024 and more refused */
	n = snprintf(big, sizeof(big), "n,,n=,r=abcdef,x=");
	memset(big + n, 'x', sizeof(big) - n);
	check_first(__LINE__, &srv, big, SCRAM_MSG_MAX - 1, 1, NULL);
	check_first(__LINE__, &srv, big, SCRAM_MSG_MAX, -1, NULL);
	check_first(__LINE__, &srv, big, SCRAM_MSG_MAX + 8, -1, NULL);
	/* same with the bulk in the user name */
	n = snprintf(big, sizeof(big), "n,,n=");
	memset(big + n, 'u', sizeof(big) - n);
	memcpy(big + SCRAM_MSG_MAX - 1 - 6, ",r=abc", 6);
	check_first(__LINE__, &srv, big, SCRAM_MSG_MAX - 1, 1, NULL);
	memcpy(big + SCRAM_MSG_MAX - 6, ",r=abc", 6);
	check_first(__LINE__, &srv, big, SCRAM_MSG_MAX, -1, NULL);
	/* negative length */
	check_first(__LINE__, &srv, "n,,n=,r=abc", -5, -1, NULL);
}

#undef FIRST

/* A server past a valid client-first, and the client-final the real client would send. */
typedef struct FinalFixture
{
	ScramServer srv;
	TestKeys	keys;
	char		nonce[256];		/* combined nonce */
	char		cfinal[SCRAM_MSG_MAX];
	int			cfinal_len;
	int			wp_len;			/* client-final-without-proof */
	uint8		proof[SCRAM_KEY_BYTES];
} FinalFixture;

static bool
final_fixture(FinalFixture *f, const char *gs2_flag)
{
	ScramClient cl;
	char		cfirst[SCRAM_MSG_MAX];
	char		sfirst[SCRAM_MSG_MAX];
	const char *err = NULL;
	const char *p;
	char		proof_b64[64];

	memset(f, 0, sizeof(*f));
	if (!derive_keys("password", &f->keys) || !server_with_real_secret(&f->srv))
		return false;
	memset(&cl, 0, sizeof(cl));
	memcpy(cl.client_key, f->keys.client_key, SCRAM_KEY_BYTES);
	memcpy(cl.server_key, f->keys.server_key, SCRAM_KEY_BYTES);
	if (!scram_client_first(&cl, cfirst, sizeof(cfirst)))
		return false;
	cfirst[0] = gs2_flag[0];	/* "y,," is as valid as "n,," to the server */
	if (scram_server_first(&f->srv, cfirst, strlen(cfirst), sfirst, sizeof(sfirst), &err) != 1 ||
		scram_client_final(&cl, sfirst, strlen(sfirst), f->cfinal, sizeof(f->cfinal), &err) != 1)
		return false;
	f->cfinal_len = strlen(f->cfinal);
	sscanf(sfirst, "r=%255[^,]", f->nonce);
	p = strstr(f->cfinal, ",p=");
	if (!p)
		return false;
	f->wp_len = p - f->cfinal;
	snprintf(proof_b64, sizeof(proof_b64), "%s", p + 3);
	return pgbun_b64_decode(proof_b64, strlen(proof_b64), f->proof, sizeof(f->proof)) == SCRAM_KEY_BYTES;
}

/* Feed a heap copy of msg[0..len) to scram_server_final; CHECK rc, err and err's text. */
static void
check_final(int line, FinalFixture *f, const char *msg, int len, int want, const char *err_part)
{
	ScramServer srv = f->srv;
	char	   *copy = heap_copy(msg, len);
	char		out[SCRAM_MSG_MAX];
	uint8		key[SCRAM_KEY_BYTES];
	const char *err = NULL;
	int			rc = scram_server_final(&srv, copy, len, out, sizeof(out), key, &err);

	if (rc != want || (rc == -1 && (!err || !err[0])) ||
		(err_part && (!err || !strstr(err, err_part))))
	{
		unit_fail(__FILE__, line, "unexpected scram_server_final result");
		printf("    rc %d (want %d), err \"%s\", message \"%.*s\"\n", rc, want, err ? err : "(null)",
			   len > 120 ? 120 : len, msg);
	}
	free(copy);
}

static void
test_server_final_malformed(void)
{
	FinalFixture f;
	char		m[2 * SCRAM_MSG_MAX];
	char		b64[128];
	uint8		raw[40];
	const char *proof;
	int			n;

#define FINAL(want, err_part, ...) \
	do { \
		n = snprintf(m, sizeof(m), __VA_ARGS__); \
		check_final(__LINE__, &f, m, n, (want), (err_part)); \
	} while (0)

	CHECK(final_fixture(&f, "n"));
	proof = f.cfinal + f.wp_len + 3;

	/* the real one, and an extension attribute (not in the proof: a wrong proof) */
	check_final(__LINE__, &f, f.cfinal, f.cfinal_len, 1, NULL);
	FINAL(0, NULL, "c=biws,r=%s,x=1,p=%s", f.nonce, proof);
	/* a wrong proof of the right shape */
	FINAL(0, NULL, "c=biws,r=%s,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", f.nonce);

	check_final(__LINE__, &f, "", 0, -1, NULL);
	check_final(__LINE__, &f, "c", 1, -1, NULL);
	FINAL(-1, NULL, "c=biws");
	FINAL(-1, NULL, "c=biws,");
	/* channel binding */
	FINAL(-1, "channel binding", "c=eSws,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, "channel binding", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, "channel binding", "c=,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, "channel binding", "c=biwsbiws,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, "channel binding", "c=biw,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, NULL, "x=biws,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, NULL, "r=%s,p=%s", f.nonce, proof);
	FINAL(-1, NULL, "r=%s,c=biws,p=%s", f.nonce, proof);
	/* nonce */
	FINAL(-1, "nonce", "c=biws,r=%sX,p=%s", f.nonce, proof);
	FINAL(-1, "nonce", "c=biws,r=%.*s,p=%s", (int) strlen(f.nonce) - 1, f.nonce, proof);
	FINAL(-1, "nonce", "c=biws,r=%.24s,p=%s", f.nonce, proof);
	FINAL(-1, "nonce", "c=biws,r=,p=%s", proof);
	FINAL(-1, NULL, "c=biws,x=1,r=%s,p=%s", f.nonce, proof);
	FINAL(-1, NULL, "c=biws,r=%s", f.nonce);
	/* proof missing or damaged */
	FINAL(-1, NULL, "c=biws,r=%s,", f.nonce);
	FINAL(-1, NULL, "c=biws,r=%s,p=", f.nonce);
	FINAL(-1, NULL, "c=biws,r=%s,p", f.nonce);
	FINAL(-1, NULL, "c=biws,r=%s,q=%s", f.nonce, proof);
	FINAL(-1, NULL, "c=biws,r=%s,p=%s,x=1", f.nonce, proof);
	FINAL(-1, NULL, "c=biws,r=%s,p=!%s", f.nonce, proof + 1);
	FINAL(-1, NULL, "c=biws,r=%s,p=%.20s", f.nonce, proof);
	FINAL(-1, NULL, "c=biws,r=%s,p=%s%s", f.nonce, proof, proof);
	memset(raw, 0x5c, sizeof(raw));
	n = pgbun_b64_encode(raw, 31, b64, sizeof(b64));
	b64[n] = '\0';
	FINAL(-1, NULL, "c=biws,r=%s,p=%s", f.nonce, b64);
	n = pgbun_b64_encode(raw, 33, b64, sizeof(b64));
	b64[n] = '\0';
	FINAL(-1, NULL, "c=biws,r=%s,p=%s", f.nonce, b64);
	/* embedded NUL */
	n = snprintf(m, sizeof(m), "%s", f.cfinal);
	m[f.wp_len + 5] = '\0';
	check_final(__LINE__, &f, m, n, -1, NULL);
	m[f.wp_len + 5] = f.cfinal[f.wp_len + 5];
	m[3] = '\0';
	check_final(__LINE__, &f, m, n, -1, NULL);
	/*
	 * Length limit: padded with an extension attribute to 1023 bytes it is
	 * still parsed (and fails on the proof, made without the padding); at
	 * 1024 and beyond it is refused outright.
	 */
	for (int total = SCRAM_MSG_MAX - 1; total <= SCRAM_MSG_MAX + 1; total++)
	{
		int			head = snprintf(m, sizeof(m), "c=biws,r=%s,x=", f.nonce);
		int			tail = 3 + (int) strlen(proof);

		memset(m + head, 'x', total - tail - head);
		snprintf(m + total - tail, sizeof(m) - (total - tail), ",p=%s", proof);
		CHECK((int) strlen(m) == total);
		check_final(__LINE__, &f, m, total, total < SCRAM_MSG_MAX ? 0 : -1, NULL);
	}
	check_final(__LINE__, &f, f.cfinal, -1, -1, NULL);

	/* a client that said "y,," must bind with base64("y,,") = eSws */
	CHECK(final_fixture(&f, "y"));
	proof = f.cfinal + f.wp_len + 3;
	FINAL(-1, "channel binding", "c=biws,r=%s,p=%s", f.nonce, proof);
	/* (right binding, but the proof was made over c=biws) */
	FINAL(0, NULL, "c=eSws,r=%s,p=%s", f.nonce, proof);
#undef FINAL
}

/*
 * The client's proof as base64 of every length and shape around the
 * 44-character encoding of 32 bytes: padding missing, doubled or in the
 * middle, characters outside the alphabet, whitespace (PostgreSQL's decoder
 * refuses it, as the SCRAM grammar does). Anything that does not decode to
 * exactly 32 bytes is a malformed message (-1), never a success, and never a
 * read outside the message (the copies are exact-size for ASan).
 */
static void
test_server_final_odd_base64(void)
{
	FinalFixture f;
	char		m[2 * SCRAM_MSG_MAX];
	char		p[256];
	const char *proof;
	int			n;

	CHECK(final_fixture(&f, "n"));
	proof = f.cfinal + f.wp_len + 3;
	CHECK(strlen(proof) == 44);

	/* every prefix of the real proof, and the proof with 1..8 characters added */
	for (int len = 0; len <= 52; len++)
	{
		if (len == 44)
			continue;
		memset(p, 'A', sizeof(p));
		memcpy(p, proof, len < 44 ? len : 44);
		p[len] = '\0';
		n = snprintf(m, sizeof(m), "%.*s,p=%s", f.wp_len, f.cfinal, p);
		check_final(__LINE__, &f, m, n, -1, NULL);
	}
	/* padding: missing, extra, in the middle */
	n = snprintf(m, sizeof(m), "%.*s,p=%.43s", f.wp_len, f.cfinal, proof);
	check_final(__LINE__, &f, m, n, -1, NULL);
	n = snprintf(m, sizeof(m), "%.*s,p=%s=", f.wp_len, f.cfinal, proof);
	check_final(__LINE__, &f, m, n, -1, NULL);
	n = snprintf(m, sizeof(m), "%.*s,p=%.20s=%s", f.wp_len, f.cfinal, proof, proof + 21);
	check_final(__LINE__, &f, m, n, -1, NULL);
	n = snprintf(m, sizeof(m), "%.*s,p====", f.wp_len, f.cfinal);
	check_final(__LINE__, &f, m, n, -1, NULL);
	/* a character outside the alphabet */
	n = snprintf(m, sizeof(m), "%.*s,p=%.10s*%s", f.wp_len, f.cfinal, proof, proof + 11);
	check_final(__LINE__, &f, m, n, -1, NULL);
	n = snprintf(m, sizeof(m), "%.*s,p=%.10s\xff%s", f.wp_len, f.cfinal, proof, proof + 11);
	check_final(__LINE__, &f, m, n, -1, NULL);
	/* whitespace inside */
	n = snprintf(m, sizeof(m), "%.*s,p=%.22s %s", f.wp_len, f.cfinal, proof, proof + 22);
	check_final(__LINE__, &f, m, n, -1, NULL);
	n = snprintf(m, sizeof(m), "%.*s,p=%s\n", f.wp_len, f.cfinal, proof);
	check_final(__LINE__, &f, m, n, -1, NULL);
	/* a huge proof: refused by length before decoding */
	n = snprintf(m, sizeof(m), "%.*s,p=", f.wp_len, f.cfinal);
	memset(m + n, 'A', sizeof(m) - n - 1);
	m[sizeof(m) - 1] = '\0';
	check_final(__LINE__, &f, m, sizeof(m) - 1, -1, NULL);
	/* a channel-binding attribute of odd length */
	n = snprintf(m, sizeof(m), "c=biw,r=%s,p=%s", f.nonce, proof);
	check_final(__LINE__, &f, m, n, -1, "channel binding");
	n = snprintf(m, sizeof(m), "c=biws=,r=%s,p=%s", f.nonce, proof);
	check_final(__LINE__, &f, m, n, -1, "channel binding");
}

/* The server's final answer must fit the caller's buffer; no key escapes otherwise. */
static void
test_server_final_small_out(void)
{
	FinalFixture f;
	ScramServer srv;
	char		out[SCRAM_MSG_MAX];
	uint8		key[SCRAM_KEY_BYTES];
	uint8		untouched[SCRAM_KEY_BYTES];
	const char *err = NULL;

	CHECK(final_fixture(&f, "n"));
	memset(key, 0x11, sizeof(key));
	memset(untouched, 0x11, sizeof(untouched));
	srv = f.srv;
	CHECK(scram_server_final(&srv, f.cfinal, f.cfinal_len, out, 46, key, &err) == -1);
	CHECK_BYTES(key, SCRAM_KEY_BYTES, untouched, SCRAM_KEY_BYTES);
	CHECK(scram_server_final(&srv, f.cfinal, f.cfinal_len, out, 47, key, &err) == 1);
	CHECK(strlen(out) == 46 && strncmp(out, "v=", 2) == 0);
	CHECK_BYTES(key, SCRAM_KEY_BYTES, f.keys.client_key, SCRAM_KEY_BYTES);
}

/* ------------------------------------------------------------- fuzzing */

#define FUZZ_ROUNDS 20000
#define FUZZ_CAP (4 * SCRAM_MSG_MAX)

static uint64_t fuzz_state;

/* xorshift64: a fixed seed gives the same run every time. */
static uint32_t
fuzz_next(void)
{
	fuzz_state ^= fuzz_state << 13;
	fuzz_state ^= fuzz_state >> 7;
	fuzz_state ^= fuzz_state << 17;
	return (uint32_t) (fuzz_state >> 16);
}

static int
fuzz_below(int n)
{
	return n > 0 ? (int) (fuzz_next() % (uint32_t) n) : 0;
}

/* Bytes that mean something to a SCRAM parser, plus a few that must never be accepted. */
static const char fuzz_bytes[] = ",=nyparmcsvxi biwsAZaz09+/\t\x01\x7f\x80\xff";
#define FUZZ_NBYTES ((int) sizeof(fuzz_bytes))	/* includes the NUL */

/* Apply 1-3 random edits to src[0..len) into dst (capacity FUZZ_CAP); returns the new length. */
static int
fuzz_mutate(const char *src, int len, char *dst)
{
	int			n = len;
	int			edits = 1 + fuzz_below(3);

	memcpy(dst, src, len);
	while (edits-- > 0)
	{
		int			op = fuzz_below(14);
		int			pos = fuzz_below(n + 1);

		switch (op)
		{
			case 0:
			case 1:
			case 2:				/* overwrite with any byte */
				if (n > 0)
					dst[fuzz_below(n)] = (char) fuzz_next();
				break;
			case 3:
			case 4:
			case 5:				/* overwrite with a meaningful byte */
				if (n > 0)
					dst[fuzz_below(n)] = fuzz_bytes[fuzz_below(FUZZ_NBYTES)];
				break;
			case 6:
			case 7:				/* insert a meaningful byte */
				if (n < FUZZ_CAP)
				{
					memmove(dst + pos + 1, dst + pos, n - pos);
					dst[pos] = fuzz_bytes[fuzz_below(FUZZ_NBYTES)];
					n++;
				}
				break;
			case 8:
			case 9:				/* delete a few bytes */
				{
					int			k = 1 + fuzz_below(4);

					if (pos + k > n)
						k = n - pos;
					memmove(dst + pos, dst + pos + k, n - pos - k);
					n -= k;
				}
				break;
			case 10:			/* truncate */
				n = pos;
				break;
			case 11:
			case 12:			/* copy a short piece of the message elsewhere */
				if (n > 0)
				{
					int			from = fuzz_below(n);
					int			k = 1 + fuzz_below(16);
					char		piece[16];

					if (from + k > n)
						k = n - from;
					if (n + k <= FUZZ_CAP)
					{
						memcpy(piece, dst + from, k);
						memmove(dst + pos + k, dst + pos, n - pos);
						memcpy(dst + pos, piece, k);
						n += k;
					}
				}
				break;
			default:			/* a long run of one byte: around and past the size limit */
				{
					int			k = 1 + fuzz_below(SCRAM_MSG_MAX + 64);
					char		c = fuzz_bytes[fuzz_below(FUZZ_NBYTES)];

					if (n + k <= FUZZ_CAP)
					{
						memmove(dst + pos + k, dst + pos, n - pos);
						memset(dst + pos, c, k);
						n += k;
					}
				}
				break;
		}
	}
	return n;
}

/*
 * Reference model of an acceptable client-first message, written apart from
 * scram.c: "n,," or "y,," then "n=<name>," then "r=<nonce>" where the nonce
 * runs to the next comma or the end and is 1-128 printable non-comma ASCII
 * characters; anything may follow. No NULs, shorter than SCRAM_MSG_MAX.
 * Returns the nonce length, or 0 when the message must be refused.
 */
static int
ref_client_first(const char *m, int len, const char **nonce)
{
	int			i;
	int			start;

	if (len < 1 || len >= SCRAM_MSG_MAX || memchr(m, '\0', len) != NULL)
		return 0;
	if (len < 5 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',' || m[2] != ',' || m[3] != 'n' ||
		m[4] != '=')
		return 0;
	for (i = 5; i < len && m[i] != ','; i++)
		;
	if (i + 3 > len || m[i + 1] != 'r' || m[i + 2] != '=')
		return 0;
	start = i + 3;
	for (i = start; i < len && m[i] != ','; i++)
		if ((unsigned char) m[i] < 0x21 || (unsigned char) m[i] > 0x7e)
			return 0;
	if (i == start || i - start > 128)
		return 0;
	*nonce = m + start;
	return i - start;
}

static void
test_fuzz_server_first(void)
{
	static const char *const seeds[] = {
		"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL",
		"y,,n=user,r=3rfcNHYJY1ZVvWVs7j,ext=1",
		"n,,n=a=2Cb,r=%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	};
	ScramServer base;
	char	   *mutated = malloc(FUZZ_CAP);
	int			seen_ok = 0;
	int			seen_refused = 0;

	CHECK(server_with_real_secret(&base));
	fuzz_state = 0x9E3779B97F4A7C15ULL;
	for (int round = 0; round < FUZZ_ROUNDS; round++)
	{
		const char *seed = seeds[round % lengthof(seeds)];
		int			len = round % 997 == 0 ? (int) strlen(seed) : fuzz_mutate(seed, strlen(seed), mutated);
		char	   *msg = heap_copy(round % 997 == 0 ? seed : mutated, len);
		ScramServer srv = base;
		char		out[SCRAM_MSG_MAX];
		const char *err = NULL;
		const char *nonce = NULL;
		int			nonce_len = ref_client_first(msg, len, &nonce);
		int			rc = scram_server_first(&srv, msg, len, out, sizeof(out), &err);

		CHECK(rc == -1 || rc == 1);
		CHECK(rc == (nonce_len > 0 ? 1 : -1));
		if (rc == -1)
		{
			CHECK(err != NULL && err[0] != '\0');
			seen_refused++;
		}
		else if (rc == 1 && nonce_len > 0)
		{
			/* the answer extends exactly the client's nonce */
			CHECK(strncmp(out, "r=", 2) == 0 && memcmp(out + 2, nonce, nonce_len) == 0 &&
				  out[2 + nonce_len] != ',' && strstr(out, ",s=") != NULL);
			seen_ok++;
		}
		free(msg);
	}
	/* the mutations reached both outcomes often */
	CHECK(seen_ok > 1000 && seen_refused > 1000);
	free(mutated);
}

/*
 * Does msg carry the original client-final-without-proof and a proof that
 * decodes to the original bytes? Base64 decoding skips whitespace and
 * ignores the unused low bits of the last character, so such a message can
 * differ from the original and still be the same proof.
 */
static bool
same_proof(const FinalFixture *f, const char *msg, int len)
{
	char		decoded[128];
	int			n;

	if (len <= f->wp_len + 3 || memcmp(msg, f->cfinal, f->wp_len + 3) != 0)
		return false;
	if (pg_b64_dec_len(len - f->wp_len - 3) > (int) sizeof(decoded))
		return false;
	n = pgbun_b64_decode(msg + f->wp_len + 3, len - f->wp_len - 3, decoded, sizeof(decoded));
	return n == SCRAM_KEY_BYTES && memcmp(decoded, f->proof, SCRAM_KEY_BYTES) == 0;
}

static void
test_fuzz_server_final(void)
{
	FinalFixture f;
	char	   *mutated = malloc(FUZZ_CAP);
	int			seen[3] = {0, 0, 0};

	CHECK(final_fixture(&f, "n"));
	fuzz_state = 0xD1B54A32D192ED03ULL;
	for (int round = 0; round < FUZZ_ROUNDS; round++)
	{
		bool		untouched = round % 997 == 0;
		int			len = untouched ? f.cfinal_len : fuzz_mutate(f.cfinal, f.cfinal_len, mutated);
		char	   *msg = heap_copy(untouched ? f.cfinal : mutated, len);
		ScramServer srv = f.srv;
		char		out[SCRAM_MSG_MAX];
		uint8		key[SCRAM_KEY_BYTES];
		const char *err = NULL;
		int			rc = scram_server_final(&srv, msg, len, out, sizeof(out), key, &err);

		CHECK(rc == -1 || rc == 0 || rc == 1);
		if (rc == -1)
			CHECK(err != NULL && err[0] != '\0');
		if (untouched)
			CHECK(rc == 1);
		if (rc == 1)
		{
			/* success only for the real message (or the same proof spelled differently) */
			CHECK(untouched || (len == f.cfinal_len && memcmp(msg, f.cfinal, len) == 0) ||
				  same_proof(&f, msg, len));
			CHECK_BYTES(key, SCRAM_KEY_BYTES, f.keys.client_key, SCRAM_KEY_BYTES);
		}
		if (rc >= -1 && rc <= 1)
			seen[rc + 1]++;
		free(msg);
	}
	/* every outcome was reached: refusals, wrong proofs, and each untouched round */
	CHECK(seen[0] > FUZZ_ROUNDS / 2 && seen[1] > 300 && seen[2] > FUZZ_ROUNDS / 997);
	free(mutated);
}

/* The client's half against random server-first messages: never crashes, only -1/1. */
static void
test_fuzz_client_final(void)
{
	ScramClient cl;
	char		seed[256];
	char	   *mutated = malloc(FUZZ_CAP);
	int			seed_len;

	memset(&cl, 0, sizeof(cl));
	CHECK(scram_client_first(&cl, seed, sizeof(seed)));
	seed_len = snprintf(seed, sizeof(seed), "r=%sc2VydmVyLW5vbmNl,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
						cl.client_nonce);
	fuzz_state = 0x2545F4914F6CDD1DULL;
	for (int round = 0; round < FUZZ_ROUNDS / 4; round++)
	{
		int			len = fuzz_mutate(seed, seed_len, mutated);
		char	   *msg = heap_copy(mutated, len);
		char		out[SCRAM_MSG_MAX];
		const char *err = NULL;
		int			rc = scram_client_final(&cl, msg, len, out, sizeof(out), &err);

		CHECK(rc == -1 || rc == 1);
		if (rc == -1)
			CHECK(err != NULL && err[0] != '\0');
		else
			CHECK(strncmp(out, "c=biws,r=", 9) == 0 && strstr(out, ",p=") != NULL);
		(void) scram_client_verify_final(&cl, msg, len);
		free(msg);
	}
	free(mutated);
}

/* ---------------------------------------------------------------- md5 */

static void
test_md5_hex(void)
{
	char		hex[33];

	CHECK(pgbun_md5_hex("", 0, hex) && strcmp(hex, "d41d8cd98f00b204e9800998ecf8427e") == 0);
	CHECK(pgbun_md5_hex("abc", 3, hex) && strcmp(hex, "900150983cd24fb0d6963f7d28e17f72") == 0);
}

/*
 * hba "password": a cleartext password checked against a verifier built by
 * PostgreSQL's own scram_build_secret; the ClientKey it yields is the one
 * the verifier's StoredKey hashes.
 */
static void
test_check_password(void)
{
	const char	salt[] = "0123456789abcdef";
	const char *err = NULL;
	char	   *verifier = scram_build_secret(salt, 16, 4096, "s3cret pw", &err);
	ScramSecret secret;
	uint8_t		key[SCRAM_KEY_BYTES];
	uint8_t		stored[SCRAM_KEY_BYTES];
	unsigned int len = 0;

	CHECK(verifier != NULL);
	CHECK(scram_parse_secret(verifier, &secret));
	memset(key, 0, sizeof(key));
	CHECK(scram_check_password(&secret, "s3cret pw", key));
	CHECK(EVP_Digest(key, SCRAM_KEY_BYTES, stored, &len, EVP_sha256(), NULL) == 1);
	CHECK(memcmp(stored, secret.stored_key, SCRAM_KEY_BYTES) == 0);
	CHECK(!scram_check_password(&secret, "s3cret pW", key));
	CHECK(!scram_check_password(&secret, "", key));
	free(verifier);
}

/*
 * Long cleartext passwords (PgBouncer 1.25.0 fixed a crash with passwords of
 * 1024 bytes or more). PostgreSQL sets and checks passwords of any length,
 * so pgbun must too: no fixed-size copy of the password anywhere on the way
 * (pg_saslprep, PBKDF2). The verifiers come from libpgcommon.
 */
static void
test_check_password_long(void)
{
	static const int lens[] = {1023, 1024, 1025, 2000, 9000, 70000};
	const char	salt[] = "0123456789abcdef";

	for (int i = 0; i < (int) lengthof(lens); i++)
	{
		const char *err = NULL;
		char	   *pw = malloc(lens[i] + 1);
		char	   *verifier;
		ScramSecret secret;
		uint8_t		key[SCRAM_KEY_BYTES];

		memset(pw, 'x', lens[i]);
		pw[lens[i]] = '\0';
		verifier = scram_build_secret(salt, 16, 4096, pw, &err);
		CHECK(verifier != NULL);
		CHECK(verifier && scram_parse_secret(verifier, &secret));
		CHECK(scram_check_password(&secret, pw, key));
		pw[lens[i] - 1] = 'y';
		CHECK(!scram_check_password(&secret, pw, key));
		free(verifier);
		free(pw);
	}
}

/* ------------------------------------------------------ channel binding */

static const char cb_header[] = "p=tls-server-end-point,,";

/* A server that offered SCRAM-SHA-256-PLUS (plus: the client chose it) with cbind 0x5a * 32. */
static bool
server_with_binding(ScramServer *srv, bool plus)
{
	if (!server_with_real_secret(srv))
		return false;
	srv->cbind_offered = true;
	srv->plus = plus;
	memset(srv->cbind_data, 0x5a, 32);
	srv->cbind_len = 32;
	return true;
}

/*
 * A SCRAM-SHA-256-PLUS exchange by a client that binds to cbind (len
 * bytes): what scram_server_final says, the recovered key in *recovered.
 */
static int
plus_exchange(ScramServer *srv, const TestKeys *k, const uint8 *cbind, int len, uint8 *recovered)
{
	char		cfirst[SCRAM_MSG_MAX];
	char		sfirst[SCRAM_MSG_MAX];
	char		without_proof[SCRAM_MSG_MAX];
	char		cfinal[SCRAM_MSG_MAX];
	char		sfinal[SCRAM_MSG_MAX];
	char		authmsg[3 * SCRAM_MSG_MAX];
	uint8		cbind_input[128];
	char		c_b64[256];
	uint8		sig[SCRAM_KEY_BYTES];
	uint8		proof[SCRAM_KEY_BYTES];
	char		proof_b64[64];
	unsigned int siglen = 0;
	const char *err = NULL;
	const char *r;
	int			n;

	snprintf(cfirst, sizeof(cfirst), "%sn=,r=clientnonce", cb_header);
	if (scram_server_first(srv, cfirst, strlen(cfirst), sfirst, sizeof(sfirst), &err) != 1)
		return -2;
	memcpy(cbind_input, cb_header, strlen(cb_header));
	memcpy(cbind_input + strlen(cb_header), cbind, len);
	n = pgbun_b64_encode(cbind_input, strlen(cb_header) + len, c_b64, sizeof(c_b64));
	c_b64[n] = '\0';
	r = sfirst + 2;
	snprintf(without_proof, sizeof(without_proof), "c=%s,r=%.*s", c_b64,
			 (int) (strchr(sfirst, ',') - r), r);
	snprintf(authmsg, sizeof(authmsg), "n=,r=clientnonce,%s,%s", sfirst, without_proof);
	HMAC(EVP_sha256(), k->stored_key, SCRAM_KEY_BYTES, (const uint8 *) authmsg, strlen(authmsg),
		 sig, &siglen);
	for (int i = 0; i < SCRAM_KEY_BYTES; i++)
		proof[i] = k->client_key[i] ^ sig[i];
	n = pgbun_b64_encode(proof, SCRAM_KEY_BYTES, proof_b64, sizeof(proof_b64));
	proof_b64[n] = '\0';
	snprintf(cfinal, sizeof(cfinal), "%s,p=%s", without_proof, proof_b64);
	return scram_server_final(srv, cfinal, strlen(cfinal), sfinal, sizeof(sfinal), recovered, &err);
}

static void
test_channel_binding(void)
{
	ScramServer srv;
	TestKeys	k;
	uint8		recovered[SCRAM_KEY_BYTES];
	uint8		good[32];
	uint8		bad[32];

	memset(good, 0x5a, sizeof(good));
	memset(bad, 0x5b, sizeof(bad));
	CHECK(derive_keys("password", &k));

	/* bound to pgbun's certificate hash: accepted, and the ClientKey comes out */
	CHECK(server_with_binding(&srv, true));
	memset(recovered, 0, sizeof(recovered));
	CHECK(plus_exchange(&srv, &k, good, 32, recovered) == 1);
	CHECK_BYTES(recovered, SCRAM_KEY_BYTES, k.client_key, SCRAM_KEY_BYTES);
	/* another certificate's hash (a man in the middle), or a short one: refused */
	CHECK(server_with_binding(&srv, true));
	CHECK(plus_exchange(&srv, &k, bad, 32, recovered) == -1);
	CHECK(server_with_binding(&srv, true));
	CHECK(plus_exchange(&srv, &k, good, 31, recovered) == -1);
}

/* The gs2 channel-binding flag against what was offered and chosen. */
static void
test_channel_binding_flags(void)
{
	static const struct
	{
		bool		offered;
		bool		plus;
		const char *msg;
		int			want;
	}			cases[] = {
		{false, false, "n,,n=,r=abc", 1},
		{false, false, "y,,n=,r=abc", 1},	/* client could bind, we cannot: fine */
		{true, false, "n,,n=,r=abc", 1},	/* client cannot bind: fine */
		{true, false, "y,,n=,r=abc", -1},	/* we offered binding: a downgrade */
		{true, true, "n,,n=,r=abc", -1},	/* PLUS chosen without binding */
		{true, true, "y,,n=,r=abc", -1},
		{true, false, "p=tls-server-end-point,,n=,r=abc", -1},	/* binding without PLUS */
		{false, false, "p=tls-server-end-point,,n=,r=abc", -1},
		{true, true, "p=tls-server-end-point,,n=,r=abc", 1},
		{true, true, "p=tls-unique,,n=,r=abc", -1},
		{true, true, "p=tls-server-end-pointX,,n=,r=abc", -1},
		{true, true, "p=tls-server-end-point", -1},
		{true, true, "p=tls-server-end-point,", -1},
		{true, true, "p=,,n=,r=abc", -1},
		{true, true, "p", -1},
	};

	for (int i = 0; i < (int) lengthof(cases); i++)
	{
		ScramServer srv;
		char		out[SCRAM_MSG_MAX];
		const char *err = NULL;
		char	   *copy = heap_copy(cases[i].msg, strlen(cases[i].msg));
		int			rc;

		CHECK(server_with_binding(&srv, cases[i].plus));
		srv.cbind_offered = cases[i].offered;
		rc = scram_server_first(&srv, copy, strlen(cases[i].msg), out, sizeof(out), &err);
		if (rc != cases[i].want)
		{
			unit_fail(__FILE__, __LINE__, "channel-binding flag");
			printf("    case %d: %s -> %d\n", i, cases[i].msg, rc);
		}
		free(copy);
	}
}

/* pgbun_random: fresh bytes every call, across its block's end and beyond a block. */
static void
test_random(void)
{
	uint8		seen[100][18];
	uint8		big[1500];
	uint8		zero[1500];
	bool		dup = false;

	/* 100 nonces of 18 bytes cross the 512-byte block's end three times */
	for (int i = 0; i < 100; i++)
	{
		CHECK(pgbun_random(seen[i], sizeof(seen[i])));
		for (int j = 0; j < i && !dup; j++)
			dup = memcmp(seen[i], seen[j], sizeof(seen[i])) == 0;
	}
	CHECK(!dup);
	memset(big, 0, sizeof(big));
	memset(zero, 0, sizeof(zero));
	CHECK(pgbun_random(big, sizeof(big)));
	CHECK(memcmp(big, zero, 64) != 0 && memcmp(big + sizeof(big) - 64, zero, 64) != 0);
	CHECK(pgbun_random(big, 0));
}

void
scram_suite(void)
{
	UNIT_RUN(test_parse_secret_real);
	UNIT_RUN(test_parse_secret_malformed);
	UNIT_RUN(test_exchange_success);
	UNIT_RUN(test_exchange_messages);
	UNIT_RUN(test_exchange_wrong_password);
	UNIT_RUN(test_exchange_mock);
	UNIT_RUN(test_client_bad_server);
	UNIT_RUN(test_server_first_malformed);
	UNIT_RUN(test_server_final_malformed);
	UNIT_RUN(test_server_final_small_out);
	UNIT_RUN(test_server_final_odd_base64);
	UNIT_RUN(test_client_long_nonce);
	UNIT_RUN(test_fuzz_server_first);
	UNIT_RUN(test_fuzz_server_final);
	UNIT_RUN(test_fuzz_client_final);
	UNIT_RUN(test_md5_hex);
	UNIT_RUN(test_check_password);
	UNIT_RUN(test_check_password_long);
	UNIT_RUN(test_channel_binding);
	UNIT_RUN(test_channel_binding_flags);
	UNIT_RUN(test_random);
}

/*
 * scram.c - SCRAM-SHA-256 exchanges for pgbun (see scram.h).
 */
#include "postgres.h"

#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>

#include "common/base64.h"
#include "common/saslprep.h"

#include "compat.h"
#include "scram.h"

#define SCRAM_NONCE_RAW 18

/*
 * SHA-256 for the exchange's few short hashes. OpenSSL 3 looks an
 * algorithm up in its provider store on every EVP_sha256()-based call (and
 * HMAC() builds a whole EVP_MAC each time): several microseconds per login.
 * The algorithm is fetched once and each thread (the loop, kdf.c's) reuses
 * one digest context; HMAC is the two hashes of RFC 2104 around it.
 */
static const EVP_MD *sha256_algorithm;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static __thread EVP_MD_CTX *sha256_ctx;

static void
sha256_fetch(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	sha256_algorithm = EVP_MD_fetch(NULL, "SHA256", NULL);
#endif
	if (!sha256_algorithm)
		sha256_algorithm = EVP_sha256();
}

/* SHA-256 of a || b (b may be empty). */
static bool
sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t *out)
{
	unsigned int outlen = 0;

	(void) pthread_once(&sha256_once, sha256_fetch);
	if (!sha256_ctx && !(sha256_ctx = EVP_MD_CTX_new()))
		return false;
	return EVP_DigestInit_ex(sha256_ctx, sha256_algorithm, NULL) == 1 &&
		EVP_DigestUpdate(sha256_ctx, a, alen) == 1 &&
		(blen == 0 || EVP_DigestUpdate(sha256_ctx, b, blen) == 1) &&
		EVP_DigestFinal_ex(sha256_ctx, out, &outlen) == 1 && outlen == SCRAM_KEY_BYTES;
}

static bool
sha256(const void *data, size_t len, uint8_t *out)
{
	return sha256_2(data, len, NULL, 0, out);
}

/* HMAC-SHA-256 with a 32-byte key: H((K ^ opad) || H((K ^ ipad) || data)). */
static bool
hmac256(const uint8_t *key, const void *data, size_t len, uint8_t *out)
{
	uint8_t		pad[64];
	uint8_t		inner[SCRAM_KEY_BYTES];
	bool		ok;

	memset(pad, 0x36, sizeof(pad));
	for (int i = 0; i < SCRAM_KEY_BYTES; i++)
		pad[i] ^= key[i];
	ok = sha256_2(pad, sizeof(pad), data, len, inner);
	memset(pad, 0x5c, sizeof(pad));
	for (int i = 0; i < SCRAM_KEY_BYTES; i++)
		pad[i] ^= key[i];
	ok = ok && sha256_2(pad, sizeof(pad), inner, sizeof(inner), out);
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok;
}

/*
 * Random bytes for the loop thread (SCRAM nonces, cancel keys): taken from
 * pg_strong_random a block at a time, since each call costs more than the
 * bytes (OpenSSL's DRBG, a getpid). Handed-out bytes are wiped from the
 * block. Not for kdf.c's threads.
 */
#define RANDOM_BLOCK 512

bool
pgbun_random(void *buf, size_t len)
{
	static uint8_t block[RANDOM_BLOCK];
	static size_t left = 0;
	uint8_t    *dst = buf;

	if (len > RANDOM_BLOCK)
		return pg_strong_random(buf, len);
	while (len > 0)
	{
		size_t		n;

		if (left == 0)
		{
			if (!pg_strong_random(block, sizeof(block)))
				return false;
			left = sizeof(block);
		}
		n = Min(len, left);
		memcpy(dst, block + RANDOM_BLOCK - left, n);
		explicit_bzero(block + RANDOM_BLOCK - left, n);
		left -= n;
		dst += n;
		len -= n;
	}
	return true;
}

bool
pgbun_md5_hex(const void *data, size_t len, char *hex_out)
{
	uint8_t		d[16];
	unsigned int outlen = 0;
	static const char hex[] = "0123456789abcdef";

	if (EVP_Digest(data, len, d, &outlen, EVP_md5(), NULL) != 1 || outlen != 16)
		return false;
	for (int i = 0; i < 16; i++)
	{
		hex_out[2 * i] = hex[d[i] >> 4];
		hex_out[2 * i + 1] = hex[d[i] & 15];
	}
	hex_out[32] = '\0';
	return true;
}

/* Decode base64 into exactly want bytes; false on anything else. */
static bool
b64_decode_exact(const char *src, int len, uint8_t *dst, int want)
{
	char		tmp[128];
	int			n;

	if (len <= 0 || pg_b64_dec_len(len) > (int) sizeof(tmp))
		return false;
	n = pgbun_b64_decode(src, len, tmp, sizeof(tmp));
	if (n != want)
		return false;
	memcpy(dst, tmp, want);
	return true;
}

static int
b64_encode(const uint8_t *src, int len, char *dst, int dstcap)
{
	int			n;

	if (pg_b64_enc_len(len) + 1 > dstcap)
		return -1;
	n = pgbun_b64_encode(src, len, dst, dstcap);
	if (n < 0)
		return -1;
	dst[n] = '\0';
	return n;
}

bool
scram_parse_secret(const char *v, ScramSecret *out)
{
	const char *p;
	const char *salt;
	const char *keys;
	const char *colon;
	char	   *end;
	long		iter;

	if (strncmp(v, "SCRAM-SHA-256$", 14) != 0)
		return false;
	p = v + 14;
	iter = strtol(p, &end, 10);
	if (end == p || *end != ':' || iter <= 0 || iter > INT_MAX)
		return false;
	salt = end + 1;
	keys = strchr(salt, '$');
	if (!keys || keys - salt >= SCRAM_SALT_B64_MAX || keys == salt)
		return false;
	memcpy(out->salt_b64, salt, keys - salt);
	out->salt_b64[keys - salt] = '\0';
	keys++;
	colon = strchr(keys, ':');
	if (!colon)
		return false;
	if (!b64_decode_exact(keys, colon - keys, out->stored_key, SCRAM_KEY_BYTES) ||
		!b64_decode_exact(colon + 1, strlen(colon + 1), out->server_key, SCRAM_KEY_BYTES))
		return false;
	out->iterations = (int) iter;
	return true;
}

void
scram_mock_secret(const char *username, const uint8_t *mock_nonce, int nonce_len, ScramSecret *out)
{
	uint8_t		buf[NAMEDATALEN + 64];
	uint8_t		digest[SCRAM_KEY_BYTES];
	size_t		ulen = strnlen(username, NAMEDATALEN);

	/* Salt derived from the name and a cluster secret: stable per role, like a real one. */
	memcpy(buf, username, ulen);
	memcpy(buf + ulen, mock_nonce, Min(nonce_len, 64));
	if (!sha256(buf, ulen + Min(nonce_len, 64), digest))
		memset(digest, 0, sizeof(digest));
	b64_encode(digest, 16, out->salt_b64, sizeof(out->salt_b64));
	out->iterations = SCRAM_DEFAULT_ITERATIONS;
	pgbun_random(out->stored_key, SCRAM_KEY_BYTES);
	pgbun_random(out->server_key, SCRAM_KEY_BYTES);
}

/* Printable per RFC 5802 for nonces: %x21-2B / %x2D-7E. */
static bool
valid_nonce(const char *s, int len)
{
	if (len <= 0)
		return false;
	for (int i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7E || s[i] == ',')
			return false;
	return true;
}

int
scram_server_first(ScramServer *st, const char *msg, int len, char *out, int outcap, const char **err)
{
	const char *end = msg + len;
	const char *p = msg;
	const char *bare;
	const char *n_attr;
	const char *r_attr;
	const char *r_end;
	uint8_t		raw[SCRAM_NONCE_RAW];
	char		snonce[64];
	int			n;

	*err = "malformed SCRAM message";
	if (len <= 0 || len >= SCRAM_MSG_MAX || memchr(msg, '\0', len))
		return -1;
	/*
	 * gs2-cbind-flag, checked as PostgreSQL does: "p=tls-server-end-point"
	 * exactly when SCRAM-SHA-256-PLUS was chosen; "y" (the client could bind
	 * but thinks we cannot) is a downgrade when we offered binding.
	 */
	if (*p == 'p')
	{
		static const char cb_name[] = "p=tls-server-end-point";

		if (!st->plus)
		{
			*err = st->cbind_offered ?
				"client uses channel binding with SCRAM-SHA-256 instead of SCRAM-SHA-256-PLUS" :
				"channel binding is not supported on this connection (it is not TLS)";
			return -1;
		}
		if (end - p < (int) strlen(cb_name) || memcmp(p, cb_name, strlen(cb_name)) != 0 ||
			(end - p > (int) strlen(cb_name) && p[strlen(cb_name)] != ','))
		{
			*err = "unsupported SCRAM channel-binding type (pgbun supports tls-server-end-point)";
			return -1;
		}
		p += strlen(cb_name);
	}
	else if (st->plus)
	{
		*err = "client selected SCRAM-SHA-256-PLUS without channel binding data";
		return -1;
	}
	else if (*p == 'y' && st->cbind_offered)
	{
		*err = "SCRAM channel binding negotiation error";
		return -1;
	}
	else if (*p == 'n' || *p == 'y')
		p++;
	else
		return -1;
	if (p >= end || *p != ',')
		return -1;
	p++;
	if (p < end && *p == 'a')
	{
		*err = "client uses authorization identity, which is not supported";
		return -1;
	}
	if (p >= end || *p != ',')
		return -1;
	p++;
	if (p - msg >= (int) sizeof(st->gs2_header))
		return -1;
	memcpy(st->gs2_header, msg, p - msg);
	st->gs2_header[p - msg] = '\0';

	bare = p;
	if (end - p >= 2 && p[0] == 'm' && p[1] == '=')
	{
		*err = "client requires an unsupported SCRAM extension";
		return -1;
	}
	/* n=username (ignored: the startup packet's user counts, as in PostgreSQL) */
	if (end - p < 2 || p[0] != 'n' || p[1] != '=')
		return -1;
	n_attr = memchr(p, ',', end - p);
	if (!n_attr)
		return -1;
	p = n_attr + 1;
	if (end - p < 2 || p[0] != 'r' || p[1] != '=')
		return -1;
	r_attr = p + 2;
	r_end = memchr(r_attr, ',', end - r_attr);
	if (!r_end)
		r_end = end;
	if (!valid_nonce(r_attr, r_end - r_attr) || r_end - r_attr > 128)
		return -1;

	memcpy(st->client_first_bare, bare, end - bare);
	st->client_first_bare[end - bare] = '\0';

	if (!pgbun_random(raw, sizeof(raw)) || b64_encode(raw, sizeof(raw), snonce, sizeof(snonce)) < 0)
	{
		*err = "could not generate a nonce";
		return -1;
	}
	n = snprintf(st->nonce, sizeof(st->nonce), "%.*s%s", (int) (r_end - r_attr), r_attr, snonce);
	if (n < 0 || n >= (int) sizeof(st->nonce))
		return -1;
	n = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d",
				 st->nonce, st->secret.salt_b64, st->secret.iterations);
	if (n < 0 || n >= (int) sizeof(st->server_first) || n >= outcap)
		return -1;
	memcpy(out, st->server_first, n + 1);
	return 1;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static int
build_auth_message(char *buf, int cap, const char *cfb, const char *sf, const char *cfwp, int cfwp_len)
{
	int			n = snprintf(buf, cap, "%s,%s,%.*s", cfb, sf, cfwp_len, cfwp);

	return (n < 0 || n >= cap) ? -1 : n;
}

int
scram_server_final(ScramServer *st, const char *msg, int len, char *out, int outcap,
				   uint8_t *client_key_out, const char **err)
{
	const char *end = msg + len;
	const char *proof_attr = NULL;
	const char *p;
	uint8_t		cbind_input[64 + 64];
	int			cbind_input_len;
	char		cbind_expected[192];
	char		authmsg[3 * SCRAM_MSG_MAX];
	int			alen;
	uint8_t		proof[SCRAM_KEY_BYTES];
	uint8_t		sig[SCRAM_KEY_BYTES];
	uint8_t		key[SCRAM_KEY_BYTES];
	uint8_t		stored[SCRAM_KEY_BYTES];
	uint8_t		server_sig[SCRAM_KEY_BYTES];
	char		sig_b64[64];
	const char *r_start;
	const char *r_end;
	int			n;

	*err = "malformed SCRAM message";
	if (len <= 0 || len >= SCRAM_MSG_MAX || memchr(msg, '\0', len))
		return -1;
	/*
	 * c=base64(gs2-header [|| channel-binding data]): the header must match
	 * what the client said first, and with SCRAM-SHA-256-PLUS the data must
	 * be the hash of the certificate pgbun presented on this connection.
	 */
	cbind_input_len = strlen(st->gs2_header);
	memcpy(cbind_input, st->gs2_header, cbind_input_len);
	if (st->plus)
	{
		if (st->cbind_len <= 0 || st->cbind_len > (int) sizeof(st->cbind_data) ||
			cbind_input_len + st->cbind_len > (int) sizeof(cbind_input))
			return -1;
		memcpy(cbind_input + cbind_input_len, st->cbind_data, st->cbind_len);
		cbind_input_len += st->cbind_len;
	}
	if (b64_encode(cbind_input, cbind_input_len, cbind_expected, sizeof(cbind_expected)) < 0)
		return -1;
	if (end - msg < 2 || msg[0] != 'c' || msg[1] != '=')
		return -1;
	p = memchr(msg, ',', len);
	if (!p || p - (msg + 2) != (int) strlen(cbind_expected) ||
		memcmp(msg + 2, cbind_expected, p - (msg + 2)) != 0)
	{
		*err = "SCRAM channel binding check failed";
		return -1;
	}
	p++;
	if (end - p < 2 || p[0] != 'r' || p[1] != '=')
		return -1;
	r_start = p + 2;
	r_end = memchr(r_start, ',', end - r_start);
	if (!r_end)
		return -1;
	if (r_end - r_start != (int) strlen(st->nonce) || memcmp(r_start, st->nonce, r_end - r_start) != 0)
	{
		*err = "SCRAM nonce mismatch";
		return -1;
	}
	/* the proof is the last attribute */
	for (p = end - 1; p >= r_end; p--)
		if (*p == ',' && end - p > 3 && p[1] == 'p' && p[2] == '=')
		{
			proof_attr = p;
			break;
		}
	if (!proof_attr)
		return -1;
	if (!b64_decode_exact(proof_attr + 3, end - (proof_attr + 3), proof, SCRAM_KEY_BYTES))
		return -1;

	alen = build_auth_message(authmsg, sizeof(authmsg), st->client_first_bare, st->server_first,
							  msg, proof_attr - msg);
	if (alen < 0)
		return -1;

	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); check H(ClientKey) */
	if (!hmac256(st->secret.stored_key, authmsg, alen, sig))
	{
		*err = "could not compute SCRAM signature";
		return -1;
	}
	for (int i = 0; i < SCRAM_KEY_BYTES; i++)
		key[i] = proof[i] ^ sig[i];
	if (!sha256(key, SCRAM_KEY_BYTES, stored))
		return -1;
	if (CRYPTO_memcmp(stored, st->secret.stored_key, SCRAM_KEY_BYTES) != 0 || st->mock)
		return 0;

	if (!hmac256(st->secret.server_key, authmsg, alen, server_sig) ||
		b64_encode(server_sig, SCRAM_KEY_BYTES, sig_b64, sizeof(sig_b64)) < 0)
		return -1;
	n = snprintf(out, outcap, "v=%s", sig_b64);
	if (n < 0 || n >= outcap)
		return -1;
	memcpy(client_key_out, key, SCRAM_KEY_BYTES);
	return 1;
}

bool
scram_client_first(ScramClient *st, char *out, int outcap)
{
	uint8_t		raw[SCRAM_NONCE_RAW];
	int			n;

	if (!pg_strong_random(raw, sizeof(raw)) ||
		b64_encode(raw, sizeof(raw), st->client_nonce, sizeof(st->client_nonce)) < 0)
		return false;
	/* PostgreSQL takes the user from the startup packet; the SCRAM name stays empty. */
	n = snprintf(st->client_first_bare, sizeof(st->client_first_bare), "n=,r=%s", st->client_nonce);
	if (n < 0 || n >= (int) sizeof(st->client_first_bare))
		return false;
	n = snprintf(out, outcap, "n,,%s", st->client_first_bare);
	return n > 0 && n < outcap;
}

int
scram_client_final(ScramClient *st, const char *sf, int len, char *out, int outcap, const char **err)
{
	char		server_first[SCRAM_MSG_MAX];
	char		without_proof[SCRAM_MSG_MAX];
	char		authmsg[3 * SCRAM_MSG_MAX];
	uint8_t		stored[SCRAM_KEY_BYTES];
	uint8_t		sig[SCRAM_KEY_BYTES];
	uint8_t		proof[SCRAM_KEY_BYTES];
	char		proof_b64[64];
	const char *r_end;
	int			wlen;
	int			alen;
	int			n;

	*err = "malformed SCRAM message from server";
	if (len <= 0 || len >= SCRAM_MSG_MAX || memchr(sf, '\0', len))
		return -1;
	memcpy(server_first, sf, len);
	server_first[len] = '\0';
	if (strncmp(server_first, "r=", 2) != 0)
		return -1;
	if (strncmp(server_first + 2, st->client_nonce, strlen(st->client_nonce)) != 0)
	{
		*err = "server's SCRAM nonce does not extend pgbun's";
		return -1;
	}
	r_end = strchr(server_first, ',');
	if (!r_end || strstr(r_end, ",s=") == NULL || strstr(r_end, ",i=") == NULL)
		return -1;

	/* c=biws is base64("n,,"): no channel binding on this leg */
	wlen = snprintf(without_proof, sizeof(without_proof), "c=biws,r=%.*s",
					(int) (r_end - (server_first + 2)), server_first + 2);
	if (wlen < 0 || wlen >= (int) sizeof(without_proof))
		return -1;
	alen = build_auth_message(authmsg, sizeof(authmsg), st->client_first_bare, server_first,
							  without_proof, wlen);
	if (alen < 0)
		return -1;
	if (!sha256(st->client_key, SCRAM_KEY_BYTES, stored) ||
		!hmac256(stored, authmsg, alen, sig) ||
		!hmac256(st->server_key, authmsg, alen, st->expected_server_sig))
	{
		*err = "could not compute SCRAM proof";
		return -1;
	}
	for (int i = 0; i < SCRAM_KEY_BYTES; i++)
		proof[i] = st->client_key[i] ^ sig[i];
	if (b64_encode(proof, SCRAM_KEY_BYTES, proof_b64, sizeof(proof_b64)) < 0)
		return -1;
	n = snprintf(out, outcap, "%s,p=%s", without_proof, proof_b64);
	return (n > 0 && n < outcap) ? 1 : -1;
}

bool
scram_client_verify_final(ScramClient *st, const char *msg, int len)
{
	uint8_t		got[SCRAM_KEY_BYTES];

	if (len < 3 || msg[0] != 'v' || msg[1] != '=')
		return false;
	if (!b64_decode_exact(msg + 2, len - 2, got, SCRAM_KEY_BYTES))
		return false;
	return CRYPTO_memcmp(got, st->expected_server_sig, SCRAM_KEY_BYTES) == 0;
}

/*
 * The thread-safe part of a cleartext password check: PBKDF2, ClientKey,
 * StoredKey, compare. Only OpenSSL, no PostgreSQL calls, no allocation (kdf.c
 * runs it on its own threads).
 */
bool
scram_password_key(const char *pw, size_t pwlen, const uint8_t *salt, int salt_len, int iterations,
				   const uint8_t *stored_key, uint8_t *client_key_out)
{
	uint8_t		salted[SCRAM_KEY_BYTES];
	uint8_t		client_key[SCRAM_KEY_BYTES];
	uint8_t		stored[SCRAM_KEY_BYTES];
	bool		ok;

	ok = PKCS5_PBKDF2_HMAC(pw, pwlen, salt, salt_len, iterations, EVP_sha256(),
						   SCRAM_KEY_BYTES, salted) == 1 &&
		hmac256(salted, "Client Key", strlen("Client Key"), client_key) &&
		sha256(client_key, SCRAM_KEY_BYTES, stored) &&
		CRYPTO_memcmp(stored, stored_key, SCRAM_KEY_BYTES) == 0;
	OPENSSL_cleanse(salted, sizeof(salted));
	if (ok)
		memcpy(client_key_out, client_key, SCRAM_KEY_BYTES);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

char *
scram_password_inputs(const ScramSecret *secret, const char *password, uint8_t *salt, int *salt_len)
{
	char		tmp[SCRAM_SALT_B64_MAX];
	char	   *prepared = NULL;
	char	   *copy;
	int			n;

	if (pg_b64_dec_len(strlen(secret->salt_b64)) > (int) sizeof(tmp))
		return NULL;
	n = pgbun_b64_decode(secret->salt_b64, strlen(secret->salt_b64), tmp, sizeof(tmp));
	if (n <= 0)
		return NULL;
	memcpy(salt, tmp, n);
	*salt_len = n;
	/* as PostgreSQL: SASLprep the password when it can be, else use it as is */
	if (pg_saslprep(password, &prepared) == SASLPREP_SUCCESS)
	{
		copy = strdup(prepared);
		/* common/saslprep.c allocates with palloc in the server, malloc in the unit tests */
#ifdef PGBUN_UNIT_TEST
		free(prepared);
#else
		pfree(prepared);
#endif
	}
	else
		copy = strdup(password);
	return copy;
}

bool
scram_check_password(const ScramSecret *secret, const char *password, uint8_t *client_key_out)
{
	uint8_t		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	char	   *pw = scram_password_inputs(secret, password, salt, &salt_len);
	bool		ok;

	if (!pw)
		return false;
	ok = scram_password_key(pw, strlen(pw), salt, salt_len, secret->iterations, secret->stored_key,
							client_key_out);
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
	return ok;
}

bool
scram_keys_from_password(const char *password, const char *salt_b64, int iterations,
						 uint8_t *client_key_out, uint8_t *server_key_out)
{
	ScramSecret secret;
	uint8_t		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	char	   *pw;
	bool		ok;

	if (strlen(salt_b64) >= sizeof(secret.salt_b64) || iterations < 1 || iterations > 10000000)
		return false;
	memset(&secret, 0, sizeof(secret));
	strlcpy(secret.salt_b64, salt_b64, sizeof(secret.salt_b64));
	secret.iterations = iterations;
	pw = scram_password_inputs(&secret, password, salt, &salt_len);
	if (!pw)
		return false;
	ok = scram_salted_keys(pw, strlen(pw), salt, salt_len, iterations, client_key_out, server_key_out);
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
	return ok;
}

/*
 * The thread-safe half of scram_keys_from_password: PBKDF2, then ClientKey
 * and ServerKey. Only OpenSSL, no PostgreSQL calls, no allocation.
 */
bool
scram_salted_keys(const char *pw, size_t pwlen, const uint8_t *salt, int salt_len, int iterations,
				  uint8_t *client_key_out, uint8_t *server_key_out)
{
	uint8_t		salted[SCRAM_KEY_BYTES];
	bool		ok;

	ok = PKCS5_PBKDF2_HMAC(pw, pwlen, salt, salt_len, iterations, EVP_sha256(),
						   SCRAM_KEY_BYTES, salted) == 1 &&
		hmac256(salted, "Client Key", strlen("Client Key"), client_key_out) &&
		hmac256(salted, "Server Key", strlen("Server Key"), server_key_out);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

bool
scram_secret_salt(ScramSecret *out)
{
	uint8_t		salt[16];

	memset(out, 0, sizeof(*out));
	if (!pg_strong_random(salt, sizeof(salt)) ||
		b64_encode(salt, sizeof(salt), out->salt_b64, sizeof(out->salt_b64)) < 0)
		return false;
	out->iterations = 4096;		/* PostgreSQL's scram_iterations default */
	return true;
}

bool
scram_secret_keys(ScramSecret *secret, const uint8_t *client_key, const uint8_t *server_key)
{
	memcpy(secret->server_key, server_key, SCRAM_KEY_BYTES);
	return sha256(client_key, SCRAM_KEY_BYTES, secret->stored_key);
}

bool
scram_secret_from_password(const char *password, ScramSecret *out)
{
	uint8_t		client_key[SCRAM_KEY_BYTES];
	uint8_t		server_key[SCRAM_KEY_BYTES];
	bool		ok;

	ok = scram_secret_salt(out) &&
		scram_keys_from_password(password, out->salt_b64, out->iterations, client_key, server_key) &&
		scram_secret_keys(out, client_key, server_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	return ok;
}

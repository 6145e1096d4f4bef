/*
 * fuzz_scram_server.c - libFuzzer target: pgbun as the SCRAM server, i.e.
 * the messages a client logging in to pgbun sends (src/scram.c:
 * scram_server_first on client-first-message, scram_server_final on
 * client-final-message).
 *
 * Input: one flag byte, then client-first, a NUL, client-final (the NUL
 * cannot be part of either: both parsers refuse one). Flags: bit 0 the
 * connection is TLS (SCRAM-SHA-256-PLUS offered, a fixed certificate hash
 * for tls-server-end-point), bit 1 the client chose PLUS (only when
 * offered, as client.c allows), bit 2 a mock exchange (unknown role).
 *
 * The verifier is the real one for password "pencil" (salt and iterations
 * as in make_corpus.py) and pg_strong_random is fixed_random.c's, so a seed
 * can hold a complete, valid exchange and the fuzzer mutates from there.
 *
 * Invariants: results are -1 (with an error text), 0 or 1; a reply is a
 * NUL-terminated string that fits the buffer and starts "r=" / "v="; and
 * scram_server_final returns 1 only when the client really proved the
 * password (the ClientKey it hands back is the real one) and never in a
 * mock exchange: anything else would be an authentication bypass.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "scram.h"

#define FUZZ_PASSWORD "pencil"
#define FUZZ_ITERATIONS 4096
static const uint8_t fuzz_salt[16] = "pgbun-fuzz-salt!";
static const char fuzz_salt_b64[] = "cGdidW4tZnV6ei1zYWx0IQ==";

static ScramSecret secret;
static uint8_t real_client_key[SCRAM_KEY_BYTES];

int			LLVMFuzzerInitialize(int *argc, char ***argv);

/* The verifier pg_authid would hold for FUZZ_PASSWORD, and its ClientKey. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t		salted[SCRAM_KEY_BYTES];
	unsigned int n = 0;

	if (PKCS5_PBKDF2_HMAC(FUZZ_PASSWORD, strlen(FUZZ_PASSWORD), fuzz_salt, sizeof(fuzz_salt),
						  FUZZ_ITERATIONS, EVP_sha256(), SCRAM_KEY_BYTES, salted) != 1 ||
		!HMAC(EVP_sha256(), salted, SCRAM_KEY_BYTES, (const uint8_t *) "Client Key", 10,
			  real_client_key, &n) ||
		!HMAC(EVP_sha256(), salted, SCRAM_KEY_BYTES, (const uint8_t *) "Server Key", 10,
			  secret.server_key, &n) ||
		EVP_Digest(real_client_key, SCRAM_KEY_BYTES, secret.stored_key, &n, EVP_sha256(), NULL) != 1)
		abort();
	secret.iterations = FUZZ_ITERATIONS;
	memcpy(secret.salt_b64, fuzz_salt_b64, sizeof(fuzz_salt_b64));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ScramServer st;
	const uint8_t *sep;
	size_t		first_len;
	uint8_t    *first;
	char		reply[SCRAM_MSG_MAX];
	const char *err = NULL;
	uint8_t		key[SCRAM_KEY_BYTES];
	int			rc;

	if (size < 1 || size > 4 * SCRAM_MSG_MAX)
		return 0;
	memset(&st, 0, sizeof(st));
	st.secret = secret;
	if (data[0] & 1)
	{
		st.cbind_offered = true;
		memset(st.cbind_data, 0x42, 32);
		st.cbind_len = 32;
		st.plus = (data[0] & 2) != 0;
	}
	st.mock = (data[0] & 4) != 0;
	data++;
	size--;

	sep = memchr(data, 0, size);
	first_len = sep ? (size_t) (sep - data) : size;
	first = fuzz_copy(data, first_len);
	rc = scram_server_first(&st, (const char *) first, (int) first_len, reply, sizeof(reply), &err);
	free(first);
	FUZZ_ASSERT(rc == -1 || rc == 1);
	if (rc < 0)
	{
		FUZZ_ASSERT(err && err[0]);
		return 0;
	}
	FUZZ_ASSERT(memchr(reply, 0, sizeof(reply)) && strncmp(reply, "r=", 2) == 0);

	if (sep)
	{
		size_t		final_len = size - first_len - 1;
		uint8_t    *final = fuzz_copy(sep + 1, final_len);

		memset(key, 0, sizeof(key));
		err = NULL;
		rc = scram_server_final(&st, (const char *) final, (int) final_len, reply, sizeof(reply), key, &err);
		free(final);
		FUZZ_ASSERT(rc >= -1 && rc <= 1);
		if (rc < 0)
			FUZZ_ASSERT(err && err[0]);
		if (rc == 1)
		{
			FUZZ_ASSERT(!st.mock);
			FUZZ_ASSERT(memcmp(key, real_client_key, SCRAM_KEY_BYTES) == 0);
			FUZZ_ASSERT(memchr(reply, 0, sizeof(reply)) && strncmp(reply, "v=", 2) == 0);
		}
	}
	return 0;
}

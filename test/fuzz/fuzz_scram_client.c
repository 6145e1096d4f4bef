/*
 * fuzz_scram_client.c - libFuzzer target: pgbun as the SCRAM client, i.e.
 * the messages a server sends when pgbun logs in to it with a role's stored
 * ClientKey (src/scram.c: scram_client_final on server-first-message,
 * scram_client_verify_final on server-final-message).
 *
 * Input: server-first, a NUL, server-final. The keys are those of password
 * "pencil" (as in fuzz_scram_server.c and make_corpus.py) and the client
 * nonce comes from fixed_random.c, so a seed holds a complete exchange with
 * a valid server signature. A hostile or broken server controls every byte
 * here (PgBouncer's CVE-2026-6665 was a long server nonce overflowing the
 * client-final buffer).
 *
 * Invariants: scram_client_final gives -1 (with an error text) or 1 with a
 * NUL-terminated client-final that fits the buffer, starts with our
 * "c=biws,r=" + the client nonce and ends with a 44-character proof; the
 * final signature verifies only for "v=" + the expected signature (give or
 * take what PostgreSQL's base64 decoder forgives: the unused bits of the
 * last character).
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"

#include "compat.h"
#include "fuzz.h"
#include "scram.h"

#define FUZZ_PASSWORD "pencil"
#define FUZZ_ITERATIONS 4096
static const uint8_t fuzz_salt[16] = "pgbun-fuzz-salt!";

static uint8_t client_key[SCRAM_KEY_BYTES];
static uint8_t server_key[SCRAM_KEY_BYTES];

int			LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t		salted[SCRAM_KEY_BYTES];
	unsigned int n = 0;

	if (PKCS5_PBKDF2_HMAC(FUZZ_PASSWORD, strlen(FUZZ_PASSWORD), fuzz_salt, sizeof(fuzz_salt),
						  FUZZ_ITERATIONS, EVP_sha256(), SCRAM_KEY_BYTES, salted) != 1 ||
		!HMAC(EVP_sha256(), salted, SCRAM_KEY_BYTES, (const uint8_t *) "Client Key", 10, client_key, &n) ||
		!HMAC(EVP_sha256(), salted, SCRAM_KEY_BYTES, (const uint8_t *) "Server Key", 10, server_key, &n))
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ScramClient st;
	char		first[SCRAM_MSG_MAX];
	char		out[SCRAM_MSG_MAX];
	char		prefix[SCRAM_MSG_MAX];
	const uint8_t *sep;
	size_t		sf_len;
	uint8_t    *sf;
	const char *err = NULL;
	int			rc;

	if (size > 4 * SCRAM_MSG_MAX)
		return 0;
	memset(&st, 0, sizeof(st));
	memcpy(st.client_key, client_key, SCRAM_KEY_BYTES);
	memcpy(st.server_key, server_key, SCRAM_KEY_BYTES);
	FUZZ_ASSERT(scram_client_first(&st, first, sizeof(first)));

	sep = memchr(data, 0, size);
	sf_len = sep ? (size_t) (sep - data) : size;
	sf = fuzz_copy(data, sf_len);
	rc = scram_client_final(&st, (const char *) sf, (int) sf_len, out, sizeof(out), &err);
	free(sf);
	FUZZ_ASSERT(rc == -1 || rc == 1);
	if (rc < 0)
	{
		FUZZ_ASSERT(err && err[0]);
		return 0;
	}
	FUZZ_ASSERT(memchr(out, 0, sizeof(out)));
	snprintf(prefix, sizeof(prefix), "c=biws,r=%s", st.client_nonce);
	FUZZ_ASSERT(strncmp(out, prefix, strlen(prefix)) == 0);
	FUZZ_ASSERT(strlen(out) > 47 && strncmp(out + strlen(out) - 47, ",p=", 3) == 0);

	if (sep)
	{
		size_t		fin_len = size - sf_len - 1;
		uint8_t    *fin = fuzz_copy(sep + 1, fin_len);
		char		got[SCRAM_MSG_MAX];
		uint8_t		sig[SCRAM_MSG_MAX];
		size_t		g = 0;
		bool		ok = scram_client_verify_final(&st, (const char *) fin, (int) fin_len);

		if (ok)
		{
			/*
			 * The whole rest is the signature: 44 base64 characters (the
			 * unused low bits of the last one may differ, as PostgreSQL's
			 * decoder allows), decoding to exactly it.
			 */
			FUZZ_ASSERT(fin_len == 46 && memcmp(fin, "v=", 2) == 0);
			for (size_t i = 2; i < fin_len && g < sizeof(got); i++)
				got[g++] = (char) fin[i];
			FUZZ_ASSERT(g == 44);
			FUZZ_ASSERT(pgbun_b64_decode(got, 44, sig, sizeof(sig)) == SCRAM_KEY_BYTES);
			FUZZ_ASSERT(memcmp(sig, st.expected_server_sig, SCRAM_KEY_BYTES) == 0);
		}
		free(fin);
	}
	return 0;
}

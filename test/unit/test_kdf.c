/*
 * test_kdf.c - unit tests for src/kdf.c: password checks on the thread pool
 * give the same answers as the inline check (RFC 7677's PBKDF2 vector for
 * the key), key derivations the same keys as scram_keys_from_password, both
 * come back through the eventfd, a cancelled job is never delivered, the
 * queue is bounded, and stopping joins the threads.
 */
#include "postgres.h"

#include <setjmp.h>
#include <sys/poll.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kdf.h"
#include "scram.h"
#include "unit.h"

/* PBKDF2-HMAC-SHA256("password", "salt", 4096), RFC 7914 / widely published */
static const uint8 salted_4096[] = {
	0xc5, 0xe4, 0x78, 0xd5, 0x92, 0x88, 0xc8, 0x41, 0xaa, 0x53, 0x0d, 0xb6, 0x84, 0x5c, 0x4c, 0x8d,
	0x96, 0x28, 0x93, 0xa0, 0x01, 0xce, 0x4e, 0x11, 0xa4, 0x96, 0x38, 0x73, 0xaa, 0x98, 0x13, 0x4a};

static int	delivered;
static bool last_ok;
static uint8 last_key[SCRAM_KEY_BYTES];
static uint8 last_server_key[SCRAM_KEY_BYTES];
static bool last_has_server_key;
static void *last_owner;

static void
on_done(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key)
{
	delivered++;
	last_ok = ok;
	last_owner = owner;
	memcpy(last_key, client_key, SCRAM_KEY_BYTES);
	last_has_server_key = server_key != NULL;
	if (server_key)
		memcpy(last_server_key, server_key, SCRAM_KEY_BYTES);
}

/* Collect until want checks were delivered (or 20 s went by). */
static void
wait_delivered(int fd, int want)
{
	for (int i = 0; i < 200 && delivered < want; i++)
	{
		struct pollfd p = {.fd = fd,.events = POLLIN};

		(void) poll(&p, 1, 100);
		(void) kdf_collect();
	}
}

/* StoredKey and ClientKey of a password, the slow way, for the expected answers. */
static void
keys_of(const char *pw, const uint8 *salt, int salt_len, int iterations, uint8 *client_key, uint8 *stored)
{
	uint8		salted[SCRAM_KEY_BYTES];
	unsigned int n = 0;

	CHECK(PKCS5_PBKDF2_HMAC(pw, strlen(pw), salt, salt_len, iterations, EVP_sha256(), SCRAM_KEY_BYTES, salted) == 1);
	CHECK(HMAC(EVP_sha256(), salted, SCRAM_KEY_BYTES, (const uint8 *) "Client Key", 10, client_key, &n) != NULL);
	CHECK(EVP_Digest(client_key, SCRAM_KEY_BYTES, stored, &n, EVP_sha256(), NULL) == 1);
}

static void
test_right_and_wrong(void)
{
	static const uint8 salt[] = "salt";
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		stored[SCRAM_KEY_BYTES];
	uint8		want_key[SCRAM_KEY_BYTES];
	unsigned int n = 0;
	int			fd = kdf_start();
	int			owner = 7;

	CHECK(fd >= 0);
	keys_of("password", salt, 4, 4096, client_key, stored);
	CHECK(HMAC(EVP_sha256(), salted_4096, SCRAM_KEY_BYTES, (const uint8 *) "Client Key", 10, want_key, &n) != NULL);
	CHECK_BYTES(client_key, SCRAM_KEY_BYTES, want_key, SCRAM_KEY_BYTES);

	delivered = 0;
	CHECK(kdf_submit("password", salt, 4, 4096, stored, on_done, &owner) != NULL);
	wait_delivered(fd, 1);
	CHECK(delivered == 1);
	CHECK(last_ok);
	CHECK(last_owner == &owner);
	CHECK(!last_has_server_key);
	CHECK_BYTES(last_key, SCRAM_KEY_BYTES, want_key, SCRAM_KEY_BYTES);

	delivered = 0;
	CHECK(kdf_submit("wrong", salt, 4, 4096, stored, on_done, &owner) != NULL);
	wait_delivered(fd, 1);
	CHECK(delivered == 1);
	CHECK(!last_ok);
	CHECK(kdf_jobs_in_flight() == 0);
}

/* A derivation (no StoredKey): the ClientKey and ServerKey of the password, as inline. */
static void
test_derive(void)
{
	static const uint8 salt[] = "salt";
	uint8		want_client[SCRAM_KEY_BYTES];
	uint8		want_server[SCRAM_KEY_BYTES];
	uint8		inline_client[SCRAM_KEY_BYTES];
	uint8		inline_server[SCRAM_KEY_BYTES];
	unsigned int n = 0;
	int			fd = kdf_start();
	int			owner = 5;

	CHECK(HMAC(EVP_sha256(), salted_4096, SCRAM_KEY_BYTES, (const uint8 *) "Client Key", 10, want_client, &n) != NULL);
	CHECK(HMAC(EVP_sha256(), salted_4096, SCRAM_KEY_BYTES, (const uint8 *) "Server Key", 10, want_server, &n) != NULL);
	/* "c2FsdA==" is "salt" in base64, as a server's first message carries it */
	CHECK(scram_keys_from_password("password", "c2FsdA==", 4096, inline_client, inline_server));
	CHECK_BYTES(inline_client, SCRAM_KEY_BYTES, want_client, SCRAM_KEY_BYTES);
	CHECK_BYTES(inline_server, SCRAM_KEY_BYTES, want_server, SCRAM_KEY_BYTES);

	delivered = 0;
	CHECK(kdf_submit("password", salt, 4, 4096, NULL, on_done, &owner) != NULL);
	wait_delivered(fd, 1);
	CHECK(delivered == 1);
	CHECK(last_ok && last_owner == &owner && last_has_server_key);
	CHECK_BYTES(last_key, SCRAM_KEY_BYTES, want_client, SCRAM_KEY_BYTES);
	CHECK_BYTES(last_server_key, SCRAM_KEY_BYTES, want_server, SCRAM_KEY_BYTES);
	CHECK(kdf_jobs_in_flight() == 0);
}

static void
test_cancel_and_bound(void)
{
	static const uint8 salt[] = "salt";
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		stored[SCRAM_KEY_BYTES];
	KdfJob	   *jobs[KDF_QUEUE_MAX];
	int			fd = kdf_start();
	int			owner = 1;

	keys_of("pw", salt, 4, 1, client_key, stored);
	delivered = 0;
	/* slow checks, so the queue is full while the test looks at it */
	for (int i = 0; i < KDF_QUEUE_MAX; i++)
	{
		jobs[i] = kdf_submit("pw", salt, 4, 200000, stored, on_done, &owner);
		CHECK(jobs[i] != NULL);
	}
	CHECK(kdf_submit("pw", salt, 4, 1, stored, on_done, &owner) == NULL);	/* bounded */
	for (int i = 0; i < KDF_QUEUE_MAX; i++)
		if (jobs[i])
			kdf_cancel(jobs[i]);
	/* the running ones finish and are dropped; nothing is delivered */
	for (int i = 0; i < 300 && kdf_jobs_in_flight() > 0; i++)
	{
		struct pollfd p = {.fd = fd,.events = POLLIN};

		(void) poll(&p, 1, 100);
		(void) kdf_collect();
	}
	CHECK(kdf_jobs_in_flight() == 0);
	CHECK(delivered == 0);
	/* and the pool still works */
	CHECK(kdf_submit("pw", salt, 4, 1, stored, on_done, &owner) != NULL);
	wait_delivered(fd, 1);
	CHECK(delivered == 1 && last_ok);
}

/* A callback that leaves by longjmp, as an ERROR would, once. */
static jmp_buf escape;
static bool escape_armed;

static void
on_done_escaping(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key)
{
	on_done(owner, ok, client_key, server_key);
	if (escape_armed)
	{
		escape_armed = false;
		longjmp(escape, 1);
	}
}

/* Jobs left when a callback errors out are delivered at the next event, not stranded. */
static void
test_error_in_callback(void)
{
	static const uint8 salt[] = "salt";
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		stored[SCRAM_KEY_BYTES];
	int			fd = kdf_start();
	int			owner = 9;
	struct pollfd p = {.fd = fd,.events = POLLIN};

	keys_of("pw", salt, 4, 1, client_key, stored);
	delivered = 0;
	CHECK(kdf_submit("pw", salt, 4, 1, stored, on_done_escaping, &owner) != NULL);
	CHECK(kdf_submit("pw", salt, 4, 1, stored, on_done_escaping, &owner) != NULL);
	usleep(200 * 1000);			/* both done (one iteration each) before the collect */
	escape_armed = true;
	if (setjmp(escape) == 0)
		(void) kdf_collect();
	CHECK(delivered == 1);
	CHECK(poll(&p, 1, 0) == 1);	/* readable again: the other one is waiting */
	(void) kdf_collect();
	CHECK(delivered == 2);
	CHECK(kdf_jobs_in_flight() == 0);
}

/* Stop (at process exit): queued checks dropped, the running one finished, threads joined. */
static void
test_stop(void)
{
	static const uint8 salt[] = "salt";
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		stored[SCRAM_KEY_BYTES];
	int			owner = 3;

	keys_of("pw", salt, 4, 1, client_key, stored);
	for (int i = 0; i < 8; i++)
		CHECK(kdf_submit("pw", salt, 4, 100000, stored, on_done, &owner) != NULL);
	kdf_stop();
	CHECK(kdf_submit("pw", salt, 4, 1, stored, on_done, &owner) == NULL);	/* no threads any more */
}

void
kdf_suite(void)
{
	UNIT_RUN(test_right_and_wrong);
	UNIT_RUN(test_derive);
	UNIT_RUN(test_cancel_and_bound);
	UNIT_RUN(test_error_in_callback);
	UNIT_RUN(test_stop);
}

/*
 * scram.h - SCRAM-SHA-256 (RFC 5802 / 7677) for both ends of pgbun.
 *
 * As the server side (a client logging in to pgbun) it checks the client's
 * proof against the verifier stored in pg_authid and recovers the ClientKey;
 * as the client side (pgbun logging in to a server) it answers with that
 * ClientKey, so no password is ever known or stored ("pass-through").
 *
 * Everything works in fixed-size buffers inside the state structs and uses
 * OpenSSL's one-shot digests: no palloc, no resource owners, no ERROR paths,
 * so it is safe to call from the worker's event loop on hostile input.
 */
#ifndef PGBUN_SCRAM_H
#define PGBUN_SCRAM_H

#include <stdbool.h>
#include <stdint.h>

#define SCRAM_KEY_BYTES		32
#define SCRAM_MSG_MAX		1024	/* longest SCRAM message pgbun accepts or builds */
#define SCRAM_SALT_B64_MAX	128

typedef struct ScramSecret
{
	int			iterations;
	char		salt_b64[SCRAM_SALT_B64_MAX];
	uint8_t		stored_key[SCRAM_KEY_BYTES];
	uint8_t		server_key[SCRAM_KEY_BYTES];
} ScramSecret;

/* The pooler authenticating a client. */
typedef struct ScramServer
{
	ScramSecret secret;
	bool		mock;			/* no real verifier: go through the motions, then fail */
	bool		cbind_offered;	/* SCRAM-SHA-256-PLUS was offered (the client is on TLS) */
	bool		plus;			/* the client chose SCRAM-SHA-256-PLUS */
	uint8_t		cbind_data[64]; /* tls-server-end-point hash of pgbun's certificate */
	int			cbind_len;
	char		gs2_header[64];
	char		client_first_bare[SCRAM_MSG_MAX];
	char		server_first[SCRAM_MSG_MAX];
	char		nonce[256];		/* client nonce + server nonce */
} ScramServer;

/* pgbun logging in to a server with a known ClientKey. */
typedef struct ScramClient
{
	uint8_t		client_key[SCRAM_KEY_BYTES];
	uint8_t		server_key[SCRAM_KEY_BYTES];
	char		client_nonce[64];
	char		client_first_bare[SCRAM_MSG_MAX];
	uint8_t		expected_server_sig[SCRAM_KEY_BYTES];
} ScramClient;

/*
 * A cleartext password (hba method "password") against a SCRAM verifier:
 * true when it matches, with the ClientKey derived from it in
 * client_key_out (what pgbun needs to log in to the server as the role).
 */
extern bool scram_check_password(const ScramSecret *secret, const char *password,
								 uint8_t *client_key_out);
/*
 * scram_check_password in two halves, so the costly one can run off the
 * event loop (kdf.c): the inputs (the salt, and the SASLprepped password as
 * a malloc'd copy; NULL when the secret is unusable), then the check itself,
 * which is thread-safe.
 */
extern char *scram_password_inputs(const ScramSecret *secret, const char *password,
								   uint8_t *salt, int *salt_len);
extern bool scram_password_key(const char *pw, size_t pwlen, const uint8_t *salt, int salt_len,
							   int iterations, const uint8_t *stored_key, uint8_t *client_key_out);

/* Keys derived from a known password, kept for the salt they were made with. */
typedef struct ScramPasswordKeys
{
	bool		valid;
	char		salt_b64[SCRAM_SALT_B64_MAX];
	int			iterations;
	uint8_t		client_key[SCRAM_KEY_BYTES];
	uint8_t		server_key[SCRAM_KEY_BYTES];
} ScramPasswordKeys;

/*
 * The ClientKey and ServerKey of a password for a salt (base64) and an
 * iteration count, as the server's first SCRAM message gives them: how
 * pgbun logs in with a configured password (a forced user). Costs one
 * PBKDF2 run; the caller keeps the keys for the next login.
 */
extern bool scram_keys_from_password(const char *password, const char *salt_b64, int iterations,
									 uint8_t *client_key_out, uint8_t *server_key_out);
/* Its costly, thread-safe half (kdf.c): pw SASLprepped and salt decoded (scram_password_inputs). */
extern bool scram_salted_keys(const char *pw, size_t pwlen, const uint8_t *salt, int salt_len,
							  int iterations, uint8_t *client_key_out, uint8_t *server_key_out);
/*
 * A SCRAM secret for a cleartext password, with a fresh random salt and
 * 4096 iterations (an auth_file entry with a plain password, so clients
 * can log in with SCRAM). One PBKDF2 run.
 */
extern bool scram_secret_from_password(const char *password, ScramSecret *out);
/* Its halves, so the PBKDF2 between them can run on a kdf.c thread: a fresh salt and count, */
extern bool scram_secret_salt(ScramSecret *out);
/* ... then StoredKey and ServerKey from the keys derived for them (scram_salted_keys). */
extern bool scram_secret_keys(ScramSecret *secret, const uint8_t *client_key, const uint8_t *server_key);
/* Parse "SCRAM-SHA-256$iter:salt$StoredKey:ServerKey". */
extern bool scram_parse_secret(const char *verifier, ScramSecret *out);
/* A plausible secret for a role that has none (mock exchange, no user enumeration). */
extern void scram_mock_secret(const char *username, const uint8_t *mock_nonce, int nonce_len,
							  ScramSecret *out);

/*
 * Server side. Each returns 1 with the reply in out (NUL-terminated), 0 for
 * an authentication failure, -1 for a malformed message (err says why).
 */
extern int	scram_server_first(ScramServer *st, const char *msg, int len,
							   char *out, int outcap, const char **err);
extern int	scram_server_final(ScramServer *st, const char *msg, int len,
							   char *out, int outcap, uint8_t *client_key_out, const char **err);

/* Client side. */
extern bool scram_client_first(ScramClient *st, char *out, int outcap);
extern int	scram_client_final(ScramClient *st, const char *server_first, int len,
							   char *out, int outcap, const char **err);
extern bool scram_client_verify_final(ScramClient *st, const char *server_final, int len);

/* Digest helpers shared with md5 auth. */
/*
 * Cryptographically strong random bytes for the loop thread (pg_strong_random
 * underneath, a block at a time). false if none could be had.
 */
extern bool pgbun_random(void *buf, size_t len);

extern bool pgbun_md5_hex(const void *data, size_t len, char *hex_out /* 33 bytes */ );

#endif							/* PGBUN_SCRAM_H */

/*
 * auth.h - what pgbun knows about a role when it logs in, read from the local
 * server's catalogs (pg_authid, pg_database), and the md5 arithmetic.
 */
#ifndef PGBUN_AUTH_H
#define PGBUN_AUTH_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/relcache.h"

#include "scram.h"

typedef enum VerifierType
{
	VERIFIER_NONE = 0,			/* no role, no password, or expired (rolvaliduntil) */
	VERIFIER_MD5,
	VERIFIER_SCRAM,
} VerifierType;

typedef struct RoleInfo
{
	bool		role_exists;
	bool		can_login;
	bool		superuser;		/* rolsuper: may carry superuser-only startup settings */
	bool		db_exists;
	bool		db_allows_conn;
	VerifierType verifier_type;
	ScramSecret scram;
	char		md5[36];		/* "md5" + 32 hex */
	/*
	 * No usable verifier (no role, no password, expired) and a challenge
	 * method should still look like a real role's: PostgreSQL then goes
	 * through a mock exchange of password_encryption's type, so with the
	 * default scram-sha-256 even the md5 method answers with SCRAM.
	 */
	bool		mock_scram;
	bool		has_valid_until;	/* rolvaliduntil is set: the password ends then */
	TimestampTz valid_until;
	char		detail[128];	/* for the server log only (never sent to the client) */
	bool		catalog_locked; /* the look-up failed because a catalog was locked */
	bool		from_auth_file; /* not in pg_authid: the entry of pgbun.auth_file (auth_file.c) */
	bool		scram_pending;	/* ... a plain password whose SCRAM secret is not derived yet */
	/* for the admin console (database pgbouncer / pgbun) only */
	bool		console_show;	/* superuser, or has pg_monitor's privileges: SHOW */
	bool		console_admin;	/* superuser, or has pgbun_admin's privileges: commands */
} RoleInfo;

/*
 * Look the role and database up: from the worker's cache when no
 * invalidation message is queued for the worker and both are in it, else in
 * a short transaction (which fills the cache). Never throws: an internal
 * error is logged and reported as false.
 */
extern bool auth_lookup(const char *user, const char *database, RoleInfo *out);

/* "md5" + md5(hex_of_stored_hash_without_prefix + salt): the answer to an md5 challenge. */
extern bool auth_md5_response(const char *md5_verifier, const uint8 salt[4], char *out /* 36 */ );

/*
 * Open a shared catalog for reading inside a look-up transaction without
 * ever waiting for its lock: NULL when another session holds a conflicting
 * one (LOCK pg_authid, VACUUM FULL), instead of blocking the worker.
 */
extern Relation auth_open_catalog(Oid relid);

/*
 * Run fn(arg) in a short transaction with a snapshot (catalog reads), after
 * the invalidation messages auth_lookup took from the queue are processed.
 * Never throws: an error is logged and reported as false.
 */
extern bool auth_in_transaction(void (*fn) (void *arg), void *arg);

/* The cluster's mock-authentication nonce (for scram_mock_secret). */
extern const uint8 *auth_mock_nonce(int *len);

#endif							/* PGBUN_AUTH_H */

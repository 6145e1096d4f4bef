/*
 * auth_file.h - pgbun.auth_file: roles the local server does not have, in
 * PgBouncer's userlist.txt format ("name" "secret" per line; the secret a
 * SCRAM-SHA-256 verifier, an md5 hash or a plain password).
 *
 * Read by each worker at start and at every reload (a file that cannot be
 * read keeps the entries in force). A client whose role the local
 * pg_authid lacks is checked against its entry; with a plain password pgbun
 * also logs in to the server with it, with a verifier only by pass-through
 * (the server must hold the same verifier).
 *
 * A plain password's SCRAM secret (clients log in with SCRAM against it) is
 * derived on a kdf.c thread at the role's first login: auth_file_secret.
 */
#ifndef PGBUN_AUTH_FILE_H
#define PGBUN_AUTH_FILE_H

#include "lib/ilist.h"

#include "auth.h"

/* (Re)read pgbun.auth_file; empty setting: no entries. */
extern void auth_file_reload(void);
/*
 * The role is not in pg_authid: fill role from its auth_file entry (role
 * exists, may log in, its verifier). *password is its plain password, or
 * NULL. false: no entry.
 */
extern bool auth_file_lookup(const char *user, RoleInfo *role, const char **password);

/* A login waiting for a plain password's SCRAM secret (role->scram_pending). */
typedef struct AuthFileWaiter AuthFileWaiter;
struct AuthFileWaiter
{
	dlist_node	node;
	bool		waiting;		/* on a derivation's list */
	void	   *owner;
	/* the secret, or NULL: it could not be derived, or a reload dropped or changed the entry */
	void		(*ready) (AuthFileWaiter *w, const ScramSecret *secret);
};

typedef enum AuthFileSecret
{
	AUTH_FILE_SECRET_READY,		/* role->scram is filled */
	AUTH_FILE_SECRET_PENDING,	/* w->ready(w, ...) is called once a kdf.c thread has it */
	AUTH_FILE_SECRET_FAILED,
} AuthFileSecret;

/*
 * The SCRAM secret of user's plain password into role, at once when it is
 * derived already, else once a kdf.c thread has derived it (one run for all
 * the logins waiting).
 */
extern AuthFileSecret auth_file_secret(const char *user, RoleInfo *role, AuthFileWaiter *w);
/* The waiter is going away (its client closed): take it off the list. */
extern void auth_file_waiter_forget(AuthFileWaiter *w);

#endif							/* PGBUN_AUTH_FILE_H */

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
 */
#ifndef PGBUN_AUTH_FILE_H
#define PGBUN_AUTH_FILE_H

#include "auth.h"

/* (Re)read pgbun.auth_file; empty setting: no entries. */
extern void auth_file_reload(void);
/*
 * The role is not in pg_authid: fill role from its auth_file entry (role
 * exists, may log in, its verifier). *password is its plain password, or
 * NULL. false: no entry.
 */
extern bool auth_file_lookup(const char *user, RoleInfo *role, const char **password);

#endif							/* PGBUN_AUTH_FILE_H */

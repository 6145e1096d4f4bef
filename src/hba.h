/*
 * hba.h - access rules for pgbun.auth_type = hba, in PostgreSQL's
 * pg_hba.conf format (pgbun.hba_file; empty: the server's own hba_file).
 */
#ifndef PGBUN_HBA_H
#define PGBUN_HBA_H

#include "postgres.h"

#include <sys/socket.h>

/* What the first matching rule asks for. */
typedef enum HbaDecision
{
	HBA_NO_MATCH,				/* no rule matched: refused, as PostgreSQL does */
	HBA_REJECT,
	HBA_TRUST,
	HBA_SCRAM,
	HBA_MD5,
	HBA_PASSWORD,
	HBA_PEER,
	HBA_CERT,					/* the verified client certificate's CN is the role */
} HbaDecision;

/* A line's clientcert= option: off, a verified certificate, or also its CN = the role. */
typedef enum HbaClientCert
{
	HBA_CERT_OFF,
	HBA_CERT_CA,
	HBA_CERT_FULL,
} HbaClientCert;

/* The connection a rule is matched against. */
typedef struct HbaConn
{
	bool		unix_socket;
	bool		tls;
	struct sockaddr_storage addr;	/* the client's address (TCP only) */
	const char *user;
	const char *database;
} HbaConn;

/*
 * (Re)read the rules. On any bad line - or a method or option pgbun cannot
 * carry out - the whole file is refused with the line and the reason in
 * the log, and the rules in force stay. Returns whether it loaded.
 */
extern bool hba_reload(void);

/*
 * The first rule that matches conn (its line number in *line_number, 0 if
 * none; its clientcert= option in *clientcert, its map= in *usermap).
 */
extern HbaDecision hba_decide(const HbaConn *conn, int *line_number, HbaClientCert *clientcert,
							   const char **usermap);

/*
 * map= on a cert or peer line: does pg_ident-format map name let system_user
 * (the certificate's CN, the OS user) log in as role? (pgbun.ident_file,
 * empty: the server's ident_file; literal and /regex lines with \1.)
 */
extern bool hba_usermap_ok(const char *map, const char *system_user, const char *role);

#endif							/* PGBUN_HBA_H */

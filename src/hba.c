/*
 * hba.c - pgbun.auth_type = hba: access rules in PostgreSQL's pg_hba.conf
 * format (hba.h).
 *
 * The file is read with PostgreSQL's own tokenizer and line parser
 * (tokenize_auth_file, parse_hba_line), never with load_hba(): that one
 * works on the postmaster's parsed-hba context, which a background worker
 * must not touch. pgbun keeps its own parsed copy and matches connections
 * against it itself. A file with any bad line, or a method pgbun cannot
 * carry out, is refused as a whole and the rules in force stay.
 */
#include "postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "libpq/hba.h"
#include "libpq/ifaddr.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "storage/fd.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "auth.h"
#include "config.h"
#include "hba.h"
#include "settings.h"

static MemoryContext rules_cxt = NULL;	/* holds rules and ident_lines */
static List *rules = NIL;		/* HbaLine *, in file order */
static List *ident_lines = NIL; /* IdentLine *, for map= (pgbun.ident_file) */
static bool rules_loaded = false;

/* Why pgbun cannot apply this line, or NULL when it can. */
static const char *
unsupported_reason(const HbaLine *line)
{
	switch (line->auth_method)
	{
		case uaTrust:
		case uaReject:
		case uaSCRAM:
		case uaMD5:
		case uaPassword:
			break;
		case uaPeer:
			break;
		case uaCert:
			if (line->clientcertname != clientCertCN)
				return "clientname=DN is not supported by pgbun";
			break;
		default:
			return "this authentication method is not supported by pgbun (supported: trust, reject, scram-sha-256, md5, password, peer, cert)";
	}
	if (line->hostname)
		return "host names in the address field are not supported by pgbun; use an address and mask";
	if (line->clientcert != clientCertOff && line->clientcertname != clientCertCN)
		return "clientname=DN is not supported by pgbun";
	return NULL;
}

/*
 * Parse an hba file (ident false) or an ident file (ident true) into cxt;
 * false (and the reasons in the log) if any line is bad.
 */
static bool
load_lines(MemoryContext cxt, const char *path, bool ident, List **out)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	MemoryContext linecxt;
	List	   *tok_lines = NIL;
	List	   *parsed = NIL;
	ListCell   *lc;
	FILE	   *file;
	bool		ok = true;

	file = AllocateFile(path, "r");
	if (file == NULL)
	{
		ereport(LOG, (errcode_for_file_access(),
					  errmsg("pgbun: could not open %s file \"%s\": %m", ident ? "ident" : "hba", path)));
		MemoryContextSwitchTo(oldcxt);
		return false;
	}
	linecxt = tokenize_auth_file(path, file, &tok_lines, LOG);
	FreeFile(file);

	foreach(lc, tok_lines)
	{
		TokenizedAuthLine *tok = (TokenizedAuthLine *) lfirst(lc);
		HbaLine    *line = NULL;
		const char *why;

		if (ident)
		{
			IdentLine  *il = tok->err_msg ? NULL : parse_ident_line(tok, LOG);

			if (il == NULL)
			{
				ereport(LOG, (errmsg("pgbun: ident file \"%s\" line %d: %s", path, tok->line_num,
									 tok->err_msg ? tok->err_msg : "invalid line")));
				ok = false;
			}
			else
				parsed = lappend(parsed, il);
			continue;
		}
		if (tok->err_msg == NULL)
			line = parse_hba_line(tok, LOG);
		if (line == NULL)
		{
			ereport(LOG, (errmsg("pgbun: hba file \"%s\" line %d: %s", path, tok->line_num,
								 tok->err_msg ? tok->err_msg : "invalid line")));
			ok = false;
			continue;
		}
		if ((why = unsupported_reason(line)) != NULL)
		{
			ereport(LOG, (errmsg("pgbun: hba file \"%s\" line %d: %s", path, tok->line_num, why)));
			ok = false;
			continue;
		}
		parsed = lappend(parsed, line);
	}
	MemoryContextDelete(linecxt);
	MemoryContextSwitchTo(oldcxt);
	*out = parsed;
	return ok;
}

/* Both files into a new context; NULL if either has a bad line. */
static MemoryContext
load_rules(const char *path, const char *ident_path, List **out, List **idents)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pgbun hba rules",
											  ALLOCSET_SMALL_SIZES);

	if (!load_lines(cxt, path, false, out) || !load_lines(cxt, ident_path, true, idents))
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	return cxt;
}

bool
hba_reload(void)
{
	const char *path = (pgbun_cfg->hba_file && pgbun_cfg->hba_file[0]) ? pgbun_cfg->hba_file : HbaFileName;
	const char *ident_path = (pgbun_cfg->ident_file && pgbun_cfg->ident_file[0]) ? pgbun_cfg->ident_file : IdentFileName;
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext cxt = NULL;
	List	   *parsed = NIL;
	List	   *idents = NIL;

	PG_TRY();
	{
		cxt = load_rules(path, ident_path, &parsed, &idents);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		cxt = NULL;
	}
	PG_END_TRY();
	if (cxt == NULL)
	{
		ereport(LOG, (errmsg("pgbun: hba file \"%s\" refused; %s", path,
							 rules_loaded ? "the previous rules stay in force" :
							 "no rules loaded: every login is refused")));
		return false;
	}
	if (rules_cxt)
		MemoryContextDelete(rules_cxt);
	rules_cxt = cxt;
	rules = parsed;
	ident_lines = idents;
	rules_loaded = true;
	ereport(LOG, (errmsg("pgbun: loaded %d hba rules from \"%s\"", list_length(rules), path)));
	return true;
}

/* ---- role membership (+group), read from the shared catalogs ---- */

static Oid
role_oid(Relation authid, const char *name)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			oid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_authid_rolname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	scan = systable_beginscan(authid, InvalidOid, false, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		oid = ((Form_pg_authid) GETSTRUCT(tup))->oid;
	systable_endscan(scan);
	return oid;
}

#define MAX_ROLES_FOLLOWED 256

/* Is role a member of group, directly or through other roles (a role is its own member)? */
static bool
member_of_in_transaction(const char *role, const char *group)
{
	/* never wait for a lock: a locked catalog only means the rule does not match */
	Relation	authid = auth_open_catalog(AuthIdRelationId);
	Relation	members = authid ? auth_open_catalog(AuthMemRelationId) : NULL;
	Oid			seen[MAX_ROLES_FOLLOWED];
	int			n = 0;
	Oid			target;
	bool		found = false;

	if (!members)
	{
		if (authid)
			table_close(authid, AccessShareLock);
		return false;
	}

	seen[n++] = role_oid(authid, role);
	target = role_oid(authid, group);
	/* breadth first over "member -> roleid" edges */
	for (int i = 0; i < n && OidIsValid(target) && !found; i++)
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		if (seen[i] == target)
		{
			found = true;
			break;
		}
		ScanKeyInit(&key, Anum_pg_auth_members_member, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(seen[i]));
		scan = systable_beginscan(members, InvalidOid, false, NULL, 1, &key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)) && n < MAX_ROLES_FOLLOWED)
		{
			Oid			parent = ((Form_pg_auth_members) GETSTRUCT(tup))->roleid;
			bool		known = false;

			for (int j = 0; j < n; j++)
				known |= (seen[j] == parent);
			if (!known)
				seen[n++] = parent;
		}
		systable_endscan(scan);
	}
	table_close(members, AccessShareLock);
	table_close(authid, AccessShareLock);
	return found;
}

typedef struct MemberQuery
{
	const char *role;
	const char *group;
	bool		found;
} MemberQuery;

static void
member_query(void *arg)
{
	MemberQuery *q = arg;

	q->found = member_of_in_transaction(q->role, q->group);
}

/* An error reading the catalogs means no answer: the rule does not match. */
static bool
role_member_of(const char *role, const char *group)
{
	MemberQuery q = {role, group, false};

	return auth_in_transaction(member_query, &q) && q.found;
}

/* ---- matching ---- */

static bool
is_keyword(const AuthToken *tok, const char *word)
{
	return !tok->quoted && strcmp(tok->string, word) == 0;
}

static bool
database_matches(const HbaLine *line, const HbaConn *conn)
{
	ListCell   *lc;

	foreach(lc, line->databases)
	{
		const AuthToken *tok = lfirst(lc);

		if (is_keyword(tok, "all"))
			return true;
		if (is_keyword(tok, "sameuser"))
		{
			if (strcmp(conn->database, conn->user) == 0)
				return true;
		}
		else if (is_keyword(tok, "samerole") || is_keyword(tok, "samegroup"))
		{
			if (role_member_of(conn->user, conn->database))
				return true;
		}
		else if (is_keyword(tok, "replication"))
			continue;			/* pgbun serves no replication connections */
		else if (strcmp(tok->string, conn->database) == 0)
			return true;
	}
	return false;
}

static bool
role_matches(const HbaLine *line, const HbaConn *conn)
{
	ListCell   *lc;

	foreach(lc, line->roles)
	{
		const AuthToken *tok = lfirst(lc);

		if (is_keyword(tok, "all"))
			return true;
		if (!tok->quoted && tok->string[0] == '+')
		{
			if (role_member_of(conn->user, tok->string + 1))
				return true;
		}
		else if (strcmp(tok->string, conn->user) == 0)
			return true;
	}
	return false;
}

typedef struct IfaceCheck
{
	const struct sockaddr_storage *addr;
	bool		same_net;		/* samenet: within an interface's network; samehost: its address */
	bool		found;
} IfaceCheck;

static void
check_iface(struct sockaddr *ifaddr, struct sockaddr *netmask, void *arg)
{
	IfaceCheck *chk = arg;
	struct sockaddr_storage full;

	if (chk->found || ifaddr->sa_family != chk->addr->ss_family)
		return;
	if (chk->same_net)
		chk->found = pg_range_sockaddr(chk->addr, (struct sockaddr_storage *) ifaddr,
									   (struct sockaddr_storage *) netmask) != 0;
	else if (pg_sockaddr_cidr_mask(&full, NULL, ifaddr->sa_family) == 0)
		chk->found = pg_range_sockaddr(chk->addr, (struct sockaddr_storage *) ifaddr, &full) != 0;
}

static bool
address_matches(const HbaLine *line, const HbaConn *conn)
{
	switch (line->ip_cmp_method)
	{
		case ipCmpAll:
			return true;
		case ipCmpMask:
			return line->addrlen > 0 &&
				line->addr.ss_family == conn->addr.ss_family &&
				pg_range_sockaddr(&conn->addr, &line->addr, &line->mask) != 0;
		case ipCmpSameHost:
		case ipCmpSameNet:
			{
				IfaceCheck	chk = {&conn->addr, line->ip_cmp_method == ipCmpSameNet, false};

				(void) pg_foreach_ifaddr(check_iface, &chk);
				return chk.found;
			}
	}
	return false;
}

static bool
conntype_matches(const HbaLine *line, const HbaConn *conn)
{
	switch (line->conntype)
	{
		case ctLocal:
			return conn->unix_socket;
		case ctHost:
		case ctHostNoGSS:
			return !conn->unix_socket;
		case ctHostSSL:
			return !conn->unix_socket && conn->tls;
		case ctHostNoSSL:
			return !conn->unix_socket && !conn->tls;
		case ctHostGSS:
			return false;		/* pgbun offers no GSS encryption */
	}
	return false;
}

/* Does ident line il map system_user to role? (regex lines: \1 is the first group) */
static bool
ident_line_maps(IdentLine *il, const char *system_user, const char *role)
{
	pg_wchar   *wstr;
	int			wlen;
	regmatch_t	matches[2];
	bool		ok = false;

	if (il->ident_user[0] != '/')
		return strcmp(il->ident_user, system_user) == 0 && strcmp(il->pg_role, role) == 0;
	wstr = palloc((strlen(system_user) + 1) * sizeof(pg_wchar));
	wlen = pg_mb2wchar_with_len(system_user, wstr, strlen(system_user));
	if (pg_regexec(&il->re, wstr, wlen, 0, NULL, 2, matches, 0) == REG_OKAY)
	{
		const char *sub = strstr(il->pg_role, "\\1");

		if (!sub)
			ok = strcmp(il->pg_role, role) == 0;
		else if (matches[1].rm_so >= 0)
		{
			/* the role is pg_role with \1 replaced by the group, compared piece by piece */
			size_t		pre = sub - il->pg_role;
			size_t		grp = matches[1].rm_eo - matches[1].rm_so;
			char	   *group = palloc(strlen(system_user) + 1);
			char	   *want;

			/* the group in the system user's own bytes (ASCII-safe for the usual names) */
			pg_wchar2mb_with_len(wstr + matches[1].rm_so, group, (int) grp);
			want = psprintf("%.*s%s%s", (int) pre, il->pg_role, group, sub + 2);
			ok = strcmp(want, role) == 0;
			pfree(want);
			pfree(group);
		}
	}
	pfree(wstr);
	return ok;
}

bool
hba_usermap_ok(const char *map, const char *system_user, const char *role)
{
	ListCell   *lc;

	foreach(lc, ident_lines)
	{
		IdentLine  *il = lfirst(lc);

		if (strcmp(il->usermap, map) == 0 && ident_line_maps(il, system_user, role))
			return true;
	}
	return false;
}

HbaDecision
hba_decide(const HbaConn *conn, int *line_number, HbaClientCert *clientcert, const char **usermap)
{
	ListCell   *lc;

	*line_number = 0;
	*clientcert = HBA_CERT_OFF;
	*usermap = NULL;
	foreach(lc, rules)
	{
		const HbaLine *line = lfirst(lc);

		if (!conntype_matches(line, conn))
			continue;
		if (!conn->unix_socket && !address_matches(line, conn))
			continue;
		if (!database_matches(line, conn) || !role_matches(line, conn))
			continue;
		*line_number = line->linenumber;
		*clientcert = line->clientcert == clientCertFull ? HBA_CERT_FULL :
			line->clientcert == clientCertCA ? HBA_CERT_CA : HBA_CERT_OFF;
		*usermap = line->usermap;
		switch (line->auth_method)
		{
			case uaTrust:
				return HBA_TRUST;
			case uaSCRAM:
				return HBA_SCRAM;
			case uaMD5:
				return HBA_MD5;
			case uaPassword:
				return HBA_PASSWORD;
			case uaPeer:
				return HBA_PEER;
			case uaCert:
				return HBA_CERT;
			default:
				return HBA_REJECT;
		}
	}
	return HBA_NO_MATCH;
}

/*
 * auth.c - role and database look-ups for logins, in a short transaction.
 *
 * The worker is connected to the shared catalogs only, which is all a login
 * needs: pg_authid (rolvaliduntil honoured as get_role_password does) and
 * pg_database. Like PostgreSQL, an expired VALID UNTIL only takes the
 * password away: the password methods (scram-sha-256, md5, password) then
 * fail, trust / peer / cert do not look at it.
 * Each look-up is its own transaction so a password change (ALTER ROLE ...
 * PASSWORD) is seen by the next login without any reload. Errors are caught
 * here: a catalog hiccup fails one login, never the worker.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_control.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/user.h"
#include "libpq/crypt.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"

#include "auth.h"
#include "console.h"
#include "scram.h"

Relation
auth_open_catalog(Oid relid)
{
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return NULL;
	return table_open(relid, NoLock);
}

/*
 * Heap-scan a shared catalog for one name (no index, no syscache): a worker
 * without a database cannot open catalog indexes before the shared relcache
 * init file exists, and these catalogs are small. Calls fn on the match.
 */
static void
scan_by_name(Oid relid, AttrNumber attnum, const char *name,
			 void (*fn) (Relation rel, HeapTuple tup, RoleInfo *out), RoleInfo *out)
{
	Relation	rel = auth_open_catalog(relid);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (!rel)
	{
		out->catalog_locked = true;
		return;
	}

	ScanKeyInit(&key, attnum, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum(name));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		fn(rel, tup, out);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* pg_authid row: can it log in, and its verifier (unless expired, as get_role_password). */
static void
read_role(Relation rel, HeapTuple tup, RoleInfo *out)
{
	Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);
	bool		isnull;
	Datum		d;
	char	   *shadow;

	out->role_exists = true;
	out->can_login = role->rolcanlogin;
	out->superuser = role->rolsuper;
	d = heap_getattr(tup, Anum_pg_authid_rolpassword, RelationGetDescr(rel), &isnull);
	if (isnull)
	{
		strlcpy(out->detail, "role has no password", sizeof(out->detail));
		return;
	}
	shadow = TextDatumGetCString(d);
	d = heap_getattr(tup, Anum_pg_authid_rolvaliduntil, RelationGetDescr(rel), &isnull);
	if (!isnull && DatumGetTimestampTz(d) < GetCurrentTimestamp())
	{
		strlcpy(out->detail, "role's password has expired (VALID UNTIL)", sizeof(out->detail));
		return;
	}
	switch (get_password_type(shadow))
	{
		case PASSWORD_TYPE_SCRAM_SHA_256:
			if (scram_parse_secret(shadow, &out->scram))
				out->verifier_type = VERIFIER_SCRAM;
			else
				strlcpy(out->detail, "invalid SCRAM verifier in pg_authid", sizeof(out->detail));
			break;
		case PASSWORD_TYPE_MD5:
			if (strlen(shadow) == 35)
			{
				strlcpy(out->md5, shadow, sizeof(out->md5));
				out->verifier_type = VERIFIER_MD5;
			}
			break;
		default:
			strlcpy(out->detail, "role has a plain-text password, which pgbun cannot use",
					sizeof(out->detail));
			break;
	}
	pfree(shadow);
}

static void
read_database(Relation rel, HeapTuple tup, RoleInfo *out)
{
	out->db_exists = true;
	out->db_allows_conn = ((Form_pg_database) GETSTRUCT(tup))->datallowconn;
}

/* Most roles and memberships the console's privilege check reads (catalogs scanned whole). */
#define PRIV_MAX_ROLES		8192
#define PRIV_MAX_EDGES		16384

typedef struct RoleEdge
{
	Oid			member;
	Oid			role;
} RoleEdge;

/* rolinherit of a role (false if unknown): privileges flow through inheriting members only. */
static bool
role_inherits(const Oid *oids, const bool *inherit, int n, Oid oid)
{
	for (int i = 0; i < n; i++)
		if (oids[i] == oid)
			return inherit[i];
	return false;
}

/*
 * The admin console's privileges of a role, as has_privs_of_role sees them:
 * superusers have all; otherwise the roles it reaches through pg_auth_members
 * from inheriting members. SHOW needs pg_monitor's privileges, commands those
 * of pgbun_admin (created by CREATE EXTENSION pgbun). Whole-catalog heap scans,
 * as for the login (no indexes in a database-less worker); bounded.
 */
static void
read_console_privileges(const char *user, RoleInfo *out)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid		   *oids = palloc(sizeof(Oid) * PRIV_MAX_ROLES);
	bool	   *inherit = palloc(sizeof(bool) * PRIV_MAX_ROLES);
	RoleEdge   *edges = palloc(sizeof(RoleEdge) * PRIV_MAX_EDGES);
	Oid		   *reached = palloc(sizeof(Oid) * PRIV_MAX_ROLES);
	int			nroles = 0;
	int			nedges = 0;
	int			nreached = 0;
	Oid			self = InvalidOid;
	Oid			admin = InvalidOid;
	bool		superuser = false;

	if (!(rel = auth_open_catalog(AuthIdRelationId)))
	{
		out->catalog_locked = true;
		return;
	}
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)) && nroles < PRIV_MAX_ROLES)
	{
		Form_pg_authid r = (Form_pg_authid) GETSTRUCT(tup);

		oids[nroles] = r->oid;
		inherit[nroles] = r->rolinherit;
		nroles++;
		if (strcmp(NameStr(r->rolname), user) == 0)
		{
			self = r->oid;
			superuser = r->rolsuper;
		}
		if (strcmp(NameStr(r->rolname), "pgbun_admin") == 0)
			admin = r->oid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(self))
		return;
	if (superuser)
	{
		out->console_show = out->console_admin = true;
		return;
	}

	if (!(rel = auth_open_catalog(AuthMemRelationId)))
	{
		out->catalog_locked = true;
		return;
	}
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)) && nedges < PRIV_MAX_EDGES)
	{
		Form_pg_auth_members m = (Form_pg_auth_members) GETSTRUCT(tup);

		edges[nedges].member = m->member;
		edges[nedges].role = m->roleid;
		nedges++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	/* breadth first from the role itself; a role passes privileges on only if it inherits */
	reached[nreached++] = self;
	for (int i = 0; i < nreached; i++)
	{
		Oid			from = reached[i];

		if (from == ROLE_PG_MONITOR)
			out->console_show = true;
		if (OidIsValid(admin) && from == admin)
			out->console_admin = true;
		if (!role_inherits(oids, inherit, nroles, from))
			continue;
		for (int e = 0; e < nedges && nreached < PRIV_MAX_ROLES; e++)
		{
			bool		seen = false;

			if (edges[e].member != from)
				continue;
			for (int k = 0; k < nreached && !seen; k++)
				seen = reached[k] == edges[e].role;
			if (!seen)
				reached[nreached++] = edges[e].role;
		}
	}
	/* pgbun_admin may run SHOW too */
	out->console_show |= out->console_admin;
}

typedef struct LookupArgs
{
	const char *user;
	const char *database;
	RoleInfo   *out;
} LookupArgs;

static void
lookup_in_transaction(void *arg)
{
	LookupArgs *a = arg;

	scan_by_name(AuthIdRelationId, Anum_pg_authid_rolname, a->user, read_role, a->out);
	if (console_is_database(a->database))
	{
		/* the admin console is a virtual database inside the pooler */
		a->out->db_exists = a->out->db_allows_conn = true;
		if (a->out->role_exists)
			read_console_privileges(a->user, a->out);
		return;
	}
	scan_by_name(DatabaseRelationId, Anum_pg_database_datname, a->database, read_database, a->out);
}

bool
auth_lookup(const char *user, const char *database, RoleInfo *out)
{
	LookupArgs	args = {user, database, out};

	memset(out, 0, sizeof(*out));
	if (!auth_in_transaction(lookup_in_transaction, &args) || out->catalog_locked)
		return false;
	/* as CheckPWChallengeAuth: no verifier means a mock of password_encryption's kind */
	out->mock_scram = out->verifier_type == VERIFIER_NONE &&
		Password_encryption == PASSWORD_TYPE_SCRAM_SHA_256;
	return true;
}

bool
auth_md5_response(const char *md5_verifier, const uint8 salt[4], char *out)
{
	char		buf[32 + 4];

	/* the verifier is "md5" + md5(password || user); the client hashed it again with the salt */
	memcpy(buf, md5_verifier + 3, 32);
	memcpy(buf + 32, salt, 4);
	out[0] = 'm';
	out[1] = 'd';
	out[2] = '5';
	return pgbun_md5_hex(buf, sizeof(buf), out + 3);
}

const uint8 *
auth_mock_nonce(int *len)
{
	*len = MOCK_AUTH_NONCE_LEN;
	return (const uint8 *) GetMockAuthenticationNonce();
}

/*
 * Run fn in a transaction of its own; false if it threw (logged). A query
 * cancel aimed at the worker (pg_cancel_backend) is held off meanwhile: it
 * has nothing to cancel, and must not fail the login that happens to be
 * looked up (the loop drops it, worker.c).
 */
bool
auth_in_transaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		HOLD_CANCEL_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
		RESUME_CANCEL_INTERRUPTS();
	}
	PG_CATCH();
	{
		/* the ERROR reset QueryCancelHoldoffCount already (errfinish) */
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	return ok;
}

/*
 * auth.c - role and database look-ups for logins, in a short transaction.
 *
 * The worker is connected to the shared catalogs only, which is all a login
 * needs: pg_authid (rolvaliduntil honoured as get_role_password does) and
 * pg_database. Like PostgreSQL, an expired VALID UNTIL only takes the
 * password away: the password methods (scram-sha-256, md5, password) then
 * fail, trust / peer / cert do not look at it.
 * What a look-up read is kept per worker (roles and databases by name) and
 * used again until PostgreSQL's own invalidation messages say pg_authid or
 * pg_database changed (syscache callbacks on AUTHNAME, AUTHOID and
 * DATABASEOID, which a cache reset fires too). Before each login the worker
 * takes the messages queued for it (the shared queue's lock-free "nothing
 * new" test when there are none) without processing them: processing
 * belongs in a transaction. If any that concern this database-less worker
 * were queued, the login takes the old path: a short transaction that processes them (so the callbacks empty the
 * cache) and reads the catalogs. So an ALTER ROLE ... PASSWORD, VALID UNTIL
 * or NOLOGIN, a DROP ROLE or an ALTER DATABASE that has returned to its
 * session is seen by the very next login, and a login with nothing queued
 * costs no transaction. VALID UNTIL is compared with the clock at every
 * login. Errors are caught here: a catalog hiccup fails one login, never the
 * worker.
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
#include "storage/sinval.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"

#include "auth.h"
#include "clock.h"
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

/*
 * pg_authid row: can it log in, its verifier, and its VALID UNTIL (applied
 * by role_apply_expiry, at every login, as get_role_password does).
 */
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
	if (!isnull)
	{
		out->has_valid_until = true;
		out->valid_until = DatumGetTimestampTz(d);
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
	explicit_bzero(shadow, strlen(shadow));
	pfree(shadow);
}

/* An expired VALID UNTIL takes the password away (whatever its kind), as get_role_password. */
static void
role_apply_expiry(RoleInfo *r, TimestampTz now)
{
	if (!r->has_valid_until || r->valid_until >= now)
		return;
	r->verifier_type = VERIFIER_NONE;
	memset(&r->scram, 0, sizeof(r->scram));
	memset(r->md5, 0, sizeof(r->md5));
	strlcpy(r->detail, "role's password has expired (VALID UNTIL)", sizeof(r->detail));
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

/* ---- the per-worker cache of roles and databases ---- */

/* Most names of each kind kept; one more empties the cache first (bounded memory). */
#define AUTH_CACHE_MAX		1024

typedef struct RoleEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	RoleInfo	info;			/* as read_role left it (role_exists false: no such role) */
} RoleEntry;

typedef struct DatabaseEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	bool		exists;
	bool		allows_conn;
} DatabaseEntry;

static MemoryContext cache_cxt;
static HTAB *role_cache;
static HTAB *db_cache;
static bool callbacks_registered;

/* Bumped by every callback: a look-up that saw it move does not fill the cache. */
static uint64 cache_generation;
static bool cache_stale;

/*
 * Invalidation messages taken from the shared queue at a login and not yet
 * processed (auth_in_transaction processes them first thing). A reset, or
 * more than fit here, means "everything", as PostgreSQL's own reset does.
 */
#define PENDING_MAX			4096
static SharedInvalidationMessage pending[PENDING_MAX];
static int	n_pending;
static bool pending_reset;

/* pg_authid or pg_database changed (or a cache reset): forget everything. */
static void
catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	cache_generation++;
	cache_stale = true;
}

static void
cache_reset_if_stale(void)
{
	HASHCTL		ctl;

	if (role_cache && !cache_stale)
		return;
	if (!cache_cxt)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "pgbun login cache",
										  ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(cache_cxt);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.hcxt = cache_cxt;
	ctl.entrysize = sizeof(RoleEntry);
	role_cache = hash_create("pgbun roles", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.entrysize = sizeof(DatabaseEntry);
	db_cache = hash_create("pgbun databases", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	cache_stale = false;
}

/*
 * A message this worker acts on. It is connected to no database
 * (MyDatabaseId is InvalidOid), so LocalExecuteInvalidationMessage ignores
 * catcache, catalog, relcache, relmap and snapshot messages of a database's
 * own catalogs, and the smgr message of a database's relation closes
 * nothing here (the worker only ever opens shared catalogs, dbNode 0): none
 * of those needs a transaction. Everything else (shared catalogs, unknown
 * kinds) does.
 */
static bool
message_concerns_worker(const SharedInvalidationMessage *m)
{
	Oid			db = InvalidOid;

	if (OidIsValid(MyDatabaseId))
		return true;
	if (m->id >= 0)
		db = m->cc.dbId;
	else if (m->id == SHAREDINVALCATALOG_ID)
		db = m->cat.dbId;
	else if (m->id == SHAREDINVALRELCACHE_ID)
		db = m->rc.dbId;
	else if (m->id == SHAREDINVALRELMAP_ID)
		db = m->rm.dbId;
	else if (m->id == SHAREDINVALSNAPSHOT_ID)
		db = m->sn.dbId;
	else if (m->id == SHAREDINVALSMGR_ID)
		db = m->sm.rnode.dbNode;
	return !OidIsValid(db);
}

static void
take_message(SharedInvalidationMessage *m)
{
	if (!message_concerns_worker(m))
		return;
	if (n_pending < PENDING_MAX)
		pending[n_pending++] = *m;
	else
		pending_reset = true;
}

static void
take_reset(void)
{
	/* the queue dropped what this worker had not read: everything is suspect */
	pending_reset = true;
	n_pending = 0;
}

/*
 * Take what the shared invalidation queue holds for this worker, without
 * processing it (that needs a transaction). true when nothing is pending.
 * With nothing queued ReceiveSharedInvalidMessages takes no lock. The
 * barrier orders this read after whatever told us of the new login (a
 * session's ALTER ROLE has queued its messages before its client got the
 * reply).
 */
static bool
invalidations_pending(void)
{
	pg_memory_barrier();
	ReceiveSharedInvalidMessages(take_message, take_reset);
	return n_pending > 0 || pending_reset;
}

/* Inside a transaction: process what invalidations_pending took (the callbacks fire). */
static void
process_pending_invalidations(void)
{
	if (pending_reset)
		InvalidateSystemCaches();
	for (int i = 0; i < n_pending; i++)
		LocalExecuteInvalidationMessage(&pending[i]);
	/* only now: an error above leaves them for the next transaction (processing is idempotent) */
	n_pending = 0;
	pending_reset = false;
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(AUTHNAME, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(DATABASEOID, catalog_changed, (Datum) 0);
	callbacks_registered = true;
}

typedef struct LookupArgs
{
	const char *user;
	const char *database;
	RoleInfo   *out;
	bool		need_role;
	bool		need_db;
	uint64		generation;		/* cache_generation when the reads began */
} LookupArgs;

static void
lookup_in_transaction(void *arg)
{
	LookupArgs *a = arg;

	/* messages processed so far are in; a callback from here on means the reads may be older */
	a->generation = cache_generation;
	if (a->need_role)
		scan_by_name(AuthIdRelationId, Anum_pg_authid_rolname, a->user, read_role, a->out);
	if (console_is_database(a->database))
	{
		/* the admin console is a virtual database inside the pooler */
		a->out->db_exists = a->out->db_allows_conn = true;
		if (a->out->role_exists)
			read_console_privileges(a->user, a->out);
		return;
	}
	if (a->need_db && !a->out->catalog_locked)
		scan_by_name(DatabaseRelationId, Anum_pg_database_datname, a->database, read_database, a->out);
}

/* Keep what a look-up read, unless the catalogs changed meanwhile. */
static void
cache_fill(const LookupArgs *a)
{
	bool		found;

	if (cache_generation != a->generation || a->out->catalog_locked)
		return;
	cache_reset_if_stale();
	if ((a->need_role && hash_get_num_entries(role_cache) >= AUTH_CACHE_MAX) ||
		(a->need_db && hash_get_num_entries(db_cache) >= AUTH_CACHE_MAX))
	{
		cache_stale = true;		/* full: start again (many names, or a spray of unknown ones) */
		cache_reset_if_stale();
	}
	if (a->need_role)
	{
		RoleEntry  *e = hash_search(role_cache, a->user, HASH_ENTER, &found);

		e->info = *a->out;
		e->info.db_exists = e->info.db_allows_conn = false;
	}
	if (a->need_db)
	{
		DatabaseEntry *e = hash_search(db_cache, a->database, HASH_ENTER, &found);

		e->exists = a->out->db_exists;
		e->allows_conn = a->out->db_allows_conn;
	}
}

bool
auth_lookup(const char *user, const char *database, RoleInfo *out)
{
	LookupArgs	args = {user, database, out, true, true, 0};
	bool		console = console_is_database(database);

	memset(out, 0, sizeof(*out));
	register_callbacks();
	/* the admin console's privileges are read afresh at every console login (rare) */
	if (!invalidations_pending() && !console && role_cache && !cache_stale)
	{
		RoleEntry  *r = hash_search(role_cache, user, HASH_FIND, NULL);
		DatabaseEntry *d = hash_search(db_cache, database, HASH_FIND, NULL);

		if (r)
		{
			*out = r->info;
			args.need_role = false;
		}
		if (d)
		{
			out->db_exists = d->exists;
			out->db_allows_conn = d->allows_conn;
			args.need_db = false;
		}
	}
	if (args.need_role || args.need_db)
	{
		if (!auth_in_transaction(lookup_in_transaction, &args) || out->catalog_locked)
			return false;
		if (!console)
			cache_fill(&args);
	}
	if (out->has_valid_until)
		role_apply_expiry(out, pgbun_clock_wall_now());	/* rolvaliduntil is a wall time */
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
		process_pending_invalidations();
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

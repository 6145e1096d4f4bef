/*
 * shmem.h - pgbun's shared-memory segment: what workers publish and what SQL
 * functions (admin.c) read or ask for.
 *
 * Layout: one PgbunShared header, then pool slots, then connection slots.
 *
 *  - Worker slots: pid, latch, which pause generation the worker has applied.
 *  - Pool slots: one per (database, user), shared by all workers: the server
 *    count that enforces pool limits across workers, and cumulative stat
 *    counters (pg_atomic_uint64, added to by any worker).
 *  - Connection slots: one per client or server connection, written only by
 *    the owning worker using the changecount protocol of PgBackendStatus
 *    (odd while writing); readers copy a slot and retry if it moved. The
 *    pools view derives its gauges (cl_active, sv_idle, maxwait, ...) from
 *    these slots, so there is no second copy of that state to drift.
 *  - Cancel table: a client's pooler-made BackendKeyData -> its slot, so a
 *    CancelRequest landing on any worker finds the linked server.
 *  - Sharing: a pool slot's starving mask has one bit per worker that has
 *    clients waiting for that pool and no room under the limits to open a
 *    server. Other workers see it (n_starving says whether to look at all),
 *    close an idle server they do not need and set the starving worker's
 *    latch, so one worker cannot hold a pool's servers idle while another's
 *    clients wait (pool.c, pool_share_servers).
 *  - Console commands (KILL, RECONNECT, DISABLE, KILL_CLIENT, SHUTDOWN):
 *    declarative too, owned by control.c.
 *  - Pause: declarative. pause()/resume() edit the paused set and bump
 *    pause_generation; each worker applies it, and reports it done once none
 *    of its paused pools holds a server linked to a client.
 */
#ifndef PGBUN_SHMEM_H
#define PGBUN_SHMEM_H

#include "postgres.h"

#include <sys/socket.h>

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"

#define PGBUN_MAX_WORKERS		64
#define PGBUN_MAX_POOLS			1024
#define PGBUN_MAX_PAUSED_DBS	64
#define PGBUN_ADDR_LEN			64		/* text form of an address, "[::1]:6432" or a socket path */
#define PGBUN_MAX_HOSTS			128		/* distinct (host, port) of pgbun.databases host lists */
#define PGBUN_HOST_NAME_LEN		256

/* Connection kinds and states, as published. Values are stable: views map them to names. */
typedef enum ConnKind
{
	CONN_FREE = 0,
	CONN_CLIENT,
	CONN_SERVER,
} ConnKind;

typedef enum ClientState
{
	CL_LOGIN = 1,				/* startup packet / authentication */
	CL_WAITING_LOGIN,			/* authenticated, waiting for the pool's first server login */
	CL_ACTIVE,					/* logged in: idle or linked to a server */
	CL_WAITING,					/* has a query, queued for a server */
	CL_WAITING_CANCEL,			/* a CancelRequest connection: its cancel cannot go yet (cancel.c) */
	CL_ACTIVE_CANCEL,			/* ... its cancel is on its way: closed once the server took it */
} ClientState;

typedef enum ServerState
{
	SV_LOGIN = 1,				/* connecting / authenticating */
	SV_IDLE,					/* ready, unlinked */
	SV_ACTIVE,					/* linked to a client */
	SV_USED,					/* released, reset not started yet */
	SV_TESTED,					/* running server_reset_query */
	SV_BEING_CANCELED,			/* released, held until the CancelRequests sent for it are done */
} ServerState;

typedef struct PgbunWorkerSlot
{
	int			pid;			/* 0 when not running */
	Latch	   *latch;
	uint64		pause_applied;	/* pause_generation this worker has applied */
	bool		pause_drained;	/* no linked servers in its paused pools */
	uint64		control_applied;	/* control_generation this worker has applied (control.c) */
	pg_atomic_uint32 cancels_done;	/* set by any worker: a server of this one may be free again (cancel.c) */
} PgbunWorkerSlot;

typedef struct PgbunPoolSlot
{
	bool		in_use;
	uint64		worker_mask;	/* workers holding a pool for it (bit per worker; under the mutex) */
	char		database[NAMEDATALEN];
	char		user[NAMEDATALEN];
	int			pool_mode;		/* PoolMode in force for this pool */
	pg_atomic_uint32 server_count;	/* all its server connections, every worker, every state */
	pg_atomic_uint64 starving;	/* bit per worker: its waiters found no room to open a server */
	/* its cumulative stats are per worker, in counters.h's PoolStats */
} PgbunPoolSlot;

/*
 * The ParameterStatus set the latest server login of a pool reported, on
 * any worker (its welcome, session.c). A worker whose pool has no server yet
 * welcomes the pool's first client with it instead of waiting for a server
 * of its own, which another worker may hold. Beside the pool slots, not in
 * them: a kilobyte would push the atomics every request reads apart. Under
 * the mutex; written at a server login whose set differs, read at a
 * client login when the generation says it changed.
 */
#define PGBUN_WELCOME_MAX		1024
typedef struct PgbunPoolWelcome
{
	pg_atomic_uint64 generation;	/* bumped by each write; 0: never written */
	uint16		len;			/* 0: none, or the latest was too long to share */
	char		data[PGBUN_WELCOME_MAX];
} PgbunPoolWelcome;

/* A host's role, as the server reports it (in_hot_standby). */
typedef enum HostRole
{
	HOST_ROLE_UNKNOWN = 0,
	HOST_ROLE_PRIMARY,
	HOST_ROLE_STANDBY,
} HostRole;

/* A host's health (health.c). */
typedef enum HostState
{
	HOST_UP = 0,				/* usable (also before the first connection) */
	HOST_DOWN,					/* failed; skipped until next_retry */
	HOST_CHECKING,				/* retry due: one connection attempt decides */
} HostState;

/*
 * One host of the pgbun.databases host lists, shared by every worker and
 * every target that lists it (keyed by name and port): what the servers
 * said about it and whether it answers. Written under pgbun_shared->mutex
 * (rarely: logins, failures, checks); read without it for host selection,
 * where a value a moment old is as good as a fresh one.
 */
typedef struct PgbunHostSlot
{
	bool		in_use;
	char		host[PGBUN_HOST_NAME_LEN];	/* as configured: name, address or socket directory */
	int			port;
	char		addr[PGBUN_ADDR_LEN];	/* the address in use (text) */
	uint8		role;			/* HostRole */
	bool		read_only;		/* default_transaction_read_only = on */
	uint8		state;			/* HostState */
	int			failures;		/* consecutive */
	TimestampTz role_time;		/* when the role was last reported */
	TimestampTz last_check;		/* last login or check on it */
	TimestampTz next_retry;		/* HOST_DOWN: not before this */
	TimestampTz checking_since; /* HOST_CHECKING: when the deciding attempt started */
	TimestampTz probe_since;	/* a role probe in flight since (health.c), 0: none */
	TimestampTz probe_next;		/* no new role probe before this */
	int			lag_ms;			/* replica lag, -1: unknown */
	TimestampTz lag_time;		/* when it was measured */
	char		last_error[128];
	pg_atomic_uint32 n_servers; /* its server connections, every worker, every state */
} PgbunHostSlot;

typedef struct PgbunConnSlot
{
	/* changecount protocol: odd while the owner writes */
	volatile uint32 changecount;
	/*
	 * server: its id's low 32 bits (high half) and the CancelRequests in
	 * flight to its backend (low half), changed by any worker with a
	 * compare-and-swap that checks the id (cancel.c). Outside what
	 * slot_clear wipes, since other workers touch it without the protocol.
	 */
	pg_atomic_uint64 cancel_holds;
	uint8		kind;			/* ConnKind */
	uint8		state;			/* ClientState or ServerState */
	int16		worker;			/* owning worker number */
	int32		pool;			/* pool slot index, -1 before login */
	int32		peer;			/* linked connection's slot index, -1 if none */
	uint64		id;				/* unique per connection, for views (ptr column) */
	TimestampTz connect_time;
	TimestampTz request_time;	/* last request (client) / last use (server) */
	TimestampTz wait_start;		/* since when a client waits for a server; 0 if not */
	char		addr[PGBUN_ADDR_LEN];	/* remote address text (client: peer; server: target) */
	int32		port;			/* remote port, 0 for Unix sockets */
	char		local_addr[PGBUN_ADDR_LEN];
	int32		local_port;
	char		application_name[NAMEDATALEN];
	char		tls[16];		/* TLS protocol version ("TLSv1.3"), "" for plain */
	/* client: key given out by pgbun; server: the backend's real pid and key */
	uint32		cancel_pid;
	uint32		cancel_key;
	/* server only: where to send a CancelRequest */
	struct sockaddr_storage sv_sockaddr;
	socklen_t	sv_sockaddr_len;
	int16		host_slot;		/* server: its PgbunHostSlot, -1: the default target */
	char		target[NAMEDATALEN];	/* server: the pgbun.databases entry routing it, "" for none */
	/* server: pgbun's own queries run for its client (SETs at link): a CancelRequest waits (cancel.c) */
	bool		setting_up;
	/* KILL_CLIENT: the console writes the id here (under the mutex); the owner closes the client */
	uint64		kill_id;
	/* client: CancelRequests that found it waiting for a server (cancel.c, any worker) */
	pg_atomic_uint32 cancels_waiting;
} PgbunConnSlot;

/* A database's console-command state (control.c). */
typedef struct PgbunDbControl
{
	char		database[NAMEDATALEN];
	bool		disabled;		/* DISABLE: new clients refused */
	TimestampTz kill_before;	/* KILL: connections made before this are closed */
	TimestampTz reconnect_before;	/* RECONNECT: servers made before this are not reused */
	uint64		set_gen;		/* control_generation of its last change */
} PgbunDbControl;

#define PGBUN_MAX_DB_CONTROLS	64

typedef struct PgbunShared
{
	slock_t		mutex;			/* protects pool slot allocation, free list, cancel table, pause set */
	int			n_workers;
	PgbunWorkerSlot workers[PGBUN_MAX_WORKERS];
	ConditionVariable pause_cv; /* workers broadcast when pause_drained changes */

	/* pause state */
	uint64		pause_generation;
	bool		pause_all;
	int			n_paused_dbs;
	char		paused_dbs[PGBUN_MAX_PAUSED_DBS][NAMEDATALEN];

	/* console commands (control.c), under the mutex; the generation says something changed */
	pg_atomic_uint64 control_generation;
	TimestampTz kill_all_before;
	TimestampTz reconnect_all_before;
	int			n_db_controls;
	PgbunDbControl db_controls[PGBUN_MAX_DB_CONTROLS];
	uint64		kills_requested;	/* KILL_CLIENT requests so far (kill_id in the slots) */
	bool		shutdown_requested;

	/* cross-worker client count for max_client_conn */
	pg_atomic_uint32 client_count;
	/* starving bits set over all pool slots: 0 means no worker needs to look */
	pg_atomic_uint32 n_starving;
	pg_atomic_uint64 next_conn_id;
	TimestampTz clock_anchor;	/* the steady clock's origin (clock.c) */
	TimestampTz stats_start;	/* when the segment (and so the stat counters) was created */

	PgbunPoolSlot pools[PGBUN_MAX_POOLS];
	PgbunPoolWelcome welcomes[PGBUN_MAX_POOLS];	/* by pool slot, under the mutex */
	PgbunHostSlot hosts[PGBUN_MAX_HOSTS];	/* health.c */

	int			n_conn_slots;
	int			n_client_slots; /* the clients' share of them: max_client_conn at server start */
	int			free_conn_head;	/* free list threaded through conn_next */
	int			n_cancel_buckets;
	/* variable part follows: int conn_next[n_conn_slots];
	 * int cancel_buckets[n_cancel_buckets]; int cancel_next[n_conn_slots];
	 * PgbunConnSlot conns[n_conn_slots] */
} PgbunShared;

extern PgbunShared *pgbun_shared;

/* Access to the variable part (valid once pgbun_shared is attached). */
extern PgbunConnSlot *pgbun_conn_slot(int idx);

/* _PG_init: request the segment; shmem startup creates it. */
extern void pgbun_shmem_register(void);
/* True when the library was preloaded and the segment exists. */
extern bool pgbun_shmem_attached(void);

/* Connection slots (owning worker only). -1 when none is free. */
extern int	pgbun_conn_slot_alloc(ConnKind kind, int worker);
extern void pgbun_conn_slot_free(int idx);
/* Free every slot a worker owns (a restarted worker reclaims its predecessor's). */
extern void pgbun_conn_slots_release_worker(int worker);
/* Begin/end a write to a slot the caller owns. */
#define PGBUN_SLOT_WRITE_BEGIN(s) do { (s)->changecount++; pg_write_barrier(); } while (0)
#define PGBUN_SLOT_WRITE_END(s)   do { pg_write_barrier(); (s)->changecount++; } while (0)
/* Publish a connection's TLS protocol version ("" for none) to its slot (owner only; idx may be -1). */
extern void pgbun_conn_slot_set_tls(int idx, const char *version);
/* Copy a slot consistently (readers); workers never sleep in it. */
extern void pgbun_conn_slot_read(int idx, PgbunConnSlot *copy);
/* The same without waiting for a writer: false when no consistent copy came quickly. */
extern bool pgbun_conn_slot_try_read(int idx, PgbunConnSlot *copy);

/*
 * Pool slots: find or create the slot of (database, user) and record that
 * the worker uses it; -1 when the table is full. Release drops the worker's
 * use; the last user frees the slot (its stats are forgotten).
 */
extern int	pgbun_pool_slot_acquire(const char *database, const char *user, int worker);
extern void pgbun_pool_slot_release(int idx, int worker);
/* Drop every pool slot use of a worker number (a restarted worker's predecessor). */
extern void pgbun_pool_slots_release_worker(int worker);
/* Share a pool's welcome (name\0value\0 pairs; one too long shares none); its generation. */
extern uint64 pgbun_pool_welcome_publish(int idx, const char *data, uint16 len);
/* The shared welcome's generation: one read, no lock (0: none). */
extern uint64 pgbun_pool_welcome_generation(int idx);
/* Copy the shared welcome into buf (PGBUN_WELCOME_MAX bytes): its length (0: none), *gen its generation. */
extern uint16 pgbun_pool_welcome_read(int idx, char *buf, uint64 *gen);

/* Cancel table: register a client's key, find it, remove it. */
extern void pgbun_cancel_register(int slot_idx, uint32 pid, uint32 key);
extern int	pgbun_cancel_lookup(uint32 pid, uint32 key);
extern void pgbun_cancel_unregister(int slot_idx, uint32 pid);

/*
 * Starving marks (see the header comment): set or clear this worker's bit in
 * a pool slot, keeping n_starving in step; release_worker clears every bit of
 * a worker number (a restarted worker drops its predecessor's).
 */
extern void pgbun_pool_set_starving(int pool_idx, int worker, bool starving);
extern void pgbun_starving_release_worker(int worker);
/* Set the latches of the running workers in a bit mask (bit n: worker n). */
extern void pgbun_wake_workers(uint64 mask);

/* Pause state: is this database paused right now (per the shared set)? */
extern bool pgbun_db_paused(const char *database);
/* Pause a database (NULL: everything): the generation to wait for, 0 if the set is full. Wakes the workers. */
extern uint64 pgbun_pause_set_add(const char *database);
/* Resume a database (NULL: everything). Wakes the workers. */
extern void pgbun_pause_set_remove(const char *database);
/* Have all running workers applied generation gen and drained their paused pools? */
extern bool pgbun_pause_done(uint64 gen);
/* Is this worker alive? Caller holds pgbun_shared->mutex. */
extern bool pgbun_worker_running(const PgbunWorkerSlot *w);

#endif							/* PGBUN_SHMEM_H */

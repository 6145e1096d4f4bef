/*
 * pooler.h - the objects of one worker's pooler: clients, servers, pools.
 *
 * Each client and server is in exactly one state, and each state is one list
 * (of its pool, or of the worker for logins); client_set_state() and
 * server_set_state() are the only ways to move, and they also publish the
 * state to the connection's shared-memory slot. Objects are freed only at the
 * end of a loop turn (the "closed" lists), so no event in the same turn can
 * touch freed memory.
 */
#ifndef PGBUN_POOLER_H
#define PGBUN_POOLER_H

#include "postgres.h"

#include <sys/socket.h>

#include "lib/ilist.h"
#include "datatype/timestamp.h"

#include "poll.h"
#include "sbuf.h"
#include "shmem.h"
#include "track.h"

struct Pool;
struct Server;
struct AuthState;
struct ParamSet;

typedef struct Client
{
	IoObj		io;				/* IO_CLIENT; first member */
	SBuf		sb;
	dlist_node	node;			/* on the list of its state */
	dlist_node	busy_node;		/* on W->busy_clients while in_busy */
	bool		in_busy;
	ClientState state;
	bool		closed;			/* on the closed list, freed at turn end */
	bool		unix_socket;
	struct Pool *pool;			/* NULL until login succeeds */
	struct Server *link;		/* linked server or NULL */
	int			slot;			/* shared-memory slot, -1 if none */
	uint32		cancel_pid;		/* the BackendKeyData pgbun gave this client */
	uint32		cancel_key;
	uint32		cancels_seen;	/* its slot's cancels_waiting when it started to wait */
	int			cancel_pool;	/* a CancelRequest connection: the pool slot of the client it cancels, -1 */
	TimestampTz connect_time;
	TimestampTz request_time;	/* last message from the client */
	TimestampTz wait_start;		/* when it started waiting for a server, 0 if not */
	char	   *params;			/* wanted session parameters: name\0value\0...\0 (session.c) */
	uint16		params_len;
	bool		params_fp_valid;	/* params_fp matches params (cleared on every change) */
	uint64		params_fp;		/* params_client_fingerprint() of what it wants */
	char	   *startup;		/* its connect-time values (startup packet, options), validated */
	uint16		startup_len;
	struct ParamSet *welcome;	/* the ParameterStatus it was welcomed with (its defaults) */
	bool		reapply;		/* its RESET / DISCARD ALL ran: restore its connect-time values */
	bool		learn;			/* it SET (or RESET) something unreported: read back what it set */
	struct AuthState *auth;		/* only during login */
	char		tx_status;		/* last ReadyForQuery status it saw */
	bool		named_parse;	/* sent a named Parse where the pool mode cannot keep it */
	struct ClientStmts *stmts;	/* its named prepared statements (prepared.c) */
	const char *stmt_error;		/* why a message could not be pooled (static text) */
	uint8		refuse;			/* ClientRefusal: over a limit at accept, refused after its first packet */
	bool		refuse_counted; /* among the worker's refusals in progress (client_login.c) */
	struct Console *console;	/* a client of the admin console (console.c), else NULL */
	const char *stmt_sqlstate;	/* ... and the SQLSTATE to close it with (NULL: 08P01) */
	bool		wait_answers;	/* its next message waits for its server's answers (prepared.c) */
	/* its unnamed statement, carried to the next server (prepared.c) */
	uint8	   *unnamed;		/* body of its last unnamed Parse (after the name) */
	uint32		unnamed_len;
	uint32		unnamed_cap;
	uint64		unnamed_id;		/* worker-unique id of that Parse, 0: none pgbun can carry */
	/* the one before it, until the backend has taken (or skipped) the new Parse */
	uint8	   *unnamed_prev;
	uint32		unnamed_prev_len;
	uint32		unnamed_prev_cap;
	uint64		unnamed_prev_id;
	struct NotifyClient *notify;	/* its LISTEN channels and queued notifications (notify.c) */
} Client;

/* A connection that brought a CancelRequest and waits for it to be done (cancel.c)? */
static inline bool
client_is_cancel_request(const Client *c)
{
	return c->state == CL_WAITING_CANCEL || c->state == CL_ACTIVE_CANCEL;
}

/* Why a client is refused at accept (Client.refuse). */
typedef enum ClientRefusal
{
	REFUSE_NONE = 0,
	REFUSE_MAX_CLIENT_CONN,		/* pgbun.max_client_conn clients already */
	REFUSE_NO_SLOT,				/* no shared connection slot left */
} ClientRefusal;

/* Where a server connection's TLS set-up stands (server_tls_sslmode prefer and up). */
typedef enum ServerTlsStep
{
	SV_TLS_NONE = 0,			/* no TLS wanted, or set up already */
	SV_TLS_ANSWER,				/* SSLRequest sent, waiting for 'S' or 'N' */
	SV_TLS_HANDSHAKE,			/* 'S' came: TLS handshake running */
} ServerTlsStep;

typedef struct Server
{
	IoObj		io;				/* IO_SERVER; first member */
	SBuf		sb;
	dlist_node	node;
	ServerState state;
	bool		closed;
	bool		connecting;		/* non-blocking connect() in progress */
	uint8		tls_step;		/* ServerTlsStep: SSLRequest answer / handshake before the startup packet */
	struct Pool *pool;
	Client	   *link;
	int			slot;
	uint32		be_pid;			/* the backend's real BackendKeyData */
	int8		sched_batch;	/* backend_sched.c: -1 not ours to set, else the policy set (0/1) */
	uint32		be_key;
	TimestampTz connect_time;
	TimestampTz last_used;		/* last release (idle timeout) */
	TimestampTz query_start;	/* stats: current query, 0 if none */
	TimestampTz xact_start;		/* stats: current transaction, 0 if none */
	char		tx_status;		/* last ReadyForQuery status */
	Track		tracker;		/* the client traffic's answers still owed; at rest or not (track.c) */
	uint8		link_mode;		/* PoolMode of the current link, fixed when it was made */
	bool		mode_violation; /* statement mode: the client opened a transaction */
	void	   *answer_mark;	/* stream mark of the request a CommandComplete answers (prepared.c) */
	char		copy_violation; /* a message pgbun answered itself was sent into a COPY (its type) */
	bool		cancel_sent;	/* query_timeout already cancelled the running query */
	bool		cancel_unheld;	/* a cancel was sent that its slot does not count: never hand it on */
	bool		reset_due;		/* SV_BEING_CANCELED: server_reset_query still to run */
	bool		rewrite;		/* statement names rewritten, pgbun answers some requests (prepared.c) */
	bool		lost_track;		/* an answer matched no request while rewriting: close */
	bool		lost_logged;	/* the tracker's loss was logged */
	char		last_sqlstate[6];	/* SQLSTATE of the ErrorResponse being handled */
	struct ServerStmts *stmts;	/* pgbun statements prepared on it */
	bool		stmts_unsure;	/* a DEALLOCATE of unknown names ran: Close before each Parse */
	uint64		unnamed_id;		/* Client.unnamed_id of its unnamed statement, 0: unknown */
	TimestampTz last_ready;		/* last ReadyForQuery (idle_transaction_timeout) */
	int			hidden_rfq;		/* ReadyForQuery answers to swallow (pooler's own queries) */
	bool		hidden_error;	/* one of the pooler's own queries failed */
	bool		hidden_done;	/* the last hidden answer arrived; act after the pump */
	bool		fatal_forwarded;	/* the client got the server's FATAL error */
	char		held_ready;		/* status of the client's ReadyForQuery held back until pgbun's
								 * restore after its RESET / DISCARD ALL is answered, or 0 */
	char	   *params;			/* parameter values as the server reported them (ParameterStatus) */
	uint16		params_len;
	bool		learning;		/* a hidden query reads the client's session values back */
	bool		learn_rows;		/* ... and its rows are coming now */
	char	   *learned;		/* ... what it has read so far (name, value) */
	uint16		learned_len;
	bool		learn_overflow;	/* ... more than pgbun can carry */
	char	   *held;			/* ParameterStatus held back after a client's RESET (session.c) */
	uint16		held_len;
	char	   *set;			/* unreported parameters pgbun set here (absent: the default) */
	uint16		set_len;
	bool		dirty;			/* a client's SET/RESET may have changed anything: RESET ALL first */
	bool		params_fp_valid;	/* params_fp matches params and set (cleared on every change) */
	uint64		params_fp;		/* params_server_fingerprint() of its values */
	struct ScramClient *scram;	/* only during login */
	struct KdfJob *kdf_job;		/* login: a kdf.c thread derives the password's keys */
	char	   *sasl_first;		/* ... for this first SCRAM message of the server's */
	uint32		sasl_first_len;
	char	   *kdf_pw;			/* ... from this password (kept only if it still applies) */
	bool		login_done;		/* ReadyForQuery of the login seen; join the pool after the pump */
	/* LISTEN/NOTIFY in transaction and statement mode (notify.c) */
	bool		listener;		/* the pool's LISTEN connection: outside pool_size, never linked */
	bool		notify_listening;	/* may LISTEN to channels: UNLISTEN * before the next client */
	uint8		notify_changed; /* NOTIFY_CHANGED_*: the linked client ran LISTEN / UNLISTEN / DISCARD ALL */
	uint8		notify_step;	/* NotifyStep: the client's ReadyForQuery held by notify.c */
	uint64		notify_gen;		/* ... until the listener confirmed this generation */
	uint64		notify_set;		/* NotifyClient.set_id of the channels it listens to exactly, 0: unknown */
	/* where it is connected: a copy, since a reload may replace its Target */
	struct sockaddr_storage addr;
	socklen_t	addr_len;
	char		addr_text[PGBUN_ADDR_LEN];
	int			port;			/* 0 for a Unix socket */
	int			hslot;			/* its host's shared slot (health.c), -1: the default target */
	TimestampTz last_check;		/* last server_check_query (health.c) */
	bool		lag_check;		/* the hidden query running is the replica-lag check */
	bool		role_probe;		/* ... or a role probe its host's slot waits for (health.c) */
	bool		connect_query;	/* the hidden query running is the entry's connect_query */
	uint64		route_id;		/* its Target's route_id at launch (target.h) */
	struct AqPool *authq;		/* an auth_query connection (auth_query.c): never linked, on no pool list */
} Server;

struct Target;

typedef struct Pool
{
	dlist_node	node;			/* in the worker's pool list */
	struct Target *target;		/* where its servers go (target.c; relinked on reload) */
	int			slot;			/* pool slot in shared memory */
	char		database[NAMEDATALEN];
	char		user[NAMEDATALEN];
	/* client lists by state */
	dlist_head	active_clients;
	dlist_head	waiting_clients;	/* FIFO */
	dlist_head	waitlogin_clients;
	/* server lists by state */
	dlist_head	login_servers;
	dlist_head	idle_servers;	/* LIFO: hot connections first */
	dlist_head	active_servers;
	dlist_head	used_servers;	/* SV_USED and SV_TESTED */
	int			n_servers;		/* this worker's, all states */
	int			mode;			/* PoolMode in force (overrides resolved) */
	bool		kick_queued;	/* on W->kick_pools: hand servers to waiters at the turn's end */
	dlist_node	kick_node;
	int			size;			/* pool size in force */
	int			server_lifetime;	/* ms in force (its entry's, else the setting); checked per release */
	bool		paused;
	bool		starving;		/* our bit is set in the shared slot's starving mask */
	/* ParameterStatus of the latest server login, sent to every new client (refreshed per login) */
	struct ParamSet *welcome;
	uint64		welcome_gen;	/* the shared welcome's generation it is (session_pool_welcome) */
	/* credentials to log in to the server as this user */
	bool		have_scram_keys;
	uint8		client_key[32];
	uint8		server_key[32];
	char	   *md5_verifier;	/* "md5..." from pg_authid, or NULL */
	char	   *password;		/* the role's plain password from pgbun.auth_file, or NULL */
	struct ScramPasswordKeys *pw_keys;	/* SCRAM keys derived from it (malloc'd), or NULL */
	TimestampTz last_login_failure;
	uint8	   *login_error;	/* the server's last login ErrorResponse (whole message) */
	uint32		login_error_len;
	TimestampTz empty_since;	/* no clients, no servers since then (pool_idle_timeout); 0 if in use */
	TimestampTz reconnect_before;	/* RECONNECT: servers made before this are closed, not reused */
	struct NotifyPool *notify;	/* its listener and channels (notify.c), or NULL */
} Pool;

/* The worker's loop-wide state other modules read. */
typedef struct WorkerState
{
	int			id;				/* worker number */
	TimestampTz now;			/* refreshed once per loop turn, on the steady clock (clock.h) */
	bool		shutting_down;
	bool		draining;		/* smart shutdown: no new clients, idle servers close */
	dlist_head	pools;
	dlist_head	login_clients;	/* CL_LOGIN, all pools */
	dlist_head	cancel_clients; /* CL_WAITING_CANCEL, CL_ACTIVE_CANCEL: CancelRequests waiting to be done */
	dlist_head	console_clients;	/* CL_ACTIVE clients of the admin console */
	dlist_head	closed_clients; /* freed at turn end */
	dlist_head	closed_servers;
	dlist_head	busy_clients;	/* yielded mid-pump: resume next turn */
	dlist_head	kick_pools;		/* pools whose waiters may get a server (pool_run_kicks) */
	int			n_clients;
	/* where server connections go */
	struct sockaddr_storage server_addr;
	socklen_t	server_addr_len;
	char		server_addr_text[PGBUN_ADDR_LEN];
	int			server_port;
} WorkerState;

extern WorkerState *W;

/* worker.c: the kdf.c threads started and watched (first call); false when they cannot run. */
extern bool worker_kdf_ready(void);

/* client.c */
extern void client_on_event(Client *c, uint32 events);
extern void client_set_state(Client *c, ClientState st);
extern void client_close(Client *c, const char *sqlstate, const char *fmt,...) pg_attribute_printf(3, 4);
extern void client_server_ready(Client *c);
extern void client_pump_in(Client *c);
extern void client_publish(Client *c);
extern void client_free(Client *c);
extern const char *client_param(Client *c, const char *name);
extern bool client_send_error(Client *c, bool fatal, const char *sqlstate, const char *msg);
/* Best-effort flush of pooler-made output; false: the write failed and the client is closed. */
extern bool client_flush(Client *c);

/* server.c */
extern void server_on_event(Server *s, uint32 events);
extern int	server_out_watch(SBuf *sb, bool on);
extern int	client_out_watch(SBuf *sb, bool on);
extern void server_set_state(Server *s, ServerState st);
extern void server_close(Server *s, const char *reason);
extern bool server_attach(Server *s, Client *c);
extern void server_link(Server *s, Client *c);
extern void server_release(Server *s);
/* The cancels a server waited for are over: send what was held (out_held), or run the deferred reset (reset_due). */
extern void server_cancels_done(Server *s);
extern bool server_close_if_cancel_may_land(Server *s);
/* Unlink without releasing (pool.c's release policy decides, server_return_to_pool acts). */
extern void server_return_to_pool(Server *s);
extern bool server_cancel_query(Server *s);
extern void server_pump_out(Server *s);
extern void server_free(Server *s);
/* Publish state, pool, link and backend key to the server's shared slot. */
extern void server_publish(Server *s);
/* Queue one of the pooler's own simple queries; its answers are hidden from the client. */
extern bool server_queue_query(Server *s, const char *sql);
/* The client's ReadyForQuery held by session.c (held_ready), out now (notify.c lets it go too). */
extern void emit_held_ready(Server *s);
/* Every CommandComplete the server sends for the client's traffic passes here. */
extern void server_on_command_complete(Server *s, const char *tag);

/* A request is in flight on the server (stats, query_timeout, idle timeouts). */
static inline bool
server_busy(const Server *s)
{
	return track_busy(&s->tracker);
}

/*
 * Nothing owed, nothing half done, transaction idle, none of the pooler's
 * own queries running: another client may have it.
 */
static inline bool
server_at_rest(const Server *s)
{
	return track_at_rest(&s->tracker) && s->tx_status == 'I' && s->hidden_rfq == 0 &&
		s->notify_step == 0;
}

/* pool.c */
extern struct Pool *pool_get(const char *database, const char *user);
extern bool pool_link_idle_now(struct Pool *pool, Client *c);
extern void pool_request_server(struct Pool *pool, Client *c);
extern void pool_server_available(struct Pool *pool, Server *s);
extern void pool_server_login_failed(struct Pool *pool, const uint8 *err, uint32 len);
extern void pool_janitor(void);
extern void pool_apply_pause(void);
extern void pool_release_canceled(void);
extern bool pool_can_open_server(struct Pool *pool);
/*
 * Count one more server connection of the pool if its limits allow. false:
 * *full says a limit refused (else server_login_retry after a failed login).
 */
extern bool pool_reserve_server(struct Pool *pool, bool *full);
/* Queue the pool for pool_run_kicks (safe anywhere: never links or opens a server itself). */
extern void pool_kick_waiting(struct Pool *pool);
/* From the main loop only: hand servers to waiters of queued pools. false: more queued. */
extern bool pool_run_kicks(void);
extern void pool_reconfigure(struct Pool *pool);
/* dns.c: the server host's address is known / cannot be found (waiters get 08006). */
extern void pool_target_resolved(void);
extern void pool_target_unresolvable(const char *host, const char *reason);
/* Give idle servers to other workers' starving pools; kick ours that got room. */
extern void pool_share_servers(void);
/* Transaction/statement mode: give the server back once it is at rest. true: released. */
extern bool pool_release_if_at_rest(Server *s);

#endif							/* PGBUN_POOLER_H */

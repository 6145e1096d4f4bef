/* pgbun--1.0.sql - the SQL face of the pooler: views over its shared state, pause and resume */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pgbun" to load this file. \quit

-- The schema pgbun is created by CREATE EXTENSION (schema = pgbun in the control file).

--
-- pools: one row per (database, user) pool, like PgBouncer's SHOW POOLS.
--
CREATE FUNCTION pgbun.pools(
    OUT database text,
    OUT "user" text,
    OUT cl_active int,
    OUT cl_waiting int,
    OUT sv_active int,
    OUT sv_idle int,
    OUT sv_used int,
    OUT sv_tested int,
    OUT sv_login int,
    OUT maxwait int,
    OUT maxwait_us int,
    OUT pool_mode text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_pools_1_0'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.pools AS
    SELECT * FROM pgbun.pools();

COMMENT ON FUNCTION pgbun.pools() IS
'Set-returning function behind the view pgbun.pools.';
COMMENT ON VIEW pgbun.pools IS
'One row per pgbun pool (database, user), summed over all workers. cl_active: logged-in clients, idle or linked to a server; cl_waiting: clients waiting for a server (including for the pool''s first server login); sv_active/sv_idle/sv_used/sv_tested/sv_login: server connections by state; maxwait, maxwait_us: how long the oldest waiting client has waited, whole seconds and the remaining microseconds; pool_mode: session, transaction or statement. Clients still logging in are not counted.';

--
-- stats: cumulative counters per database, like PgBouncer's SHOW STATS.
--
CREATE FUNCTION pgbun.stats(
    OUT database text,
    OUT total_xact_count bigint,
    OUT total_query_count bigint,
    OUT total_received bigint,
    OUT total_sent bigint,
    OUT total_xact_time bigint,
    OUT total_query_time bigint,
    OUT total_wait_time bigint,
    OUT total_client_parse_count bigint,
    OUT total_server_parse_count bigint,
    OUT total_bind_count bigint,
    OUT avg_xact_count bigint,
    OUT avg_query_count bigint,
    OUT avg_recv bigint,
    OUT avg_sent bigint,
    OUT avg_xact_time bigint,
    OUT avg_query_time bigint,
    OUT avg_wait_time bigint
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_stats_1_0'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.stats AS
    SELECT * FROM pgbun.stats();

COMMENT ON FUNCTION pgbun.stats() IS
'Set-returning function behind the view pgbun.stats.';
COMMENT ON VIEW pgbun.stats IS
'Cumulative pooler statistics per database, summed over its pools and all workers, counted since the server started (or last restarted after a crash). Times are in microseconds, bytes as seen on client connections. total_*: totals. avg_xact_count, avg_query_count, avg_recv, avg_sent: the totals divided by the whole seconds since the counters started (at least 1), so a per-second average over the whole period rather than PgBouncer''s last stats_period. avg_xact_time = total_xact_time / total_xact_count; avg_query_time = total_query_time / total_query_count; avg_wait_time = total_wait_time / total_query_count (average wait for a server per query); each 0 when its divisor is 0. total_client_parse_count: named Parse messages clients sent in transaction/statement pools; total_server_parse_count: Parse messages pgbun sent to servers for them (a miss: the server lacked the statement); total_bind_count: Binds of those named statements (hits = total_bind_count - misses).';

--
-- clients and servers: one row per connection, like PgBouncer's SHOW CLIENTS / SHOW SERVERS.
--
CREATE FUNCTION pgbun.clients(
    OUT type text,
    OUT "user" text,
    OUT database text,
    OUT state text,
    OUT addr text,
    OUT port int,
    OUT local_addr text,
    OUT local_port int,
    OUT connect_time timestamptz,
    OUT request_time timestamptz,
    OUT wait int,
    OUT wait_us int,
    OUT close_needed int,
    OUT ptr text,
    OUT link text,
    OUT remote_pid int,
    OUT tls text,
    OUT application_name text,
    OUT worker int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_clients_1_0'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.clients AS
    SELECT * FROM pgbun.clients();

COMMENT ON FUNCTION pgbun.clients() IS
'Set-returning function behind the view pgbun.clients.';
COMMENT ON VIEW pgbun.clients IS
'One row per client connection to pgbun, all workers. type is C; user and database are NULL until the client has logged in; state: login, waiting_login, active or waiting; addr/port: the client''s address (port 0 on a Unix socket), local_addr/local_port: where it connected; request_time: its last request; wait, wait_us: how long a waiting client has waited so far (seconds and remaining microseconds), else 0; close_needed is always 0; ptr: the connection''s id in hex, link: the id of the server it is linked to (NULL if none); remote_pid: the process id pgbun gave the client in its cancel key; tls: the TLS protocol version (e.g. TLSv1.3), empty for a plain connection; worker: the pgbun worker serving it.';

CREATE FUNCTION pgbun.servers(
    OUT type text,
    OUT "user" text,
    OUT database text,
    OUT state text,
    OUT addr text,
    OUT port int,
    OUT local_addr text,
    OUT local_port int,
    OUT connect_time timestamptz,
    OUT request_time timestamptz,
    OUT wait int,
    OUT wait_us int,
    OUT close_needed int,
    OUT ptr text,
    OUT link text,
    OUT remote_pid int,
    OUT tls text,
    OUT application_name text,
    OUT worker int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_servers_1_0'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.servers AS
    SELECT * FROM pgbun.servers();

COMMENT ON FUNCTION pgbun.servers() IS
'Set-returning function behind the view pgbun.servers.';
COMMENT ON VIEW pgbun.servers IS
'One row per server connection pgbun holds, all workers. type is S; state: login, idle, active, used or tested; addr/port: the server it connects to (port 0 on a Unix socket); request_time: when it was last used; wait and wait_us are always 0 for servers; close_needed is always 0; ptr: the connection''s id in hex, link: the id of the client it is linked to (NULL if none); remote_pid: the server backend''s process id; tls: the TLS protocol version of the server connection, empty when plain; worker: the pgbun worker owning it.';

--
-- pause and resume (PgBouncer's PAUSE / RESUME).
--
CREATE FUNCTION pgbun.pause(database text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgbun_pause_1_0'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION pgbun.pause(text) IS
'Pause a database (or, with NULL or no argument, every database): clients keep their connections, but no new transaction gets a server. Returns once every worker has applied the pause and no client of a paused pool is linked to a server. Pausing a paused database just waits again. The wait honours statement_timeout and query cancel; if it is interrupted the pause stays in force - undo it with pgbun.resume().';

CREATE FUNCTION pgbun.resume(database text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pgbun_resume_1_0'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

COMMENT ON FUNCTION pgbun.resume(text) IS
'Resume a paused database, or with NULL or no argument everything (the pause of all databases and every named one). Resuming a database that is not paused does nothing, and resuming one database does not lift pgbun.pause() of all. Returns at once, without waiting for the workers.';

--
-- Privileges: the views are for monitoring roles; control is for superusers
-- and whoever they grant it to. Schema usage is open to everyone, so a role
-- without a grant is told which object it may not use.
--
GRANT USAGE ON SCHEMA pgbun TO PUBLIC;

REVOKE ALL ON FUNCTION pgbun.pools() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.clients() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.servers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.pools() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pgbun.stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pgbun.clients() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pgbun.servers() TO pg_monitor;

REVOKE ALL ON pgbun.pools, pgbun.stats, pgbun.clients, pgbun.servers FROM PUBLIC;
GRANT SELECT ON pgbun.pools, pgbun.stats, pgbun.clients, pgbun.servers TO pg_monitor;

REVOKE ALL ON FUNCTION pgbun.pause(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.resume(text) FROM PUBLIC;

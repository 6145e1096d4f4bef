/* pgbun--1.3--1.4.sql - pgbun.pools counts the server connections held back for a cancel (sv_being_canceled) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.4'" to load this file. \quit

-- a new entry point with the column at the end, so the 1.0 definition keeps working
DROP VIEW pgbun.pools;
DROP FUNCTION pgbun.pools();
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
    OUT pool_mode text,
    OUT sv_being_canceled int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_pools_1_4'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.pools AS
    SELECT * FROM pgbun.pools();

COMMENT ON FUNCTION pgbun.pools() IS
'Set-returning function behind the view pgbun.pools.';
COMMENT ON VIEW pgbun.pools IS
'One row per pgbun pool (database, user), summed over all workers. cl_active: logged-in clients, idle or linked to a server; cl_waiting: clients waiting for a server (including for the pool''s first server login); sv_active/sv_idle/sv_used/sv_tested/sv_login: server connections by state; maxwait, maxwait_us: how long the oldest waiting client has waited, whole seconds and the remaining microseconds; pool_mode: session, transaction or statement; sv_being_canceled: server connections released while a cancel request sent for them was still on its way, held back from other clients until it is done. Clients still logging in are not counted.';

REVOKE ALL ON FUNCTION pgbun.pools() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.pools() TO pg_monitor;
REVOKE ALL ON pgbun.pools FROM PUBLIC;
GRANT SELECT ON pgbun.pools TO pg_monitor;

-- pgbun.servers shows a new state
COMMENT ON VIEW pgbun.servers IS
'One row per server connection pgbun holds, all workers. type is S; state: login, idle, active, used, tested or being_canceled (released, held from other clients until a cancel request sent for it is done); addr/port: the server it connects to (port 0 on a Unix socket); request_time: when it was last used; wait and wait_us are always 0 for servers; close_needed is always 0; ptr: the connection''s id in hex, link: the id of the client it is linked to (NULL if none); remote_pid: the server backend''s process id; tls: the TLS protocol version of the server connection, empty when plain; worker: the pgbun worker owning it; target: the pgbun.databases entry that routes it (NULL: none); host: the host of that entry''s list it is on (NULL: the default server).';

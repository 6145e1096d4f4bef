/* pgbun--1.4--1.5.sql - pgbun.pools counts the cancels on their way (cl_active_cancel_req, cl_waiting_cancel_req, sv_active_cancel) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.5'" to load this file. \quit

-- a new entry point with the columns at the end, so earlier definitions keep working
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
    OUT sv_being_canceled int,
    OUT cl_active_cancel_req int,
    OUT cl_waiting_cancel_req int,
    OUT sv_active_cancel int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_pools_1_5'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.pools AS
    SELECT * FROM pgbun.pools();

COMMENT ON FUNCTION pgbun.pools() IS
'Set-returning function behind the view pgbun.pools.';
COMMENT ON VIEW pgbun.pools IS
'One row per pgbun pool (database, user), summed over all workers. cl_active: logged-in clients, idle or linked to a server; cl_waiting: clients waiting for a server (including for the pool''s first server login); sv_active/sv_idle/sv_used/sv_tested/sv_login: server connections by state; maxwait, maxwait_us: how long the oldest waiting client has waited, whole seconds and the remaining microseconds; pool_mode: session, transaction or statement; sv_being_canceled: server connections released while a cancel request sent for them was still on its way, held back from other clients until it is done; cl_active_cancel_req: connections that brought a CancelRequest for a client of the pool, open until the server took the cancel; cl_waiting_cancel_req: those whose cancel waits to be sent (while pgbun''s own SETs run for the client, or the server''s listen queue is full); sv_active_cancel: cancel connections open to the pool''s servers, clients'' and pgbun''s own (query_timeout). Clients still logging in are not counted.';

REVOKE ALL ON FUNCTION pgbun.pools() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.pools() TO pg_monitor;
REVOKE ALL ON pgbun.pools FROM PUBLIC;
GRANT SELECT ON pgbun.pools TO pg_monitor;

-- pgbun.clients shows CancelRequest connections
COMMENT ON VIEW pgbun.clients IS
'One row per client connection to pgbun, all workers. type is C; user and database are NULL until the client has logged in (a CancelRequest connection shows those of the client it cancels); state: login, waiting_login, active, waiting, or, for a connection that brought a CancelRequest for a client of that user and database, active_cancel_req (the cancel is on its way to the server; the connection ends once the server took it) or waiting_cancel_req (the cancel waits to be sent); addr/port: the client''s address (port 0 on a Unix socket), local_addr/local_port: where it connected; request_time: its last request; wait, wait_us: how long a waiting client has waited so far (seconds and remaining microseconds), else 0; close_needed is always 0; ptr: the connection''s id in hex, link: the id of the server it is linked to (NULL if none); remote_pid: the process id pgbun gave the client in its cancel key; tls: the TLS protocol version (e.g. TLSv1.3), empty for a plain connection; worker: the pgbun worker serving it.';

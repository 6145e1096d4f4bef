/* pgbun--1.2--1.3.sql - pgbun.hosts, and the target and host of each server connection in pgbun.servers */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.3'" to load this file. \quit

CREATE FUNCTION pgbun.hosts(
    OUT database text,
    OUT host_index int,
    OUT host text,
    OUT port int,
    OUT target_session_attrs text,
    OUT role text,
    OUT read_only bool,
    OUT state text,
    OUT lag_ms int,
    OUT lag_time timestamptz,
    OUT last_check timestamptz,
    OUT failures int,
    OUT next_retry timestamptz,
    OUT last_error text,
    OUT sv_active int,
    OUT sv_idle int,
    OUT sv_other int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_hosts_1_3'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.hosts AS
    SELECT * FROM pgbun.hosts();

COMMENT ON FUNCTION pgbun.hosts() IS
'Set-returning function behind the view pgbun.hosts.';
COMMENT ON VIEW pgbun.hosts IS
'One row per host of each pgbun.databases entry with a host list, in list order (host_index from 0). role: primary, standby or unknown, as the server last reported it (in_hot_standby); read_only: its default_transaction_read_only; state: up, down (skipped until next_retry) or checking (one attempt decides); lag_ms: replica lag measured by the last check (max_replica_lag entries; NULL: not measured), at lag_time; last_check: last login or check; failures: consecutive failed connections or logins; next_retry: when a down host is tried again (exponential backoff with jitter from server_login_retry up to server_login_retry_max); last_error: why it went down; sv_active / sv_idle / sv_other: this entry''s server connections on it (linked, idle, logging in or being reset/checked), all workers. Role and health are per (host, port), shared by every entry listing it.';

REVOKE ALL ON FUNCTION pgbun.hosts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.hosts() TO pg_monitor;
REVOKE ALL ON pgbun.hosts FROM PUBLIC;
GRANT SELECT ON pgbun.hosts TO pg_monitor;

-- pgbun.servers gains target (the pgbun.databases entry routing the
-- connection, NULL for none) and host (the member of its host list, NULL for
-- the default server): a new entry point, so the 1.0 definition keeps working.
DROP VIEW pgbun.servers;
DROP FUNCTION pgbun.servers();
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
    OUT worker int,
    OUT target text,
    OUT host text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_servers_1_3'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.servers AS
    SELECT * FROM pgbun.servers();

COMMENT ON FUNCTION pgbun.servers() IS
'Set-returning function behind the view pgbun.servers.';
COMMENT ON VIEW pgbun.servers IS
'One row per server connection pgbun holds, all workers. type is S; state: login, idle, active, used or tested; addr/port: the server it connects to (port 0 on a Unix socket); request_time: when it was last used; wait and wait_us are always 0 for servers; close_needed is always 0; ptr: the connection''s id in hex, link: the id of the client it is linked to (NULL if none); remote_pid: the server backend''s process id; tls: the TLS protocol version of the server connection, empty when plain; worker: the pgbun worker owning it; target: the pgbun.databases entry that routes it (NULL: none); host: the host of that entry''s list it is on (NULL: the default server).';

REVOKE ALL ON FUNCTION pgbun.servers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.servers() TO pg_monitor;
REVOKE ALL ON pgbun.servers FROM PUBLIC;
GRANT SELECT ON pgbun.servers TO pg_monitor;

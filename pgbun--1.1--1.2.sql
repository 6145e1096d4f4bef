/* pgbun--1.1--1.2.sql - the views pgbun.databases, pgbun.lists and pgbun.latency */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.2'" to load this file. \quit

--
-- databases: one row per database a pool uses, like PgBouncer's SHOW DATABASES.
--
CREATE FUNCTION pgbun.databases(
    OUT name text,
    OUT host text,
    OUT port int,
    OUT database text,
    OUT force_user text,
    OUT pool_size int,
    OUT min_pool_size int,
    OUT reserve_pool_size int,
    OUT server_lifetime int,
    OUT pool_mode text,
    OUT load_balance_hosts text,
    OUT max_connections int,
    OUT current_connections int,
    OUT max_client_connections int,
    OUT current_client_connections int,
    OUT paused int,
    OUT disabled int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_databases_1_2'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.databases AS
    SELECT * FROM pgbun.databases();

COMMENT ON FUNCTION pgbun.databases() IS
'Set-returning function behind the view pgbun.databases.';
COMMENT ON VIEW pgbun.databases IS
'One row per database some pool uses, with the columns and values of the admin console''s SHOW DATABASES (without its legacy last column reserve_pool). host: pgbun.server_host, NULL for the local server''s Unix socket; port: pgbun.server_port (0: the local server''s port); database: the same as name; force_user, pool_mode (per pool: see pgbun.pools) and load_balance_hosts are NULL; pool_size: its pool_size from pgbun.databases or pgbun.default_pool_size; min_pool_size: pgbun.min_pool_size; reserve_pool_size: always 0; server_lifetime: pgbun.server_lifetime in seconds; max_connections: pgbun.max_db_connections (0: no limit); current_connections: its server connections; max_client_connections: always 0 (no limit per database); current_client_connections: clients of its pools; paused: 1 while pgbun.pause() (or PAUSE) holds it; disabled: always 0.';

--
-- lists: PgBouncer's SHOW LISTS, counts of pgbun's internal lists.
--
CREATE FUNCTION pgbun.lists(
    OUT list text,
    OUT items int
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_lists_1_2'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.lists AS
    SELECT * FROM pgbun.lists();

COMMENT ON FUNCTION pgbun.lists() IS
'Set-returning function behind the view pgbun.lists.';
COMMENT ON VIEW pgbun.lists IS
'The rows of the admin console''s SHOW LISTS, all workers: databases and users (distinct names of the pools in use), pools, used_clients (client connections, logging in or not), login_clients (still logging in), used_servers, free_clients and free_servers (both the free connection slots: clients and servers share one table), dns_names (1 when pgbun.server_host is a host name); peers, peer_pools, dns_zones, dns_queries and dns_pending are always 0.';

--
-- latency: percentiles of the query, transaction and wait-time histograms per pool.
--
CREATE FUNCTION pgbun.latency(
    OUT database text,
    OUT "user" text,
    OUT query_count bigint,
    OUT query_p50 double precision,
    OUT query_p95 double precision,
    OUT query_p99 double precision,
    OUT xact_count bigint,
    OUT xact_p50 double precision,
    OUT xact_p95 double precision,
    OUT xact_p99 double precision,
    OUT wait_count bigint,
    OUT wait_p50 double precision,
    OUT wait_p95 double precision,
    OUT wait_p99 double precision
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgbun_latency_1_2'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW pgbun.latency AS
    SELECT * FROM pgbun.latency();

COMMENT ON FUNCTION pgbun.latency() IS
'Set-returning function behind the view pgbun.latency.';
COMMENT ON VIEW pgbun.latency IS
'Per pool (database, user), all workers, since the pool started: how many queries, transactions and waits for a server its histograms hold (query_count, xact_count, wait_count) and their 50th, 95th and 99th percentiles in microseconds. Query time runs from the request to its ReadyForQuery, transaction time from the first request to ReadyForQuery with status idle, wait time from when a client needed a server to when it got one. The percentiles are estimates from the histogram buckets (100 us to 10 s, the buckets of the Prometheus metrics), interpolated linearly inside a bucket as Prometheus'' histogram_quantile() does, so they agree with it on the same buckets; times beyond 10 s report 10 s. NULL while a histogram is empty.';

REVOKE ALL ON FUNCTION pgbun.databases() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.lists() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbun.latency() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbun.databases() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pgbun.lists() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pgbun.latency() TO pg_monitor;

REVOKE ALL ON pgbun.databases, pgbun.lists, pgbun.latency FROM PUBLIC;
GRANT SELECT ON pgbun.databases, pgbun.lists, pgbun.latency TO pg_monitor;

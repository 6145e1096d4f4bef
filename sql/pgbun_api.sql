--
-- pgbun_api: the SQL interface (views, pause/resume, privileges, GUCs) on an
-- idle pooler. The server runs with test/regress.conf: pgbun preloaded, one
-- worker listening on a Unix socket only.
--
CREATE EXTENSION pgbun;

-- Wait (up to 60 s) until the pooler worker has published itself: before
-- that, resume() fails with "no pooler worker is running".
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        BEGIN
            PERFORM pgbun.resume();
            EXIT;
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;
SELECT count(*) AS workers FROM pg_stat_activity WHERE backend_type = 'pgbun worker';

-- Objects the extension owns
SELECT pg_describe_object(classid, objid, objsubid) COLLATE "C" AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pgbun')
  AND deptype = 'e'
ORDER BY 1;

-- View columns: names and types, in order
SELECT table_name, ordinal_position, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'pgbun' AND table_name = 'pools'
ORDER BY ordinal_position;
SELECT table_name, ordinal_position, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'pgbun' AND table_name = 'stats'
ORDER BY ordinal_position;
SELECT table_name, ordinal_position, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'pgbun' AND table_name = 'clients'
ORDER BY ordinal_position;
SELECT table_name, ordinal_position, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'pgbun' AND table_name = 'servers'
ORDER BY ordinal_position;
SELECT table_name, ordinal_position, column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'pgbun' AND table_name IN ('databases', 'lists', 'latency')
ORDER BY table_name COLLATE "C", ordinal_position;

-- Every view and function is documented
SELECT c.relname COLLATE "C" AS view, obj_description(c.oid, 'pg_class') IS NOT NULL AS has_comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgbun' AND c.relkind = 'v'
ORDER BY 1;
SELECT p.oid::regprocedure::text COLLATE "C" AS function,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pgbun'
ORDER BY 1;

-- An idle pooler: no pools, connections or stats yet
SELECT count(*) AS pools FROM pgbun.pools;
SELECT count(*) AS clients FROM pgbun.clients;
SELECT count(*) AS servers FROM pgbun.servers;
SELECT count(*) AS stats FROM pgbun.stats;
SELECT count(*) AS databases FROM pgbun.databases;
SELECT count(*) AS latency FROM pgbun.latency;
-- no pool, no client, no server: only the free connection slots count
SELECT list COLLATE "C", items > 0 AS items FROM pgbun.lists;

-- pause/resume on an idle pool return at once, repeated calls included
SELECT pgbun.pause();
SELECT pgbun.pause();
SELECT pgbun.resume();
SELECT pgbun.pause('somedb');
SELECT pgbun.pause('somedb');
SELECT pgbun.resume('somedb');
SELECT pgbun.resume('somedb');
SELECT pgbun.pause(NULL);
SELECT pgbun.resume(NULL);
SELECT pgbun.resume();

-- At most 64 databases can be paused by name; pausing everything still works
SELECT count(pgbun.pause('db' || i)) AS paused FROM generate_series(1, 64) AS i;
SELECT pgbun.pause('db65');
SELECT pgbun.pause('db64');
SELECT pgbun.pause();
SELECT pgbun.resume();

-- Privileges: nothing for a plain role
CREATE ROLE regress_pgbun_plain;
CREATE ROLE regress_pgbun_monitor IN ROLE pg_monitor;
SET ROLE regress_pgbun_plain;
SELECT * FROM pgbun.pools;
SELECT * FROM pgbun.stats;
SELECT * FROM pgbun.clients;
SELECT * FROM pgbun.servers;
SELECT * FROM pgbun.databases;
SELECT * FROM pgbun.lists;
SELECT * FROM pgbun.latency;
SELECT * FROM pgbun.latency();
SELECT * FROM pgbun.pools();
SELECT pgbun.pause();
SELECT pgbun.pause('somedb');
SELECT pgbun.resume();
RESET ROLE;

-- pg_monitor reads the views, but may not pause or resume
SET ROLE regress_pgbun_monitor;
SELECT count(*) AS pools FROM pgbun.pools;
SELECT count(*) AS stats FROM pgbun.stats;
SELECT count(*) AS clients FROM pgbun.clients;
SELECT count(*) AS servers FROM pgbun.servers;
SELECT count(*) AS databases FROM pgbun.databases;
SELECT count(*) AS lists FROM pgbun.lists;
SELECT count(*) AS latency FROM pgbun.latency;
SELECT pgbun.pause();
SELECT pgbun.resume('somedb');
RESET ROLE;

DROP ROLE regress_pgbun_plain;
DROP ROLE regress_pgbun_monitor;

-- GUCs: defaults, and the regress.conf values
SHOW pgbun.pool_mode;
SHOW pgbun.default_pool_size;
SHOW pgbun.max_client_conn;
SHOW pgbun.auth_type;
SHOW pgbun.server_reset_query;
SHOW pgbun.query_wait_timeout;
SHOW pgbun.server_idle_timeout;
SHOW pgbun.workers;
SHOW pgbun.port;
SHOW pgbun.listen_addresses;
-- settable only in postgresql.conf, and then only on reload
SET pgbun.pool_mode = transaction;
SET pgbun.default_pool_size = 5;
SET pgbun.workers = 2;
-- the pgbun prefix is reserved
SET pgbun.no_such_setting = 1;

DROP EXTENSION pgbun;

/* pgbun--1.0--1.1.sql - the role pgbun_admin for the admin console's commands */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.1'" to load this file. \quit

-- Members of pgbun_admin may run the admin console's commands (PAUSE, RESUME,
-- RELOAD, ...) on pgbun's port, and pause()/resume() from SQL; members of
-- pg_monitor may SHOW. Roles belong to the cluster, not to a database: the
-- extension in a second database finds the role there already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgbun_admin') THEN
        CREATE ROLE pgbun_admin NOLOGIN;
        COMMENT ON ROLE pgbun_admin IS 'pgbun: may run the admin console''s commands and pgbun.pause()/resume()';
    END IF;
END
$$;

GRANT pg_monitor TO pgbun_admin;
GRANT EXECUTE ON FUNCTION pgbun.pause(text) TO pgbun_admin;
GRANT EXECUTE ON FUNCTION pgbun.resume(text) TO pgbun_admin;

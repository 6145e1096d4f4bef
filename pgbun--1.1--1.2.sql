/* pgbun--1.1--1.2.sql - placeholder: version 1.2 is another branch's (other views); this file only keeps the upgrade path 1.1 -> 1.2 -> 1.3 whole until that branch is merged, which replaces it */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pgbun UPDATE TO '1.2'" to load this file. \quit

/*
 * config_parse.h - parsing pgbun.databases (config_parse.c): pure C, unit-tested.
 */
#ifndef PGBUN_CONFIG_PARSE_H
#define PGBUN_CONFIG_PARSE_H

#include "config.h"

/*
 * Parse a pgbun.databases value into a malloc'd snapshot (free with free());
 * NULL with errbuf saying which entry and why (never echoing a password).
 */
extern ConfigDatabases *config_parse_databases(const char *value, char *errbuf, int errlen);
/* Why an auth_query text cannot be used (a reason starting with " ("), or NULL. */
extern const char *config_auth_query_invalid(const char *query);
/* The names of target_session_attrs and load_balance_hosts values. */
extern const char *tsa_name(int tsa);
extern const char *lb_name(int lb);

#endif							/* PGBUN_CONFIG_PARSE_H */

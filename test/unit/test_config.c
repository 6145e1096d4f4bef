/*
 * test_config.c - unit tests for src/config_parse.c: pgbun.databases values
 * into entries (keys, host and port lists, quoting, the "*" entry), and the
 * refusals with the entry and the reason.
 */
#include "postgres.h"

#include <stdlib.h>
#include <string.h>

#include "config_parse.h"
#include "unit.h"

static ConfigDatabases *
parse_ok(const char *value)
{
	char		err[512] = "";
	ConfigDatabases *c = config_parse_databases(value, err, sizeof(err));

	CHECK(c != NULL);
	if (!c)
		fprintf(stderr, "    unexpected refusal of \"%s\": %s\n", value, err);
	return c;
}

/* Refused, and the reason contains want. */
static void
parse_bad(const char *value, const char *want)
{
	char		err[512] = "";
	ConfigDatabases *c = config_parse_databases(value, err, sizeof(err));

	CHECK(c == NULL);
	CHECK(strstr(err, want) != NULL);
	if (c || !strstr(err, want))
		fprintf(stderr, "    \"%s\": got \"%s\", wanted \"%s\"\n", value, c ? "(accepted)" : err, want);
	free(c);
}

static void
test_empty(void)
{
	ConfigDatabases *c = parse_ok("");

	CHECK(c && c->n == 0);
	free(c);
	c = parse_ok(" ; ;");
	CHECK(c && c->n == 0);
	free(c);
}

static void
test_pool_only(void)
{
	ConfigDatabases *c = parse_ok("app = pool_mode=transaction pool_size=10");

	CHECK(c && c->n == 1);
	if (!c || c->n != 1)
		return;
	CHECK(strcmp(c->items[0].name, "app") == 0);
	CHECK(c->items[0].pool_mode == 1);
	CHECK(c->items[0].pool_size == 10);
	CHECK(!c->items[0].routed);		/* pool settings alone do not route */
	CHECK(c->items[0].max_db_connections == -1);
	CHECK(c->items[0].server_lifetime == -1);
	free(c);
}

static void
test_full_entry(void)
{
	ConfigDatabases *c = parse_ok("app = host='10.0.0.1, 10.0.0.2,db3' port=5432,5433,5434 dbname=appdb "
								  "user=svc password='p w''d' target_session_attrs=read-write "
								  "load_balance_hosts=least-conn max_db_connections=7 server_lifetime=30s; "
								  "ro = host=/tmp port=6000 target_session_attrs=standby max_replica_lag=500ms; "
								  "* = host=fallback");
	const DbEntry *e;

	CHECK(c && c->n == 3);
	if (!c || c->n != 3)
		return;
	e = &c->items[0];
	CHECK(e->routed);
	CHECK(e->n_hosts == 3);
	CHECK(e->ports[0] == 5432 && e->ports[1] == 5433 && e->ports[2] == 5434);
	CHECK(strcmp(e->dbname, "appdb") == 0);
	CHECK(strcmp(e->user, "svc") == 0);
	CHECK(strcmp(e->password, "p w'd") == 0);
	CHECK(e->tsa == TSA_READ_WRITE);
	CHECK(e->lb == LB_LEAST_CONN);
	CHECK(e->max_db_connections == 7);
	CHECK(e->server_lifetime == 30000);
	e = &c->items[1];
	CHECK(e->n_hosts == 1 && e->ports[0] == 6000);
	CHECK(e->tsa == TSA_STANDBY);
	CHECK(e->max_replica_lag == 500);
	e = &c->items[2];
	CHECK(strcmp(e->name, "*") == 0 && e->routed && e->n_hosts == 1);
	CHECK(e->ports[0] == 0);	/* the default port, resolved by the worker */
	free(c);
}

static void
test_one_port_for_all(void)
{
	ConfigDatabases *c = parse_ok("a = host=h1,h2,h3 port=6543");

	CHECK(c && c->items[0].ports[0] == 6543 && c->items[0].ports[2] == 6543);
	free(c);
}

static void
test_connect_query(void)
{
	ConfigDatabases *c = parse_ok("a = connect_query='SET work_mem = ''64MB''' pool_size=3");

	CHECK(c && strcmp(c->items[0].connect_query, "SET work_mem = '64MB'") == 0);
	CHECK(c && c->items[0].pool_size == 3);
	free(c);
}

static void
test_auth_user(void)
{
	ConfigDatabases *c = parse_ok("a = host=h1 auth_user=pgbun_auth auth_query='SELECT u, p FROM s.f($1)'; b = host=h2");

	CHECK(c && c->n == 2);
	if (!c || c->n != 2)
		return;
	CHECK(strcmp(c->items[0].auth_user, "pgbun_auth") == 0);
	CHECK(strcmp(c->items[0].auth_query, "SELECT u, p FROM s.f($1)") == 0);
	/* auth keys do not route by themselves; unset means the global settings */
	CHECK(c->items[0].routed);
	CHECK(c->items[1].auth_user[0] == '\0' && c->items[1].auth_query[0] == '\0');
	free(c);
	c = parse_ok("a = auth_user=x");
	CHECK(c && !c->items[0].routed);
	free(c);
	parse_bad("a = auth_user=''", "invalid auth_user");
	parse_bad("a = auth_query='SELECT 1, 2'", "must compare the user name with $1");
	parse_bad("a = auth_query='SELECT $1, $2'", "one parameter");
	CHECK(config_auth_query_invalid("SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1") == NULL);
}

static void
test_refusals(void)
{
	parse_bad("a", "has no \"=\"");
	parse_bad("a = host=h1,h2 port=1,2,3", "\"a\" has 3 ports for 2 hosts");
	parse_bad("a = port=0", "invalid port \"0\"");
	parse_bad("a = host=h1,,h2", "empty name in the host list of \"a\"");
	parse_bad("a = target_session_attrs=writable", "invalid target_session_attrs \"writable\" for \"a\"");
	parse_bad("a = load_balance_hosts=fast", "invalid load_balance_hosts \"fast\" for \"a\"");
	parse_bad("a = max_replica_lag=soon", "invalid max_replica_lag \"soon\"");
	parse_bad("a = password=x", "password without user for \"a\"");
	parse_bad("a = colour=blue", "unknown setting \"colour\" for \"a\"");
	parse_bad("a = pool_size=0", "invalid pool_size \"0\"");
	parse_bad("a = pool_mode=sometimes", "invalid pool_mode \"sometimes\" for \"a\"");
	parse_bad("a = dbname=x; a = dbname=y", "database \"a\" has two entries");
	parse_bad("a = connect_query='open", "is not key=value");
	parse_bad("a = host", "is not key=value");
	parse_bad("a = target_session_attrs=read-write max_replica_lag=1s", "max_replica_lag for \"a\" needs");
	parse_bad("a = host=h1,h2,h3,h4,h5,h6,h7,h8,h9,h10,h11,h12,h13,h14,h15,h16,h17", "more than 16 hosts");
}

/* The password never appears in a refusal. */
static void
test_password_not_echoed(void)
{
	char		err[512] = "";
	char		value[400];
	ConfigDatabases *c;

	snprintf(value, sizeof(value), "a = user=u password=%0300d", 7);
	c = config_parse_databases(value, err, sizeof(err));
	CHECK(c == NULL);
	CHECK(strstr(err, "0000000007") == NULL);
	CHECK(strstr(err, "too long") != NULL);
	free(c);
}

void
config_suite(void)
{
	UNIT_RUN(test_empty);
	UNIT_RUN(test_pool_only);
	UNIT_RUN(test_full_entry);
	UNIT_RUN(test_one_port_for_all);
	UNIT_RUN(test_connect_query);
	UNIT_RUN(test_auth_user);
	UNIT_RUN(test_refusals);
	UNIT_RUN(test_password_not_echoed);
}

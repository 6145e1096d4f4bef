/*
 * test_settings.c - unit tests for src/settings_check.c: a settings snapshot
 * is checked as a whole (cross-field rules, address syntax, the files a TLS
 * mode needs), and each refusal names the setting and the reason.
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings_check.h"
#include "tls.h"
#include "unit.h"

/* The GUCs' defaults, as the snapshot builder would copy them. */
static PgbunSettings
defaults(void)
{
	PgbunSettings s;

	memset(&s, 0, sizeof(s));
	s.listen_addresses = "localhost";
	s.port = 6432;
	s.unix_socket_directories = "";
	s.metrics_listen_addresses = "localhost";
	s.websocket_path = "";
	s.websocket_allowed_origins = "";
	s.default_pool_size = 20;
	s.max_client_conn = 100;
	s.server_host = "";
	s.dns_max_ttl = 15000;
	s.dns_timeout = 15000;
	s.server_connect_timeout = 15000;
	s.server_login_retry = 15000;
	s.server_login_retry_max = 60000;
	s.server_check_delay = 30000;
	s.client_tls_sslmode = TLS_MODE_PREFER;
	s.server_tls_sslmode = TLS_MODE_PREFER;
	s.client_tls_cert_file = s.client_tls_key_file = s.client_tls_ca_file = "";
	s.server_tls_cert_file = s.server_tls_key_file = s.server_tls_ca_file = "";
	s.hba_file = s.auth_file = s.ident_file = "";
	return s;
}

static void
expect_ok(const PgbunSettings *s)
{
	char		err[512];
	bool		ok = settings_check(s, err, sizeof(err));

	CHECK(ok);
	if (!ok)
		fprintf(stderr, "    unexpected refusal: %s\n", err);
}

/* Refused, and the reason contains every one of the wanted strings. */
static void
expect_bad(const PgbunSettings *s, const char *want1, const char *want2)
{
	char		err[512] = "";
	bool		ok = settings_check(s, err, sizeof(err));

	CHECK(!ok);
	CHECK(strstr(err, want1) != NULL);
	CHECK(!want2 || strstr(err, want2) != NULL);
	if (ok || !strstr(err, want1) || (want2 && !strstr(err, want2)))
		fprintf(stderr, "    got \"%s\", wanted \"%s\" / \"%s\"\n", ok ? "(accepted)" : err,
				want1, want2 ? want2 : "");
}

static void
test_defaults_pass(void)
{
	PgbunSettings s = defaults();

	expect_ok(&s);
}

static void
test_pool_sizes(void)
{
	PgbunSettings s = defaults();
	ConfigDatabases *dbs = calloc(1, offsetof(ConfigDatabases, items) + 2 * sizeof(DbEntry));

	s.min_pool_size = 20;
	expect_ok(&s);				/* equal is fine */
	s.min_pool_size = 21;
	expect_bad(&s, "pgbun.min_pool_size (21)", "pgbun.default_pool_size (20)");

	/* an entry's own pool_size is a ceiling too */
	s.min_pool_size = 5;
	dbs->n = 2;
	strcpy(dbs->items[0].name, "big");
	dbs->items[0].pool_size = 50;
	strcpy(dbs->items[1].name, "small");
	dbs->items[1].pool_size = 3;
	s.databases = dbs;
	expect_bad(&s, "pool_size=3", "\"small\"");
	dbs->items[1].pool_size = 0;	/* not set: the default applies */
	expect_ok(&s);

	s.max_db_connections = 4;
	expect_bad(&s, "pgbun.min_pool_size (5)", "pgbun.max_db_connections (4)");
	s.max_db_connections = 0;	/* no limit */
	expect_ok(&s);
	free(dbs);
}

static void
test_login_retry(void)
{
	PgbunSettings s = defaults();

	s.server_login_retry = 5000;
	s.server_login_retry_max = 2000;
	expect_bad(&s, "pgbun.server_login_retry_max (2000 ms)", "pgbun.server_login_retry (5000 ms)");
	s.server_login_retry_max = 0;	/* no maximum */
	expect_ok(&s);
	s.server_login_retry_max = 5000;
	expect_ok(&s);
}

static void
test_listen_addresses(void)
{
	PgbunSettings s = defaults();
	const char *good[] = {"", "*", "127.0.0.1", "127.0.0.1, ::1", "localhost,host-2.example.com",
	"\"127.0.0.1\"", "fe80::1%eth0", " 127.0.0.1 , 10.0.0.1 "};
	const char *bad[] = {"127.0.0.1 ::1", "localhost;", "127.0.0.1,,::1", "a/b", "127.0.0.1,", "\"x"};

	for (int i = 0; i < (int) lengthof(good); i++)
	{
		s.listen_addresses = good[i];
		expect_ok(&s);
	}
	for (int i = 0; i < (int) lengthof(bad); i++)
	{
		s.listen_addresses = bad[i];
		expect_bad(&s, "pgbun.listen_addresses", "is not an address");
	}
	s.listen_addresses = "localhost";
	s.metrics_listen_addresses = "local host";
	expect_bad(&s, "pgbun.metrics_listen_addresses", "\"local host\"");
	s.metrics_listen_addresses = "localhost";
	s.metrics_port = 6432;
	expect_bad(&s, "pgbun.metrics_port (6432)", "pgbun.port");
	s.metrics_port = 9127;
	expect_ok(&s);
}

static void
test_tls_files(void)
{
	PgbunSettings s = defaults();
	char		path[] = "/tmp/pgbun_unit_settings_XXXXXX";
	int			fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);

	/* a certificate without its key, either way round */
	s.client_tls_cert_file = path;
	expect_bad(&s, "pgbun.client_tls_cert_file is set without pgbun.client_tls_key_file", NULL);
	s.client_tls_cert_file = "";
	s.client_tls_key_file = path;
	expect_bad(&s, "pgbun.client_tls_key_file is set without pgbun.client_tls_cert_file", NULL);
	s.client_tls_cert_file = path;
	expect_ok(&s);

	/* a file that is not there */
	s.client_tls_key_file = "/nonexistent/pgbun.key";
	expect_bad(&s, "pgbun.client_tls_key_file", "/nonexistent/pgbun.key");
	/* ... does not matter with TLS off */
	s.client_tls_sslmode = TLS_MODE_DISABLE;
	expect_ok(&s);
	s.client_tls_key_file = path;

	/* verifying client certificates needs a CA */
	s.client_tls_sslmode = TLS_MODE_VERIFY_FULL;
	expect_bad(&s, "verify-full", "pgbun.client_tls_ca_file is empty");
	s.client_tls_ca_file = path;
	expect_ok(&s);

	/* the server side: pairs and files too (an empty CA means the system's) */
	s.server_tls_sslmode = TLS_MODE_VERIFY_CA;
	expect_ok(&s);
	s.server_tls_key_file = path;
	expect_bad(&s, "pgbun.server_tls_key_file is set without pgbun.server_tls_cert_file", NULL);
	s.server_tls_cert_file = path;
	s.server_tls_ca_file = "/nonexistent/ca.crt";
	expect_bad(&s, "pgbun.server_tls_ca_file", "cannot be read");
	unlink(path);
}

void
settings_suite(void)
{
	UNIT_RUN(test_defaults_pass);
	UNIT_RUN(test_pool_sizes);
	UNIT_RUN(test_login_retry);
	UNIT_RUN(test_listen_addresses);
	UNIT_RUN(test_tls_files);
}

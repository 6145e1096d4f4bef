/*
 * settings_check.c - the whole-snapshot checks of pgbun's settings
 * (settings.h): rules that span several settings, or that no single GUC
 * check hook can see (a file that must exist because a mode needs it).
 * Pure C, so the unit tests run it on hand-made snapshots.
 *
 * Each refusal names the setting and the reason; settings.c logs it and
 * keeps the previous snapshot in force.
 */
#include "postgres.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "settings.h"
#include "settings_check.h"
#include "tls.h"

const PgbunSettings *pgbun_cfg = NULL;

#ifdef PGBUN_UNIT_TEST
/* What the pure-C modules under test read (their GUCs' defaults). */
PgbunSettings pgbun_unit_settings = {
	.websocket_path = "",
	.websocket_allowed_origins = "",
	.websocket_max_frame_size = 16 * 1024 * 1024,
	.max_packet_size = 0x7fffffff,
};

/* Before main(): the modules under test find a snapshot, as in the worker. */
static void set_unit_settings(void) __attribute__((constructor));
static void
set_unit_settings(void)
{
	pgbun_cfg = &pgbun_unit_settings;
}
#endif

static bool
fail(char *errbuf, int errlen, const char *fmt,...) pg_attribute_printf(3, 4);

static bool
fail(char *errbuf, int errlen, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return false;
}

static bool
set(const char *s)
{
	return s && s[0];
}

/*
 * One item of a listen address list: "*", an IPv4 or IPv6 address or a host
 * name. Only the characters those may hold: a typo such as "127.0.0.1 ::1"
 * (no comma) or "localhost;" is refused instead of silently not listening.
 */
static bool
address_item_ok(const char *p, size_t n)
{
	if (n == 1 && p[0] == '*')
		return true;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		unsigned char ch = (unsigned char) p[i];

		if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_' && ch != ':' && ch != '%')
			return false;
	}
	return true;
}

/*
 * A comma-separated address list (GUC_LIST_INPUT: items may be quoted with
 * double quotes). "" is valid (no TCP). On failure badbuf gets the item.
 */
static bool
address_list_ok(const char *value, char *badbuf, int badlen)
{
	const char *p = value ? value : "";

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return true;
	for (;;)
	{
		const char *start;
		size_t		n;

		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		if (*p == '"')
		{
			const char *q = strchr(p + 1, '"');

			if (!q)
			{
				snprintf(badbuf, badlen, "%s", start);
				return false;
			}
			start = p + 1;
			n = q - start;
			p = q + 1;
		}
		else
		{
			n = strcspn(p, ",");
			p += n;
			while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
				n--;
		}
		if (!address_item_ok(start, n))
		{
			snprintf(badbuf, badlen, "%.*s", (int) Min(n, 200), start);
			return false;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return true;
		if (*p != ',')
		{
			snprintf(badbuf, badlen, "%.200s", start);
			return false;
		}
		p++;
	}
}

/* A certificate or key file the settings name must be readable now. */
static bool
file_ok(const char *name, const char *path, char *errbuf, int errlen)
{
	if (set(path) && access(path, R_OK) != 0)
		return fail(errbuf, errlen, "%s: file \"%s\" cannot be read: %s",
					name, path, strerror(errno));
	return true;
}

/* The TLS files of one side (client_ or server_): pairs complete, files readable. */
static bool
tls_side_ok(const char *side, int mode, const char *cert, const char *key,
			const char *ca, char *errbuf, int errlen)
{
	char		name[64];

	if (mode == TLS_MODE_DISABLE)
		return true;
	if (set(cert) != set(key))
		return fail(errbuf, errlen, "pgbun.%s_tls_%s is set without pgbun.%s_tls_%s: a certificate needs its key",
					side, set(cert) ? "cert_file" : "key_file", side, set(cert) ? "key_file" : "cert_file");
	snprintf(name, sizeof(name), "pgbun.%s_tls_cert_file", side);
	if (!file_ok(name, cert, errbuf, errlen))
		return false;
	snprintf(name, sizeof(name), "pgbun.%s_tls_key_file", side);
	if (!file_ok(name, key, errbuf, errlen))
		return false;
	snprintf(name, sizeof(name), "pgbun.%s_tls_ca_file", side);
	if (!file_ok(name, ca, errbuf, errlen))
		return false;
	return true;
}

bool
settings_check(const PgbunSettings *s, char *errbuf, int errlen)
{
	char		bad[256];

	errbuf[0] = '\0';

	/* pools: the floor cannot be above the ceiling */
	if (s->min_pool_size > s->default_pool_size)
		return fail(errbuf, errlen, "pgbun.min_pool_size (%d) is above pgbun.default_pool_size (%d)",
					s->min_pool_size, s->default_pool_size);
	for (int i = 0; s->databases && i < s->databases->n; i++)
	{
		const DbEntry *e = &s->databases->items[i];

		if (e->pool_size > 0 && s->min_pool_size > e->pool_size)
			return fail(errbuf, errlen, "pgbun.min_pool_size (%d) is above pool_size=%d of pgbun.databases entry \"%s\"",
						s->min_pool_size, e->pool_size, e->name);
	}
	if (s->max_db_connections > 0 && s->min_pool_size > s->max_db_connections)
		return fail(errbuf, errlen, "pgbun.min_pool_size (%d) is above pgbun.max_db_connections (%d)",
					s->min_pool_size, s->max_db_connections);

	/* servers: the retry backoff grows from server_login_retry up to its maximum */
	if (s->server_login_retry_max > 0 && s->server_login_retry_max < s->server_login_retry)
		return fail(errbuf, errlen, "pgbun.server_login_retry_max (%d ms) is below pgbun.server_login_retry (%d ms)",
					s->server_login_retry_max, s->server_login_retry);

	/* listening */
	if (!address_list_ok(s->listen_addresses, bad, sizeof(bad)))
		return fail(errbuf, errlen, "pgbun.listen_addresses: \"%s\" is not an address, a host name or *", bad);
	if (!address_list_ok(s->metrics_listen_addresses, bad, sizeof(bad)))
		return fail(errbuf, errlen, "pgbun.metrics_listen_addresses: \"%s\" is not an address, a host name or *", bad);
	if (s->metrics_port != 0 && s->metrics_port == s->port)
		return fail(errbuf, errlen, "pgbun.metrics_port (%d) is pgbun.port: the two listeners need their own ports",
					s->metrics_port);

	/* TLS: what the modes need must be there */
	if (!tls_side_ok("client", s->client_tls_sslmode, s->client_tls_cert_file,
					 s->client_tls_key_file, s->client_tls_ca_file, errbuf, errlen))
		return false;
	if (s->client_tls_sslmode >= TLS_MODE_VERIFY_CA && set(s->client_tls_cert_file) &&
		!set(s->client_tls_ca_file))
		return fail(errbuf, errlen, "pgbun.client_tls_sslmode = %s verifies client certificates but pgbun.client_tls_ca_file is empty",
					s->client_tls_sslmode == TLS_MODE_VERIFY_CA ? "verify-ca" : "verify-full");
	if (!tls_side_ok("server", s->server_tls_sslmode, s->server_tls_cert_file,
					 s->server_tls_key_file, s->server_tls_ca_file, errbuf, errlen))
		return false;

	/*
	 * pgbun.hba_file and pgbun.auth_file are not checked here: their modules
	 * reread them at every reload and keep the rules read before when a file
	 * is unreadable (hba.c, auth_file.c), so a bad file refuses only itself.
	 */
	return true;
}

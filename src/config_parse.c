/*
 * config_parse.c - parsing a pgbun.databases value into a ConfigDatabases
 * snapshot (config.h), with libpq's quoting ('a b', '' for a quote) and
 * PgBouncer's / libpq's keys. Pure C on top of postgres.h's string helpers:
 * no GUC machinery, no ereport, so it is unit-tested (test/unit) and the
 * check hook (config.c) reports what it says.
 */
#include "postgres.h"

#include <limits.h>

#include "config.h"
#include "config_parse.h"

/* PoolMode from its name; -1 when unknown. */
static int
parse_pool_mode(const char *value)
{
	static const char *const names[] = {"session", "transaction", "statement"};

	for (int i = 0; i < (int) lengthof(names); i++)
		if (pg_strcasecmp(names[i], value) == 0)
			return i;
	return -1;
}

const char *
tsa_name(int tsa)
{
	static const char *const names[] = {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"};

	return (tsa >= 0 && tsa < (int) lengthof(names)) ? names[tsa] : "?";
}

const char *
lb_name(int lb)
{
	static const char *const names[] = {"disable", "round-robin", "random", "least-conn"};

	return (lb >= 0 && lb < (int) lengthof(names)) ? names[lb] : "?";
}

/*
 * Next "key=value" of an entry's options: value may be single-quoted
 * ('it''s', as libpq's conninfo), so connect_query can hold spaces. Writes
 * NUL terminators into the string. Returns false at the end; *bad is set
 * for a token that is not key=value or an unterminated quote.
 */
static bool
next_option(char **pos, char **key, char **value, bool *bad)
{
	char	   *p = *pos;
	char	   *out;

	*bad = false;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '\0')
		return false;
	*key = p;
	while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n')
		p++;
	if (*p != '=')
	{
		*bad = true;
		*value = NULL;
		if (*p)
			*p++ = '\0';
		*pos = p;
		return true;
	}
	*p++ = '\0';
	*value = out = p;
	if (*p == '\'')
	{
		p++;
		for (;;)
		{
			if (*p == '\0')
			{
				*bad = true;
				*pos = p;
				return true;
			}
			if (*p == '\'' && p[1] == '\'')
			{
				*out++ = '\'';
				p += 2;
			}
			else if (*p == '\'')
			{
				p++;
				break;
			}
			else
				*out++ = *p++;
		}
	}
	else
	{
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			*out++ = *p++;
	}
	if (*p)
		p++;
	*out = '\0';
	*pos = p;
	return true;
}

/* A time with units ('5s', '500ms'; a bare number is seconds, as PgBouncer's). -1: invalid. */
static int
parse_seconds_ms(const char *v)
{
	char	   *end;
	double		d = strtod(v, &end);

	if (end == v || d < 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		d *= 1000;
	else if (strcmp(end, "ms") == 0)
		;
	else if (strcmp(end, "min") == 0)
		d *= 60000;
	else
		return -1;
	if (d > INT_MAX)
		return -1;
	return (int) d;
}

static bool
parse_int_range(const char *v, int lo, int hi, int *out)
{
	char	   *end;
	long		n = strtol(v, &end, 10);

	if (end == v || *end != '\0' || n < lo || n > hi)
		return false;
	*out = (int) n;
	return true;
}

/*
 * Why an auth_query text cannot be used (NULL: it can): it must take the
 * client's name as $1 (never pasted into the text) and fit one Parse message
 * pgbun builds in a fixed buffer.
 */
const char *
config_auth_query_invalid(const char *query)
{
	if (query[0] == '\0')
		return " (empty)";
	if (strlen(query) >= CONFIG_QUERY_LEN)
		return " (at most 1023 bytes)";
	if (strstr(query, "$1") == NULL)
		return " (it must compare the user name with $1)";
	if (strstr(query, "$2") != NULL)
		return " (it gets one parameter, $1: the user name)";
	return NULL;
}

/*
 * Parse pgbun.databases: "name = key=value ...; name2 = ...". The keys are
 * PgBouncer's / libpq's (host, port, dbname, user, password,
 * auth_user, auth_query, target_session_attrs, load_balance_hosts,
 * max_replica_lag, pool_mode, pool_size, max_db_connections,
 * server_lifetime, connect_query). Returns a
 * malloc'd snapshot, or NULL with errbuf saying which entry and why.
 */
ConfigDatabases *
config_parse_databases(const char *value, char *errbuf, int errlen)
{
	char	   *copy = strdup(value ? value : "");
	char	   *entry;
	char	   *save = NULL;
	int			max = 1;
	ConfigDatabases *list;

	if (!copy)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	for (const char *p = copy; *p; p++)
		if (*p == ';')
			max++;
	list = malloc(offsetof(ConfigDatabases, items) + max * sizeof(DbEntry));
	if (!list)
	{
		free(copy);
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	list->n = 0;
	list->generation = 0;
	for (entry = strtok_r(copy, ";", &save); entry; entry = strtok_r(NULL, ";", &save))
	{
		char	   *eq = strchr(entry, '=');
		char	   *name = entry;
		char	   *pos;
		char	   *key;
		char	   *val;
		bool		bad;
		DbEntry    *e;
		char		ports[256] = "";

		while (*name == ' ' || *name == '\t' || *name == '\n' || *name == '\r')
			name++;
		if (*name == '\0')
			continue;
		if (!eq)
		{
			snprintf(errbuf, errlen, "entry \"%.100s\" has no \"=\"; expected \"name = key=value ...\"", name);
			goto fail;
		}
		*eq = '\0';
		for (char *t = eq - 1; t >= name && (*t == ' ' || *t == '\t'); t--)
			*t = '\0';
		if (*name == '\0' || strlen(name) >= NAMEDATALEN)
		{
			snprintf(errbuf, errlen, "empty or too long database name in \"%.100s\"", value);
			goto fail;
		}
		for (int i = 0; i < list->n; i++)
			if (strcmp(list->items[i].name, name) == 0)
			{
				snprintf(errbuf, errlen, "database \"%s\" has two entries", name);
				goto fail;
			}
		e = &list->items[list->n++];
		memset(e, 0, sizeof(*e));
		strlcpy(e->name, name, sizeof(e->name));
		e->pool_mode = -1;
		e->max_db_connections = -1;
		e->server_lifetime = -1;
		pos = eq + 1;
		while (next_option(&pos, &key, &val, &bad))
		{
			if (bad)
			{
				snprintf(errbuf, errlen, "\"%.100s\" in the entry for \"%s\" is not key=value (quote values with spaces: key='a b')",
						 key, e->name);
				goto fail;
			}
#define BAD_VALUE(what) do { snprintf(errbuf, errlen, "invalid %s \"%.100s\" for \"%s\"%s", key, val, e->name, what); goto fail; } while (0)
			if (strcmp(key, "pool_mode") == 0)
			{
				if ((e->pool_mode = parse_pool_mode(val)) < 0)
					BAD_VALUE(" (session, transaction or statement)");
			}
			else if (strcmp(key, "pool_size") == 0)
			{
				if (!parse_int_range(val, 1, 10000, &e->pool_size))
					BAD_VALUE(" (1-10000)");
			}
			else if (strcmp(key, "max_db_connections") == 0)
			{
				if (!parse_int_range(val, 0, 100000, &e->max_db_connections))
					BAD_VALUE(" (0-100000)");
			}
			else if (strcmp(key, "server_lifetime") == 0)
			{
				if ((e->server_lifetime = parse_seconds_ms(val)) < 0)
					BAD_VALUE(" (seconds, or with a unit: 30s, 500ms, 10min)");
			}
			else if (strcmp(key, "connect_query") == 0)
			{
				if (strlen(val) >= sizeof(e->connect_query))
					BAD_VALUE(" (at most 1023 bytes)");
				strlcpy(e->connect_query, val, sizeof(e->connect_query));
			}
			else if (strcmp(key, "auth_user") == 0)
			{
				if (strlen(val) >= NAMEDATALEN || val[0] == '\0')
					BAD_VALUE(" (a role name)");
				strlcpy(e->auth_user, val, sizeof(e->auth_user));
			}
			else if (strcmp(key, "auth_query") == 0)
			{
				const char *why = config_auth_query_invalid(val);

				if (why)
					BAD_VALUE(why);
				strlcpy(e->auth_query, val, sizeof(e->auth_query));
			}
			else if (strcmp(key, "host") == 0)
			{
				if (strlen(val) >= sizeof(e->host) || val[0] == '\0')
					BAD_VALUE(" (a comma list of names, addresses or socket directories)");
				strlcpy(e->host, val, sizeof(e->host));
				e->routed = true;
			}
			else if (strcmp(key, "port") == 0)
			{
				if (strlen(val) >= sizeof(ports) || val[0] == '\0')
					BAD_VALUE("");
				strlcpy(ports, val, sizeof(ports));
				e->routed = true;
			}
			else if (strcmp(key, "dbname") == 0)
			{
				if (strlen(val) >= NAMEDATALEN || val[0] == '\0')
					BAD_VALUE("");
				strlcpy(e->dbname, val, sizeof(e->dbname));
				e->routed = true;
			}
			else if (strcmp(key, "user") == 0)
			{
				if (strlen(val) >= NAMEDATALEN || val[0] == '\0')
					BAD_VALUE("");
				strlcpy(e->user, val, sizeof(e->user));
				e->routed = true;
			}
			else if (strcmp(key, "password") == 0)
			{
				if (strlen(val) >= sizeof(e->password))
				{
					snprintf(errbuf, errlen, "password for \"%s\" is too long", e->name);
					goto fail;
				}
				strlcpy(e->password, val, sizeof(e->password));
				e->routed = true;
			}
			else if (strcmp(key, "target_session_attrs") == 0)
			{
				int			t;

				for (t = 0; t <= TSA_PREFER_STANDBY; t++)
					if (pg_strcasecmp(val, tsa_name(t)) == 0)
						break;
				if (t > TSA_PREFER_STANDBY)
					BAD_VALUE(" (any, read-write, read-only, primary, standby, prefer-standby)");
				e->tsa = t;
				e->routed = true;
			}
			else if (strcmp(key, "load_balance_hosts") == 0)
			{
				int			l;

				for (l = 0; l <= LB_LEAST_CONN; l++)
					if (pg_strcasecmp(val, lb_name(l)) == 0)
						break;
				if (l > LB_LEAST_CONN)
					BAD_VALUE(" (disable, round-robin, random, least-conn)");
				e->lb = l;
				e->routed = true;
			}
			else if (strcmp(key, "max_replica_lag") == 0)
			{
				if ((e->max_replica_lag = parse_seconds_ms(val)) < 0)
					BAD_VALUE(" (seconds, or with a unit: 5s, 500ms)");
				e->routed = true;
			}
			else
			{
				snprintf(errbuf, errlen, "unknown setting \"%.64s\" for \"%s\" (supported: host, port, dbname, user, password, auth_user, auth_query, target_session_attrs, load_balance_hosts, max_replica_lag, pool_mode, pool_size, max_db_connections, server_lifetime, connect_query)",
						 key, e->name);
				goto fail;
			}
#undef BAD_VALUE
		}
		/* the host list and the port list */
		e->n_hosts = 0;
		if (e->host[0])
		{
			const char *h = e->host;

			while (*h)
			{
				size_t		n = strcspn(h, ",");
				size_t		lead = 0;

				while (lead < n && h[lead] == ' ')
					lead++;
				if (n - lead == 0)
				{
					snprintf(errbuf, errlen, "empty name in the host list of \"%s\"", e->name);
					goto fail;
				}
				if (n - lead >= 256)
				{
					snprintf(errbuf, errlen, "a host name of \"%s\" is longer than 255 bytes", e->name);
					goto fail;
				}
				if (e->n_hosts >= CONFIG_MAX_HOSTS)
				{
					snprintf(errbuf, errlen, "more than %d hosts for \"%s\"", CONFIG_MAX_HOSTS, e->name);
					goto fail;
				}
				e->n_hosts++;
				h += n;
				if (*h == ',')
					h++;
			}
		}
		if (ports[0])
		{
			int			np = 0;
			char	   *psave = NULL;
			int			want = Max(e->n_hosts, 1);

			for (char *t = strtok_r(ports, ",", &psave); t; t = strtok_r(NULL, ",", &psave))
			{
				while (*t == ' ')
					t++;
				if (np >= CONFIG_MAX_HOSTS || !parse_int_range(t, 1, 65535, &e->ports[np]))
				{
					snprintf(errbuf, errlen, "invalid port \"%.32s\" for \"%s\"", t, e->name);
					goto fail;
				}
				np++;
			}
			if (np == 1)
				for (int i = 1; i < CONFIG_MAX_HOSTS; i++)
					e->ports[i] = e->ports[0];
			else if (np != want)
			{
				snprintf(errbuf, errlen, "\"%s\" has %d ports for %d hosts (give one port, or one per host)",
						 e->name, np, want);
				goto fail;
			}
		}
		if (e->password[0] && !e->user[0])
		{
			snprintf(errbuf, errlen, "password without user for \"%s\" (the password is the forced user's)", e->name);
			goto fail;
		}
		if (e->max_replica_lag > 0 && e->tsa != TSA_STANDBY && e->tsa != TSA_READ_ONLY &&
			e->tsa != TSA_PREFER_STANDBY && e->tsa != TSA_ANY)
		{
			snprintf(errbuf, errlen, "max_replica_lag for \"%s\" needs target_session_attrs standby, read-only, prefer-standby or any",
					 e->name);
			goto fail;
		}
	}
	free(copy);
	return list;

fail:
	free(copy);
	free(list);
	return NULL;
}


/*
 * auth_file.c - pgbun.auth_file in PgBouncer's userlist.txt format (the
 * contract is in auth_file.h).
 *
 * Each line that starts with a double quote is "name" "secret", a doubled
 * quote standing for one inside either; anything else (comments, blank
 * lines) is skipped, as PgBouncer does. Bounds: 1 MB of file, 10,000
 * entries, names shorter than NAMEDATALEN, secrets up to 1024 bytes. A plain
 * password gets a SCRAM secret with a random salt at the role's first login
 * (one PBKDF2 run, a few milliseconds, kept until the file is read again), so
 * clients can use SCRAM with it.
 */
#include "postgres.h"

#include <stdio.h>

#include "common/string.h"

#include "auth_file.h"
#include "config.h"
#include "settings.h"

#define AUTH_FILE_MAX_BYTES		(1024 * 1024)
#define AUTH_FILE_MAX_ENTRIES	10000
#define AUTH_FILE_SECRET_MAX	1024

typedef struct AuthFileEntry
{
	char		name[NAMEDATALEN];
	VerifierType type;
	ScramSecret scram;
	char		md5[36];
	char	   *password;		/* plain password, malloc'd; NULL for verifiers */
	bool		scram_ready;	/* a plain password's SCRAM secret is derived (at first use) */
} AuthFileEntry;

static AuthFileEntry *entries = NULL;
static int	n_entries = 0;
static char *loaded_path = NULL;

/* One quoted field at *p into out (cap bytes); false when malformed or too long. */
static bool
quoted_field(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	size_t		n = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '"')
		return false;
	s++;
	for (;;)
	{
		if (*s == '\0' || *s == '\n')
			return false;
		if (*s == '"' && s[1] == '"')
		{
			s++;
		}
		else if (*s == '"')
		{
			s++;
			break;
		}
		if (n + 1 >= cap)
			return false;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return true;
}

static void
free_entries(AuthFileEntry *list, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (list[i].password)
		{
			explicit_bzero(list[i].password, strlen(list[i].password));
			free(list[i].password);
		}
	}
	free(list);
}

void
auth_file_reload(void)
{
	const char *path = pgbun_cfg->auth_file ? pgbun_cfg->auth_file : "";
	FILE	   *f;
	char	   *buf;
	size_t		len;
	AuthFileEntry *list;
	int			n = 0;
	int			lineno = 0;
	char	   *line;
	char	   *save = NULL;

	if (path[0] == '\0')
	{
		free_entries(entries, n_entries);
		entries = NULL;
		n_entries = 0;
		free(loaded_path);
		loaded_path = NULL;
		return;
	}
	f = fopen(path, "r");
	if (!f)
	{
		ereport(LOG, (errmsg("pgbun: could not open auth_file \"%s\": %m; %s", path,
							 entries ? "the entries read before stay in force" : "no entries")));
		return;
	}
	buf = malloc(AUTH_FILE_MAX_BYTES + 1);
	list = calloc(AUTH_FILE_MAX_ENTRIES, sizeof(AuthFileEntry));
	if (!buf || !list)
	{
		fclose(f);
		free(buf);
		free(list);
		ereport(LOG, (errmsg("pgbun: out of memory reading auth_file \"%s\"", path)));
		return;
	}
	len = fread(buf, 1, AUTH_FILE_MAX_BYTES + 1, f);
	fclose(f);
	if (len > AUTH_FILE_MAX_BYTES)
	{
		ereport(LOG, (errmsg("pgbun: auth_file \"%s\" is larger than 1 MB; not read", path)));
		free(buf);
		free(list);
		return;
	}
	buf[len] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		const char *p = line;
		char		secret[AUTH_FILE_SECRET_MAX + 1];
		AuthFileEntry *e;

		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '"')
			continue;			/* comments and blank lines, as PgBouncer */
		if (n >= AUTH_FILE_MAX_ENTRIES)
		{
			ereport(LOG, (errmsg("pgbun: auth_file \"%s\": more than %d entries; the rest are ignored",
								 path, AUTH_FILE_MAX_ENTRIES)));
			break;
		}
		e = &list[n];
		if (!quoted_field(&p, e->name, sizeof(e->name)) || !quoted_field(&p, secret, sizeof(secret)))
		{
			ereport(LOG, (errmsg("pgbun: auth_file \"%s\" line %d is not \"name\" \"secret\"; skipped", path, lineno)));
			continue;
		}
		if (strncmp(secret, "SCRAM-SHA-256$", 14) == 0)
		{
			if (!scram_parse_secret(secret, &e->scram))
			{
				ereport(LOG, (errmsg("pgbun: auth_file \"%s\" line %d: invalid SCRAM verifier; skipped", path, lineno)));
				continue;
			}
			e->type = VERIFIER_SCRAM;
		}
		else if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35 &&
				 strspn(secret + 3, "0123456789abcdef") == 32)
		{
			strlcpy(e->md5, secret, sizeof(e->md5));
			e->type = VERIFIER_MD5;
		}
		else
		{
			e->password = strdup(secret);
			if (!e->password)
			{
				ereport(LOG, (errmsg("pgbun: auth_file \"%s\" line %d: out of memory; skipped", path, lineno)));
				continue;
			}
			e->type = VERIFIER_SCRAM;
		}
		explicit_bzero(secret, sizeof(secret));
		n++;
	}
	explicit_bzero(buf, len);
	free(buf);
	free_entries(entries, n_entries);
	entries = list;
	n_entries = n;
	free(loaded_path);
	loaded_path = strdup(path);
	ereport(LOG, (errmsg("pgbun: loaded %d entries from auth_file \"%s\"", n, path)));
}

bool
auth_file_lookup(const char *user, RoleInfo *role, const char **password)
{
	*password = NULL;
	for (int i = 0; i < n_entries; i++)
	{
		AuthFileEntry *e = &entries[i];

		if (strcmp(e->name, user) != 0)
			continue;
		if (e->password && !e->scram_ready)
		{
			/* one PBKDF2 run, at the role's first login rather than for every entry at reload */
			if (!scram_secret_from_password(e->password, &e->scram))
			{
				ereport(LOG, (errmsg("pgbun: could not derive a SCRAM secret for auth_file role \"%s\"", user)));
				return false;
			}
			e->scram_ready = true;
		}
		role->role_exists = true;
		role->from_auth_file = true;
		role->can_login = true;
		role->superuser = false;
		role->mock_scram = false;
		role->verifier_type = e->type;
		if (e->type == VERIFIER_SCRAM)
			role->scram = e->scram;
		else
			strlcpy(role->md5, e->md5, sizeof(role->md5));
		*password = e->password;
		return true;
	}
	return false;
}

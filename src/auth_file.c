/*
 * auth_file.c - pgbun.auth_file in PgBouncer's userlist.txt format (the
 * contract is in auth_file.h).
 *
 * Each line that starts with a double quote is "name" "secret", a doubled
 * quote standing for one inside either; anything else (comments, blank
 * lines) is skipped, as PgBouncer does. Bounds: 1 MB of file, 10,000
 * entries, names shorter than NAMEDATALEN, secrets up to 1024 bytes. A plain
 * password gets a SCRAM secret with a random salt at the role's first login,
 * so clients can use SCRAM with it: one PBKDF2 run on a kdf.c thread (inline
 * only when none is free), shared by the logins that wait for it, and kept
 * across reloads while the password stays the same. Names are found through
 * a hash index, not a scan of the entries.
 */
#include "postgres.h"

#include <stdio.h>

#include "common/hashfn.h"
#include "common/string.h"

#include "auth_file.h"
#include "config.h"
#include "kdf.h"
#include "settings.h"

#define AUTH_FILE_MAX_BYTES		(1024 * 1024)
#define AUTH_FILE_MAX_ENTRIES	10000
#define AUTH_FILE_SECRET_MAX	1024

typedef struct Derivation Derivation;

typedef struct AuthFileEntry
{
	char		name[NAMEDATALEN];
	VerifierType type;
	ScramSecret scram;
	char		md5[36];
	char	   *password;		/* plain password, malloc'd; NULL for verifiers */
	bool		scram_ready;	/* a plain password's SCRAM secret is derived (at first use) */
	Derivation *deriving;		/* ... or is being derived on a kdf.c thread */
} AuthFileEntry;

/* A plain password's SCRAM secret on its way from a kdf.c thread, and the logins waiting for it. */
struct Derivation
{
	AuthFileEntry *entry;		/* NULL once a reload dropped the entry or changed its password */
	ScramSecret secret;			/* salt and count chosen here; the keys once the thread is done */
	dlist_head	waiters;		/* AuthFileWaiter */
};

typedef struct EntryIndex
{
	int		   *slots;			/* open addressing: entry number + 1, 0 for empty */
	uint32		mask;
} EntryIndex;

static AuthFileEntry *entries = NULL;
static int	n_entries = 0;
static EntryIndex index_of_names = {NULL, 0};
static char *loaded_path = NULL;

/* Index list[0..n) by name, the first of duplicate names winning (as the scan it replaced). */
static bool
build_index(const AuthFileEntry *list, int n, EntryIndex *ix)
{
	uint32		size = 16;

	while (size < (uint32) n * 2)
		size <<= 1;
	ix->slots = calloc(size, sizeof(int));
	if (!ix->slots)
		return false;
	ix->mask = size - 1;
	for (int i = 0; i < n; i++)
	{
		uint32		h = hash_bytes((const unsigned char *) list[i].name, strlen(list[i].name)) & ix->mask;

		while (ix->slots[h] != 0 && strcmp(list[ix->slots[h] - 1].name, list[i].name) != 0)
			h = (h + 1) & ix->mask;
		if (ix->slots[h] == 0)
			ix->slots[h] = i + 1;
	}
	return true;
}

/* The entry named user in list (indexed by ix), or NULL. */
static AuthFileEntry *
find_entry(AuthFileEntry *list, const EntryIndex *ix, const char *user)
{
	uint32		h;

	if (!ix->slots)
		return NULL;
	h = hash_bytes((const unsigned char *) user, strlen(user)) & ix->mask;
	while (ix->slots[h] != 0)
	{
		AuthFileEntry *e = &list[ix->slots[h] - 1];

		if (strcmp(e->name, user) == 0)
			return e;
		h = (h + 1) & ix->mask;
	}
	return NULL;
}

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
		if (list[i].deriving)
			list[i].deriving->entry = NULL; /* its waiters are told when the thread is done */
		if (list[i].password)
		{
			explicit_bzero(list[i].password, strlen(list[i].password));
			free(list[i].password);
		}
	}
	free(list);
}

/*
 * The secrets derived (or being derived) for plain passwords the new list
 * still has, name and password the same: a reload costs no PBKDF2 run.
 */
static void
carry_secrets(AuthFileEntry *list, const EntryIndex *ix)
{
	for (int i = 0; i < n_entries; i++)
	{
		AuthFileEntry *old = &entries[i];
		AuthFileEntry *e;

		if (!old->password || (!old->scram_ready && !old->deriving))
			continue;
		e = find_entry(list, ix, old->name);
		if (!e || !e->password || e->scram_ready || e->deriving || strcmp(e->password, old->password) != 0)
			continue;
		e->scram = old->scram;
		e->scram_ready = old->scram_ready;
		e->deriving = old->deriving;
		if (e->deriving)
			e->deriving->entry = e;
		old->deriving = NULL;
	}
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
	EntryIndex	ix;

	if (path[0] == '\0')
	{
		free_entries(entries, n_entries);
		entries = NULL;
		n_entries = 0;
		free(index_of_names.slots);
		index_of_names.slots = NULL;
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
	if (!build_index(list, n, &ix))
	{
		free_entries(list, n);
		ereport(LOG, (errmsg("pgbun: out of memory reading auth_file \"%s\"", path)));
		return;
	}
	carry_secrets(list, &ix);
	free_entries(entries, n_entries);
	free(index_of_names.slots);
	entries = list;
	n_entries = n;
	index_of_names = ix;
	free(loaded_path);
	loaded_path = strdup(path);
	ereport(LOG, (errmsg("pgbun: loaded %d entries from auth_file \"%s\"", n, path)));
}

bool
auth_file_lookup(const char *user, RoleInfo *role, const char **password)
{
	AuthFileEntry *e = find_entry(entries, &index_of_names, user);

	*password = NULL;
	if (!e)
		return false;
	role->role_exists = true;
	role->from_auth_file = true;
	role->can_login = true;
	role->superuser = false;
	role->mock_scram = false;
	role->verifier_type = e->type;
	role->scram_pending = false;
	if (e->type == VERIFIER_SCRAM && (!e->password || e->scram_ready))
		role->scram = e->scram;
	else if (e->type == VERIFIER_SCRAM)
		role->scram_pending = true; /* auth_file_secret derives it */
	else
		strlcpy(role->md5, e->md5, sizeof(role->md5));
	*password = e->password;
	return true;
}

/* A kdf.c thread derived an entry's keys (loop thread, kdf_collect): keep the secret, wake the waiters. */
static void
secret_derived(void *owner, bool ok, const uint8 *client_key, const uint8 *server_key)
{
	Derivation *d = owner;
	AuthFileEntry *e = d->entry;

	ok = ok && scram_secret_keys(&d->secret, client_key, server_key);
	if (e)
	{
		e->deriving = NULL;
		if (ok)
		{
			e->scram = d->secret;
			e->scram_ready = true;
			ereport(DEBUG1, (errmsg("pgbun: derived the SCRAM secret of auth_file role \"%s\"", e->name)));
		}
		else
			ereport(LOG, (errmsg("pgbun: could not derive a SCRAM secret for auth_file role \"%s\"", e->name)));
	}
	while (!dlist_is_empty(&d->waiters))
	{
		AuthFileWaiter *w = dlist_container(AuthFileWaiter, node, dlist_pop_head_node(&d->waiters));

		w->waiting = false;
		w->ready(w, ok && e ? &d->secret : NULL);
	}
	explicit_bzero(d, sizeof(*d));
	free(d);
}

/* Queue e's derivation on a kdf.c thread; false when none can take it. */
static bool
start_derivation(AuthFileEntry *e)
{
	Derivation *d = calloc(1, sizeof(Derivation));
	uint8		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	char	   *pw;
	KdfJob	   *job = NULL;

	if (!d)
		return false;
	if (scram_secret_salt(&d->secret) &&
		(pw = scram_password_inputs(&d->secret, e->password, salt, &salt_len)) != NULL)
	{
		job = kdf_submit(pw, salt, salt_len, d->secret.iterations, NULL, secret_derived, d);
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (!job)
	{
		free(d);
		return false;
	}
	d->entry = e;
	dlist_init(&d->waiters);
	e->deriving = d;
	ereport(DEBUG1, (errmsg("pgbun: deriving the SCRAM secret of auth_file role \"%s\"", e->name)));
	return true;
}

AuthFileSecret
auth_file_secret(const char *user, RoleInfo *role, AuthFileWaiter *w)
{
	AuthFileEntry *e = find_entry(entries, &index_of_names, user);

	if (!e || !e->password)
		return AUTH_FILE_SECRET_FAILED;
	if (!e->scram_ready && !e->deriving && !start_derivation(e))
	{
		/* no thread can take it: inline, one run of 4096 iterations, as before the threads */
		if (!scram_secret_from_password(e->password, &e->scram))
		{
			ereport(LOG, (errmsg("pgbun: could not derive a SCRAM secret for auth_file role \"%s\"", user)));
			return AUTH_FILE_SECRET_FAILED;
		}
		e->scram_ready = true;
		ereport(DEBUG1, (errmsg("pgbun: derived the SCRAM secret of auth_file role \"%s\" inline (no kdf thread could take it)", user)));
	}
	if (e->scram_ready)
	{
		role->scram = e->scram;
		role->scram_pending = false;
		return AUTH_FILE_SECRET_READY;
	}
	dlist_push_tail(&e->deriving->waiters, &w->node);
	w->waiting = true;
	return AUTH_FILE_SECRET_PENDING;
}

void
auth_file_waiter_forget(AuthFileWaiter *w)
{
	if (w->waiting)
		dlist_delete(&w->node);
	w->waiting = false;
}

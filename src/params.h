/*
 * params.h - session parameters that follow a client from server to server.
 *
 * A parameter set is a packed block "name\0value\0...". A client has its
 * connect-time values (startup packet and options), its wanted values (those,
 * updated by the ParameterStatus its server reports) and the welcome it was
 * shown (a ParamSet: the ParameterStatus of a server login, i.e. the
 * server's defaults of the reported parameters). A server has what it
 * reported and what pgbun set there of the parameters it does not report.
 * When a server is linked to a client whose values differ, the pooler sends
 * SET / RESET first (params_build_set_sql). session.c drives it.
 */
#ifndef PGBUN_PARAMS_H
#define PGBUN_PARAMS_H

#include "postgres.h"

/* pgbun.track_extra_parameters: at most this many names, each shorter than this. */
#define PARAMS_MAX_EXTRA 16
#define PARAMS_NAME_MAX 64
/* What one client may carry: startup parameters and options settings, count and bytes. */
#define PARAMS_MAX_CARRIED 32
#define PARAMS_MAX_BYTES 4096

/* A shared, reference-counted parameter set (a pool's welcome, held by its clients). */
typedef struct ParamSet
{
	uint32		refs;
	uint16		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} ParamSet;

/* A new set holding a copy of block (one reference), or NULL when out of memory. */
extern ParamSet *params_snapshot(const char *block, uint16 len);
/* Drop one reference (NULL is fine); the last one frees the set. */
extern void params_snapshot_release(ParamSet *ps);

/*
 * Check a comma/space-separated list of extra tracked names (names already
 * tracked are skipped) and, with apply, make it the list in force. Returns
 * how many, or -1 (nothing changed) for a bad name or too many.
 */
extern int	params_set_extra(const char *list, bool apply);

/* Canonical name if this startup/ParameterStatus name is tracked by every client, else NULL. */
extern const char *params_tracked_name(const char *name);
/* Value of name in a block, or NULL. */
extern const char *params_get(const char *block, uint16 len, const char *name);
/* Set name=value in a malloc'd block (replacing an old value). false on OOM/too big. */
extern bool params_set(char **block, uint16 *len, const char *name, const char *value);
/* Remove name from a block (nothing if absent). */
extern void params_remove(char **block, uint16 *len, const char *name);
/* Number of name/value pairs in a block. */
extern int	params_count(const char *block, uint16 len);

/* What linking a client to a server compares. */
typedef struct ParamsState
{
	const char *want;			/* the client's wanted values */
	uint16		want_len;
	const char *defaults;		/* its welcome: the reported parameters' defaults */
	uint16		defaults_len;
	const char *reported;		/* the server's ParameterStatus values */
	uint16		reported_len;
	const char *set;			/* unreported values pgbun set there (absent: the default) */
	uint16		set_len;
	bool		dirty;			/* the server may hold anything (a client's SET): RESET ALL first */
	/*
	 * The client's connect-time values: a wanted value that differs from its
	 * own is the client's SET, and must be a session value on the server
	 * (SET even where the server has it as its default), so that a later
	 * RESET of something else does not put the connect-time value back.
	 */
	const char *startup;
	uint16		startup_len;
} ParamsState;

/* Is want, for a name the client gave at connect time, a value of the client's own SET? */
extern bool params_is_own_set(const ParamsState *st, const char *name, const char *want);

/*
 * SQL that brings the server to the client's wanted values: SET where a
 * value differs, RESET where the client has none and the server holds a
 * value pgbun set for someone else, everything after RESET ALL when dirty.
 * A reported name the client never set is brought to its welcome value.
 * Returns the length written (0: nothing to do), -1 if it does not fit.
 */
extern int	params_build_set_sql(const ParamsState *st, char *out, int outcap);

/*
 * After that SQL ran: the server's record of unreported values is the
 * client's wanted values of every name the server does not report.
 */
extern bool params_note_set(const ParamsState *st, char **set, uint16 *set_len);

/*
 * 64-bit hashes such that equal client and server fingerprints mean
 * params_build_set_sql (not dirty) has nothing to do, so linking can skip
 * building it. The client's covers its wanted values and its welcome's
 * defaults; the server's its reported values and pgbun's record.
 */
extern uint64 params_client_fingerprint(const char *want, uint16 want_len,
										const char *defaults, uint16 defaults_len);
extern uint64 params_server_fingerprint(const char *reported, uint16 reported_len,
										const char *set, uint16 set_len);

/*
 * After the client's RESET / RESET ALL / DISCARD ALL: SQL that puts back
 * its connect-time value of every parameter the server no longer holds as
 * set in the session (pg_settings.source <> 'session'), as PostgreSQL's own
 * RESET would. Returns the length (0: nothing to restore), -1 if too long.
 */
extern int	params_build_restore_sql(const char *startup, uint16 len, char *out, int outcap);

#endif							/* PGBUN_PARAMS_H */

/*
 * params.h - session parameters that follow a client from server to server.
 *
 * A parameter set is a packed block "name\0value\0...": the client's wanted
 * values (startup packet, later ParameterStatus), a server's reported values,
 * and a pool's welcome set. When a server is linked to a client whose tracked
 * values differ, the pooler sends SET commands first (params_build_set_sql).
 */
#ifndef PGBUN_PARAMS_H
#define PGBUN_PARAMS_H

#include "postgres.h"

/* pgbun.track_extra_parameters: at most this many names, each shorter than this. */
#define PARAMS_MAX_EXTRA 16
#define PARAMS_NAME_MAX 64
/* Recorded value of an extra parameter left at the server's default (RESET). */
#define PARAMS_DEFAULT "\x01"

/*
 * Check a comma/space-separated list of extra tracked names (names already
 * tracked are skipped) and, with apply, make it the list in force. Returns
 * how many, or -1 (nothing changed) for a bad name or too many.
 */
extern int	params_set_extra(const char *list, bool apply);
/*
 * After the SET/RESET from params_build_set_sql ran on a server: record the
 * extra parameters' values in its set (the server does not report them).
 */
extern bool params_note_extra(const char *want, uint16 want_len, char **have, uint16 *have_len);

/* Canonical name if this startup/ParameterStatus name is tracked, else NULL. */
extern const char *params_tracked_name(const char *name);
/* Value of name in a block, or NULL. */
extern const char *params_get(const char *block, uint16 len, const char *name);
/* Set name=value in a malloc'd block (replacing an old value). false on OOM/too big. */
extern bool params_set(char **block, uint16 *len, const char *name, const char *value);
/*
 * SQL that brings a server with values `have` to the client's `want`
 * (falling back to the pool's `defaults` for names the client never set).
 * Returns the length written (0: nothing to do), -1 if it does not fit.
 */
extern int	params_build_set_sql(const char *want, uint16 want_len,
								 const char *have, uint16 have_len,
								 const char *defaults, uint16 defaults_len,
								 char *out, int outcap);

/*
 * A 64-bit hash of the tracked values of a set (a name missing from `block`
 * taken from `defaults`, which may be NULL). Equal fingerprints of a client's
 * wanted set (with the pool's defaults) and a server's set mean
 * params_build_set_sql has nothing to do, so linking can skip building it.
 */
extern uint64 params_fingerprint(const char *block, uint16 len,
								 const char *defaults, uint16 defaults_len);

#endif							/* PGBUN_PARAMS_H */

/*
 * startup_options.h - the startup packet's "options" value split into
 * name/value settings, as PostgreSQL's pg_split_opts() and its switch
 * parser read it: words separated by white space, a backslash keeps the
 * next character (a space, or a backslash) in the word, and each setting is
 * "-c name=value", "-cname=value" or "--name=value" (dashes in the name
 * become underscores). Pure C, no postgres.h, so it is unit-tested and
 * fuzzed on its own.
 */
#ifndef PGBUN_STARTUP_OPTIONS_H
#define PGBUN_STARTUP_OPTIONS_H

#include <stddef.h>

/*
 * Split opts into out as packed "name\0value\0" pairs. out needs at most
 * strlen(opts) + 2 bytes (words only shrink). Returns the number of pairs,
 * or with a message (naming the offending word) in err: -1 for a word that
 * is not a setting, -2 for a setting without a value (PostgreSQL reports
 * both as 42601 syntax_error).
 */
extern int	startup_options_split(const char *opts, char *out, size_t outcap,
								  char *err, size_t errcap);

#endif							/* PGBUN_STARTUP_OPTIONS_H */

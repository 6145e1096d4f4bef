/*
 * settings_check.h - the whole-snapshot checks of pgbun's settings
 * (settings_check.c): pure C, unit-tested.
 */
#ifndef PGBUN_SETTINGS_CHECK_H
#define PGBUN_SETTINGS_CHECK_H

#include "settings.h"

/*
 * Check a snapshot as a whole: false with errbuf naming the setting and the
 * reason ("pgbun.min_pool_size (5) is above ...").
 */
extern bool settings_check(const PgbunSettings *s, char *errbuf, int errlen);

#endif							/* PGBUN_SETTINGS_CHECK_H */

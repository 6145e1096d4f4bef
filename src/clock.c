/*
 * clock.c - the steady clock of pgbun's timestamps (clock.h).
 */
#include "postgres.h"

#include <time.h>

#include "utils/timestamp.h"

#include "clock.h"
#include "config.h"
#include "shmem.h"

static int64
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/*
 * The wall clock, as pgbun sees it: pgbun.debug_clock_offset lets a test
 * step it without touching the machine's.
 */
static TimestampTz
wall_now(void)
{
	return GetCurrentTimestamp() + (TimestampTz) pgbun_debug_clock_offset * USECS_PER_SEC;
}

TimestampTz
pgbun_clock_anchor(void)
{
	return wall_now() - monotonic_us();
}

TimestampTz
pgbun_clock_now(void)
{
	/* without the segment (pgbun not preloaded) there is nothing to agree with */
	if (!pgbun_shared)
		return wall_now();
	return pgbun_shared->clock_anchor + monotonic_us();
}

TimestampTz
pgbun_clock_to_wall(TimestampTz t)
{
	if (t == 0 || !pgbun_shared)
		return t;
	return t + (wall_now() - pgbun_clock_now());
}

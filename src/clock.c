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
 * step it without touching the machine's. The only place pgbun reads it.
 */
TimestampTz
pgbun_clock_wall_now(void)
{
	return GetCurrentTimestamp() + (TimestampTz) pgbun_debug_clock_offset * USECS_PER_SEC;
}

TimestampTz
pgbun_clock_anchor(void)
{
	/*
	 * At least a day: 0 and below mean "unset" to pgbun's timeouts, and a
	 * server started with its clock before 2000 (no real-time clock, NTP
	 * not yet there) must not keep them off until it restarts.
	 */
	return Max(pgbun_clock_wall_now() - monotonic_us(), (TimestampTz) USECS_PER_DAY);
}

TimestampTz
pgbun_clock_now(void)
{
	/* without the segment (pgbun not preloaded) there is nothing to agree with */
	if (!pgbun_shared)
		return pgbun_clock_wall_now();
	return pgbun_shared->clock_anchor + monotonic_us();
}

TimestampTz
pgbun_clock_to_wall(TimestampTz t)
{
	/*
	 * The two clocks read one after the other differ by a microsecond or
	 * more from call to call: keep the last difference unless it moved by
	 * more than a millisecond (a step), so that equal timestamps show equal
	 * and close ones keep their order.
	 */
	static TimestampTz shown_delta = 0;
	TimestampTz delta;

	if (t == 0 || !pgbun_shared)
		return t;
	delta = pgbun_clock_wall_now() - pgbun_clock_now();
	if (shown_delta == 0 || delta - shown_delta > 1000 || shown_delta - delta > 1000)
		shown_delta = delta;
	return t + shown_delta;
}

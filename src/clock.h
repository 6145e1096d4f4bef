/*
 * clock.h - the one clock every pgbun timestamp is on (clock.c).
 *
 * pgbun's timestamps (W->now, the connection and host slots, the control
 * requests) mark instants of a steady clock: the wall clock as it was when
 * the shared memory segment was made, moved on by CLOCK_MONOTONIC. A step of
 * the system clock (NTP setting it, a date command) so moves no deadline and
 * no duration, in any process. What people read (the views, SHOW, the
 * metrics) is converted back to the wall clock of the moment it is read.
 */
#ifndef PGBUN_CLOCK_H
#define PGBUN_CLOCK_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* The wall clock (with pgbun.debug_clock_offset), for comparisons with the server's own times. */
extern TimestampTz pgbun_clock_wall_now(void);

/* Anchor the steady clock to the wall clock (once, when the segment is made). */
extern TimestampTz pgbun_clock_anchor(void);

/* Now, on the steady clock. */
extern TimestampTz pgbun_clock_now(void);

/* A steady-clock timestamp as the wall clock of now shows it (0 stays 0). */
extern TimestampTz pgbun_clock_to_wall(TimestampTz t);

#endif

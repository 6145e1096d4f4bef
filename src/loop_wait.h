/*
 * loop_wait.h - the worker's blocking wait (loop_wait.c).
 */
#ifndef PGBUN_LOOP_WAIT_H
#define PGBUN_LOOP_WAIT_H

#include "poll.h"

extern void loop_wait_init(pqsigfunc sigterm_handler);
extern int	loop_wait(PollEvent *events, int max, long timeout_ms);
extern void loop_wait_event(IoObj *obj);

#endif

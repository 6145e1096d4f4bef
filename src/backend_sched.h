/*
 * backend_sched.h - SCHED_BATCH for the local backends behind server
 * connections (backend_sched.c).
 */
#ifndef PGBUN_BACKEND_SCHED_H
#define PGBUN_BACKEND_SCHED_H

#include "pooler.h"

extern void backend_sched_login(Server *s);
extern void backend_sched_reconfigure(void);

#endif

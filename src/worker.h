/*
 * worker.h - the pooler background worker: entry point and loop-wide state.
 */
#ifndef PGBUN_WORKER_H
#define PGBUN_WORKER_H

#include "postgres.h"
#include "fmgr.h"

extern PGDLLEXPORT void pgbun_worker_main(Datum main_arg);

#endif							/* PGBUN_WORKER_H */

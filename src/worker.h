/*
 * worker.h - the pooler background worker: entry point and loop-wide state.
 */
#ifndef PGBUN_WORKER_H
#define PGBUN_WORKER_H

#include "postgres.h"
#include "fmgr.h"

/*
 * bgw_restart_time: how long after a worker exits other than by a server
 * shutdown (pg_terminate_backend, a FATAL error) the postmaster starts it again.
 */
#define PGBUN_RESTART_SECONDS 1

extern PGDLLEXPORT void pgbun_worker_main(Datum main_arg);

#endif							/* PGBUN_WORKER_H */

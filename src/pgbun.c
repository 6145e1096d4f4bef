/*
 * pgbun.c - the extension's entry point: _PG_init defines the GUCs, asks for
 * shared memory and registers the pooler background workers.
 *
 * pgbun only works from shared_preload_libraries: the workers and the shared
 * segment must exist before any backend runs. Loaded any other way (a
 * function call in a server without the preload) it refuses with a hint.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

#include "config.h"
#include "shmem.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Register one background worker per pgbun.workers. Each is started again
 * PGBUN_RESTART_SECONDS after it exits with code 1 (pg_terminate_backend, a
 * FATAL error); it exits 0 only in a server shutdown.
 */
static void
register_workers(void)
{
	for (int i = 0; i < pgbun_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = PGBUN_RESTART_SECONDS;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgbun");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgbun_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "pgbun worker %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "pgbun worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		worker.bgw_notify_pid = 0;
		RegisterBackgroundWorker(&worker);
	}
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgbun: the pgbun library must be loaded through shared_preload_libraries"),
				 errhint("Add pgbun to shared_preload_libraries in postgresql.conf and restart the server.")));

	pgbun_define_gucs();
	pgbun_shmem_register();
	register_workers();
}

/*
 * pipeline_test.c - libpq pipeline mode through the pooler, results checked
 * one by one.
 *
 * Usage: pipeline_test CONNINFO TAG [ROUNDS]
 *
 * Each round enters pipeline mode and sends 100 queries with
 * PQsendQueryParams plus a PQpipelineSync after every 10th (10 Syncs), all
 * before reading any result, so every Sync is outstanding at once. Then it
 * reads the results back and checks each one:
 *
 *  - ordinary queries return "<tag>:<2*i>" and the server's backend pid;
 *    every query of one segment (between two Syncs) must run on the same
 *    backend, since a segment is one transaction;
 *  - queries with i % 10 == 1 insert (tag, i) into pipeline_log;
 *  - query ERROR_AT divides by zero: PGRES_FATAL_ERROR with SQLSTATE 22012;
 *    the rest of its segment is PGRES_PIPELINE_ABORTED and the insert made
 *    earlier in that segment is rolled back; later segments work again;
 *  - query BEGIN_AT opens an explicit transaction that stays open across the
 *    Sync ending its segment (ReadyForQuery 'T') and is committed by query
 *    COMMIT_AT in the next segment: both segments must run on one backend;
 *  - each Sync yields PGRES_PIPELINE_SYNC in its place.
 *
 * After leaving pipeline mode it reads back the rows the round inserted: the
 * committed ones and none of the rolled-back one.
 *
 * Prints "ok" and exits 0 only if everything matched; otherwise prints what
 * differed to stderr and exits 1 (2: could not connect, 3: timed out).
 * The table: CREATE TABLE pipeline_log (tag text, i int).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpq-fe.h"

#define NQUERIES	100
#define SEGMENT		10
#define ERROR_AT	45			/* 1/0 in segment 4 */
#define BEGIN_AT	60			/* BEGIN in segment 6 ... */
#define COMMIT_AT	79			/* ... COMMIT at the end of segment 7 */
#define GUARD_SECS	300			/* hang guard for one whole run */

static int	failures;
static const char *progname = "pipeline_test";

static void
fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static void
on_alarm(int sig)
{
	static const char msg[] = "pipeline_test: timed out waiting for the server (hang guard)\n";

	(void) sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static int
is_insert(int i)
{
	return i % SEGMENT == 1;
}

/* Is query i one that never runs because the error before it aborted its segment? */
static int
is_aborted(int i)
{
	return i / SEGMENT == ERROR_AT / SEGMENT && i > ERROR_AT;
}

/* Send query i of a round; returns 0 on a send failure. */
static int
send_query(PGconn *conn, int i, const char *tag)
{
	char		num[16];
	const char *params[2];
	const char *sql;
	int			nparams;

	snprintf(num, sizeof(num), "%d", i);
	if (i == BEGIN_AT)
	{
		sql = "BEGIN";
		nparams = 0;
	}
	else if (i == COMMIT_AT)
	{
		sql = "COMMIT";
		nparams = 0;
	}
	else if (i == ERROR_AT)
	{
		sql = "SELECT (1 / ($1::int - $1::int))::text, pg_backend_pid()";
		params[0] = num;
		nparams = 1;
	}
	else if (is_insert(i))
	{
		sql = "INSERT INTO pipeline_log (tag, i) VALUES ($1, $2::int) "
			"RETURNING tag || ':' || i, pg_backend_pid()";
		params[0] = tag;
		params[1] = num;
		nparams = 2;
	}
	else
	{
		sql = "SELECT $1::text || ':' || ($2::int * 2), pg_backend_pid()";
		params[0] = tag;
		params[1] = num;
		nparams = 2;
	}
	if (!PQsendQueryParams(conn, sql, nparams, NULL, nparams ? params : NULL, NULL, NULL, 0))
	{
		fail("query %d: PQsendQueryParams failed: %s", i, PQerrorMessage(conn));
		return 0;
	}
	return 1;
}

/* The value query i returns ("" for BEGIN/COMMIT). */
static void
expected_value(int i, const char *tag, char *buf, size_t len)
{
	if (is_insert(i))
		snprintf(buf, len, "%s:%d", tag, i);
	else
		snprintf(buf, len, "%s:%d", tag, i * 2);
}

/* Check the result(s) of query i; pids[] collects each query's backend. */
static void
check_query(PGconn *conn, int i, const char *tag, int *pids)
{
	PGresult   *res = PQgetResult(conn);
	ExecStatusType st;
	char		want[128];

	pids[i] = 0;
	if (res == NULL)
	{
		fail("query %d: no result (PQgetResult returned NULL): %s", i, PQerrorMessage(conn));
		return;
	}
	st = PQresultStatus(res);
	if (i == ERROR_AT)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (st != PGRES_FATAL_ERROR)
			fail("query %d: status %s, expected PGRES_FATAL_ERROR", i, PQresStatus(st));
		else if (state == NULL || strcmp(state, "22012") != 0)
			fail("query %d: SQLSTATE %s, expected 22012 (%s)", i, state ? state : "(none)",
				 PQresultErrorMessage(res));
	}
	else if (is_aborted(i))
	{
		if (st != PGRES_PIPELINE_ABORTED)
			fail("query %d: status %s, expected PGRES_PIPELINE_ABORTED", i, PQresStatus(st));
	}
	else if (i == BEGIN_AT || i == COMMIT_AT)
	{
		if (st != PGRES_COMMAND_OK)
			fail("query %d: status %s, expected PGRES_COMMAND_OK: %s", i, PQresStatus(st),
				 PQresultErrorMessage(res));
	}
	else if (st != PGRES_TUPLES_OK)
		fail("query %d: status %s, expected PGRES_TUPLES_OK: %s", i, PQresStatus(st),
			 PQresultErrorMessage(res));
	else if (PQntuples(res) != 1 || PQnfields(res) != 2)
		fail("query %d: %d rows of %d columns, expected 1 row of 2", i, PQntuples(res), PQnfields(res));
	else
	{
		expected_value(i, tag, want, sizeof(want));
		if (strcmp(PQgetvalue(res, 0, 0), want) != 0)
			fail("query %d: got '%s', expected '%s'", i, PQgetvalue(res, 0, 0), want);
		pids[i] = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);

	/* Each query's results end with a NULL. */
	res = PQgetResult(conn);
	if (res != NULL)
	{
		fail("query %d: an extra result (%s) where NULL was expected", i,
			 PQresStatus(PQresultStatus(res)));
		PQclear(res);
	}
}

static void
check_sync(PGconn *conn, int after)
{
	PGresult   *res = PQgetResult(conn);

	if (res == NULL)
	{
		fail("sync after query %d: no result: %s", after, PQerrorMessage(conn));
		return;
	}
	if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		fail("sync after query %d: status %s, expected PGRES_PIPELINE_SYNC", after,
			 PQresStatus(PQresultStatus(res)));
	PQclear(res);
}

/* Every query of a segment (and of the BEGIN..COMMIT pair) ran on one backend. */
static void
check_backends(const int *pids)
{
	for (int seg = 0; seg < NQUERIES / SEGMENT; seg++)
	{
		int			first = 0;

		for (int i = seg * SEGMENT; i < (seg + 1) * SEGMENT; i++)
		{
			if (pids[i] == 0)
				continue;
			if (first == 0)
				first = pids[i];
			else if (pids[i] != first)
				fail("segment %d: query %d ran on backend %d, earlier queries of the segment on %d",
					 seg, i, pids[i], first);
		}
	}
	for (int i = BEGIN_AT; i <= COMMIT_AT; i++)
	{
		if (pids[i] != 0 && pids[BEGIN_AT + 1] != 0 && pids[i] != pids[BEGIN_AT + 1])
			fail("explicit transaction: query %d ran on backend %d, query %d on %d",
				 i, pids[i], BEGIN_AT + 1, pids[BEGIN_AT + 1]);
	}
}

/* The rows this round left in pipeline_log: every insert but the rolled-back one. */
static void
check_rows(PGconn *conn, const char *tag)
{
	char		want[512] = "";
	const char *params[1] = {tag};
	PGresult   *res;

	for (int i = 0; i < NQUERIES; i++)
	{
		if (is_insert(i) && i / SEGMENT != ERROR_AT / SEGMENT)
		{
			size_t		l = strlen(want);

			snprintf(want + l, sizeof(want) - l, "%s%d", l ? "," : "", i);
		}
	}
	res = PQexecParams(conn,
					   "SELECT coalesce(string_agg(i::text, ',' ORDER BY i), '') "
					   "FROM pipeline_log WHERE tag = $1",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail("reading back pipeline_log: %s", PQresultErrorMessage(res));
	else if (strcmp(PQgetvalue(res, 0, 0), want) != 0)
		fail("pipeline_log for %s holds i = {%s}, expected {%s}", tag, PQgetvalue(res, 0, 0), want);
	PQclear(res);
}

static void
run_round(PGconn *conn, const char *tag)
{
	int			pids[NQUERIES];

	if (!PQenterPipelineMode(conn))
	{
		fail("PQenterPipelineMode: %s", PQerrorMessage(conn));
		return;
	}

	/* Everything goes out before any result is read. */
	for (int i = 0; i < NQUERIES; i++)
	{
		if (!send_query(conn, i, tag))
			return;
		if ((i + 1) % SEGMENT == 0 && !PQpipelineSync(conn))
		{
			fail("PQpipelineSync after query %d: %s", i, PQerrorMessage(conn));
			return;
		}
	}
	if (PQflush(conn) != 0)
	{
		fail("PQflush: %s", PQerrorMessage(conn));
		return;
	}

	for (int i = 0; i < NQUERIES; i++)
	{
		check_query(conn, i, tag, pids);
		if ((i + 1) % SEGMENT == 0)
			check_sync(conn, i);
		if (PQstatus(conn) != CONNECTION_OK)
		{
			fail("connection lost after query %d: %s", i, PQerrorMessage(conn));
			return;
		}
	}
	check_backends(pids);

	if (!PQexitPipelineMode(conn))
	{
		fail("PQexitPipelineMode: %s", PQerrorMessage(conn));
		return;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		fail("after the pipeline the connection is not idle (status %d)", PQtransactionStatus(conn));
	check_rows(conn, tag);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	int			rounds = 1;

	if (argc < 3 || argc > 4)
	{
		fprintf(stderr, "usage: %s CONNINFO TAG [ROUNDS]\n", argv[0]);
		return 1;
	}
	if (argc == 4)
		rounds = atoi(argv[3]);
	if (rounds < 1)
		rounds = 1;

	signal(SIGALRM, on_alarm);
	alarm(GUARD_SECS);

	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s: cannot connect: %s", progname, PQerrorMessage(conn));
		PQfinish(conn);
		return 2;
	}

	for (int r = 1; r <= rounds && failures == 0; r++)
	{
		char		tag[64];

		snprintf(tag, sizeof(tag), "%s-%d", argv[2], r);
		run_round(conn, tag);
	}
	PQfinish(conn);

	if (failures)
	{
		fprintf(stderr, "%s: %d mismatches\n", progname, failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}

/*
 * metrics.c - the HTTP port: Prometheus metrics, the status page and its
 * JSON (metrics.h).
 *
 * Connections are served from worker 0's loop: sockets in the inner epoll
 * set, read until EAGAIN into a fixed buffer, parsed by http.c, answered,
 * closed. Nothing waits: a request head that does not fit the buffer gets
 * 431, one that takes longer than HTTP_DEADLINE_MS is dropped by the
 * janitor, a connection over HTTP_MAX_CONNS gets 503 at once, an accept()
 * without a free descriptor pauses the listeners (as listener.c does) rather
 * than spin on them. The rendered /metrics and /status.json bodies are kept
 * for METRICS_CACHE_MS and shared (reference-counted) by every connection
 * sending them, so a scrape storm renders each once.
 *
 * Exposition follows the Prometheus naming practices: pgbun_ prefix, base
 * units (_seconds, _bytes), counters end in _total, histograms with fixed
 * buckets (100 us .. 10 s), labels database, user, host and never a client.
 */
#include "postgres.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "config.h"
#include "counters.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pooler.h"
#include "settings.h"
#include "stats_read.h"
#include "status_page.h"

#define HTTP_MAX_LISTENERS	8
#define HTTP_MAX_CONNS		128
#define HTTP_REQUEST_MAX	8192	/* request head bytes */
#define HTTP_DEADLINE_MS	10000	/* to send the request and read the answer */
#define HTTP_LINGER_MS		2000	/* after the answer: drain what the client still sends */
#define HTTP_ACCEPT_BATCH	32
#define HTTP_BODY_MAX		(64 * 1024 * 1024)
#define METRICS_CACHE_MS	250
#define HTTP_DRAIN_MAX		(64 * 1024)	/* bytes drained per event after the answer */
#define HTTP_PAUSE_MIN_MS	100 /* accept() out of descriptors: first pause */
#define HTTP_PAUSE_MAX_MS	5000
#define STATUS_MAX_CLIENTS	100

#define PGBUN_METRICS_VERSION "1.2"

int			pgbun_metrics_port = 0;
char	   *pgbun_metrics_listen_addresses = NULL;

/* An answer body, shared by the connections sending it. */
typedef struct Body
{
	int			refs;
	size_t		len;
	size_t		cap;
	bool		failed;			/* out of memory or over HTTP_BODY_MAX */
	char	   *data;
} Body;

typedef enum HttpStep
{
	HTTP_READING = 0,
	HTTP_WRITING,
	HTTP_LINGERING,
} HttpStep;

typedef struct HttpObj
{
	IoObj		io;				/* IO_HTTP; first member */
	bool		listener;
	int			fd;
} HttpObj;

typedef struct HttpConn
{
	HttpObj		h;
	dlist_node	node;
	HttpStep	step;
	bool		closed;
	TimestampTz deadline;
	size_t		in_len;
	HttpHeadScan scan;			/* where the end of the head may be */
	char		head[512];		/* status line and headers of the answer */
	size_t		head_len;
	Body	   *body;			/* NULL: none (HEAD, or a static answer) */
	const char *static_body;
	size_t		body_len;
	size_t		sent;			/* bytes of head + body written */
	char		in[HTTP_REQUEST_MAX];
} HttpConn;

static HttpObj listeners[HTTP_MAX_LISTENERS];
static int	n_listeners = 0;
static dlist_head conns = DLIST_STATIC_INIT(conns);
/* closed, freed by the janitor: an event of the same batch may still name them */
static dlist_head closed_conns = DLIST_STATIC_INIT(closed_conns);
static int	n_conns = 0;
static int	open_port = 0;
static char *open_addresses = NULL;

/* A rendered body kept for METRICS_CACHE_MS. */
typedef struct BodyCache
{
	Body	   *body;
	TimestampTz at;
} BodyCache;

static BodyCache cached_metrics;
static BodyCache cached_status;

/* accept() failed for lack of descriptors or memory: listeners out of the poll set */
static bool accept_paused = false;
static int	accept_pause_ms = 0;
static TimestampTz accept_resume_at = 0;

/* ---- GUCs ---- */

void
metrics_define_gucs(void)
{
	DefineCustomIntVariable("pgbun.metrics_port",
							"TCP port of pgbun's HTTP endpoint: Prometheus /metrics and the status page (0: off).",
							"No authentication: it listens on pgbun.metrics_listen_addresses, localhost by default.",
							&pgbun_metrics_port, 0, 0, 65535,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pgbun.metrics_listen_addresses",
							   "Addresses the metrics port listens on: IP addresses, localhost or * (comma-separated).",
							   NULL, &pgbun_metrics_listen_addresses, "localhost",
							   PGC_SIGHUP, GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomIntVariable("pgbun.stats_period",
							"How often pgbun logs one line of stats per pool (0: never).",
							NULL, &pgbun_stats_period, 60, 0, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("pgbun.log_pooler_errors",
							 "Log the errors pgbun itself sends to clients.",
							 NULL, &pgbun_log_pooler_errors, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* ---- bodies ---- */

static Body *
body_new(void)
{
	Body	   *b = calloc(1, sizeof(Body));

	if (b)
		b->refs = 1;
	return b;
}

static void
body_unref(Body *b)
{
	if (b && --b->refs == 0)
	{
		free(b->data);
		free(b);
	}
}

static void
body_append(Body *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = Max(b->cap * 2, (size_t) 16384);
		char	   *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > HTTP_BODY_MAX || (d = realloc(b->data, cap)) == NULL)
		{
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void body_printf(Body *b, const char *fmt,...) pg_attribute_printf(2, 3);

static void
body_printf(Body *b, const char *fmt,...)
{
	char		buf[1024];
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n < sizeof(buf))
		body_append(b, buf, n);
	else
	{
		char	   *big = malloc(n + 1);

		if (!big)
		{
			b->failed = true;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, n + 1, fmt, ap);
		va_end(ap);
		body_append(b, big, n);
		free(big);
	}
}

/* A label value or JSON string: escapes of both formats agree on \\ \" \n. */
static void
append_escaped(Body *b, const char *s, bool json)
{
	char		esc[8];

	for (; *s; s++)
	{
		unsigned char ch = (unsigned char) *s;

		if (ch == '\\' || ch == '"')
		{
			esc[0] = '\\';
			esc[1] = (char) ch;
			body_append(b, esc, 2);
		}
		else if (ch == '\n')
			body_append(b, "\\n", 2);
		else if (json && ch < 0x20)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			body_append(b, esc, 6);
		}
		else
			body_append(b, s, 1);
	}
}

/* "metric{host="name:port"} " of a host of the host lists; the caller prints the value. */
static void
host_sample(Body *b, const char *metric, const PgbunHostSlot *hs)
{
	char		label[PGBUN_HOST_NAME_LEN + 16];

	snprintf(label, sizeof(label), "%s:%d", hs->host, hs->port);
	body_printf(b, "%s{host=\"", metric);
	append_escaped(b, label, false);
	body_append(b, "\"} ", 3);
}

/* A pgbun timestamp (steady clock) as Unix time on the wall clock of now. */
static double
unix_seconds(TimestampTz ts)
{
	return (double) pgbun_clock_to_wall(ts) / 1e6 + (double) ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
}

/* ---- the numbers ---- */

typedef struct PoolSnap
{
	bool		used;
	char		database[NAMEDATALEN];
	char		user[NAMEDATALEN];
	int			pool_mode;
	PoolStatsSum sum;
	HistCopy	hist[HIST_KINDS];
	PoolCounters *pc;
} PoolSnap;

static PoolSnap *snaps = NULL;
static PoolGauges *gauges = NULL;

/* Copy every pool's counters and count the gauges; false when out of memory. */
static bool
take_snapshot(void)
{
	if (!snaps)
		snaps = calloc(PGBUN_MAX_POOLS, sizeof(PoolSnap));
	if (!gauges)
		gauges = calloc(PGBUN_MAX_POOLS, sizeof(PoolGauges));
	if (!snaps || !gauges || !pgbun_counters)
		return false;
	stats_count_gauges(gauges);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		const PgbunPoolSlot *p = stats_pool_in_use(i);
		PoolSnap   *s = &snaps[i];
		s->used = p != NULL;
		if (!p)
			continue;
		strlcpy(s->database, p->database, NAMEDATALEN);
		strlcpy(s->user, p->user, NAMEDATALEN);
		s->pool_mode = p->pool_mode;
		memset(&s->sum, 0, sizeof(s->sum));
		counters_sum_stats(i, &s->sum);
		s->pc = counters_of(i);
		for (int k = 0; k < HIST_KINDS; k++)
			counters_read_hist(i, k, &s->hist[k]);
	}
	return true;
}

static void
family(Body *b, const char *name, const char *type, const char *help)
{
	body_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Write {database="..",user=".."} and an extra label (or none) without the closing brace. */
static void
pool_labels(Body *b, const PoolSnap *s)
{
	body_append(b, "{database=\"", 11);
	append_escaped(b, s->database, false);
	body_append(b, "\",user=\"", 8);
	append_escaped(b, s->user, false);
	body_append(b, "\"", 1);
}

/* One gauge sample of a pool: name{database=..,user=..[,state=..]} value. */
static void
pool_sample(Body *b, const char *name, const PoolSnap *snap, const char *state, int value)
{
	body_append(b, name, strlen(name));
	pool_labels(b, snap);
	if (state)
		body_printf(b, ",state=\"%s\"", state);
	body_printf(b, "} %d\n", value);
}

typedef enum PoolValue
{
	PV_ASSIGN,
	PV_XACT,
	PV_QUERY,
	PV_RECV,
	PV_SENT,
	PV_PARSE,
	PV_BIND,
	PV_HITS,
	PV_MISSES,
	PV_LOGINS,
	PV_LOGIN_FAILURES,
	PV_SERVER_LOGINS,
	PV_SERVER_LOGIN_FAILURES,
	PV_OLDEST_WAIT,
	PV_WAITING,
} PoolValue;

static double
pool_value(const PoolSnap *s, int idx, PoolValue v, TimestampTz now)
{
	switch (v)
	{
		case PV_ASSIGN:
			return (double) s->sum.assign_count;
		case PV_XACT:
			return (double) s->sum.xact_count;
		case PV_QUERY:
			return (double) s->sum.query_count;
		case PV_RECV:
			return (double) s->sum.bytes_received;
		case PV_SENT:
			return (double) s->sum.bytes_sent;
		case PV_PARSE:
			return (double) s->sum.client_parse_count;
		case PV_BIND:
			return (double) s->sum.bind_count;
		case PV_HITS:
			/* each named Parse or Bind the server had the statement for already */
			return (double) (s->sum.client_parse_count + s->sum.bind_count > s->sum.server_parse_count ?
							 s->sum.client_parse_count + s->sum.bind_count - s->sum.server_parse_count : 0);
		case PV_MISSES:
			return (double) s->sum.server_parse_count;
		case PV_LOGINS:
			return (double) pg_atomic_read_u64(&s->pc->logins);
		case PV_LOGIN_FAILURES:
			return (double) pg_atomic_read_u64(&s->pc->login_failures);
		case PV_SERVER_LOGINS:
			return (double) pg_atomic_read_u64(&s->pc->server_logins);
		case PV_SERVER_LOGIN_FAILURES:
			return (double) pg_atomic_read_u64(&s->pc->server_login_failures);
		case PV_OLDEST_WAIT:
			return gauges[idx].oldest_wait && now > gauges[idx].oldest_wait ?
				(double) (now - gauges[idx].oldest_wait) / 1e6 : 0;
		case PV_WAITING:
			return (double) gauges[idx].cl_waiting;
	}
	return 0;
}

/* One sample per pool of a simple metric. */
static void
pool_family(Body *b, const char *name, const char *type, const char *help, PoolValue v, TimestampTz now)
{
	family(b, name, type, help);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (!snaps[i].used)
			continue;
		body_append(b, name, strlen(name));
		pool_labels(b, &snaps[i]);
		if (v == PV_OLDEST_WAIT)
			body_printf(b, "} %.6f\n", pool_value(&snaps[i], i, v, now));
		else
			body_printf(b, "} %.0f\n", pool_value(&snaps[i], i, v, now));
	}
}

static void
hist_family(Body *b, const char *name, const char *help, HistKind kind)
{
	family(b, name, "histogram", help);
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		const PoolSnap *s = &snaps[i];
		const HistCopy *h = &s->hist[kind];
		uint64		cum = 0;
		uint64		sum_us = kind == HIST_QUERY ? s->sum.query_time_us :
			kind == HIST_XACT ? s->sum.xact_time_us : s->sum.wait_time_us;

		if (!s->used)
			continue;
		for (int bk = 0; bk <= HIST_BUCKETS; bk++)
		{
			cum += h->bucket[bk];
			body_printf(b, "%s_bucket", name);
			pool_labels(b, s);
			body_printf(b, ",le=\"%s\"} " UINT64_FORMAT "\n",
						bk < HIST_BUCKETS ? hist_bounds_text[bk] : "+Inf", cum);
		}
		body_printf(b, "%s_sum", name);
		pool_labels(b, s);
		body_printf(b, "} %.6f\n", (double) sum_us / 1e6);
		body_printf(b, "%s_count", name);
		pool_labels(b, s);
		body_printf(b, "} " UINT64_FORMAT "\n", h->count);
	}
}

/* Errors by class: only classes seen, plus the clients without a pool. */
static void
error_family(Body *b, const char *name, const char *help, bool pooler)
{
	PoolSnap	nopool;

	family(b, name, "counter", help);
	memset(&nopool, 0, sizeof(nopool));
	nopool.used = true;
	nopool.pc = counters_of(-1);
	for (int i = -1; i < PGBUN_MAX_POOLS; i++)
	{
		const PoolSnap *s = i < 0 ? &nopool : &snaps[i];

		if (!s->used)
			continue;
		for (int c = 0; c < ERR_CLASSES; c++)
		{
			uint64		n = pg_atomic_read_u64(pooler ? &s->pc->pooler_errors[c] : &s->pc->server_errors[c]);

			if (n == 0)
				continue;
			body_append(b, name, strlen(name));
			pool_labels(b, s);
			body_printf(b, ",class=\"%s\"} " UINT64_FORMAT "\n", err_class_names[c], n);
		}
	}
}

static const char *const server_states[] = {"active", "idle", "used", "tested", "login", "being_canceled"};

static int
server_gauge(const PoolGauges *g, int st)
{
	switch (st)
	{
		case 0:
			return g->sv_active;
		case 1:
			return g->sv_idle;
		case 2:
			return g->sv_used;
		case 3:
			return g->sv_tested;
		case 4:
			return g->sv_login;
		default:
			return g->sv_being_canceled;
	}
}

static bool
host_up(void)
{
	uint64		ok = pg_atomic_read_u64(&pgbun_counters->host_last_ok);
	uint64		fail = pg_atomic_read_u64(&pgbun_counters->host_last_failure);

	return fail == 0 || ok >= fail;
}

static Body *
render_metrics(TimestampTz now)
{
	Body	   *b = body_new();
	int			running = 0;
	int			npools = 0;
	int			servers = 0;
	uint64		sv_logins = 0;
	uint64		sv_fail = 0;

	if (!b)
		return NULL;
	if (!take_snapshot())
	{
		b->failed = true;
		return b;
	}
	for (int i = 0; i < pgbun_shared->n_workers; i++)
		if (pgbun_shared->workers[i].pid != 0)
			running++;
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (!snaps[i].used)
			continue;
		npools++;
		for (int st = 0; st < lengthof(server_states); st++)
			servers += server_gauge(&gauges[i], st);
		sv_logins += pg_atomic_read_u64(&snaps[i].pc->server_logins);
		sv_fail += pg_atomic_read_u64(&snaps[i].pc->server_login_failures);
	}

	family(b, "pgbun_info", "gauge", "pgbun's version (label version) and PostgreSQL's, always 1.");
	body_printf(b, "pgbun_info{version=\"%s\",postgresql=\"%s\"} 1\n", PGBUN_METRICS_VERSION, PG_VERSION);
	family(b, "pgbun_start_time_seconds", "gauge", "When the counters started (server start), Unix time.");
	body_printf(b, "pgbun_start_time_seconds %.3f\n", unix_seconds(pgbun_shared->stats_start));
	family(b, "pgbun_workers", "gauge", "Pooler workers running.");
	body_printf(b, "pgbun_workers %d\n", running);
	family(b, "pgbun_client_connections", "gauge", "Client connections, every worker, every state.");
	body_printf(b, "pgbun_client_connections %u\n", pg_atomic_read_u32(&pgbun_shared->client_count));
	family(b, "pgbun_max_client_connections", "gauge", "pgbun.max_client_conn.");
	body_printf(b, "pgbun_max_client_connections %d\n", pgbun_cfg->max_client_conn);
	family(b, "pgbun_pools", "gauge", "Pools in use.");
	body_printf(b, "pgbun_pools %d\n", npools);

	/* host: today the one server pgbun connects to */
	family(b, "pgbun_host_up", "gauge", "1 when the last server login on the host succeeded (or none failed), else 0.");
	body_append(b, "pgbun_host_up{host=\"", 20);
	append_escaped(b, W->server_addr_text, false);
	body_printf(b, "\"} %d\n", host_up() ? 1 : 0);
	/* the hosts of pgbun.databases host lists, labelled host:port (health.c) */
	for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
	{
		const PgbunHostSlot *hs = &pgbun_shared->hosts[i];

		if (!hs->in_use)
			continue;
		host_sample(b, "pgbun_host_up", hs);
		body_printf(b, "%d\n", hs->state == HOST_UP ? 1 : 0);
	}
	family(b, "pgbun_host_servers", "gauge", "Server connections to the host, every state.");
	body_append(b, "pgbun_host_servers{host=\"", 25);
	append_escaped(b, W->server_addr_text, false);
	{
		int			listed = 0;

		/* those on hosts of host lists are theirs, below */
		for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
			if (pgbun_shared->hosts[i].in_use)
				listed += (int) pg_atomic_read_u32(&pgbun_shared->hosts[i].n_servers);
		body_printf(b, "\"} %d\n", Max(servers - listed, 0));
	}
	for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
	{
		PgbunHostSlot *hs = &pgbun_shared->hosts[i];

		if (!hs->in_use)
			continue;
		host_sample(b, "pgbun_host_servers", hs);
		body_printf(b, "%u\n", pg_atomic_read_u32(&hs->n_servers));
	}
	/* role and replica lag of the hosts of host lists, as pgbun.hosts shows them */
	family(b, "pgbun_host_primary", "gauge", "1 when the host last reported itself a primary, 0 a standby; absent while unknown.");
	for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
	{
		const PgbunHostSlot *hs = &pgbun_shared->hosts[i];

		if (!hs->in_use || hs->role == HOST_ROLE_UNKNOWN)
			continue;
		host_sample(b, "pgbun_host_primary", hs);
		body_printf(b, "%d\n", hs->role == HOST_ROLE_PRIMARY ? 1 : 0);
	}
	family(b, "pgbun_host_replica_lag_seconds", "gauge", "Replica lag of a standby host at its last check; absent while unknown.");
	for (int i = 0; i < PGBUN_MAX_HOSTS; i++)
	{
		const PgbunHostSlot *hs = &pgbun_shared->hosts[i];

		if (!hs->in_use || hs->lag_ms < 0)
			continue;
		host_sample(b, "pgbun_host_replica_lag_seconds", hs);
		body_printf(b, "%.3f\n", hs->lag_ms / 1000.0);
	}
	family(b, "pgbun_host_server_logins_total", "counter", "Server logins on the host that succeeded.");
	body_append(b, "pgbun_host_server_logins_total{host=\"", 37);
	append_escaped(b, W->server_addr_text, false);
	body_printf(b, "\"} " UINT64_FORMAT "\n", sv_logins);
	family(b, "pgbun_host_server_login_failures_total", "counter", "Server logins on the host that failed.");
	body_append(b, "pgbun_host_server_login_failures_total{host=\"", 45);
	append_escaped(b, W->server_addr_text, false);
	body_printf(b, "\"} " UINT64_FORMAT "\n", sv_fail);

	/* pools */
	family(b, "pgbun_pool_clients", "gauge", "Logged-in clients of the pool by state (active: idle or linked to a server; waiting: for a server).");
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (!snaps[i].used)
			continue;
		pool_sample(b, "pgbun_pool_clients", &snaps[i], "active", gauges[i].cl_active);
		pool_sample(b, "pgbun_pool_clients", &snaps[i], "waiting", gauges[i].cl_waiting);
	}
	family(b, "pgbun_pool_cancel_requests", "gauge",
		   "Connections that brought a CancelRequest for a client of the pool, open until the server took the cancel (active: on its way; waiting: not sent yet).");
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (!snaps[i].used)
			continue;
		pool_sample(b, "pgbun_pool_cancel_requests", &snaps[i], "active", gauges[i].cl_active_cancel_req);
		pool_sample(b, "pgbun_pool_cancel_requests", &snaps[i], "waiting", gauges[i].cl_waiting_cancel_req);
	}
	family(b, "pgbun_pool_server_cancels", "gauge",
		   "Cancel connections open to the pool's servers, clients' and pgbun's own (query_timeout).");
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (snaps[i].used)
			pool_sample(b, "pgbun_pool_server_cancels", &snaps[i], NULL, gauges[i].sv_active_cancel);
	}
	family(b, "pgbun_pool_servers", "gauge", "Server connections of the pool by state.");
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		if (!snaps[i].used)
			continue;
		for (int st = 0; st < lengthof(server_states); st++)
			pool_sample(b, "pgbun_pool_servers", &snaps[i], server_states[st], server_gauge(&gauges[i], st));
	}
	pool_family(b, "pgbun_pool_waiting_clients", "gauge", "Clients waiting for a server.", PV_WAITING, now);
	pool_family(b, "pgbun_pool_oldest_wait_seconds", "gauge", "How long the longest-waiting client has waited for a server.", PV_OLDEST_WAIT, now);
	pool_family(b, "pgbun_server_assignments_total", "counter", "Times a server was linked to a client.", PV_ASSIGN, now);
	pool_family(b, "pgbun_transactions_total", "counter", "Transactions pooled.", PV_XACT, now);
	pool_family(b, "pgbun_queries_total", "counter", "Queries pooled (requests answered by ReadyForQuery).", PV_QUERY, now);
	pool_family(b, "pgbun_received_bytes_total", "counter", "Bytes received from clients.", PV_RECV, now);
	pool_family(b, "pgbun_sent_bytes_total", "counter", "Bytes sent to clients.", PV_SENT, now);
	error_family(b, "pgbun_server_errors_total", "ErrorResponses servers sent to clients, by SQLSTATE class.", false);
	error_family(b, "pgbun_pooler_errors_total", "ErrorResponses pgbun made for clients, by SQLSTATE class (database and user empty: before the client had a pool).", true);
	pool_family(b, "pgbun_client_logins_total", "counter", "Client logins.", PV_LOGINS, now);
	family(b, "pgbun_client_login_failures_total", "counter", "Client logins refused (database and user empty: no pool of those names).");
	{
		PoolCounters *np = counters_of(-1);

		body_printf(b, "pgbun_client_login_failures_total{database=\"\",user=\"\"} " UINT64_FORMAT "\n",
					pg_atomic_read_u64(&np->login_failures));
		for (int i = 0; i < PGBUN_MAX_POOLS; i++)
		{
			if (!snaps[i].used)
				continue;
			body_append(b, "pgbun_client_login_failures_total", 33);
			pool_labels(b, &snaps[i]);
			body_printf(b, "} %.0f\n", pool_value(&snaps[i], i, PV_LOGIN_FAILURES, now));
		}
	}
	pool_family(b, "pgbun_server_logins_total", "counter", "Server logins that succeeded.", PV_SERVER_LOGINS, now);
	pool_family(b, "pgbun_server_login_failures_total", "counter", "Server logins that failed.", PV_SERVER_LOGIN_FAILURES, now);
	pool_family(b, "pgbun_prepared_statement_hits_total", "counter", "Named Parse and Bind messages whose statement the server had prepared already.", PV_HITS, now);
	pool_family(b, "pgbun_prepared_statement_misses_total", "counter", "Statements pgbun had to prepare on a server (Parse messages it sent).", PV_MISSES, now);
	pool_family(b, "pgbun_prepared_statement_parses_total", "counter", "Named Parse messages from clients.", PV_PARSE, now);
	pool_family(b, "pgbun_prepared_statement_binds_total", "counter", "Bind messages of named statements.", PV_BIND, now);
	hist_family(b, "pgbun_query_duration_seconds", "Query time: from the request to its ReadyForQuery.", HIST_QUERY);
	hist_family(b, "pgbun_transaction_duration_seconds", "Transaction time: from its first request to ReadyForQuery with status idle.", HIST_XACT);
	hist_family(b, "pgbun_wait_duration_seconds", "Time clients waited for a server.", HIST_WAIT);
	return b;
}

/* /status.json: what the status page shows; counters are cumulative, the page takes rates. */
static Body *
render_status_json(TimestampTz now)
{
	Body	   *b = body_new();
	bool		first = true;
	int			nclients = 0;
	int			shown = 0;

	if (!b)
		return NULL;
	if (!take_snapshot())
	{
		b->failed = true;
		return b;
	}
	body_printf(b, "{\"version\":\"%s\",\"time\":%.3f,\"start_time\":%.3f,\"client_connections\":%u,\"pools\":[",
				PGBUN_METRICS_VERSION, unix_seconds(now), unix_seconds(pgbun_shared->stats_start),
				pg_atomic_read_u32(&pgbun_shared->client_count));
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		const PoolSnap *s = &snaps[i];
		const PoolGauges *g = &gauges[i];

		if (!s->used)
			continue;
		body_append(b, first ? "{\"database\":\"" : ",{\"database\":\"", first ? 13 : 14);
		first = false;
		append_escaped(b, s->database, true);
		body_append(b, "\",\"user\":\"", 10);
		append_escaped(b, s->user, true);
		body_printf(b, "\",\"mode\":\"%s\",\"cl_active\":%d,\"cl_waiting\":%d,\"sv_active\":%d,\"sv_idle\":%d,"
					"\"sv_used\":%d,\"sv_tested\":%d,\"sv_login\":%d,\"maxwait\":%.6f,",
					pool_mode_name(s->pool_mode), g->cl_active, g->cl_waiting, g->sv_active, g->sv_idle,
					g->sv_used, g->sv_tested, g->sv_login, pool_value(s, i, PV_OLDEST_WAIT, now));
		body_printf(b, "\"xacts\":" UINT64_FORMAT ",\"queries\":" UINT64_FORMAT ",\"bytes_in\":" UINT64_FORMAT
					",\"bytes_out\":" UINT64_FORMAT ",\"wait_us\":" UINT64_FORMAT ",\"waits\":" UINT64_FORMAT
					",\"query_us\":" UINT64_FORMAT ",\"xact_us\":" UINT64_FORMAT,
					s->sum.xact_count, s->sum.query_count, s->sum.bytes_received, s->sum.bytes_sent,
					s->sum.wait_time_us, s->hist[HIST_WAIT].count, s->sum.query_time_us, s->sum.xact_time_us);
		body_printf(b, ",\"query_p50\":%.6f,\"query_p99\":%.6f,\"wait_p99\":%.6f}",
					Max(hist_quantile(&s->hist[HIST_QUERY], 0.5), 0),
					Max(hist_quantile(&s->hist[HIST_QUERY], 0.99), 0),
					Max(hist_quantile(&s->hist[HIST_WAIT], 0.99), 0));
	}
	{
		int			servers = 0;

		for (int i = 0; i < PGBUN_MAX_POOLS; i++)
			if (snaps[i].used)
				for (int st = 0; st < lengthof(server_states); st++)
					servers += server_gauge(&gauges[i], st);
		body_append(b, "],\"hosts\":[{\"host\":\"", 20);
		append_escaped(b, W->server_addr_text, true);
		body_printf(b, "\",\"up\":%s,\"servers\":%d}],\"clients\":[", host_up() ? "true" : "false", servers);
	}
	for (int i = 0; i < pgbun_shared->n_conn_slots; i++)
	{
		PgbunConnSlot c;
		uint64		link;
		const PgbunPoolSlot *p;

		if (!stats_read_conn(i, &c, &link) || c.kind != CONN_CLIENT)
			continue;
		nclients++;
		if (shown >= STATUS_MAX_CLIENTS)
			continue;
		p = stats_pool_in_use(c.pool);
		body_append(b, shown ? ",{\"addr\":\"" : "{\"addr\":\"", shown ? 10 : 9);
		append_escaped(b, c.addr, true);
		body_printf(b, "\",\"port\":%d,\"database\":\"", c.port);
		append_escaped(b, p ? p->database : "", true);
		body_append(b, "\",\"user\":\"", 10);
		append_escaped(b, p ? p->user : "", true);
		body_append(b, "\",\"application_name\":\"", 22);
		append_escaped(b, c.application_name, true);
		body_printf(b, "\",\"state\":\"%s\",\"linked\":%s,\"connect_time\":%.3f,\"wait\":%.6f}",
					stats_conn_state_name(c.kind, c.state), link ? "true" : "false",
					unix_seconds(c.connect_time),
					c.wait_start && now > c.wait_start ? (double) (now - c.wait_start) / 1e6 : 0);
		shown++;
	}
	body_printf(b, "],\"clients_total\":%d}\n", nclients);
	return b;
}

/* ---- connections ---- */

static void
conn_close(HttpConn *hc)
{
	if (hc->closed)
		return;
	hc->closed = true;
	poll_remove(hc->h.fd);
	close(hc->h.fd);
	body_unref(hc->body);
	hc->body = NULL;
	dlist_delete(&hc->node);
	dlist_push_tail(&closed_conns, &hc->node);
	n_conns--;
}

static void
free_closed_conns(void)
{
	while (!dlist_is_empty(&closed_conns))
	{
		dlist_node *n = dlist_pop_head_node(&closed_conns);

		free(dlist_container(HttpConn, node, n));
	}
}

/* Queue an answer: status line and headers in head, then the body. */
static void
conn_answer(HttpConn *hc, int status, const char *reason, const char *ctype,
			Body *body, const char *static_body, bool head_only)
{
	size_t		len = body ? body->len : static_body ? strlen(static_body) : 0;

	hc->head_len = snprintf(hc->head, sizeof(hc->head),
							"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
							"Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
							status, reason, ctype, len,
							status == 405 ? "Allow: GET, HEAD\r\n" : "");
	hc->body = head_only ? NULL : body;
	if (head_only)
		body_unref(body);
	hc->static_body = head_only ? NULL : static_body;
	hc->body_len = head_only ? 0 : len;
	hc->sent = 0;
	hc->step = HTTP_WRITING;
}

static void
conn_error(HttpConn *hc, int status, const char *reason)
{
	char		text[64];

	/* head and text in one small buffer: answers to bad requests allocate nothing */
	snprintf(text, sizeof(text), "%d %s\n", status, reason);
	hc->head_len = snprintf(hc->head, sizeof(hc->head),
							"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
							"Connection: close\r\n%s\r\n%s",
							status, reason, strlen(text),
							status == 405 ? "Allow: GET, HEAD\r\n" : "", text);
	body_unref(hc->body);
	hc->body = NULL;
	hc->static_body = NULL;
	hc->body_len = 0;
	hc->sent = 0;
	hc->step = HTTP_WRITING;
}

static void
route(HttpConn *hc, const HttpRequest *req)
{
	bool		head_only = http_method_is(req, "HEAD");
	Body	   *b;

	if (!head_only && !http_method_is(req, "GET"))
	{
		conn_error(hc, 405, "Method Not Allowed");
		return;
	}
	if (http_path_is(req, "/metrics") || http_path_is(req, "/status.json"))
	{
		bool		metrics = http_path_is(req, "/metrics");
		BodyCache  *cache = metrics ? &cached_metrics : &cached_status;

		if (!cache->body || W->now - cache->at >= METRICS_CACHE_MS * 1000 || W->now < cache->at)
		{
			body_unref(cache->body);
			cache->body = metrics ? render_metrics(W->now) : render_status_json(W->now);
			cache->at = W->now;
		}
		b = cache->body;
		if (!b || b->failed)
		{
			body_unref(b);
			cache->body = NULL;
			conn_error(hc, 500, "Internal Server Error");
			return;
		}
		b->refs++;
		conn_answer(hc, 200, "OK", metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json",
					b, NULL, head_only);
	}
	else if (http_path_is(req, "/"))
		conn_answer(hc, 200, "OK", "text/html; charset=utf-8", NULL, status_page_html, head_only);
	else
		conn_error(hc, 404, "Not Found");
}

/* Write what is left of the answer; then stop sending and drain. */
static void
conn_write(HttpConn *hc)
{
	while (hc->step == HTTP_WRITING)
	{
		const char *p;
		size_t		n;
		ssize_t		w;

		if (hc->sent < hc->head_len)
		{
			p = hc->head + hc->sent;
			n = hc->head_len - hc->sent;
		}
		else if (hc->sent < hc->head_len + hc->body_len)
		{
			const char *data = hc->body ? hc->body->data : hc->static_body;

			p = data + (hc->sent - hc->head_len);
			n = hc->head_len + hc->body_len - hc->sent;
		}
		else
		{
			/* all sent: close our side, read what the client still sends until it closes */
			(void) shutdown(hc->h.fd, SHUT_WR);
			body_unref(hc->body);
			hc->body = NULL;
			hc->step = HTTP_LINGERING;
			hc->deadline = Min(hc->deadline, W->now + HTTP_LINGER_MS * 1000);
			return;
		}
		w = send(hc->h.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;			/* PEV_OUT comes back */
			conn_close(hc);
			return;
		}
		hc->sent += w;
	}
}

/* Read until EAGAIN; answer once the head is whole. */
static void
conn_read(HttpConn *hc)
{
	size_t		drained = 0;

	for (;;)
	{
		ssize_t		r;
		char		sink[4096];

		if (hc->step == HTTP_LINGERING)
		{
			/*
			 * A client that keeps sending must not hold the loop: drain a
			 * bounded amount per event (more data brings another edge), and
			 * the linger deadline ends it.
			 */
			if (drained >= HTTP_DRAIN_MAX)
				return;
			r = recv(hc->h.fd, sink, sizeof(sink), MSG_DONTWAIT);
			if (r > 0)
			{
				drained += r;
				continue;
			}
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				conn_close(hc);
			return;
		}
		if (hc->step != HTTP_READING)
		{
			/* answering: what comes now (a body, a pipelined request) is not read */
			return;
		}
		if (hc->in_len == sizeof(hc->in))
		{
			conn_error(hc, 431, "Request Header Fields Too Large");
			return;
		}
		r = recv(hc->h.fd, hc->in + hc->in_len, sizeof(hc->in) - hc->in_len, MSG_DONTWAIT);
		if (r == 0)
		{
			conn_close(hc);		/* went away before a whole request */
			return;
		}
		if (r < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				conn_close(hc);
			return;
		}
		hc->in_len += r;
		{
			bool		first = hc->in_len == (size_t) r;
			HttpRequest req;
			int			n;

			/*
			 * Parse once the head may be whole (http.h), so a client sending
			 * it a byte at a time costs linear, not quadratic, work; and on
			 * the first bytes, so that garbage is refused at once.
			 */
			if (!http_head_may_be_complete(&hc->scan, hc->in, hc->in_len) && !first &&
				hc->in_len < sizeof(hc->in))
				continue;
			n = http_parse_request(hc->in, hc->in_len, &req);

			if (n == HTTP_NEED_MORE)
				continue;
			if (n == HTTP_BAD)
				conn_error(hc, 400, "Bad Request");
			else if (n == HTTP_TOO_MANY)
				conn_error(hc, 431, "Request Header Fields Too Large");
			else
				route(hc, &req);
			return;
		}
	}
}

/*
 * accept() failed for lack of descriptors or memory: the connection stays in
 * the backlog and the level-triggered listener would report it at once again,
 * so the worker would spin. Take the listeners out of the poll set for a
 * while (doubling up to HTTP_PAUSE_MAX_MS while it keeps failing); the
 * janitor puts them back. One log line per pause.
 */
static void
accept_pause(int err)
{
	accept_pause_ms = accept_pause_ms ? Min(accept_pause_ms * 2, HTTP_PAUSE_MAX_MS) : HTTP_PAUSE_MIN_MS;
	errno = err;
	ereport(LOG,
			(errmsg("pgbun: metrics port: accept failed: %m; not accepting HTTP connections for %d ms",
					accept_pause_ms)));
	for (int i = 0; i < n_listeners; i++)
		poll_remove(listeners[i].fd);
	accept_paused = true;
	accept_resume_at = W->now + (int64) accept_pause_ms * 1000;
}

static void
accept_resume_due(void)
{
	if (!accept_paused || W->now < accept_resume_at)
		return;
	accept_paused = false;
	for (int i = 0; i < n_listeners; i++)
		if (poll_add_listener(listeners[i].fd, &listeners[i].io) < 0)
			ereport(WARNING, (errmsg("pgbun: could not watch the metrics port's socket: %m")));
}

static void
accept_some(HttpObj *l)
{
	if (accept_paused)
		return;					/* an event fetched before the pause */
	for (int i = 0; i < HTTP_ACCEPT_BATCH; i++)
	{
		int			fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		HttpConn   *hc;

		if (fd < 0)
		{
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_pause(errno);
			/* else EAGAIN (or the client gave up): the next event tries again */
			return;
		}
		accept_pause_ms = 0;	/* accepting again: the next failure starts a short pause */
		if (n_conns >= HTTP_MAX_CONNS || (hc = malloc(sizeof(HttpConn))) == NULL)
		{
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				"Retry-After: 1\r\nConnection: close\r\n\r\n";

			(void) send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		memset(hc, 0, offsetof(HttpConn, in));
		hc->h.io.kind = IO_HTTP;
		hc->h.listener = false;
		hc->h.fd = fd;
		hc->step = HTTP_READING;
		hc->deadline = W->now + HTTP_DEADLINE_MS * 1000;
		if (poll_add_conn(fd, &hc->h.io) < 0)
		{
			close(fd);
			free(hc);
			continue;
		}
		dlist_push_tail(&conns, &hc->node);
		n_conns++;
		/* edge-triggered: what arrived with the connection is read now */
		conn_read(hc);
		if (!hc->closed && hc->step == HTTP_WRITING)
			conn_write(hc);
	}
}

void
metrics_on_event(void *obj, uint32 events)
{
	HttpObj    *h = obj;
	HttpConn   *hc;

	if (h->listener)
	{
		accept_some(h);
		return;
	}
	hc = (HttpConn *) h;
	if (hc->closed)
		return;
	if (events & (PEV_IN | PEV_HUP))
		conn_read(hc);
	if (!hc->closed && hc->step == HTTP_WRITING)
		conn_write(hc);
}

/* ---- the listeners ---- */

static void
listen_on(const char *host, int family)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		port[16];
	int			fd;
	int			one = 1;

	if (n_listeners >= HTTP_MAX_LISTENERS)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", pgbun_cfg->metrics_port);
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
	{
		ereport(WARNING, (errmsg("pgbun: could not listen for metrics on \"%s\": not an IP address, localhost or *", host)));
		return;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
	{
		(void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (res->ai_family == AF_INET6)
			(void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0)
	{
		int			save = errno;

		if (fd >= 0)
			close(fd);
		errno = save;
		/* ::1 on a host without IPv6 is not worth a warning when localhost also has 127.0.0.1 */
		ereport(family == AF_INET6 && strcmp(host, "::1") == 0 ? DEBUG1 : WARNING,
				(errmsg("pgbun: could not listen for metrics on %s port %d: %m", host, pgbun_cfg->metrics_port)));
		freeaddrinfo(res);
		return;
	}
	freeaddrinfo(res);
	listeners[n_listeners].io.kind = IO_HTTP;
	listeners[n_listeners].listener = true;
	listeners[n_listeners].fd = fd;
	if (poll_add_listener(fd, &listeners[n_listeners].io) < 0)
	{
		close(fd);
		return;
	}
	n_listeners++;
	ereport(LOG, (errmsg("pgbun: metrics and status page on http://%s%s%s:%d/",
						 family == AF_INET6 ? "[" : "", host, family == AF_INET6 ? "]" : "",
						 pgbun_cfg->metrics_port)));
}

static void
close_listeners(void)
{
	for (int i = 0; i < n_listeners; i++)
	{
		poll_remove(listeners[i].fd);
		close(listeners[i].fd);
	}
	n_listeners = 0;
	accept_paused = false;
	accept_pause_ms = 0;
}

void
metrics_close(void)
{
	dlist_mutable_iter it;

	close_listeners();
	dlist_foreach_modify(it, &conns)
		conn_close(dlist_container(HttpConn, node, it.cur));
	body_unref(cached_metrics.body);
	cached_metrics.body = NULL;
	body_unref(cached_status.body);
	cached_status.body = NULL;
	free_closed_conns();		/* from the loop's shutdown paths, outside any event */
	open_port = 0;
	free(open_addresses);
	open_addresses = NULL;
}

void
metrics_reconfigure(void)
{
	const char *want = pgbun_cfg->metrics_listen_addresses ? pgbun_cfg->metrics_listen_addresses : "";
	char	   *list;
	char	   *tok;
	char	   *save = NULL;

	if (W->id != 0 || W->draining || W->shutting_down)
		return;
	if (open_port == pgbun_cfg->metrics_port && open_addresses && strcmp(open_addresses, want) == 0)
		return;
	close_listeners();
	free(open_addresses);
	open_addresses = strdup(want);
	open_port = pgbun_cfg->metrics_port;
	if (pgbun_cfg->metrics_port == 0 || !open_addresses)
		return;
	list = strdup(want);
	if (!list)
		return;
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		if (strcmp(tok, "*") == 0)
		{
			listen_on("0.0.0.0", AF_INET);
			listen_on("::", AF_INET6);
		}
		else if (pg_strcasecmp(tok, "localhost") == 0)
		{
			/* not a DNS question: the loopback addresses */
			listen_on("127.0.0.1", AF_INET);
			listen_on("::1", AF_INET6);
		}
		else
			listen_on(tok, AF_UNSPEC);
	}
	free(list);
}

void
metrics_janitor(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &conns)
	{
		HttpConn   *hc = dlist_container(HttpConn, node, it.cur);

		if (W->now >= hc->deadline)
			conn_close(hc);
	}
	free_closed_conns();
	/* a stale body is rendered again anyway: give its memory back meanwhile */
	for (int i = 0; i < 2; i++)
	{
		BodyCache  *c = i == 0 ? &cached_metrics : &cached_status;

		if (c->body && (W->now - c->at >= METRICS_CACHE_MS * 1000 || W->now < c->at))
		{
			body_unref(c->body);
			c->body = NULL;
		}
	}
	accept_resume_due();
	log_stats_tick(W->now);
}

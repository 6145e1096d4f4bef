/*
 * log.c - log lines with key=value fields, and the periodic stats line
 * (log.h).
 */
#include "postgres.h"

#include <stdarg.h>

#include "client_login.h"
#include "counters.h"
#include "log.h"
#include "pooler.h"
#include "settings.h"
#include "stats_read.h"

#define LOG_LINE_MAX 2048

bool		pgbun_log_pooler_errors = true;
int			pgbun_stats_period = 60;

/* Does a value need quotes to stay one field? */
static bool
needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (; *v; v++)
		if (*v == ' ' || *v == '"' || *v == '=' || *v == '\\' || (unsigned char) *v < 0x20)
			return true;
	return false;
}

void
log_append_field(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
	size_t		n = *len;

#define PUT(ch) do { if (n + 1 < size) buf[n++] = (ch); } while (0)
	if (!value)
		return;
	PUT(' ');
	for (const char *k = key; *k; k++)
		PUT(*k);
	PUT('=');
	if (!needs_quotes(value))
	{
		for (const char *v = value; *v; v++)
			PUT(*v);
	}
	else
	{
		PUT('"');
		for (const char *v = value; *v; v++)
		{
			if (*v == '"' || *v == '\\')
				PUT('\\');
			if ((unsigned char) *v < 0x20)
				PUT(' ');		/* a newline would split the line */
			else
				PUT(*v);
		}
		PUT('"');
	}
#undef PUT
	buf[n < size ? n : size - 1] = '\0';
	*len = n;
}

void
pgbun_log(int elevel, const LogFields *f, const char *fmt,...)
{
	char		buf[LOG_LINE_MAX];
	char		num[32];
	size_t		len;
	va_list		ap;
	int			r;

	va_start(ap, fmt);
	r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	len = r < 0 ? 0 : Min((size_t) r, sizeof(buf) - 1);
	buf[len] = '\0';
	/* a message with a newline would break the one-line-per-event rule */
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	log_append_field(buf, sizeof(buf), &len, "event", f->event);
	log_append_field(buf, sizeof(buf), &len, "client", f->client);
	log_append_field(buf, sizeof(buf), &len, "database", f->database);
	log_append_field(buf, sizeof(buf), &len, "user", f->user);
	if (f->database && f->user)
	{
		char		pool[NAMEDATALEN * 2 + 2];

		snprintf(pool, sizeof(pool), "%s/%s", f->database, f->user);
		log_append_field(buf, sizeof(buf), &len, "pool", pool);
	}
	log_append_field(buf, sizeof(buf), &len, "server", f->server);
	if (f->server_pid > 0)
	{
		snprintf(num, sizeof(num), "%d", f->server_pid);
		log_append_field(buf, sizeof(buf), &len, "server_pid", num);
	}
	log_append_field(buf, sizeof(buf), &len, "sqlstate", f->sqlstate);
	if (f->duration_us >= 0)
	{
		snprintf(num, sizeof(num), "%lld.%06lld", (long long) (f->duration_us / 1000000),
				 (long long) (f->duration_us % 1000000));
		log_append_field(buf, sizeof(buf), &len, "duration", num);
	}
	if (f->sqlstate && strlen(f->sqlstate) == 5)
		ereport(elevel,
				(errcode(MAKE_SQLSTATE(f->sqlstate[0], f->sqlstate[1], f->sqlstate[2],
									   f->sqlstate[3], f->sqlstate[4])),
				 errmsg_internal("%s", buf)));
	else
		ereport(elevel, (errmsg_internal("%s", buf)));
}

void
pgbun_log_client(int elevel, Client *c, const char *event, const char *sqlstate, const char *fmt,...)
{
	LogFields	f = {0};
	char		msg[LOG_LINE_MAX];
	char		addr[PGBUN_ADDR_LEN + 16];
	va_list		ap;

	if (!message_level_is_interesting(elevel))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	f.event = event;
	f.sqlstate = sqlstate;
	f.duration_us = -1;
	if (c->slot >= 0)
	{
		PgbunConnSlot *s = pgbun_conn_slot(c->slot);

		if (s->port > 0)
			snprintf(addr, sizeof(addr), "%s:%d", s->addr, s->port);
		else
			snprintf(addr, sizeof(addr), "%s", s->addr[0] ? s->addr : "unix");
		f.client = addr;
	}
	if (c->pool)
	{
		f.database = c->pool->database;
		f.user = c->pool->user;
	}
	else
		client_login_names(c, &f.database, &f.user);
	if (c->link)
	{
		f.server = c->link->addr_text;	/* the host it is on (a host list may have several) */
		f.server_pid = (int) c->link->be_pid;
	}
	if (c->connect_time > 0 && W->now >= c->connect_time)
		f.duration_us = W->now - c->connect_time;
	pgbun_log(elevel, &f, "%s", msg);
}

/* ---- pgbun.stats_period ---- */

/* The counters of each pool slot at the last stats line. */
typedef struct StatsMark
{
	bool		valid;
	char		database[NAMEDATALEN];
	char		user[NAMEDATALEN];
	PoolStatsSum sum;
} StatsMark;

static StatsMark *marks = NULL;
static TimestampTz last_stats = 0;

/*
 * Like PgBouncer's "stats:" line, per pool and with fields: per-second rates
 * and average times (microseconds) over the period. Cluster-wide numbers (the
 * shared counters), so only worker 0 writes it.
 */
void
log_stats_tick(TimestampTz now)
{
	double		secs;

	if (pgbun_cfg->stats_period <= 0 || W->id != 0)
	{
		last_stats = 0;
		return;
	}
	if (last_stats != 0 && now - last_stats < (int64) pgbun_cfg->stats_period * USECS_PER_SEC)
		return;
	if (!marks)
	{
		marks = calloc(PGBUN_MAX_POOLS, sizeof(StatsMark));
		if (!marks)
			return;
	}
	secs = last_stats == 0 ? 0 : (double) (now - last_stats) / USECS_PER_SEC;
	for (int i = 0; i < PGBUN_MAX_POOLS; i++)
	{
		const PgbunPoolSlot *p = stats_pool_in_use(i);
		StatsMark	cur;
		StatsMark  *m = &marks[i];

		if (!p)
		{
			m->valid = false;
			continue;
		}
		memset(&cur, 0, sizeof(cur));
		cur.valid = true;
		strlcpy(cur.database, p->database, NAMEDATALEN);
		strlcpy(cur.user, p->user, NAMEDATALEN);
		counters_sum_stats(i, &cur.sum);
		/* a slot reused by another pool, or counters that went back: start over */
		if (!m->valid || strcmp(m->database, cur.database) != 0 || strcmp(m->user, cur.user) != 0 ||
			cur.sum.query_count < m->sum.query_count || cur.sum.xact_count < m->sum.xact_count)
		{
			memset(m, 0, sizeof(*m));
			strlcpy(m->database, cur.database, NAMEDATALEN);
			strlcpy(m->user, cur.user, NAMEDATALEN);
		}
		if (secs > 0)
		{
			LogFields	f = {0};
			uint64		x = cur.sum.xact_count - m->sum.xact_count;
			uint64		q = cur.sum.query_count - m->sum.query_count;
			uint64		a = cur.sum.assign_count - m->sum.assign_count;

			f.event = "stats";
			f.database = cur.database;
			f.user = cur.user;
			f.duration_us = now - last_stats;
			pgbun_log(LOG, &f, "pgbun: stats: %.0f xacts/s, %.0f queries/s, in %.0f B/s, out %.0f B/s, xact %llu us, query %llu us, wait %llu us xacts_per_s=%.3f queries_per_s=%.3f in_bytes_per_s=%.0f out_bytes_per_s=%.0f xact_us=%llu query_us=%llu wait_us=%llu",
					  x / secs, q / secs,
					  (cur.sum.bytes_received - m->sum.bytes_received) / secs,
					  (cur.sum.bytes_sent - m->sum.bytes_sent) / secs,
					  (unsigned long long) stats_div(cur.sum.xact_time_us - m->sum.xact_time_us, x),
					  (unsigned long long) stats_div(cur.sum.query_time_us - m->sum.query_time_us, q),
					  (unsigned long long) stats_div(cur.sum.wait_time_us - m->sum.wait_time_us, a),
					  x / secs, q / secs,
					  (cur.sum.bytes_received - m->sum.bytes_received) / secs,
					  (cur.sum.bytes_sent - m->sum.bytes_sent) / secs,
					  (unsigned long long) stats_div(cur.sum.xact_time_us - m->sum.xact_time_us, x),
					  (unsigned long long) stats_div(cur.sum.query_time_us - m->sum.query_time_us, q),
					  (unsigned long long) stats_div(cur.sum.wait_time_us - m->sum.wait_time_us, a));
		}
		*m = cur;
	}
	last_stats = now;
}

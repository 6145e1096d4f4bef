/*
 * admin_hosts.c - pgbun.hosts: one row per (pgbun.databases entry, host of
 * its list) with what the shared host slot says (role, health, lag, backoff)
 * and the server connections on it, counted from the connection slots.
 *
 * The entries come from the pgbun.databases snapshot of the calling backend
 * (every process parses the same setting); the slots are read without
 * locks, so a row may mix values a moment apart, as the other views do.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "clock.h"
#include "config.h"
#include "config_parse.h"
#include "settings.h"
#include "shmem.h"
#include "stats_read.h"

#define HOSTS_COLS 17

PG_FUNCTION_INFO_V1(pgbun_hosts_1_3);

static void
put_ts(Datum *v, bool *n, TimestampTz ts)
{
	if (ts == 0)
		*n = true;
	else
		*v = TimestampTzGetDatum(pgbun_clock_to_wall(ts));
}

static const char *
role_name(int role)
{
	return role == HOST_ROLE_PRIMARY ? "primary" : role == HOST_ROLE_STANDBY ? "standby" : "unknown";
}

static const char *
state_name(int state)
{
	return state == HOST_DOWN ? "down" : state == HOST_CHECKING ? "checking" : "up";
}

Datum
pgbun_hosts_1_3(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const ConfigDatabases *cfg;
	int			default_port;

	settings_refresh();			/* this backend's view of the settings */
	cfg = config_databases();
	default_port = pgbun_cfg->server_port > 0 ? pgbun_cfg->server_port : PostPortNumber;

	if (!pgbun_shmem_attached())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("pgbun: shared memory is not set up"),
						errhint("Add pgbun to shared_preload_libraries and restart the server.")));
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; cfg && i < cfg->n; i++)
	{
		const DbEntry *e = &cfg->items[i];
		const char *h = e->host;
		int			k = 0;

		if (!e->routed || !e->host[0])
			continue;
		while (*h && k < CONFIG_MAX_HOSTS)
		{
			size_t		n = strcspn(h, ",");
			size_t		lead = 0;
			char		name[PGBUN_HOST_NAME_LEN];
			int			port = e->ports[k] > 0 ? e->ports[k] : default_port;
			Datum		values[HOSTS_COLS];
			bool		nulls[HOSTS_COLS];
			int			col = 0;
			int			slot = -1;
			PgbunHostSlot hs;
			int			active = 0;
			int			idle = 0;
			int			other = 0;

			while (lead < n && h[lead] == ' ')
				lead++;
			snprintf(name, sizeof(name), "%.*s", (int) (n - lead), h + lead);
			for (int z = strlen(name) - 1; z >= 0 && name[z] == ' '; z--)
				name[z] = '\0';
			for (int s = 0; s < PGBUN_MAX_HOSTS; s++)
				if (pgbun_shared->hosts[s].in_use && pgbun_shared->hosts[s].port == port &&
					strcmp(pgbun_shared->hosts[s].host, name) == 0)
				{
					slot = s;
					break;
				}
			memset(nulls, 0, sizeof(nulls));
			if (slot >= 0)
			{
				memcpy(&hs, &pgbun_shared->hosts[slot], sizeof(hs));
				for (int c = 0; c < pgbun_shared->n_conn_slots; c++)
				{
					PgbunConnSlot cs;
					uint64		link;

					if (!stats_read_conn(c, &cs, &link) || cs.kind != CONN_SERVER ||
						cs.host_slot != slot || strcmp(cs.target, e->name) != 0)
						continue;
					if (cs.state == SV_ACTIVE)
						active++;
					else if (cs.state == SV_IDLE)
						idle++;
					else
						other++;
				}
			}
			values[col++] = CStringGetTextDatum(e->name);
			values[col++] = Int32GetDatum(k);
			values[col++] = CStringGetTextDatum(name);
			values[col++] = Int32GetDatum(port);
			values[col++] = CStringGetTextDatum(tsa_name(e->tsa));
			if (slot >= 0)
			{
				values[col++] = CStringGetTextDatum(role_name(hs.role));
				values[col++] = BoolGetDatum(hs.read_only);
				values[col++] = CStringGetTextDatum(state_name(hs.state));
				if (hs.lag_ms >= 0)
					values[col] = Int32GetDatum(hs.lag_ms);
				nulls[col] = hs.lag_ms < 0;
				col++;
				put_ts(&values[col], &nulls[col], hs.lag_time);
				col++;
				put_ts(&values[col], &nulls[col], hs.last_check);
				col++;
				values[col++] = Int32GetDatum(hs.failures);
				put_ts(&values[col], &nulls[col], hs.state == HOST_UP ? 0 : hs.next_retry);
				col++;
				if (hs.last_error[0])
					values[col] = CStringGetTextDatum(hs.last_error);
				nulls[col] = hs.last_error[0] == '\0';
				col++;
			}
			else
			{
				/* no worker has built this target yet */
				values[col++] = CStringGetTextDatum("unknown");
				values[col++] = BoolGetDatum(false);
				values[col++] = CStringGetTextDatum("up");
				for (int z = 0; z < 6; z++)
				{
					if (z == 3)
						values[col] = Int32GetDatum(0);
					else
						nulls[col] = true;
					col++;
				}
			}
			values[col++] = Int32GetDatum(active);
			values[col++] = Int32GetDatum(idle);
			values[col++] = Int32GetDatum(other);
			Assert(col == HOSTS_COLS);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			k++;
			h += n;
			if (*h == ',')
				h++;
		}
	}
	return (Datum) 0;
}

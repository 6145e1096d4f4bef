# 301_views: the views of extension version 1.2. pgbun.databases and
# pgbun.lists show what the admin console's SHOW DATABASES and SHOW LISTS
# show at the same moment (and what pgbun.clients / pgbun.servers count);
# pgbun.latency's percentiles are those Prometheus' histogram_quantile()
# computes from the /metrics buckets, and fall in the bucket of a known query
# time. ALTER EXTENSION pgbun UPDATE from 1.1 (and from 1.0) gives exactly
# the objects, definitions and privileges of a fresh CREATE EXTENSION.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(
	name => 'views',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.databases' => 'db2 = pool_size=3',
		'pgbun.metrics_port' => $mport,
	});
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; "
	  . "CREATE ROLE app LOGIN PASSWORD 'app-pw'; "
	  . "CREATE ROLE mon LOGIN PASSWORD 'mon-pw'; GRANT pg_monitor TO mon; "
	  . "CREATE DATABASE db2; CREATE DATABASE lat;");
my $identity = server_identity($node);
my %app = (user => 'app', password => 'app-pw');

# --- pgbun.databases and pgbun.lists against the console

# Clients held open: two on postgres, one on db2 (transaction mode: idle
# clients hold no server, so pausing db2 returns at once).
my @held = (
	pgbun_session($node, %app),
	pgbun_session($node, %app),
	pgbun_session($node, %app, dbname => 'db2'));
foreach my $s (@held)
{
	ok($s->connected, 'a client connects through pgbun') or diag($s->connect_error);
	is($s->query('SELECT 1'), '1', 'and runs a query');
}
$node->safe_psql('postgres', "SELECT pgbun.pause('db2')");

my $console = pgbun_session($node, user => 'mon', password => 'mon-pw', dbname => 'pgbouncer');
ok($console->connected, 'the console connects') or diag($console->connect_error);

# SHOW DATABASES without the legacy column reserve_pool (the view has
# PgBouncer 1.25's columns only).
sub show_databases
{
	my ($out, $err) = $console->query('SHOW DATABASES');
	return join("\n", map { join('|', (split /\|/, $_, -1)[ 0 .. 16 ]) } sort split /\n/, $out // '');
}

my $view_dbs = q{SELECT name, host, port, database, force_user, pool_size, min_pool_size,
  reserve_pool_size, server_lifetime, pool_mode, load_balance_hosts, max_connections,
  current_connections, max_client_connections, current_client_connections, paused, disabled
  FROM pgbun.databases ORDER BY name COLLATE "C"};

my $console_dbs = show_databases();
my $view = $node->safe_psql('postgres', $view_dbs);
my $console_again = show_databases();
is($console_again, $console_dbs, 'SHOW DATABASES did not move meanwhile');
is($view, $console_dbs, 'pgbun.databases is SHOW DATABASES, column by column');
note("pgbun.databases:\n$view");

my %db = map { my @f = split /\|/, $_, -1; ($f[0] => \@f) } split /\n/, $view;
ok($db{postgres} && $db{db2}, 'both pooled databases are listed');
is($db{postgres}[5], 20, 'postgres: pool_size is pgbun.default_pool_size');
is($db{db2}[5], 3, 'db2: pool_size from pgbun.databases');
is($db{postgres}[14], 2, 'postgres: two client connections');
is($db{db2}[14], 1, 'db2: one client connection');
is($db{db2}[15], 1, 'db2 is paused');
is($db{postgres}[15], 0, 'postgres is not');
is($db{postgres}[1], '', 'host is NULL: the local Unix socket');
is( $node->safe_psql('postgres',
		"SELECT string_agg(d.name || '=' || d.current_connections || '/' || d.current_client_connections, ',' ORDER BY d.name COLLATE \"C\") "
		  . "FROM pgbun.databases d"),
	$node->safe_psql('postgres',
		"SELECT string_agg(n.database || '=' || "
		  . "(SELECT count(*) FROM pgbun.servers s WHERE s.database = n.database) || '/' || "
		  . "(SELECT count(*) FROM pgbun.clients c WHERE c.database = n.database), ',' ORDER BY n.database COLLATE \"C\") "
		  . "FROM (SELECT DISTINCT database FROM pgbun.pools) n"),
	'current_connections / current_client_connections agree with pgbun.servers / pgbun.clients');

my $view_lists = 'SELECT list, items FROM pgbun.lists';
my ($console_lists) = $console->query('SHOW LISTS');
my $lists = $node->safe_psql('postgres', $view_lists);
my ($console_lists_again) = $console->query('SHOW LISTS');
is($console_lists_again, $console_lists, 'SHOW LISTS did not move meanwhile');
is($lists, $console_lists, 'pgbun.lists is SHOW LISTS, row by row');
like($lists, qr/^databases\|2$/m, 'lists: two databases');
like($lists, qr/^pools\|2$/m, 'lists: two pools');
like($lists, qr/^used_clients\|4$/m, 'lists: four clients (three pooled, the console)');

$node->safe_psql('postgres', "SELECT pgbun.resume('db2')");
is($held[2]->query('SELECT 2'), '2', 'db2 works again after resume');
like($node->safe_psql('postgres', "SELECT paused FROM pgbun.databases WHERE name = 'db2'"),
	qr/^0$/, 'db2 not paused any more');
$console->quit;
$_->quit foreach @held;

# --- pgbun.latency against Prometheus' histogram_quantile over /metrics

is($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.latency WHERE database = 'lat'"), '0', 'no latency row before the pool exists');
my ($rc, $out, $err) = pgbun_psql($node, join('', map { "SELECT pg_sleep(0.03);\n" } 1 .. 20), %app, dbname => 'lat');
is($rc, 0, 'twenty 30 ms queries through pgbun') or diag($err);

my ($st, undef, $m) = http_get($mport, '/metrics');
is($st, 200, '/metrics answers');
my $lat = $node->safe_psql('postgres',
	"SELECT query_count, query_p50, query_p95, query_p99, xact_count, xact_p50, xact_p95, xact_p99, "
	  . "wait_count, coalesce(wait_p50, -1), coalesce(wait_p95, -1), coalesce(wait_p99, -1) "
	  . "FROM pgbun.latency WHERE database = 'lat' AND \"user\" = 'app'");
my @l = split /\|/, $lat;
note("pgbun.latency lat/app: $lat");
is(scalar(@l), 12, 'one latency row for the pool');
my $labels = 'database="lat",user="app"';
is($l[0], metric_sample($m, "pgbun_query_duration_seconds_count{$labels}"), 'query_count = the histogram count');
is($l[4], metric_sample($m, "pgbun_transaction_duration_seconds_count{$labels}"), 'xact_count = the histogram count');
is($l[8], metric_sample($m, "pgbun_wait_duration_seconds_count{$labels}"), 'wait_count = the histogram count');
cmp_ok($l[0], '>=', 20, 'at least the twenty queries counted');

my $i = 1;
foreach my $kind (qw(query transaction wait))
{
	foreach my $q (0.5, 0.95, 0.99)
	{
		my $prom = metric_quantile($m, "pgbun_${kind}_duration_seconds", $labels, $q);
		my $mine = $l[$i++];
		if (defined $prom)
		{
			ok(abs($mine - $prom * 1e6) < 0.01, "$kind p" . ($q * 100) . ": view $mine us = histogram_quantile " . ($prom * 1e6));
		}
		else
		{
			is($mine, -1, "$kind p" . ($q * 100) . ': NULL for an empty histogram, as histogram_quantile has none');
		}
	}
	$i++;
}
# pg_sleep(0.03) takes at least 30 ms, so the p99 is above the 25 ms bound; how far
# above depends on the machine's load (no timing threshold), but it is a finite bucket
cmp_ok($l[3], '>', 25000, 'query p99 is above 25 ms');
cmp_ok($l[3], '<=', 10000000, 'query p99 is in a finite bucket (at most 10 s)');
cmp_ok($l[1], '<=', $l[2], 'p50 <= p95');
cmp_ok($l[2], '<=', $l[3], 'p95 <= p99');

# --- upgrades: from 1.0, 1.1 and 1.4 to the newest end where a fresh install starts

# Every member of the extension with what defines it: view queries, function
# signatures and C symbols, privileges, comments.
my $members = q{
SELECT pg_describe_object(d.classid, d.objid, 0) COLLATE "C" || ' ' ||
  coalesce(CASE d.classid
    WHEN 'pg_class'::regclass THEN
      (SELECT coalesce(pg_get_viewdef(c.oid), '') || ' acl=' || coalesce(c.relacl::text, '')
       FROM pg_class c WHERE c.oid = d.objid)
    WHEN 'pg_proc'::regclass THEN
      (SELECT pg_get_function_arguments(p.oid) || ' -> ' || pg_get_function_result(p.oid) ||
              ' ' || p.prosrc || ' acl=' || coalesce(p.proacl::text, '')
       FROM pg_proc p WHERE p.oid = d.objid)
  END, '') || ' comment=' || coalesce(obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)), '')
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pgbun')
ORDER BY 1};

my $fresh = $node->safe_psql('postgres', $members);
# the newest version (1.2 brought these views; later versions keep them)
my $default_version = $node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'pgbun'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pgbun'"), $default_version,
	"CREATE EXTENSION installs the default version ($default_version)");
like($fresh, qr/^view pgbun\.latency /m, 'a fresh install has pgbun.latency');
# PGXN's META.json names the same release (its versions are semantic: 1.4 is 1.4.0)
{
	require JSON::PP;
	my $meta = JSON::PP::decode_json(slurp_file("$FindBin::RealBin/../META.json"));
	is($meta->{version}, "$default_version.0", "META.json's version is the extension's ($default_version)");
	is($meta->{provides}{pgbun}{version}, "$default_version.0", 'and so is the version it provides');
	ok(-f "$FindBin::RealBin/../$meta->{provides}{pgbun}{file}", 'the file it names exists');
}

$node->safe_psql('postgres', 'CREATE DATABASE up11');
$node->safe_psql('up11', "CREATE EXTENSION pgbun VERSION '1.1'");
is($node->safe_psql('up11', "SELECT count(*) FROM pg_class WHERE relname IN ('databases', 'lists', 'latency') AND relnamespace = 'pgbun'::regnamespace"),
	'0', 'version 1.1 has none of the new views');
$node->safe_psql('up11', 'ALTER EXTENSION pgbun UPDATE');
is($node->safe_psql('up11', "SELECT extversion FROM pg_extension WHERE extname = 'pgbun'"), $default_version,
	"ALTER EXTENSION pgbun UPDATE goes from 1.1 to $default_version");
is($node->safe_psql('up11', $members), $fresh, "1.1 updated to $default_version has exactly the objects of a fresh install");

$node->safe_psql('postgres', 'CREATE DATABASE up10');
$node->safe_psql('up10', "CREATE EXTENSION pgbun VERSION '1.0'");
$node->safe_psql('up10', 'ALTER EXTENSION pgbun UPDATE');
is($node->safe_psql('up10', $members), $fresh, '1.0 updated to 1.2 too');

# from the version before the newest (1.4: pgbun.pools recreated again in 1.5)
$node->safe_psql('postgres', 'CREATE DATABASE up14');
$node->safe_psql('up14', "CREATE EXTENSION pgbun VERSION '1.4'");
is($node->safe_psql('up14', "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'pgbun' AND table_name = 'pools' AND column_name = 'sv_active_cancel'"),
	'0', 'version 1.4 has no sv_active_cancel');
$node->safe_psql('up14', 'ALTER EXTENSION pgbun UPDATE');
is($node->safe_psql('up14', $members), $fresh, "1.4 updated to $default_version has exactly the objects of a fresh install");
is($node->safe_psql('up14', "SELECT cl_active_cancel_req + cl_waiting_cancel_req + sv_active_cancel FROM pgbun.pools WHERE database = 'lat' LIMIT 1"),
	'0', 'the updated pgbun.pools reads the cancel columns');

is($node->safe_psql('up11', "SELECT count(*) > 0 FROM pgbun.latency WHERE database = 'lat'"), 't',
	'the updated views read the running pooler');
is($node->safe_psql('up11', "SET ROLE mon; SELECT count(*) FROM pgbun.lists"), '14', 'pg_monitor reads pgbun.lists');
my ($prc, undef, $perr) = $node->psql('up11', "SET ROLE app; SELECT * FROM pgbun.latency");
like($perr, qr/permission denied for view latency/, 'a role without pg_monitor may not');

check_server_same($node, $identity, 'after the view tests');
stop_node($node);
done_testing();

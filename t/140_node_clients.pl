# 140_node_clients: real client libraries through pgbun in transaction mode.
#
# The libraries come from the npm registry, pinned in test/node/package.json
# and package-lock.json, and `make test` installs them (npm ci in test/node):
#
#  - node-postgres (`pg`, with `pg-cursor`): pg.Pool, named statements;
#  - Postgres.js (`postgres`), which prepares every query by default;
#  - Bun's built-in SQL client (the `bun` package's binary).
#
# Each runs test/node/workload.mjs (see there): 100 logical clients over 50
# library connections against a pgbun transaction pool of 4, parameterised
# queries, committed and rolled-back transactions, a prepared statement run
# 1,000 times, errors (division by zero) recovered from, 5 cursors of 3,000
# rows in batches of 250; every answer checked by the script, which prints a
# JSON summary. Here: the script exits 0 and its summary adds up; the rows
# committed are in the table and the rolled-back ones are not; the server
# never saw more than 4 backends of the role (sampled while the script ran;
# CONNECTION LIMIT 4 would refuse a 5th anyway); the prepared statements went
# through pgbun's named-statement support (pgbun.stats
# total_client_parse_count grew); no backend is left in a transaction; the
# worker did not restart.
#
# A library that is not installed fails the test (it does not skip).

use strict;
use warnings FATAL => 'all';

use Cwd ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $pool_size = 4;
my $clients = 100;
my $node_dir = Cwd::abs_path("$FindBin::RealBin/../test/node");
my $modules = "$node_dir/node_modules";
my $install_hint = "install them with `npm ci` in test/node (make test does it)";

# What each library needs to run, and how its script is started.
my @libs = (
	{
		lib => 'pg',
		needs => [ "$modules/pg/package.json", "$modules/pg-cursor/package.json" ],
		cmd => [ 'node', "$node_dir/pg_workload.mjs" ],
	},
	{
		lib => 'postgres',
		needs => ["$modules/postgres/package.json"],
		cmd => [ 'node', "$node_dir/postgres_workload.mjs" ],
	},
	{
		lib => 'bun',
		needs => ["$modules/.bin/bun"],
		cmd => [ "$modules/.bin/bun", "$node_dir/bun_workload.mjs" ],
	},);

my $node = pgbun_node(
	name => 'nodeclients',
	defer_accept => 1,	# real drivers, with pgbun's default TCP_DEFER_ACCEPT
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => $pool_size,
	});
# PostgreSQL 15 stores passwords as SCRAM-SHA-256 by default; say so anyway.
$node->safe_psql(
	'postgres', qq{
SET password_encryption = 'scram-sha-256';
CREATE ROLE nodeapp LOGIN PASSWORD 'node-pw' CONNECTION LIMIT $pool_size;
CREATE DATABASE nodedb;
});
like($node->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'nodeapp'"),
	qr/^SCRAM-SHA-256\$/, 'the role has a SCRAM-SHA-256 password');
$node->safe_psql(
	'nodedb', q{
CREATE TABLE node_rows (lib text, client int, seq int, PRIMARY KEY (lib, client, seq));
GRANT ALL ON node_rows TO nodeapp;
});
my $identity = server_identity($node);

my %env = (
	PgbunTest::client_env(password => 'node-pw'),
	PGHOST => '127.0.0.1',
	PGPORT => pgbun_port($node),
	PGUSER => 'nodeapp',
	PGDATABASE => 'nodedb',
	PGBUN_CLIENTS => $clients,
	PGBUN_CONNECTIONS => 50,
	PGBUN_WORKLOAD_TIMEOUT => 180);

sub client_parses
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(total_client_parse_count), 0) FROM pgbun.stats WHERE database = 'nodedb'");
}

# Is the library's runtime there? (a test that fails, with the way out)
sub installed
{
	my ($l) = @_;
	my $runtime = $l->{cmd}[0];
	my @missing = grep { !-e $_ } @{ $l->{needs} };
	if ($runtime eq 'node' && system('node --version >/dev/null 2>&1') != 0)
	{
		push @missing, 'node (Debian packages nodejs and npm)';
	}
	elsif ($runtime ne 'node' && -e $runtime && system("\Q$runtime\E --version >/dev/null 2>&1") != 0)
	{
		push @missing, "a working $runtime";
	}
	return 1 if !@missing;
	fail("$l->{lib}: the client library is not installed (missing: @missing); $install_hint");
	return 0;
}

foreach my $l (@libs)
{
	my $lib = $l->{lib};
	next unless installed($l);
	my $parses_before = client_parses();

	my $r = run_sampled($node, $l->{cmd},
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'nodeapp'",
		env => \%env,
		timeout => 240);

	is($r->{rc}, 0, "$lib: the workload script exits 0")
	  or diag("$r->{cmd}\nstdout:\n$r->{out}\nstderr:\n$r->{err}");
	my ($line) = grep { /^\{/ } split /\n/, $r->{out};
	my $s = eval { decode_json($line // '') } // {};
	note("$lib summary: " . ($line // 'none'));
	is_deeply(
		{ map { $_ => $s->{$_} } qw(lib clients failures queries commits rollbacks prepared errorsRecovered cursorRows committed) },
		{
			lib => $lib,
			clients => $clients,
			failures => 0,
			queries => 5 * $clients,
			commits => $clients,
			rollbacks => $clients,
			prepared => 10 * $clients,
			errorsRecovered => 2 * $clients,
			cursorRows => 5 * 3000,
			committed => 3 * $clients,
		},
		"$lib: the JSON summary adds up")
	  or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
	ok(($s->{backendPids} // 0) >= 2 && ($s->{backendPids} // 0) <= $pool_size,
		"$lib: the prepared statement ran on 2 to $pool_size server backends (ran on "
		  . ($s->{backendPids} // 'none') . ')');

	is( $node->safe_psql(
			'nodedb', qq{
SELECT count(*) FROM (SELECT client FROM node_rows WHERE lib = '$lib' GROUP BY client
                      HAVING array_agg(seq ORDER BY seq) = '{1,2,3}') c}),
		$clients, "$lib: every client's committed rows 1, 2, 3 are in the table");
	is($node->safe_psql('nodedb', "SELECT count(*) FROM node_rows WHERE lib = '$lib' AND seq NOT IN (1, 2, 3)"),
		'0', "$lib: no row of a rolled-back or failed transaction is in the table");

	note("$lib: sampled pg_stat_activity $r->{samples} times, at most $r->{max} backends");
	ok($r->{samples} > 0, "$lib: sampled the server while the script ran");
	cmp_ok($r->{max}, '<=', $pool_size, "$lib: the server never saw more than $pool_size backends of the role");
	cmp_ok(client_parses(), '>', $parses_before,
		"$lib: pgbun.stats total_client_parse_count grew (named statements through pgbun)");

	my ($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'nodeapp' AND state NOT IN ('idle')", '0');
	ok($ok, "$lib: afterwards no backend of the role is busy or in a transaction") or diag("last: $last");
	check_server_same($node, $identity, "after $lib");
}

my ($ok, $last) = poll_sql($node, "SELECT coalesce(sum(cl_waiting), 0) FROM pgbun.pools", '0');
ok($ok, 'at the end nobody waits in any pool') or diag("last: $last");
check_server_same($node, $identity, 'end of 140');

stop_node($node);
done_testing();

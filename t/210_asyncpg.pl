# 210_asyncpg: asyncpg (Debian's python3-asyncpg) through a pgbun transaction
# pool of 4, with asyncpg's statement cache on (its default: every query a
# named statement) and off (statement_cache_size=0, what asyncpg's docs tell
# PgBouncer users: the unnamed statement, Parse/Describe and Bind/Execute in
# separate round trips).
#
# test/python/asyncpg_workload.py (see there) runs 60 clients, each on its own
# connection, plus an asyncpg.Pool of 10 shared by them: parameterised
# fetch/fetchrow/fetchval, executemany in a committed transaction, a rolled-back
# transaction, a prepared statement run 10 times, errors recovered from (22012,
# 25P02), copy_records_to_table and copy_from_query; it checks every answer
# and prints a JSON summary. Each configuration runs first straight against
# the server (the workload itself is right), then through pgbun; see
# t/PgbunClients.pm for what is asserted and for PGBUN_KNOWN_BUGS.

use strict;
use warnings FATAL => 'all';

use Cwd ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunClients;

my $clients = 60;
my $python = '/usr/bin/python3';
my $script = Cwd::abs_path("$FindBin::RealBin/../test/python/asyncpg_workload.py");

if (system("$python -c 'import asyncpg' >/dev/null 2>&1") != 0)
{
	fail("asyncpg is not installed for $python (Debian package python3-asyncpg; make test installs it)");
	done_testing();
	exit 0;
}

my $node = clients_node('asyncpg');
my $identity = server_identity($node);

my @seqs = (1 .. 10, 100 .. 199);
foreach my $cache (100, 0)
{
	my %common = (
		cmd => [ $python, $script, '--statement-cache-size', $cache ],
		clients => $clients,
		seqs => \@seqs,
		named => $cache > 0,
		expect => {
			lib => 'asyncpg',
			statementCacheSize => $cache,
			queries => 6 * $clients,
			commits => $clients,
			rollbacks => $clients,
			prepared => 10 * $clients,
			errorsRecovered => 2 * $clients,
			copiedIn => 100 * $clients,
			copiedOut => 110 * $clients,
			poolQueries => 3 * $clients,
			committed => 110 * $clients,
		},
		expect_avoided => { 'copy-before-response' => { copiedIn => 0 } });
	my $label = "asyncpg statement_cache_size=$cache";
	run_workload(
		$node, %common,
		label => "$label, straight to the server",
		target => 'direct',
		tag => "asyncpg-$cache-direct");
	my @bugs = ('copy-before-response');
	push @bugs, 'unnamed-across-sync' if $cache == 0;
	run_with_known_bugs($node, \@bugs, %common, label => $label, tag => "asyncpg-$cache");
}

check_server_same($node, $identity, 'end of 210');
stop_node($node);
done_testing();

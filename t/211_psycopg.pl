# 211_psycopg: psycopg 3 (Debian's python3-psycopg) through a pgbun transaction
# pool of 4.
#
# test/python/psycopg_workload.py (see there) runs 40 threads, each on its own
# connection opened with options='-c TimeZone=Asia/Tokyo' (checked with SHOW
# TimeZone and timestamptz renderings, at the start and at the end) and
# prepare_threshold 0 or 1 (named statements): a query prepared and run 10
# times, executemany in a committed transaction, a rolled-back transaction,
# errors recovered from, pipeline mode (a batch that commits, one that fails
# on a division by zero and takes its implicit transaction with it, one after
# it), COPY FROM STDIN and COPY TO STDOUT; it checks every answer and prints a
# JSON summary. It runs first straight against the server (the workload itself
# is right), then through pgbun; see t/PgbunClients.pm for what is asserted
# and for PGBUN_KNOWN_BUGS.

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

my $clients = 40;
my $python = '/usr/bin/python3';
my $script = Cwd::abs_path("$FindBin::RealBin/../test/python/psycopg_workload.py");

if (system("$python -c 'import psycopg' >/dev/null 2>&1") != 0)
{
	fail("psycopg 3 is not installed for $python (Debian package python3-psycopg; make test installs it)");
	done_testing();
	exit 0;
}

my $node = clients_node('psycopg');
my $identity = server_identity($node);

my %common = (
	cmd => [ $python, $script, '--timezone', 'Asia/Tokyo' ],
	clients => $clients,
	seqs => [ 1 .. 10, 20 .. 24, 40, 100 .. 199 ],
	named => 1,
	expect => {
		lib => 'psycopg',
		timezoneChecks => 2 * $clients,
		queries => $clients,
		prepared => 10 * $clients,
		commits => $clients,
		rollbacks => $clients,
		errorsRecovered => 2 * $clients,
		pipelineBatches => 3 * $clients,
		copiedIn => 100 * $clients,
		copiedOut => 116 * $clients,
		committed => 116 * $clients,
	},
	expect_avoided => { 'pipeline-error' => { pipelineBatches => 2 * $clients } });
run_workload(
	$node, %common,
	label => 'psycopg, straight to the server',
	target => 'direct',
	tag => 'psycopg-direct');
run_with_known_bugs(
	$node,
	[ 'startup-options', 'extended-deallocate-all', 'pipeline-error' ],
	%common,
	label => 'psycopg',
	tag => 'psycopg');

check_server_same($node, $identity, 'end of 211');
stop_node($node);
done_testing();

# 212_jdbc: pgjdbc (Debian's libpostgresql-jdbc-java, compiled against with
# default-jdk-headless's javac at test time) through a pgbun transaction pool
# of 4.
#
# test/java/JdbcWorkload.java (see there) runs 40 threads, each with its own
# Connection opened with prepareThreshold=1 (server-side named statements S_1,
# S_2 ... from the first run, reused across transactions and so across server
# connections) and options=-c TimeZone=Asia/Tokyo -c IntervalStyle=iso_8601
# (checked at the start and at the end): a PreparedStatement run 10 times,
# addBatch/executeBatch inserts in two committed transactions, a rolled-back
# one, errors recovered from (22012, 25P02), COPY FROM STDIN as a plain
# statement (the extended protocol; pgjdbc answers CopyInResponse with
# CopyFail), CopyManager copyIn and copyOut; it checks every answer and prints
# a JSON summary. It runs first straight against the server (the workload
# itself is right), then through pgbun; see t/PgbunClients.pm for what is
# asserted and for PGBUN_KNOWN_BUGS.

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
my $jar = '/usr/share/java/postgresql.jar';
my $source = Cwd::abs_path("$FindBin::RealBin/../test/java/JdbcWorkload.java");
my $zone = 'Asia/Tokyo';

my @missing;
push @missing, "$jar (Debian package libpostgresql-jdbc-java)" unless -r $jar;
push @missing, 'javac (Debian package default-jdk-headless)'
  unless system('javac -version >/dev/null 2>&1') == 0;
if (@missing)
{
	fail("pgjdbc cannot run: missing @missing; make test installs them");
	done_testing();
	exit 0;
}

my $build = PostgreSQL::Test::Utils::tempdir('jdbc_build');
my ($rc, $out, $err) = PgbunTest::run_cmd([ 'javac', '-Xlint:all', '-Werror', '-d', $build, '-cp', $jar, $source ],
	'', \%ENV, 180);
is($rc, 0, 'JdbcWorkload.java compiles warning-free') or diag("$out\n$err");

my $node = clients_node('jdbc');
my $identity = server_identity($node);

# pgjdbc sends the JVM's zone as TimeZone, which the server applies after
# options: let them agree (IntervalStyle comes from options alone)
my %common = (
	cmd => [ 'java', "-Duser.timezone=$zone", '-cp', "$build:$jar", 'JdbcWorkload', '--timezone', $zone ],
	clients => $clients,
	seqs => [ 1 .. 20, 100 .. 199 ],
	named => 1,
	expect => {
		lib => 'jdbc',
		timezoneChecks => 2 * $clients,
		prepared => 10 * $clients,
		commits => 2 * $clients,
		batchRows => 20 * $clients,
		rollbacks => $clients,
		errorsRecovered => 2 * $clients,
		copyRefused => $clients,
		copiedIn => 100 * $clients,
		copiedOut => 120 * $clients,
		committed => 120 * $clients,
	},
	expect_avoided => { 'extended-copy' => { copyRefused => 0 } });
run_workload(
	$node, %common,
	label => 'pgjdbc, straight to the server',
	target => 'direct',
	tag => 'jdbc-direct');
run_with_known_bugs($node, [ 'startup-options', 'extended-copy' ], %common, label => 'pgjdbc', tag => 'jdbc');

check_server_same($node, $identity, 'end of 212');
stop_node($node);
done_testing();

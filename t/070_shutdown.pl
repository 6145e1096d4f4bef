# 070_shutdown: the pooler follows the server's lifecycle.
#
#  - pg_ctl stop -m fast with clients connected through pgbun: clients get
#    57P01, the worker exits cleanly (no crash, no restart in the log);
#  - pgbun.workers = 0: nothing listens, pgbun.pause() says why;
#  - no shared_preload_libraries: the extension refuses with a hint.
#
# kill -9 of the worker is deliberately not tested: a background worker
# attached to shared memory that dies that way makes the postmaster restart
# the whole cluster, by design.

use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

############ fast shutdown with clients connected

my $node = pgbun_node(name => 'shutdown');
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
like(worker_pid($node), qr/^\d+(\n\d+)*$/, 'the pgbun workers are running');

my $raw = raw_connect($node);
my $login = $raw->login(%alice);
ok($login->{ok}, 'raw client logged in') or diag(explain($login));
my $res = $raw->query('SELECT 1');
is_deeply($res->{rows}, [ ['1'] ], 'raw client holds a server');

my $idle_raw = raw_connect($node);
ok($idle_raw->login(%alice)->{ok}, 'a second raw client logged in, never queried');

my $stalled = raw_connect($node);
ok($stalled->login(%alice, stop_at_auth => 11)->{stopped}, 'a third client is halfway through SCRAM');

my $psql = pgbun_session($node, %alice);
ok($psql->connected, 'psql session through pgbun') or diag($psql->connect_error);
$psql->query('\set VERBOSITY verbose');
is($psql->query('SELECT 2'), '2', 'psql session holds a server');

my $log_offset = -s $node->logfile;
ok($node->stop('fast', fail_ok => 1), 'pg_ctl stop -m fast completes with pgbun clients connected')
  or diag(PgbunTest::tail_log($node, 30));

foreach my $c ([ 'raw client with a server', $raw ], [ 'raw client without a query', $idle_raw ])
{
	my ($label, $conn) = @$c;
	my $r = $conn->read_to_eof(hang_guard());
	ok($r->{eof}, "$label: connection closed at shutdown") or diag(explain($r));
	my @states = map { $_->{C} // '?' } @{ $r->{errors} };
	ok((grep { $_ eq '57P01' } @states), "$label: got an ErrorResponse 57P01")
	  or diag(explain($r));
	$conn->close;
}
my $sr = $stalled->read_to_eof(hang_guard());
ok($sr->{eof}, 'client halfway through login: connection closed at shutdown') or diag(explain($sr));
$stalled->close;

my ($pout, $perr) = $psql->query('SELECT 3', hang_guard());
ok(!defined $pout || $pout ne '3', 'psql gets no answer after the shutdown');
like($perr,
	qr/57P01|terminating connection|server closed the connection|connection to server .*lost|no connection to the server/,
	'psql reports the termination')
  or diag("psql stderr: $perr");
$psql->kill;

my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal/, 'no process was terminated by a signal');
unlike($log, qr/pgbun worker.*exited with exit code [1-9]/, 'the pgbun worker exited with code 0');
unlike($log, qr/reinitializing|PANIC|TRAP:/, 'no crash, no reinitialization');
like($log, qr/database system is shut down/, 'the server shut down cleanly');

############ postmaster death: the worker exits at once
#
# kill -9 of the postmaster (not of the worker): the worker must notice and
# exit by itself, closing its listeners and clients.

my $orphan = pgbun_node(name => 'pmdeath');
$orphan->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my @orphan_workers = split /\n/, worker_pid($orphan);
ok(@orphan_workers && !grep({ !/^\d+$/ } @orphan_workers), 'postmaster death: the workers are running');
my $orphan_client = raw_connect($orphan);
ok($orphan_client->login(%alice)->{ok}, 'postmaster death: a client is logged in');
is_deeply($orphan_client->query('SELECT 5')->{rows}, [ ['5'] ], 'postmaster death: and holds a server');

kill 'KILL', $orphan->{_pid};
ok(wait_until(sub { !grep { !process_gone($_) } @orphan_workers }, hang_guard(), 0.1),
	'postmaster death: every pgbun worker exits by itself');
my $od = $orphan_client->read_to_eof(hang_guard());
ok($od->{eof}, 'postmaster death: the client\'s connection is closed');
$orphan_client->close;
ok( wait_until(
		sub {
			my $s = IO::Socket::INET->new(
				PeerAddr => '127.0.0.1',
				PeerPort => pgbun_port($orphan),
				Proto => 'tcp',
				Timeout => 2);
			return 1 unless $s;
			close $s;
			return 0;
		}),
	'postmaster death: nothing listens on the pooler port any more');
# Forget the dead postmaster (its backends exit on their own).
ok(wait_until(sub { forget_if_dead($orphan) }, hang_guard(), 0.1),
	'postmaster death: the postmaster is gone');

############ pgbun.workers = 0

my $off = pgbun_node(name => 'noworkers', conf => { 'pgbun.workers' => '0' }, wait_listen => 0);
is(worker_pid($off), '', 'pgbun.workers = 0: no pgbun worker in pg_stat_activity');
my $sock = IO::Socket::INET->new(
	PeerAddr => '127.0.0.1',
	PeerPort => pgbun_port($off),
	Proto => 'tcp',
	Timeout => 5);
ok(!$sock, 'pgbun.workers = 0: nothing listens on pgbun.port');
close $sock if $sock;

my ($rc, $out, $err) = (0, '', '');
$rc = $off->psql('postgres', 'SELECT pgbun.pause()', stdout => \$out, stderr => \$err);
isnt($rc, 0, 'pgbun.workers = 0: pgbun.pause() fails');
like($err, qr/ERROR:\s+pgbun:/, 'pgbun.workers = 0: the error starts with pgbun:');
is($off->safe_psql('postgres', 'SELECT count(*) FROM pgbun.pools'), '0',
	'pgbun.workers = 0: the views still answer (empty)');
stop_node($off);

############ not preloaded

my $bare = pgbun_node(name => 'nopreload', preload => 0, create_extension => 0);
($rc, $out, $err) = (0, '', '');
$rc = $bare->psql('postgres', 'CREATE EXTENSION pgbun', stdout => \$out, stderr => \$err);
if ($rc != 0)
{
	pass('without the preload CREATE EXTENSION pgbun fails');
	like($err, qr/shared_preload_libraries/, 'the error mentions shared_preload_libraries');
}
else
{
	($rc, $out, $err) = (0, '', '');
	$rc = $bare->psql('postgres', 'SELECT pgbun.pause()', stdout => \$out, stderr => \$err);
	isnt($rc, 0, 'without the preload pgbun.pause() fails');
	like($err, qr/shared_preload_libraries/, 'the error mentions shared_preload_libraries');
}
($rc, $out, $err) = (0, '', '');
$rc = $bare->psql('postgres', "LOAD 'pgbun'", stdout => \$out, stderr => \$err);
isnt($rc, 0, 'LOAD pgbun without the preload fails');
like($err, qr/shared_preload_libraries/, 'LOAD: the error mentions shared_preload_libraries');
is($bare->safe_psql('postgres', 'SELECT 1'), '1', 'the server is fine after the refusals');
stop_node($bare);

done_testing();

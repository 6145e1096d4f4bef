# 241_restart_shutdown: only a real shutdown stops pgbun.
#
#  - pg_terminate_backend() on the worker: its clients get 57P01, the
#    postmaster starts a new worker by itself (bgw_restart_time), pgbun
#    answers again, the server did not restart, and the new worker's shared
#    limits are not eaten by its predecessor's connections (as many clients
#    as max_client_conn fit again);
#  - pg_ctl stop -m smart with min_pool_size = 2 and a client connected:
#    the client goes on, new clients are turned away, idle servers close, and
#    the shutdown finishes once the client leaves; the worker exits 0;
#  - pg_ctl stop -m fast: clients get 57P01, the worker
#    exits 0 and is not started again.

use strict;
use warnings FATAL => 'all';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'restart',
	conf => {
		'pgbun.max_client_conn' => '4',
		'pgbun.min_pool_size' => '2',
		'log_min_messages' => 'debug1',    # the postmaster's "starting background worker"
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# A client got an ErrorResponse with $state before its connection closed.
sub closed_with
{
	my ($conn, $state, $label) = @_;
	my $r = $conn->read_to_eof(hang_guard());
	my @states = map { $_->{C} // '?' } @{ $r->{errors} };
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($r->{eof} && (grep { $_ eq $state } @states), "$label: $state, then the connection closes")
	  or diag(explain($r));
	return $r;
}

############ pg_terminate_backend on the worker

my $old_pid = worker_pid($node);
like($old_pid, qr/^\d+$/, 'one worker');
my @clients;
foreach my $i (1 .. 4)
{
	my $c = raw_connect($node);
	ok($c->login(%alice)->{ok}, "client $i logged in");
	is($c->query("SELECT $i")->{rows}[0][0], $i, "client $i ran a query");
	push @clients, $c;
}
my $extra = raw_connect($node);
my $l = $extra->login(%alice);
is($l->{error}{C} // '', '53300', 'a fifth client is over max_client_conn = 4') or diag(explain($l));
$extra->close;

my $offset = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)"), 't', 'pg_terminate_backend() on the worker');
foreach my $i (0 .. $#clients)
{
	my $r = closed_with($clients[$i], '57P01', 'client ' . ($i + 1));
	my ($e) = grep { ($_->{C} // '') eq '57P01' } @{ $r->{errors} };
	like($e->{M} // '', qr/^pgbun: terminating connection due to administrator command/,
		'client ' . ($i + 1) . ': told why') if $i == 0;
	$clients[$i]->close;
}

my $new_pid;
ok( wait_until(
		sub {
			my $p = worker_pid($node);
			return 0 unless $p =~ /^\d+$/ && $p ne $old_pid;
			$new_pid = $p;
			my ($rc, $out) = pgbun_psql($node, 'SELECT 42', %alice, timeout => 10);
			return $out eq '42';
		},
		60, 0.2),
	'a new worker comes up by itself and answers') or diag(PgbunTest::tail_log($node, 30));
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time,
	'the server did not restart');
my $log = slurp_file($node->logfile, $offset);
like($log, qr/pgbun: worker 0 terminated while the server is running/, 'the old worker said why it exits');
like($log, qr/background worker "pgbun worker" \(PID $old_pid\) exited with exit code 1/,
	'and exited 1, which the postmaster restarts');

foreach my $i (1 .. 4)
{
	my $c = raw_connect($node);
	my $r = $c->login(%alice);
	ok($r->{ok}, "after the restart: client $i of max_client_conn = 4 fits") or diag(explain($r));
	push @clients, $c;
}
$_->close foreach @clients;
@clients = ();

############ pg_ctl stop -m smart with min_pool_size = 2

# the pool's first login teaches pgbun how to log in; min_pool_size keeps 2 servers
ok( wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND backend_type = 'client backend'"
			) eq '2';
		},
		60, 0.2),
	'min_pool_size = 2: two server connections while no client is connected');

my $session = raw_connect($node);
ok($session->login(%alice)->{ok}, 'a client logged in before the smart shutdown');
is($session->query('SELECT 1')->{rows}[0][0], '1', 'it holds a server');

# connected before: the server takes no new connections during the shutdown
my $monitor = direct_session($node);
ok($monitor->connected, 'a monitoring session straight to the server');
$offset = -s $node->logfile;
my ($out, $err) = ('', '');
my $pg_ctl = IPC::Run::start(
	[ $node->installed_command('pg_ctl'), '-D', $node->data_dir, '-m', 'smart', '-w', '-t', '90', 'stop' ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
ok($node->wait_for_log(qr/received smart shutdown request/, $offset), 'smart shutdown requested');
ok($node->wait_for_log(qr/pgbun: the server is shutting down: worker 0 accepts no new clients/, $offset),
	'pgbun noticed the smart shutdown');

is($session->query('SELECT 2')->{rows}[0][0], '2', 'the connected client goes on during the smart shutdown');
ok( wait_until(
		sub {
			my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => pgbun_port($node), Proto => 'tcp');
			return 1 unless $c;
			close $c;
			return 0;
		},
		30),
	'new clients are turned away');
ok( wait_until(
		sub {
			($monitor->query(
				"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND backend_type = 'client backend'"
			) // '') eq '1';
		},
		30, 0.2),
	'the idle server connection closed despite min_pool_size = 2; the client\'s one stays');
ok($pg_ctl->pumpable, 'the smart shutdown waits for the connected client');

$session->terminate;
$monitor->quit;
my $finished = eval { $pg_ctl->finish; 1 };
ok($finished && $pg_ctl->result(0) == 0, 'the smart shutdown finishes once the client is gone')
  or diag("pg_ctl: $out $err $@\n" . PgbunTest::tail_log($node, 30));
$node->_update_pid(0);
$log = slurp_file($node->logfile, $offset);
like($log, qr/pgbun: worker 0 shut down/, 'the worker shut down');
unlike($log, qr/"pgbun worker".*exited with exit code 1|terminated while the server is running/,
	'and exited 0');

############ pg_ctl stop -m fast

$node->start;
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens again after a start');
my $fast = raw_connect($node);
ok($fast->login(%alice)->{ok}, 'a client logged in before the fast shutdown');
is($fast->query('SELECT 3')->{rows}[0][0], '3', 'it holds a server');
$offset = -s $node->logfile;
ok($node->stop('fast', fail_ok => 1), 'pg_ctl stop -m fast completes');
# pgbun's own 57P01, or its server's (forwarded) when the backend went first
closed_with($fast, '57P01', 'client at fast shutdown');
$log = slurp_file($node->logfile, $offset);
like($log, qr/pgbun: worker 0 shut down/, 'the worker shut down');
unlike($log, qr/"pgbun worker" \(PID \d+\) exited with exit code 1|terminated while the server is running|starting background worker process "pgbun/,
	'exited 0 and was not started again');

done_testing();

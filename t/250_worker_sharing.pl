# 250_worker_sharing: with pgbun.workers = 2 the pool limit is shared, and
# so are the servers: a worker holding a pool's servers idle gives one up
# when the other worker's clients wait for that pool and the limit leaves no
# room (through the starving marks in shared memory and the workers'
# latches), instead of those clients waiting for query_wait_timeout.
#
# Placement is deterministic: the kernel spreads TCP connections over the
# workers (SO_REUSEPORT), so each client here is connected until one lands
# on the worker the step needs; pgbun.clients says which worker owns a
# connection (matched by its client port).
#
#  - worker 0 holds both servers of a pool of 2 idle; a client's first login
#    on worker 1 (it needs a server login for its welcome) is served well
#    before query_wait_timeout / client_login_timeout (60 s);
#  - then, worker 1 logged in: a second client there waits for a server for
#    its query while worker 0 holds the other one idle; served too;
#  - the other direction: worker 1's idle servers go to a client on worker 0;
#  - no churn when nobody waits: idle servers stay (same backend pids);
#  - max_db_connections shared by two pools: idle servers of one pool make
#    room for the other pool's waiting client;
#  - the pool never has more than 2 servers.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'sharing',
	conf => {
		'pgbun.workers' => '2',
		'pgbun.default_pool_size' => '2',
		'pgbun.query_wait_timeout' => '60s',
		'pgbun.client_login_timeout' => '60s',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

# A raw client (not logged in yet) on worker $w, or undef after 60 tries.
sub client_on_worker
{
	my ($w) = @_;
	for my $try (1 .. 60)
	{
		my $raw = raw_connect($node);
		my $port = $raw->{sock}->sockport;
		my $owner;
		wait_until(
			sub {
				$owner = $node->safe_psql('postgres',
					"SELECT worker FROM pgbun.clients WHERE port = $port");
				return $owner ne '';
			},
			10);
		return $raw if $owner eq "$w";
		$raw->close;
	}
	return undef;
}

sub servers
{
	return $node->safe_psql('postgres',
		"SELECT worker || ':' || state FROM pgbun.servers WHERE \"user\" = 'alice' ORDER BY 1");
}

sub server_count
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.servers WHERE \"user\" = 'alice'");
}

# Log in and run a query on worker $w's clients so that they hold servers,
# then let them go: the servers stay idle on worker $w.
sub hold_idle_on
{
	my ($w, $n) = @_;
	my @c;
	for my $i (1 .. $n)
	{
		my $raw = client_on_worker($w);
		ok($raw, "holder $i is on worker $w") or return 0;
		my $r = $raw->login(%alice);
		ok($r->{ok}, "holder $i logs in") or diag(explain($r));
		my $q = $raw->query('SELECT pg_backend_pid()');
		ok($q->{ok}, "holder $i runs a query (session mode: it keeps its server)");
		push @c, $raw;
	}
	$_->terminate foreach @c;
	my ($ok, $last) = poll_sql($node,
		"SELECT string_agg(worker || ':' || state, ',' ORDER BY worker) FROM pgbun.servers WHERE \"user\" = 'alice'",
		join(',', ("$w:idle") x $n));
	ok($ok, "worker $w holds $n idle servers") or diag("servers: $last");
	return $ok;
}

############ worker 0 holds the pool idle; a first login on worker 1

hold_idle_on(0, 2);
my $pids_before = $node->safe_psql('postgres',
	"SELECT string_agg(remote_pid::text, ',' ORDER BY remote_pid) FROM pgbun.servers WHERE \"user\" = 'alice'");

my $w1a = client_on_worker(1);
ok($w1a, 'a client lands on worker 1');
my $t0 = time;
my $r = $w1a->login(%alice, secs => 30);
my $took = time - $t0;
ok($r->{ok}, 'its login (which needs a server login on worker 1) succeeds')
  or diag(explain($r) . "\nservers: " . servers());
cmp_ok($took, '<', 20, sprintf('served well before the 60 s timeouts (%.1f s)', $took));
my $q = $w1a->query("SELECT 'w1a'");
is($q->{rows}[0][0] // '', 'w1a', 'and its query runs');
cmp_ok(server_count(), '<=', 2, 'the pool still has at most 2 servers');

############ worker 1 logged in: a second client waits for a server there

my $w1b = client_on_worker(1);
ok($w1b, 'a second client lands on worker 1');
$r = $w1b->login(%alice);
ok($r->{ok}, 'it logs in at once (worker 1 knows the pool now)');
my ($ok, $last) = poll_sql($node,
	"SELECT string_agg(worker || ':' || state, ',' ORDER BY worker) FROM pgbun.servers WHERE \"user\" = 'alice'",
	'0:idle,1:active');
ok($ok, 'worker 0 holds one idle server, worker 1 one active') or diag("servers: $last");
$t0 = time;
$q = $w1b->query("SELECT 'w1b'", 30);
$took = time - $t0;
is($q->{rows}[0][0] // '', 'w1b', 'the waiting query on worker 1 is served')
  or diag(explain($q) . "\nservers: " . servers());
cmp_ok($took, '<', 20, sprintf('well before query_wait_timeout (%.1f s)', $took));
is(servers(), "1:active\n1:active", 'both servers are now worker 1\'s');
isnt($node->safe_psql('postgres',
		"SELECT string_agg(remote_pid::text, ',' ORDER BY remote_pid) FROM pgbun.servers WHERE \"user\" = 'alice'"),
	$pids_before, 'worker 0 closed its idle servers and worker 1 opened new ones');

############ the other direction: worker 1 idle, a client on worker 0

$_->terminate foreach ($w1a, $w1b);
($ok, $last) = poll_sql($node,
	"SELECT string_agg(worker || ':' || state, ',' ORDER BY worker) FROM pgbun.servers WHERE \"user\" = 'alice'",
	'1:idle,1:idle');
ok($ok, 'worker 1 holds both servers idle') or diag("servers: $last");
my $w0 = client_on_worker(0);
ok($w0, 'a client lands on worker 0');
$r = $w0->login(%alice);
ok($r->{ok}, 'it logs in (worker 0 knows the pool)');
$t0 = time;
$q = $w0->query("SELECT 'w0'", 30);
$took = time - $t0;
is($q->{rows}[0][0] // '', 'w0', 'its query is served with a server worker 1 gave up')
  or diag(explain($q) . "\nservers: " . servers());
cmp_ok($took, '<', 20, sprintf('well before query_wait_timeout (%.1f s)', $took));
is(servers(), "0:active\n1:idle", 'worker 1 gave up exactly one of its two idle servers');
$w0->terminate;

############ nobody waits: nothing is given away

($ok, $last) = poll_sql($node,
	"SELECT string_agg(worker || ':' || state, ',' ORDER BY worker) FROM pgbun.servers WHERE \"user\" = 'alice'",
	'0:idle,1:idle');
ok($ok, 'one idle server on each worker') or diag("servers: $last");
my $pids = $node->safe_psql('postgres',
	"SELECT string_agg(remote_pid::text, ',' ORDER BY remote_pid) FROM pgbun.servers WHERE \"user\" = 'alice'");
usleep(1_500_000);
is($node->safe_psql('postgres',
		"SELECT string_agg(remote_pid::text, ',' ORDER BY remote_pid) FROM pgbun.servers WHERE \"user\" = 'alice'"),
	$pids, 'with no client waiting, idle servers stay where they are');

############ a limit shared by two pools: max_db_connections

$node->safe_psql('postgres', "CREATE ROLE bob LOGIN PASSWORD 'bob-pw'");
reload_conf($node, 'pgbun.max_db_connections' => '2', 'pgbun.default_pool_size' => '5');
# alice's two idle servers fill the database's limit. The workers apply a
# reload at their next loop turn; give them a moment (if one had not, bob
# would get a third server and the count below would fail, not pass).
usleep(1_000_000);
my $bob = raw_connect($node);
$t0 = time;
$r = $bob->login(user => 'bob', password => 'bob-pw', secs => 30);
$took = time - $t0;
ok($r->{ok}, 'a client of another pool of the same database logs in (max_db_connections = 2 was reached)')
  or diag(explain($r) . "\nservers: " . $node->safe_psql('postgres', 'SELECT worker, "user", state FROM pgbun.servers'));
cmp_ok($took, '<', 20, sprintf('served well before the 60 s timeouts (%.1f s)', $took));
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE database = 'postgres'"),
	'2', 'the database still has 2 servers: one of alice\'s idle ones made room');
$bob->terminate;

check_server_same($node, $identity, 'end of 250');
stop_node($node);
done_testing();

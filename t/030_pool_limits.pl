# 030_pool_limits: session pooling under load and its limits.
#
#  - 50 pgbench clients (reconnecting per transaction) share a pool of 5 with
#    zero failures, and the server never sees more than 5 of the role's
#    backends (the role's CONNECTION LIMIT 5 would refuse a 6th anyway);
#  - max_client_conn: the client over the limit gets 53300;
#  - reload of default_pool_size while clients hold servers: nobody is
#    dropped and the pool follows the new size;
#  - query_wait_timeout: a query that cannot get a server gets 57014.

use strict;
use warnings FATAL => 'all';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use Time::HiRes qw(usleep time);
use PgbunTest;

my $node = pgbun_node(
	name => 'limits',
	conf => { 'pgbun.default_pool_size' => '5', 'pgbun.pool_mode' => 'session' });
$node->safe_psql(
	'postgres', q{
CREATE ROLE bench LOGIN PASSWORD 'bench-pw' CONNECTION LIMIT 5;
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE ROLE carol LOGIN PASSWORD 'carol-pw';
CREATE ROLE dave1 LOGIN PASSWORD 'dave-pw';
CREATE ROLE dave2 LOGIN PASSWORD 'dave-pw';
CREATE ROLE dave3 LOGIN PASSWORD 'dave-pw';
CREATE DATABASE u1;
CREATE DATABASE u2;
CREATE DATABASE u3;
CREATE DATABASE capdb;
CREATE DATABASE fifodb;
CREATE DATABASE benchdb;
CREATE DATABASE reloaddb;
CREATE DATABASE waitdb;
});
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'benchdb' ],
	'pgbench -i directly on the server');
$node->safe_psql('benchdb', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench');
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw');
# reload_sync's probe client logs in as its own role, in its own pool.
my %probe = (user => 'prober', password => 'prober-pw');

############ 50 pgbench clients, pool of 5

my $monitor = direct_session($node);
ok($monitor->connected, 'monitoring session on the server');

my @pgbench = (
	$node->installed_command('pgbench'),
	'-h', '127.0.0.1', '-p', pgbun_port($node), '-U', 'bench',
	'-n', '-S', '-C', '-c', '50', '-j', '2', '-t', '20', 'benchdb');
my ($bout, $berr) = ('', '');
my $bench;
{
	local %ENV = PgbunTest::client_env(password => 'bench-pw');
	$bench = IPC::Run::start(\@pgbench, '<', '/dev/null', '>', \$bout, '2>', \$berr,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# While it runs, sample the server's own count of bench backends.
my $max_backends = 0;
my $samples = 0;
my $bench_ok = eval {
	while ($bench->pumpable)
	{
		$bench->pump_nb;
		my $n = $monitor->query(
			"SELECT count(*) FROM pg_stat_activity WHERE usename = 'bench'");
		last unless defined $n;
		$samples++;
		$max_backends = $n if $n > $max_backends;
		usleep(20_000);
	}
	$bench->finish;
	1;
};
my $bench_err = $@;
ok($bench_ok, 'pgbench through pgbun finished') or diag("$bench_err\n$berr");
is(eval { $bench->result(0) } // -1, 0, 'pgbench exits 0') or diag("stdout:\n$bout\nstderr:\n$berr");

like($bout, qr/number of transactions actually processed: 1000\/1000/,
	'pgbench: all 1000 transactions processed');
if ($bout =~ /number of failed transactions: (\d+)/)
{
	is($1, '0', 'pgbench: zero failed transactions');
}
unlike($berr, qr/error|FATAL/i, 'pgbench printed no errors') or diag($berr);

note("sampled pg_stat_activity $samples times, at most $max_backends bench backends");
ok($samples > 0, 'sampled the server while pgbench ran');
cmp_ok($max_backends, '<=', 5, 'the server never saw more than 5 bench backends');
cmp_ok($max_backends, '>=', 1, 'the server did see pgbun\'s bench backends');

my $pool = $node->safe_psql('postgres',
	"SELECT sv_active + sv_idle + sv_used + sv_tested + sv_login FROM pgbun.pools "
	  . "WHERE database = 'benchdb' AND \"user\" = 'bench'");
cmp_ok($pool || 0, '<=', 5, "pgbun.pools: the bench pool holds at most 5 servers ($pool)");
cmp_ok($pool || 0, '>=', 1, 'pgbun.pools: the bench pool kept its servers for reuse');
my $total = $node->safe_psql('postgres',
	"SELECT total_xact_count FROM pgbun.stats WHERE database = 'benchdb'");
cmp_ok($total || 0, '>=', 1000, "pgbun.stats counted the pgbench transactions ($total)");
$monitor->quit;

my ($matched, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.clients', '0');
ok($matched, 'every pgbench client is gone from pgbun.clients') or diag("last: $last");

############ max_client_conn

reload_conf($node, 'pgbun.max_client_conn' => '3');
my @held;
for my $i (1 .. 3)
{
	my $s = pgbun_session($node, %alice);
	ok($s->connected, "max_client_conn: client $i of 3 connects") or diag($s->connect_error);
	is($s->query('SELECT 1'), '1', "max_client_conn: client $i of 3 runs a query");
	push @held, $s;
}

# The reload reaches the worker asynchronously: retry until refused.
my $refusal;
wait_until(
	sub {
		my $raw = raw_connect($node);
		my $r = $raw->login(%alice);
		$raw->close;
		return 0 if $r->{ok};
		$refusal = $r;
		return 1;
	},
	hang_guard(),
	0.1);
ok($refusal, 'max_client_conn = 3: the 4th client is refused');
is($refusal->{error}{C} // '', '53300', 'max_client_conn: SQLSTATE 53300') or diag(explain($refusal));
like($refusal->{error}{M} // '', qr/^pgbun:/, 'max_client_conn: message starts with pgbun:');

my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice);
isnt($rc, 0, 'max_client_conn: psql as the 4th client fails');
like($err, qr/pgbun:/, 'max_client_conn: psql shows pgbun\'s error');

foreach my $s (@held)
{
	is($s->query('SELECT 2'), '2', 'max_client_conn: held clients are unaffected');
}

# One leaves: there is room for one more again.
(shift @held)->quit;
ok( wait_until(
		sub {
			my $raw = raw_connect($node);
			my $r = $raw->login(%alice);
			$raw->close;
			return $r->{ok};
		},
		hang_guard(), 0.1),
	'max_client_conn: after one client leaves a new one gets in');
$_->quit foreach @held;
@held = ();
reload_sync($node, \%probe, 'pgbun.max_client_conn' => undef);

############ reload default_pool_size with clients holding servers

reload_sync($node, \%probe, 'pgbun.default_pool_size' => '2');

my @s;
my @pids;
for my $i (1 .. 2)
{
	my $sess = pgbun_session($node, %alice, dbname => 'reloaddb');
	ok($sess->connected, "pool size 2: session $i connects") or diag($sess->connect_error);
	push @s, $sess;
	push @pids, $sess->query('SELECT pg_backend_pid()') // 'none';
}
like("@pids", qr/^\d+ \d+$/, 'pool size 2: both sessions hold a server');

# A third client must wait: the pool is full.
my $third = pgbun_session($node, %alice, dbname => 'reloaddb', wait => 0);
$third->send("SELECT 'third got a server';");
($matched, $last) = poll_sql($node,
	"SELECT cl_waiting FROM pgbun.pools WHERE database = 'reloaddb' AND \"user\" = 'alice'",
	'1');
ok($matched, 'pool size 2: the third client waits (cl_waiting = 1)') or diag("last: $last");
unlike($third->stdout, qr/third got a server/, 'pool size 2: the third client has no answer yet');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'reloaddb' AND usename = 'alice'"),
	'2', 'pool size 2: the server has exactly 2 alice backends in reloaddb');

# Grow the pool: the waiting client gets a server, nobody is dropped.
reload_conf($node, 'pgbun.default_pool_size' => '3');
ok($third->wait_output(qr/third got a server/, secs => hang_guard()),
	'pool size 3 after reload: the waiting client gets its answer')
  or diag('stderr: ' . $third->stderr);
for my $i (0 .. 1)
{
	is($s[$i]->query('SELECT pg_backend_pid()'), $pids[$i],
		"after reload to 3: session " . ($i + 1) . " still has the same backend");
}
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'reloaddb' AND usename = 'alice'"),
	'<=', 3, 'pool size 3: at most 3 alice backends in reloaddb');
$third->quit;

# Shrink below what is held: held sessions keep their servers.
reload_sync($node, \%probe, 'pgbun.default_pool_size' => '1');
for my $i (0 .. 1)
{
	my ($pid, $qerr) = $s[$i]->query('SELECT pg_backend_pid()');
	is($pid, $pids[$i], "after reload to 1: session " . ($i + 1) . " still has the same backend")
	  or diag($qerr);
}
$_->quit foreach @s;

############ FIFO waiting queue (pool size 1)

sub waiting_in
{
	my ($db, $user) = @_;
	return "SELECT coalesce(sum(cl_waiting), 0) FROM pgbun.pools "
	  . "WHERE database = '$db' AND \"user\" = '$user'";
}

my $fifo_holder = pgbun_session($node, %alice, dbname => 'fifodb');
is($fifo_holder->query('SELECT 1'), '1', 'FIFO: the holder has the only server');
my $first = pgbun_session($node, %alice, dbname => 'fifodb', wait => 0);
$first->send("SELECT 'first served';");
($matched, $last) = poll_sql($node, waiting_in('fifodb', 'alice'), '1');
ok($matched, 'FIFO: the first client waits') or diag("last: $last");
my $second = pgbun_session($node, %alice, dbname => 'fifodb', wait => 0);
$second->send("SELECT 'second served';");
($matched, $last) = poll_sql($node, waiting_in('fifodb', 'alice'), '2');
ok($matched, 'FIFO: the second client waits behind it') or diag("last: $last");

$fifo_holder->quit;
ok($first->wait_output(qr/first served/, secs => hang_guard()),
	'FIFO: when the holder leaves, the first waiting client is served')
  or diag('stderr: ' . $first->stderr);
($matched, $last) = poll_sql($node, waiting_in('fifodb', 'alice'), '1');
ok($matched, 'FIFO: the second client still waits') or diag("last: $last");
unlike($second->stdout, qr/second served/, 'FIFO: the second client was not served before the first');
$first->quit;
ok($second->wait_output(qr/second served/, secs => hang_guard()),
	'FIFO: then the second client is served')
  or diag('stderr: ' . $second->stderr);
$second->quit;

############ max_user_connections and max_db_connections
#
# As in PgBouncer, a client leaving one pool does not free its user's (or
# database's) slot at once: its server stays pooled until it is closed,
# here by a short server_idle_timeout. Then the waiting pool gets a server.
# Note that in session mode a client of a pool with no server yet waits for
# a server to log in at all, so the third client's connect is what waits.

reload_sync($node, \%probe,
	'pgbun.default_pool_size' => '5',
	'pgbun.max_user_connections' => '2',
	'pgbun.server_idle_timeout' => '1s');

my %carol = (user => 'carol', password => 'carol-pw');
my $c1 = pgbun_session($node, %carol, dbname => 'u1');
my $c2 = pgbun_session($node, %carol, dbname => 'u2');
is(($c1->query('SELECT 1') // '') . ($c2->query('SELECT 2') // ''), '12',
	'max_user_connections = 2: carol holds servers in u1 and u2');
my $c3 = pgbun_session($node, %carol, dbname => 'u3', wait => 0);
$c3->send("SELECT 'u3 served';");
($matched, $last) = poll_sql($node, waiting_in('u3', 'carol'), '1');
ok($matched, 'max_user_connections = 2: carol\'s third client, in u3, waits') or diag("last: $last");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'carol'"),
	'2', 'max_user_connections = 2: the server has 2 carol backends');
ok($c3->alive, 'max_user_connections = 2: the third client is still waiting, not refused');
$c1->quit;
ok($c3->wait_output(qr/u3 served/, secs => hang_guard()),
	'max_user_connections: once carol\'s u1 server is released and closed, the u3 client is served')
  or diag('stderr: ' . $c3->stderr);
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'carol'"),
	'<=', 2, 'max_user_connections: still at most 2 carol backends');
$_->quit foreach ($c2, $c3);

reload_sync($node, \%probe,
	'pgbun.max_user_connections' => undef,
	'pgbun.max_db_connections' => '2');
my @d = map { pgbun_session($node, user => "dave$_", password => 'dave-pw', dbname => 'capdb') } 1 .. 2;
is(($d[0]->query('SELECT 1') // '') . ($d[1]->query('SELECT 2') // ''), '12',
	'max_db_connections = 2: dave1 and dave2 hold servers in capdb');
push @d, pgbun_session($node, user => 'dave3', password => 'dave-pw', dbname => 'capdb', wait => 0);
$d[2]->send("SELECT 'dave3 served';");
($matched, $last) = poll_sql($node, waiting_in('capdb', 'dave3'), '1');
ok($matched, 'max_db_connections = 2: dave3 waits') or diag("last: $last");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE datname = 'capdb'"),
	'2', 'max_db_connections = 2: the server has 2 capdb backends');
$d[0]->quit;
ok($d[2]->wait_output(qr/dave3 served/, secs => hang_guard()),
	'max_db_connections: once dave1\'s server is released and closed, dave3 is served')
  or diag('stderr: ' . $d[2]->stderr);
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE datname = 'capdb'"),
	'<=', 2, 'max_db_connections: still at most 2 capdb backends');
$_->quit foreach @d[ 1, 2 ];

############ query_wait_timeout

reload_sync($node, \%probe,
	'pgbun.max_db_connections' => undef,
	'pgbun.server_idle_timeout' => undef,
	'pgbun.default_pool_size' => '1',
	'pgbun.query_wait_timeout' => '1s');

my $holder = pgbun_session($node, %alice, dbname => 'waitdb');
ok($holder->connected, 'query_wait_timeout: the holder connects') or diag($holder->connect_error);
$holder->query('BEGIN');
is($holder->query('SELECT 1'), '1', 'query_wait_timeout: the holder is in a transaction');

my $raw = raw_connect($node);
my $r = $raw->login(%alice, database => 'waitdb');
my $werr = $r->{error};
if ($r->{ok})
{
	my $q = $raw->query('SELECT 1');
	$werr = $q->{error};
	ok(!@{ $q->{rows} }, 'query_wait_timeout: the waiting query returns no rows');
}
is($werr->{C} // '', '57014', 'query_wait_timeout: SQLSTATE 57014') or diag(explain($r));
like($werr->{M} // '', qr/^pgbun:/, 'query_wait_timeout: message starts with pgbun:');
$raw->close;

# Three waiters queued one after another: each gets its 57014, none before
# it has waited the timeout itself (the janitor stops its walk of the queue
# at the first waiter not yet due; t/187 covers a clock step).
{
	my (@w, @sent, @got);
	for my $i (0 .. 2)
	{
		my $raw = raw_connect($node);
		ok($raw->login(%alice, database => 'waitdb')->{ok}, "query_wait_timeout: waiter $i logs in");
		push @sent, time;
		$raw->send_bytes(PgbunTest::Raw::query_message("SELECT $i"));
		push @w, $raw;
		usleep(300_000);
	}
	for my $i (0 .. 2)
	{
		my $msgs = read_until($w[$i], 'E');
		my $waited = time - $sent[$i];
		push @got, (first_error($msgs)->{C} // msg_types($msgs)) . ($waited >= 1 ? '' : " after ${waited}s");
		$w[$i]->close;
	}
	is(join(',', @got), '57014,57014,57014', 'query_wait_timeout: three queued waiters each time out after their own wait');
}

is($holder->query('SELECT 2'), '2', 'query_wait_timeout: the holder is unaffected');
$holder->query('COMMIT');
$holder->quit;

($rc, $out, $err) = pgbun_psql($node, 'SELECT 3', %alice, dbname => 'waitdb');
is($out, '3', 'query_wait_timeout: once the holder leaves, a new client is served') or diag($err);

# The first login of a pool waits for a server too (it needs the server's
# parameters): with max_db_connections = 1 held by alice, prober's first
# login to waitdb gets query_wait_timeout's 57014, not a login that hangs
# until client_login_timeout.
reload_sync($node, \%probe,
	'pgbun.default_pool_size' => undef,
	'pgbun.max_db_connections' => '1');
$holder = pgbun_session($node, %alice, dbname => 'waitdb');
$holder->query('BEGIN');
is($holder->query('SELECT 4'), '4', 'query_wait_timeout at login: alice holds waitdb\'s one server');
$raw = raw_connect($node);
$r = $raw->login(user => 'prober', password => 'prober-pw', database => 'waitdb');
is($r->{error}{C} // '', '57014', 'query_wait_timeout at login: SQLSTATE 57014') or diag(explain($r));
like($r->{error}{M} // '', qr/^pgbun: query_wait_timeout/, 'query_wait_timeout at login: pgbun names the timeout');
$raw->close;
$holder->query('COMMIT');
$holder->quit;

check_server_same($node, $identity, 'end of 030');

stop_node($node);
done_testing();

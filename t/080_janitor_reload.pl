# 080_janitor_reload: the periodic janitor and listener re-binding on reload.
#
#  - server_idle_timeout closes idle pooled servers, min_pool_size keeps
#    some open anyway, server_lifetime retires old servers only once they
#    are released, client_idle_timeout closes idle logged-in clients;
#  - a reload that changes pgbun.port re-binds the listener without
#    dropping clients connected on the old port;
#  - a reload with an unsupported pool_mode is refused and changes nothing.
#
# Timeouts here are 1s; every wait is a poll with a hang guard, never an
# assertion about how long something took.

use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use IO::Socket::IP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'janitor');
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE DATABASE idledb;
CREATE DATABASE mindb;
CREATE DATABASE lifedb;
});
my %alice = (user => 'alice', password => 'alice-pw');
my %probe = (user => 'prober', password => 'prober-pw');
my $identity = server_identity($node);

sub backends_in
{
	my ($db) = @_;
	return "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND usename = 'alice'";
}

############ server_idle_timeout

reload_sync($node, \%probe, 'pgbun.server_idle_timeout' => '1s');
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, dbname => 'idledb');
is($out, '1', 'a client uses idledb') or diag($err);
my ($matched, $last) = poll_sql($node, backends_in('idledb'), '0');
ok($matched, 'server_idle_timeout = 1s: the idle pooled server is closed') or diag("last: $last");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pgbun.servers WHERE database = 'idledb'", '0');
ok($matched, 'server_idle_timeout: and gone from pgbun.servers') or diag("last: $last");

# A held (linked) server is not idle: it must survive the timeout.
my $held = pgbun_session($node, %alice, dbname => 'idledb');
my $held_pid = $held->query('SELECT pg_backend_pid()');
like($held_pid // '', qr/^\d+$/, 'a session holds an idledb server');
# Let several janitor rounds pass: wait until a second, idle, server of
# another pool has been closed by the same timeout.
($rc, $out, $err) = pgbun_psql($node, 'SELECT 2', %alice, dbname => 'mindb');
($matched, $last) = poll_sql($node, backends_in('mindb'), '0');
ok($matched, 'meanwhile an idle mindb server was closed') or diag("last: $last");
is($held->query('SELECT pg_backend_pid()'), $held_pid,
	'server_idle_timeout does not touch a server held by a client');
$held->quit;

############ min_pool_size

reload_sync($node, \%probe, 'pgbun.min_pool_size' => '2');
($rc, $out, $err) = pgbun_psql($node, 'SELECT 3', %alice, dbname => 'mindb');
is($out, '3', 'a client uses mindb') or diag($err);
($matched, $last) = poll_sql($node, backends_in('mindb'), '2');
ok($matched, 'min_pool_size = 2: the pool keeps 2 servers open despite server_idle_timeout')
  or diag("last: $last");
($matched, $last) = poll_sql($node,
	"SELECT sv_idle FROM pgbun.pools WHERE database = 'mindb' AND \"user\" = 'alice'", '2');
ok($matched, 'min_pool_size: pgbun.pools shows 2 idle servers') or diag("last: $last");

reload_sync($node, \%probe, 'pgbun.min_pool_size' => undef);
($matched, $last) = poll_sql($node, backends_in('mindb'), '0');
ok($matched, 'min_pool_size back to 0: the idle servers are closed again') or diag("last: $last");

############ server_lifetime

reload_sync($node, \%probe,
	'pgbun.server_idle_timeout' => '0',
	'pgbun.server_lifetime' => '1s');
my $life = pgbun_session($node, %alice, dbname => 'lifedb');
my $life_pid = $life->query('SELECT pg_backend_pid()');
like($life_pid // '', qr/^\d+$/, 'a session holds a lifedb server');
# Outlive the lifetime while holding the server (poll on the server's age).
($matched, $last) = poll_sql($node,
	"SELECT now() - backend_start > interval '2 seconds' FROM pg_stat_activity WHERE pid = $life_pid",
	't');
ok($matched, 'the held lifedb server is older than server_lifetime') or diag("last: $last");
is($life->query('SELECT pg_backend_pid()'), $life_pid,
	'server_lifetime does not close a server while a client holds it');
$life->quit;
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pg_stat_activity WHERE pid = $life_pid", '0');
ok($matched, 'server_lifetime: once released, the old server is closed') or diag("last: $last");
($rc, $out, $err) = pgbun_psql($node, 'SELECT pg_backend_pid()', %alice, dbname => 'lifedb');
like($out, qr/^\d+$/, 'a new lifedb client gets a fresh server') or diag($err);
isnt($out, $life_pid, 'not the retired one');

reload_sync($node, \%probe,
	'pgbun.server_idle_timeout' => undef,
	'pgbun.server_lifetime' => undef);

# A pool that existed before the reload takes the new lifetime too (each
# pool keeps the value in force, refreshed at reload): its idle server,
# already older than the new lifetime, is retired.
{
	my $pre = pgbun_session($node, %alice, dbname => 'lifedb');
	my $pre_pid = $pre->query('SELECT pg_backend_pid()');
	like($pre_pid // '', qr/^\d+$/, 'a lifedb server, made under the default lifetime');
	$pre->quit;
	($matched, $last) = poll_sql($node,
		"SELECT now() - backend_start > interval '2 seconds' FROM pg_stat_activity WHERE pid = $pre_pid",
		't');
	ok($matched, 'it sits idle in its pool, older than 2 s') or diag("last: $last");
	reload_sync($node, \%probe,
		'pgbun.server_idle_timeout' => '0',
		'pgbun.server_lifetime' => '1s');
	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pre_pid", '0');
	ok($matched, 'server_lifetime lowered by a reload retires the idle server of an existing pool')
	  or diag("last: $last");
	reload_sync($node, \%probe,
		'pgbun.server_idle_timeout' => undef,
		'pgbun.server_lifetime' => undef);
}

############ client_idle_timeout

reload_sync($node, \%probe, 'pgbun.client_idle_timeout' => '1s');
my $raw = raw_connect($node);
my $login = $raw->login(%alice);
ok($login->{ok}, 'a raw client logs in') or diag(explain($login));
my $res = $raw->read_to_eof(hang_guard());
ok($res->{eof}, 'client_idle_timeout = 1s: the idle client is disconnected') or diag(explain($res));
foreach my $e (@{ $res->{errors} })
{
	like($e->{M} // '', qr/^pgbun:/, "client_idle_timeout: the error is pgbun's ($e->{C})");
}
$raw->close;

# A client that keeps talking is not idle.
$raw = raw_connect($node);
ok($raw->login(%alice)->{ok}, 'a busy client logs in');
my $answers = 0;
for my $i (1 .. 5)
{
	my $q = $raw->query("SELECT $i, pg_sleep(0.5)");
	$answers++ if ($q->{rows}[0][0] // '') eq $i;
}
is($answers, 5, 'client_idle_timeout leaves a client alone while it runs queries');
$raw->terminate;
reload_sync($node, \%probe, 'pgbun.client_idle_timeout' => undef);

############ bad pool settings are refused at reload, the old ones stay

my ($prc, $pout, $perr) = (0, '', '');
$prc = $node->psql('postgres', "ALTER SYSTEM SET pgbun.pool_mode = 'bogus'",
	stdout => \$pout, stderr => \$perr);
isnt($prc, 0, 'ALTER SYSTEM SET pgbun.pool_mode = bogus is refused');
like($perr, qr/invalid value for parameter "pgbun.pool_mode"/, 'the refusal names the setting');
$perr = '';
$prc = $node->psql('postgres', "ALTER SYSTEM SET pgbun.databases = 'postgres = pool_mode=sometimes'",
	stdout => \$pout, stderr => \$perr);
isnt($prc, 0, 'a pgbun.databases entry with a bad pool_mode is refused');
like($perr, qr/pgbun: invalid pool_mode "sometimes" for "postgres"/, 'the refusal says which entry and why');
$perr = '';
$prc = $node->psql('postgres', "ALTER SYSTEM SET pgbun.users = 'alice = pool_size=3'",
	stdout => \$pout, stderr => \$perr);
isnt($prc, 0, 'pool_size in pgbun.users is refused (it is a per-database setting)');
like($perr, qr/pgbun: unknown setting "pool_size" for "alice"/, 'the refusal lists what is supported');
is($node->safe_psql('postgres', 'SHOW pgbun.pool_mode'), 'session', 'pool_mode stays session');
is($node->safe_psql('postgres', 'SHOW pgbun.databases'), '', 'pgbun.databases stays empty');

############ changing pgbun.port re-binds without dropping clients

my $old_port = pgbun_port($node);
my $keeper = pgbun_session($node, %alice);
my $keeper_pid = $keeper->query('SELECT pg_backend_pid()');
like($keeper_pid // '', qr/^\d+$/, 'a client is connected on the old port');

my $new_port = PostgreSQL::Test::Cluster::get_free_port();
reload_conf($node, 'pgbun.port' => $new_port);
ok(PgbunTest::wait_for_listen($new_port, hang_guard()), "after reload pgbun listens on the new port $new_port");
ok( wait_until(
		sub {
			my $s = IO::Socket::INET->new(
				PeerAddr => '127.0.0.1',
				PeerPort => $old_port,
				Proto => 'tcp',
				Timeout => 2);
			return 1 unless $s;
			close $s;
			return 0;
		}),
	"the old port $old_port no longer accepts connections");
$node->{_pgbun_port} = $new_port;

($rc, $out, $err) = pgbun_psql($node, 'SELECT 4', %alice);
is($out, '4', 'a new client logs in on the new port') or diag($err);
is($keeper->query('SELECT pg_backend_pid()'), $keeper_pid,
	'the client connected on the old port keeps working on the same server');

############ listen_addresses: add IPv6 loopback by reload

SKIP:
{
	my $probe6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
	skip 'no IPv6 loopback on this machine', 5 unless $probe6;
	close $probe6;

	reload_conf($node, 'pgbun.listen_addresses' => '127.0.0.1, ::1');
	my $raw6;
	ok( wait_until(
			sub {
				$raw6 = eval { raw_connect($node, host => '::1') };
				return defined $raw6;
			}),
		'after reload pgbun listens on ::1 too');
	skip 'pgbun never listened on ::1', 4 unless $raw6;
	my $l6 = $raw6->login(%alice);
	ok($l6->{ok}, 'a client logs in over IPv6') or diag(explain($l6));
	my $port6 = $raw6->{sock}->sockport;
	is( $node->safe_psql('postgres', "SELECT addr FROM pgbun.clients WHERE port = $port6"),
		'::1', 'pgbun.clients shows the IPv6 client address');
	is($keeper->query('SELECT 5'), '5', 'the IPv4 client is unaffected by the new listener');
	$raw6->terminate;
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 6', %alice);
	is($out, '6', 'IPv4 logins still work') or diag($err);
}
$keeper->quit;

check_server_same($node, $identity, 'end of 080');
stop_node($node);
done_testing();

# 320_targets_replication: pgbun on every node of a streaming-replication
# cluster (a primary and two standbys), routing by pgbun.databases entries
# with host lists:
#
#   rw = all three nodes, target_session_attrs=read-write
#   ro = the two standbys, target_session_attrs=standby, round-robin,
#        max_replica_lag=2s
#
#  - rw through a standby's pgbun reaches the primary (inet_server_port,
#    pg_is_in_recovery), and writes there;
#  - ro spreads over both standbys;
#  - a standby whose replay is paused (pg_wal_replay_pause) while the primary
#    writes leaves the ro rotation, and comes back when replay resumes;
#  - a standby stopped: ro keeps answering from the other;
#  - every ro host down: 08006 "pgbun: no server available" at once (far
#    below query_wait_timeout), and the backoff shows in pgbun.hosts;
#  - the primary stopped and a standby promoted: writes through every
#    surviving node's pgbun land on the new primary;
#  - a bad entry is refused at reload with the entry and the reason, and the
#    old entries stay in force.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgbunTest;

my $boot = bootstrap_user();

my $primary = PostgreSQL::Test::Cluster->new('primary');
my $s1 = PostgreSQL::Test::Cluster->new('standby1');
my $s2 = PostgreSQL::Test::Cluster->new('standby2');
my %pgbun_port = map { $_->name => PostgreSQL::Test::Cluster::get_free_port() } ($primary, $s1, $s2);
my ($pp, $p1, $p2) = ($primary->port, $s1->port, $s2->port);

my $databases =
	"rw = host=127.0.0.1,127.0.0.1,127.0.0.1 port=$pp,$p1,$p2 dbname=postgres target_session_attrs=read-write; "
  . "ro = host=127.0.0.1,127.0.0.1 port=$p1,$p2 dbname=postgres target_session_attrs=standby "
  . "load_balance_hosts=round-robin max_replica_lag=2s; "
  . "ro_lc = host=127.0.0.1,127.0.0.1 port=$p1,$p2 dbname=postgres target_session_attrs=read-only load_balance_hosts=least-conn; "
  . "ro_rnd = host=127.0.0.1,127.0.0.1 port=$p1,$p2 dbname=postgres target_session_attrs=standby load_balance_hosts=random; "
  . "pref = host=127.0.0.1,127.0.0.1 port=$pp,$p1 dbname=postgres target_session_attrs=prefer-standby; "
  . "prim = host=127.0.0.1,127.0.0.1 port=$p1,$pp dbname=postgres target_session_attrs=primary; "
  . "first = host=127.0.0.1,127.0.0.1 port=$p1,$pp dbname=postgres load_balance_hosts=disable";

sub pgbun_conf
{
	my ($node) = @_;
	my $conf = "\n# pgbun test settings\n";
	$conf .= "dynamic_library_path = '$ENV{PGBUN_LIBDIR}:\$libdir'\n" if $ENV{PGBUN_LIBDIR};
	$conf .= "shared_preload_libraries = 'pgbun'\n";
	$conf .= "pgbun.port = $pgbun_port{$node->name}\n";
	$conf .= "pgbun.listen_addresses = '127.0.0.1'\n";
	$conf .= "max_connections = 60\n";
	$conf .= "listen_addresses = '127.0.0.1'\n";
	$conf .= "pgbun.server_check_delay = '500ms'\n";
	$conf .= "pgbun.server_login_retry = '300ms'\n";
	$conf .= "pgbun.server_login_retry_max = '3s'\n";
	$conf .= "pgbun.query_wait_timeout = '60s'\n";
	$conf .= "pgbun.server_tls_sslmode = 'disable'\n";
	$conf .= "pgbun.databases = '$databases'\n";
	return $conf;
}

sub write_hba
{
	my ($node) = @_;
	open my $fh, '>', $node->data_dir . '/pg_hba.conf' or die "cannot write pg_hba.conf: $!";
	print $fh "local all $boot trust\n";
	print $fh "local replication all trust\n";
	print $fh "local all all md5\n";
	print $fh "host all $boot 127.0.0.1/32 trust\n";
	print $fh "host replication all 127.0.0.1/32 trust\n";
	print $fh "host all all 127.0.0.1/32 md5\n";
	close $fh;
}

$primary->init(allows_streaming => 1);
write_hba($primary);
$primary->append_conf('postgresql.conf', pgbun_conf($primary));
$primary->start;
$primary->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE app LOGIN PASSWORD 'app-secret';
	CREATE TABLE t (id serial, port int);
	GRANT ALL ON t TO app;
	GRANT USAGE ON SEQUENCE t_id_seq TO app;
	CREATE EXTENSION pgbun;
});
$primary->backup('bk');
foreach my $s ($s1, $s2)
{
	$s->init_from_backup($primary, 'bk', has_streaming => 1);
	# later lines win: the standby's own pgbun port
	$s->append_conf('postgresql.conf', "pgbun.port = $pgbun_port{$s->name}\n");
	$s->start;
}
$primary->wait_for_catchup($_) foreach ($s1, $s2);
foreach my $n ($primary, $s1, $s2)
{
	ok(PgbunTest::wait_for_listen($pgbun_port{ $n->name }), $n->name . "'s pgbun listens");
}

my %login = (user => 'app', password => 'app-secret');

# psql through one node's pgbun, as app
sub via
{
	my ($node, $db, $sql) = @_;
	local $node->{_pgbun_port} = $pgbun_port{ $node->name };
	return pgbun_psql($node, $sql, %login, dbname => $db, timeout => 60);
}

# try until the statement works (hang guard only)
sub via_ok
{
	my ($node, $db, $sql, $secs) = @_;
	my ($rc, $out, $err);
	wait_until(sub { ($rc, $out, $err) = via($node, $db, $sql); $rc == 0 }, $secs // 60, 0.2);
	return ($rc, $out, $err);
}

sub hosts_view
{
	my ($node, $where) = @_;
	return $node->safe_psql('postgres',
		"SELECT host_index, port, role, state, failures, next_retry IS NOT NULL, coalesce(lag_ms, -1) FROM pgbun.hosts WHERE $where ORDER BY 1");
}

############ rw goes to the primary, from every node's pgbun

foreach my $n ($s1, $s2, $primary)
{
	my ($rc, $out, $err) = via_ok($n, 'rw', 'SELECT inet_server_port(), pg_is_in_recovery()');
	is($rc, 0, 'rw through ' . $n->name . "'s pgbun works") or diag($err);
	is($out, "$pp|f", 'rw through ' . $n->name . "'s pgbun is on the primary");
}
my ($rc, $out, $err) = via($s1, 'rw', 'INSERT INTO t (port) SELECT inet_server_port() RETURNING port');
is($out, $pp, 'a write through a standby\'s pgbun lands on the primary') or diag($err);

like(hosts_view($s1, "database = 'rw'"), qr/^0\|$pp\|primary\|up\|0\|f/m, 'pgbun.hosts on standby1: the primary is up and primary');

############ ro spreads over both standbys

sub ro_ports
{
	my ($node, $n, $db) = @_;
	local $node->{_pgbun_port} = $pgbun_port{ $node->name };
	my @sessions = map { pgbun_session($node, %login, dbname => $db // 'ro') } 1 .. $n;
	my %ports;
	foreach my $sess (@sessions)
	{
		my $p = $sess->query('SELECT inet_server_port()');
		$ports{ $p // 'error' }++;
	}
	$_->quit foreach @sessions;
	return \%ports;
}

my $ports = ro_ports($primary, 4);
is_deeply([ sort keys %$ports ], [ sort ($p1, $p2) ], 'ro (round-robin) uses both standbys')
  or diag(explain($ports));
is($ports->{$p1}, 2, 'two sessions on each standby') or diag(explain($ports));

############ other load_balance_hosts and target_session_attrs

# least-conn: the host with the fewest server connections (over every
# entry and worker); ro left two on each standby
$ports = ro_ports($primary, 4, 'ro_lc');
is_deeply($ports, { $p1 => 2, $p2 => 2 }, 'least-conn (read-only) evens out the standbys') or diag(explain($ports));
$ports = ro_ports($primary, 12, 'ro_rnd');
is_deeply([ sort keys %$ports ], [ sort ($p1, $p2) ], 'random uses both standbys') or diag(explain($ports));
$ports = ro_ports($primary, 3, 'pref');
is_deeply($ports, { $p1 => 3 }, 'prefer-standby takes the standby although the primary is listed first') or diag(explain($ports));
$ports = ro_ports($primary, 3, 'prim');
is_deeply($ports, { $pp => 3 }, 'primary skips the standby listed first') or diag(explain($ports));
$ports = ro_ports($primary, 3, 'first');
is_deeply($ports, { $p1 => 3 }, 'any with load_balance_hosts=disable: always the first host') or diag(explain($ports));

############ a lagging standby leaves the rotation

$s2->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
# the primary goes on writing: standby2 receives WAL it does not replay
my $lagging = wait_until(
	sub {
		$primary->safe_psql('postgres', 'INSERT INTO t (port) VALUES (0)');
		my $v = hosts_view($primary, "database = 'ro' AND port = $p2");
		my @f = split /\|/, $v;
		return @f >= 7 && $f[6] > 2000;
	},
	60, 0.3);
ok($lagging, 'pgbun.hosts shows standby2 lagging by more than max_replica_lag')
  or diag(hosts_view($primary, "database = 'ro'"));
# more sessions than idle servers: new ones are opened too
$ports = ro_ports($primary, 8);
is_deeply([ keys %$ports ], [$p1], 'with standby2 over max_replica_lag, ro uses standby1 only')
  or diag(explain($ports));

$s2->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
my $back = wait_until(
	sub {
		my $v = hosts_view($primary, "database = 'ro' AND port = $p2");
		my @f = split /\|/, $v;
		return @f >= 7 && $f[6] >= 0 && $f[6] <= 2000;
	},
	60, 0.3);
ok($back, 'standby2 caught up (pgbun.hosts)');
# more sessions than standby1's idle servers (8): some go to standby2 again
$ports = ro_ports($primary, 12);
ok(exists $ports->{$p2}, 'caught up, standby2 is back in the ro rotation') or diag(explain($ports));

############ a standby stopped: ro keeps answering

$s2->stop('fast');
# more sessions than standby1 has idle servers: some new server is tried on standby2
$ports = ro_ports($primary, 16);
is_deeply([ keys %$ports ], [$p1], 'standby2 down: every ro session is on standby1') or diag(explain($ports));
my $errors = 0;
my %seen;
for my $i (1 .. 6)
{
	my ($r, $o, $e) = via($primary, 'ro', 'SELECT inet_server_port()');
	if ($r == 0) { $seen{$o}++ } else { $errors++ }
}
ok($errors <= 1, "standby2 down: at most the in-flight error ($errors errors)");
is_deeply([ keys %seen ], [$p1], 'standby2 down: ro answers from standby1');
like(hosts_view($primary, "database = 'ro' AND port = $p2"), qr/^1\|$p2\|standby\|(down|checking)\|[1-9]/,
	'pgbun.hosts: standby2 is down with failures counted');

############ every ro host down: 08006 at once, backoff visible

$s1->stop('fast');
{
	local $primary->{_pgbun_port} = $pgbun_port{ $primary->name };
	my $raw = raw_connect($primary);
	my $t0 = time;
	my $r = $raw->login(user => 'app', password => 'app-secret', database => 'ro');
	my $e = $r->{error} // {};
	if ($r->{ok})
	{
		# logged in on the pool's welcome: the query is what finds no server
		$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
		$e = first_error(read_until($raw, 'Z', 30));
	}
	my $elapsed = time - $t0;
	is($e->{C}, '08006', 'all ro hosts down: 08006') or diag(explain($r));
	like($e->{M} // '', qr/^pgbun: no server available for database "ro": all hosts are down/, 'the message says why');
	ok($elapsed < 15, sprintf('at once (%.1f s), not after query_wait_timeout (60 s)', $elapsed));
	$raw->close;
}
my $v = hosts_view($primary, "database = 'ro'");
my @rows = map { [ split /\|/ ] } split /\n/, $v;
is(scalar(grep { $_->[3] ne 'up' && $_->[4] >= 1 && $_->[5] eq 't' } @rows), 2,
	'pgbun.hosts: both standbys down, with failures and a next retry') or diag($v);
# the backoff grows: failures keep counting while the hosts stay down
my $grew = wait_until(
	sub {
		via($primary, 'ro', 'SELECT 1');
		my $x = hosts_view($primary, "database = 'ro' AND port = $p1");
		my @f = split /\|/, $x;
		return @f >= 5 && $f[4] >= 3;
	},
	30, 0.3);
ok($grew, 'retries back off and count failures (pgbun.hosts)');
my $times = $primary->safe_psql('postgres',
	"SELECT extract(epoch FROM next_retry - last_check) FROM pgbun.hosts WHERE database = 'ro' AND port = $p1");
ok($times > 0.2 && $times <= 3.01, "the wait after a failure is within server_login_retry_max ($times s)");

$s1->start;
$s2->start;
($rc, $out, $err) = via_ok($primary, 'ro', 'SELECT pg_is_in_recovery()', 60);
is($out, 't', 'standbys back: ro works again');

############ failover: primary stopped, standby1 promoted

# a transaction in flight on the primary when it goes
my $inflight = do
{
	local $s2->{_pgbun_port} = $pgbun_port{ $s2->name };
	raw_connect($s2);
};
my $lr = $inflight->login(user => 'app', password => 'app-secret', database => 'rw');
ok($lr->{ok}, 'a client of rw on standby2\'s pgbun') or diag(explain($lr));
$inflight->send_bytes(PgbunTest::Raw::query_message('BEGIN; INSERT INTO t (port) VALUES (-1)'));
is(msg_types(read_until($inflight, 'Z')) =~ /Z$/ ? 1 : 0, 1, 'its transaction is open on the primary');

$primary->stop('fast');
$inflight->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
my $ie = first_error(read_until($inflight, 'Z', 30));
like($ie->{C} // '', qr/^(08006|57P01)$/, "the in-flight transaction gets an error ($ie->{C}: " . ($ie->{M} // '') . ')');
$inflight->close;
$s1->promote;
# standby2 now follows standby1
$s2->enable_streaming($s1);
$s2->restart;
foreach my $n ($s1, $s2)
{
	my $t0 = time;
	($rc, $out, $err) = via_ok($n, 'rw', 'INSERT INTO t (port) SELECT inet_server_port() RETURNING port', 60);
	my $took = time - $t0;
	is($out, $p1, 'after failover a write through ' . $n->name . "'s pgbun lands on the new primary")
	  or diag($err);
	ok($took < 30, sprintf('within the bound (%.1f s)', $took));
}
like(hosts_view($s1, "database = 'rw'"), qr/^1\|$p1\|primary\|up/m, 'pgbun.hosts on standby1: it is the primary now');

############ a bad entry is refused at reload; the old ones stay

$s1->append_conf('postgresql.conf', "pgbun.databases = 'rw = host=127.0.0.1 target_session_attrs=sometimes'\n");
$s1->reload;
ok(wait_until(sub { slurp_file($s1->logfile) =~ /invalid target_session_attrs "sometimes" for "rw"/ }, 30),
	'the refusal names the entry and the reason');
is($s1->safe_psql('postgres', 'SHOW pgbun.databases'), $databases, 'the old pgbun.databases stays in force');
($rc, $out, $err) = via($s1, 'rw', 'SELECT inet_server_port()');
is($out, $p1, 'rw still routes as before');

$s1->stop('fast');
$s2->stop('fast');
done_testing();

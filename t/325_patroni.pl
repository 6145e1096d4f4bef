# 325_patroni: pgbun under a real failover manager. test/ha (a copy of the
# project's ha-example) starts one etcd and three Patroni nodes on 127.0.0.1,
# each PostgreSQL with pgbun preloaded. Every node's pgbun gets the same
# entry: rw = all three nodes, target_session_attrs=read-write. A client
# writes through a replica's pgbun throughout; the leader's postmaster is
# killed, Patroni promotes a replica, and the client sees errors only during
# the failover window, then its writes land on the new leader, through every
# surviving node's pgbun.
#
# Needs patroni and etcd-server (test/lib.sh); skipped without them.
use strict;
use warnings FATAL => 'all';

use File::Temp ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $ha = "$FindBin::RealBin/../test/ha";
foreach my $tool (qw(patroni patronictl etcd))
{
	plan skip_all => "$tool is not installed (apt-get install patroni etcd-server)"
	  unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

# the PostgreSQL this suite runs against, with pgbun installed in its libdir
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $dir = File::Temp::tempdir('pgbun-ha-XXXX', TMPDIR => 1, CLEANUP => 0);
my $started = 0;
END
{
	system("$ha/stop.sh", $dir) if $started;
}

{
	local $ENV{SHARED_PRELOAD_LIBRARIES} = 'pgbun';
	local $ENV{PG_BIN} = $bindir;
	my $rc = system("$ha/start.sh $dir > $PostgreSQL::Test::Utils::log_path/325_patroni_start.log 2>&1");
	$started = 1;
	if ($rc != 0)
	{
		diag(slurp_file("$PostgreSQL::Test::Utils::log_path/325_patroni_start.log"));
		BAIL_OUT('the Patroni cluster did not start');
	}
}
my %env;
foreach my $line (split /\n/, slurp_file("$dir/cluster.env"))
{
	while ($line =~ /(\w+)='?([^' ]*)'?/g) { $env{$1} = $2; }
}
my @pg = map { $env{"PG_PORT_$_"} } 1 .. 3;
my $superpw = $env{SUPERUSER_PASSWORD};
ok(scalar(grep { defined } @pg) == 3, 'three nodes: ' . join(', ', @pg));

# psql straight to a node's PostgreSQL, or through its pgbun
sub psql_to
{
	my ($port, $sql, $db) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGPASSWORD} = $superpw;
	local $ENV{PGCONNECT_TIMEOUT} = 10;
	my @cmd = ("$bindir/psql", '-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1',
		'-h', '127.0.0.1', '-p', $port, '-U', 'postgres', '-d', $db // 'postgres', '-f', '-');
	my $in = "$sql;\n";
	my $ok = IPC::Run::run(\@cmd, '<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(30));
	chomp $out;
	chomp $err;
	return ($ok ? 0 : 1, $out, $err);
}

sub leader
{
	foreach my $i (0 .. 2)
	{
		my ($rc, $out) = psql_to($pg[$i], 'SELECT pg_is_in_recovery()');
		return $i if $rc == 0 && $out eq 'f';
	}
	return -1;
}

# each node's pgbun on a port of its own; the same rw entry everywhere
my @bun = map { PostgreSQL::Test::Cluster::get_free_port() } 1 .. 3;
my $rw = "rw = host=127.0.0.1,127.0.0.1,127.0.0.1 port=$pg[0],$pg[1],$pg[2] dbname=postgres target_session_attrs=read-write";
foreach my $i (0 .. 2)
{
	my ($rc, $out, $err) = psql_to($pg[$i], join(";\n",
		"ALTER SYSTEM SET pgbun.port = $bun[$i]",
		"ALTER SYSTEM SET pgbun.listen_addresses = '127.0.0.1'",
		"ALTER SYSTEM SET pgbun.databases = '$rw'",
		"ALTER SYSTEM SET pgbun.server_check_delay = '1s'",
		"ALTER SYSTEM SET pgbun.server_login_retry = '300ms'",
		"ALTER SYSTEM SET pgbun.server_login_retry_max = '2s'",
		"ALTER SYSTEM SET pgbun.server_tls_sslmode = 'disable'",
		'SELECT pg_reload_conf()'));
	is($rc, 0, "node" . ($i + 1) . ": pgbun settings") or BAIL_OUT("cannot configure pgbun: $err");
}
foreach my $i (0 .. 2)
{
	ok(PgbunTest::wait_for_listen($bun[$i]), 'node' . ($i + 1) . "'s pgbun listens on $bun[$i]");
}

my $old = leader();
ok($old >= 0, 'a leader: node' . ($old + 1));
my ($rc, $out, $err) = psql_to($pg[$old], 'CREATE TABLE IF NOT EXISTS w (id serial, port int, at timestamptz DEFAULT clock_timestamp())');
is($rc, 0, 'a table on the leader') or diag($err);
my $via = ($old + 1) % 3;	# a replica's pgbun
my $write = 'INSERT INTO w (port) SELECT inet_server_port() RETURNING port';
foreach my $i (0 .. 2)
{
	my $ok = wait_until(sub { ($rc, $out, $err) = psql_to($bun[$i], $write, 'rw'); $rc == 0 }, 30, 0.2);
	is($out, $pg[$old], 'a write through node' . ($i + 1) . "'s pgbun lands on the leader") or diag($err);
}

# writes every 50 ms through the replica's pgbun; kill the leader's postmaster
my @log;	# [time, ok, port or error]
my $pidfile = "$dir/node" . ($old + 1) . '/data/postmaster.pid';
my ($postmaster) = split /\n/, slurp_file($pidfile);
for (1 .. 10)
{
	($rc, $out, $err) = psql_to($bun[$via], $write, 'rw');
	push @log, [ time, $rc == 0, $rc == 0 ? $out : $err ];
	usleep(50_000);
}
my $t_kill = time;
kill 'KILL', $postmaster;
my $deadline = time + 90;
my $new_seen;
my $after_ok = 0;
while (time < $deadline)
{
	($rc, $out, $err) = psql_to($bun[$via], $write, 'rw');
	push @log, [ time, $rc == 0, $rc == 0 ? $out : $err ];
	if ($rc == 0 && $out ne $pg[$old])
	{
		$new_seen //= time;
		last if ++$after_ok >= 20;
	}
	usleep(50_000);
}
ok(defined $new_seen, 'writes through the replica\'s pgbun reach a new leader')
  or diag(join("\n", map { sprintf('%.2f %s %s', $_->[0] - $t_kill, $_->[1] ? 'ok' : 'ERR', $_->[2]) } @log));
my $new = leader();
ok($new >= 0 && $new != $old, 'Patroni promoted node' . ($new + 1));
is($out, $pg[$new], 'the writes land on the new leader');

# errors only in the window: none before the kill, none after the first write on the new leader
my @before = grep { $_->[0] < $t_kill && !$_->[1] } @log;
my @late = grep { defined $new_seen && $_->[0] > $new_seen && !$_->[1] } @log;
my @window = grep { $_->[0] >= $t_kill && (!defined $new_seen || $_->[0] <= $new_seen) && !$_->[1] } @log;
is(scalar @before, 0, 'no error before the leader died');
is(scalar @late, 0, 'no error after the first write on the new leader') or diag(explain(\@late));
diag(sprintf('failover window seen by the client: %.2f s, %d failed writes (%s)',
	($new_seen // time) - $t_kill, scalar @window, join(' | ', map { (split /\n/, $_->[2])[0] } @window[0 .. ($#window < 2 ? $#window : 2)])));
ok(!grep({ $_->[2] !~ /pgbun:|server|connection|terminat|recovery|read-only|shut/i } @window),
	'the window\'s errors are connection errors');

# every surviving node's pgbun routes to the new leader
foreach my $i (grep { $_ != $old } 0 .. 2)
{
	my $ok = wait_until(sub { ($rc, $out, $err) = psql_to($bun[$i], $write, 'rw'); $rc == 0 && $out eq $pg[$new] }, 30, 0.2);
	ok($ok, 'a write through node' . ($i + 1) . "'s pgbun lands on the new leader") or diag("$out $err");
}

done_testing();

# 319_failover_fast: a read-write entry follows a promotion within about
# server_login_retry, not server_check_delay. A primary and two streaming
# standbys; pgbun runs in a third cluster (the router), so it outlives the
# primary, with the default server_check_delay (30 s) and
# server_login_retry = 1s:
#
#   rw = primary, standby1, standby2, target_session_attrs=read-write
#   ro = standby1 only, target_session_attrs=standby, transaction pooling
#        (its idle server on standby1 is what a probe can use)
#
#  - the primary stopped, no standby promoted: writes get 08006 "pgbun: no
#    server available ... no host is a read-write primary" (not a hang), and
#    the standbys are asked for their role at most once per
#    server_login_retry (pgbun's log, and the logins standby2 logs);
#  - standby1 promoted: the first write through pgbun lands on it well
#    before server_check_delay; pgbun learnt it from a check on ro's idle
#    connection (an idle session on a standby reports in_hot_standby = off
#    only when it next runs something); pgbun.hosts shows it as the primary;
#    ro (standby only) drops it: its idle servers there are closed and its
#    clients get 08006 "no host is a standby";
#  - standby2 (now following standby1) promoted after standby1 is stopped:
#    pgbun has no connection open to it and learns it from a new login.
#
# A second router runs two workers with the rw entry only: the rate limit of
# the probes is per host over all workers, and it follows the promotion too.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgbunTest;

my $boot = bootstrap_user();

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

my $primary = PostgreSQL::Test::Cluster->new('primary');
my $s1 = PostgreSQL::Test::Cluster->new('standby1');
my $s2 = PostgreSQL::Test::Cluster->new('standby2');

$primary->init(allows_streaming => 1);
write_hba($primary);
# standby2 logs its logins: pgbun's role probes by login are counted there
$primary->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\nlog_connections = on\n");
$primary->start;
$primary->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE app LOGIN PASSWORD 'app-secret';
	CREATE TABLE t (id serial, port int);
	GRANT ALL ON t TO app;
	GRANT USAGE ON SEQUENCE t_id_seq TO app;
});
$primary->backup('bk');
foreach my $s ($s1, $s2)
{
	$s->init_from_backup($primary, 'bk', has_streaming => 1);
	$s->start;
}
$primary->wait_for_catchup($_) foreach ($s1, $s2);
my ($pp, $p1, $p2) = ($primary->port, $s1->port, $s2->port);

my $databases =
	"rw = host=127.0.0.1,127.0.0.1,127.0.0.1 port=$pp,$p1,$p2 dbname=postgres user=app password=app-secret "
  . "target_session_attrs=read-write pool_mode=transaction; "
  . "ro = host=127.0.0.1 port=$p1 dbname=postgres user=app password=app-secret "
  . "target_session_attrs=standby pool_mode=transaction";
my $router = pgbun_node(
	name => 'router',
	conf => {
		'pgbun.databases' => $databases,
		'pgbun.server_login_retry' => '1s',
		'pgbun.server_login_retry_max' => '2s',
		'pgbun.query_wait_timeout' => '60s',
		'pgbun.server_tls_sslmode' => 'disable',
		# server_check_delay stays at its default, 30 s
	});
my $router2 = pgbun_node(
	name => 'router2',
	conf => {
		'pgbun.databases' => (split /; /, $databases)[0],
		'pgbun.workers' => '2',
		'pgbun.server_login_retry' => '1s',
		'pgbun.server_login_retry_max' => '2s',
		'pgbun.query_wait_timeout' => '60s',
		'pgbun.server_tls_sslmode' => 'disable',
	});
foreach my $n ($router, $router2)
{
	$n->safe_psql('postgres', "SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-secret'");
}
is($router->safe_psql('postgres', 'SHOW pgbun.server_check_delay'), '30s', 'server_check_delay is the default, 30 s');

# one write (or read) through the router's pgbun on a fresh client connection:
# { ok, port, error => {C, M}, secs }
sub attempt
{
	my ($db, $sql, $node) = @_;
	my $t0 = time;
	my $raw = raw_connect($node // $router);
	my $r = $raw->login(user => 'app', password => 'app-secret', database => $db, secs => 60);
	my %res;
	if (!$r->{ok})
	{
		%res = (ok => 0, error => $r->{error} // { M => 'login: ' . ($r->{eof} ? 'eof' : 'timeout') });
	}
	else
	{
		my $q = $raw->query($sql, 60);
		%res = (ok => ($q->{ok} && !$q->{error}) ? 1 : 0, error => $q->{error} // {},
			port => $q->{rows}[0][0]);
		if (!$res{ok} && !$q->{error})
		{
			$res{error} = { M => $q->{eof} ? 'eof' : 'timeout' };
		}
	}
	eval { $raw->close };
	$res{secs} = time - $t0;
	return \%res;
}
my $write = 'INSERT INTO t (port) SELECT inet_server_port() RETURNING port';

sub hosts_view
{
	return $router->safe_psql('postgres',
		"SELECT port, role, state FROM pgbun.hosts WHERE database = '$_[0]' ORDER BY host_index");
}

sub log_since
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $offset);
}

my $r = attempt('rw', $write);
is($r->{port}, $pp, 'rw writes on the primary') or diag(explain($r));
# a few clients of router2, so that both its workers know the hosts
for (1 .. 6)
{
	$r = attempt('rw', $write, $router2);
	is($r->{port}, $pp, 'router2: rw writes on the primary') or diag(explain($r));
}
# ro: a read on standby1, whose server then stays idle in ro's pool
$r = attempt('ro', 'SELECT inet_server_port()');
is($r->{port}, $p1, 'ro reads on standby1') or diag(explain($r));
like(hosts_view('rw'), qr/^$pp\|primary\|up$/m, 'pgbun.hosts: the primary');

############ the primary stops, nobody is promoted: errors, not a hang; probes rate-limited

my $off = -s $router->logfile;
my $off2 = -s $router2->logfile;
my $s2off = -s $s2->logfile;
$primary->stop('fast');
my $t_stop = time;
my ($bad, $slow, $n) = (0, 0, 0);
my %errs;
while (time - $t_stop < 5)
{
	foreach my $node ($router, $router2)
	{
		my $a = attempt('rw', $write, $node);
		$n++;
		if ($a->{ok})
		{
			$bad++;
			diag(explain($a));
			next;
		}
		$slow++ if $a->{secs} > 15;
		$errs{ ($a->{error}{C} // '?') . ' ' . ($a->{error}{M} // '?') }++;
	}
	usleep(50_000);
}
my $window = time - $t_stop;
is($bad, 0, "no write succeeds while no host is a primary ($n attempts through both routers)");
is($slow, 0, 'every failing write is answered well before query_wait_timeout (60 s): no hang');
ok(exists $errs{'08006 pgbun: no server available for database "rw": no host is a read-write primary'},
	'the writes get 08006 "no host is a read-write primary"') or diag(explain(\%errs));
my @other = grep { !/^08006 pgbun: (no server available for database "rw": no host is a read-write primary|server connection lost)/ } keys %errs;
is_deeply(\@other, [], 'no other error') or diag(explain(\%errs));

my $plog = log_since($router, $off);
my @probe1 = $plog =~ /asking host 127\.0\.0\.1 port $p1, last seen as a standby, for its role again \(([^)]*)\)/g;
my @probe2 = $plog =~ /asking host 127\.0\.0\.1 port $p2, last seen as a standby, for its role again \(([^)]*)\)/g;
# server_login_retry = 1s with 75-100 % jitter: at most one probe per 0.75 s per host
my $max = int($window / 0.75) + 2;
ok(@probe1 >= 2 && @probe1 <= $max, sprintf('standby1 is probed again and again, but at most once per server_login_retry (%d probes in %.1f s)', scalar @probe1, $window));
ok(@probe2 >= 2 && @probe2 <= $max, sprintf('so is standby2 (%d probes in %.1f s)', scalar @probe2, $window));
is_deeply([ sort keys %{ { map { $_ => 1 } @probe1 } } ], ['a check on an idle connection'],
	'standby1 is asked on ro\'s idle connection (no new login)');
is_deeply([ sort keys %{ { map { $_ => 1 } @probe2 } } ], ['a new connection'],
	'standby2, with no connection open, is asked with a new login');
# router2's two workers share each host's limit: not twice as many probes
my $plog2 = log_since($router2, $off2);
my @probe21 = $plog2 =~ /asking host 127\.0\.0\.1 port $p1, last seen as a standby, for its role again \(a new connection\)/g;
my @probe22 = $plog2 =~ /asking host 127\.0\.0\.1 port $p2, last seen as a standby, for its role again \(a new connection\)/g;
ok(@probe21 >= 2 && @probe21 <= $max && @probe22 >= 2 && @probe22 <= $max,
	sprintf('router2 (two workers) probes each standby at most once per server_login_retry too (%d and %d)',
		scalar @probe21, scalar @probe22));
my %probe_pids = map { $_ => 1 } $plog2 =~ /\[(\d+)\] LOG:  pgbun: asking host/g;
is(scalar(keys %probe_pids), 2, 'both of router2\'s workers made some of those probes (the limit is shared, not per worker)');
# standby2's own log: one login per probe of either router, no more
my @logins2 = log_since($s2, $s2off) =~ /connection authorized: user=app database=postgres/g;
ok(@logins2 >= 2 && @logins2 <= 2 * $max, sprintf('standby2 saw a login per probe, no more (%d logins for %d attempts)', scalar @logins2, $n));

############ standby1 promoted: rw follows it without waiting for server_check_delay

$off = -s $router->logfile;
$s1->promote;
my $t_prom = time;
my ($first, $tries) = (undef, 0);
while (time - $t_prom < 60)
{
	my $a = attempt('rw', $write);
	$tries++;
	if ($a->{ok})
	{
		$first = $a;
		last;
	}
	usleep(50_000);
}
my $took = time - $t_prom;
ok($first, "a write succeeds after the promotion ($tries attempts)");
is($first && $first->{port}, $p1, 'it lands on the promoted standby1');
ok($took < 10, sprintf('%.1f s after the promotion: well before server_check_delay (30 s)', $took));
{
	my $ok2 = wait_until(sub { my $a = attempt('rw', $write, $router2); $a->{ok} && $a->{port} == $p1 }, 60, 0.05);
	my $took2 = time - $t_prom;
	ok($ok2, 'router2 (two workers) writes on standby1 too');
	ok($took2 < 10, sprintf('%.1f s after the promotion', $took2));
}
$plog = log_since($router, $off);
like($plog, qr/asking host 127\.0\.0\.1 port $p1, last seen as a standby, for its role again \(a check on an idle connection\).*host 127\.0\.0\.1 port $p1 is now a primary/s,
	'pgbun learnt it from the check on an idle connection (the empty query brings in_hot_standby = off)');
like(hosts_view('rw'), qr/^$p1\|primary\|up$/m, 'pgbun.hosts: standby1 is the primary for rw');
like(hosts_view('ro'), qr/^$p1\|primary\|up$/m, '... and for ro: one role per host');

# ro wants a standby: its idle server on the new primary goes, its clients get 08006
ok(wait_until(sub {
	$router->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE target = 'ro'") eq '0' }, 30),
	'ro\'s idle server on the promoted host is closed');
$r = attempt('ro', 'SELECT inet_server_port()');
is($r->{error}{C}, '08006', 'ro: 08006 once its only host is a primary') or diag(explain($r));
like($r->{error}{M} // '', qr/^pgbun: no server available for database "ro": no host is a standby/, 'the message says why');
ok($r->{secs} < 15, sprintf('at once (%.1f s)', $r->{secs}));

############ standby2 follows standby1, then is promoted in its turn: learnt from a login

$s2->enable_streaming($s1);
$s2->restart;
$s1->wait_for_catchup($s2);
$r = attempt('rw', $write);
is($r->{port}, $p1, 'writes go on to standby1') or diag(explain($r));
$off = -s $router->logfile;
$s1->stop('fast');
$s2->promote;
$t_prom = time;
($first, $tries) = (undef, 0);
while (time - $t_prom < 60)
{
	my $a = attempt('rw', $write);
	$tries++;
	if ($a->{ok})
	{
		$first = $a;
		last;
	}
	usleep(50_000);
}
$took = time - $t_prom;
is($first && $first->{port}, $p2, "the next write lands on the promoted standby2 ($tries attempts)");
ok($took < 10, sprintf('%.1f s after the promotion: well before server_check_delay (30 s)', $took));
$plog = log_since($router, $off);
like($plog, qr/asking host 127\.0\.0\.1 port $p2, last seen as a standby, for its role again \(a new connection\).*host 127\.0\.0\.1 port $p2 is now a primary/s,
	'pgbun learnt it from a new login (no connection was open to it)');
like(hosts_view('rw'), qr/^$p2\|primary\|up$/m, 'pgbun.hosts: standby2 is the primary');
is($s2->safe_psql('postgres', 'SELECT count(*) FROM t WHERE port = ' . $p2), '1', 'the write is on standby2');

$s2->stop('fast');
stop_node($router);
stop_node($router2);
done_testing();

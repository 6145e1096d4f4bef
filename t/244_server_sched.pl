# 244_server_sched: pgbun.server_sched_batch. The local backends behind
# pgbun's server connections run as SCHED_BATCH (so that a woken backend
# does not preempt the pooler), a backend reached directly keeps the
# normal policy, a reload turns the policy of open server connections
# over both ways (the LISTEN/NOTIFY listener connection and an auth_query
# connection too, which are on no pool list), a server connection still
# logging in (no backend pid yet) is skipped by a reload rather than
# taken for the worker itself (pid 0), and a backend of another cluster
# (reached through a pgbun.databases entry) is never touched.
use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

plan skip_all => 'Linux only (/proc/<pid>/stat)' unless -r "/proc/$$/stat";

# field 41 of /proc/<pid>/stat: 0 SCHED_OTHER, 3 SCHED_BATCH
sub policy_of
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return 'gone';
	my $line = <$fh>;
	close $fh;
	$line =~ s/^.*\)\s+//;		# the command name may hold spaces
	my @f = split /\s+/, $line;
	return $f[38];				# fields from 3 on
}

my $other = PostgreSQL::Test::Cluster->new('sched_other');
$other->init;
$other->start;

# a port that takes connections (the kernel's backlog) and never answers:
# a server login to it stays in progress
my $stall = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, Proto => 'tcp')
  or die "cannot listen: $!";
my $stall_port = $stall->sockport;

my $databases = 'elsewhere = host=' . $other->host . ' port=' . $other->port
  . ' dbname=postgres user=' . PgbunTest::bootstrap_user()
  . '; txdb = dbname=postgres pool_mode=transaction';
my $node = pgbun_node(
	name => 'sched',
	conf => {
		'pgbun.pool_mode' => 'session',
		'pgbun.default_pool_size' => '1',
		'log_statement' => 'all',	# reload_sync's probe
		'pgbun.databases' => $databases,
		'pgbun.server_connect_timeout' => '120s',	# the stalled login below outlasts the reloads
	});
$node->safe_psql('postgres', q{CREATE ROLE app LOGIN PASSWORD 'app-pw'; CREATE ROLE sched_auth LOGIN SUPERUSER PASSWORD 'auth-pw'});
my %login = (user => 'app', password => 'app-pw');
my $authfile = $node->data_dir . '/userlist.txt';
open my $afh, '>', $authfile or die $!;
print $afh qq{"sched_auth" "auth-pw"\n};
close $afh;
# this very cluster as an auth_query target (over its socket), and the silent port
reload_sync($node, \%login, 'pgbun.auth_file' => $authfile,
	'pgbun.databases' => "$databases; aqdb = host=@{[ $node->host ]} port=@{[ $node->port ]} dbname=postgres auth_user=sched_auth"
	  . "; aqstall = host=127.0.0.1 port=$stall_port dbname=postgres auth_user=sched_auth");

sub pooled_pid
{
	my ($db) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT pg_backend_pid()', %login,
		dbname => $db // 'postgres', timeout => 60);
	is($rc, 0, 'pg_backend_pid() through pgbun' . ($db ? " ($db)" : '')) or diag($err);
	chomp $out;
	return $out;
}

my $pid = pooled_pid();
like($pid, qr/^\d+$/, 'a pooled backend pid');
is(policy_of($pid), 3, 'the pooled local backend runs as SCHED_BATCH');

my $direct_session = direct_session($node);
my $dpid = $direct_session->query('SELECT pg_backend_pid()');
is(policy_of($dpid), 0, 'a backend reached directly keeps SCHED_OTHER');

# a LISTEN in transaction mode: pgbun's listener connection holds it
my $listening = pgbun_session($node, %login, dbname => 'txdb');
$listening->query('LISTEN sched_ch');
my $listener_sql = "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbun listener'";
ok((poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener'", '1'))[0],
	'a listener connection for the LISTEN');
my $lpid = $node->safe_psql('postgres', $listener_sql);
is(policy_of($lpid), 3, 'the listener backend runs as SCHED_BATCH');

# an auth_query look-up on this very cluster: pgbun's auth connection to it
my ($arc, $aout, $aerr) = pgbun_psql($node, 'SELECT current_user', %login, dbname => 'aqdb', timeout => 60);
is($aout, 'app', 'a login to aqdb, checked by auth_query on this cluster') or diag($aerr);
my $auth_sql = "SELECT pid FROM pg_stat_activity WHERE usename = 'sched_auth'";
my $apid = $node->safe_psql('postgres', $auth_sql);
like($apid, qr/^\d+$/, 'one auth connection backend');
is(policy_of($apid), 3, 'the auth connection backend runs as SCHED_BATCH');

# a login whose auth connection gets no answer: still logging in across the reloads
my $stalled = raw_connect($node);
$stalled->send_bytes(PgbunTest::Raw::startup_packet([ user => 'app', database => 'aqstall' ]));
ok((poll_sql($node, "SELECT count(*) FROM pgbun.servers WHERE database = 'aqstall'", '1'))[0],
	'an auth connection to the silent port, logging in');
my $wpid = worker_pid($node);
is(policy_of($wpid), 0, 'the pgbun worker itself runs as SCHED_OTHER');

reload_sync($node, \%login, 'pgbun.server_sched_batch' => 'off');
is(pooled_pid(), $pid, 'pool of 1: the same server connection after the reload');
is(policy_of($pid), 0, 'a reload to off puts the open backend back to SCHED_OTHER');
is($node->safe_psql('postgres', $listener_sql), $lpid, 'the same listener connection');
is(policy_of($lpid), 0, '... and the listener backend follows the reload to off');
is($node->safe_psql('postgres', $auth_sql), $apid, 'the same auth connection');
is(policy_of($apid), 0, '... and the auth connection backend follows the reload to off');

reload_sync($node, \%login, 'pgbun.server_sched_batch' => 'on');
is(pooled_pid(), $pid, 'still the same server connection');
is(policy_of($pid), 3, 'a reload to on makes the open backend SCHED_BATCH again');
is(policy_of($lpid), 3, '... and the listener backend too');
is(policy_of($apid), 3, '... and the auth connection backend too');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE database = 'aqstall'"), '1',
	'the auth connection to the silent port is still logging in');
is(policy_of($wpid), 0, 'the reloads left the worker itself alone (no backend pid yet is no pid 0)');
$stalled->close;
$listening->quit;

my $epid = pooled_pid('elsewhere');
my $is_other = $other->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $epid");
is($is_other, '1', 'the elsewhere entry reaches a backend of the other cluster');
is(policy_of($epid), 0, "another cluster's backend is left as it is");

$direct_session->quit;
stop_node($node);
$other->stop;
done_testing();

# 244_server_sched: pgbun.server_sched_batch. The local backends behind
# pgbun's server connections run as SCHED_BATCH (so that a woken backend
# does not preempt the pooler), a backend reached directly keeps the
# normal policy, a reload turns the policy of open server connections
# over both ways (the LISTEN/NOTIFY listener connection too, which is on
# no pool list), and a backend of another cluster (reached through a
# pgbun.databases entry) is never touched.
use strict;
use warnings FATAL => 'all';

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

my $node = pgbun_node(
	name => 'sched',
	conf => {
		'pgbun.pool_mode' => 'session',
		'pgbun.default_pool_size' => '1',
		'log_statement' => 'all',	# reload_sync's probe
		'pgbun.databases' => 'elsewhere = host=' . $other->host . ' port=' . $other->port
		  . ' dbname=postgres user=' . PgbunTest::bootstrap_user()
		  . '; txdb = dbname=postgres pool_mode=transaction',
	});
$node->safe_psql('postgres', q{CREATE ROLE app LOGIN PASSWORD 'app-pw'});
my %login = (user => 'app', password => 'app-pw');

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

reload_sync($node, \%login, 'pgbun.server_sched_batch' => 'off');
is(pooled_pid(), $pid, 'pool of 1: the same server connection after the reload');
is(policy_of($pid), 0, 'a reload to off puts the open backend back to SCHED_OTHER');
is($node->safe_psql('postgres', $listener_sql), $lpid, 'the same listener connection');
is(policy_of($lpid), 0, '... and the listener backend follows the reload to off');

reload_sync($node, \%login, 'pgbun.server_sched_batch' => 'on');
is(pooled_pid(), $pid, 'still the same server connection');
is(policy_of($pid), 3, 'a reload to on makes the open backend SCHED_BATCH again');
is(policy_of($lpid), 3, '... and the listener backend too');
$listening->quit;

my $epid = pooled_pid('elsewhere');
my $is_other = $other->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $epid");
is($is_other, '1', 'the elsewhere entry reaches a backend of the other cluster');
is(policy_of($epid), 0, "another cluster's backend is left as it is");

$direct_session->quit;
stop_node($node);
$other->stop;
done_testing();

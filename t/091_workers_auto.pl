# 091_workers_auto: pgbun.workers = -1 starts one worker per CPU the
# postmaster may run on, at most 4, and SHOW pgbun.workers says how many run.
#
#  - left unset: one worker (the default);
#  - -1 in postgresql.conf: as many workers as the CPUs of the server's
#    affinity mask (nproc), capped at 4;
#  - -1 on a server started on one CPU (taskset): one worker;
#  - an explicit number is kept as it is.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $cpus = `nproc`;
chomp $cpus;
like($cpus, qr/^\d+$/, "nproc says this process may run on $cpus CPUs");
my $expect = $cpus > 4 ? 4 : $cpus;

# worker count as SHOW tells it and as processes
sub workers_of
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SHOW pgbun.workers') . ' '
	  . $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgbun worker'");
}

# pgbun.workers left as given: not the suite-wide PGBUN_TEST_WORKERS
sub auto_node
{
	my (%opts) = @_;
	return pgbun_node(%opts, conf => { 'pgbun.workers' => undef, %{ $opts{conf} // {} } });
}

my $unset = auto_node(name => 'unset');
ok(wait_until(sub { workers_of($unset) eq '1 1' }, hang_guard(), 0.2),
	'pgbun.workers unset: one worker, and SHOW says 1')
  or diag(workers_of($unset));
is($unset->safe_psql('postgres',
		"SELECT source FROM pg_settings WHERE name = 'pgbun.workers'"),
	'default', 'pgbun.workers unset: pg_settings names its source default');
stop_node($unset);

my $auto = auto_node(name => 'minus1', conf => { 'pgbun.workers' => '-1' });
ok(wait_until(sub { workers_of($auto) eq "$expect $expect" }, hang_guard(), 0.2),
	"pgbun.workers = -1: $expect workers, and SHOW says $expect")
  or diag(workers_of($auto));
$auto->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my ($rc, $out) = pgbun_psql($auto, 'SELECT 40 + 2', user => 'alice', password => 'alice-pw');
is($out, '42', 'pgbun.workers = -1: a client is served through the pooler');
stop_node($auto);

# -1 on one CPU: the postmaster inherits this process's affinity mask.
SKIP:
{
	skip 'taskset (util-linux) is not installed', 1 unless system('taskset -V >/dev/null 2>&1') == 0;
	my $mask = `taskset -p $$`;
	($mask) = $mask =~ /:\s*([0-9a-f]+)\s*$/;
	# the lowest CPU of the mask (CPU 0 may be outside a cpuset); the last
	# 8 hex digits are CPUs 0-31, enough for hex() on any machine
	my $low = hex(substr($mask, -8));
	skip 'no CPU among 0-31 in this affinity mask', 1 unless $low;
	my $one_cpu = sprintf('%x', $low & -$low);
	system("taskset -p $one_cpu $$ >/dev/null") == 0 or die 'taskset failed';
	my $one = auto_node(name => 'onecpu', conf => { 'pgbun.workers' => '-1' });
	system("taskset -p $mask $$ >/dev/null") == 0 or die 'taskset restore failed';
	ok(wait_until(sub { workers_of($one) eq '1 1' }, hang_guard(), 0.2),
		'pgbun.workers = -1 on a server started on one CPU: one worker')
	  or diag(workers_of($one));
	stop_node($one);
}

my $fixed = auto_node(name => 'fixed', conf => { 'pgbun.workers' => '3' });
ok(wait_until(sub { workers_of($fixed) eq '3 3' }, hang_guard(), 0.2),
	'pgbun.workers = 3: three workers, whatever the CPUs')
  or diag(workers_of($fixed));
stop_node($fixed);

done_testing();

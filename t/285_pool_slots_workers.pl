# 285_pool_slots_workers: with two workers a pool's shared slot is freed
# only when neither uses it.
#
# Each worker has its own pool object for a (database, user); the shared slot
# (server count for the limits, cumulative stats) belongs to both. When one
# worker's pool has been empty for pgbun.pool_idle_timeout it lets go of
# the slot, but the slot, and its counters, stay while the other worker still
# has clients there; once both are empty the slot is freed.

use strict;
use warnings FATAL => 'all';

use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'slotworkers',
	conf => {
		'pgbun.workers' => '2',
		'pgbun.pool_idle_timeout' => '1s',
		'pgbun.server_idle_timeout' => '300ms',
		'pgbun.pool_mode' => 'transaction',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');
my $identity = server_identity($node);

# Clients until both workers have some, each with a query.
my %by_worker;
for my $i (1 .. 40)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	ok($r->{ok}, "client $i logs in") or last;
	is($raw->query('SELECT 1')->{rows}[0][0] // '', '1', "client $i runs a query");
	my $port = $raw->{sock}->sockport;
	my $w = $node->safe_psql('postgres', "SELECT worker FROM pgbun.clients WHERE port = $port");
	push @{ $by_worker{$w} }, $raw;
	last if keys %by_worker == 2 && $i >= 6;
}
is(scalar(keys %by_worker), 2, 'clients on both workers');
my ($w0, $w1) = sort keys %by_worker;

sub pool_rows
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'");
}

sub queries
{
	return $node->safe_psql('postgres', "SELECT total_query_count FROM pgbun.stats WHERE database = 'postgres'");
}

my $before = queries();
ok($before > 0, "the pool's counters count the queries ($before)");

# worker $w0's clients leave; its pool empties and is freed after 1 s
my $log_at = -s $node->logfile;
$_->terminate for @{ $by_worker{$w0} };
ok( wait_until(
		sub {
			my $log = slurp_file($node->logfile, $log_at);
			return $log =~ m{pgbun: worker $w0: pool postgres/alice freed};
		}),
	"worker $w0 frees its empty pool");
is(pool_rows(), '1', 'the other worker still has clients: the pool slot stays');
ok(queries() >= $before, 'and so do its counters');
my $still = $by_worker{$w1}[0];
is($still->query('SELECT 6 * 7')->{rows}[0][0] // '', '42', 'the other worker\'s clients go on');

# a new client, on whichever worker, gets the same pool back
{
	my $raw = raw_connect($node);
	ok($raw->login(%alice)->{ok}, 'a new client logs in');
	is($raw->query('SELECT 2')->{rows}[0][0] // '', '2', 'and runs a query');
	$raw->terminate;
}
is(pool_rows(), '1', 'still one pool row');

# everybody leaves: both workers let go, the slot is freed
$_->terminate for @{ $by_worker{$w1} };
my ($gone, $last) = poll_sql($node,
	"SELECT count(*) FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'", '0', 60);
ok($gone, 'once neither worker uses it, the pool slot is freed') or diag("last: $last");

{
	my $raw = raw_connect($node);
	ok($raw->login(%alice)->{ok}, 'the pair logs in again afterwards');
	is($raw->query('SELECT 3')->{rows}[0][0] // '', '3', 'and works');
	$raw->terminate;
}

check_server_same($node, $identity, 'end of 285');
stop_node($node);
done_testing();

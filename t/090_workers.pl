# 090_workers: pgbun.workers = 2 - two pooler workers sharing one port
# (SO_REUSEPORT), one set of limits and one set of stats in shared memory.
#
#  - both workers serve clients; pgbun.pools shows one row per pool, summed;
#  - max_client_conn counts clients of both workers;
#  - default_pool_size is one limit for the pool across workers, and clients
#    waiting on one worker are not starved while the other holds the pool's
#    servers idle;
#  - a CancelRequest works whichever worker it lands on;
#  - pause/resume covers both workers.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'workers',
	conf => {
		'pgbun.workers' => '2',
		'pgbun.max_client_conn' => '30',
		'pgbun.default_pool_size' => '3',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);
my @wpids = split /\n/, worker_pid($node);
is(scalar @wpids, 2, 'two pgbun workers are running');

############ clients spread over both workers; max_client_conn is shared

my @raws;
for my $i (1 .. 30)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	if (!$r->{ok})
	{
		fail("client $i of 30 logs in");
		diag(explain($r));
		last;
	}
	push @raws, $raw;
}
is(scalar @raws, 30, '30 clients (max_client_conn) log in');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'alice'"),
	'30', 'pgbun.clients lists all 30, from both workers');
is($node->safe_psql('postgres', "SELECT count(DISTINCT worker) FROM pgbun.clients"),
	'2', 'the kernel spread the clients over both workers');
is($node->safe_psql('postgres',
		"SELECT count(*) || ':' || sum(cl_active) FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'"),
	'1:30', 'pgbun.pools has one row for the pool, counting clients of both workers');

my @refusals;
for my $i (1 .. 4)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	push @refusals, $r->{error}{C} // ($r->{ok} ? 'logged in' : 'closed');
	$raw->close;
}
is_deeply(\@refusals, [ ('53300') x 4 ],
	'the 31st client is refused with 53300 whichever worker takes it');

# Each worker counts into its own stats (counters.h); the views sum them.
# The 30 clients sit on both workers: each in turn runs two queries (one a
# two-statement transaction) and leaves, freeing its session server.
my $stats_sql = "SELECT total_xact_count || ':' || total_query_count FROM pgbun.stats WHERE database = 'postgres'";
my ($xacts0, $queries0) = split /:/, ($node->safe_psql('postgres', $stats_sql) || '0:0');
my $answered = 0;
foreach my $raw (@raws)
{
	my $r1 = $raw->query('SELECT 1');
	my $r2 = $raw->query('BEGIN; SELECT 2; COMMIT');
	$answered++ if $r1->{ok} && $r2->{ok} && !$r1->{error} && !$r2->{error};
	$raw->terminate;
}
is($answered, 30, 'each of the 30 clients on both workers ran its queries');
my ($xacts1, $queries1) = split /:/, $node->safe_psql('postgres', $stats_sql);
is($xacts1 - $xacts0, 60, 'pgbun.stats counts every transaction of both workers (2 per client)');
is($queries1 - $queries0, 60, 'pgbun.stats counts every query of both workers (2 per client)');
my ($matched, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.clients', '0');
ok($matched, 'all clients gone') or diag("last: $last");

############ one pool limit across workers, no starvation

# Wait until every session has printed "$tag <its index>", quitting each
# one as soon as it has (session mode: that frees its server for the next).
# Returns (all served, most alice backends seen on the server meanwhile).
sub serve_all
{
	my ($sessions, $tag) = @_;
	my %served;
	my $max_backends = 0;
	my $ok = wait_until(
		sub {
			my $n = $node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'");
			$max_backends = $n if $n > $max_backends;
			foreach my $i (0 .. $#$sessions)
			{
				next if $served{$i};
				if ($sessions->[$i]->wait_output(qr/$tag $i\b/, secs => 0))
				{
					$served{$i} = 1;
					$sessions->[$i]->quit;
				}
			}
			return keys(%served) == @$sessions;
		},
		60,
		0.05);
	diag("served: " . join(',', sort { $a <=> $b } keys %served) . "; pools: "
		  . $node->safe_psql('postgres', 'SELECT * FROM pgbun.pools') . "\nservers:\n"
		  . $node->safe_psql('postgres', 'SELECT worker, state, remote_pid FROM pgbun.servers'))
	  unless $ok;
	$_->kill foreach @$sessions;
	return ($ok, $max_backends);
}

my @sessions = map { pgbun_session($node, %alice, wait => 0) } 1 .. 8;
$sessions[$_]->send("SELECT 'served $_';") foreach 0 .. $#sessions;
my ($ok, $max_backends) = serve_all(\@sessions, 'served');
ok($ok, '8 session clients on a pool of 3 spread over two workers are all served in turn');
cmp_ok($max_backends, '<=', 3, "the server never saw more than 3 alice backends ($max_backends)");


############ cancel, whichever worker receives the CancelRequest

my $cancelled = 0;
my %client_workers;
for my $round (1 .. 8)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	next unless $r->{ok};
	my $myport = $raw->{sock}->sockport;
	$client_workers{ $node->safe_psql('postgres', "SELECT worker FROM pgbun.clients WHERE port = $myport") } = 1;
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(600)'));
	poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND state = 'active' AND query = 'SELECT pg_sleep(600)'",
		'1');
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($r->{pid}, $r->{key}));
	my $res = $raw->read_result(hang_guard());
	$cancelled++ if ($res->{error}{C} // '') eq '57014';
	$c->close;
	$raw->terminate;
}
is($cancelled, 8, 'all 8 CancelRequests (landing on either worker) cancel their query');
note('clients of these rounds were on workers ' . join(',', sort keys %client_workers));

############ pause and resume cover both workers

my $ctl = direct_session($node);
my ($pout, $perr) = $ctl->query('SELECT pgbun.pause()', hang_guard());
is($perr, '', 'pause with two workers returns');
my @late = map { pgbun_session($node, %alice, wait => 0) } 1 .. 12;
$late[$_]->send("SELECT 'late $_';") foreach 0 .. $#late;
($matched, $last) = poll_sql($node,
	"SELECT sum(cl_waiting) FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'", '12');
ok($matched, 'while paused, 12 new clients wait') or diag("last: $last");
is($node->safe_psql('postgres',
		"SELECT count(DISTINCT worker) FROM pgbun.clients WHERE state IN ('waiting', 'waiting_login')"),
	'2', 'waiting clients are on both workers');
($pout, $perr) = $ctl->query('SELECT pgbun.resume()', hang_guard());
is($perr, '', 'resume');
($ok, $max_backends) = serve_all(\@late, 'late');
ok($ok, 'after resume every waiting client on both workers is served');
cmp_ok($max_backends, '<=', 3, "still at most 3 alice backends ($max_backends)");
$ctl->quit;

is(worker_pid($node), join("\n", @wpids), 'the same two workers are still running');
check_server_same($node, $identity, 'end of 090');
stop_node($node);
done_testing();

# 092_welcome_workers: with two workers, a worker's first client of a pool
# is welcomed with the parameters another worker's server login reported.
#
# Each worker has its own pool object for a (database, user). A client's
# login ends with the ParameterStatus a server login of the pool reported
# (its welcome); a worker that never logged in a server of the pool used to
# make the client wait at login for a server of its own. With the pool's only
# server held by a session on the other worker, that login waited for the
# holder to leave and then failed at query_wait_timeout. Now the welcome is
# shared: the client is in at once, with the parameters the holder was shown,
# and only its query waits, as on a single worker. A welcome changed by
# ALTER ROLE ... SET on one worker's new server login reaches the other's
# clients too.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'welcome',
	conf => {
		'pgbun.workers' => '2',
		'pgbun.pool_mode' => 'session',
		'pgbun.default_pool_size' => '1',
		'pgbun.query_wait_timeout' => '60s',
		'pgbun.pool_idle_timeout' => '1s',
		'pgbun.server_idle_timeout' => '300ms',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
$node->safe_psql('postgres', "CREATE ROLE bob LOGIN PASSWORD 'bob-pw'");
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');
my $identity = server_identity($node);

sub worker_of
{
	my ($raw) = @_;
	my $port = $raw->{sock}->sockport;
	return $node->safe_psql('postgres', "SELECT worker FROM pgbun.clients WHERE port = $port");
}

# The holder: the pool's only server, in session mode, for as long as it stays.
my $holder = raw_connect($node);
my $hl = $holder->login(%alice);
ok($hl->{ok}, 'the holder logs in');
is($holder->query('SELECT 1')->{rows}[0][0] // '', '1', 'the holder has the server');
my $hw = worker_of($holder);

# Clients until one is on the other worker. Every login must end at once
# (5 s here; the holder keeps the server for the whole loop).
my ($other, $ol);
my $all_in = 1;
for my $i (1 .. 40)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice, secs => 5);
	if (!$r->{ok})
	{
		$all_in = 0;
		diag("client $i: " . explain($r));
		last;
	}
	if (worker_of($raw) ne $hw)
	{
		($other, $ol) = ($raw, $r);
		last;
	}
	$raw->terminate;
}
ok($all_in, 'every login ends at once while the only server is held');
ok($other, "a client on the worker that holds no server (the holder is on worker $hw)")
  or BAIL_OUT('no client reached the other worker');
is_deeply($ol->{params}, $hl->{params}, 'it is shown the parameters the holder was shown');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.servers WHERE database = 'postgres' AND \"user\" = 'alice'"),
	'1', 'no server login for it: the pool still has its one server');

# Its query waits for the server, which it gets once the holder leaves.
$other->send_bytes(PgbunTest::Raw::query_message('SELECT 2'));
my ($waits, $seen) = poll_sql($node,
	"SELECT sum(cl_waiting) FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'", '1');
ok($waits, 'its query waits for the server') or diag("cl_waiting: $seen");
$holder->terminate;
my $r = $other->read_result;
is($r->{rows}[0][0] // '', '2', 'and is answered once the holder leaves');
$other->terminate;

# ALTER ROLE ... SET reaches the clients of both workers as soon as either
# one's new server login reports it, although each had a welcome of its own.
# An idle client on each worker keeps both pools (and their old welcomes)
# through this part: a pool made afresh would take the shared one anyway.
my %keeper;
for my $i (1 .. 40)
{
	my $raw = raw_connect($node);
	last unless $raw->login(%alice, secs => 5)->{ok};
	my $w = worker_of($raw);
	if ($keeper{$w}) { $raw->terminate; }
	else { $keeper{$w} = $raw; }
	last if keys %keeper == 2;
}
is(scalar(keys %keeper), 2, 'an idle client on each worker keeps its pool');
$node->safe_psql('postgres', "ALTER ROLE alice SET application_name = 'fromrole'");
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(remote_pid) FROM pgbun.servers WHERE \"user\" = 'alice'");
my ($ended, $left) = poll_sql($node, "SELECT count(*) FROM pgbun.servers WHERE \"user\" = 'alice'", '0');
ok($ended, "the pool's servers are gone") or diag("servers: $left");
my $first = raw_connect($node);
ok($first->login(%alice)->{ok}, 'a client logs in');
is($first->query('SELECT 3')->{rows}[0][0] // '', '3', 'and its query makes a new server login');
my $fw = worker_of($first);
my ($seen_other, $shown) = (0, 1);
for my $i (1 .. 40)
{
	my $raw = raw_connect($node);
	my $l = $raw->login(%alice, secs => 5);
	$shown = 0 unless ($l->{params}{application_name} // '') eq 'fromrole';
	$seen_other = 1 if $l->{ok} && worker_of($raw) ne $fw;
	$raw->terminate;
	last if $seen_other || !$shown;
}
ok($seen_other, "a client reached the worker that made no new login (worker $fw made it)");
ok($shown, "every client, on either worker, is shown the role's new application_name");
$first->terminate;
$_->terminate for values %keeper;
$node->safe_psql('postgres', 'ALTER ROLE alice RESET application_name');

# A freed pool slot forgets its welcome: once alice's pool is gone from both
# workers, bob's pool takes the first free slot (alice's). Were alice's
# parameters kept there, bob would be welcomed as alice.
my ($gone, $last) = poll_sql($node, "SELECT count(*) FROM pgbun.pools", '0', 60);
ok($gone, "alice's pool is freed on both workers") or diag("pools: $last");
my $bob = raw_connect($node);
my $bl = $bob->login(user => 'bob', password => 'bob-pw', database => 'postgres');
ok($bl->{ok}, 'bob logs in');
is($bl->{params}{session_authorization} // '', 'bob', 'bob is welcomed as bob');
is($bob->query('SELECT current_user')->{rows}[0][0] // '', 'bob', 'and his server runs as bob');
$bob->terminate;

check_server_same($node, $identity, 'end of 092');
stop_node($node);
done_testing();

# 180_release_safety: a server goes back to the pool only when it is at rest,
# and no client input can crash, hang or pin the worker.
#
#  - transaction mode: a Query followed by half a CopyData (outside COPY)
#    whose rest arrives after the ReadyForQuery: the server is not released
#    under the half message (that crashed the worker), the rest is dropped,
#    the client and the pool go on;
#  - psql \copy with a bad first row and many more rows behind it;
#  - a lone Flush (also one that waits for pgbun's SET of the client's
#    parameters) and stray CopyData/CopyDone/CopyFail never pin the one
#    server of the pool;
#  - a ReadyForQuery whose forwarding to the client blocks, with the client
#    sending its next query meanwhile: the server is not released with that
#    query in flight;
#  - session mode: a client leaving in the middle of a message does not
#    leave a server waiting for the rest (the reset query would be
#    swallowed and the server stuck forever);
#  - a reset query that never answers does not hold the pool's server
#    forever (closed after server_connect_timeout);
#  - thousands of waiting clients that each close as soon as they get the
#    server: no recursion per waiter (that overflowed the worker's stack).
#
# Every pool here has one server, so a pinned or lost server shows up as
# the next client's hang (a hang guard, never a timing assertion). After
# each case the worker pid and the postmaster start time are unchanged.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(usleep);
use PgbunTest;

my $WAITERS = 2500;
# this process holds a socket per waiter
my $hard_nofile = `sh -c 'ulimit -Hn'`;
chomp $hard_nofile;
system('prlimit', '--pid', $$, "--nofile=$hard_nofile:$hard_nofile") == 0
  or die "prlimit failed";
my $node = pgbun_node(
	name => 'release',
	conf => {
		'pgbun.auth_type' => 'trust',
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.max_client_conn' => $WAITERS + 100,
		'pgbun.databases' => 'sessdb = pool_mode=session',
		# sessdb's reset query never answers; the janitor gives up on it
		'pgbun.server_reset_query' => 'SELECT pg_sleep(600)',
		'pgbun.server_connect_timeout' => '2s',
		# named prepared statements are refused in transaction mode
		'pgbun.max_prepared_statements' => '0',
		'max_connections' => '40',
	});
$node->safe_psql('postgres', 'CREATE DATABASE txdb; CREATE DATABASE sessdb; CREATE DATABASE npdb;');
$node->safe_psql('txdb', 'CREATE TABLE copy_t (i int)');
my $identity = server_identity($node);
my $user = bootstrap_user();

sub login
{
	my ($db, $label) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, database => $db);
	ok($r->{ok}, "$label: logs in") or diag(explain($r));
	return $raw;
}

# One query on a raw client: the first column of the first row, or a note.
sub scalar_query
{
	my ($raw, $sql) = @_;
	my $r = $raw->query($sql);
	return $r->{error} ? "error: $r->{error}{M}" : !$r->{ok} ? 'no answer' : $r->{rows}[0][0];
}

# The pool of $db still has its server for somebody else.
sub pool_serves
{
	my ($db, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $other = login($db, "$label: another client");
	is(scalar_query($other, "SELECT 'served'"), 'served', "$label: the pool's server serves another client");
	$other->terminate;
	check_server_same($node, $identity, $label);
	return;
}

############ half a CopyData across a ReadyForQuery (transaction mode)

my $raw = login('txdb', 'half CopyData');
my $announced = 1_000_000;
$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1') . 'd' . pack('N', 4 + $announced) . ('x' x 100));
my $r = $raw->read_result;
is($r->{rows}[0][0], '1', 'half CopyData: the query before it is answered') or diag(explain($r));
# the rest of the message arrives after the ReadyForQuery
$raw->send_bytes('y' x 5000);
usleep(100_000);
$raw->send_bytes('z' x ($announced - 5100));
is(scalar_query($raw, 'SELECT 2'), '2', 'half CopyData: the client goes on after the message is through');
$raw->terminate;
pool_serves('txdb', 'half CopyData');

# ... and a client that leaves in the middle of it
$raw = login('txdb', 'half CopyData then gone');
$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1') . 'd' . pack('N', 4 + $announced) . ('x' x 100));
$r = $raw->read_result;
is($r->{rows}[0][0], '1', 'half CopyData then gone: answered');
$raw->send_bytes('y' x 5000);
$raw->close;
pool_serves('txdb', 'half CopyData then gone');

############ psql \copy with a bad first row

my $rows = join('', map { "$_\n" } 1 .. 200_000);
my ($rc, $out, $err) = pgbun_psql($node, "\\copy copy_t from stdin\nnot-a-number\n$rows\\.\nSELECT 'after';\n",
	dbname => 'txdb', on_error_stop => 0);
like($err, qr/invalid input syntax for type integer/, '\copy with a bad first row: the server\'s error');
like($out, qr/after/, '\copy with a bad first row: psql goes on');
pool_serves('txdb', '\copy with a bad first row');

############ a lone Flush, stray copy messages

foreach my $case (
	[ 'lone Flush', flush_msg() ],
	[ 'lone Flush with a parameter to SET first', flush_msg(), [ application_name => 'flusher' ] ],
	[ 'stray CopyData', PgbunTest::Raw::message('d', 'abc') ],
	[ 'stray CopyDone', PgbunTest::Raw::message('c') ],
	[ 'stray CopyFail', PgbunTest::Raw::message('f', "oops\0") ])
{
	my ($label, $bytes, $params) = @$case;
	$raw = raw_connect($node);
	ok($raw->login(user => $user, database => 'txdb', params => $params)->{ok}, "$label: logs in");
	$raw->send_bytes($bytes);
	# the holder stays connected and quiet: the server must not stay with it
	pool_serves('txdb', $label);
	is(scalar_query($raw, 'SELECT 3'), '3', "$label: the client itself goes on");
	$raw->terminate;
}

############ release while the ReadyForQuery is still on its way to the client

# A small receive buffer (set before connecting) makes the pooler's write to
# the client block; over a range of result sizes the ReadyForQuery may land
# in the blocked write. The client sends its next query without reading:
# it must be answered on its own connection. (Coverage: whether the race is
# hit depends on the kernel's buffer sizes.)
my $lost = 0;
for (my $size = 4000; $size <= 150_000 && !$lost; $size += 3000)
{
	my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
	setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 2048) or die "setsockopt: $!";
	connect($sock, pack_sockaddr_in(pgbun_port($node), inet_aton('127.0.0.1')))
	  or die "connect: $!";
	binmode $sock;
	$raw = bless { sock => $sock, buf => '', eof => 0 }, 'PgbunTest::Raw';
	$r = $raw->login(user => $user, database => 'txdb');
	$raw->send_bytes(PgbunTest::Raw::query_message("SELECT repeat('x', $size)"));
	usleep(20_000);
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 42'));
	my $first = $raw->read_result;
	my $second = $raw->read_result;
	if (!$first->{ok} || length($first->{rows}[0][0] // '') != $size || ($second->{rows}[0][0] // '') ne '42')
	{
		$lost = 1;
		diag("result size $size: " . explain({ first_ok => $first->{ok}, second => $second }));
	}
	$raw->terminate;
}
ok(!$lost, 'blocked ReadyForQuery: every next query is answered on its own connection');
pool_serves('txdb', 'blocked ReadyForQuery');

############ session mode: a client leaves in the middle of a message

# After the Query's ReadyForQuery nothing is in flight, but the server (or
# pgbun) is still inside the CopyData: a reset query sent now would be
# swallowed by it and the server would never answer.
$raw = login('sessdb', 'half message');
$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1') . 'd' . pack('N', 4 + $announced) . ('x' x 100));
$r = $raw->read_result;
is($r->{rows}[0][0], '1', 'half message: the query before it is answered');
$raw->close;
pool_serves('sessdb', 'half message (session mode)');

# The client pool_serves used has left: its server runs the reset query,
# which never answers. The next client still gets a server.
$raw = login('sessdb', 'reset never answers');
is(scalar_query($raw, "SELECT 'after the reset'"), 'after the reset',
	'reset never answers: the stuck server is closed and the next client served');
$raw->close;

############ thousands of waiters closing as soon as they get the server

# Named prepared statements are refused (max_prepared_statements = 0), so
# each waiter is closed (0A000) by its first message, the instant it
# gets the server, which then goes to the next waiter.
my $holder = login('npdb', 'holder');
is(scalar_query($holder, 'BEGIN'), undef, 'holder: in a transaction on the only server');
my @waiters;
for my $i (1 .. $WAITERS)
{
	my $w = raw_connect($node);
	last unless $w->login(user => $user, database => 'npdb')->{ok};
	$w->send_bytes(parse_msg('s1', 'SELECT 1') . sync_msg());
	push @waiters, $w;
}
is(scalar @waiters, $WAITERS, "$WAITERS clients wait for the server");
# everyone is queued once the pool shows them waiting
my ($all_waiting, $seen) =
  poll_sql($node, "SELECT sum(cl_waiting) FROM pgbun.pools WHERE database = 'npdb'", $WAITERS);
ok($all_waiting, 'all of them are waiting') or diag("cl_waiting: $seen");
is(scalar_query($holder, 'COMMIT'), undef, 'holder: COMMIT hands the server on');
my $refused = 0;
foreach my $w (@waiters)
{
	my $res = $w->read_to_eof(hang_guard());
	$refused++ if grep { ($_->{C} // '') eq '0A000' } @{ $res->{errors} };
	$w->close;
}
is($refused, $WAITERS, 'every waiter got its 0A000 and was closed');
check_server_same($node, $identity, 'thousands of waiters');
is(scalar_query($holder, 'SELECT 5'), '5', 'the holder goes on');
$holder->terminate;

stop_node($node);
done_testing();

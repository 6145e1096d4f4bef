# 186_client_hangup: clients that leave while they wait for a server.
#
# pgbun reads nothing more of a client waiting for a server, but it watches
# for its hang-up. What the client sent in full before it left is still run
# once a server is free, as PostgreSQL runs a request whose sender has gone
# (a simple Query commits; an extended-protocol request commits at its Sync,
# and without one is rolled back when the connection ends). A client that
# left with nothing complete is closed at once and gives up its place in the
# queue; so is one that cancelled its request before it left (PostgreSQL
# would have stopped it). Each client leaves once pgbun shows it waiting
# (the hang-up is an event of its own) or right after it sent (the hang-up
# comes with the bytes that make it wait, in one TCP segment). Each request
# is sent to the server directly as well, into a table of its own, and both
# tables must end up the same.

use strict;
use warnings FATAL => 'all';

use Socket qw(IPPROTO_TCP TCP_CORK);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'hangup',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.query_wait_timeout' => '120s',
		'log_min_messages' => 'debug1',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
$node->safe_psql('postgres',
	"CREATE TABLE t_direct (v text); CREATE TABLE t_pgbun (v text); GRANT ALL ON t_direct, t_pgbun TO alice");
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');
my $identity = server_identity($node);

sub connect_to
{
	my ($direct) = @_;
	my $raw = $direct
	  ? PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port)
	  : raw_connect($node);
	my $r = $raw->login(%alice);
	ok($r->{ok}, ($direct ? 'direct' : 'pgbun') . ': logs in') or diag(explain($r));
	return wantarray ? ($raw, $r) : $raw;
}

sub insert_sql { return "INSERT INTO $_[0] VALUES ('$_[1]')"; }

# What each client sends before it closes its socket, for table $t; $v names the row.
my %requests = (
	query_terminate => sub {
		PgbunTest::Raw::query_message(insert_sql($_[0], $_[1])) . PgbunTest::Raw::message('X');
	},
	query_only => sub { PgbunTest::Raw::query_message(insert_sql($_[0], $_[1])) },
	extended_sync => sub {
		parse_msg('', insert_sql($_[0], $_[1])) . bind_msg('', '') . execute_msg('') . sync_msg();
	},
	extended_no_sync => sub {
		parse_msg('', insert_sql($_[0], $_[1])) . bind_msg('', '') . execute_msg('');
	},
	# a Query whose header promises more than comes: nothing to run
	partial => sub {
		my $q = PgbunTest::Raw::query_message(insert_sql($_[0], $_[1]));
		substr($q, 0, length($q) - 3);
	},
);
my @names = sort keys %requests;
my @whens = ('at_once', 'later');

############ directly: the server's answer to each

for my $when (@whens)
{
	for my $name (@names)
	{
		my $raw = connect_to(1);
		$raw->send_bytes($requests{$name}->('t_direct', "$name/$when"));
		$raw->close;
	}
}
# every backend of those clients has ended (and committed or rolled back)
ok( wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND backend_type = 'client backend'"
			) eq '0';
		}),
	'direct: every backend ended');

############ through pgbun, while the only server is held

my $holder = connect_to(0);
is($holder->query('BEGIN')->{ok}, 1, 'holder: a transaction on the only server');
sub waiting { return $node->safe_psql('postgres', "SELECT sum(cl_waiting) FROM pgbun.pools WHERE \"user\" = 'alice'"); }
my $n_waiting = 0;
for my $when (@whens)
{
	for my $name (@names)
	{
		my $raw = connect_to(0);
		# at once: TCP_CORK holds the bytes until the shutdown, so they and
		# the FIN go in one segment and pgbun reads them in one wake-up
		setsockopt($raw->{sock}, IPPROTO_TCP, TCP_CORK, 1) or die "TCP_CORK: $!" if $when eq 'at_once';
		$raw->send_bytes($requests{$name}->('t_pgbun', "$name/$when"));
		if ($when eq 'later')
		{
			ok(wait_until(sub { waiting() == $n_waiting + 1 }), "$name/$when: waits for the server");
		}
		shutdown($raw->{sock}, 1);
		$raw->close;
		$n_waiting++ unless $name eq 'partial';
	}
}
# the partial ones are closed at once; those with a complete request wait on
ok( wait_until(
		sub {
			log_count($node, qr/client disconnected while waiting/) >= 2;
		}),
	'both clients that left nothing complete are closed while they wait');
my ($waiting, $seen) = poll_sql($node, "SELECT sum(cl_waiting) FROM pgbun.pools WHERE \"user\" = 'alice'",
	$n_waiting);
ok($waiting, "the $n_waiting that sent a complete request keep their place") or diag("cl_waiting: $seen");
is(log_count($node, qr/client disconnected while waiting/), 2, 'only those two were closed');

is($holder->query('COMMIT')->{ok}, 1, 'holder: COMMIT frees the server');
($waiting, $seen) = poll_sql($node, "SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'alice'", '1');
ok($waiting, 'the waiting clients were served and are gone') or diag("clients: $seen");

my $direct_rows = $node->safe_psql('postgres', 'SELECT string_agg(v, \',\' ORDER BY v) FROM t_direct');
my $pgbun_rows = $node->safe_psql('postgres', 'SELECT string_agg(v, \',\' ORDER BY v) FROM t_pgbun');
is($pgbun_rows, $direct_rows, 'through pgbun the same requests ran as directly');
is($direct_rows,
	'extended_sync/at_once,extended_sync/later,query_only/at_once,query_only/later,query_terminate/at_once,query_terminate/later',
	'the complete, committed ones');

is($holder->query('SELECT 7')->{rows}[0][0] // '', '7', 'the holder goes on');
my $next = connect_to(0);
is($next->query('SELECT count(*) FROM t_pgbun')->{rows}[0][0] // '', '6', 'a new client is served');
$next->terminate;
$holder->terminate;

############ a request cancelled while it waits, then its client leaves

# Directly the cancel stops the request while it runs (a pg_sleep ahead of
# the INSERT in one Query: its implicit transaction is rolled back).
# Through pgbun the cancel finds it queued, so nothing can be cancelled on
# a server; the client leaves, and the request is dropped, not run later.
my $cancel_sql = "SELECT pg_sleep(60); INSERT INTO %s VALUES ('cancelled')";
{
	my ($raw, $r) = connect_to(1);
	$raw->send_bytes(PgbunTest::Raw::query_message(sprintf($cancel_sql, 't_direct')));
	ok( wait_until(
			sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND state = 'active'") eq '1';
			}),
		'direct: the request runs');
	my $c = PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port);
	$c->send_bytes(PgbunTest::Raw::cancel_request($r->{pid}, $r->{key}));
	$c->close;
	$raw->close;
	ok( wait_until(
			sub {
				$node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $r->{pid}") eq '0';
			}),
		'direct: cancelled, and its backend ended');
}
{
	my $hold = connect_to(0);
	is($hold->query('BEGIN')->{ok}, 1, 'holder: the only server again');
	my ($raw, $r) = connect_to(0);
	$raw->send_bytes(PgbunTest::Raw::query_message(sprintf($cancel_sql, 't_pgbun')));
	ok(wait_until(sub { waiting() == 1 }), 'pgbun: the request waits for the server');
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($r->{pid}, $r->{key}));
	$c->close;
	ok(wait_until(sub { log_count($node, qr/cancel request for a client waiting for a server/) == 1 }),
		'pgbun: the cancel finds it waiting');
	$raw->close;
	ok(wait_until(sub { log_count($node, qr/client disconnected while waiting/) == 3 }),
		'pgbun: the client that cancelled and left is closed while it waits');
	is($hold->query('COMMIT')->{ok}, 1, 'holder: COMMIT frees the server');
	is($hold->query('SELECT 8')->{rows}[0][0] // '', '8', 'holder: goes on');
	$hold->terminate;
}
is($node->safe_psql('postgres', "SELECT count(*) FROM t_pgbun WHERE v = 'cancelled'"),
	$node->safe_psql('postgres', "SELECT count(*) FROM t_direct WHERE v = 'cancelled'"),
	'the cancelled request left no row, directly and through pgbun');
is($node->safe_psql('postgres', "SELECT count(*) FROM t_direct WHERE v = 'cancelled'"), '0',
	'(none directly)');

check_server_same($node, $identity, 'end of 186');
stop_node($node);
done_testing();

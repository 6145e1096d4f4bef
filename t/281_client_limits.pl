# 281_client_limits: clients over a limit are refused at once, readably.
#
#  - max_client_conn is checked when the connection is accepted, before the
#    startup packet or TLS: the client over the limit reads a 53300
#    ErrorResponse in answer to its startup packet (after the usual TLS
#    negotiation: libpq does not show errors sent in answer to SSLRequest),
#    never a bare reset; psql shows it;
#  - a CancelRequest still gets through at the limit;
#  - a refused client that sends nothing is refused after a short deadline
#    anyway; past 64 refusals waiting per worker the next one is refused at
#    once; refused clients never show up in pgbun.clients;
#  - when max_client_conn is raised at reload above its value at server start
#    (which sized the shared connection slots), the client that finds no
#    client slot is refused with 53300 too, instead of being served
#    invisibly (no slot: not in the views, not cancellable) or taking the
#    slots kept for server connections: every client served is in
#    pgbun.clients, and its queries still get a server and can be cancelled.

use strict;
use warnings FATAL => 'all';

use IO::Select;
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'climits',
	conf => {
		'pgbun.max_client_conn' => '3',
		'pgbun.pool_mode' => 'session',
		'max_connections' => '20',
	});
$node->safe_psql('postgres', q{CREATE ROLE alice LOGIN PASSWORD 'alice-pw'});
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');

sub clients_listed
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM pgbun.clients');
}

############ max_client_conn reached

my @held;
for my $i (1 .. 3)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	ok($r->{ok}, "client $i of 3 logs in") or diag(explain($r));
	push @held, { raw => $raw, pid => $r->{pid}, key => $r->{key} };
}

{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	ok(!$r->{ok}, 'the 4th client is refused');
	is($r->{error}{C} // '', '53300', 'with 53300, read before the close') or diag(explain($r));
	like($r->{error}{M} // '', qr/^pgbun: no more connections allowed \(max_client_conn\)/,
		'and pgbun\'s message');
	is_deeply($r->{auth}, [], 'before any authentication');
	$raw->close;
}

{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::ssl_request());
	my $b = $raw->read_bytes(1, hang_guard());
	is($b // '', 'N', 'an SSLRequest over the limit is answered as usual (no TLS here)');
	my $r = $raw->login(%alice);
	is($r->{error}{C} // '', '53300', 'then the startup packet gets 53300');
	$raw->close;
}

{
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice);
	isnt($rc, 0, 'psql over the limit fails');
	like($err, qr/pgbun: no more connections allowed/, 'and shows pgbun\'s error') or diag($err);
}

############ a CancelRequest at the limit

{
	my $a = $held[0];
	$a->{raw}->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(60)'));
	ok( wait_until(
			sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'"
				) eq '1';
			}),
		'the first client\'s query runs');
	my $t0 = time;
	my $cancel = raw_connect($node);
	$cancel->send_bytes(PgbunTest::Raw::cancel_request($a->{pid}, $a->{key}));
	my $r = $a->{raw}->read_result(hang_guard());
	is($r->{error}{C} // '', '57014', 'a CancelRequest sent at the limit cancels it') or diag(explain($r));
	ok(time - $t0 < 30, 'well before the query would have ended');
	$cancel->close;
}

############ a refused client that sends nothing

{
	my $t0 = time;
	my $raw = raw_connect($node);
	my $r = $raw->read_to_eof(hang_guard());
	is($r->{errors}[0]{C} // '', '53300', 'a silent client over the limit is refused after a short deadline');
	ok(time - $t0 < 25, 'long before client_login_timeout (1 min)');
	$raw->close;
}

# 64 silent refused clients wait for their first packet; the 65th is told at once
{
	my @silent = map { raw_connect($node) } 1 .. 64;
	usleep(300_000);
	my $extra = raw_connect($node);
	my $r = $extra->read_to_eof(4);
	is($r->{errors}[0]{C} // '', '53300', 'past 64 waiting refusals the next client gets 53300 without sending anything');
	my $told = grep { IO::Select->new($_->{sock})->can_read(0) } @silent;
	ok($told < 64, "while the 64 still wait for their first packet ($told answered)");
	$_->close for @silent;
	$extra->close;
}

is(clients_listed(), '3', 'refused clients never show in pgbun.clients');
$_->{raw}->terminate for @held;
@held = ();
my ($ok, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.clients', '0');
ok($ok, 'the held clients are gone') or diag($last);

############ max_client_conn raised at reload beyond the shared slots

# Slots: 3 for clients (max_client_conn at start), 20 + 16 for servers.
reload_conf($node, 'pgbun.max_client_conn' => '1000');
my ($served, $refusal) = (0, undef);
my $deadline = time + 120;
while (time < $deadline && $served < 100)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	if ($r->{ok})
	{
		push @held, { raw => $raw, pid => $r->{pid}, key => $r->{key} };
		$served++;
		next;
	}
	$raw->close;
	if (($r->{error}{M} // '') =~ /max_client_conn\)/)
	{
		usleep(100_000);		# the reload has not reached the worker yet
		next;
	}
	$refusal = $r;
	last;
}
ok($refusal, "with no shared slot left (after $served clients) a client is refused");
is($refusal->{error}{C} // '', '53300', 'with 53300') or diag(explain($refusal));
like($refusal->{error}{M} // '', qr/^pgbun: no more connections allowed: all 3 client connection slots are in use/,
	'saying the client slots are used up');
is($served, 3, 'the clients served are those the client slots hold');
is(clients_listed(), "$served", 'every client served is visible in pgbun.clients');
is($held[0]{raw}->query('SELECT 1')->{rows}[0][0] // '', '1', 'the clients served work');
{
	my $a = $held[1];
	$a->{raw}->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(61)'));
	ok( wait_until(
			sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(61)' AND state = 'active'"
				) eq '1';
			}),
		'a served client\'s query runs');
	my $cancel = raw_connect($node);
	$cancel->send_bytes(PgbunTest::Raw::cancel_request($a->{pid}, $a->{key}));
	is($a->{raw}->read_result(hang_guard())->{error}{C} // '', '57014',
		'and can be cancelled: its server connection has its slot');
	$cancel->close;
}
$_->{raw}->terminate for @held;

check_server_same($node, $identity, 'end of 281');
stop_node($node);
done_testing();

# 050_timeouts: client_login_timeout closes clients that never finish
# logging in, at every step of the login; logged-in clients are left alone.
#
# The 30 s read deadline is a hang guard, not a timing assertion: with
# client_login_timeout = 1s the pooler should close each of them long before.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'timeouts', conf => { 'pgbun.client_login_timeout' => '1s' });
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

# A client that did log in: it must outlive every login timeout below.
my $steady = pgbun_session($node, %alice);
ok($steady->connected, 'a logged-in client') or diag($steady->connect_error);
my $steady_pid = $steady->query('SELECT pg_backend_pid()');

# Read until the pooler closes the connection; an ErrorResponse before the
# close, if any, must be pgbun's.
sub closed_ok
{
	my ($raw, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $res = $raw->read_to_eof(hang_guard());
	ok($res->{eof}, "$label: pgbun closes the connection") or diag(explain($res));
	ok(!(grep { $_->{type} eq 'Z' } @{ $res->{msgs} }), "$label: never got ReadyForQuery");
	foreach my $e (@{ $res->{errors} })
	{
		like($e->{M} // '', qr/^pgbun:/, "$label: error before the close is pgbun's ($e->{C})");
	}
	$raw->close;
	return;
}

my @cases = (
	[
		'connects and sends nothing',
		sub { }
	],
	[
		'sends half a startup packet',
		sub {
			my ($raw) = @_;
			my $pkt = PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ]);
			$raw->send_bytes(substr($pkt, 0, int(length($pkt) / 2)));
		}
	],
	[
		'sends only the length of a startup packet',
		sub { $_[0]->send_bytes(pack('N', 40)); }
	],
	[
		'answers SSLRequest\'s N with nothing',
		sub {
			my ($raw) = @_;
			$raw->send_bytes(PgbunTest::Raw::ssl_request());
			my $b = $raw->read_bytes(1, hang_guard());
			is($b, 'N', 'SSLRequest is answered N');
		}
	],
	[
		'never answers AuthenticationSASL',
		sub {
			my ($raw) = @_;
			my $r = $raw->login(%alice, stop_at_auth => 10);
			ok($r->{stopped}, 'got AuthenticationSASL') or diag(explain($r));
		}
	],
	[
		'starts SCRAM and never sends the final message',
		sub {
			my ($raw) = @_;
			my $r = $raw->login(%alice, stop_at_auth => 11);
			ok($r->{stopped}, 'got AuthenticationSASLContinue') or diag(explain($r));
		}
	],);

foreach my $case (@cases)
{
	my ($label, $act) = @$case;
	my $raw = raw_connect($node);
	$act->($raw);
	closed_ok($raw, $label);
	check_server_same($node, $identity, $label);
}

# Several at once, in parallel: each is closed.
my @many = map { raw_connect($node) } 1 .. 5;
$_->login(%alice, stop_at_auth => 11) foreach @many;
my $n_closed = grep { $_->read_to_eof(hang_guard())->{eof} } @many;
is($n_closed, 5, 'five stalled SCRAM logins at once are all closed');
$_->close foreach @many;

my ($matched, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.clients', '1');
ok($matched, 'only the logged-in client is left in pgbun.clients') or diag("last: $last");

# A client logging in normally is not hurt by the short timeout.
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 21 * 2', %alice);
is($out, '42', 'a normal login still works with client_login_timeout = 1s') or diag($err);

my ($pid, $qerr) = $steady->query('SELECT pg_backend_pid()');
is($pid, $steady_pid, 'the logged-in client outlived the login timeouts on its server')
  or diag($qerr);
$steady->quit;

check_server_same($node, $identity, 'end of 050');
stop_node($node);
done_testing();

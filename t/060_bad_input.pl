# 060_bad_input: hostile or broken bytes from a raw socket.
#
# Each case gets an ErrorResponse or a close (never a hang: every read has a
# deadline), and after each one the pooler's worker has the same pid, the
# postmaster did not restart, and a client that was connected before the
# barrage - in the middle of a transaction - still gets correct answers.
# client_login_timeout is set long so every close seen here comes from the
# input check, not from the login timer.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $MAX_PACKET = 4096;
my $node = pgbun_node(
	name => 'badinput',
	conf => {
		'pgbun.max_packet_size' => $MAX_PACKET,
		'pgbun.client_login_timeout' => '10min',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bystander LOGIN PASSWORD 'bystander-pw';
});
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);
my $PROTO_30 = 3 << 16;

# The bystander: logged in before the barrage, inside a transaction.
my $by = bystander_start($node, user => 'bystander', password => 'bystander-pw');
my $bystander = $by->{session};

sub all_well
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return bystander_check($by, $identity, $_[0]);
}

# The pooler must close the connection; if it says something first, it is an
# ErrorResponse (with $o{sqlstate} and pgbun's prefix unless told otherwise).
sub closes_ok
{
	my ($raw, $label, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $res = $raw->read_to_eof(hang_guard());
	ok($res->{eof}, "$label: connection closed") or diag(explain($res));
	ok(!(grep { $_->{type} eq 'Z' } @{ $res->{msgs} }), "$label: no ReadyForQuery");
	if ($o{require_error})
	{
		ok(scalar @{ $res->{errors} }, "$label: an ErrorResponse before the close")
		  or diag(explain($res));
	}
	foreach my $e (@{ $res->{errors} })
	{
		is($e->{C}, $o{sqlstate}, "$label: SQLSTATE $o{sqlstate}") if $o{sqlstate};
		like($e->{M} // '', qr/^pgbun:/, "$label: message starts with pgbun:")
		  unless $o{any_origin};
	}
	$raw->close;
	return $res;
}

sub logged_in
{
	my ($label) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	ok($r->{ok}, "$label: raw client logs in first") or diag(explain($r));
	return $raw;
}

# Deterministic garbage.
srand(20240601);
my $garbage = join('', map { chr(int(rand(256))) } 1 .. 5 * 1024);

############ startup-phase length checks

my $raw = raw_connect($node);
$raw->send_bytes(pack('NN', 0, $PROTO_30));
closes_ok($raw, 'zero-length startup packet', sqlstate => '08P01');
all_well('zero-length startup packet');

$raw = raw_connect($node);
$raw->send_bytes(pack('NN', 7, $PROTO_30));
closes_ok($raw, 'startup length below its header', sqlstate => '08P01');
all_well('startup length below its header');

$raw = raw_connect($node);
$raw->send_bytes(pack('NN', 100000, $PROTO_30) . "user\0alice\0");
closes_ok($raw, 'startup packet claiming 100000 bytes (over max_packet_size)', sqlstate => '08P01');
all_well('startup packet over max_packet_size');

$raw = raw_connect($node);
$raw->send_bytes(pack('NN', 0xFFFFFFFF, $PROTO_30));
closes_ok($raw, 'startup packet claiming 4 GB', sqlstate => '08P01');
all_well('startup packet claiming 4 GB');

############ truncated packets, then the client goes away

$raw = raw_connect($node);
$raw->send_bytes(pack('NN', 50, $PROTO_30) . "user\0al");
$raw->close;
all_well('truncated startup packet, then close');

$raw = raw_connect($node);
$raw->send_bytes(pack('N', 40));
$raw->close;
all_well('only a length, then close');

$raw = raw_connect($node);
$raw->send_bytes(pack('NN', 50, $PROTO_30) . "user\0al");
$raw->shutdown_write;
closes_ok($raw, 'truncated startup packet, then EOF', sqlstate => '08P01');
all_well('truncated startup packet, then EOF');

$raw = logged_in('truncated Query');
$raw->send_bytes('Q' . pack('N', 100) . 'SELECT');
$raw->close;
all_well('truncated Query after login, then close');

############ malformed startup contents

$raw = raw_connect($node);
$raw->send_bytes(PgbunTest::Raw::startup_packet([ database => 'postgres' ]));
closes_ok($raw, 'startup packet without a user', require_error => 1);
all_well('startup packet without a user');

$raw = raw_connect($node);
my $body = pack('N', $PROTO_30) . "user\0alice\0database\0postgres";    # no terminators
$raw->send_bytes(pack('N', 4 + length($body)) . $body);
closes_ok($raw, 'unterminated startup parameters', require_error => 1, sqlstate => '08P01');
all_well('unterminated startup parameters');

############ garbage

$raw = raw_connect($node);
$raw->send_bytes($garbage);
$raw->shutdown_write;
closes_ok($raw, '5 KB of garbage instead of a startup packet');
all_well('5 KB of garbage before login');

$raw = logged_in('garbage after login');
$raw->send_bytes($garbage);
$raw->shutdown_write;
# Garbage that parses as a message may reach the server, which then answers.
closes_ok($raw, '5 KB of garbage after login', any_origin => 1);
all_well('5 KB of garbage after login');

############ over max_packet_size after login

$raw = logged_in('huge Query');
$raw->send_bytes('Q' . pack('N', 1024 * 1024) . 'SELECT 1');
closes_ok($raw, 'Query claiming 1 MB (over max_packet_size)', sqlstate => '08P01');
all_well('Query over max_packet_size');

$raw = logged_in('Query just over the limit');
$raw->send_bytes('Q' . pack('N', $MAX_PACKET + 100) . 'SELECT 1');
closes_ok($raw, 'Query just over max_packet_size', sqlstate => '08P01');
all_well('Query just over max_packet_size');

$raw = logged_in('bad length');
$raw->send_bytes('Q' . pack('N', 2));
closes_ok($raw, 'Query whose length is below its own header', sqlstate => '08P01');
all_well('Query length below header');

# A query within the limit still works on a fresh client.
$raw = logged_in('query under the limit');
my $big = 'SELECT length(' . "'" . ('x' x 3000) . "')";
my $res = $raw->query($big);
is_deeply($res->{rows}, [ ['3000'] ], 'a 3 KB query (under max_packet_size) works');
$raw->terminate;

############ protocol versions

foreach my $v ([ 2, 0 ], [ 4, 0 ], [ 1234, 1234 ])
{
	my $label = "protocol $v->[0].$v->[1]";
	$raw = raw_connect($node);
	$raw->send_bytes(
		PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ], @$v));
	closes_ok($raw, $label, require_error => 1, sqlstate => '08P01');
	all_well($label);
}

$raw = raw_connect($node);
my $r = $raw->login(%alice, minor => 1);
ok($r->{negotiate}, 'protocol 3.1: NegotiateProtocolVersion') or diag(explain($r));
is(($r->{negotiate}{minor} // -1) & 0xFFFF, 0, 'protocol 3.1: pgbun offers minor version 0');
is_deeply($r->{negotiate}{options}, [], 'protocol 3.1: no unsupported options');
ok($r->{ok}, 'protocol 3.1: then a normal login') or diag(explain($r));
$res = $raw->query('SELECT 31');
is_deeply($res->{rows}, [ ['31'] ], 'protocol 3.1: queries work');
$raw->terminate;
all_well('protocol 3.1');

$raw = raw_connect($node);
$r = $raw->login(%alice, params => [ '_pq_.foo' => 'bar' ]);
ok($r->{negotiate}, '_pq_.foo: NegotiateProtocolVersion') or diag(explain($r));
is_deeply($r->{negotiate}{options}, ['_pq_.foo'], '_pq_.foo: listed as unsupported');
is($r->{negotiate}{count} // -1, 1, '_pq_.foo: count 1');
ok($r->{ok}, '_pq_.foo: then a normal login') or diag(explain($r));
$res = $raw->query('SELECT 32');
is_deeply($res->{rows}, [ ['32'] ], '_pq_.foo: queries work');
$raw->terminate;
all_well('_pq_.foo');

############ cancel requests

$raw = raw_connect($node);
$raw->send_bytes(PgbunTest::Raw::cancel_request(int(rand(2**31)), int(rand(2**32))));
my $cres = closes_ok($raw, 'CancelRequest with an unknown key');
is(scalar @{ $cres->{msgs} }, 0, 'CancelRequest with an unknown key: no reply at all');
all_well('CancelRequest with an unknown key');

$raw = raw_connect($node);
$raw->send_bytes(pack('NNN', 12, (1234 << 16) | 5678, 1));
closes_ok($raw, 'CancelRequest of the wrong length', sqlstate => '08P01');
all_well('CancelRequest of the wrong length');

############ SCRAM broken off or malformed

$raw = raw_connect($node);
$r = $raw->login(%alice, stop_at_auth => 11);
ok($r->{stopped}, 'half a SCRAM exchange: got SASLContinue') or diag(explain($r));
$raw->close;
all_well('half a SCRAM exchange, then close');

$raw = raw_connect($node);
$r = $raw->login(%alice, stop_at_auth => 11);
$raw->send_bytes(PgbunTest::Raw::message('p', 'this is not a client-final-message'));
closes_ok($raw, 'malformed SCRAM client-final-message', require_error => 1);
all_well('malformed SCRAM client-final-message');

$raw = raw_connect($node);
$r = $raw->login(%alice, stop_at_auth => 10);
$raw->send_bytes(PgbunTest::Raw::message('p', "SCRAM-SHA-1\0" . pack('N', 5) . 'n,,n='));
closes_ok($raw, 'SASLInitialResponse with an unknown mechanism', require_error => 1);
all_well('unknown SASL mechanism');

$raw = raw_connect($node);
$r = $raw->login(%alice, stop_at_auth => 10);
$raw->send_bytes(PgbunTest::Raw::message('p', "SCRAM-SHA-256\0" . pack('N', 9999) . 'n,,n='));
closes_ok($raw, 'SASLInitialResponse with a lying inner length', require_error => 1);
all_well('SASLInitialResponse with a lying inner length');

$raw = raw_connect($node);
$r = $raw->login(%alice, stop_at_auth => 10);
$raw->send_bytes('Q' . pack('N', 13) . "SELECT 1\0");
closes_ok($raw, 'a Query instead of a SASL response', require_error => 1);
all_well('a Query during authentication');

############ SSLRequest / GSSENCRequest: 'N', then a normal login

foreach my $req ([ 'SSLRequest', PgbunTest::Raw::ssl_request() ],
	[ 'GSSENCRequest', PgbunTest::Raw::gssenc_request() ])
{
	my ($label, $bytes) = @$req;
	$raw = raw_connect($node);
	$raw->send_bytes($bytes);
	is($raw->read_bytes(1, hang_guard()) // 'nothing', 'N', "$label is answered N");
	$r = $raw->login(%alice);
	ok($r->{ok}, "$label: then a normal login") or diag(explain($r));
	$res = $raw->query('SELECT 33');
	is_deeply($res->{rows}, [ ['33'] ], "$label: queries work");
	$raw->terminate;
	all_well($label);
}

# psql with its default sslmode=prefer goes through the same SSLRequest dance.
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 34', %alice, sslmode => 'prefer');
is($out, '34', 'psql with sslmode=prefer falls back to plain and works') or diag($err);

############ nothing left behind

my ($matched, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.clients', '1');
ok($matched, 'only the bystander is left in pgbun.clients') or diag("last: $last");
($matched, $last) =
  poll_sql($node, "SELECT count(*) FROM pgbun.servers WHERE state = 'active'", '1');
ok($matched, 'only the bystander\'s server is active') or diag("last: $last");

# Every server left in alice's pool - some saw truncated or garbage input
# from their clients - is healthy: take them all at once and use them.
($matched, $last) = poll_sql($node,
	"SELECT sv_active + sv_used + sv_tested + sv_login FROM pgbun.pools "
	  . "WHERE database = 'postgres' AND \"user\" = 'alice'",
	'0');
ok($matched, 'alice\'s pool has settled (no server active, in reset or logging in)')
  or diag("last: $last");
my $n_idle = $node->safe_psql('postgres',
	"SELECT sv_idle FROM pgbun.pools WHERE database = 'postgres' AND \"user\" = 'alice'");
cmp_ok($n_idle || 0, '>=', 1, "alice's pool kept idle servers ($n_idle)");
my @takers = map { pgbun_session($node, %alice) } 1 .. ($n_idle || 0);
my $healthy = 0;
foreach my $i (0 .. $#takers)
{
	my ($o, $e) = $takers[$i]->query("SELECT $i + 100");
	$healthy++ if defined $o && $o eq $i + 100;
	diag("taker $i: out=" . ($o // 'undef') . " err=$e") unless defined $o && $o eq $i + 100;
}
is($healthy, scalar @takers, 'every pooled alice server answers correctly');
$_->quit foreach @takers;

$bystander->query('COMMIT');
is($bystander->query('SELECT 35'), '35', 'the bystander commits and goes on');
$bystander->quit;

check_server_same($node, $identity, 'end of 060');
stop_node($node);
done_testing();

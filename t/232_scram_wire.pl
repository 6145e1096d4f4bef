# 232_scram_wire: malformed and oversized SCRAM and password messages on the
# wire (the class of PgBouncer's 2025/2026 SCRAM CVEs: integer overflow in
# the packet length, over-long fields, a crash with long passwords).
#
# Each case is sent by a raw client and must end that one login with an
# ErrorResponse - 08P01 with a "pgbun:" message for a malformed message,
# 28P01 for a wrong proof or password - and a close; never a crash, a hang
# or an internal error. After each, a bystander inside a transaction still
# gets answers from the same server backend and the worker has not restarted.
#
# Then long cleartext passwords (hba "password"; PgBouncer 1.25.0 fixed a
# crash with passwords of 1024 bytes or more): PostgreSQL sets and checks
# passwords of any length, so roles with passwords of 1024 to 9000 bytes log in
# through pgbun exactly as directly, and one byte off is 28P01 in both.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'scramwire',
	wait_listen => 0,
	create_extension => 0,
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.auth_type' => 'hba',
		'pgbun.client_login_timeout' => '10min',
	},
	hba_extra => [ 'host db_pw all 127.0.0.1/32 password' ]);
my %long = map { $_ => ('L' x ($_ - 1)) . $_ % 10 } (1024, 1025, 2000, 9000);
open my $ph, '>', $node->data_dir . '/pgbun_hba.conf' or die;
print $ph "host db_pw all 127.0.0.1/32 password\nhost all all 127.0.0.1/32 scram-sha-256\n";
close $ph;
$node->safe_psql(
	'postgres', qq{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bystander LOGIN PASSWORD 'bystander-pw';
@{[ join('', map { "CREATE ROLE long$_ LOGIN PASSWORD '$long{$_}';\n" } sort keys %long) ]}
CREATE DATABASE db_pw;
ALTER SYSTEM SET pgbun.hba_file = '@{[ $node->data_dir ]}/pgbun_hba.conf';
SELECT pg_reload_conf();
});
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
my $identity = server_identity($node);
my $by = bystander_start($node, user => 'bystander', password => 'bystander-pw');

# One login that must fail: an ErrorResponse with $sqlstate (and pgbun's
# prefix), then the close; then the bystander check.
sub refused_ok
{
	my ($raw, $label, $sqlstate, $msg_re) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $res = $raw->read_to_eof(hang_guard());
	ok($res->{eof}, "$label: connection closed") or diag(explain($res));
	my $e = $res->{errors}[0] // {};
	is($e->{C}, $sqlstate, "$label: SQLSTATE $sqlstate") or diag(explain($res));
	like($e->{M} // '', qr/^pgbun: /, "$label: pgbun's message");
	like($e->{M} // '', $msg_re, "$label: says why") if $msg_re;
	$raw->close;
	bystander_check($by, $identity, $label);
	return;
}

sub sasl_initial
{
	my ($len, $data) = @_;
	return PgbunTest::Raw::message('p', "SCRAM-SHA-256\0" . pack('N', $len) . $data);
}

# A connection waiting for the SASLInitialResponse.
sub at_sasl
{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'alice', password => 'alice-pw', stop_at_auth => 10);
	ok($r->{stopped}, 'got AuthenticationSASL') or diag(explain($r));
	return $raw;
}

############ SASLInitialResponse: the inner length, the client-first-message

my @initial = (
	[ 'inner length -1 (no initial response)', pack('N', 0xFFFFFFFF) ],
	[ 'inner length 2^31 (negative as int32)', pack('N', 0x80000000) . 'n,,n=,r=abc' ],
	[ 'inner length 2^31 - 1', pack('N', 0x7FFFFFFF) . 'n,,n=,r=abc' ],
	[ 'inner length 0', pack('N', 0) ],
);
foreach my $c (@initial)
{
	my $raw = at_sasl();
	$raw->send_bytes(PgbunTest::Raw::message('p', "SCRAM-SHA-256\0" . $c->[1]));
	refused_ok($raw, "SASLInitialResponse, $c->[0]", '08P01');
}

my @first = (
	[ 'a 5000-byte nonce', 'n,,n=,r=' . ('N' x 5000), qr/malformed SCRAM message/ ],
	[ 'a 5000-byte user name', 'n,,n=' . ('u' x 5000) . ',r=abc', qr/malformed SCRAM message/ ],
	[ 'channel binding on a plain connection', 'p=tls-server-end-point,,n=,r=abc', qr/channel binding/ ],
	[ 'an authorization identity', 'n,a=bob,n=,r=abc', qr/authorization identity/ ],
	[ 'a mandatory extension', 'n,,m=ext,n=,r=abc', qr/extension/ ],
	[ 'no nonce', 'n,,n=', qr/malformed SCRAM message/ ],
	[ 'an empty nonce', 'n,,n=,r=', qr/malformed SCRAM message/ ],
	[ 'a nonce with a control character', "n,,n=,r=ab\x01c", qr/malformed SCRAM message/ ],
	[ 'a NUL inside', "n,,n=\0,r=abc", qr/malformed SCRAM message/ ],
	[ 'no gs2 header', 'n=,r=abc', qr/malformed SCRAM message/ ],
);
foreach my $c (@first)
{
	my $raw = at_sasl();
	$raw->send_bytes(sasl_initial(length($c->[1]), $c->[1]));
	refused_ok($raw, "client-first-message with $c->[0]", '08P01', $c->[2]);
}

############ client-final-message (after a proper client-first)

# A connection that sent client-first with our nonce; returns it and the
# combined nonce from the server-first-message.
sub at_final
{
	my $raw = at_sasl();
	my $first = 'n,,n=,r=tapnonce';
	$raw->send_bytes(sasl_initial(length($first), $first));
	my $m = $raw->read_message(hang_guard());
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($m->{type} . $code, 'R11', 'got SASLContinue');
	my ($nonce) = substr($m->{body} // '', 4) =~ /^r=([^,]+),/;
	return ($raw, $nonce // 'none');
}

my $p43 = 'A' x 43;
my @final = (
	[ 'a 5000-character proof', sub { "c=biws,r=$_[0],p=" . ('A' x 5000) }, '08P01' ],
	[ 'a 3-character proof', sub { "c=biws,r=$_[0],p=AAA" }, '08P01' ],
	[ 'a 43-character proof', sub { "c=biws,r=$_[0],p=$p43" }, '08P01' ],
	[ 'a proof with padding inside', sub { "c=biws,r=$_[0],p=" . ('A' x 20) . '=' . ('A' x 23) }, '08P01' ],
	[ 'no proof', sub { "c=biws,r=$_[0]" }, '08P01' ],
	[ 'a wrong channel-binding attribute', sub { "c=eSws,r=$_[0],p=" . ('A' x 43) . '=' }, '08P01' ],
	[ 'a nonce that is not the server\'s', sub { "c=biws,r=tapnonceX,p=" . ('A' x 43) . '=' }, '08P01' ],
	[ 'a message of 9000 bytes', sub { "c=biws,r=$_[0],x=" . ('x' x 9000) . ',p=' . ('A' x 43) . '=' }, '08P01' ],
	[ 'a wrong proof of the right shape', sub { "c=biws,r=$_[0],p=" . ('A' x 43) . '=' }, '28P01' ],
);
foreach my $c (@final)
{
	my ($raw, $nonce) = at_final();
	$raw->send_bytes(PgbunTest::Raw::message('p', $c->[1]->($nonce)));
	refused_ok($raw, "client-final-message with $c->[0]", $c->[2]);
}

# a password message over the login packet limit (10000 bytes)
{
	my ($raw, $nonce) = at_final();
	$raw->send_bytes(PgbunTest::Raw::message('p', 'x' x 20000));
	refused_ok($raw, 'a 20000-byte SASLResponse', '08P01');
}

############ long cleartext passwords (hba "password"), directly and through pgbun

sub pw_login
{
	my ($port, $user, $password) = @_;
	my $raw = raw_connect($node, port => $port);
	my $r = $raw->login(user => $user, database => 'db_pw', password => $password);
	$raw->close;
	return $r;
}

foreach my $len (sort { $a <=> $b } keys %long)
{
	my $pw = $long{$len};
	my $direct = pw_login($node->port, "long$len", $pw);
	my $pooled = pw_login(pgbun_port($node), "long$len", $pw);
	ok($direct->{ok}, "password method, $len bytes: logs in directly") or diag(explain($direct));
	ok($pooled->{ok}, "password method, $len bytes: logs in through pgbun") or diag(explain($pooled));
	(my $wrong = $pw) =~ s/.$/x/;
	$direct = pw_login($node->port, "long$len", $wrong);
	$pooled = pw_login(pgbun_port($node), "long$len", $wrong);
	is(($direct->{error} // {})->{C}, '28P01', "password method, $len bytes, last byte wrong: 28P01 directly");
	is(($pooled->{error} // {})->{C}, '28P01', "password method, $len bytes, last byte wrong: 28P01 through pgbun")
	  or diag(explain($pooled));
	like(($pooled->{error} // {})->{M} // '', qr/^pgbun: password authentication failed for user "long$len"$/,
		"password method, $len bytes, last byte wrong: pgbun's message");
	bystander_check($by, $identity, "password method, $len bytes");
}
unlike(PgbunTest::tail_log($node, 2000), qr/internal error in the pooler/, 'no internal error in the worker');

$by->{session}->quit;
check_server_same($node, $identity, 'end of 232');
stop_node($node);
done_testing();

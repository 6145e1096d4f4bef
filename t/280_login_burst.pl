# 280_login_burst: one password attempt per connection, even pipelined.
#
# With pgbun.auth_failure_delay, a client that sends many guesses in one
# write (50 wrong md5 answers, or 50 wrong SCRAM proofs, then the right one)
# must not get in: after the first failure pgbun reads nothing more from the
# connection, answers 28P01 once (after the delay) and closes, as PostgreSQL
# does. Only that one failure counts for the address: the next failure's
# delay is the doubled base (a few seconds), not the 30 s cap that 51
# counted failures would give.

use strict;
use warnings FATAL => 'all';

use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'burst',
	conf => { 'pgbun.auth_failure_delay' => '1s', 'pgbun.auth_type' => 'md5' });
$node->safe_psql(
	'postgres', q{
SET password_encryption = 'md5';
CREATE ROLE mary LOGIN PASSWORD 'mary-pw';
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
});
my $identity = server_identity($node);

# Read what the pooler says until EOF: the message types, the first error.
sub answers
{
	my ($raw) = @_;
	my $r = $raw->read_to_eof(hang_guard());
	my @types = map { $_->{type} } @{ $r->{msgs} };
	my @auth_ok = grep { $_->{type} eq 'R' && unpack('N', $_->{body}) == 0 } @{ $r->{msgs} };
	return { types => join('', @types), error => $r->{errors}[0] // {}, auth_ok => scalar(@auth_ok),
		eof => $r->{eof} };
}

############ md5: 50 wrong answers and the right one in one write

{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'mary', database => 'postgres' ]));
	my $m = $raw->read_message(hang_guard());
	is($m->{type} // '', 'R', 'md5: an authentication request');
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($code, 5, 'md5: it is AuthenticationMD5Password');
	my $salt = substr($m->{body}, 4, 4);
	my $inner = md5_hex('mary-pw' . 'mary');
	my $right = 'md5' . md5_hex($inner . $salt);
	my $burst = '';
	$burst .= PgbunTest::Raw::message('p', 'md5' . md5_hex("wrong$_" . $salt) . "\0") for 1 .. 50;
	$burst .= PgbunTest::Raw::message('p', "$right\0");
	$burst .= PgbunTest::Raw::query_message('SELECT 1');
	ok($raw->send_bytes($burst), 'md5: the burst is sent in one write');
	my $a = answers($raw);
	is($a->{auth_ok}, 0, 'md5: no AuthenticationOk: the right answer behind wrong ones does not log in')
	  or diag("got $a->{types}");
	is($a->{error}{C} // '', '28P01', 'md5: refused with 28P01, readable before the close');
	like($a->{error}{M} // '', qr/^pgbun: password authentication failed/, 'md5: pgbun\'s message');
	is($a->{types}, 'E', 'md5: exactly one answer to the burst');
	$raw->close;
}

############ SCRAM: 50 wrong proofs and the right one in one write

{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ]));
	my $m = $raw->read_message(hang_guard());
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($code, 10, 'scram: AuthenticationSASL');
	my @scrams = map { PgbunTest::Scram->new($_ == 51 ? 'alice-pw' : "wrong$_") } 1 .. 51;
	# every proof must be for the same nonce: share the first message
	my $first = $scrams[0]->client_first;
	$_->{nonce} = $scrams[0]->{nonce} for @scrams;
	$_->client_first for @scrams;
	$raw->send_bytes(PgbunTest::Raw::message('p', "SCRAM-SHA-256\0" . pack('N', length($first)) . $first));
	$m = $raw->read_message(hang_guard());
	($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($code, 11, 'scram: AuthenticationSASLContinue');
	my $server_first = substr($m->{body}, 4);
	my $burst = join('', map { PgbunTest::Raw::message('p', $_->client_final($server_first)) } @scrams);
	$burst .= PgbunTest::Raw::query_message('SELECT 1');
	ok($raw->send_bytes($burst), 'scram: the burst is sent in one write');
	my $a = answers($raw);
	is($a->{auth_ok}, 0, 'scram: no AuthenticationOk: the right proof behind wrong ones does not log in')
	  or diag("got $a->{types}");
	is($a->{error}{C} // '', '28P01', 'scram: refused with 28P01');
	is($a->{types}, 'E', 'scram: exactly one answer to the burst');
	$raw->close;
}

############ each burst counted as one failure

# Two failures so far from 127.0.0.1: the next one is held 1s << 2 = 4 s.
# Had every guess counted, it would be held 30 s (the cap).
{
	my $t0 = time;
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'mary', password => 'wrong', database => 'postgres', secs => 60);
	my $held = time - $t0;
	is($r->{error}{C} // '', '28P01', 'a later wrong password: 28P01');
	ok($held < 20, sprintf('its delay (%.1f s) shows only one failure per burst was counted', $held));
	$raw->close;
}

{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'mary', password => 'mary-pw', database => 'postgres');
	ok($r->{ok}, 'the right password alone logs in') or diag(explain($r));
	is($raw->query('SELECT 6 * 7')->{rows}[0][0] // '', '42', 'and runs a query');
	$raw->terminate;
}

check_server_same($node, $identity, 'end of 280');
stop_node($node);
done_testing();

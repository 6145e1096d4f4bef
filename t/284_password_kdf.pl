# 284_password_kdf: hba "password" logins do their PBKDF2 off the event loop.
#
# Checking a cleartext password against a SCRAM verifier costs PBKDF2 (here
# a verifier with 400,000 iterations, so each check takes a visible while).
# pgbun runs those checks on a small pool of threads: logins with the right
# password get in (and the pool logs in to the server with the key derived
# from it), a wrong one gets 28P01, and while eight checks are running an
# already connected client's query is answered at once instead of after
# all of them (before, the loop ran them one after another and the query
# came last). The worker never restarts.

use strict;
use warnings FATAL => 'all';

use Digest::SHA qw(sha256 hmac_sha256);
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'kdf', wait_listen => 0, create_extension => 0,
	conf => { 'pgbun.auth_type' => 'hba', 'pgbun.default_pool_size' => '4' });
my $hba_path = $node->data_dir . '/pgbun_hba.conf';
open my $fh, '>', $hba_path or die "cannot write $hba_path: $!";
print $fh "host all all 127.0.0.1/32 password\n";
close $fh;

# A SCRAM verifier with many iterations, made here the way PostgreSQL does.
my $iterations = 400000;
my $salt = join('', map { chr(int(rand(256))) } 1 .. 16);
my $salted = PgbunTest::Scram::pbkdf2_sha256('slow-pw', $salt, $iterations);
my $stored = sha256(hmac_sha256('Client Key', $salted));
my $server_key = hmac_sha256('Server Key', $salted);
my $verifier = sprintf('SCRAM-SHA-256$%d:%s$%s:%s', $iterations, encode_base64($salt, ''),
	encode_base64($stored, ''), encode_base64($server_key, ''));
$node->safe_psql('postgres', qq{
CREATE ROLE slow LOGIN PASSWORD '$verifier';
ALTER SYSTEM SET pgbun.hba_file = '$hba_path';
SELECT pg_reload_conf();
});
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
my $identity = server_identity($node);

my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'slow', password => 'slow-pw');
is($rc, 0, 'psql logs in with the hba password method') or diag($err);
is($out, 'slow', 'and runs as the role (the pool logged in to the server with the derived key)');
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'slow', password => 'wrong');
like($err, qr/pgbun: password authentication failed/, 'a wrong password is refused');

my $bystander = raw_connect($node);
ok($bystander->login(user => 'slow', password => 'slow-pw')->{ok}, 'a bystander logs in');

# Eight logins, each waiting for its password prompt.
my @logins;
for my $i (1 .. 8)
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'slow', database => 'postgres' ]));
	my $m = $raw->read_message(hang_guard());
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($code, 3, "login $i is asked for a cleartext password");
	push @logins, $raw;
}

# All eight passwords (the last one wrong), then the bystander's query.
for my $i (0 .. 7)
{
	$logins[$i]->send_bytes(PgbunTest::Raw::message('p', ($i == 7 ? 'wrong' : 'slow-pw') . "\0"));
}
my $t0 = time;
$bystander->send_bytes(PgbunTest::Raw::query_message('SELECT 41 + 1'));
my $r = $bystander->read_result(hang_guard());
my $waited = time - $t0;
my $answered = grep { length($_->{buf}) > 0 || IO::Select->new($_->{sock})->can_read(0) } @logins;
is($r->{rows}[0][0] // '', '42', 'the bystander\'s query is answered meanwhile');
ok($answered < 8,
	sprintf('before all eight password checks are done (%d answered after %.2f s): the loop did not run them', $answered, $waited));

my $in = 0;
for my $i (0 .. 7)
{
	my $a = $logins[$i]->authenticate(secs => 120);
	if ($i == 7)
	{
		is($a->{error}{C} // '', '28P01', 'the wrong password is refused with 28P01');
		next;
	}
	$in++ if $a->{ok};
}
is($in, 7, 'the seven right passwords log in');
is($logins[0]->query('SELECT current_user')->{rows}[0][0] // '', 'slow', 'and their sessions work');
$_->close for @logins;
$bystander->terminate;

check_server_same($node, $identity, 'end of 284');

# Shut down while checks run: the worker stops its threads before exit, so
# none is left using OpenSSL while the process tears it down.
my @late;
for my $i (1 .. 4)
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'slow', database => 'postgres' ]));
	$raw->read_message(hang_guard());
	$raw->send_bytes(PgbunTest::Raw::message('p', "slow-pw\0"));
	push @late, $raw;
}
stop_node($node);
unlike(slurp_file($node->logfile), qr/pgbun worker.*terminated by signal/, 'the worker exited cleanly with checks running');
done_testing();

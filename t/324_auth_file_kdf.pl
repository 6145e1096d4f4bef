# 324_auth_file_kdf: an auth_file plain password's SCRAM secret is derived on
# kdf.c's threads, once for all the logins that wait for it, and kept
# across reloads that keep the password.
#
# Clients log in with SCRAM against an auth_file plain password, so pgbun
# needs that password's secret: one PBKDF2 run at the role's first login.
# Here the threads are first kept busy by ten hba "password" checks against
# a verifier of 1,000,000 iterations, so the derivations queue behind them
# and every waiting state can be seen:
#
#  - five first logins of one role at once: one derivation (the worker's
#    DEBUG1 lines), and all five get in;
#  - meanwhile a connected client's query is answered (the loop does not
#    wait for the derivation);
#  - a login that goes away while it waits leaves the derivation to finish
#    for the next one;
#  - a reload that changes a role's password while its login waits: that
#    login gets 08006 "try again", the new password then works and the old
#    one gets 28P01;
#  - a reload that keeps a password: the next login derives nothing;
#  - the ten checks ahead of them all succeed;
#  - with kdf.c's queue full (64 password checks of 8,000,000 iterations),
#    a first login of another role derives its secret inline and gets in, a
#    65th check is refused with 53300, and once the waiting checks' clients
#    leave (the worker notices though it reads nothing from them), their
#    jobs are dropped and a check gets in again.
use strict;
use warnings FATAL => 'all';

use Digest::SHA qw(sha256 hmac_sha256);
use IO::Select;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $boot = bootstrap_user();

# the remote cluster: no pgbun, the auth_file roles are its own
my $remote = remote_cluster('afremote', 'scram-sha-256');
$remote->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE af1 LOGIN PASSWORD 'af1-pw';
	CREATE ROLE af2 LOGIN PASSWORD 'af2-pw';
	CREATE ROLE af3 LOGIN PASSWORD 'af3-pw';
	CREATE ROLE af4 LOGIN PASSWORD 'af4-pw';
});
my $rport = $remote->port;

my $node = pgbun_node(name => 'afkdf', wait_listen => 0, create_extension => 0,
	conf => {
		'pgbun.auth_type' => 'hba',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.databases' => "remote = host=127.0.0.1 port=$rport dbname=postgres",
		'pgbun.query_wait_timeout' => '120s',
		'pgbun.client_login_timeout' => '120s',
		'log_min_messages' => 'debug1',
	});
my $hba_path = $node->data_dir . '/pgbun_hba.conf';
open my $fh, '>', $hba_path or die $!;
print $fh "host all $boot 127.0.0.1/32 trust\nhost all slow 127.0.0.1/32 password\nhost all fill 127.0.0.1/32 password\nhost all all 127.0.0.1/32 scram-sha-256\n";
close $fh;
my $authfile = $node->data_dir . '/userlist.txt';

sub write_authfile
{
	my ($af2_password) = @_;
	open my $out, '>', $authfile or die $!;
	print $out qq{"af1" "af1-pw"\n"af2" "$af2_password"\n"af3" "af3-pw"\n"af4" "af4-pw"\n};
	close $out;
}
write_authfile('af2-pw');

# A SCRAM verifier with many iterations, made here the way PostgreSQL does.
my $iterations = 1000000;
my $salt = join('', map { chr(int(rand(256))) } 1 .. 16);
my $salted = PgbunTest::Scram::pbkdf2_sha256('slow-pw', $salt, $iterations);
my $verifier = sprintf('SCRAM-SHA-256$%d:%s$%s:%s', $iterations, encode_base64($salt, ''),
	encode_base64(sha256(hmac_sha256('Client Key', $salted)), ''),
	encode_base64(hmac_sha256('Server Key', $salted), ''));
$node->safe_psql('postgres', qq{
CREATE ROLE slow LOGIN PASSWORD '$verifier';
ALTER SYSTEM SET pgbun.hba_file = '$hba_path';
ALTER SYSTEM SET pgbun.auth_file = '$authfile';
SELECT pg_reload_conf();
});
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
ok(wait_until(sub { slurp_file($node->logfile) =~ /loaded 4 entries from auth_file/ }, hang_guard(), 0.1),
	'the auth_file is read');

# The worker's DEBUG1 lines for a role's derivation: started, or done.
sub derivations
{
	my ($role, $started) = @_;
	my $what = $started ? 'deriving' : 'derived';
	return log_count($node, qr/pgbun: $what the SCRAM secret of auth_file role "$role"/);
}

# A raw login of user sent up to its startup packet.
sub start_login
{
	my ($user, $database) = @_;
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => $user, database => $database ]));
	return $raw;
}

sub has_input
{
	my ($raw) = @_;
	return length($raw->{buf}) > 0 || IO::Select->new($raw->{sock})->can_read(0);
}

my $bystander = raw_connect($node);
ok($bystander->login(user => $boot, database => 'postgres')->{ok}, 'a bystander logs in');

############ the threads busy: ten slow password checks

my @slow;
for my $i (1 .. 10)
{
	my $raw = start_login('slow', 'postgres');
	my $m = $raw->read_message(hang_guard());
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is($code, 3, "slow check $i is asked for a cleartext password");
	$raw->send_bytes(PgbunTest::Raw::message('p', "slow-pw\0"));
	push @slow, $raw;
}

############ first logins of auth_file roles queue behind them

my @af1 = map { start_login('af1', 'remote') } 1 .. 5;
my $af2 = start_login('af2', 'remote');
my $af3 = start_login('af3', 'remote');
ok(wait_until(sub { derivations('af1', 1) >= 1 && derivations('af2', 1) >= 1 && derivations('af3', 1) >= 1 },
		hang_guard(), 0.05),
	'the derivations of af1, af2 and af3 are queued');
$af3->close;	# gone while it waits

$bystander->send_bytes(PgbunTest::Raw::query_message('SELECT 41 + 1'));
my $r = $bystander->read_result(hang_guard());
is($r->{rows}[0][0] // '', '42', 'the bystander\'s query is answered meanwhile');
my $waiting = grep { !has_input($_) } @af1, $af2;
is($waiting, 6, 'while the six logins still wait for their secrets (no challenge yet)');

############ a reload while they wait: af2's password changes

$remote->safe_psql('postgres', "ALTER ROLE af2 PASSWORD 'af2-new'");
write_authfile('af2-new');
reload_sync($node, { user => $boot }, 'pgbun.auth_file' => $authfile);
is(derivations('af1', 0) + derivations('af2', 0) + derivations('af3', 0), 0,
	'the reload came before any of the derivations finished');

my $in = 0;
for my $raw (@af1)
{
	my $a = $raw->authenticate(user => 'af1', password => 'af1-pw', secs => 120);
	$in++ if $a->{ok};
}
is($in, 5, 'the five af1 logins get in once the secret is derived');
is($af1[0]->query('SELECT current_user, inet_server_port()')->{rows}[0][1] // '', $rport,
	'and reach the remote server as af1');
is(derivations('af1', 1), 1, 'one derivation for the five logins');
$_->terminate for @af1;

my $a = $af2->authenticate(user => 'af2', password => 'af2-pw', secs => 120);
is($a->{error}{C} // '', '08006', 'the af2 login waiting across the change is refused with 08006');
like($a->{error}{M} // '', qr/^pgbun: .*try again/, 'and told to try again');
$af2->close;
ok(raw_connect($node)->login(user => 'af2', password => 'af2-new', database => 'remote', secs => 120)->{ok},
	'af2 logs in with the new password');
is(raw_connect($node)->login(user => 'af2', password => 'af2-pw', database => 'remote', secs => 120)->{error}{C} // '',
	'28P01', 'not with the old one');

ok(wait_until(sub { derivations('af3', 0) >= 1 }, hang_guard(), 0.05),
	'af3\'s derivation finished with no login left waiting');
ok(raw_connect($node)->login(user => 'af3', password => 'af3-pw', database => 'remote', secs => 120)->{ok},
	'the next af3 login gets in');
is(derivations('af3', 1), 1, 'with the secret derived for the one that left');

############ a reload that keeps the passwords derives nothing again

reload_sync($node, { user => $boot }, 'pgbun.auth_file' => $authfile);
ok(raw_connect($node)->login(user => 'af1', password => 'af1-pw', database => 'remote', secs => 120)->{ok},
	'af1 logs in after a reload');
is(derivations('af1', 1), 1, 'with the secret kept across the reload');

$in = 0;
for my $raw (@slow)
{
	$in++ if $raw->authenticate(secs => 120)->{ok};
}
is($in, 10, 'the ten slow checks ahead of the derivations all got in');
$_->terminate for @slow;

############ the queue full: a first login derives its secret inline

# A verifier of 8,000,000 iterations with made-up keys (a wrong password
# costs the same PBKDF2 run): the two threads are busy with the first two
# checks for seconds, and 62 more wait behind them (kdf.c holds 64 jobs).
my $fill_verifier = sprintf('SCRAM-SHA-256$%d:%s$%s:%s', 8000000, encode_base64('f' x 16, ''),
	encode_base64('k' x 32, ''), encode_base64('s' x 32, ''));
$node->safe_psql('postgres', "CREATE ROLE fill LOGIN PASSWORD '$fill_verifier'");

sub start_fill_check
{
	my $raw = start_login('fill', 'postgres');
	$raw->read_message(hang_guard());	# the request for a cleartext password
	$raw->send_bytes(PgbunTest::Raw::message('p', "wrong-pw\0"));
	return $raw;
}
my @fill = map { start_fill_check() } 1 .. 64;
my $over = start_fill_check();
my $ov = $over->authenticate(secs => hang_guard());
is($ov->{error}{C} // '', '53300', 'the queue full: a 65th password check is refused with 53300');
like($ov->{error}{M} // '', qr/^pgbun: too many password checks/, 'and told why');
$over->close;
ok(raw_connect($node)->login(user => 'af4', password => 'af4-pw', database => 'remote', secs => 120)->{ok},
	'the queue full: af4\'s first login gets in');
like(slurp_file($node->logfile), qr/derived the SCRAM secret of auth_file role "af4" inline/,
	'its secret was derived inline');
is(derivations('af4', 1), 0, 'no derivation of af4 was queued');
$_->close for @fill;
# The worker reads nothing of a login waiting for its check, yet it notices
# the hang-ups and cancels the jobs: the 62 waiting ones are dropped, the
# two running ones forgotten (no answer is logged for any of them).
# (53300 until the worker has seen the hang-ups: try again)
ok(wait_until(
		sub {
			raw_connect($node)->login(user => 'slow', password => 'slow-pw', database => 'postgres', secs => 120)->{ok};
		},
		hang_guard(), 0.1),
	'a password check gets in again');
is(log_count($node, qr/password authentication failed for user "fill"/), 0,
	'none of the 64 checks was answered (the jobs were dropped)');
$bystander->send_bytes(PgbunTest::Raw::query_message('SELECT 6 * 7'));
is($bystander->read_result(hang_guard())->{rows}[0][0] // '', '42', 'the bystander is still served');
$bystander->terminate;

stop_node($node);
unlike(slurp_file($node->logfile), qr/pgbun worker.*terminated by signal/, 'the worker never restarted');
$remote->stop;
done_testing();

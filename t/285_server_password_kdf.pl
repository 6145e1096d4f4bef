# 285_server_password_kdf: a configured password's SCRAM keys are derived
# off the event loop.
#
# A database entry with user= and password= logs in to the server with
# SCRAM: pgbun derives the keys of that password for the salt and iteration
# count the server sends (PBKDF2), once per salt, and keeps them on the
# entry. The role here has a verifier with 400,000 iterations, so each
# derivation takes a visible while (and is above the 100,000 pgbun used to
# allow when it ran them on its loop):
#
#  - a client of such an entry gets in, runs as the forced role, and the
#    second login reuses the kept keys (one derivation, logged at DEBUG1);
#  - once eight entries' first logins have all started their derivation
#    (the worker's DEBUG1 lines), an already connected client's query is
#    answered before they are done (run on the loop, the eighth would only
#    start after the seventh, and the query come after all of them);
#  - a wrong password still ends in the server's 28P01 for the client;
#  - the worker shuts down cleanly with derivations running.
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

my $node = pgbun_node(
	name => 'srvkdf',
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.auth_type' => 'trust',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.server_login_retry' => '300ms',
		'pgbun.query_wait_timeout' => '120s',
		'log_min_messages' => 'debug1',
	},
	hba_extra => [ 'host all slow 127.0.0.1/32 scram-sha-256' ]);
my $port = $node->port;

# A SCRAM verifier with many iterations, made here the way PostgreSQL does.
sub slow_verifier
{
	my ($password, $iterations) = @_;
	my $salt = join('', map { chr(int(rand(256))) } 1 .. 16);
	my $salted = PgbunTest::Scram::pbkdf2_sha256($password, $salt, $iterations);
	return sprintf('SCRAM-SHA-256$%d:%s$%s:%s', $iterations, encode_base64($salt, ''),
		encode_base64(sha256(hmac_sha256('Client Key', $salted)), ''),
		encode_base64(hmac_sha256('Server Key', $salted), ''));
}
my $iterations = 400000;
my $verifier = slow_verifier('slow-pw', $iterations);
$node->safe_psql('postgres', "CREATE ROLE slow LOGIN PASSWORD '$verifier'");

my @entries = map { "k$_ = host=127.0.0.1 port=$port dbname=postgres user=slow password=slow-pw" } 0 .. 12;
push @entries, "kbad = host=127.0.0.1 port=$port dbname=postgres user=slow password=wrong";
reload_conf($node, 'pgbun.databases' => join('; ', @entries));
ok(wait_until(sub { (pgbun_psql($node, 'SELECT 1', dbname => 'postgres'))[0] == 0 }, hang_guard(), 0.2),
	'pgbun serves after the reload');
my $identity = server_identity($node);

# Derivations finished (started with $started) so far, from the worker's DEBUG1 lines.
sub derivations
{
	my ($started) = @_;
	my $log = slurp_file($node->logfile);
	my @n = $started
	  ? $log =~ /pgbun: deriving the SCRAM keys of the password for user "slow"/g
	  : $log =~ /pgbun: derived the SCRAM keys of the password for user "slow"/g;
	return scalar @n;
}

############ one entry: the login works, the keys are kept

my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', dbname => 'k0', user => 'slow', timeout => 120);
is($rc, 0, 'a client of the entry gets in') or diag($err);
is($out, 'slow', 'and runs as the forced role (pgbun logged in with the derived keys)');
is(derivations(0), 1, 'one derivation for that login');
# a second server connection of the same entry: a second client while the first holds one
my $held = raw_connect($node);
ok($held->login(user => 'slow', database => 'k0', secs => 120)->{ok}, 'a client holds the entry\'s server');
$held->send_bytes(PgbunTest::Raw::query_message('BEGIN'));
$held->read_result(hang_guard());
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', dbname => 'k0', user => 'slow', timeout => 120);
is($out, 'slow', 'a second server connection of the entry logs in too') or diag($err);
is(derivations(0), 1, 'with the kept keys: no second derivation');
$held->terminate;

############ eight first logins at once: the loop goes on meanwhile

my $bystander = raw_connect($node);
ok($bystander->login(user => PgbunTest::bootstrap_user(), database => 'postgres')->{ok}, 'a bystander logs in');
is($bystander->query('SELECT 1')->{rows}[0][0] // '', '1', 'and has its server');

my @logins;
for my $i (1 .. 8)
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'slow', database => "k$i" ]));
	my $m = $raw->read_message(hang_guard());
	my ($code) = unpack('N', $m->{body} // "\0\0\0\0");
	is("$m->{type}:$code", 'R:0', "login $i is let in and waits for its entry's first server");
	push @logins, $raw;
}
# the log is written by the worker as it goes, not through its loop
ok(wait_until(sub { derivations(1) >= 9 }, hang_guard(), 0.01), 'all eight derivations have started');
$bystander->send_bytes(PgbunTest::Raw::query_message('SELECT 41 + 1'));
my $r = $bystander->read_result(hang_guard());
my $done = derivations(0) - 1;
my $ready = grep { length($_->{buf}) > 0 || IO::Select->new($_->{sock})->can_read(0) } @logins;
is($r->{rows}[0][0] // '', '42', 'the bystander\'s query is answered meanwhile');
ok($done < 8 && $ready < 8,
	"before all eight derivations are done ($done of 8 done, $ready logins ready): the loop did not run them");

my $in = 0;
for my $i (0 .. 7)
{
	my $a = $logins[$i]->authenticate(secs => 120);
	$in++ if $a->{ok} && $logins[$i]->query('SELECT current_user')->{rows}[0][0] eq 'slow';
}
is($in, 8, 'all eight log in and run as the forced role');
is(derivations(0), 9, 'one derivation per entry');
$_->terminate for @logins;
$bystander->terminate;

############ a wrong password: the server's refusal reaches the client

my $bad = raw_connect($node)->login(user => 'slow', database => 'kbad', secs => 120);
is($bad->{error}{C} // '', '28P01', 'an entry with a wrong password: the client gets 28P01');
like($bad->{error}{M} // '', qr/password authentication failed for user "slow"/, 'the server\'s message');

check_server_same($node, $identity, 'end of 285');

############ shut down with derivations running

# entries no client used yet: each first login derives
my @late;
for my $i (9 .. 12)
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'slow', database => "k$i" ]));
	$raw->read_message(hang_guard());
	push @late, $raw;
}
ok(wait_until(sub { derivations(1) >= 14 }, hang_guard(), 0.01), 'four more derivations have started');
ok(derivations(0) < 14, 'and are still running as the server shuts down');
stop_node($node);
unlike(slurp_file($node->logfile), qr/pgbun worker.*terminated by signal/,
	'the worker exited cleanly with derivations running');
done_testing();

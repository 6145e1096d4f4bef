# 170_auth_delay: pgbun.auth_failure_delay holds the answer to a failed
# login without holding up anybody else.
#
#  - a wrong password is answered (28P01) only after the delay: meanwhile the
#    client is still listed as logging in;
#  - during that time another client logs in and runs a query (the worker
#    never sleeps);
#  - a held client that hangs up is closed at once, not kept (counted
#    against max_client_conn) until its answer is due, also when it sent a
#    second guess behind the failed one;
#  - the worker never restarts.
# The doubling per address and the cap are unit-tested (test_throttle.c).

use strict;
use warnings FATAL => 'all';

use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'authdelay', conf => { 'pgbun.auth_failure_delay' => '5s' });
$node->safe_psql('postgres', q{CREATE ROLE alice LOGIN PASSWORD 'alice-pw'});
my $identity = server_identity($node);

pipe(my $reader, my $writer) or die "pipe: $!";
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0)
{
	close $reader;
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'alice', password => 'wrong', database => 'postgres');
	print $writer ($r->{ok} ? 'ok' : ($r->{error}{C} // 'none')), "\n";
	close $writer;
	POSIX::_exit(0);			# no END blocks: they would stop the node
}
close $writer;

ok( wait_until(
		sub {
			$node->safe_psql('postgres', "SELECT count(*) FROM pgbun.clients WHERE state = 'login'") eq '1';
		}),
	'the client with the wrong password is held, still logging in');

my $raw = raw_connect($node);
my $r = $raw->login(user => 'alice', password => 'alice-pw', database => 'postgres');
ok($r->{ok}, 'meanwhile another client logs in') or diag(explain($r));
is($raw->query('SELECT 41 + 1')->{rows}[0][0] // '', '42', 'and runs a query: the worker does not wait');
$raw->terminate;

my $answer = <$reader>;
waitpid($pid, 0);
chomp($answer) if defined $answer;
is($answer // 'none', '28P01', 'after the delay the held client gets 28P01');
is($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.clients WHERE state = 'login'"),
	'0', 'and is gone');

# No login is in progress any more (the held one is closed).
sub no_login_left
{
	return wait_until(
		sub {
			$node->safe_psql('postgres', "SELECT count(*) FROM pgbun.clients WHERE state = 'login'") eq '0';
		});
}

# A second failure from this address, held twice as long (10 s); its
# client hangs up meanwhile.
my $answer_re = qr/error sent to the client: pgbun: password authentication failed/;
my $sent = log_count($node, $answer_re);
my $leaver = raw_connect($node);
my $lr = $leaver->login(user => 'alice', password => 'wrong', database => 'postgres', secs => 1);
ok($lr->{timeout} && !$lr->{error}, 'a second wrong password is held too') or diag(explain($lr));
$leaver->close;
ok(no_login_left(), 'the held client that hung up is gone');
is(log_count($node, $answer_re), $sent, 'closed for its hang-up, not answered at the end of its delay');

# The same when it sent another complete message behind its wrong password
# (a second guess, which is never read): nothing of a failed login would run.
my $guesser = raw_connect($node);
my $gr = $guesser->login(user => 'alice', password => 'wrong', database => 'postgres', secs => 1);
ok($gr->{timeout} && !$gr->{error}, 'a third wrong password is held') or diag(explain($gr));
$guesser->send_bytes(PgbunTest::Raw::message('p', "alice-pw\0"));
$guesser->close;
ok(no_login_left(), 'the held client that sent a second guess and hung up is gone');
is(log_count($node, $answer_re), $sent, 'closed for its hang-up too, not answered at the end of its delay');

check_server_same($node, $identity, 'end of 170');
stop_node($node);
done_testing();

# 040_pause_cancel: pgbun.pause() / pgbun.resume() and query cancel through
# the pooler.
#
#  - pause on an idle pool returns; a new client's query then waits
#    (cl_waiting) until resume, and gets the right answer after it;
#  - pause waits for a client holding a server: interrupted by
#    statement_timeout it reports the cancel, uninterrupted it returns once
#    the holder leaves;
#  - psql's Ctrl-C (SIGINT) cancels pg_sleep through the pooler;
#  - a CancelRequest with a wrong key (or another client's key) changes
#    nothing; the right key cancels.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'pause');
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

# Superuser control session straight to the server.
my $ctl = direct_session($node);
ok($ctl->connected, 'control session on the server');

# Warm the pool so it has an idle server and known parameters.
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice);
is($out, '1', 'a first query through pgbun') or diag($err);

############ pause with no session: returns, new queries wait, resume releases

my ($pout, $perr) = $ctl->query('SELECT pgbun.pause()', hang_guard());
ok(defined $pout, 'pgbun.pause() on an idle pool returns');
is($perr, '', 'pgbun.pause() reports no error');

my $late = pgbun_session($node, %alice, wait => 0);
$late->send("SELECT 'late ' || 6 * 7;");
my ($matched, $last) = poll_sql($node,
	'SELECT coalesce(sum(cl_waiting), 0) >= 1 FROM pgbun.pools', 't');
ok($matched, 'while paused a new client waits (pgbun.pools.cl_waiting >= 1)')
  or diag("last: $last");
ok($late->alive, 'the waiting client is still running');
unlike($late->stdout, qr/late 42/, 'the waiting client has no answer while paused');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'alice' AND state IN ('waiting', 'waiting_login')"),
	'1', 'pgbun.clients shows the client waiting');

($pout, $perr) = $ctl->query('SELECT pgbun.resume()', hang_guard());
is($perr, '', 'pgbun.resume() reports no error');
ok($late->wait_output(qr/late 42/, secs => hang_guard()),
	'after resume the waiting query completes with the right answer')
  or diag('stderr: ' . $late->stderr);
is($late->stderr, '', 'the waiting client saw no error');
$late->quit;

############ pause one database: the others go on

$node->safe_psql('postgres', 'CREATE DATABASE otherdb');
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, dbname => 'otherdb');
is($out, '1', 'a first query in otherdb') or diag($err);
($pout, $perr) = $ctl->query("SELECT pgbun.pause('otherdb')", hang_guard());
is($perr, '', "pgbun.pause('otherdb') returns without error");

($rc, $out, $err) = pgbun_psql($node, 'SELECT 9', %alice);
is($out, '9', 'while otherdb is paused, database postgres is served') or diag($err);

my $other_db = pgbun_session($node, %alice, dbname => 'otherdb', wait => 0);
$other_db->send("SELECT 'otherdb ' || 10;");
($matched, $last) = poll_sql($node,
	"SELECT cl_waiting FROM pgbun.pools WHERE database = 'otherdb' AND \"user\" = 'alice'", '1');
ok($matched, 'a client of the paused database waits') or diag("last: $last");
unlike($other_db->stdout, qr/otherdb 10/, 'and has no answer yet');
($pout, $perr) = $ctl->query("SELECT pgbun.resume('otherdb')", hang_guard());
is($perr, '', "pgbun.resume('otherdb')");
ok($other_db->wait_output(qr/otherdb 10/, secs => hang_guard()),
	'after resuming otherdb its client is served')
  or diag('stderr: ' . $other_db->stderr);
$other_db->quit;

############ pause while a session holds a server

my $holder = pgbun_session($node, %alice);
ok($holder->connected, 'holder connects') or diag($holder->connect_error);
my $holder_pid = $holder->query('SELECT pg_backend_pid()');
like($holder_pid // '', qr/^\d+$/, 'holder holds a server');

$ctl->query("SET statement_timeout = '1s'");
($pout, $perr) = $ctl->query('SELECT pgbun.pause()', hang_guard());
ok(defined $pout, 'pause with statement_timeout returns control');
like($perr, qr/canceling statement due to statement timeout/,
	'pause does not return early while a session holds a server: statement_timeout cancels it');
$ctl->query('RESET statement_timeout');

# The same wait gives way to a query cancel.
$ctl->send("SELECT pgbun.pause();\n\\echo cancelled pause returned\n");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pgbun.pause();%'",
	'1');
my $pause_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pgbun.pause();%'");
like($pause_pid, qr/^\d+$/, 'a pause is waiting for the holder');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pause_pid)") if $pause_pid =~ /^\d+$/;
ok( $ctl->wait_output(qr/canceling statement due to user request/, which => 'err', secs => hang_guard()),
	'pg_cancel_backend interrupts the waiting pause')
  or diag('stderr: ' . $ctl->stderr);
ok($ctl->wait_output(qr/cancelled pause returned/, secs => hang_guard()), 'the control session goes on');
$ctl->clear;

is($holder->query('SELECT pg_backend_pid()'), $holder_pid,
	'the holder keeps working on its server while the pause is pending');

# Without a timeout the pause returns once the holder leaves.
$ctl->send("SELECT pgbun.pause();\n\\echo pause returned\n");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pgbun.pause();%'",
	'1');
ok($matched, 'the second pause is running on the server') or diag("last: $last");
unlike($ctl->stdout, qr/pause returned/, 'the pause has not returned while the holder is there');
$holder->quit;
ok($ctl->wait_output(qr/pause returned/, secs => hang_guard()),
	'the pause returns once the holder has left')
  or diag('stderr: ' . $ctl->stderr);
like($ctl->stderr, qr/^\s*$/, 'the pause reported no error');

($pout, $perr) = $ctl->query('SELECT pgbun.resume()', hang_guard());
is($perr, '', 'resume after the pause');
($rc, $out, $err) = pgbun_psql($node, 'SELECT 8', %alice);
is($out, '8', 'after resume clients are served again') or diag($err);

############ cancel through psql (SIGINT -> CancelRequest through the pooler)

my $sleeper = pgbun_session($node, %alice, application_name => 'pgbun_t040_sleeper');
ok($sleeper->connected, 'sleeper connects') or diag($sleeper->connect_error);
my $spid = $sleeper->query('SELECT pg_backend_pid()');
like($spid // '', qr/^\d+$/, 'sleeper holds a server');
$sleeper->send('SELECT pg_sleep(600);');
($matched, $last) = poll_sql($node,
	"SELECT state FROM pg_stat_activity WHERE pid = " . ($spid || 0)
	  . " AND query LIKE 'SELECT pg_sleep(600)%'",
	'active');
ok($matched, 'pg_sleep is running on the sleeper\'s server') or diag("last: $last");

$sleeper->signal('INT');
ok( $sleeper->wait_output(
		qr/canceling statement due to user request/, which => 'err', secs => hang_guard()),
	'psql\'s SIGINT cancels pg_sleep through pgbun')
  or diag('stderr: ' . $sleeper->stderr);
# psql reading a script stops after a cancel; the server connection survives.
$sleeper->quit;
($matched, $last) = poll_sql($node,
	"SELECT state FROM pg_stat_activity WHERE pid = " . ($spid || 0), 'idle');
ok($matched, 'the cancelled server backend is back in the pool, idle') or diag("last: $last");

############ raw CancelRequest: wrong key, another client's key, right key

my $raw = raw_connect($node);
my $login = $raw->login(%alice);
ok($login->{ok}, 'raw client logs in') or diag(explain($login));
my ($ckpid, $ckkey) = ($login->{pid} // 0, $login->{key} // 0);
my $bpid = $raw->query('SELECT pg_backend_pid()')->{rows}[0][0] // 0;
like($bpid, qr/^\d+$/, 'raw client has a server backend');
isnt($ckpid, $bpid, 'the client\'s cancel pid is pgbun\'s, not the backend\'s')
  if $ckpid;

my $other = raw_connect($node);
my $olog = $other->login(%alice);
ok($olog->{ok}, 'a second raw client logs in') or diag(explain($olog));

$raw->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(600)'));
($matched, $last) = poll_sql($node,
	"SELECT state FROM pg_stat_activity WHERE pid = $bpid AND query LIKE 'SELECT pg_sleep(600)%'",
	'active');
ok($matched, 'raw client\'s pg_sleep is running') or diag("last: $last");

my @bad_keys = (
	[ 'wrong key', $ckpid, $ckkey ^ 0x5a5a5a5a ],
	[ 'wrong pid', $ckpid ^ 1, $ckkey ],
	[ 'another client\'s key', $ckpid, $olog->{key} // 1 ],
	[ 'the server backend\'s pid', $bpid, $ckkey ],);
foreach my $bad (@bad_keys)
{
	my ($label, $pid, $key) = @$bad;
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($pid, $key));
	my $res = $c->read_to_eof(hang_guard());
	ok($res->{eof}, "CancelRequest with $label: pgbun closes the connection");
	$c->close;
}
# Give a wrongly forwarded cancel time to land, then check nothing happened.
my $m = $raw->read_message(2);
ok($m->{timeout}, 'after the bad CancelRequests the query is still running (no answer)')
  or diag(explain($m));
is( $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $bpid"),
	'active', 'the server backend is still running pg_sleep');
my $ores = $other->query('SELECT 11');
is_deeply($ores->{rows}, [ ['11'] ], 'the other client is unaffected');

my $c = raw_connect($node);
$c->send_bytes(PgbunTest::Raw::cancel_request($ckpid, $ckkey));
my $res = $raw->read_result(hang_guard());
is($res->{error}{C} // '', '57014', 'the right CancelRequest cancels the query: 57014')
  or diag(explain($res));
like($res->{error}{M} // '', qr/canceling statement due to user request/,
	'the cancel error comes from the server unchanged');
ok($res->{ok}, 'ReadyForQuery follows the cancel');
$c->close;
$res = $raw->query('SELECT 12');
is_deeply($res->{rows}, [ ['12'] ], 'the cancelled client keeps working');
$raw->terminate;
$other->terminate;

check_server_same($node, $identity, 'end of 040');
$ctl->quit;
stop_node($node);
done_testing();

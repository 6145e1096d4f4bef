# 041_cancel_late: a CancelRequest that reaches the server after the query
# it was meant for has ended must not cancel the next client's query.
#
# PostgreSQL takes a cancel on a new connection, signals the backend, and
# only then closes that connection. Stopping the postmaster (SIGSTOP) holds
# a forwarded cancel in its listen queue for as long as the test likes,
# while the backends, already connected, go on. So, with one server in a
# transaction-mode pool:
#
#  - client A's query waits on an advisory lock; A's CancelRequest is
#    forwarded into the stopped postmaster; the lock is released, A's query
#    ends normally;
#  - client B's query must then wait: the server is held (SHOW POOLS
#    sv_being_canceled = 1, SHOW SERVERS state being_canceled) until the
#    cancel connection ends;
#  - the postmaster goes on: the signal lands on an idle backend and does
#    nothing; B then gets the server and its query runs to the end.
#
# The same for pgbun's own cancel (query_timeout). Without the hold, B's
# query was cancelled with 57014.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'cancel_late',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		# reload_sync's probe needs the reset query of session pooling
		'pgbun.users' => 'prober = pool_mode=session',
	});
$node->safe_psql('postgres',
	"CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; "
	  . "CREATE ROLE prober LOGIN PASSWORD 'prober-pw'; "
	  . "CREATE ROLE mon LOGIN PASSWORD 'mon-pw'; GRANT pg_monitor TO mon; "
	  . "CREATE TABLE ran (who text); GRANT ALL ON ran TO alice");
my %alice = (user => 'alice', password => 'alice-pw');
my %probe = (user => 'prober', password => 'prober-pw');
my $identity = server_identity($node);

my $postmaster = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
like($postmaster, qr/^\d+$/, 'the postmaster pid');
my $stopped = 0;
END { kill 'CONT', $postmaster if $stopped && $postmaster; }

sub console_rows
{
	my ($what) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, "SHOW $what", user => 'mon', password => 'mon-pw',
		dbname => 'pgbouncer', on_error_stop => 0);
	return map { [ split /\|/ ] } grep { length } split /\n/, ($out // '');
}

# alice's row of SHOW POOLS: cl_waiting (3) and sv_being_canceled (8)
sub pool_counts
{
	my ($row) = grep { $_->[0] eq 'postgres' && $_->[1] eq 'alice' } console_rows('POOLS');
	return $row ? "cl_waiting=$row->[3] sv_being_canceled=$row->[8]" : 'no pool row';
}

# SQL counting the sessions waiting for advisory lock $n
sub lock_waiters
{
	my ($n) = @_;
	return "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $n AND NOT granted";
}

# Wait until pool_counts() says $want; returns (matched, last seen).
sub wait_counts
{
	my ($want) = @_;
	my $last = '';
	my $ok = wait_until(sub { ($last = pool_counts()) eq $want });
	return ($ok, $last);
}

# One round: $send_cancel forwards a cancel for A's running query (client's
# or pgbun's own), with the postmaster stopped so it cannot land.
sub late_cancel_round
{
	my ($label, $send_cancel) = @_;

	my $a = raw_connect($node);
	my $alog = $a->login(%alice);
	ok($alog->{ok}, "$label: client A logs in") or diag(explain($alog));
	my $b = raw_connect($node);
	ok($b->login(%alice)->{ok}, "$label: client B logs in");

	# 41 holds A's query until the test lets go; 42 holds B's while it runs
	my $locker = direct_session($node);
	$locker->query('SELECT pg_advisory_lock(41), pg_advisory_lock(42)', hang_guard());
	$a->send_bytes(PgbunTest::Raw::query_message("SELECT pg_advisory_xact_lock(41), 'a'"));
	my ($matched, $last) = poll_sql($node, lock_waiters(41), '1');
	ok($matched, "$label: A's query waits on the lock") or diag("last: $last");

	kill 'STOP', $postmaster;
	$stopped = 1;
	$send_cancel->($a, $alog);

	# A's query ends by itself; the cancel is still queued at the postmaster
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	my $ares = $a->read_result(hang_guard());
	ok($ares->{ok} && !$ares->{error}, "$label: A's query ends normally") or diag(explain($ares));

	$b->send_bytes(PgbunTest::Raw::query_message(
		"SELECT pg_advisory_xact_lock(42); INSERT INTO ran VALUES ('$label'); SELECT 'b done'"));
	# held back (right), or B's query already running into the cancel (wrong)
	my $b_running = sub { ($locker->query(lock_waiters(42), hang_guard()))[0] eq '1' };
	ok(wait_until(sub { pool_counts() eq 'cl_waiting=1 sv_being_canceled=1' || $b_running->() }),
		"$label: B waits, or runs");
	is(pool_counts(), 'cl_waiting=1 sv_being_canceled=1',
		"$label: while the cancel is in flight B waits and the server is held back");
	my @held = grep { ($_->[1] // '') eq 'alice' && ($_->[4] // '') eq 'being_canceled' } console_rows('SERVERS');
	is(scalar(@held), 1, "$label: SHOW SERVERS shows the server as being_canceled");

	kill 'CONT', $postmaster;
	$stopped = 0;
	# the cancel's connection was queued before this one: it has landed by now
	$node->safe_psql('postgres', 'SELECT 1');
	($matched, $last) = wait_counts('cl_waiting=0 sv_being_canceled=0');
	ok($matched, "$label: the server is given to B once the cancel is done") or diag("last: $last");
	($matched, $last) = poll_sql($node, lock_waiters(42), '1');
	ok($matched, "$label: B's query runs") or diag("last: $last");
	$locker->query('SELECT pg_advisory_unlock(42)', hang_guard());
	my $bres = $b->read_result(hang_guard());
	is($bres->{error}{C} // '', '', "$label: B's query is not cancelled") or diag(explain($bres));
	is_deeply($bres->{rows}[-1], ['b done'], "$label: B's query runs to its end");
	is($node->safe_psql('postgres', "SELECT count(*) FROM ran WHERE who = '$label'"),
		'1', "$label: B's statement ran once");
	my $again = $a->query('SELECT 41');
	is_deeply($again->{rows}, [ ['41'] ], "$label: A keeps working");
	$a->terminate;
	$b->terminate;
	$locker->quit;
}

late_cancel_round(
	'client cancel',
	sub {
		my ($a, $alog) = @_;
		# several: with two workers some land on the worker not holding the server
		for my $i (1 .. 4)
		{
			my $c = raw_connect($node);
			$c->send_bytes(PgbunTest::Raw::cancel_request($alog->{pid}, $alog->{key}));
			# pgbun closes the CancelRequest's connection once it has forwarded it
			ok($c->read_to_eof(hang_guard())->{eof}, "client cancel: CancelRequest $i is taken");
			$c->close;
		}
	});

# long enough that the lock wait is seen, and the postmaster stopped, before it fires
reload_sync($node, \%probe, 'pgbun.query_timeout' => '3s');
late_cancel_round(
	'query_timeout',
	sub {
		ok(wait_until(sub { log_count($node, qr/query_timeout: cancelling a query of postgres\/alice/) == 1 }),
			'query_timeout: pgbun sends its own cancel');
	});
reload_sync($node, \%probe, 'pgbun.query_timeout' => undef);

# A cancel the server never takes (the postmaster stays stopped past the
# cancel connection's 5 s): it may still land, so its server is not reused
# but closed; B gets a new one once the postmaster goes on.
{
	my $a = raw_connect($node);
	my $alog = $a->login(%alice);
	my $apid = $a->query('SELECT pg_backend_pid()')->{rows}[0][0];
	my $b = raw_connect($node);
	ok($b->login(%alice)->{ok}, 'stuck cancel: client B logs in');
	my $locker = direct_session($node);
	$locker->query('SELECT pg_advisory_lock(41)', hang_guard());
	$a->send_bytes(PgbunTest::Raw::query_message("SELECT pg_advisory_xact_lock(41), 'a'"));
	ok((poll_sql($node, lock_waiters(41), '1'))[0], 'stuck cancel: A waits on the lock');
	kill 'STOP', $postmaster;
	$stopped = 1;
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($alog->{pid}, $alog->{key}));
	ok($c->read_to_eof(hang_guard())->{eof}, 'stuck cancel: the CancelRequest is taken');
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	ok($a->read_result(hang_guard())->{ok}, "stuck cancel: A's query ends normally");
	$b->send_bytes(PgbunTest::Raw::query_message('SELECT pg_backend_pid()'));
	ok(wait_until(sub { log_count($node, qr/a cancel request was not taken within 5000 ms/) == 1 }),
		'stuck cancel: pgbun gives up on the cancel connection');
	ok(wait_until(sub { log_count($node, qr/closing a server connection of postgres\/alice: a cancel request sent for it did not complete/) == 1 }),
		'stuck cancel: and closes the server it was for, which nobody got meanwhile');
	kill 'CONT', $postmaster;
	$stopped = 0;
	my $bres = $b->read_result(hang_guard());
	ok($bres->{ok} && !$bres->{error}, 'stuck cancel: B is served') or diag(explain($bres));
	isnt($bres->{rows}[0][0] // '', $apid, 'stuck cancel: by a new server');
	$a->terminate;
	$b->terminate;
	$locker->quit;
}

check_server_same($node, $identity, 'end of 041');
stop_node($node);
done_testing();

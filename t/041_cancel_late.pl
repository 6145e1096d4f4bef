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
#
# Then, each with the postmaster stopped: a cancel the server never takes
# (its server is closed, not reused); a client that leaves its CancelRequest
# (Terminate) and one closed by KILL_CLIENT; a full listen queue on the
# server's socket (the cancel waits for room; a server login fails at once);
# a cancel while pgbun's own SETs run for the client (it waits for them);
# a cancel on its way when pgbun puts a client's values back after RESET
# ALL (the SET waits for it); and in session mode, when server_reset_query
# would run (the reset waits). Throughout, a CancelRequest's connection
# stays open until the server took the cancel, as PostgreSQL's does, and
# SHOW POOLS / SHOW CLIENTS / the views / the metrics count it.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;
use Socket qw(PF_UNIX SOCK_STREAM pack_sockaddr_un);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(
	name => 'cancel_late',
	conf => {
		'pgbun.metrics_port' => $mport,
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		# reload_sync's probe needs the reset query of session pooling
		'pgbun.users' => 'prober = pool_mode=session; sess = pool_mode=session',
	});
$node->safe_psql('postgres',
	"CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; "
	  . "CREATE ROLE prober LOGIN PASSWORD 'prober-pw'; "
	  . "CREATE ROLE mon LOGIN PASSWORD 'mon-pw'; GRANT pg_monitor TO mon; "
	  . "CREATE ROLE sess LOGIN PASSWORD 'sess-pw'; "
	  . "CREATE ROLE adm LOGIN PASSWORD 'adm-pw'; GRANT pgbun_admin TO adm; "
	  . "CREATE ROLE fq LOGIN PASSWORD 'fq-pw'; "
	  . "CREATE TABLE ran (who text); GRANT ALL ON ran TO alice");
my %alice = (user => 'alice', password => 'alice-pw');
my %probe = (user => 'prober', password => 'prober-pw');
my %sess = (user => 'sess', password => 'sess-pw');
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

# a user's row (alice's by default) of SHOW POOLS: cl_waiting (3) and sv_being_canceled (8)
sub pool_counts
{
	my ($user) = @_;
	$user //= 'alice';
	my ($row) = grep { $_->[0] eq 'postgres' && $_->[1] eq $user } console_rows('POOLS');
	return $row ? "cl_waiting=$row->[3] sv_being_canceled=$row->[8]" : 'no pool row';
}

# SQL counting the sessions waiting for advisory lock $n
sub lock_waiters
{
	my ($n) = @_;
	return "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $n AND NOT granted";
}

# Wait until pool_counts($user) says $want; returns (matched, last seen).
sub wait_counts
{
	my ($want, $user) = @_;
	return wait_counts_of(sub { pool_counts($user) }, $want);
}

# Wait until $counts->() says $want; returns (matched, last seen).
sub wait_counts_of
{
	my ($counts, $want) = @_;
	my $last = '';
	my $ok = wait_until(sub { ($last = $counts->()) eq $want });
	return ($ok, $last);
}

# a user's SHOW POOLS columns of cancels: cl_active_cancel_req (4),
# cl_waiting_cancel_req (5), sv_active_cancel (7)
sub cancel_counts
{
	my ($user) = @_;
	$user //= 'alice';
	my ($row) = grep { $_->[0] eq 'postgres' && $_->[1] eq $user } console_rows('POOLS');
	return $row ? "cl_active_cancel_req=$row->[4] cl_waiting_cancel_req=$row->[5] sv_active_cancel=$row->[7]"
	  : 'no pool row';
}

# Send a CancelRequest with a client's key (login result $log); returns its connection.
sub send_cancel
{
	my ($log) = @_;
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($log->{pid}, $log->{key}));
	return $c;
}

# Stop the postmaster, then send a CancelRequest: pgbun forwards it, and it
# stays queued at the postmaster until the test sends SIGCONT. As
# PostgreSQL, pgbun keeps the CancelRequest's connection open until the
# server has taken the cancel. Returns that connection.
sub stop_and_cancel
{
	my ($log, $label, $user) = @_;
	kill 'STOP', $postmaster;
	$stopped = 1;
	my $c = send_cancel($log);
	my $want = 'cl_active_cancel_req=1 cl_waiting_cancel_req=0 sv_active_cancel=1';
	my $last = '';
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until(sub { ($last = cancel_counts($user)) eq $want }),
		"$label: the cancel is on its way, its CancelRequest's connection open") or diag("last: $last");
	return $c;
}

# Let the postmaster go on after stop_and_cancel, first checking the cancel
# is still on its way: pgbun gives up on one after 5 s, which would void
# what the test checked while it waited.
sub resume_postmaster
{
	my ($label, $user, $want) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(cancel_counts($user), $want // 'cl_active_cancel_req=1 cl_waiting_cancel_req=0 sv_active_cancel=1',
		"$label: the cancel was still on its way when the postmaster went on");
	kill 'CONT', $postmaster;
	$stopped = 0;
}

# The CancelRequest's connection $c ends once the cancel is done.
sub cancel_closes_ok
{
	my ($c, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($c->read_to_eof(hang_guard())->{eof}, $label);
	$c->close;
}

# Client A (alice) logs in, and its query waits on advisory lock 41, which
# a direct session holds. Returns (A, A's login result, that session).
sub a_waits_on_lock
{
	my ($label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $a = raw_connect($node);
	my $alog = $a->login(%alice);
	ok($alog->{ok}, "$label: client A logs in") or diag(explain($alog));
	my $locker = direct_session($node);
	$locker->query('SELECT pg_advisory_lock(41)', hang_guard());
	$a->send_bytes(PgbunTest::Raw::query_message("SELECT pg_advisory_xact_lock(41), 'a'"));
	ok((poll_sql($node, lock_waiters(41), '1'))[0], "$label: A waits on the lock");
	return ($a, $alog, $locker);
}

# One round: $send_cancel forwards a cancel for A's running query (client's
# or pgbun's own), with the postmaster stopped so it cannot land.
sub late_cancel_round
{
	my ($label, $send_cancel, $in_flight) = @_;

	my $a = raw_connect($node);
	my $alog = $a->login(%alice);
	ok($alog->{ok}, "$label: client A logs in") or diag(explain($alog));
	# the pool's one server, which B must get after A
	my $apid = $a->query('SELECT pg_backend_pid()')->{rows}[0][0] // 'none';
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
	my @cancels = $send_cancel->($a, $alog, $locker);

	# A's query ends by itself; the cancel is still queued at the postmaster
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	my $ares = $a->read_result(hang_guard());
	ok($ares->{ok} && !$ares->{error}, "$label: A's query ends normally") or diag(explain($ares));

	$b->send_bytes(PgbunTest::Raw::query_message(
		"SELECT pg_advisory_xact_lock(42); INSERT INTO ran VALUES ('$label'); SELECT 'b done', pg_backend_pid()"));
	# held back (right), or B's query already running into the cancel (wrong)
	my $b_running = sub { ($locker->query(lock_waiters(42), hang_guard()))[0] eq '1' };
	ok(wait_until(sub { pool_counts() eq 'cl_waiting=1 sv_being_canceled=1' || $b_running->() }),
		"$label: B waits, or runs");
	is(pool_counts(), 'cl_waiting=1 sv_being_canceled=1',
		"$label: while the cancel is in flight B waits and the server is held back");
	my @held = grep { ($_->[1] // '') eq 'alice' && ($_->[4] // '') eq 'being_canceled' } console_rows('SERVERS');
	is(scalar(@held), 1, "$label: SHOW SERVERS shows the server as being_canceled");
	# the SQL views, through a session that was open before the postmaster stopped
	is( ($locker->query(
				"SELECT sv_being_canceled || ',' || cl_waiting FROM pgbun.pools WHERE \"user\" = 'alice'",
				hang_guard()))[0],
		'1,1', "$label: pgbun.pools says so too");
	is( ($locker->query(
				"SELECT count(*) FROM pgbun.servers WHERE \"user\" = 'alice' AND state = 'being_canceled'",
				hang_guard()))[0],
		'1', "$label: and pgbun.servers");

	resume_postmaster($label, 'alice', $in_flight);
	# most likely served after the cancel's connection (which wait_counts then makes sure of)
	$node->safe_psql('postgres', 'SELECT 1');
	($matched, $last) = wait_counts('cl_waiting=0 sv_being_canceled=0');
	ok($matched, "$label: the server is given to B once the cancel is done") or diag("last: $last");
	cancel_closes_ok($cancels[$_ - 1], "$label: CancelRequest $_ ends once the server took it") for 1 .. @cancels;
	($matched, $last) = wait_counts_of(\&cancel_counts, 'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=0');
	ok($matched, "$label: no cancel is left on its way") or diag("last: $last");
	($matched, $last) = poll_sql($node, lock_waiters(42), '1');
	ok($matched, "$label: B's query runs") or diag("last: $last");
	$locker->query('SELECT pg_advisory_unlock(42)', hang_guard());
	my $bres = $b->read_result(hang_guard());
	is($bres->{error}{C} // '', '', "$label: B's query is not cancelled") or diag(explain($bres));
	is($bres->{rows}[-1][0] // '', 'b done', "$label: B's query runs to its end");
	# one worker: B has A's server, the one the cancel was for (with two, B's
	# worker may get a new one once A's gives its up)
	is($bres->{rows}[-1][1] // '', $apid, "$label: on A's backend")
	  if ($ENV{PGBUN_TEST_WORKERS} // 1) == 1;
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
		my ($a, $alog, $locker) = @_;
		# several: with two workers, each may land on either worker (the kernel picks)
		my @c = map { send_cancel($alog) } 1 .. 4;
		# PostgreSQL closes a CancelRequest's connection once it has signalled the backend: so does pgbun
		my $want = 'cl_active_cancel_req=4 cl_waiting_cancel_req=0 sv_active_cancel=4';
		my $last = '';
		ok(wait_until(sub { ($last = cancel_counts()) eq $want }),
			'client cancel: four cancels on their way, their CancelRequests waiting (SHOW POOLS)')
		  or diag("last: $last");
		is(scalar(grep { ($_->[1] // '') eq 'alice' && ($_->[4] // '') eq 'active_cancel_req' } console_rows('CLIENTS')),
			4, 'client cancel: SHOW CLIENTS shows them as active_cancel_req');
		my (undef, undef, $m) = http_get($mport, '/metrics');
		is(metric_sample($m, 'pgbun_pool_cancel_requests{database="postgres",user="alice",state="active"}') // 'none',
			4, 'client cancel: the metrics count the four CancelRequests');
		is(metric_sample($m, 'pgbun_pool_server_cancels{database="postgres",user="alice"}') // 'none',
			4, 'client cancel: and their cancel connections');
		# through a session opened before the postmaster stopped
		is( ($locker->query(
					"SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'alice' AND state = 'active_cancel_req'",
					hang_guard()))[0],
			'4', 'client cancel: and pgbun.clients');
		is( ($locker->query(
					"SELECT cl_active_cancel_req || ',' || cl_waiting_cancel_req || ',' || sv_active_cancel "
					  . "FROM pgbun.pools WHERE \"user\" = 'alice'",
					hang_guard()))[0],
			'4,0,4', 'client cancel: and pgbun.pools');
		return @c;
	},
	'cl_active_cancel_req=4 cl_waiting_cancel_req=0 sv_active_cancel=4');

# long enough that the lock wait is seen, and the postmaster stopped, before it
# fires; B's wait on its lock must stay under it too (checked after)
reload_sync($node, \%probe, 'pgbun.query_timeout' => '8s');
late_cancel_round(
	'query_timeout',
	sub {
		ok(wait_until(sub { log_count($node, qr/query_timeout: cancelling a query of postgres\/alice/) == 1 }),
			'query_timeout: pgbun sends its own cancel');
		is(cancel_counts(), 'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=1',
			'query_timeout: one cancel on its way, no client asked (SHOW POOLS)');
		return ();
	},
	'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=1');
is(log_count($node, qr/query_timeout: cancelling a query/), 1, "query_timeout: it cancelled A's query only");
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
	my $cc = stop_and_cancel($alog, 'stuck cancel');
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	ok($a->read_result(hang_guard())->{ok}, "stuck cancel: A's query ends normally");
	$b->send_bytes(PgbunTest::Raw::query_message('SELECT pg_backend_pid()'));
	ok(wait_until(sub { log_count($node, qr/a cancel request was not taken within 5000 ms/) == 1 }),
		'stuck cancel: pgbun gives up on the cancel connection');
	ok(wait_until(sub { log_count($node, qr/closing a server connection of postgres\/alice: a cancel request sent for it may still land/) == 1 }),
		'stuck cancel: and closes the server it was for, which nobody got meanwhile');
	# the server never closed it: pgbun gives up on the CancelRequest's connection too
	cancel_closes_ok($cc, 'stuck cancel: the CancelRequest ends when pgbun gives up');
	kill 'CONT', $postmaster;
	$stopped = 0;
	my $bres = $b->read_result(hang_guard());
	ok($bres->{ok} && !$bres->{error}, 'stuck cancel: B is served') or diag(explain($bres));
	isnt($bres->{rows}[0][0] // '', $apid, 'stuck cancel: by a new server');
	$a->terminate;
	$b->terminate;
	$locker->quit;
}

# A client that leaves its CancelRequest before the cancel is done (some
# drivers send a Terminate first): its connection goes, its cancel goes on.
# So does one closed by KILL_CLIENT, which sends it nothing (PostgreSQL
# never answers a CancelRequest).
{
	my $adm = raw_connect($node);
	ok($adm->login(user => 'adm', password => 'adm-pw', database => 'pgbouncer')->{ok},
		'cancel left: an admin logs in to the console');
	my ($a, $alog, $locker) = a_waits_on_lock('cancel left');
	my $cc = stop_and_cancel($alog, 'cancel left');
	$cc->send_bytes('X' . pack('N', 4));
	$cc->close;
	my $last = '';
	ok( wait_until(
			sub { ($last = cancel_counts()) eq 'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=1' }),
		'cancel left: the client connection is gone, the cancel still on its way')
	  or diag("last: $last");
	my $cc2 = send_cancel($alog);
	ok( wait_until(
			sub { ($last = cancel_counts()) eq 'cl_active_cancel_req=1 cl_waiting_cancel_req=0 sv_active_cancel=2' }),
		'cancel left: a second cancel on its way') or diag("last: $last");
	my ($row) = grep { ($_->[1] // '') eq 'alice' && ($_->[4] // '') eq 'active_cancel_req' } console_rows('CLIENTS');
	my $kill = $adm->query('KILL_CLIENT ' . ($row->[20] // 'none'));
	is_deeply($kill->{tags}, ['KILL_CLIENT'], 'cancel left: KILL_CLIENT of its CancelRequest') or diag(explain($kill));
	my $gone = $cc2->read_to_eof(hang_guard());
	ok($gone->{eof} && !@{ $gone->{msgs} }, 'cancel left: closes it, with no message');
	$cc2->close;
	resume_postmaster('cancel left', 'alice', 'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=2');
	my $ares = $a->read_result(hang_guard());
	is($ares->{error}{C} // '', '57014', "cancel left: the cancel stops A's query") or diag(explain($ares));
	ok(wait_until(sub { ($last = cancel_counts()) eq 'cl_active_cancel_req=0 cl_waiting_cancel_req=0 sv_active_cancel=0' }),
		'cancel left: and is done') or diag("last: $last");
	is_deeply($a->query('SELECT 41')->{rows}, [ ['41'] ], 'cancel left: A keeps working');
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	$a->terminate;
	$adm->terminate;
	$locker->quit;
}

# The server's listen queue full (connections piled up on its Unix socket
# while the postmaster is stopped): a cancel waits for room, then goes. Before,
# connect's EAGAIN was taken for a connection under way, and the cancel was lost.
{
	my ($a, $alog, $locker) = a_waits_on_lock('full queue');
	kill 'STOP', $postmaster;
	$stopped = 1;
	my $path = $node->host . '/.s.PGSQL.' . $node->port;
	my (@fill, $full, $why);
	for (1 .. 20000)
	{
		socket(my $s, PF_UNIX, SOCK_STREAM, 0) or do { $why = "socket: $!"; last };
		fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK);
		if (!connect($s, pack_sockaddr_un($path)))
		{
			$full = $!{EAGAIN};
			$why = "connect: $!";
			close $s;
			last;
		}
		push @fill, $s;
	}
	ok($full, "full queue: the postmaster's listen queue is full") or diag(scalar(@fill) . " queued, then $why");
	# a server login meanwhile fails at once, as libpq's connect does there
	# (before, it waited out server_connect_timeout); its client waits on.
	# A pool of its own, whose next login waits out server_login_retry.
	my $s = raw_connect($node);
	$s->login(user => 'fq', password => 'fq-pw', secs => 1);
	ok( wait_until(
			sub { log_count($node, qr/could not connect to server \S+: Resource temporarily unavailable/) >= 1 }),
		'full queue: a server login fails at once, with what connect said');
	$s->close;
	my $cc = send_cancel($alog);
	my $last = '';
	ok( wait_until(
			sub { ($last = cancel_counts()) eq 'cl_active_cancel_req=0 cl_waiting_cancel_req=1 sv_active_cancel=0' }),
		'full queue: the cancel waits for room') or diag("last: $last");
	close $_ for @fill;
	resume_postmaster('full queue', 'alice', 'cl_active_cancel_req=0 cl_waiting_cancel_req=1 sv_active_cancel=0');
	my $ares = $a->read_result(hang_guard());
	is($ares->{error}{C} // '', '57014', "full queue: once there is room, the cancel stops A's query")
	  or diag(explain($ares));
	cancel_closes_ok($cc, 'full queue: and its CancelRequest ends');
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	$a->terminate;
	$locker->quit;
}

# A CancelRequest that comes while the server runs pgbun's own SETs for the
# client (its settings, put on a server another client used) waits until
# they are done, then stops the client's query, as it would directly. Sent
# at once, it stopped the SET instead: the client's query then ran, and on,
# without its setting. The SET is held on a lock: temp_tablespaces looks
# its names up in pg_tablespace, which the test locks.
{
	my $c = raw_connect($node);
	my $clog = $c->login(%alice, params => [ temp_tablespaces => 'pg_default' ]);
	ok($clog->{ok}, 'cancel during SETs: a client with a setting logs in') or diag(explain($clog));
	is_deeply($c->query('SHOW temp_tablespaces')->{rows}, [ ['pg_default'] ],
		'cancel during SETs: its setting is in force');
	# another client on the one server puts it back to the default
	my $d = raw_connect($node);
	ok($d->login(%alice)->{ok}, 'cancel during SETs: a client without it logs in');
	is_deeply($d->query('SHOW temp_tablespaces')->{rows}, [ [''] ],
		'cancel during SETs: the other client has the default');

	my $locker = direct_session($node);
	$locker->query('BEGIN; LOCK TABLE pg_tablespace IN ACCESS EXCLUSIVE MODE; SELECT pg_advisory_lock(43)',
		hang_guard());
	$c->send_bytes(PgbunTest::Raw::query_message(
		"SELECT current_setting('temp_tablespaces'), pg_advisory_xact_lock(43)"));
	my ($matched, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_locks WHERE relation = 'pg_tablespace'::regclass AND NOT granted", '1');
	ok($matched, "cancel during SETs: pgbun's SET for the client waits on the lock") or diag("last: $last");
	my $cc = send_cancel($clog);
	my $want = 'cl_active_cancel_req=0 cl_waiting_cancel_req=1 sv_active_cancel=0';
	ok(wait_until(sub { ($last = cancel_counts()) eq $want }),
		'cancel during SETs: the cancel waits, and so does its CancelRequest (cl_waiting_cancel_req)')
	  or diag("last: $last");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_locks WHERE relation = 'pg_tablespace'::regclass AND NOT granted"),
		'1', "cancel during SETs: pgbun's SET still waits: the cancel did not stop it");
	$locker->query('COMMIT', hang_guard());
	my $res = $c->read_result(hang_guard());
	is($res->{error}{C} // '', '57014', "cancel during SETs: the cancel stops the client's query")
	  or diag(explain($res));
	cancel_closes_ok($cc, 'cancel during SETs: its CancelRequest ends once the server took it');
	is(scalar(grep { ($_->{C} // '') eq '57014' } @{ $res->{notices} // [] }), 0,
		"cancel during SETs: and not pgbun's SET (no notice of it)");
	$locker->query('SELECT pg_advisory_unlock(43)', hang_guard());
	is_deeply($c->query('SHOW temp_tablespaces')->{rows}, [ ['pg_default'] ],
		'cancel during SETs: the client keeps its setting');
	is(log_count($node, qr/pooler query failed on the server/), 0, 'cancel during SETs: no SET of pgbun failed');
	$c->terminate;
	$d->terminate;
	$locker->quit;
}

# A cancel on its way when pgbun puts a client's values back on its server
# (its RESET ALL took them): the query it was meant for ended by itself,
# and the SET must not be what it stops. The SET waits until the cancel is
# done. Sent at once, the cancel stopped it: the client got a notice and
# lost its setting. As above, the SET is held on a lock of pg_tablespace,
# and the postmaster is stopped so the cancel stays on its way.
{
	my $c = raw_connect($node);
	my $clog = $c->login(%alice, params => [ temp_tablespaces => 'pg_default' ]);
	ok($clog->{ok}, 'cancel before a restore: a client with a setting logs in') or diag(explain($clog));
	# its setting is on the pool's one server now: no SET before its next query
	my $cpid = $c->query("SELECT pg_backend_pid(), current_setting('temp_tablespaces')")->{rows}[0];
	is($cpid->[1] // '', 'pg_default', 'cancel before a restore: its setting is in force');
	$cpid = $cpid->[0] // 'none';
	my $locker = direct_session($node);
	my $watch = direct_session($node);	# out of the locker's transaction: pg_stat_activity is live
	$locker->query('BEGIN; LOCK TABLE pg_tablespace IN ACCESS EXCLUSIVE MODE; SELECT pg_advisory_lock(41)',
		hang_guard());
	$c->send_bytes(PgbunTest::Raw::query_message('RESET ALL; SELECT pg_advisory_xact_lock(41)'));
	my ($matched, $last) = poll_sql($node, lock_waiters(41), '1');
	ok($matched, "cancel before a restore: the client's query waits on the lock") or diag("last: $last");

	my $cc = stop_and_cancel($clog, 'cancel before a restore');
	# the query ends by itself; pgbun owes the client its value back
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	my $tablespace_waiters =
	  "SELECT count(*) FROM pg_locks WHERE relation = 'pg_tablespace'::regclass AND NOT granted";
	ok( wait_until(
			sub {
				($watch->query("SELECT state FROM pg_stat_activity WHERE pid = $cpid", hang_guard()))[0] eq 'idle'
				  || ($locker->query($tablespace_waiters, hang_guard()))[0] eq '1';
			}),
		"cancel before a restore: the client's query is over");
	# two round trips through the worker: it has read the query's end by now
	console_rows('POOLS') for 1 .. 2;
	is(($locker->query($tablespace_waiters, hang_guard()))[0],
		'0', "cancel before a restore: pgbun's SET waits for the cancel");
	is(($watch->query("SELECT query FROM pg_stat_activity WHERE pid = $cpid", hang_guard()))[0],
		'RESET ALL; SELECT pg_advisory_xact_lock(41)',
		"cancel before a restore: the backend's last query is still the client's");

	resume_postmaster('cancel before a restore');
	ok(wait_until(sub { ($locker->query($tablespace_waiters, hang_guard()))[0] eq '1' }),
		"cancel before a restore: once the cancel is done, the SET goes (and waits on the lock)");
	cancel_closes_ok($cc, 'cancel before a restore: its CancelRequest ends once the server took it');
	$locker->query('COMMIT', hang_guard());
	my $res = $c->read_result(hang_guard());
	ok($res->{ok} && !$res->{error}, "cancel before a restore: the client's query ended normally")
	  or diag(explain($res));
	is(scalar(grep { ($_->{C} // '') eq '57014' } @{ $res->{notices} // [] }), 0,
		"cancel before a restore: pgbun's SET was not cancelled (no notice of it)");
	is_deeply($c->query('SHOW temp_tablespaces')->{rows}, [ ['pg_default'] ],
		'cancel before a restore: the client has its setting back');
	is(log_count($node, qr/pooler query failed on the server/), 0, 'cancel before a restore: no SET of pgbun failed');
	$locker->query('SELECT pg_advisory_unlock_all()', hang_guard());
	$c->terminate;
	$locker->quit;
	$watch->quit;
}

# Session mode: a cancel on its way when the client leaves must not stop
# server_reset_query. The reset waits until the cancel is done (the server
# shows as being_canceled), then runs, and the server is reused. Sent at
# once, the reset was cancelled and the server closed. The reset is made to
# wait on an advisory lock the test holds.
reload_sync($node, \%probe,
	'pgbun.server_reset_query' => 'SELECT pg_advisory_lock(44), pg_advisory_unlock(44)');
{
	my $cancelled = qr/canceling statement due to user request/;
	my $cancelled_before = log_count($node, $cancelled);
	my $a = raw_connect($node);
	my $alog = $a->login(%sess);
	ok($alog->{ok}, 'cancel before the reset: a session-mode client logs in') or diag(explain($alog));
	my $apid = $a->query('SELECT pg_backend_pid()')->{rows}[0][0] // 'none';
	my $locker = direct_session($node);
	$locker->query('SELECT pg_advisory_lock(41), pg_advisory_lock(44)', hang_guard());
	$a->send_bytes(PgbunTest::Raw::query_message('SELECT pg_advisory_xact_lock(41)'));
	my ($matched, $last) = poll_sql($node, lock_waiters(41), '1');
	ok($matched, "cancel before the reset: the client's query waits on the lock") or diag("last: $last");

	my $cc = stop_and_cancel($alog, 'cancel before the reset', 'sess');
	$locker->query('SELECT pg_advisory_unlock(41)', hang_guard());
	my $ares = $a->read_result(hang_guard());
	ok($ares->{ok} && !$ares->{error}, "cancel before the reset: the client's query ends normally")
	  or diag(explain($ares));
	$a->terminate;
	# held back (right), or the reset already running into the cancel (wrong)
	ok( wait_until(
			sub {
				pool_counts('sess') =~ /sv_being_canceled=1/
				  || ($locker->query(lock_waiters(44), hang_guard()))[0] eq '1';
			}),
		'cancel before the reset: the server is held back, or reset');
	is(pool_counts('sess'), 'cl_waiting=0 sv_being_canceled=1',
		'cancel before the reset: while the cancel is in flight the server is held back');
	is(($locker->query(lock_waiters(44), hang_guard()))[0], '0',
		'cancel before the reset: and server_reset_query waits');

	resume_postmaster('cancel before the reset', 'sess');
	($matched, $last) = poll_sql($node, lock_waiters(44), '1');
	ok($matched, 'cancel before the reset: once the cancel is done, the reset runs') or diag("last: $last");
	cancel_closes_ok($cc, 'cancel before the reset: its CancelRequest ends once the server took it');
	$locker->query('SELECT pg_advisory_unlock(44)', hang_guard());
	ok( wait_until(
			sub {
				my @idle = grep { ($_->[1] // '') eq 'sess' && ($_->[4] // '') eq 'idle' } console_rows('SERVERS');
				return @idle == 1;
			}),
		'cancel before the reset: the server is back in the pool, idle');
	my $b = raw_connect($node);
	ok($b->login(%sess)->{ok}, 'cancel before the reset: the next client logs in');
	my $bres = $b->query('SELECT pg_backend_pid()');
	ok($bres->{ok} && !$bres->{error}, 'cancel before the reset: and is served') or diag(explain($bres));
	# one worker: the same server, reset and reused (with two, B's worker may have another)
	is($bres->{rows}[0][0] // '', $apid, 'cancel before the reset: by the server that was reset')
	  if ($ENV{PGBUN_TEST_WORKERS} // 1) == 1;
	is(log_count($node, $cancelled), $cancelled_before, 'cancel before the reset: nothing was cancelled');
	is(log_count($node, qr/pooler query failed on the server/), 0, 'cancel before the reset: the reset did not fail');
	$b->terminate;
	$locker->quit;
}
reload_sync($node, \%probe);

check_server_same($node, $identity, 'end of 041');
stop_node($node);
done_testing();

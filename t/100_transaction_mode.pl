# 100_transaction_mode: pgbun.pool_mode = transaction, pool size 5.
#
#  - pgbench through pgbun, 50 clients: TPC-B with -M simple, -M extended and -M prepared,
#    select-only with both and with a new connection per transaction, zero
#    failures; the server never sees more than 5 of the role's backends
#    (CONNECTION LIMIT 5 would refuse a 6th anyway);
#    afterwards pgbench's tables are consistent (balances = history);
#  - session parameters follow each client across a shared server: TimeZone
#    Asia/Tokyo vs UTC interleaved 1,000 times on a pool of 1 (raw client),
#    PGTZ through libpq (psql), SET DateStyle kept across transactions, across
#    a rolled-back SET and across a change of server;
#  - pgbun.ignore_startup_parameters (an ignored parameter logs in, an unknown
#    one gets 42704) and pgbun.track_extra_parameters (work_mem given at
#    startup follows its client; a client without it gets the default);
#  - COPY FROM STDIN / TO STDOUT with data checked, CopyFail (also inside a
#    transaction); a 10 MB result and a 5 MB INSERT checked by md5; the
#    empty query; NoticeResponse;
#  - a client vanishing mid-transaction: rolled back, pool healthy; a server
#    killed mid-transaction: the client gets an error, the pool heals;
#  - client_idle_timeout (an idle client is closed, a talking one is not);
#  - idle_transaction_timeout (25P03, client and server closed);
#    query_timeout (57014, the connection goes on);
#  - per-user and per-database pool_mode overrides (pgbun.pools.pool_mode;
#    pgbench -M prepared works in a session pool);
#  - a named Parse in a transaction pool works (details in t/130).
#
# Deadlines are hang guards, never timing assertions.

use strict;
use warnings FATAL => 'all';

use Digest::MD5 qw(md5_hex);
use IO::Select;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use Time::HiRes qw(usleep);
use PgbunTest;

my $node = pgbun_node(
	name => 'txmode',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '5',
		'pgbun.databases' => 'tzdb = pool_size=1; onedb = pool_size=1; sessdb = pool_mode=session',
		# prober: reload_sync's probe relies on the reset query run when a
		# session-mode client leaves.
		'pgbun.users' => 'sess = pool_mode=session; prober = pool_mode=session',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE bench LOGIN PASSWORD 'bench-pw';
ALTER ROLE bench CONNECTION LIMIT 5;
CREATE ROLE sess LOGIN PASSWORD 'sess-pw';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE DATABASE benchdb;
CREATE DATABASE tzdb;
CREATE DATABASE onedb;
CREATE DATABASE miscdb;
CREATE DATABASE sessdb;
});
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'benchdb' ],
	'pgbench -i directly on the server');
$node->safe_psql('benchdb', 'GRANT ALL ON ALL TABLES IN SCHEMA public TO bench, sess');
$node->safe_psql(
	'miscdb', q{
CREATE TABLE copy_t (id int PRIMARY KEY, payload text);
CREATE TABLE big_t (id int PRIMARY KEY, v text);
CREATE TABLE vanish_t (id int PRIMARY KEY);
GRANT ALL ON copy_t, big_t, vanish_t TO alice;
});
$node->safe_psql('onedb', 'CREATE TABLE one_t (id int, v text); GRANT ALL ON one_t TO alice');
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw');
my %probe = (user => 'prober', password => 'prober-pw');

sub pool_mode_of
{
	my ($db, $user) = @_;
	return $node->safe_psql('postgres',
		"SELECT pool_mode FROM pgbun.pools WHERE database = '$db' AND \"user\" = '$user'");
}

sub alice_raw
{
	my ($db, @params) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice, database => $db, params => \@params);
	return ($raw, $r);
}

############ pgbench, 50 clients on a pool of 5

# Run pgbench through pgbun as $user against benchdb while sampling the
# server's count of that role's backends.
sub pgbench_monitored
{
	my ($user, $password, @args) = @_;
	my @cmd = (
		$node->installed_command('pgbench'),
		'-h', '127.0.0.1', '-p', pgbun_port($node), '-U', $user,
		'-n', @args, 'benchdb');
	return run_sampled($node, \@cmd,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = '$user'",
		env => { PgbunTest::client_env(password => $password) });
}

sub pgbench_ok
{
	my ($label, $r, $expected_xacts, $max_backends) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is($r->{rc}, 0, "$label: pgbench exits 0")
	  or diag("$r->{cmd}\nstdout:\n$r->{out}\nstderr:\n$r->{err}");
	like($r->{out}, qr/number of transactions actually processed: $expected_xacts\/$expected_xacts\b/,
		"$label: all $expected_xacts transactions processed");
	like($r->{out}, qr/number of failed transactions: 0\b/, "$label: zero failed transactions");
	unlike($r->{err}, qr/error|FATAL/i, "$label: pgbench printed no errors") or diag($r->{err});
	note("$label: sampled pg_stat_activity $r->{samples} times, at most $r->{max} backends");
	ok($r->{samples} > 0, "$label: sampled the server while pgbench ran");
	cmp_ok($r->{max}, '<=', $max_backends,
		"$label: the server never saw more than $max_backends of the role's backends");
	return;
}

my %bench_runs = (
	'TPC-B -M simple' => [ '-M', 'simple', '-c', '50', '-j', '2', '-t', '100' ],
	'TPC-B -M extended' => [ '-M', 'extended', '-c', '50', '-j', '2', '-t', '100' ],
	'TPC-B -M prepared' => [ '-M', 'prepared', '-c', '50', '-j', '2', '-t', '100' ],
	'select-only -M prepared' => [ '-S', '-M', 'prepared', '-c', '50', '-j', '2', '-t', '400' ],
	'select-only -M simple' => [ '-S', '-M', 'simple', '-c', '50', '-j', '2', '-t', '400' ],
	'select-only -M extended' => [ '-S', '-M', 'extended', '-c', '50', '-j', '2', '-t', '400' ],
	'select-only -C (a new connection per transaction)' =>
	  [ '-S', '-C', '-M', 'simple', '-c', '50', '-j', '2', '-t', '20' ],);
foreach my $label (sort keys %bench_runs)
{
	my $r = pgbench_monitored('bench', 'bench-pw', @{ $bench_runs{$label} });
	my $xacts = 50 * $bench_runs{$label}[-1];
	pgbench_ok("50 clients, $label", $r, $xacts, 5);
}
is(pool_mode_of('benchdb', 'bench'), 'transaction', 'pgbun.pools: benchdb/bench is a transaction pool');

# The session-mode user (pgbun.users override) can use protocol-level
# prepared statements: pgbench -M prepared, TPC-B.
{
	my $r = pgbench_monitored('sess', 'sess-pw', '-M', 'prepared', '-c', '5', '-j', '1', '-t', '50');
	pgbench_ok('session pool (pgbun.users), TPC-B -M prepared', $r, 250, 5);
}

# pgbench's own consistency: every TPC-B transaction moved the same delta
# into an account, a teller, a branch and the history, or none of them.
is( $node->safe_psql(
		'benchdb', q{
SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)
   AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history)
   AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history)
}),
	't', 'after the TPC-B runs: sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta)');
is($node->safe_psql('benchdb', 'SELECT count(*) FROM pgbench_history'),
	5000 + 5000 + 5000 + 250, 'pgbench_history holds exactly one row per TPC-B transaction');
my ($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pg_stat_activity WHERE datname = 'benchdb' AND state <> 'idle'", '0');
ok($matched, 'after pgbench no benchdb backend is busy or inside a transaction') or diag("last: $last");
is( $node->safe_psql('postgres',
		"SELECT total_xact_count >= 50000 AND total_query_count >= 50000 FROM pgbun.stats WHERE database = 'benchdb'"),
	't', 'pgbun.stats counted the pgbench transactions and queries of benchdb');

############ per-user and per-database pool_mode overrides

{
	my $s_sess = pgbun_session($node, user => 'sess', password => 'sess-pw', dbname => 'benchdb');
	my $s_bench = pgbun_session($node, user => 'bench', password => 'bench-pw', dbname => 'benchdb');
	my $s_db = pgbun_session($node, %alice, dbname => 'sessdb');
	my $s_tx = pgbun_session($node, %alice, dbname => 'miscdb');
	is(join(',', map { $_->query('SELECT 1') // 'none' } $s_sess, $s_bench, $s_db, $s_tx),
		'1,1,1,1', 'override sessions connect and query');
	is(pool_mode_of('benchdb', 'sess'), 'session',
		"pgbun.users 'sess = pool_mode=session': benchdb/sess is a session pool");
	is(pool_mode_of('benchdb', 'bench'), 'transaction', 'benchdb/bench stays a transaction pool');
	is(pool_mode_of('sessdb', 'alice'), 'session',
		"pgbun.databases 'sessdb = pool_mode=session': sessdb/alice is a session pool");
	is(pool_mode_of('miscdb', 'alice'), 'transaction', 'miscdb/alice is a transaction pool');
	$_->quit foreach ($s_sess, $s_bench, $s_db, $s_tx);
}

############ named prepared statements

{
	my ($raw, $r) = alice_raw('miscdb');
	ok($r->{ok}, 'named Parse: client logs in to the transaction pool');
	$raw->send_bytes(parse_msg('pgbun_t100_stmt', 'SELECT 42') . sync_msg());
	my $msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '1Z', 'named Parse in transaction mode: ParseComplete (t/130 covers the rest)');
	$raw->send_bytes(bind_msg('', 'pgbun_t100_stmt') . execute_msg('') . sync_msg());
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '2DCZ', 'named statement in transaction mode: Bind and Execute work');
	$raw->close;

	($raw, $r) = alice_raw('sessdb');
	ok($r->{ok}, 'named Parse: client logs in to the session pool');
	$raw->send_bytes(parse_msg('pgbun_t100_stmt', 'SELECT 42') . sync_msg());
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '1Z', 'named Parse in session mode: ParseComplete');
	$raw->send_bytes(bind_msg('', 'pgbun_t100_stmt') . execute_msg('') . sync_msg());
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '2DCZ', 'named statement in session mode: Bind and Execute work');
	my ($row) = map { PgbunTest::Raw::data_row($_->{body}) } grep { ($_->{type} // '') eq 'D' } @$msgs;
	is($row->[0] // '', '42', 'named statement in session mode returns 42');
	$raw->terminate;
}

############ session parameters on a shared server (tzdb: pool of 1)

my ($tokyo, $tl) = alice_raw('tzdb', TimeZone => 'Asia/Tokyo');
my ($utc, $ul) = alice_raw('tzdb', TimeZone => 'UTC');
ok($tl->{ok} && $ul->{ok}, 'TimeZone clients log in (Asia/Tokyo and UTC)');
is($tl->{params}{TimeZone} // '', 'Asia/Tokyo', 'ParameterStatus TimeZone at login: Asia/Tokyo');
is($ul->{params}{TimeZone} // '', 'UTC', 'ParameterStatus TimeZone at login: UTC');

my $tz_sql = "SHOW TimeZone; SELECT to_char(now(), 'OF'), right(now()::text, 3), pg_backend_pid()";
my %want_tz = (tokyo => [ 'Asia/Tokyo', '+09' ], utc => [ 'UTC', '+00' ]);
my %client = (tokyo => $tokyo, utc => $utc);
my (%pids, @mismatch);
my $done = 0;
for my $i (1 .. 1000)
{
	my $who = $i % 2 ? 'tokyo' : 'utc';
	my $res = $client{$who}->query($tz_sql);
	my $rows = $res->{rows};
	my ($tzname, $of, $tail, $pid) = ($rows->[0][0] // '', @{ $rows->[1] // [] });
	$pids{ $pid // 'none' }++;
	if (!$res->{ok} || $res->{error} || $tzname ne $want_tz{$who}[0]
		|| ($of // '') ne $want_tz{$who}[1] || ($tail // '') ne $want_tz{$who}[1])
	{
		push @mismatch, "query $i ($who): " . explain($res);
		last if @mismatch >= 3 || !$res->{ok};
	}
	$done++;
}
is($done, 1000, '1,000 interleaved queries: each client always sees its own TimeZone and now() offset')
  or diag(join("\n", @mismatch));
is(scalar(keys %pids), 1, 'exactly one server backend served both clients');

# SET follows the client: it holds across transactions while the other
# client uses the same server with its own value in between.
my $default_datestyle = $node->safe_psql('tzdb', 'SHOW DateStyle');
my $ds_sql = "SELECT current_setting('DateStyle'), '2024-03-05'::date::text, pg_backend_pid()";
my $r = $tokyo->query("SET DateStyle = 'SQL, DMY'");
ok($r->{ok} && !$r->{error}, 'Tokyo client: SET DateStyle = SQL, DMY') or diag(explain($r));
my %want_ds = (tokyo => [ 'SQL, DMY', '05/03/2024' ], utc => [ $default_datestyle, '2024-03-05' ]);
@mismatch = ();
for my $i (1 .. 100)
{
	my $who = $i % 2 ? 'tokyo' : 'utc';
	my $row = $client{$who}->query($ds_sql)->{rows}[0] // [];
	push @mismatch, "query $i ($who): " . join('|', map { $_ // 'NULL' } @$row)
	  if ($row->[0] // '') ne $want_ds{$who}[0] || ($row->[1] // '') ne $want_ds{$who}[1];
}
is(scalar(@mismatch), 0, 'SET DateStyle holds across 50 transactions; the other client keeps its own')
  or diag(join("\n", @mismatch[ 0 .. ($#mismatch < 4 ? $#mismatch : 4) ]));

# A SET rolled back with its transaction does not stick.
$r = $tokyo->query("BEGIN; SET DateStyle = 'German'; SELECT current_setting('DateStyle')");
is($r->{rows}[0][0] // '', 'German, DMY', 'SET inside a transaction applies there');
$r = $tokyo->query('ROLLBACK');
is($r->{txstatus} // '', 'I', 'ROLLBACK');
$utc->query($ds_sql);
is($tokyo->query($ds_sql)->{rows}[0][0] // '', 'SQL, DMY',
	'after ROLLBACK the client is back to its own SET value, not German');

# ReadyForQuery 'T' and 'E' keep the server linked: while the Tokyo client
# is inside a transaction, then a failed one, the UTC client waits for the
# pool's only server, and gets it (with its own TimeZone) after ROLLBACK.
sub tz_waiting
{
	my ($want, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($ok, $got) = poll_sql($node,
		"SELECT cl_waiting FROM pgbun.pools WHERE database = 'tzdb' AND \"user\" = 'alice'", $want);
	ok($ok, $label) or diag("last: $got");
	return;
}
$r = $tokyo->query('BEGIN; SELECT 1');
is($r->{txstatus} // '', 'T', "Tokyo client inside a transaction ('T')");
$utc->send_bytes(PgbunTest::Raw::query_message("SELECT current_setting('TimeZone')"));
tz_waiting('1', "while Tokyo is in a transaction ('T') the UTC client waits for the server");
$r = $tokyo->query('SELECT 1/0');
is(($r->{error}{C} // '') . '/' . ($r->{txstatus} // ''), '22012/E', "Tokyo client in a failed transaction ('E')");
tz_waiting('1', "while Tokyo is in a failed transaction ('E') the UTC client still waits");
is(length($utc->{buf}) + (IO::Select->new($utc->{sock})->can_read(0) ? 1 : 0), 0,
	'the UTC client has no answer yet');
$r = $tokyo->query('ROLLBACK');
is($r->{txstatus} // '', 'I', 'Tokyo client: ROLLBACK');
$r = $utc->read_result;
is_deeply($r->{rows}, [ ['UTC'] ], 'then the UTC client is served, with its own TimeZone') or diag(explain($r));
tz_waiting('0', 'nobody waits in tzdb afterwards');

# The server changes: kill the pool's only server while it is idle; once
# pgbun has dropped it, the client's next transaction runs on a new backend
# with the client's TimeZone and DateStyle.
my $old_pid = $tokyo->query('SELECT pg_backend_pid()')->{rows}[0][0] // 0;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pgbun.servers WHERE remote_pid = $old_pid", '0');
ok($matched, 'pgbun drops the idle server killed under it') or diag("last: $last");
$r = $tokyo->query("SELECT current_setting('TimeZone'), current_setting('DateStyle'), pg_backend_pid()");
my $row = $r->{rows}[0] // [];
ok($r->{ok} && !$r->{error}, 'the Tokyo client\'s next query works') or diag(explain($r));
isnt($row->[2] // $old_pid, $old_pid, 'it runs on a new server backend');
is(join('|', @$row[ 0, 1 ]), 'Asia/Tokyo|SQL, DMY',
	'the new server has the client\'s TimeZone and SET DateStyle');
$row = $utc->query("SELECT current_setting('TimeZone'), current_setting('DateStyle')")->{rows}[0] // [];
is(join('|', @$row), "UTC|$default_datestyle", 'the UTC client still has its own values there');
$tokyo->terminate;
$utc->terminate;

# The libpq route: PGTZ makes libpq send the time zone in the startup packet.
{
	my @sess;
	foreach my $tz ('Asia/Tokyo', 'UTC')
	{
		my @cmd = (PgbunTest::pooler_psql_cmd($node, %alice, dbname => 'tzdb'), '-f', '-');
		push @sess, PgbunTest::Session->new(\@cmd, { PgbunTest::client_env(%alice), PGTZ => $tz });
	}
	ok($sess[0]->connected && $sess[1]->connected, 'two psql clients with PGTZ connect');
	my @bad;
	for my $i (1 .. 20)
	{
		my $k = $i % 2;
		my $want = $k ? 'UTC|+00' : 'Asia/Tokyo|+09';
		my $got = $sess[$k]->query("SELECT current_setting('TimeZone') || '|' || to_char(now(), 'OF')") // 'none';
		push @bad, "query $i: $got, expected $want" if $got ne $want;
	}
	is(scalar(@bad), 0, 'psql with PGTZ: 20 interleaved queries each see their own time zone')
	  or diag(join("\n", @bad));
	$_->quit foreach @sess;
}

############ pgbun.ignore_startup_parameters, pgbun.track_extra_parameters (tzdb: pool of 1)

{
	my ($raw, $r) = alice_raw('tzdb', no_such_setting => 'off');
	is($r->{error}{C} // '', '42704', 'an unknown startup parameter is refused with 42704, as PostgreSQL does');
	like($r->{error}{M} // '', qr/^pgbun: unrecognized configuration parameter "no_such_setting"/,
		'naming the parameter');
	$raw->close;

	# the checks of startup values are remembered for valid ones only: a bad
	# value of a name seen valid before is still refused, every time
	for my $round (1 .. 2)
	{
		my ($good, $gr) = alice_raw('tzdb', ($round == 1 ? 'TimeZone' : 'timezone') => 'Europe/Paris');
		ok($gr->{ok}, "round $round: TimeZone = Europe/Paris logs in");
		is($good->query('SHOW TimeZone')->{rows}[0][0] // '', 'Europe/Paris', "round $round: and is in force");
		$good->terminate;
		my ($bad, $br) = alice_raw('tzdb', TimeZone => 'Europe/Nowhere');
		is($br->{error}{C} // '', '22023', "round $round: TimeZone = Europe/Nowhere is refused with 22023, as PostgreSQL does");
		like($br->{error}{M} // '', qr/^pgbun: invalid value for parameter "TimeZone": "Europe\/Nowhere"/,
			"round $round: with the server's message");
		$bad->close;
	}

	reload_sync($node, \%probe, 'pgbun.ignore_startup_parameters' => 'extra_thing, geqo');
	($raw, $r) = alice_raw('tzdb', geqo => 'off');
	ok($r->{ok}, 'with ignore_startup_parameters = geqo the client logs in');
	is($raw->query('SHOW geqo')->{rows}[0][0] // '', 'on', 'and the ignored parameter did not reach the server');
	$raw->terminate;

	reload_sync($node, \%probe, 'pgbun.track_extra_parameters' => 'work_mem',
		'pgbun.ignore_startup_parameters' => undef);
	my ($wm, $wr) = alice_raw('tzdb', work_mem => '1234kB');
	my ($plain, $pr) = alice_raw('tzdb');
	ok($wr->{ok} && $pr->{ok}, 'track_extra_parameters = work_mem: a client with work_mem and one without log in');
	my @bad;
	for my $i (1 .. 20)
	{
		for my $c ([ $wm, '1234kB' ], [ $plain, '4MB' ])
		{
			my $got = $c->[0]->query("SELECT current_setting('work_mem') || '|' || pg_backend_pid()")->{rows}[0][0] // 'none';
			my ($val) = split /\|/, $got;
			push @bad, "round $i: $got, expected $c->[1]" if ($val // '') ne $c->[1];
		}
	}
	is(scalar(@bad), 0,
		'one server, 20 rounds interleaved: the work_mem client sees 1234kB, the other the default (RESET)')
	  or diag(join("\n", @bad));
	$_->terminate foreach ($wm, $plain);
	reload_sync($node, \%probe, 'pgbun.track_extra_parameters' => undef);
}

############ COPY

# 20,000 rows (about 3.6 MB): tabs, newlines and backslashes escaped, UTF-8.
my (@copy_lines, @raw_rows);
for my $i (1 .. 20000)
{
	my $payload = "row $i\ttab\nline\\slash caf\xc3\xa9 " . ('x' x ($i % 300));
	push @raw_rows, "$i:$payload";
	(my $esc = $payload) =~ s/\\/\\\\/g;
	$esc =~ s/\t/\\t/g;
	$esc =~ s/\n/\\n/g;
	push @copy_lines, "$i\t$esc";
}
my $copy_data = join("\n", @copy_lines) . "\n";
my ($rc, $out, $err) = pgbun_psql($node,
	"COPY copy_t FROM STDIN;\n${copy_data}\\.\nSELECT count(*) FROM copy_t;\n",
	%alice, dbname => 'miscdb');
is($rc, 0, 'COPY FROM STDIN through pgbun: psql exits 0') or diag($err);
is($out, '20000', 'COPY FROM STDIN: 20,000 rows arrived');
is( $node->safe_psql('miscdb',
		"SELECT md5(string_agg(id || ':' || payload, E'\\n' ORDER BY id)) FROM copy_t"),
	md5_hex(join("\n", @raw_rows)), 'COPY FROM STDIN: the rows hold exactly the data sent (md5)');

($rc, $out, $err) = pgbun_psql($node,
	'COPY (SELECT id, payload FROM copy_t ORDER BY id) TO STDOUT', %alice, dbname => 'miscdb');
is($rc, 0, 'COPY TO STDOUT through pgbun: psql exits 0') or diag($err);
ok($out eq join("\n", @copy_lines), 'COPY TO STDOUT: the output is exactly the data sent')
  or diag('got ' . length($out) . ' bytes, md5 ' . md5_hex($out) . '; expected '
	  . length($copy_data) . ' bytes');

# CopyFail: outside and inside an explicit transaction.
foreach my $case ([ 'autocommit', '', 'I' ], [ 'in a transaction', 'BEGIN; ', 'E' ])
{
	my ($label, $prefix, $status) = @$case;
	my ($raw, $login) = alice_raw('miscdb');
	ok($login->{ok}, "CopyFail $label: client logs in");
	$raw->send_bytes(PgbunTest::Raw::query_message("${prefix}COPY copy_t FROM STDIN"));
	my @msgs;
	while (1)
	{
		my $m = $raw->read_message(hang_guard());
		push @msgs, $m;
		last if !defined $m->{type} || $m->{type} eq 'G' || $m->{type} eq 'Z';
	}
	is($msgs[-1]{type} // '', 'G', "CopyFail $label: CopyInResponse") or diag(msg_types(\@msgs));
	$raw->send_bytes(PgbunTest::Raw::message('d', "999999\tshould not stay\n")
		  . PgbunTest::Raw::message('f', "pgbun t100 gave up\0"));
	my $msgs = read_until($raw, 'Z');
	my $e = first_error($msgs);
	like($e->{M} // '', qr/pgbun t100 gave up/, "CopyFail $label: ErrorResponse carries the client's message")
	  or diag(msg_types($msgs));
	is(($msgs->[-1]{type} // '') . ($msgs->[-1]{body} // ''), "Z$status",
		"CopyFail $label: then ReadyForQuery '$status'");
	if ($status eq 'E')
	{
		my $res = $raw->query('ROLLBACK');
		is($res->{txstatus} // '', 'I', "CopyFail $label: ROLLBACK ends the failed transaction");
	}
	my $res = $raw->query('SELECT count(*) FROM copy_t WHERE id = 999999');
	is_deeply($res->{rows}, [ ['0'] ], "CopyFail $label: the connection still works, the row is not there")
	  or diag(explain($res));
	$raw->terminate;
}
($rc, $out, $err) = pgbun_psql($node, 'SELECT count(*) FROM copy_t', %alice, dbname => 'miscdb');
is($out, '20000', 'after the CopyFails a new client is served, copy_t unchanged') or diag($err);

############ large rows, empty query, notices

my $ten_mb_sql = "SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 327680) i";
($rc, $out, $err) = pgbun_psql($node, $ten_mb_sql, %alice, dbname => 'miscdb');
is($rc, 0, '10 MB value through pgbun: psql exits 0') or diag($err);
is(length($out), 10 * 1024 * 1024, 'the 10 MB value arrives whole');
is(md5_hex($out), $node->safe_psql('miscdb', "SELECT md5(($ten_mb_sql))"),
	'the 10 MB value arrives intact (md5)');

my $five_mb = join('', map { md5_hex("pgbun-$_") } 1 .. 163840);
($rc, $out, $err) = pgbun_psql($node, "INSERT INTO big_t VALUES (1, '$five_mb')",
	%alice, dbname => 'miscdb');
is($rc, 0, 'INSERT of a 5 MB literal through pgbun') or diag($err);
is($node->safe_psql('miscdb', 'SELECT length(v) || \'|\' || md5(v) FROM big_t WHERE id = 1'),
	length($five_mb) . '|' . md5_hex($five_mb), 'the 5 MB value is stored intact (md5)');
($rc, $out, $err) = pgbun_psql($node, 'SELECT v FROM big_t WHERE id = 1', %alice, dbname => 'miscdb');
ok($out eq $five_mb, 'the 5 MB value reads back intact through pgbun') or diag($err);

{
	my ($raw, $login) = alice_raw('miscdb');
	ok($login->{ok}, 'empty query: client logs in');
	$raw->send_bytes(PgbunTest::Raw::query_message(''));
	my $msgs = read_until($raw, 'Z');
	is(msg_types($msgs), 'IZ', 'empty query: EmptyQueryResponse then ReadyForQuery');

	$raw->send_bytes(PgbunTest::Raw::query_message(
		q{DO $$BEGIN RAISE NOTICE 'pgbun-t100-notice %', 6 * 7; END$$}));
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs), 'NCZ', 'RAISE NOTICE: NoticeResponse, CommandComplete, ReadyForQuery');
	my ($n) = map { PgbunTest::Raw::error_fields($_->{body}) } grep { ($_->{type} // '') eq 'N' } @$msgs;
	is($n->{M} // '', 'pgbun-t100-notice 42', 'the notice\'s message arrives');

	# Both inside a transaction, too.
	$raw->send_bytes(PgbunTest::Raw::query_message('BEGIN'));
	read_until($raw, 'Z');
	$raw->send_bytes(PgbunTest::Raw::query_message(''));
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs) . ($msgs->[-1]{body} // ''), 'IZT', 'empty query inside a transaction');
	$raw->send_bytes(PgbunTest::Raw::query_message(
		q{DO $$BEGIN RAISE NOTICE 'in transaction'; END$$; COMMIT}));
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs) . ($msgs->[-1]{body} // ''), 'NCCZI', 'a notice inside a transaction, then COMMIT');
	$raw->terminate;
}

############ a client vanishing mid-transaction

sub miscdb_backends
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'miscdb' AND usename = 'alice'");
}

{
	# Five clients take all five servers, each inside a transaction with an
	# uncommitted row, then die without a word.
	my (@held, @held_pids);
	for my $k (1 .. 5)
	{
		my $s = pgbun_session($node, %alice, dbname => 'miscdb');
		my ($o, $e) = $s->query("BEGIN; INSERT INTO vanish_t VALUES ($k); SELECT pg_backend_pid()");
		like($o // '', qr/^\d+$/, "vanishing client $k holds a server inside a transaction") or diag($e);
		push @held, $s;
		push @held_pids, $o // 0;
	}
	is(scalar(keys %{ { map { $_ => 1 } @held_pids } }), 5, 'the five transactions are on five servers');
	$_->kill foreach @held;

	($matched, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'miscdb' AND state LIKE 'idle in transaction%'",
		'0');
	ok($matched, 'the vanished clients\' transactions are gone from the server') or diag("last: $last");
	is($node->safe_psql('miscdb', 'SELECT count(*) FROM vanish_t'), '0', 'their rows were rolled back');

	# The pool is whole again: five new clients each hold a server at once
	# (this would wait forever if a server had leaked), and may insert the
	# same keys (no lock left behind).
	my @again;
	for my $k (1 .. 5)
	{
		my $s = pgbun_session($node, %alice, dbname => 'miscdb');
		my ($o, $e) = $s->query("BEGIN; INSERT INTO vanish_t VALUES ($k); SELECT $k");
		is($o, $k, "after the vanishing: new client $k holds a server in a transaction") or diag($e);
		push @again, $s;
	}
	cmp_ok(miscdb_backends(), '<=', 5, 'still at most 5 alice backends in miscdb');
	foreach my $s (@again)
	{
		my ($o, $e) = $s->query('COMMIT');
		is($e, '', 'the new client commits');
		$s->quit;
	}
	is($node->safe_psql('miscdb', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM vanish_t'),
		'1,2,3,4,5', 'the new clients\' rows are committed');
}

############ a server killed mid-transaction

{
	my ($raw, $login) = alice_raw('miscdb');
	ok($login->{ok}, 'server death: client logs in');
	my $res = $raw->query('BEGIN; SELECT pg_backend_pid()');
	my $pid = $res->{rows}[0][0] // 0;
	is($res->{txstatus} // '', 'T', 'server death: the client is inside a transaction');
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0');
	ok($matched, 'server death: the linked backend is gone') or diag("last: $last");

	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
	my $msgs = read_until($raw, 'Z');
	my $e = first_error($msgs);
	like($e->{C} // '', qr/^(08006|57P01)$/, 'server death: the client gets an error (08006 or 57P01)')
	  or diag(msg_types($msgs));
	ok(!(grep { ($_->{type} // '') eq 'D' } @$msgs), 'server death: no rows as if nothing happened');
	$raw->close;

	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pgbun.servers WHERE remote_pid = $pid", '0');
	ok($matched, 'server death: pgbun forgot the dead server') or diag("last: $last");
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 7 * 6', %alice, dbname => 'miscdb');
	is($out, '42', 'server death: a new client is served afterwards') or diag($err);
	cmp_ok(miscdb_backends(), '<=', 5, 'server death: at most 5 alice backends in miscdb');
}

############ clients vanishing at awkward moments (onedb: pool of 1)
#
# Each client leaves without a word in the middle of something; the next
# client must get the pool's only server back, idle and clean (it would
# wait forever if the server had leaked or stayed busy).

my $ten_mb_onedb = "SELECT string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 327680) i";
my @awkward = (
	[
		'in the middle of COPY FROM STDIN',
		sub {
			my ($raw) = @_;
			$raw->send_bytes(PgbunTest::Raw::query_message('COPY one_t FROM STDIN'));
			my $m;
			do { $m = $raw->read_message(hang_guard()) } while (($m->{type} // 'G') !~ /^[GZ]$/);
			is($m->{type} // '', 'G', 'vanishing in COPY: CopyInResponse first');
			$raw->send_bytes(PgbunTest::Raw::message('d', "$_\tcopy row\n")) foreach 1 .. 100;
		}
	],
	[
		'while its query runs',
		sub {
			my ($raw) = @_;
			$raw->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(3)'));
			($matched, $last) = poll_sql($node,
				"SELECT count(*) FROM pg_stat_activity WHERE datname = 'onedb' AND query LIKE '%pg_sleep(3)' AND state = 'active'",
				'1');
			ok($matched, 'vanishing while the query runs: it is running') or diag("last: $last");
		}
	],
	[
		'while a 10 MB result streams to it',
		sub {
			my ($raw) = @_;
			$raw->send_bytes(PgbunTest::Raw::query_message($ten_mb_onedb));
			my $m = $raw->read_message(hang_guard());
			is($m->{type} // '', 'T', 'vanishing mid-result: the result has started');
		}
	],
	[
		'with Syncs outstanding inside a transaction',
		sub {
			my ($raw) = @_;
			my $data = '';
			foreach my $sql ('BEGIN', "INSERT INTO one_t VALUES (2, 'pipelined')", 'SELECT pg_sleep(0.5)',
				'SELECT pg_sleep(0.5)')
			{
				$data .= parse_msg('', $sql) . bind_msg('', '') . execute_msg('') . sync_msg();
			}
			$raw->send_bytes($data);
			my $m = $raw->read_message(hang_guard());
			is($m->{type} // '', '1', 'vanishing mid-pipeline: the pipeline has started');
		}
	],
	[
		'halfway through sending a message',
		sub {
			my ($raw) = @_;
			$raw->send_bytes('Q' . pack('N', 1000) . 'SELECT 1');
		}
	],);

foreach my $case (@awkward)
{
	my ($label, $act) = @$case;
	my ($raw, $login) = alice_raw('onedb');
	ok($login->{ok}, "vanishing $label: client logs in");
	$act->($raw);
	$raw->close;

	my ($next, $nl) = alice_raw('onedb');
	ok($nl->{ok}, "vanishing $label: the next client logs in") or diag(explain($nl));
	my $res = $next->query(
		'SELECT count(*), txid_current_if_assigned() IS NULL FROM one_t', hang_guard() * 2);
	is_deeply($res->{rows}, [ [ '0', 't' ] ],
		"vanishing $label: the next client gets the pool's server, nothing committed, no transaction open")
	  or diag(explain($res));
	is($res->{txstatus} // '', 'I', "vanishing $label: the next client is idle after its query");
	$next->terminate;
	cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE database = 'onedb'"),
		'<=', 1, "vanishing $label: pgbun holds at most 1 server for onedb");
	# A backend pgbun closed while it was busy may linger until its query
	# notices (pg_sleep does not): wait for it to go.
	($matched, $last) = poll_sql($node,
		"SELECT count(*) <= 1 FROM pg_stat_activity WHERE datname = 'onedb' AND usename = 'alice'", 't');
	ok($matched, "vanishing $label: the server settles at 1 alice backend in onedb at most")
	  or diag("last: $last");
}

############ CancelRequest in transaction mode (onedb: pool of 1)
#
# A cancel reaches the server the client is linked to now; a cancel for a
# client that is not linked to any server must not hit another client's
# query on the server they share.

sub send_cancel
{
	my ($login) = @_;
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($login->{pid}, $login->{key}));
	$c->read_to_eof(hang_guard());
	$c->close;
	return;
}

sub wait_sleeping
{
	my ($label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($ok, $got) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'onedb' AND query LIKE 'SELECT pg_sleep(%' AND state = 'active'",
		'1');
	ok($ok, $label) or diag("last: $got");
	return;
}

{
	my ($busy, $bl) = alice_raw('onedb');
	my ($bystander, $sl) = alice_raw('onedb');
	ok($bl->{ok} && $sl->{ok}, 'cancel: two clients of the pool of 1 log in');

	# The bystander is idle (not linked); its cancel key must not reach the
	# server that the busy client's query runs on.
	$busy->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(2), 1 AS finished'));
	wait_sleeping('cancel: the busy client\'s query runs');
	send_cancel($sl);
	my $res = $busy->read_result(60);
	ok(!$res->{error}, 'cancel for an unlinked client does not cancel another client\'s query')
	  or diag(explain($res));
	is($res->{rows}[0][1] // '', '1', 'the busy client\'s query finished normally');

	# The busy client's own cancel does reach its server.
	$busy->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(30)'));
	wait_sleeping('cancel: the long query runs');
	send_cancel($bl);
	$res = $busy->read_result(60);
	is($res->{error}{C} // '', '57014', 'the client\'s own CancelRequest cancels its query (57014)')
	  or diag(explain($res));
	is_deeply($busy->query('SELECT 3')->{rows}, [ ['3'] ], 'the cancelled client goes on');
	is_deeply($bystander->query('SELECT 4')->{rows}, [ ['4'] ], 'the bystander is served on the shared server');
	$busy->terminate;
	$bystander->terminate;
}

############ client_idle_timeout in transaction mode

reload_sync($node, \%probe, 'pgbun.client_idle_timeout' => '1s');
{
	my ($idle, $l1) = alice_raw('miscdb');
	my ($talker, $l2) = alice_raw('miscdb');
	ok($l1->{ok} && $l2->{ok}, 'client_idle_timeout: two clients of a transaction pool log in');
	is_deeply($idle->query('SELECT 1')->{rows}, [ ['1'] ], 'the soon idle client ran a query (its server went back)');
	my $answers = 0;
	for my $i (1 .. 4)
	{
		$answers++ if ($talker->query("SELECT $i, pg_sleep(0.4)")->{rows}[0][0] // '') eq $i;
	}
	is($answers, 4, 'client_idle_timeout leaves a client alone while it keeps sending queries');
	my $end = $idle->read_to_eof(hang_guard());
	ok($end->{eof}, 'client_idle_timeout = 1s closes the idle transaction-mode client') or diag(explain($end));
	like($end->{errors}[0]{M} // '', qr/^pgbun: client_idle_timeout/, 'with pgbun\'s message');
	$idle->close;
	$talker->terminate;
}
reload_sync($node, \%probe, 'pgbun.client_idle_timeout' => undef);

############ idle_transaction_timeout

reload_sync($node, \%probe, 'pgbun.idle_transaction_timeout' => '1s');
{
	my ($idle, $l1) = alice_raw('miscdb');
	my ($intx, $l2) = alice_raw('miscdb');
	ok($l1->{ok} && $l2->{ok}, 'idle_transaction_timeout: two clients log in');
	is_deeply($idle->query('SELECT 1')->{rows}, [ ['1'] ], 'the idle client ran a query');
	my $res = $intx->query('BEGIN; SELECT pg_backend_pid()');
	my $pid = $res->{rows}[0][0] // 0;
	is($res->{txstatus} // '', 'T', 'the other client sits inside a transaction');

	my $end = $intx->read_to_eof(60);
	ok($end->{eof}, 'idle_transaction_timeout: pgbun closes the client idle in a transaction')
	  or diag(explain($end));
	my ($e) = @{ $end->{errors} };
	is($e->{C} // '', '25P03', 'idle_transaction_timeout: SQLSTATE 25P03');
	like($e->{M} // '', qr/^pgbun:/, 'idle_transaction_timeout: message starts with pgbun:');
	$intx->close;
	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0');
	ok($matched, 'idle_transaction_timeout: its server connection is closed too') or diag("last: $last");

	# Idle outside a transaction (for longer than the timeout by now) is fine.
	is_deeply($idle->query('SELECT 2')->{rows}, [ ['2'] ],
		'idle_transaction_timeout: a client idle outside a transaction is left alone');
	$idle->terminate;

	# A failed transaction ('E') is still a transaction.
	my ($failed, $l3) = alice_raw('miscdb');
	ok($l3->{ok}, 'idle_transaction_timeout: a third client logs in');
	$res = $failed->query('BEGIN; SELECT pg_backend_pid()');
	$pid = $res->{rows}[0][0] // 0;
	$res = $failed->query('SELECT 1/0');
	is($res->{txstatus} // '', 'E', 'the third client sits in a failed transaction');
	$end = $failed->read_to_eof(60);
	ok($end->{eof}, 'idle_transaction_timeout: pgbun closes the client idle in a failed transaction')
	  or diag(explain($end));
	($e) = @{ $end->{errors} };
	is($e->{C} // '', '25P03', 'idle_transaction_timeout, failed transaction: SQLSTATE 25P03');
	$failed->close;
	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid", '0');
	ok($matched, 'idle_transaction_timeout, failed transaction: its server is closed too')
	  or diag("last: $last");
}
reload_sync($node, \%probe, 'pgbun.idle_transaction_timeout' => undef);

############ query_timeout

reload_sync($node, \%probe, 'pgbun.query_timeout' => '1s');
{
	my ($raw, $login) = alice_raw('miscdb');
	ok($login->{ok}, 'query_timeout: client logs in');
	my $res = $raw->query('SELECT pg_sleep(20)', 60);
	is($res->{error}{C} // '', '57014', 'query_timeout: SELECT pg_sleep(20) is cancelled with 57014')
	  or diag(explain($res));
	like($res->{error}{M} // '', qr/canceling statement due to user request/,
		'query_timeout: the server\'s cancel message');
	ok($res->{ok}, 'query_timeout: ReadyForQuery follows');
	is_deeply($raw->query('SELECT 1')->{rows}, [ ['1'] ], 'query_timeout: the same connection answers SELECT 1');

	# Inside a transaction: the cancel fails the transaction, which the
	# client ends itself; the connection goes on.
	$res = $raw->query('BEGIN; SELECT pg_sleep(20)', 60);
	is(($res->{error}{C} // '') . '/' . ($res->{txstatus} // ''), '57014/E',
		'query_timeout inside a transaction: 57014, the transaction is failed')
	  or diag(explain($res));
	is($raw->query('ROLLBACK')->{txstatus} // '', 'I', 'query_timeout: ROLLBACK');
	is_deeply($raw->query('SELECT 2')->{rows}, [ ['2'] ], 'query_timeout: the connection still answers');
	$raw->terminate;
}
reload_sync($node, \%probe, 'pgbun.query_timeout' => undef);

($matched, $last) = poll_sql($node,
	"SELECT coalesce(sum(cl_waiting), 0) FROM pgbun.pools", '0');
ok($matched, 'at the end nobody waits in any pool') or diag("last: $last");
check_server_same($node, $identity, 'end of 100');

stop_node($node);
done_testing();

# 340_listen_notify: LISTEN/NOTIFY through a transaction pool (src/notify.c).
#
# 50 raw clients on a transaction pool of 2 listen to overlapping channels
# (plain, quoted, mixed case); a direct session listens to all of them. The
# same NOTIFYs (pg_notify from the server side, NOTIFY from a pgbun client)
# reach every pgbun client exactly as the direct session saw them, filtered
# by its channels: same order, payloads and the notifying backend's pid.
# Then: UNLISTEN x, UNLISTEN * and DISCARD ALL stop them; LISTEN in a
# rolled-back transaction, a rolled-back savepoint, a failed implicit or an
# aborted transaction does not subscribe (the committed one does); a NOTIFY
# in the LISTEN's own query arrives once, as on a direct session;
# pg_listening_channels() on the pooled server shows the client's channels
# (and nothing for a client that never listened); extended protocol
# (unnamed and named statements, a pipeline of two Sync batches); statement
# mode delivers, session mode uses the client's own server and no listener;
# the pool's LISTEN connection killed with pg_terminate_backend comes back
# and later notifications all arrive; a client that does not read is closed
# with 53200 after what it was sent, once pgbun.notify_queue_size is
# exceeded, while another client of the channel gets every notification; a
# LISTEN connection that cannot log in (role CONNECTION LIMIT) holds no
# client up; node `pg`'s client.on('notification') (test/node/pg_notify.mjs);
# with pgbun.workers = 2 every client gets every notification.

use strict;
use warnings FATAL => 'all';

use Cwd ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'notify',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '2',
		'pgbun.query_wait_timeout' => '30s',
		'pgbun.notify_queue_size' => '65536',
		'pgbun.databases' => 'stmtdb = pool_mode=statement; sessdb = pool_mode=session',
	});
$node->safe_psql(
	'postgres', q{
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE DATABASE notifydb OWNER alice;
CREATE DATABASE stmtdb OWNER alice;
CREATE DATABASE sessdb OWNER alice;
});
my %alice = (user => 'alice', password => 'alice-pw', database => 'notifydb');

sub login
{
	my ($label, $db) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice, database => $db // 'notifydb');
	die "$label: login failed: " . explain($r) unless $r->{ok};
	$raw->{notes} = [];
	return $raw;
}

sub login_direct
{
	my $raw = PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port);
	my $r = $raw->login(%alice);
	die 'direct login failed: ' . explain($r) unless $r->{ok};
	$raw->{notes} = [];
	return $raw;
}

# NotificationResponse body -> "pid|channel|payload"
sub note_str
{
	my ($pid, $ch, $payload) = unpack('N Z* Z*', $_[0]);
	return "$pid|$ch|$payload";
}

# Read messages until ReadyForQuery; notifications are set aside in {notes}.
sub until_ready
{
	my ($raw, $secs) = @_;
	my @msgs;
	while (1)
	{
		my $m = $raw->read_message($secs // hang_guard());
		if (($m->{type} // '') eq 'A')
		{
			push @{ $raw->{notes} }, note_str($m->{body});
			next;
		}
		push @msgs, $m;
		last if !defined $m->{type} || $m->{type} eq 'Z';
	}
	return \@msgs;
}

# Run a simple query; returns the messages (without notifications).
sub rq
{
	my ($raw, $sql) = @_;
	$raw->send_bytes(PgbunTest::Raw::query_message($sql));
	return until_ready($raw);
}

# The first column of every DataRow.
sub rows
{
	return [ map { PgbunTest::Raw::data_row($_->{body})->[0] } grep { ($_->{type} // '') eq 'D' } @{ $_[0] } ];
}

# Wait until $n notifications are set aside (or the hang guard); returns them all and clears.
sub take_notes
{
	my ($raw, $n, $secs) = @_;
	my $deadline = time + ($secs // hang_guard());
	while (@{ $raw->{notes} } < $n && time < $deadline)
	{
		my $m = $raw->read_message($deadline - time);
		last if !defined $m->{type};
		push @{ $raw->{notes} }, note_str($m->{body}) if $m->{type} eq 'A';
	}
	my @n = @{ $raw->{notes} };
	$raw->{notes} = [];
	return \@n;
}

# A sentinel NOTIFY on $ch: once a client has it, everything committed
# before it has been delivered to that client too (one listener, commit order).
my $sentinel_seq = 0;

sub sentinel
{
	my ($ch) = @_;
	$sentinel_seq++;
	$node->safe_psql('notifydb', "SELECT pg_notify('$ch', 'sentinel $sentinel_seq')");
	return "sentinel $sentinel_seq";
}

# Read notifications until the sentinel payload; returns those before it.
sub until_sentinel
{
	my ($raw, $payload) = @_;
	my @got;
	my $deadline = time + hang_guard();
	while (time < $deadline)
	{
		my $n = shift @{ $raw->{notes} };
		if (!defined $n)
		{
			my $m = $raw->read_message($deadline - time);
			return [ @got, '<no sentinel>' ] if !defined $m->{type};
			next if $m->{type} ne 'A';
			$n = note_str($m->{body});
		}
		return \@got if (split /\|/, $n, 3)[2] eq $payload;
		push @got, $n;
	}
	return [ @got, '<no sentinel>' ];
}

my @channels = ('ch0', 'ch1', 'ch2', 'Ch "Quoted"', 'UPPER');
my @sql_names = ('ch0', 'CH1', '"ch2"', '"Ch ""Quoted"""', '"UPPER"');

########## 50 clients, overlapping channels, against a direct session

my $direct = login_direct();
rq($direct, "LISTEN $_") foreach @sql_names, 'sent';
my @clients;
my @subs;
for my $i (0 .. 49)
{
	my $c = login("client $i");
	my %s = ($channels[ $i % 5 ] => 1, $channels[ ($i + 2) % 5 ] => 1);
	$s{ $channels[4] } = 1 if $i % 7 == 0;
	# one LISTEN per statement of a multi-statement query, or one query each
	my @l = map { my $ch = $_; "LISTEN $sql_names[ (grep { $channels[$_] eq $ch } 0 .. 4)[0] ]" } sort keys %s;
	if ($i % 2)
	{
		rq($c, join('; ', @l));
	}
	else
	{
		rq($c, $_) foreach @l;
	}
	rq($c, 'LISTEN sent');
	push @clients, $c;
	push @subs, { %s, sent => 1 };
}
my $a = rq($clients[3], 'SELECT c FROM pg_listening_channels() c ORDER BY 1');
is_deeply(rows($a), [ sort keys %{ $subs[3] } ],
	'pg_listening_channels() on the pooled server shows the client\'s own channels while it runs');

my $fresh = login('fresh client');
is_deeply(rows(rq($fresh, 'SELECT c FROM pg_listening_channels() c')), [],
	'a client that never listened sees no channels on a server other clients listened on');
$fresh->close;

# the notifications: server-side pg_notify in one transaction, separate
# NOTIFYs, and NOTIFY / pg_notify sent by a pgbun client (pooled backend pid)
my $notifier = login('notifier');
$node->safe_psql('notifydb',
	q{SELECT pg_notify((ARRAY['ch0','ch1','ch2','Ch "Quoted"','UPPER'])[1 + i % 5], 'batch ' || i) FROM generate_series(1, 40) i});
$node->safe_psql('notifydb', q{NOTIFY "Ch ""Quoted""", 'quoted payload'; });
$node->safe_psql('notifydb', q{NOTIFY ch1});
rq($notifier, q{NOTIFY ch2, 'from a pgbun client'});
rq($notifier, q{SELECT pg_notify('UPPER', 'pg_notify via pgbun')});
rq($notifier, q{BEGIN; NOTIFY ch0, 'tx 1'; NOTIFY ch1, 'tx 2'; COMMIT});
my $end = sentinel('sent');

my $want_all = until_sentinel($direct, $end);
is(scalar @$want_all, 46, 'the direct session got all 46 notifications') or diag(explain($want_all));
my %pids = map { (split /\|/)[0] => 1 } @$want_all;
cmp_ok(scalar keys %pids, '>=', 3, 'they came from several backends (server side and pooled servers)');
my $all_ok = 1;
for my $i (0 .. 49)
{
	my $got = until_sentinel($clients[$i], $end);
	my @want = grep { $subs[$i]{ (split /\|/, $_, 3)[1] } } @$want_all;
	if (!is_deeply($got, \@want, "client $i: exactly its channels' notifications, in order, with payloads and pids"))
	{
		$all_ok = 0;
		diag(explain({ got => $got, want => \@want }));
		last;
	}
}
ok($all_ok, 'all 50 clients got what the direct session got, filtered by their channels');

my $count = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND application_name <> 'pgbun listener'");
cmp_ok($count, '<=', 3, 'the pool has at most 2 servers (+ the direct session)');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener'"),
	'1', 'one LISTEN connection for the pool');

########## UNLISTEN x, UNLISTEN *

for my $i (0 .. 9)
{
	my $ch = $channels[ $i % 5 ];
	rq($clients[$i], "UNLISTEN $sql_names[$i % 5]");
	delete $subs[$i]{$ch};
}
for my $i (10 .. 19)
{
	rq($clients[$i], 'UNLISTEN *');
	$subs[$i] = {};
	rq($clients[$i], 'LISTEN sent2');
	$subs[$i]{sent2} = 1;
}
rq($_, 'LISTEN sent2') foreach @clients[ 0 .. 9, 20 .. 49 ], $direct;
$subs[$_]{sent2} = 1 foreach 0 .. 49;
$node->safe_psql('notifydb',
	q{SELECT pg_notify((ARRAY['ch0','ch1','ch2','Ch "Quoted"','UPPER'])[1 + i % 5], 'round 2 ' || i) FROM generate_series(1, 20) i});
$end = sentinel('sent2');
$want_all = until_sentinel($direct, $end);
is(scalar @$want_all, 20, 'direct session: round 2');
$all_ok = 1;
for my $i (0 .. 49)
{
	my $got = until_sentinel($clients[$i], $end);
	my @want = grep { $subs[$i]{ (split /\|/, $_, 3)[1] } } @$want_all;
	if (!is_deeply($got, \@want, "client $i after UNLISTEN: only the channels it kept"))
	{
		$all_ok = 0;
		diag(explain({ got => $got, want => \@want }));
		last;
	}
}
ok($all_ok, 'UNLISTEN x and UNLISTEN * stop exactly those channels');
my $c0 = $clients[0];
is_deeply(rows(rq($clients[12], 'SELECT c FROM pg_listening_channels() c ORDER BY 1')),
	['sent2'], 'after UNLISTEN * and LISTEN sent2 the pooled server shows sent2 only');

########## transactions: LISTEN takes effect at commit

my $t = login('tx client');
rq($t, 'LISTEN t_sent');
rq($t, 'BEGIN; LISTEN rb_chan; ROLLBACK');
rq($t, 'BEGIN');
rq($t, 'LISTEN commit_chan');
rq($t, 'SAVEPOINT s1');
rq($t, 'LISTEN sp_chan');
rq($t, 'ROLLBACK TO SAVEPOINT s1');
rq($t, 'COMMIT');
my $err = first_error(rq($t, 'LISTEN failed_chan; SELECT 1/0'));
is($err->{C}, '22012', 'a LISTEN in a failed implicit transaction: the error reaches the client');
rq($t, 'BEGIN; LISTEN abort_chan; SELECT 1/0');
rq($t, 'COMMIT');
$node->safe_psql('notifydb',
	q{NOTIFY rb_chan, 'x'; NOTIFY commit_chan, 'committed'; NOTIFY sp_chan, 'x'; NOTIFY failed_chan, 'x'; NOTIFY abort_chan, 'x'});
$end = sentinel('t_sent');
my $got = until_sentinel($t, $end);
is_deeply([ map { (split /\|/, $_, 3)[1] } @$got ], ['commit_chan'],
	'only the committed LISTEN subscribes (not a rolled-back transaction, savepoint, failed query or aborted transaction)');
is_deeply(rows(rq($t, 'SELECT c FROM pg_listening_channels() c ORDER BY 1')),
	[ 'commit_chan', 't_sent' ], 'pg_listening_channels() agrees');

# a NOTIFY in the transaction of the LISTEN reaches the client, as on a direct session
rq($t, q{LISTEN self_chan; NOTIFY self_chan, 'self 1'});
rq($direct, q{LISTEN self_direct; NOTIFY self_direct, 'self 1'});
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($t, 1) } ], ['self 1'],
	'a NOTIFY in the same query as the LISTEN reaches the client');
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($direct, 1) } ], ['self 1'], '... as on a direct session');
rq($t, q{NOTIFY self_chan, 'self 2'});
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($t, 1) } ], ['self 2'], 'and later ones once, through the listener');
rq($direct, 'UNLISTEN self_direct');

# ... also on a channel the listener has already (another client listens to it)
my $sa = login('self A');
my $sb = login('self B');
rq($sa, 'LISTEN shared_self; LISTEN self_end');
rq($sb, q{LISTEN shared_self; LISTEN self_end; NOTIFY shared_self, 'b self'});
$end = sentinel('self_end');
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ until_sentinel($sb, $end) } ], ['b self'],
	'a NOTIFY in the LISTEN\'s own query, on a channel the listener has: once for the client');
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ until_sentinel($sa, $end) } ], ['b self'], '... and once for the other listener');
$sa->close;
$sb->close;

# DISCARD ALL drops every channel, as on a direct session
my $d = login('discard client');
rq($d, 'LISTEN d_chan; LISTEN d_sent');
rq($d, 'DISCARD ALL');
rq($d, 'LISTEN d_sent');
$node->safe_psql('notifydb', q{NOTIFY d_chan, 'x'});
$end = sentinel('d_sent');
is_deeply(until_sentinel($d, $end), [], 'DISCARD ALL unsubscribes');
$d->close;

# RESET ALL puts back the client's connect-time values (session.c holds its
# ReadyForQuery for that too): one ReadyForQuery, the values back, the LISTEN in force
{
	my $rr = raw_connect($node);
	my $lr = $rr->login(%alice, params => [ statement_timeout => '12345' ]);
	ok($lr->{ok}, 'a client with a connect-time statement_timeout logs in');
	$rr->{notes} = [];
	rq($rr, 'LISTEN rst_end');
	my $msgs = rq($rr, 'RESET ALL; LISTEN rst_chan');
	is(scalar(grep { ($_->{type} // '') eq 'Z' } @$msgs), 1, 'RESET ALL; LISTEN: one ReadyForQuery');
	$msgs = rq($rr, 'SHOW statement_timeout');
	is_deeply(rows($msgs), ['12345ms'], 'RESET ALL; LISTEN: the connect-time value is back');
	is(msg_types($msgs), 'TDCZ', 'no ReadyForQuery left over');
	$node->safe_psql('notifydb', q{NOTIFY rst_chan, 'after reset'});
	$end = sentinel('rst_end');
	is_deeply([ map { (split /\|/, $_, 3)[2] } @{ until_sentinel($rr, $end) } ], ['after reset'],
		'RESET ALL; LISTEN: the LISTEN subscribed');
	$msgs = rq($rr, 'DISCARD ALL');
	is(scalar(grep { ($_->{type} // '') eq 'Z' } @$msgs), 1, 'DISCARD ALL of a listening client: one ReadyForQuery');
	is_deeply(rows(rq($rr, 'SELECT c FROM pg_listening_channels() c')), [], 'DISCARD ALL: no channels left');
	$rr->close;
}

########## statement mode; session mode as before

my $st = login('statement client', 'stmtdb');
rq($st, 'LISTEN st_chan');
$node->safe_psql('stmtdb', q{NOTIFY st_chan, 'statement mode'});
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($st, 1) } ], ['statement mode'],
	'statement mode: LISTEN through pgbun delivers');
my $ss = login('session client', 'sessdb');
rq($ss, 'LISTEN ss_chan');
my $ss_pid = rows(rq($ss, 'SELECT pg_backend_pid()'))->[0];
$node->safe_psql('sessdb', q{NOTIFY ss_chan, 'session mode'});
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($ss, 1) } ], ['session mode'],
	'session mode: the client\'s own server delivers');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener' AND datname IN ('sessdb')"),
	'0', 'session mode opens no LISTEN connection');
$st->close;
$ss->close;

########## extended protocol

my $e = login('extended client');
$e->send_bytes(parse_msg('', 'LISTEN ext_chan') . bind_msg('', '') . execute_msg('') . sync_msg());
my $m = until_ready($e);
is(msg_types($m), '12CZ', 'extended-protocol LISTEN completes');
$e->send_bytes(parse_msg('unl', 'UNLISTEN ext_gone') . parse_msg('', 'LISTEN ext_gone') . bind_msg('', '')
	  . execute_msg('') . sync_msg());
until_ready($e);
$node->safe_psql('notifydb', q{NOTIFY ext_chan, 'ext 1'; NOTIFY ext_gone, 'ext 2'});
$got = take_notes($e, 2);
is_deeply([ map { (split /\|/, $_, 3)[2] } @$got ], [ 'ext 1', 'ext 2' ], 'both channels LISTENed through Parse/Bind/Execute deliver');
$e->send_bytes(bind_msg('', 'unl') . execute_msg('') . sync_msg());
$m = until_ready($e);
is(msg_types($m), '2CZ', 'a named UNLISTEN statement runs');
ok( (poll_sql($node,
		"SELECT query FROM pg_stat_activity WHERE application_name = 'pgbun listener' AND datname = 'notifydb'",
		'UNLISTEN "ext_gone";'))[0],
	'the LISTEN connection UNLISTENs a channel nobody wants any more');
$node->safe_psql('notifydb', q{NOTIFY ext_gone, 'ext 3'; NOTIFY ext_chan, 'ext 4'});
$got = take_notes($e, 1);
is_deeply([ map { (split /\|/, $_, 3)[2] } @$got ], ['ext 4'], 'the named UNLISTEN took effect');

########## the LISTEN connection dies and comes back

my $lpid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbun listener' AND datname = 'notifydb'");
like($lpid, qr/^\d+$/, 'the LISTEN connection shows in pg_stat_activity');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($lpid)");
ok( (poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener' AND datname = 'notifydb' AND state = 'idle' AND pid <> $lpid",
		'1'))[0],
	'a new LISTEN connection is opened after pg_terminate_backend');
$node->safe_psql('notifydb',
	q{SELECT pg_notify((ARRAY['ch0','ch1','ch2','Ch "Quoted"','UPPER'])[1 + i % 5], 'round 3 ' || i) FROM generate_series(1, 10) i});
$end = sentinel('sent2');
$want_all = until_sentinel($direct, $end);
is(scalar @$want_all, 10, 'direct session: round 3');
$all_ok = 1;
for my $i (0 .. 49)
{
	my $got = until_sentinel($clients[$i], $end);
	my @want = grep { $subs[$i]{ (split /\|/, $_, 3)[1] } } @$want_all;
	if (!is_deeply($got, \@want, "client $i after the listener came back"))
	{
		$all_ok = 0;
		diag(explain({ got => $got, want => \@want }));
		last;
	}
}
ok($all_ok, 'no later notification lost after the LISTEN connection was re-established');

########## a client that does not read

my $slow = login('slow client');
my $fast = login('fast client');
rq($slow, 'LISTEN slow_chan');
rq($fast, 'LISTEN slow_chan');
my $payload_len = 7000;
my $fast_got = 0;
my $fast_ok = 1;
my $closed = 0;
my $batches = 0;
my $log_offset = -s $node->logfile;
# batches well under the bound, so that the client that reads between them never nears it
for my $b (1 .. 1000)
{
	$batches++;
	$node->safe_psql('notifydb', "SELECT pg_notify('slow_chan', $b || ':' || i || ':' || repeat('x', $payload_len)) FROM generate_series(1, 5) i");
	my $n = take_notes($fast, 5);
	$fast_ok = 0 if @$n != 5;
	$fast_got += @$n;
	if (slurp_file($node->logfile, $log_offset) =~ /does not read its notifications/)
	{
		$closed = 1;
		last;
	}
}
ok($closed, "pgbun gives up on the client that does not read (after $batches batches of 5)");
ok($fast_ok, "the other client of the channel got every notification meanwhile ($fast_got)");
my $r = $slow->read_to_eof;
my @types = map { $_->{type} // '' } @{ $r->{msgs} };
my @errs = grep { ($_->{type} // '') eq 'E' } @{ $r->{msgs} };
ok($r->{eof}, 'the slow client is closed');
is(scalar @errs, 1, 'it gets one ErrorResponse after what it was sent');
my $ef = @errs ? PgbunTest::Raw::error_fields($errs[0]{body}) : {};
is($ef->{C}, '53200', 'SQLSTATE 53200');
like($ef->{M} // '', qr/^pgbun: client does not read its notifications/, 'a pgbun: message naming the cause');
is($types[-1], 'E', 'the error comes last, after whole notifications');
is_deeply(rows(rq($fast, 'SELECT 42')), ['42'], 'the fast client goes on');

########## pipelines; a client that leaves while its answer is held

# two Sync batches sent at once: the LISTEN's batch is not the last one owed
my $pl = login('pipeline client');
$pl->send_bytes(parse_msg('', 'LISTEN pipe_chan') . bind_msg('', '') . execute_msg('') . sync_msg()
	  . parse_msg('', 'SELECT 7') . bind_msg('', '') . execute_msg('') . sync_msg());
until_ready($pl);
$m = until_ready($pl);
is_deeply(rows($m), ['7'], 'a pipeline of a LISTEN batch and a SELECT batch completes');
$node->safe_psql('notifydb', q{NOTIFY pipe_chan, 'piped'});
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ take_notes($pl, 1) } ], ['piped'], 'the pipelined LISTEN subscribed');
# a NOTIFY pipelined behind the LISTEN, on the same connection
$pl->send_bytes(PgbunTest::Raw::query_message('LISTEN pipe2; LISTEN pipe_end')
	  . PgbunTest::Raw::query_message(q{NOTIFY pipe2, 'behind the LISTEN'}));
until_ready($pl);
until_ready($pl);
$end = sentinel('pipe_end');
is_deeply([ map { (split /\|/, $_, 3)[2] } @{ until_sentinel($pl, $end) } ], ['behind the LISTEN'],
	'a NOTIFY pipelined behind a LISTEN on the same connection arrives once');
$pl->close;

my $gone = login('leaving client');
$gone->send_bytes(PgbunTest::Raw::query_message('LISTEN gone_chan'));
$gone->close;
my $after = login('after client');
is_deeply(rows(rq($after, 'SELECT c FROM pg_listening_channels() c')), [],
	'a client that left right after its LISTEN leaves no channel on the servers');
$after->close;

########## the LISTEN connection cannot log in (role connection limit)

$node->safe_psql('postgres', q{
SET password_encryption = 'scram-sha-256';
CREATE ROLE lim LOGIN PASSWORD 'lim-pw' CONNECTION LIMIT 1;
GRANT CONNECT ON DATABASE notifydb TO lim;
});
my $lraw = raw_connect($node);
my $lr = $lraw->login(user => 'lim', password => 'lim-pw', database => 'notifydb');
ok($lr->{ok}, 'a role with CONNECTION LIMIT 1 logs in');
$lraw->{notes} = [];
my $t0 = time;
$m = rq($lraw, 'LISTEN lim_chan');
ok(grep({ ($_->{type} // '') eq 'Z' } @$m), 'its LISTEN completes although the LISTEN connection cannot log in');
cmp_ok(time - $t0, '<', 20, '... in bounded time');
is_deeply(rows(rq($lraw, 'SELECT 5')), ['5'], 'the client and its pool go on');
ok(wait_until(sub { slurp_file($node->logfile) =~ m{LISTEN connection of pool notifydb/lim could not log in} }),
	'the log says the LISTEN connection could not log in');
$lraw->close;

########## node pg: client.on('notification')

my $node_dir = Cwd::abs_path("$FindBin::RealBin/../test/node");
SKIP:
{
	if (!-e "$node_dir/node_modules/pg/package.json")
	{
		fail('node pg is not installed; run `npm ci` in test/node (make test does it)');
		last SKIP;
	}
	my ($rc, $out, $err) = PgbunTest::run_cmd(
		[ 'node', "$node_dir/pg_notify.mjs" ],
		'',
		{
			PgbunTest::client_env(password => 'alice-pw'),
			PGHOST => '127.0.0.1',
			PGPORT => pgbun_port($node),
			PGUSER => 'alice',
			PGDATABASE => 'notifydb',
		},
		120);
	is($rc, 0, 'node pg: the notification script exits 0')
	  or diag("stdout:\n$out\nstderr:\n$err");
	my $sum = eval { decode_json((split /\n/, $out)[-1]) } // {};
	is($sum->{received}, 100, 'node pg: 100 notifications received through client.on(\'notification\')');
	is($sum->{pid_mismatch}, 0, 'node pg: each with the notifying backend\'s pid');
	is($sum->{after_unlisten}, 0, 'node pg: none after UNLISTEN');
}

$_->close foreach @clients, $direct, $t, $e, $fast, $notifier;
ok( (poll_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener'", '0'))[0],
	'the LISTEN connection closes once no client listens');
like(slurp_file($node->logfile), qr/LISTEN connection of pool notifydb\/alice ready/, 'the log tells when the LISTEN connection is ready');
unlike(slurp_file($node->logfile), qr/TRAP|server process .* was terminated by signal/, 'no crash');

stop_node($node);

########## two workers: each has its own LISTEN connection per pool

my $node2 = pgbun_node(
	name => 'notify2',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '2',
		'pgbun.workers' => '2',
	});
$node2->safe_psql(
	'postgres', q{
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE DATABASE notifydb OWNER alice;
ALTER ROLE alice SET idle_session_timeout = '1s';
});
my @w;
for my $i (0 .. 19)
{
	my $raw = raw_connect($node2);
	my $r = $raw->login(%alice);
	ok($r->{ok}, "two workers: client $i logs in") or last;
	$raw->{notes} = [];
	rq($raw, 'LISTEN w_chan');
	push @w, $raw;
}
my $lpids = sub {
	$node2->safe_psql('postgres', "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE application_name = 'pgbun listener'");
};
my $lp = $lpids->();
usleep(2_500_000);
is($lpids->(), $lp, 'the LISTEN connections outlive the role\'s idle_session_timeout (1 s)');
$node2->safe_psql('notifydb', q{SELECT pg_notify('w_chan', 'w ' || i) FROM generate_series(1, 5) i});
my $w_ok = 1;
foreach my $raw (@w)
{
	my $n = take_notes($raw, 5);
	$w_ok = 0 unless join(',', map { (split /\|/, $_, 3)[2] } @$n) eq 'w 1,w 2,w 3,w 4,w 5';
}
ok($w_ok, 'two workers: every client gets every notification, in order');
my $nl = $node2->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun listener'");
ok($nl >= 1 && $nl <= 2, "two workers: one LISTEN connection per worker with listening clients ($nl)");
$_->close foreach @w;
stop_node($node2);
done_testing();

# 130_prepared: protocol-level named prepared statements in transaction and
# statement pooling (src/prepared.c), over raw sockets.
#
#  - Parse, Flush, Bind (asyncpg's order): the Bind reaches the server that
#    has the Parse, and another client waits until the Sync (nothing is
#    released on Flush);
#  - Describe of a named statement; Close of an unknown name; a name reused
#    after Close; a Bind of a closed name gets the server's 26000;
#  - two clients using one statement name for different queries on the same
#    server (pool of 1) each get their own results;
#  - a Parse of a statement the pool already knows, a Close, a Sync: answered
#    by pgbun while another client holds the only server;
#  - pgbun.max_prepared_statements = 3: statements evicted from the server's
#    LRU are prepared again when used; the server never holds more than 3;
#  - a Bind on a new server (the old one was terminated) gets the Parse
#    injected first;
#  - 100 Parse/Bind/Execute in one write, then one Sync;
#  - DEALLOCATE ALL forgets the client's names;
#  - a Parse the server rejects leaves no name behind;
#  - statement pooling: Parse, Sync, then Bind/Execute, Sync on another turn;
#  - pgbun.stats counts client Parses, server Parses and Binds;
#  - max_prepared_statements = 0 refuses named statements with 0A000.
#
# Deadlines are hang guards, never timing assertions.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'prepared',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.max_prepared_statements' => '3',
		'pgbun.databases' => 'stmtdb = pool_mode=statement',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE DATABASE prepdb;
CREATE DATABASE stmtdb;
});
my %alice = (user => 'alice', password => 'alice-pw');
my $worker_pid = worker_pid($node);

sub login
{
	my ($db) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice, database => $db // 'prepdb');
	ok($r->{ok}, "raw client logs in to " . ($db // 'prepdb'))
	  or diag(explain($r));
	return $raw;
}

# The DataRows among $msgs as arrays of column values.
sub rows
{
	my ($msgs) = @_;
	return [ map { PgbunTest::Raw::data_row($_->{body}) } grep { ($_->{type} // '') eq 'D' } @{$msgs} ];
}

# Bind + Execute of a named statement, then Sync: the answers up to ReadyForQuery.
sub run_stmt
{
	my ($raw, $stmt, @params) = @_;
	$raw->send_bytes(bind_msg('', $stmt, @params) . execute_msg('') . sync_msg());
	return read_until($raw, 'Z');
}

sub stats
{
	my ($db) = @_;
	my $line = $node->safe_psql('postgres',
		"SELECT total_client_parse_count, total_server_parse_count, total_bind_count FROM pgbun.stats WHERE database = '$db'"
	);
	my @v = split /\|/, $line;
	return { client_parse => $v[0] // 0, server_parse => $v[1] // 0, bind => $v[2] // 0 };
}

############ Parse, Flush, Bind: the server is not released on Flush

my $a = login();
my $b = login();
$a->send_bytes(parse_msg('double', 'SELECT $1::int * 2, pg_backend_pid()', 23) . flush_msg());
my $msgs = read_until($a, '1');
is(msg_types($msgs), '1', 'Parse + Flush: ParseComplete arrives before any Sync');

# B asks while A holds the only server inside its Parse/Flush exchange.
$b->send_bytes(PgbunTest::Raw::query_message('SELECT pg_backend_pid()'));
my $early = $b->read_message(1);
ok($early->{timeout}, 'another client waits while A holds the server between Flush and Sync');

$msgs = run_stmt($a, 'double', '21');
is(msg_types($msgs), '2DCZ', 'Bind after Flush: BindComplete, DataRow, CommandComplete, ReadyForQuery');
my $a_row = rows($msgs)->[0] // [];
is($a_row->[0] // '', '42', 'Bind after Flush reached the server holding the Parse (21 * 2)');

$msgs = read_until($b, 'Z');
is(msg_types($msgs), 'TDCZ', 'the waiting client is served once A has synced');
is(rows($msgs)->[0][0] // '', $a_row->[1] // 'none', 'pool of 1: both clients used the same server');

############ Describe, Close of an unknown name, reuse after Close

$a->send_bytes(describe_msg('S', 'double') . sync_msg());
$msgs = read_until($a, 'Z');
is(msg_types($msgs), 'tTZ', 'Describe of a named statement: ParameterDescription, RowDescription');

$a->send_bytes(close_msg('S', 'no_such_statement') . sync_msg());
$msgs = read_until($a, 'Z');
is(msg_types($msgs), '3Z', 'Close of an unknown statement name: CloseComplete, as PostgreSQL answers');

$a->send_bytes(close_msg('S', 'double') . sync_msg());
is(msg_types(read_until($a, 'Z')), '3Z', 'Close of a known name: CloseComplete');
$msgs = run_stmt($a, 'double', '1');
is(first_error($msgs)->{C} // '', '26000', 'Bind of a closed name: the server\'s 26000')
  or diag(msg_types($msgs));

$a->send_bytes(parse_msg('double', 'SELECT $1::int * 3', 23) . sync_msg());
is(msg_types(read_until($a, 'Z')), '1Z', 'the name is free again after Close: ParseComplete');
$msgs = run_stmt($a, 'double', '5');
is(rows($msgs)->[0][0] // '', '15', 'the reused name runs its new query (5 * 3)');

############ two clients, one name, different queries, one server

$a->send_bytes(parse_msg('same', "SELECT 'from A', pg_backend_pid()") . sync_msg());
is(msg_types(read_until($a, 'Z')), '1Z', 'client A prepares "same"');
$b->send_bytes(parse_msg('same', "SELECT 'from B', pg_backend_pid()") . sync_msg());
is(msg_types(read_until($b, 'Z')), '1Z', 'client B prepares "same" with another query');
my ($bad, %pids) = (0);
for my $i (1 .. 50)
{
	for my $pair ([ $a, 'from A' ], [ $b, 'from B' ])
	{
		my $row = rows(run_stmt($pair->[0], 'same'))->[0] // [];
		$bad++ if ($row->[0] // '') ne $pair->[1];
		$pids{ $row->[1] // 'none' } = 1;
	}
}
is($bad, 0, 'same name, different queries, 50 rounds interleaved: each client gets its own query');
is(scalar(keys %pids), 1, 'and every round ran on the one server of the pool');

############ a Parse pgbun answers without a server

# pgbench -M prepared prepares synchronously, one client after another in a
# thread: if that needed a server while the thread's other clients hold them
# all inside transactions, nothing could move.
$a->send_bytes(PgbunTest::Raw::query_message('BEGIN'));
is(msg_types(read_until($a, 'Z')), 'CZ', 'A opens a transaction and holds the only server');
$b->send_bytes(parse_msg('again', "SELECT 'from A', pg_backend_pid()") . sync_msg());
is(msg_types(read_until($b, 'Z')), '1Z',
	'B prepares a statement this pool already has while A holds the server: pgbun answers');
$b->send_bytes(close_msg('S', 'again') . flush_msg() . sync_msg());
is(msg_types(read_until($b, 'Z')), '3Z', 'Close, Flush and Sync without a server too');
$a->send_bytes(PgbunTest::Raw::query_message('COMMIT'));
is(msg_types(read_until($a, 'Z')), 'CZ', 'A commits');

############ LRU of 3 per server: evicted statements come back

my $before = stats('prepdb');
for my $i (1 .. 5)
{
	$a->send_bytes(parse_msg("lru$i", "SELECT $i AS n_$i") . sync_msg());
	is(msg_types(read_until($a, 'Z')), '1Z', "prepare lru$i");
}
my @got;
for my $i (1 .. 5)
{
	push @got, rows(run_stmt($a, "lru$i"))->[0][0] // 'error';
}
is(join(',', @got), '1,2,3,4,5', 'all five statements run although the server keeps only 3');
$a->send_bytes(PgbunTest::Raw::query_message('SELECT count(*) FROM pg_prepared_statements'));
$msgs = read_until($a, 'Z');
cmp_ok(rows($msgs)->[0][0] // 99, '<=', 3, 'the server holds at most pgbun.max_prepared_statements statements');
my $after = stats('prepdb');
cmp_ok($after->{server_parse} - $before->{server_parse}, '>', 5,
	'evicted statements were parsed on the server again (server Parses > 5)');
is($after->{client_parse} - $before->{client_parse}, 5, 'pgbun.stats: 5 client Parses counted');
is($after->{bind} - $before->{bind}, 5, 'pgbun.stats: 5 Binds counted');

# The one evicted is the least recently used, not the oldest prepared: the
# server now has lru3, lru4, lru5, used in that order. Using lru3 again makes
# lru4 the least recently used, so lru1 takes lru4's place, and lru3 and lru5
# run without a new Parse on the server.
{
	my @parses;
	for my $i (3, 1, 3, 5, 4)
	{
		my $b0 = stats('prepdb')->{server_parse};
		my $v = rows(run_stmt($a, "lru$i"))->[0][0] // 'error';
		push @parses, "lru$i=$v:" . (stats('prepdb')->{server_parse} - $b0);
	}
	is(join(' ', @parses), 'lru3=3:0 lru1=1:1 lru3=3:0 lru5=5:0 lru4=4:1',
		'a statement used again is kept: the least recently used one is evicted');
}

############ a new server gets the Parse injected

$a->send_bytes(parse_msg('survivor', 'SELECT 7, pg_backend_pid()') . sync_msg());
is(msg_types(read_until($a, 'Z')), '1Z', 'prepare "survivor"');
my $old_pid = rows(run_stmt($a, 'survivor'))->[0][1];
$node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)");
ok( wait_until(
		sub {
			$node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $old_pid") eq '0';
		}),
	'the server holding "survivor" is gone');
# The pooler may only notice the dead server when it tries to use it.
my $row;
for my $try (1 .. 3)
{
	$msgs = run_stmt($a, 'survivor');
	$row = rows($msgs)->[0];
	last if $row;
	last if ($msgs->[-1]{type} // '') ne 'Z';
}
is($row->[0] // 'none', '7', 'Bind on a new server: pgbun prepared the statement there first');
isnt($row->[1] // $old_pid, $old_pid, 'and it ran on another backend');

############ 100 Parse/Bind/Execute in one write

{
	my $data = '';
	$data .= parse_msg("many$_", "SELECT $_ * 10") . bind_msg('', "many$_") . execute_msg('') for 1 .. 100;
	$data .= sync_msg();
	$b->send_bytes($data);
	$msgs = read_until($b, 'Z');
	my $want = join('', map { '12DC' } 1 .. 100) . 'Z';
	is(msg_types($msgs), $want, '100 named Parse/Bind/Execute and one Sync: every answer in order');
	is(join(',', map { $_->[0] } @{ rows($msgs) }), join(',', map { $_ * 10 } 1 .. 100),
		'and each result belongs to its own statement');
}

############ DEALLOCATE ALL, a rejected Parse

$b->send_bytes(parse_msg('gone', 'SELECT 1') . sync_msg());
is(msg_types(read_until($b, 'Z')), '1Z', 'prepare "gone"');
$b->send_bytes(PgbunTest::Raw::query_message('DEALLOCATE ALL'));
is(msg_types(read_until($b, 'Z')), 'CZ', 'DEALLOCATE ALL');
$msgs = run_stmt($b, 'gone');
is(first_error($msgs)->{C} // '', '26000', 'after DEALLOCATE ALL the client\'s names are gone');

$b->send_bytes(parse_msg('broken', 'SELECT no_such_column') . sync_msg());
$msgs = read_until($b, 'Z');
is(first_error($msgs)->{C} // '', '42703', 'a Parse the server rejects: the server\'s error');
$msgs = run_stmt($b, 'broken');
is(first_error($msgs)->{C} // '', '26000', 'the rejected statement does not exist afterwards');
$b->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
is(msg_types(read_until($b, 'Z')), 'TDCZ', 'the connection goes on after the errors');

$a->terminate;
$b->terminate;

############ statement pooling

{
	my $s = login('stmtdb');
	$s->send_bytes(parse_msg('st', 'SELECT $1::int + 1', 23) . sync_msg());
	is(msg_types(read_until($s, 'Z')), '1Z', 'statement mode: named Parse');
	$msgs = run_stmt($s, 'st', '41');
	is(rows($msgs)->[0][0] // '', '42', 'statement mode: the statement runs on a later turn');
	$s->terminate;
}

############ many names on one client and one server (the hash indexes)

# 300 names on one client, 100 statements per server: the per-client and
# per-server indexes grow, lose entries in the middle (Close, eviction) and
# move entries (removal moves the last one into the hole); every name must
# still run its own query.
reload_conf($node, 'pgbun.max_prepared_statements' => '100');
{
	my $many = 300;
	my $c = raw_connect($node);
	ok($c->login(user => 'alice', password => 'alice-pw', database => 'prepdb')->{ok}, 'a client for many names');
	$c->send_bytes(join('', map { parse_msg("many$_", "SELECT $_ AS v") } 1 .. $many) . sync_msg());
	is(msg_types(read_until($c, 'Z')), ('1' x $many) . 'Z', "$many names prepared in one batch");
	my @thirds = grep { $_ % 3 == 0 } 1 .. $many;
	$c->send_bytes(join('', map { close_msg('S', "many$_") } @thirds) . sync_msg());
	is(msg_types(read_until($c, 'Z')), ('3' x @thirds) . 'Z', 'every third name closed');
	$c->send_bytes(join('', map { parse_msg("many$_", "SELECT -$_ AS v") } @thirds) . sync_msg());
	is(msg_types(read_until($c, 'Z')), ('1' x @thirds) . 'Z', 'and prepared again with other queries');
	# a fixed shuffle (7 is prime to 300), all in one pipeline
	my @order = map { ($_ * 7) % $many + 1 } 0 .. $many - 1;
	$c->send_bytes(join('', map { bind_msg('', "many$_") . execute_msg('') } @order) . sync_msg());
	my @got = map { $_->[0] } @{ rows(read_until($c, 'Z')) };
	my @want = map { $_ % 3 == 0 ? -$_ : $_ } @order;
	is(join(',', @got), join(',', @want), 'each of the 300 names runs its own query, in a shuffled pipeline');
	$c->terminate;
}

# The eviction order against a model: 150 new statements, then 600 Binds in
# a pseudo-random order, on the one server that keeps 100. The Parses pgbun
# sends the server must be exactly the misses of a least-recently-used cache
# of 100 (the server's older statements are never used again, so they go
# first and do not count).
{
	my ($n, $cap) = (150, 100);
	my $c = raw_connect($node);
	ok($c->login(%alice, database => 'prepdb')->{ok}, 'a client for the eviction model');
	$c->send_bytes(join('', map { parse_msg("lru_m$_", "SELECT $_ AS lru_model") } 1 .. $n) . sync_msg());
	is(msg_types(read_until($c, 'Z')), ('1' x $n) . 'Z', "$n new statements prepared");
	my @cache = (($n - $cap + 1) .. $n);    # oldest first
	my ($x, @order) = (12345);
	for (1 .. 600)
	{
		$x = ($x * 1103515245 + 12345) % 2147483648;
		# mostly a hot set of 80 (close to the 100 kept), sometimes any of the 150
		push @order, ($x >> 8) % 4 ? 1 + ($x >> 12) % 80 : 1 + ($x >> 12) % $n;
	}
	my $misses = 0;
	for my $i (@order)
	{
		my @rest = grep { $_ != $i } @cache;
		if (@rest == @cache)
		{
			$misses++;
			shift @rest if @rest >= $cap;
		}
		@cache = (@rest, $i);
	}
	my $b0 = stats('prepdb')->{server_parse};
	$c->send_bytes(join('', map { bind_msg('', "lru_m$_") . execute_msg('') } @order) . sync_msg());
	my @got = map { $_->[0] } @{ rows(read_until($c, 'Z')) };
	is(join(',', @got), join(',', @order), 'each of the 600 Binds runs its own statement');
	my $parses = stats('prepdb')->{server_parse} - $b0;
	cmp_ok($misses, '>', 50, "the order has misses to count ($misses)");
	is($parses, $misses, 'the server got a Parse for exactly the misses of an LRU cache of 100');
	# and it kept exactly the statements the model keeps (the pool's one server)
	$c->send_bytes(PgbunTest::Raw::query_message(
		"SELECT statement FROM pg_prepared_statements WHERE statement LIKE '% AS lru_model'"));
	# (zero-padded: this file's lexical $a hides sort's)
	my @kept = sort map { $_->[0] =~ /SELECT (\d+) AS/ ? sprintf('%03d', $1) : () } @{ rows(read_until($c, 'Z')) };
	is(join(',', @kept), join(',', sort map { sprintf('%03d', $_) } @cache),
		'the server holds the 100 statements an LRU cache keeps');
	$c->terminate;
}

# A lower limit at a reload: the server (holding 100) shrinks to it over its
# next misses, closing at most 8 statements on each.
reload_conf($node, 'pgbun.max_prepared_statements' => '90');
{
	my $c = raw_connect($node);
	ok($c->login(%alice, database => 'prepdb')->{ok}, 'a client after lowering max_prepared_statements');
	my @held;
	for my $i (1 .. 3)
	{
		$c->send_bytes(parse_msg("shrink$i", "SELECT $i AS shrink") . sync_msg());
		read_until($c, 'Z');
		$c->send_bytes(PgbunTest::Raw::query_message('SELECT count(*) FROM pg_prepared_statements'));
		push @held, rows(read_until($c, 'Z'))->[0][0] // 'error';
	}
	is(join(',', @held), '93,90,90', 'the server holds 100 - 8 + 1, then the new limit');
	$c->terminate;
}
reload_conf($node, 'pgbun.max_prepared_statements' => '100');

############ the server's errors name the client's statement

# A Bind with the wrong number of parameters: the backend's 08P01 names the
# statement. Direct, that is the client's name; through pgbun the server
# knows it as pgbun_<n>, and the client must still read its own.
{
	my @got;
	my $direct = PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port);
	my $pooled = raw_connect($node);
	ok($direct->login(user => PgbunTest::bootstrap_user(), database => 'prepdb')->{ok}, 'direct login');
	ok($pooled->login(%alice, database => 'prepdb')->{ok}, 'pooled login');
	foreach my $raw ($direct, $pooled)
	{
		$raw->send_bytes(parse_msg('my_stmt', 'SELECT $1::int + 1') . sync_msg());
		read_until($raw, 'Z');
		$raw->send_bytes(bind_msg('', 'my_stmt') . execute_msg('') . sync_msg());
		my $msgs = read_until($raw, 'Z');
		push @got, [ msg_types($msgs), first_error($msgs) ];
		$raw->send_bytes(describe_msg('S', 'my_stmt') . sync_msg());
		push @{ $got[-1] }, msg_types(read_until($raw, 'Z'));
	}
	is($got[1][0], $got[0][0], "the wrong Bind gets the same answers ($got[0][0])");
	is($got[1][1]{C} // '', '08P01', 'the 08P01 of a Bind with too few parameters');
	is($got[1][1]{M} // '', $got[0][1]{M} // 'none', 'its message names the client\'s statement, as direct');
	is($got[1][2], $got[0][2], 'and the statement is still there afterwards');
	$_->terminate foreach $direct, $pooled;
}

# Two client names for one text share pgbun's statement: the error names
# the very name the Bind used (not the other one), also when a Close of it
# follows in the batch. Errors that quote a parameter's value pass as they
# are, even when the value is pgbun's own name for the statement, and even
# when that error is larger than pgbun's buffer.
{
	my (@got, @msgs);
	my $direct = PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port);
	my $pooled = raw_connect($node);
	ok($direct->login(user => PgbunTest::bootstrap_user(), database => 'prepdb')->{ok}, 'direct login');
	ok($pooled->login(%alice, database => 'prepdb')->{ok}, 'pooled login');

	# pgbun's name for the text, from the server it is prepared on (pinned by BEGIN)
	$pooled->send_bytes(PgbunTest::Raw::query_message('BEGIN'));
	read_until($pooled, 'Z');
	$pooled->send_bytes(parse_msg('first', 'SELECT $1::int * 2') . parse_msg('second', 'SELECT $1::int * 2')
		  . bind_msg('', 'first', '1') . execute_msg('') . sync_msg());
	read_until($pooled, 'Z');
	$pooled->send_bytes(PgbunTest::Raw::query_message(
		q{SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 2'}));
	my $sname = rows(read_until($pooled, 'Z'))->[0][0] // 'none';
	like($sname, qr/^pgbun_\d+$/, "the server knows the text as $sname");
	$pooled->send_bytes(PgbunTest::Raw::query_message('COMMIT'));
	read_until($pooled, 'Z');
	$direct->send_bytes(parse_msg('first', 'SELECT $1::int * 2') . parse_msg('second', 'SELECT $1::int * 2')
		  . sync_msg());
	read_until($direct, 'Z');

	my $long = $sname . '"' . ('x' x 20000);
	my @cases = (
		[ 'a Bind of the first name', bind_msg('', 'first') . execute_msg('') . sync_msg() ],
		[ 'a Bind of the first name, then its Close',
			bind_msg('', 'first') . execute_msg('') . close_msg('S', 'first') . sync_msg() ],
		[ "a Bind whose value is $sname", bind_msg('', 'first', $sname) . execute_msg('') . sync_msg() ],
		[ 'a 20 kB value quoting it', bind_msg('', 'first', $long) . execute_msg('') . sync_msg() ],
		[ 'both names still there', describe_msg('S', 'first') . describe_msg('S', 'second') . sync_msg() ]);
	foreach my $case (@cases)
	{
		my @pair;
		foreach my $raw ($direct, $pooled)
		{
			$raw->send_bytes($case->[1]);
			my $m = read_until($raw, 'Z');
			push @pair, [ msg_types($m), first_error($m) ];
		}
		is($pair[1][0], $pair[0][0], "$case->[0]: the same answers ($pair[0][0])");
		is($pair[1][1]{C} // '', $pair[0][1]{C} // '', "$case->[0]: the same SQLSTATE");
		# (a long text shown by its start and length)
		my @m = map { my $t = $_->[1]{M} // ''; substr($t, 0, 100) . ' (' . length($t) . ' bytes)' } @pair;
		is($m[1], $m[0], "$case->[0]: the same message");
	}
	$_->terminate foreach $direct, $pooled;
}

############ a Close skipped, then Close and Parse of the name again, pipelined

# The Bind fails, so the backend skips the Close after it; the next batch's
# Close of the name (pgbun answers it) takes the name away, and its Parse
# makes it again: the Bind after that must find it (difffuzz seed 34: the
# second Close, answered after the Parse had run, took the new name away).
{
	my $stream = sync_msg()
	  . close_msg('S', 'rc1') . parse_msg('rc3', 'SELECT g FROM generate_series(1, $1::int) g')
	  . bind_msg('', 'rc3') . close_msg('S', 'rc3') . sync_msg()
	  . close_msg('S', 'rc3') . parse_msg('rc3', 'SELECT g FROM generate_series(1, $1::int) g') . sync_msg()
	  . bind_msg('p1', 'rc3', '2') . execute_msg('p1') . sync_msg();
	my %seen;
	foreach my $round (1 .. 20)
	{
		foreach my $side ('direct', 'pgbun')
		{
			my $raw = $side eq 'direct'
			  ? PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port)
			  : raw_connect($node);
			my %who = $side eq 'direct' ? (user => PgbunTest::bootstrap_user()) : %alice;
			next unless $raw->login(%who, database => 'prepdb')->{ok};
			$raw->send_bytes($stream);
			my $types = '';
			$types .= msg_types(read_until($raw, 'Z')) foreach 1 .. 4;
			$seen{$side}{$types}++;
			$raw->terminate;
		}
	}
	my @direct = keys %{ $seen{direct} // {} };
	is(scalar @direct, 1, 'direct: one answer sequence');
	is(join(' | ', sort keys %{ $seen{pgbun} // {} }), $direct[0] // 'none',
		'through pgbun, 20 times: the same answers (the re-made name is found)');
}

############ max_prepared_statements = 0: named statements refused

reload_conf($node, 'pgbun.max_prepared_statements' => '0');
{
	# the worker applies the reload on its own time: retry until it has
	my $e = {};
	wait_until(
		sub {
			my $z = raw_connect($node);
			return 0 unless $z->login(%alice, database => 'prepdb')->{ok};
			$z->send_bytes(parse_msg('off', 'SELECT 1') . sync_msg());
			$e = first_error(read_until($z, 'Z'));
			$z->close;
			return ($e->{C} // '') eq '0A000';
		});
	is($e->{C} // '', '0A000', 'max_prepared_statements = 0: a named Parse gets 0A000');
	like($e->{M} // '', qr/^pgbun: .*max_prepared_statements/, 'with pgbun\'s message naming the setting');
}

is(worker_pid($node), $worker_pid, 'the worker pid is unchanged: no crash, no restart');
stop_node($node);
done_testing();

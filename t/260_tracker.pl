# 260_tracker: the protocol tracker (src/track.c) - when a server is at
# rest - over raw sockets, each case one that an earlier version got wrong.
#
#  - extended-protocol COPY FROM STDIN (Parse/Bind/Describe/Execute/Sync,
#    then CopyData/CopyDone/Sync, as libpq's PQexecParams sends it): the Sync
#    the backend ignores during copy-in must not pin the server; also
#    CopyFail in extended mode, COPY TO STDOUT in both protocols, and a
#    simple-query COPY whose data is pipelined before CopyInResponse;
#  - a pipeline whose implicit transaction fails at Sync (deferred
#    constraint) with the next batch already sent: error, then the second
#    batch's results, and the connection goes on;
#  - Parse + failing Bind + Query + Sync: the backend skips the Query, and
#    the server goes back to the pool;
#  - DISCARD ALL through Parse, DEALLOCATE ALL inside a multi-statement
#    query, SQL DEALLOCATE of a pgbun_ name, and (last line of defence) a
#    statement dropped where no tag shows it: other clients' statements are
#    prepared again instead of failing with 26000;
#  - the unnamed statement of one Sync batch bound in the next batch on
#    another server (asyncpg with statement_cache_size=0);
#  - a named Parse of a name the client still has: 42P05 as from
#    PostgreSQL, the rest of the batch skipped up to Sync;
#  - a reload that changes a pool's mode leaves live links alone.
#
# Pools have one server unless said otherwise, so a pinned server shows up
# as the next client's 57014 (query_wait_timeout). Expected answers are
# PostgreSQL's own, checked against a direct connection where it matters.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'tracker',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.query_wait_timeout' => '10s',
		'pgbun.databases' => 'postgres = pool_mode=session; twodb = pool_size=2; modedb = pool_mode=session',
		'log_statement' => 'all',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE probe LOGIN PASSWORD 'probe-pw';
CREATE DATABASE trackdb OWNER alice;
CREATE DATABASE twodb OWNER alice;
CREATE DATABASE modedb OWNER alice;
});
$node->safe_psql('trackdb', q{
SET ROLE alice;
CREATE TABLE copy_t (i int);
CREATE VIEW copy_v AS SELECT * FROM copy_t;
CREATE TABLE dc (i int UNIQUE DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE dup_t (who text);
});
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

sub login
{
	my ($db, $label) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice, database => $db // 'trackdb');
	ok($r->{ok}, ($label // 'raw client') . ' logs in to ' . ($db // 'trackdb'))
	  or diag(explain($r));
	return $raw;
}

# A direct connection to the server, same role (the reference behaviour).
sub login_direct
{
	my ($db) = @_;
	my $raw = PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port);
	my $r = $raw->login(%alice, database => $db // 'trackdb');
	ok($r->{ok}, 'direct raw client logs in') or diag(explain($r));
	return $raw;
}

sub rows
{
	my ($msgs) = @_;
	return [ map { PgbunTest::Raw::data_row($_->{body}) } grep { ($_->{type} // '') eq 'D' } @{$msgs} ];
}

sub copy_data { return PgbunTest::Raw::message('d', $_[0]); }
sub copy_done { return PgbunTest::Raw::message('c'); }
sub copy_fail { return PgbunTest::Raw::message('f', "$_[0]\0"); }

# The types read, with an error's SQLSTATE in brackets: '12E[23505]Z'.
sub shape
{
	my ($msgs) = @_;
	return join('',
		map {
			my $t = $_->{type} // ($_->{eof} ? '<eof>' : '<timeout>');
			$t eq 'E' ? 'E[' . (PgbunTest::Raw::error_fields($_->{body})->{C} // '?') . ']' : $t
		} @$msgs);
}

# Another client of the one-server pool gets a server: the server is free.
sub next_client_served
{
	my ($label, $db) = @_;
	my $n = login($db, "$label: next client");
	my $r = $n->query('SELECT 41 + 1');
	ok($r->{ok} && ($r->{rows}[0][0] // '') eq '42', "$label: the next client gets the server")
	  or diag(explain($r));
	$n->terminate;
	return;
}

# Read messages until $count ReadyForQuery have arrived (or EOF / timeout).
sub read_z
{
	my ($raw, $count, $secs) = @_;
	my @all;
	for (1 .. $count)
	{
		my $m = read_until($raw, 'Z', $secs);
		push @all, @$m;
		last if ($m->[-1]{type} // '') ne 'Z';
	}
	return \@all;
}

############ extended-protocol COPY FROM STDIN

{
	my $c = login();
	# as PQexecParams: Parse, Bind, Describe portal, Execute, Sync at once
	$c->send_bytes(parse_msg('', 'COPY copy_t FROM STDIN') . bind_msg('', '')
		  . describe_msg('P', '') . execute_msg('') . sync_msg());
	my $m = read_until($c, 'G');
	is(shape($m), '12nG', 'extended COPY FROM STDIN: ParseComplete, BindComplete, NoData, CopyInResponse');
	# then the data, CopyDone and libpq's second Sync
	$c->send_bytes(copy_data("1\n") . copy_data("2\n") . copy_done() . sync_msg());
	$m = read_until($c, 'Z');
	is(shape($m), 'CZ', 'extended COPY: CommandComplete, one ReadyForQuery (the first Sync was ignored)');
	my $more = $c->read_message(1);
	ok($more->{timeout}, 'no second ReadyForQuery comes (the backend ignored the Sync during copy-in)');
	is($c->query('SELECT count(*) FROM copy_t')->{rows}[0][0] // '', '2', 'extended COPY: 2 rows arrived');
	next_client_served('extended COPY FROM STDIN');

	# CopyFail in extended mode: the error, then skip to the second Sync
	$c->send_bytes(parse_msg('', 'COPY copy_t FROM STDIN') . bind_msg('', '') . execute_msg('') . sync_msg());
	is(shape(read_until($c, 'G')), '12G', 'extended COPY for CopyFail: CopyInResponse');
	$c->send_bytes(copy_data("3\n") . copy_fail('client gave up') . sync_msg());
	is(shape(read_until($c, 'Z')), 'E[57014]Z', 'CopyFail in extended mode: the error, one ReadyForQuery');
	next_client_served('extended CopyFail');

	# a bad row in extended mode: the backend skips the rest to the Sync
	$c->send_bytes(parse_msg('', 'COPY copy_t FROM STDIN') . bind_msg('', '') . execute_msg('') . sync_msg());
	is(shape(read_until($c, 'G')), '12G', 'extended COPY with a bad row: CopyInResponse');
	$c->send_bytes(copy_data("x\n") . copy_data("5\n") . copy_done() . sync_msg());
	is(shape(read_until($c, 'Z')), 'E[22P02]Z', 'bad row in extended COPY: the error, one ReadyForQuery');
	next_client_served('extended COPY with a bad row');

	# COPY into a view: it fails (after CopyInResponse?) before reading anything
	my $vseq = parse_msg('', 'COPY copy_v FROM STDIN') . bind_msg('', '') . execute_msg('') . sync_msg();
	my $rest = copy_data("1\n") . copy_done() . sync_msg();
	my $d = login_direct();
	$d->send_bytes($vseq);
	my $want1 = shape(read_z($d, 1));
	$d->send_bytes($rest);
	my $want2 = shape(read_z($d, 1, 2));
	$d->terminate;
	note("direct: COPY into a view: $want1 then $want2");
	$c->send_bytes($vseq);
	is(shape(read_z($c, 1)), $want1, "COPY into a view, extended: as direct ($want1)");
	$c->send_bytes($rest);
	is(shape(read_z($c, 1, 2)), $want2, "then data, CopyDone, Sync: as direct ($want2)");
	next_client_served('extended COPY into a view');

	# COPY TO STDOUT, extended then simple
	$c->send_bytes(parse_msg('', 'COPY (SELECT 1 UNION ALL SELECT 2) TO STDOUT') . bind_msg('', '')
		  . execute_msg('') . sync_msg());
	is(shape(read_until($c, 'Z')), '12HddcCZ', 'extended COPY TO STDOUT: CopyOutResponse, data, CopyDone, C, Z');
	next_client_served('extended COPY TO STDOUT');
	$c->send_bytes(PgbunTest::Raw::query_message('COPY (SELECT 1) TO STDOUT'));
	is(shape(read_until($c, 'Z')), 'HdcCZ', 'simple COPY TO STDOUT');
	next_client_served('simple COPY TO STDOUT');

	# simple COPY FROM STDIN with the data sent before CopyInResponse came
	$c->send_bytes(PgbunTest::Raw::query_message('COPY copy_t FROM STDIN')
		  . copy_data("7\n") . copy_done());
	is(shape(read_until($c, 'Z')), 'GCZ', 'simple COPY FROM STDIN with pipelined data: G, C, Z');
	is($c->query('SELECT count(*) FROM copy_t WHERE i = 7')->{rows}[0][0] // '', '1',
		'the pipelined copy data arrived');
	next_client_served('pipelined simple COPY');
	$c->terminate;
}

############ a pipeline whose first batch fails at Sync

{
	my $batches = parse_msg('', 'INSERT INTO dc VALUES (1), (1)') . bind_msg('', '') . execute_msg('')
	  . sync_msg() . parse_msg('', 'SELECT 42') . bind_msg('', '') . execute_msg('') . sync_msg();
	my $d = login_direct();
	$d->send_bytes($batches);
	my $want = shape(read_z($d, 2));
	is($want, '12CE[23505]Z12DCZ', 'direct: the commit at Sync fails, then the second batch runs');
	$d->terminate;

	my $c = login();
	$c->send_bytes($batches);
	my $m = read_z($c, 2);
	is(shape($m), $want, 'through pgbun: the same answers, the connection is not closed');
	is(rows($m)->[0][0] // '', '42', 'the second batch ran');
	is($c->query('SELECT 1')->{rows}[0][0] // '', '1', 'the client goes on');
	$c->terminate;
	next_client_served('failed Sync');
}

############ Parse + failing Bind + Query + Sync

{
	my $seq = parse_msg('pq', 'SELECT $1::int', 23) . bind_msg('', 'pq') . PgbunTest::Raw::query_message('SELECT 1')
	  . sync_msg();
	my $d = login_direct();
	$d->send_bytes($seq);
	my $want = shape(read_z($d, 1));
	is($want, '1E[08P01]Z', 'direct: Parse, the Bind fails, the Query is skipped, Sync answers');
	$d->terminate;
	my $c = login();
	$c->send_bytes($seq);
	is(shape(read_z($c, 1)), $want, 'through pgbun: the same answers');
	ok($c->read_message(1)->{timeout}, 'and nothing more');
	next_client_served('P + failing B + Q + S');
	is($c->query('SELECT 2')->{rows}[0][0] // '', '2', 'the client goes on');
	$c->terminate;
}

############ statements dropped on a server behind pgbun's back

{
	my $a = login(undef, 'A');
	my $b = login(undef, 'B');
	my $run = sub {
		my ($raw, $stmt) = @_;
		$raw->send_bytes(bind_msg('', $stmt) . execute_msg('') . sync_msg());
		return read_until($raw, 'Z');
	};
	$a->send_bytes(parse_msg('mine', 'SELECT 11') . sync_msg());
	is(shape(read_until($a, 'Z')), '1Z', 'A prepares "mine"');
	is(shape($run->($a, 'mine')), '2DCZ', 'A runs it');

	# B: DISCARD ALL through the extended protocol
	$b->send_bytes(parse_msg('', 'DISCARD ALL') . bind_msg('', '') . execute_msg('') . sync_msg());
	is(shape(read_until($b, 'Z')), '12CZ', 'B runs DISCARD ALL through Parse/Bind/Execute');
	my $m = $run->($a, 'mine');
	is(shape($m), '2DCZ', 'after DISCARD ALL via Parse, A\'s statement is prepared again') or diag(explain(first_error($m)));

	# B: DEALLOCATE ALL inside a multi-statement simple query
	$b->send_bytes(PgbunTest::Raw::query_message('SELECT 1; DEALLOCATE ALL'));
	is(shape(read_until($b, 'Z')), 'TDCCZ', 'B runs SELECT 1; DEALLOCATE ALL');
	$m = $run->($a, 'mine');
	is(shape($m), '2DCZ', 'after DEALLOCATE ALL in a multi-statement query, A\'s statement works') or diag(explain(first_error($m)));

	# B: SQL DEALLOCATE of pgbun's own name for it
	my $names = $b->query('SELECT name FROM pg_prepared_statements ORDER BY name');
	my @pgbun = grep { /^pgbun_/ } map { $_->[0] } @{ $names->{rows} };
	ok(@pgbun >= 1, 'the server holds pgbun statements: ' . join(',', @pgbun));
	$b->query("DEALLOCATE $_") foreach @pgbun;
	$m = $run->($a, 'mine');
	is(shape($m), '2DCZ', 'after SQL DEALLOCATE of pgbun_ names, A\'s statement works') or diag(explain(first_error($m)));

	# dropped where no CommandComplete shows it: the first Bind fails, then it works again
	$names = $b->query('SELECT name FROM pg_prepared_statements ORDER BY name');
	@pgbun = grep { /^pgbun_/ } map { $_->[0] } @{ $names->{rows} };
	my $r = $b->query(join('', map { "DO \$\$BEGIN EXECUTE 'DEALLOCATE $_'; END\$\$;" } @pgbun));
	ok($r->{ok} && !$r->{error}, 'B drops them inside DO') or diag(explain($r));
	$m = $run->($a, 'mine');
	is(first_error($m)->{C} // '', '26000', 'statement dropped with no tag to show it: that Bind gets 26000');
	$m = $run->($a, 'mine');
	is(shape($m), '2DCZ', 'the next use prepares it again') or diag(explain(first_error($m)));
	$a->terminate;
	$b->terminate;
}

############ 42P05: a named Parse of a name the client has

{
	my $seq1 = parse_msg('dup', 'SELECT 1') . sync_msg();
	my $seq2 = parse_msg('dup', 'SELECT 2') . bind_msg('', 'dup') . execute_msg('') . sync_msg()
	  . bind_msg('', 'dup') . execute_msg('') . sync_msg();
	my $d = login_direct();
	$d->send_bytes($seq1);
	read_until($d, 'Z');
	$d->send_bytes($seq2);
	my $dm = read_z($d, 2);
	my $want = shape($dm);
	is($want, 'E[42P05]Z2DCZ', 'direct: 42P05, the rest of the batch skipped, the old statement kept');
	my $dmsg = first_error($dm)->{M};
	$d->terminate;

	my $c = login();
	$c->send_bytes($seq1);
	is(shape(read_until($c, 'Z')), '1Z', 'prepare "dup"');
	$c->send_bytes($seq2);
	my $m = read_z($c, 2);
	is(shape($m), $want, 'through pgbun: 42P05 and the same answers');
	is(first_error($m)->{M} // '', $dmsg, 'with PostgreSQL\'s message');
	is(rows($m)->[0][0] // '', '1', 'the old statement stays');

	# an insert earlier in the batch is rolled back with it, as PostgreSQL does
	my $batch = sub {
		my ($who) = @_;
		return parse_msg('', "INSERT INTO dup_t VALUES ('$who')") . bind_msg('', '') . execute_msg('')
		  . parse_msg('dup', 'SELECT 3') . sync_msg();
	};
	$d = login_direct();
	$d->send_bytes(parse_msg('dup', 'SELECT 1') . sync_msg());
	read_until($d, 'Z');
	$d->send_bytes($batch->('direct'));
	my $dshape = shape(read_until($d, 'Z'));
	is($dshape, '12CE[42P05]Z', 'direct: the insert runs, then 42P05');
	$d->terminate;
	$c->send_bytes($batch->('pgbun'));
	is(shape(read_until($c, 'Z')), $dshape, 'through pgbun: the same answers');
	is($node->safe_psql('trackdb', "SELECT count(*) FILTER (WHERE who = 'direct') || '/' || count(*) FILTER (WHERE who = 'pgbun') FROM dup_t"),
		'0/0', 'the insert before the duplicate Parse is rolled back, direct and through pgbun');
	# the same for a Parse over pgbun's 16 kB (54000): the server rolls back too
	$c->send_bytes(parse_msg('', "INSERT INTO dup_t VALUES ('long')") . bind_msg('', '') . execute_msg('')
		  . parse_msg('long', 'SELECT 1 -- ' . ('x' x 17000)) . sync_msg());
	is(shape(read_until($c, 'Z')), '12CE[54000]Z', 'a named Parse over 16 kB: 54000 in its place');
	is($node->safe_psql('trackdb', "SELECT count(*) FROM dup_t WHERE who = 'long'"), '0',
		'and the insert before it is rolled back');
	next_client_served('after refused Parses');

	# PostgreSQL looks at the name last: a syntax error comes first
	$c->send_bytes(parse_msg('dup', 'SELEC 1') . sync_msg());
	is(shape(read_until($c, 'Z')), 'E[42601]Z', 'a duplicate Parse with a syntax error: 42601, as PostgreSQL');

	# again while another client holds the only server: it waits for one, then 42P05
	my $h = login(undef, 'holder');
	ok($h->query('BEGIN')->{ok}, 'holder opens a transaction and holds the only server');
	$c->send_bytes(parse_msg('dup', 'SELECT 1') . flush_msg() . sync_msg());
	$h->query('COMMIT');
	$m = read_until($c, 'Z');
	is(shape($m), 'E[42P05]Z', 'a duplicate Parse sent while no server was free: 42P05 too');
	$h->terminate;
	$c->terminate;
}

############ the unnamed statement across Syncs and servers

{
	my $a = login('twodb', 'A');
	my $b = login('twodb', 'B');
	$a->send_bytes(parse_msg('', 'SELECT $1::int + 1, pg_backend_pid()', 23) . sync_msg());
	is(shape(read_until($a, 'Z')), '1Z', 'A parses the unnamed statement, Sync');
	# B takes the server A used and keeps it
	my $r = $b->query('BEGIN; SELECT pg_backend_pid()');
	my $b_pid = $r->{rows}[0][0] // 'none';
	$a->send_bytes(bind_msg('', '', '41') . execute_msg('') . sync_msg());
	my $m = read_until($a, 'Z');
	is(shape($m), '2DCZ', 'A binds the unnamed statement in its next batch') or diag(explain(first_error($m)));
	is(rows($m)->[0][0] // '', '42', 'with its parameter');
	isnt(rows($m)->[0][1] // $b_pid, $b_pid, 'on another server than the one it was parsed on');
	$b->query('COMMIT');

	# a simple Query replaces it, as in PostgreSQL
	$a->query('SELECT 1');
	$a->send_bytes(bind_msg('', '', '1') . execute_msg('') . sync_msg());
	is(first_error(read_until($a, 'Z'))->{C} // '', '26000',
		'after a simple Query the unnamed statement is gone (26000)');
	$a->terminate;
	$b->terminate;
}

############ differential: the same bytes directly and through pgbun (found by difffuzz)

# The shape of everything read (ParameterStatus with name=value) until EOF or
# until $z ReadyForQuery have come ($z = 0: until CopyInResponse).
sub full_shape
{
	my ($raw, $z) = @_;
	my @out;
	my $seen = 0;
	while ($z == 0 || $seen < $z)
	{
		my $m = $raw->read_message(10);
		my $t = $m->{type} // ($m->{eof} ? '<eof>' : '<timeout>');
		if ($t eq 'S')
		{
			my ($k, $v) = split /\0/, $m->{body};
			$t = "S[$k=$v]";
		}
		elsif ($t eq 'E')
		{
			$t = 'E[' . (PgbunTest::Raw::error_fields($m->{body})->{C} // '?') . ']';
		}
		push @out, $t;
		last if !defined $m->{type} || ($z == 0 && $t eq 'G');
		$seen++ if $t eq 'Z';
	}
	return join(' ', @out);
}

# Run the same chunks directly and through pgbun (each chunk followed by
# reading until its count of ReadyForQuery, or EOF); the answers must agree.
sub same_both_ways
{
	my ($label, $params, @steps) = @_;
	my %shape;
	foreach my $where ('direct', 'pgbun')
	{
		my $raw = $where eq 'direct'
		  ? PgbunTest::Raw->new(path => $node->host . '/.s.PGSQL.' . $node->port)
		  : raw_connect($node);
		my $r = $raw->login(%alice, database => 'trackdb', params => $params);
		my @got = ('welcome ' . join(',', map { "$_=$r->{params}{$_}" } grep { /^(DateStyle|TimeZone|application_name|IntervalStyle)$/ } sort keys %{ $r->{params} }));
		for (my $i = 0; $i < @steps; $i += 2)
		{
			$raw->send_bytes($steps[$i]);
			push @got, full_shape($raw, $steps[$i + 1]);
		}
		$shape{$where} = join(' | ', @got);
		$raw->terminate;
	}
	is($shape{pgbun}, $shape{direct}, "$label: the same answers directly and through pgbun")
	  or diag("direct: $shape{direct}");
	return $shape{direct};
}

{
	my $q = sub { PgbunTest::Raw::query_message($_[0]) };

	# a startup value of a reported parameter is shown in the server's spelling
	same_both_ways('startup DateStyle=sql, TimeZone=utc', [ DateStyle => 'sql', TimeZone => 'utc' ],
		$q->('SHOW DateStyle'), 1);

	# DISCARD ALL through the extended protocol: the client's own startup value
	# comes back before its ReadyForQuery, and nothing else is reported
	my $d = same_both_ways('DISCARD ALL via Parse with a startup application_name',
		[ application_name => 'started app' ],
		parse_msg('', 'DISCARD ALL') . bind_msg('', '') . execute_msg('') . sync_msg(), 1,
		$q->("SET application_name = 'other'"), 1,
		$q->('DISCARD ALL'), 1,
		$q->('SHOW application_name'), 1);
	like($d, qr/S\[application_name=other\].*S\[application_name=started app\]/,
		'the second DISCARD ALL reports the startup value back');

	# RESET after an explicit SET of another parameter: the SET's report is not lost
	same_both_ways('SET DateStyle then RESET client_encoding', [ DateStyle => 'SQL, DMY' ],
		$q->("SET DateStyle = 'ISO, MDY'; RESET client_encoding"), 1);

	# a Close the backend skips (an error before it) leaves the name for a later batch
	same_both_ways('a skipped Close, then a Bind of the name in the next batch', [],
		parse_msg('cs', 'SELECT 1') . sync_msg(), 1,
		bind_msg('', 'no_such_stmt') . close_msg('S', 'cs') . sync_msg()
		  . bind_msg('', 'cs') . execute_msg('') . sync_msg(), 2);

	# a duplicate name in a failed transaction block: PostgreSQL says 25P02 first
	same_both_ways('a duplicate Parse in a failed block', [],
		parse_msg('fb', 'SELECT 1') . sync_msg(), 1,
		$q->('BEGIN'), 1,
		$q->('SELECT 1/0'), 1,
		parse_msg('fb', 'SELECT 2') . sync_msg(), 1,
		$q->('ROLLBACK'), 1);

	# a skipped unnamed Parse leaves the previous unnamed statement
	same_both_ways('a skipped unnamed Parse', [],
		parse_msg('', 'SELECT 7') . sync_msg(), 1,
		bind_msg('', 'no_such_stmt') . parse_msg('', 'SELECT 8') . sync_msg()
		  . bind_msg('', '') . execute_msg('') . sync_msg(), 2);

	# messages pipelined into a COPY, then Terminate: the backend's errors still arrive
	same_both_ways('a COPY broken by pipelined messages, then Terminate', [],
		parse_msg('', 'COPY copy_t FROM STDIN') . bind_msg('', '') . execute_msg('') . flush_msg(), 0,
		sync_msg() . execute_msg('') . sync_msg() . PgbunTest::Raw::message('X'), 1);
	next_client_served('after the broken COPY');
}

############ a reload that changes a pool's mode

{
	my %probe = (user => 'probe', password => 'probe-pw');
	my $s = login('modedb', 'session client');
	$s->send_bytes(parse_msg('keep', 'SELECT pg_backend_pid()') . sync_msg());
	is(shape(read_until($s, 'Z')), '1Z', 'session client prepares "keep"');
	my $pid = $s->query('SELECT pg_backend_pid()')->{rows}[0][0];
	reload_sync($node, \%probe,
		'pgbun.databases' => 'postgres = pool_mode=session; twodb = pool_size=2; modedb = pool_mode=transaction');
	my $m;
	$s->send_bytes(bind_msg('', 'keep') . execute_msg('') . sync_msg());
	$m = read_until($s, 'Z');
	is(shape($m), '2DCZ', 'after the reload the session link goes on: its statement runs');
	is(rows($m)->[0][0] // '', $pid, 'on the same server');
	$s->send_bytes(parse_msg('more', 'SELECT 3') . sync_msg());
	is(shape(read_until($s, 'Z')), '1Z', 'and a new named Parse is not refused');
	my $w = login('modedb', 'new client');
	$w->send_bytes(PgbunTest::Raw::query_message('SELECT pg_backend_pid()'));
	ok($w->read_message(1)->{timeout}, 'a new client waits: the session link still holds the server');
	$s->terminate;
	$m = read_until($w, 'Z');
	is(shape($m), 'TDCZ', 'the new client is served once the session client leaves');
	$w->terminate;
}

check_server_same($node, $identity, 'end of 260');
stop_node($node);
done_testing();

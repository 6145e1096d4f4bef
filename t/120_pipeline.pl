# 120_pipeline: pipelining through the pooler in transaction mode.
#
#  - test/client/pipeline_test.c (libpq pipeline mode, built here): 100
#    queries with a Sync every 10, all sent before any result is read, a
#    division by zero in the middle, an explicit transaction spanning two
#    Syncs; results checked one by one. First straight to the server (the
#    program itself is right), then 4 concurrent runs through pgbun on a
#    pool of 2: each prints 'ok', the server never sees more than 2 of the
#    role's backends. pgbench's \startpipeline scripts, 20 clients.
#  - Raw protocol, pool of 1: Parse (unnamed) + Describe + Flush, wait for
#    ParseComplete; a second client's query arrives and must wait; then
#    Bind + Execute + Sync reach the server that holds the Parse.

use strict;
use warnings FATAL => 'all';

use IPC::Run;
use IO::Select;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use Time::HiRes qw(usleep);
use PgbunTest;

my $node = pgbun_node(
	name => 'pipeline',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '2',
		'pgbun.databases' => 'flushdb = pool_size=1',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE piper LOGIN PASSWORD 'piper-pw' CONNECTION LIMIT 2;
CREATE ROLE flusher LOGIN PASSWORD 'flusher-pw' CONNECTION LIMIT 1;
CREATE DATABASE pipedb;
CREATE DATABASE flushdb;
});
$node->safe_psql('pipedb',
	'CREATE TABLE pipeline_log (tag text, i int); GRANT SELECT, INSERT ON pipeline_log TO piper; '
	  . 'CREATE TABLE pipe_counter (id int PRIMARY KEY, n int NOT NULL); '
	  . 'INSERT INTO pipe_counter SELECT i, 0 FROM generate_series(1, 10) i; '
	  . 'GRANT SELECT, UPDATE ON pipe_counter TO piper');
my $identity = server_identity($node);
my %piper = (user => 'piper', password => 'piper-pw');
my %flusher = (user => 'flusher', password => 'flusher-pw');

############ build the libpq program

my $src = "$FindBin::RealBin/../test/client/pipeline_test.c";
my $bin = PostgreSQL::Test::Utils::tempdir() . '/pipeline_test';
my ($incdir, $libdir) = $node->config_data('--includedir', '--libdir');
my @cc = (
	$ENV{CC} // 'cc', '-Wall', '-Wextra', '-Werror', "-I$incdir",
	'-o', $bin, $src, "-L$libdir", '-lpq');
my ($cc_out, $cc_err) = ('', '');
my $built = IPC::Run::run(\@cc, '<', '/dev/null', '>', \$cc_out, '2>', \$cc_err);
ok($built && -x $bin, 'test/client/pipeline_test.c builds against libpq')
  or diag("@cc\n$cc_out\n$cc_err");

# Run the program; returns a handle, output in the given refs.
sub start_pipeline_test
{
	my ($conninfo, $tag, $rounds, $out, $err) = @_;
	local %ENV = PgbunTest::client_env(%piper);
	return IPC::Run::start([ $bin, $conninfo, $tag, $rounds ],
		'<', '/dev/null', '>', $out, '2>', $err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

sub finish_handle
{
	my ($h) = @_;
	my $ok = eval { $h->finish; 1 };
	if (!$ok)
	{
		eval { $h->kill_kill; };
		return -1;
	}
	return $h->result(0);
}

my $pooler_conninfo = 'host=127.0.0.1 port=' . pgbun_port($node) . ' user=piper dbname=pipedb';
my $direct_conninfo = 'host=' . $node->host . ' port=' . $node->port . ' user=piper dbname=pipedb';

SKIP:
{
	skip 'pipeline_test did not build', 10 unless $built && -x $bin;

	# Straight to the server first: what the program expects is what
	# PostgreSQL does.
	my ($out, $err) = ('', '');
	my $h = start_pipeline_test($direct_conninfo, 'direct', 2, \$out, \$err);
	is(finish_handle($h), 0, 'pipeline_test straight to the server exits 0') or diag($err);
	is($out, "ok\n", 'pipeline_test straight to the server prints ok');
	# Its backend counts against piper's CONNECTION LIMIT 2 until it exits.
	my ($gone, $left) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'piper'", '0');
	ok($gone, 'the direct run\'s backend has exited') or diag("last: $left");

	# One run through pgbun on its own.
	($out, $err) = ('', '');
	$h = start_pipeline_test($pooler_conninfo, 'single', 2, \$out, \$err);
	is(finish_handle($h), 0, 'pipeline_test through pgbun exits 0') or diag($err);
	is($out, "ok\n", 'pipeline_test through pgbun prints ok') or diag($err);

	# Four at once, five rounds each, on a pool of 2.
	my $monitor = direct_session($node);
	ok($monitor->connected, 'monitoring session on the server');
	my (@h, @out, @err);
	for my $n (0 .. 3)
	{
		($out[$n], $err[$n]) = ('', '');
		$h[$n] = start_pipeline_test($pooler_conninfo, "conc$n", 5, \$out[$n], \$err[$n]);
	}
	my $max_backends = 0;
	my $samples = 0;
	while (grep { $_->pumpable } @h)
	{
		eval { $_->pump_nb } foreach @h;
		my $n = $monitor->query(
			"SELECT count(*) FROM pg_stat_activity WHERE usename = 'piper'");
		last unless defined $n;
		$samples++;
		$max_backends = $n if $n > $max_backends;
		usleep(20_000);
	}
	for my $n (0 .. 3)
	{
		is(finish_handle($h[$n]), 0, "concurrent pipeline_test $n exits 0") or diag($err[$n]);
		is($out[$n], "ok\n", "concurrent pipeline_test $n prints ok") or diag($err[$n]);
	}
	note("sampled pg_stat_activity $samples times, at most $max_backends piper backends");
	cmp_ok($max_backends, '<=', 2, 'the server never saw more than 2 piper backends');
	$monitor->quit;

	is( $node->safe_psql('pipedb',
			"SELECT count(*) FROM pipeline_log WHERE tag LIKE 'conc%'"),
		4 * 5 * 9, 'pipeline_log holds every committed insert of the concurrent runs, once');
}

# pgbench's own pipelines (\startpipeline .. \endpipeline, one Sync each),
# 20 clients on the pool of 2: every increment lands exactly once.
{
	my $script = PostgreSQL::Test::Utils::tempdir() . '/pipeline.sql';
	open my $fh, '>', $script or die "cannot write $script: $!";
	print $fh <<'SQL';
\set id random(1, 10)
\startpipeline
UPDATE pipe_counter SET n = n + 1 WHERE id = :id;
SELECT n FROM pipe_counter WHERE id = :id;
UPDATE pipe_counter SET n = n + 1 WHERE id = :id;
\endpipeline
SQL
	close $fh;
	my @cmd = (
		$node->installed_command('pgbench'),
		'-h', '127.0.0.1', '-p', pgbun_port($node), '-U', 'piper',
		'-n', '-M', 'extended', '-f', $script, '-c', '20', '-j', '2', '-t', '50', 'pipedb');
	my ($rc, $out, $err) = PgbunTest::run_cmd(\@cmd, '', { PgbunTest::client_env(%piper) });
	is($rc, 0, 'pgbench \startpipeline script through pgbun exits 0') or diag("$out\n$err");
	like($out, qr/number of transactions actually processed: 1000\/1000\b/,
		'pgbench pipelines: all 1000 transactions processed');
	like($out, qr/number of failed transactions: 0\b/, 'pgbench pipelines: zero failed transactions');
	is($node->safe_psql('pipedb', 'SELECT sum(n) FROM pipe_counter'), 2000,
		'pgbench pipelines: every increment landed exactly once');
}

is( $node->safe_psql('postgres',
		"SELECT pool_mode FROM pgbun.pools WHERE database = 'pipedb' AND \"user\" = 'piper'"),
	'transaction', 'pgbun.pools: pipedb/piper is a transaction pool');
my ($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pg_stat_activity WHERE datname = 'pipedb' AND state <> 'idle'", '0');
ok($matched, 'no pipedb backend is left busy or inside a transaction') or diag("last: $last");

############ raw protocol: Parse + Flush, then Bind on the same server

my $ca = raw_connect($node);
ok($ca->login(%flusher, database => 'flushdb')->{ok}, 'Parse/Flush: client A logs in');
my $cb = raw_connect($node);
ok($cb->login(%flusher, database => 'flushdb')->{ok}, 'Parse/Flush: client B logs in');

for my $round (1 .. 3)
{
	my $label = "Parse/Flush round $round";

	# A: Parse + Describe + Flush, as asyncpg sends them; no Sync yet.
	$ca->send_bytes(parse_msg('', 'SELECT $1::int + 1, pg_backend_pid()', 23)
		  . describe_msg('S', '') . flush_msg());
	my $msgs = read_until($ca, 'T');
	is(msg_types($msgs), '1tT', "$label: A gets ParseComplete, ParameterDescription, RowDescription after Flush");

	# B asks for the pool's only server meanwhile: it must wait, since A's
	# server holds A's unnamed statement and A has not synced.
	$cb->send_bytes(PgbunTest::Raw::query_message('SELECT pg_backend_pid()'));
	($matched, $last) = poll_sql($node,
		"SELECT cl_waiting FROM pgbun.pools WHERE database = 'flushdb' AND \"user\" = 'flusher'", '1');
	ok($matched, "$label: B waits for the server (cl_waiting = 1)") or diag("last: $last");
	is(length($cb->{buf}) + (IO::Select->new($cb->{sock})->can_read(0) ? 1 : 0), 0,
		"$label: B has no answer while A holds the server");

	# A: Bind + Execute + Sync reach the server that has the Parse.
	$ca->send_bytes(bind_msg('', '', 10 * $round) . execute_msg('') . sync_msg());
	$msgs = read_until($ca, 'Z');
	is(msg_types($msgs), '2DCZ', "$label: A gets BindComplete, DataRow, CommandComplete, ReadyForQuery")
	  or diag(explain([ map { $_->{type} eq 'E' ? PgbunTest::Raw::error_fields($_->{body}) : $_->{type} } grep { defined $_->{type} } @$msgs ]));
	my ($row) = map { PgbunTest::Raw::data_row($_->{body}) } grep { ($_->{type} // '') eq 'D' } @$msgs;
	is($row->[0] // '', 10 * $round + 1, "$label: A's statement ran with A's parameter");
	is(($msgs->[-1]{body} // ''), 'I', "$label: A is idle after Sync");

	# Then B is served, on the same (only) server.
	my $res = $cb->read_result;
	ok($res->{ok}, "$label: B is served once A synced") or diag(explain($res));
	last unless $res->{ok};    # B's late answer would confuse the next round
	is($res->{rows}[0][0] // '', $row->[1] // 'none', "$label: B got the same server backend as A");
}
$ca->terminate;
$cb->terminate;
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'flusher'"),
	'1', 'Parse/Flush: one flusher backend on the server');

check_server_same($node, $identity, 'end of 120');
stop_node($node);
done_testing();

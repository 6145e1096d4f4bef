# 110_statement_mode: pgbun.pool_mode = statement, pool size 2.
#
#  - a transaction block is refused: BEGIN (simple or extended protocol, or
#    BEGIN plus a statement in one Query) gets 0A000 'pgbun: transaction
#    blocks not allowed in statement pooling mode' and the client is closed;
#    the server is rolled back (the row inserted after BEGIN is not there);
#  - autocommit statements from 20 pgbench clients share the 2 servers with
#    zero failures (-S, -M simple and -M extended); the server never sees
#    more than 2 of the role's backends;
#  - pgbun.pools shows pool_mode 'statement'; after a reload to transaction
#    mode it shows 'transaction' and BEGIN works.

use strict;
use warnings FATAL => 'all';

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use Time::HiRes qw(usleep);
use PgbunTest;

my $node = pgbun_node(
	name => 'stmtmode',
	conf => {
		'pgbun.pool_mode' => 'statement',
		'pgbun.default_pool_size' => '2',
		# reload_sync's probe needs the reset query of a session-mode client.
		'pgbun.users' => 'prober = pool_mode=session',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE bench LOGIN PASSWORD 'bench-pw' CONNECTION LIMIT 2;
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE DATABASE benchdb;
});
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'benchdb' ],
	'pgbench -i directly on the server');
$node->safe_psql('benchdb',
	'GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench; '
	  . 'CREATE TABLE st_t (id int PRIMARY KEY); GRANT ALL ON st_t TO bench');
my $identity = server_identity($node);
my %bench = (user => 'bench', password => 'bench-pw');
my %probe = (user => 'prober', password => 'prober-pw');
my $refusal = qr/^pgbun: transaction blocks not allowed in statement pooling mode/;

sub bench_raw
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%bench, database => 'benchdb');
	return ($raw, $r);
}

sub no_open_transactions
{
	my ($label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($matched, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'benchdb' AND state LIKE 'idle in transaction%'",
		'0');
	ok($matched, "$label: no server is left inside a transaction") or diag("last: $last");
	return;
}

############ a transaction block is refused

# Simple protocol, BEGIN alone, then BEGIN with an INSERT in one Query.
foreach my $case ([ 'BEGIN', 'BEGIN' ], [ 'BEGIN; INSERT', 'BEGIN; INSERT INTO st_t VALUES (1)' ])
{
	my ($label, $sql) = @$case;
	my ($raw, $login) = bench_raw();
	ok($login->{ok}, "$label: client logs in");
	is_deeply($raw->query('SELECT 1')->{rows}, [ ['1'] ], "$label: an autocommit statement works first");
	$raw->send_bytes(PgbunTest::Raw::query_message($sql));
	my $end = $raw->read_to_eof(hang_guard());
	ok($end->{eof}, "$label: pgbun closes the client") or diag(explain($end));
	my ($e) = @{ $end->{errors} };
	is($e->{C} // '', '0A000', "$label: SQLSTATE 0A000") or diag(explain($end));
	like($e->{M} // '', $refusal, "$label: 'transaction blocks not allowed in statement pooling mode'");
	$raw->close;
	no_open_transactions($label);
}
is($node->safe_psql('benchdb', 'SELECT count(*) FROM st_t'), '0',
	'the INSERT after the refused BEGIN was rolled back');

# Extended protocol: Parse/Bind/Execute/Sync of BEGIN.
{
	my ($raw, $login) = bench_raw();
	ok($login->{ok}, 'extended BEGIN: client logs in');
	$raw->send_bytes(
		PgbunTest::Raw::message('P', "\0BEGIN\0" . pack('n', 0))
		  . PgbunTest::Raw::message('B', "\0\0" . pack('nnn', 0, 0, 0))
		  . PgbunTest::Raw::message('E', "\0" . pack('N', 0))
		  . PgbunTest::Raw::message('S'));
	my $end = $raw->read_to_eof(hang_guard());
	ok($end->{eof}, 'extended BEGIN: pgbun closes the client') or diag(explain($end));
	my ($e) = @{ $end->{errors} };
	is($e->{C} // '', '0A000', 'extended BEGIN: SQLSTATE 0A000') or diag(explain($end));
	like($e->{M} // '', $refusal, 'extended BEGIN: pgbun\'s message');
	$raw->close;
	no_open_transactions('extended BEGIN');
}

# psql shows the error.
my ($rc, $out, $err) = pgbun_psql($node, "BEGIN;\nSELECT 1;\nCOMMIT;\n", %bench, dbname => 'benchdb');
isnt($rc, 0, 'psql BEGIN; SELECT 1; COMMIT fails in statement mode');
like($err, qr/pgbun: transaction blocks not allowed in statement pooling mode/, 'psql shows pgbun\'s error')
  or diag($err);
no_open_transactions('psql BEGIN');

############ 20 pgbench clients on a pool of 2

foreach my $mode ('simple', 'extended')
{
	my $label = "20 clients, -S -M $mode";
	my @cmd = (
		$node->installed_command('pgbench'),
		'-h', '127.0.0.1', '-p', pgbun_port($node), '-U', 'bench',
		'-n', '-S', '-M', $mode, '-c', '20', '-j', '2', '-t', '100', 'benchdb');
	my $r = run_sampled($node, \@cmd, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bench'",
		env => { PgbunTest::client_env(%bench) });
	my ($bout, $berr, $max, $samples) = @{$r}{qw(out err max samples)};
	ok($r->{rc} != -1, "$label: pgbench finished") or diag($berr);
	is($r->{rc}, 0, "$label: pgbench exits 0")
	  or diag("stdout:\n$bout\nstderr:\n$berr");
	like($bout, qr/number of transactions actually processed: 2000\/2000\b/,
		"$label: all 2000 transactions processed");
	like($bout, qr/number of failed transactions: 0\b/, "$label: zero failed transactions");
	unlike($berr, qr/error|FATAL/i, "$label: pgbench printed no errors") or diag($berr);
	note("$label: sampled pg_stat_activity $samples times, at most $max bench backends");
	ok($samples > 0, "$label: sampled the server while pgbench ran");
	cmp_ok($max, '<=', 2, "$label: the server never saw more than 2 bench backends");
}

{
	my $s = pgbun_session($node, %bench, dbname => 'benchdb');
	is($s->query('SELECT 1'), '1', 'a client of the statement pool');
	is( $node->safe_psql('postgres',
			"SELECT pool_mode FROM pgbun.pools WHERE database = 'benchdb' AND \"user\" = 'bench'"),
		'statement', 'pgbun.pools: benchdb/bench is a statement pool');
	$s->quit;
}
is( $node->safe_psql('postgres',
		"SELECT total_query_count >= 4000 FROM pgbun.stats WHERE database = 'benchdb'"),
	't', 'pgbun.stats counted the pgbench statements of benchdb');

############ reload to transaction mode

reload_sync($node, \%probe, 'pgbun.pool_mode' => 'transaction');
{
	my $s = pgbun_session($node, %bench, dbname => 'benchdb');
	is($s->query('SELECT 1'), '1', 'after the reload: a client of the pool');
	my ($matched, $last) = poll_sql($node,
		"SELECT pool_mode FROM pgbun.pools WHERE database = 'benchdb' AND \"user\" = 'bench'",
		'transaction');
	ok($matched, 'after reload to transaction mode pgbun.pools shows pool_mode transaction')
	  or diag("last: $last");
	my ($o, $e) = $s->query("BEGIN; INSERT INTO st_t VALUES (2); SELECT count(*) FROM st_t; COMMIT");
	is($o, '1', 'after the reload a transaction block works') or diag($e);
	$s->quit;
}
is($node->safe_psql('benchdb', 'SELECT string_agg(id::text, \',\') FROM st_t'), '2',
	'the transaction after the reload committed its row');

check_server_same($node, $identity, 'end of 110');
stop_node($node);
done_testing();

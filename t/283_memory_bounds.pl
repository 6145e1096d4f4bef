# 283_memory_bounds: what one client makes the worker hold is bounded.
#
#  - Named prepared statements (transaction mode): one client creating
#    20,000 distinct 2 kB statements used to grow the worker by their size
#    (unbounded: enough such clients and the OOM killer takes the worker,
#    which restarts the cluster). With pgbun.max_prepared_statement_memory
#    = 4MB the statements past the budget get 53200 each, the client stays
#    connected and goes on, the worker's RSS grows by less than the budget
#    plus 20 MB, its pid stays, and a bystander is unaffected.
#  - The refusal behaves like a Parse the server rejected: in a transaction
#    block the transaction is failed (ReadyForQuery 'E'), in an implicit
#    transaction what ran before it in the batch is rolled back, and the
#    refused name does not exist afterwards.
#  - A named statement over 16 kB (more than pgbun keeps) gets 54000 the
#    same way, instead of closing the client.
#  - Once the client is gone, its statements' memory is free for others.
#  - A client that never reads a large result: the worker stops reading
#    the server (its buffer is the send queue), so its RSS does not follow
#    the result's size, and everybody else keeps working.

use strict;
use warnings FATAL => 'all';

use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $budget_mb = 4;
my $node = pgbun_node(
	name => 'membounds',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '4',
		'pgbun.max_prepared_statement_memory' => "${budget_mb}MB",
		'pgbun.log_connections' => 'off',
	});
$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE TABLE t (i int);
GRANT ALL ON t TO alice;
});
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');
my $wpid = worker_pid($node);

sub rss_kb
{
	open my $fh, '<', "/proc/$wpid/status" or return -1;
	while (<$fh>)
	{
		return $1 if /^VmRSS:\s+(\d+)\s+kB/;
	}
	return -1;
}

sub login
{
	my $raw = raw_connect($node);
	my $r = $raw->login(%alice);
	ok($r->{ok}, 'a client logs in') or diag(explain($r));
	return $raw;
}

my $bystander = bystander_start($node, %alice);
bystander_check($bystander, $identity, 'before the flood');

############ a flood of named statements

my $pad = 'x' x 2000;
sub big_parse { my ($name, $i) = @_; return parse_msg($name, "SELECT $i AS n, '$pad'::text AS pad"); }

my $flood = login();
my $rss0 = rss_kb();
my ($accepted, $refused, $other, $first_refusal) = (0, 0, 0, undef);
my $n = 20000;
for (my $i = 1; $i <= $n; $i += 500)
{
	my $out = '';
	$out .= big_parse("s$_", $_) . sync_msg() for $i .. $i + 499;
	$flood->send_bytes($out);
	for ($i .. $i + 499)
	{
		my $msgs = read_until($flood, 'Z');
		my $types = msg_types($msgs);
		if ($types eq '1Z') { $accepted++; next; }
		my $e = first_error($msgs);
		if ($types eq 'EZ' && ($e->{C} // '') eq '53200')
		{
			$refused++;
			$first_refusal //= $e;
			next;
		}
		$other++;
		diag("unexpected answer $types: " . explain($e)) if $other < 5;
	}
}
my $rss1 = rss_kb();
is($other, 0, 'every Parse got ParseComplete or 53200, then ReadyForQuery');
ok($accepted > 100, "statements within the budget are accepted ($accepted)");
ok($refused > $n / 2, "the rest are refused ($refused)");
like($first_refusal->{M} // '', qr/^pgbun: prepared statement "s\d+" does not fit in pgbun.max_prepared_statement_memory/,
	'with pgbun\'s message');
is($first_refusal->{S} // '', 'ERROR', 'as an ERROR, not FATAL');
my $growth_mb = ($rss1 - $rss0) / 1024;
ok($rss1 > 0 && $growth_mb < $budget_mb + 20,
	sprintf('the worker grew by %.1f MB (< budget %d MB + 20 MB) for %d MB of statements',
		$growth_mb, $budget_mb, $n * 2 / 1000));
is(worker_pid($node), $wpid, 'the worker\'s pid is unchanged');

# the client is still connected and its accepted statements work
$flood->send_bytes(bind_msg('', 's1') . execute_msg() . sync_msg());
my $msgs = read_until($flood, 'Z');
is(msg_types($msgs), '2DCZ', 'an accepted statement still runs');
is(PgbunTest::Raw::data_row((grep { $_->{type} eq 'D' } @$msgs)[0]{body})->[0], '1', 'with the right answer');
$flood->send_bytes(bind_msg('', "s$n") . execute_msg() . sync_msg());
$msgs = read_until($flood, 'Z');
is(first_error($msgs)->{C} // '', '26000', 'a refused name does not exist, as after a failed Parse');
is($flood->query('SELECT 6 * 7')->{rows}[0][0] // '', '42', 'simple queries go on');

# in a transaction block: the refusal fails the transaction, as a failed Parse would
is($flood->query('BEGIN')->{txstatus} // '', 'T', 'BEGIN');
$flood->send_bytes(big_parse('tx1', $n + 1) . sync_msg());
$msgs = read_until($flood, 'Z');
is(msg_types($msgs), 'EZ', 'a refused Parse inside a transaction block');
is($msgs->[-1]{body}, 'E', 'leaves the transaction failed (ReadyForQuery E)');
is($flood->query('ROLLBACK')->{txstatus} // '', 'I', 'ROLLBACK');

# in an implicit transaction: what ran before it in the batch is rolled back
$flood->send_bytes(parse_msg('', 'INSERT INTO t VALUES (1)') . bind_msg('', '') . execute_msg()
	  . big_parse('tx2', $n + 2) . bind_msg('', 'tx2') . execute_msg() . sync_msg());
$msgs = read_until($flood, 'Z');
is(msg_types($msgs), '12CEZ', 'INSERT, then the refused Parse: its error, the rest skipped');
is($msgs->[-1]{body}, 'I', 'and the implicit transaction is over');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '0', 'the INSERT before it was rolled back');
bystander_check($bystander, $identity, 'after the flood');

# a named statement longer than the 16 kB pgbun can keep: refused, the client stays
$flood->send_bytes(parse_msg('long1', "SELECT '" . ('z' x 20000) . "'::text") . bind_msg('', 'long1')
	  . execute_msg() . sync_msg());
$msgs = read_until($flood, 'Z');
is(msg_types($msgs), 'EZ', 'a named Parse over 16 kB: an error, the rest skipped, ReadyForQuery');
is(first_error($msgs)->{C} // '', '54000', 'with 54000 (program_limit_exceeded)');
like(first_error($msgs)->{M} // '', qr/^pgbun: named prepared statement "long1" is longer than 16 kB/, 'and pgbun\'s message');
is($flood->query('SELECT 7 * 6')->{rows}[0][0] // '', '42', 'the client goes on');
$flood->send_bytes(parse_msg('', "SELECT length('" . ('z' x 20000) . "'::text)") . bind_msg('', '') . execute_msg() . sync_msg());
$msgs = read_until($flood, 'Z');
is(msg_types($msgs), '12DCZ', 'an unnamed statement that long streams through as before');

# the budget is shared: nobody else can add a statement now ...
my $other_client = login();
$other_client->send_bytes(big_parse('o1', $n + 3) . sync_msg());
is(first_error(read_until($other_client, 'Z'))->{C} // '', '53200', 'another client is refused while the budget is used up');
# ... until the flooding client goes
$flood->terminate;
ok( wait_until(
		sub {
			$other_client->send_bytes(big_parse('o1', $n + 3) . sync_msg());
			return msg_types(read_until($other_client, 'Z')) eq '1Z';
		}),
	'once the flooding client is gone, its memory is free for others');
$other_client->terminate;

############ a client that never reads a large result

my $slow = login();
my $rss2 = rss_kb();
# about 300 MB of rows, never read
$slow->send_bytes(PgbunTest::Raw::query_message("SELECT repeat('y', 1000) FROM generate_series(1, 300000)"));
ok( wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(%' AND wait_event = 'ClientWrite'"
			) eq '1';
		}),
	'the server blocks writing the result the client does not read');
my $quick = login();
is($quick->query('SELECT 41 + 1')->{rows}[0][0] // '', '42', 'meanwhile another client gets its answers');
$quick->terminate;
bystander_check($bystander, $identity, 'with a client not reading');
my $rss3 = rss_kb();
ok(($rss3 - $rss2) / 1024 < 20,
	sprintf('the worker holds no more than a few buffers for it (grew %.1f MB)', ($rss3 - $rss2) / 1024));
$slow->close;

$bystander->{session}->query('COMMIT');
$bystander->{session}->quit;
check_server_same($node, $identity, 'end of 283');
stop_node($node);
done_testing();

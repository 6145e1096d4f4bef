# 135_fuzz_tx: random extended-protocol traffic through a transaction pool of
# 2 (seeded, so a failure can be replayed): well-framed messages of the types
# pgbun inspects (Parse, Bind, Describe, Close, Execute, Sync, Flush, Query,
# CopyData/Done/Fail) with names drawn from a small set and bodies that are
# sometimes valid and sometimes cut short or garbage.
#
# Whatever each client gets (answers, errors, a close), afterwards the worker
# pid is unchanged, the server did not restart, a well-behaved client gets
# right answers, and pgbun's named-statement bookkeeping still works.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $seed = $ENV{PGBUN_FUZZ_SEED} // 20261127;
srand($seed);
note("fuzz seed $seed (PGBUN_FUZZ_SEED replays it)");

my $node = pgbun_node(
	name => 'fuzztx',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '2',
		'pgbun.max_prepared_statements' => '4',
	});
$node->safe_psql('postgres', q{CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; CREATE DATABASE fuzzdb;});
$node->safe_psql('fuzzdb', q{CREATE TABLE t (id int); GRANT ALL ON t TO alice;});
my $identity = server_identity($node);

my @names = ('', 's1', 's2', 'pgbun_1', 'x' x 70);
my @queries = ('SELECT 1', 'SELECT $1::int', 'SELECT pg_sleep(0)', 'BEGIN', 'COMMIT', 'ROLLBACK',
	'COPY t FROM STDIN', 'COPY t TO STDOUT', 'SELECT no_such_column', 'DISCARD ALL', 'DEALLOCATE ALL', '');

sub pick { return $_[ int(rand(@_)) ]; }

sub random_bytes
{
	my ($n) = @_;
	return join('', map { chr(int(rand(256))) } 1 .. $n);
}

# One message: usually well formed, sometimes truncated or with a garbage body.
sub random_message
{
	my $type = pick(qw(P P B B D C E S S H Q d c f));
	my $msg;
	if ($type eq 'P')
	{
		my @types = rand() < 0.5 ? () : (23);
		$msg = parse_msg(pick(@names), pick(@queries), @types);
	}
	elsif ($type eq 'B')
	{
		my @params = rand() < 0.5 ? () : (int(rand(100)));
		$msg = bind_msg(pick('', 'p1'), pick(@names), @params);
	}
	elsif ($type eq 'D')
	{
		$msg = describe_msg(pick('S', 'P', 'X'), pick(@names));
	}
	elsif ($type eq 'C')
	{
		$msg = close_msg(pick('S', 'P', 'X'), pick(@names));
	}
	elsif ($type eq 'E')
	{
		$msg = execute_msg(pick('', 'p1'));
	}
	elsif ($type eq 'S') { $msg = sync_msg(); }
	elsif ($type eq 'H') { $msg = flush_msg(); }
	elsif ($type eq 'Q') { $msg = PgbunTest::Raw::query_message(pick(@queries)); }
	else { $msg = PgbunTest::Raw::message($type, $type eq 'd' ? "1\n" : ($type eq 'f' ? "fuzz\0" : '')); }

	my $r = rand();
	if ($r < 0.05)
	{
		# garbage body under a right length
		$msg = $type . pack('N', 4 + 8) . random_bytes(8);
	}
	elsif ($r < 0.08)
	{
		# the body without its last bytes, under the full length (the next message fills in)
		$msg = substr($msg, 0, length($msg) - 1) if length($msg) > 5;
	}
	return $msg;
}

my ($closed, $answered) = (0, 0);
for my $round (1 .. 60)
{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'alice', password => 'alice-pw', database => 'fuzzdb');
	if (!$r->{ok})
	{
		fail("round $round: login failed");
		diag(explain($r));
		last;
	}
	my $data = '';
	$data .= random_message() for 1 .. (5 + int(rand(40)));
	$data .= sync_msg() if rand() < 0.7;
	$raw->send_bytes($data);
	# read whatever comes for a short while; a close is a fine answer too
	my $got = 0;
	while (1)
	{
		my $m = $raw->read_message(0.3);
		last if !defined $m->{type};
		$got++;
	}
	$got ? $answered++ : $closed++;
	$raw->close;
}
note("fuzz rounds with answers: $answered, without: $closed");
check_server_same($node, $identity, 'after 60 fuzz rounds');

# pgbun still pools correctly, named statements included.
my $ok = raw_connect($node);
ok($ok->login(user => 'alice', password => 'alice-pw', database => 'fuzzdb')->{ok}, 'a well-behaved client logs in');
$ok->send_bytes(parse_msg('good', 'SELECT $1::int * 2', 23) . sync_msg());
is(msg_types(read_until($ok, 'Z')), '1Z', 'it prepares a statement');
my @bad;
for my $i (1 .. 20)
{
	$ok->send_bytes(bind_msg('', 'good', $i) . execute_msg('') . sync_msg());
	my $msgs = read_until($ok, 'Z');
	my ($row) = map { PgbunTest::Raw::data_row($_->{body}) } grep { ($_->{type} // '') eq 'D' } @$msgs;
	push @bad, "$i: " . msg_types($msgs) if ($row->[0] // '') ne $i * 2;
}
is(scalar(@bad), 0, 'and runs it 20 times with the right results') or diag(join("\n", @bad));
is($ok->query('SELECT count(*) >= 0 FROM t')->{rows}[0][0] // '', 't', 'simple queries work too');
$ok->terminate;
ok( wait_until(
		sub {
			$node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE datname = 'fuzzdb' AND state = 'idle in transaction'") eq '0';
		}),
	'no server connection is left inside a transaction');
check_server_same($node, $identity, 'end of 135');
stop_node($node);
done_testing();

# 187_clock_step: a step of the wall clock (NTP setting it back, a VM
# resumed) moves none of pgbun's deadlines: every pgbun timestamp is on a
# steady clock (clock.c), converted to the wall clock only for display.
#
# pgbun.debug_clock_offset (a developer setting) steps pgbun's reading of
# the wall clock at a reload, in the worker and in the backends that read
# the views, as a step of the system clock would:
#
#  - the source reads the wall clock in src/clock.c only, so every other
#    time pgbun keeps is on the steady clock;
#  - back an hour: the view and the worker's SHOW CLIENTS show the
#    connections an hour earlier; a client queued before the step and one
#    queued after it both get query_wait_timeout's 57014 after their own
#    wait (before, the janitor's next run was an hour ahead, and nobody
#    timed out);
#  - forward two hours: a client waiting under a 30 s query_wait_timeout is
#    not timed out by the jump and is served when the server is free, and
#    the client idle in a transaction under idle_transaction_timeout (10
#    min) and client_idle_timeout (20 min) is not closed by it.
#
# Deadlines are hang guards, never timing assertions.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use Time::Local qw(timegm);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'clockstep',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.query_wait_timeout' => '5s',
		'pgbun.idle_transaction_timeout' => '10min',
		'pgbun.client_idle_timeout' => '20min',
	});
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; GRANT pg_monitor TO alice");
my %alice = (user => 'alice', password => 'alice-pw');

# Every wall-clock read of the source is in clock.c (auth.c's rolvaliduntil
# check goes through pgbun_clock_wall_now): a deadline written with the wall
# clock would be moved by a step, and this test could not see it otherwise.
{
	my @files = grep { !m{/clock\.c$} } glob("$FindBin::RealBin/../src/*.[ch]");
	my @reads;
	foreach my $f (@files)
	{
		open my $fh, '<', $f or die "cannot read $f: $!";
		while (my $line = <$fh>)
		{
			push @reads, "$f:$.: $line"
			  if $line =~ /\b(?:GetCurrentTimestamp|gettimeofday|clock_gettime|CLOCK_REALTIME)\b|\btime\(NULL\)/;
		}
	}
	cmp_ok(scalar(@files), '>', 50, 'the source files are there to read');
	is(join('', @reads), '', 'the wall clock is read in src/clock.c only');
}

# How far pgbun's wall clock is from the server's, in whole hours: a
# connect_time the view shows ($agg of alice's), against the server's now().
sub view_clock_hours
{
	my ($agg) = @_;
	my $d = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM $agg(connect_time) - now()) FROM pgbun.clients WHERE \"user\" = 'alice'");
	return 0 + sprintf('%.0f', $d / 3600);    # (0 +: no '-0')
}

# The same from the worker itself: the connect_times of SHOW CLIENTS on the
# admin console (rendered by the worker), against this machine's clock.
sub console_clock_hours
{
	my ($agg) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, 'SHOW CLIENTS', %alice, dbname => 'pgbouncer');
	my @h = map { 0 + sprintf('%.0f', ($_ - time) / 3600) }
	  map { /(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) UTC/ ? timegm($6, $5, $4, $3, $2 - 1, $1) : () }
	  split /\n/, $out;
	return 'none' unless @h;
	my @sorted = sort { $::a <=> $::b } @h;
	return $agg eq 'min' ? $sorted[0] : $sorted[-1];
}

sub step_clock
{
	my ($seconds) = @_;
	$node->append_conf('postgresql.conf', "pgbun.debug_clock_offset = $seconds\n");
	$node->reload;
}

sub waiting_clients
{
	return $node->safe_psql('postgres', "SELECT coalesce(sum(cl_waiting), 0) FROM pgbun.pools WHERE database = 'postgres'");
}

sub waiter
{
	my ($tag) = @_;
	my $raw = raw_connect($node);
	ok($raw->login(%alice, database => 'postgres')->{ok}, "waiter $tag logs in");
	$raw->send_bytes(PgbunTest::Raw::query_message("SELECT '$tag'"));
	return $raw;
}

# The result of a waiter's query: its row, or the error's SQLSTATE.
sub outcome
{
	my ($raw) = @_;
	my $msgs = read_until($raw, 'Z');
	my ($row) = grep { ($_->{type} // '') eq 'D' } @$msgs;
	return $row ? PgbunTest::Raw::data_row($row->{body})->[0] : (first_error($msgs)->{C} // msg_types($msgs));
}

my $holder = raw_connect($node);
ok($holder->login(%alice, database => 'postgres')->{ok}, 'the holder logs in');
$holder->send_bytes(PgbunTest::Raw::query_message('BEGIN'));
is(msg_types(read_until($holder, 'Z')), 'CZ', 'the holder opens a transaction on the only server');

############ the wall clock steps back an hour

my $a = waiter('a');
ok(wait_until(sub { waiting_clients() eq '1' }), 'waiter a waits');
step_clock(-3600);
ok(wait_until(sub { console_clock_hours('min') eq '-1' }), "the worker's SHOW CLIENTS shows the step back");
is(view_clock_hours('min'), -1, 'and so does pgbun.clients');
my $b = waiter('b');
ok(wait_until(sub { waiting_clients() eq '2' }), 'waiter b waits behind a');
is(outcome($a), '57014', 'waiter a (queued before the step) gets query_wait_timeout');
is(outcome($b), '57014', 'waiter b (queued after the step) gets query_wait_timeout');
$a->close;
$b->close;

############ and forward two hours

$node->append_conf('postgresql.conf', "pgbun.query_wait_timeout = '30s'\n");
$node->reload;
ok( wait_until(
		sub {
			$node->safe_psql('postgres', "SELECT setting FROM pg_settings WHERE name = 'pgbun.query_wait_timeout'")
			  eq '30000';
		}),
	'query_wait_timeout reloaded to 30 s');
my $c = waiter('c');
ok(wait_until(sub { waiting_clients() eq '1' }), 'waiter c waits');
step_clock(3600);
ok(wait_until(sub { console_clock_hours('max') eq '1' }), "the worker's SHOW CLIENTS shows the jump forward");
# a few janitor runs (every 250 ms) after the jump
usleep(1_500_000);
is(waiting_clients(), '1', 'waiter c still waits after the jump');
$holder->send_bytes(PgbunTest::Raw::query_message('COMMIT'));
is(msg_types(read_until($holder, 'Z')), 'CZ',
	'the holder, idle in a transaction through the jump, is still connected and commits');
is(outcome($c), 'c', 'waiter c is served once the server is free');
is(view_clock_hours('max'), 1, 'and pgbun.clients shows it too');
$c->close;
$holder->close;

step_clock(0);
stop_node($node);
done_testing();

# 240_interrupts: pgbun absorbs what the server asks of every process.
#
#  - DROP DATABASE (PostgreSQL 15 waits until every process has absorbed a
#    ProcSignalBarrier) completes with pgbun idle, with clients connected
#    and idle, and WITH (FORCE) while pgbun holds a server connection to it;
#    so does ALTER DATABASE SET TABLESPACE and DROP TABLESPACE;
#  - pg_log_backend_memory_contexts() on the worker is answered (logged);
#  - pg_cancel_backend() on the worker has nothing to cancel: logins right
#    after it (and many times over) still work, and the worker stays the same.
#
# A hang would show as a statement that does not finish: each runs with a
# generous statement_timeout and psql timeout.

use strict;
use warnings FATAL => 'all';

use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'interrupts');
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
});
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

# Run $sql on the server directly; true if it finished within a minute.
sub finishes
{
	my ($sql, $label) = @_;
	my ($out, $err, $timed_out) = ('', '', 0);
	my $rc = $node->psql(
		'postgres', "SET statement_timeout = '60s';\n$sql",
		stdout => \$out,
		stderr => \$err,
		timeout => 90,
		timed_out => \$timed_out,
		on_error_stop => 1);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(!$timed_out && $rc == 0, $label)
	  or diag("rc=$rc timed_out=$timed_out stderr: $err\n" . PgbunTest::tail_log($node, 20));
	return;
}

############ DROP DATABASE with pgbun idle

# the worker sleeps between janitor rounds: nothing but the barrier wakes it
finishes("CREATE DATABASE x1", 'CREATE DATABASE with pgbun idle');
finishes("DROP DATABASE x1", 'DROP DATABASE with pgbun idle completes');

############ ... with clients connected and idle

my $idle1 = pgbun_session($node, %alice);
ok($idle1->connected, 'an idle psql client through pgbun') or diag($idle1->connect_error);
is($idle1->query('SELECT 1'), '1', 'it holds a server connection (session mode)');
my $idle2 = raw_connect($node);
ok($idle2->login(%alice)->{ok}, 'an idle raw client logged in, no query');

finishes("CREATE DATABASE x2", 'CREATE DATABASE with idle pgbun clients');
finishes("DROP DATABASE x2", 'DROP DATABASE with idle pgbun clients completes');
is($idle1->query('SELECT 2'), '2', 'the idle client goes on afterwards');

############ ... tablespaces

my $tsdir = PostgreSQL::Test::Utils::tempdir_short() . '/ts';
make_path($tsdir);
finishes("CREATE TABLESPACE ts1 LOCATION '$tsdir'", 'CREATE TABLESPACE');
finishes("CREATE DATABASE x3", 'CREATE DATABASE for the tablespace move');
finishes("ALTER DATABASE x3 SET TABLESPACE ts1", 'ALTER DATABASE SET TABLESPACE with pgbun running completes');
finishes("DROP DATABASE x3", 'DROP DATABASE of the moved database');
finishes("DROP TABLESPACE ts1", 'DROP TABLESPACE with pgbun running completes');

############ DROP DATABASE WITH (FORCE) while pgbun holds a server on it

finishes("CREATE DATABASE x4 OWNER bob", 'CREATE DATABASE x4');
my $on_x4 = raw_connect($node);
ok($on_x4->login(user => 'bob', password => 'bob-pw', database => 'x4')->{ok},
	'a client logged in to x4 through pgbun');
is($on_x4->query('SELECT 4')->{rows}[0][0], '4', 'it holds a server connection to x4');
finishes("DROP DATABASE x4 WITH (FORCE)", 'DROP DATABASE WITH (FORCE) completes while pgbun holds a server on it');
my $r = $on_x4->query('SELECT 5');
ok(!$r->{timeout} && ($r->{error} || $r->{eof}), 'the client of the dropped database gets an error, not a hang')
  or diag(explain($r));
$on_x4->close;

############ other interrupts

my $wpid = worker_pid($node);
my $offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($wpid)");
ok( $node->wait_for_log(qr/logging memory contexts of PID $wpid/, $offset),
	'pg_log_backend_memory_contexts() on the worker is answered');

############ pg_cancel_backend() on the worker

is($node->safe_psql('postgres', "SELECT pg_cancel_backend($wpid)"), 't', 'pg_cancel_backend() on the worker');
usleep_ms(300);
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 6', %alice);
is($out, '6', 'a login after the cancel works') or diag("rc=$rc $err");

# right after the signal, many times: the cancel may land during a look-up
my $failed = 0;
foreach my $i (1 .. 20)
{
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($wpid)");
	my $raw = raw_connect($node);
	my $l = $raw->login(%alice);
	if (!$l->{ok})
	{
		$failed++;
		diag("login $i after a cancel: " . explain($l));
	}
	$raw->close;
}
is($failed, 0, 'logins right after each of 20 cancels of the worker all work');
unlike(slurp_file($node->logfile, $offset), qr/canceling statement due to user request/,
	'no cancel error in the worker');

is($idle1->query('SELECT 7'), '7', 'the idle client still works');
check_server_same($node, $identity, 'after barriers and cancels');

$idle1->quit;
$idle2->close;
stop_node($node);
done_testing();

sub usleep_ms { select(undef, undef, undef, $_[0] / 1000); return; }

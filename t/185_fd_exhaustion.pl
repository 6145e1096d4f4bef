# 185_fd_exhaustion: the worker runs out of file descriptors (its soft
# RLIMIT_NOFILE is lowered from outside with prlimit).
#
#  - a server connection that cannot get a socket gives its place in the
#    pool back: once descriptors are free again the waiting client logs in
#    (a leaked count would leave the pool of one "full" forever);
#  - accept() failing with EMFILE pauses the listener instead of spinning
#    on the level-triggered socket and logging every turn; the connection
#    waiting in the backlog is served once descriptors are free again;
#  - a client logged in before goes on throughout; the worker pid and the
#    postmaster start time do not change.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'fds',
	conf => {
		'pgbun.default_pool_size' => '1',
		'pgbun.client_login_timeout' => '10min',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
});
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw');
my %bob = (user => 'bob', password => 'bob-pw');
my $worker = worker_pid($node);

my $ca = raw_connect($node);
ok($ca->login(%alice)->{ok}, 'alice logs in');
is($ca->query('SELECT 1')->{rows}[0][0], '1', 'alice runs a query');

# The worker's soft limit now and the descriptor numbers it leaves free.
my ($soft, $hard) = `prlimit --pid $worker --nofile --noheadings --raw --output=SOFT,HARD` =~ /(\d+)\s+(\d+)/
  or die "cannot read the worker's RLIMIT_NOFILE";
opendir(my $dh, "/proc/$worker/fd") or die "cannot list /proc/$worker/fd: $!";
my %used = map { $_ => 1 } grep { /^\d+$/ } readdir($dh);
closedir($dh);
my @free = grep { !$used{$_} } 0 .. (sort { $b <=> $a } keys %used)[0] + 2;

sub set_nofile
{
	my ($limit) = @_;
	system('prlimit', '--pid', $worker, "--nofile=$limit:$hard") == 0
	  or die "prlimit failed";
	return;
}

############ no socket for a server connection

# one descriptor left: bob's client socket takes it, his pool's first
# server connection finds none
set_nofile($free[1]);
my $cb = raw_connect($node);
my $r = $cb->login(%bob, secs => 2);
ok(!$r->{ok}, 'bob waits: no descriptor for a server connection');
ok( wait_until(sub { log_count($node, qr/could not create a socket for a server connection/) > 0 }),
	'the failed socket() is logged');

############ no descriptor for accept()

my $cc = raw_connect($node);
$cc->send_bytes(PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ]));
ok(wait_until(sub { log_count($node, qr/pgbun: accept failed/) >= 3 }),
	'accept fails (EMFILE) and says so');
my $lines = log_count($node, qr/pgbun: accept failed/);
cmp_ok($lines, '<', 50, "the listener backs off instead of spinning ($lines log lines)");
is($ca->query('SELECT 2')->{rows}[0][0], '2', 'alice goes on while descriptors are short');

############ descriptors back

set_nofile($soft);
my $msgs = read_until($cb, 'Z');
is(msg_types($msgs) =~ /Z$/ ? 'Z' : msg_types($msgs), 'Z',
	'bob logs in once descriptors are back (the pool slot was given back)');
is($cb->query('SELECT 3')->{rows}[0][0], '3', 'bob runs a query');
is($ca->query('SELECT 4')->{rows}[0][0], '4', 'alice is still fine');
$ca->terminate;					# session mode, pool of one: her server is for the next one
$r = $cc->authenticate(%alice);
ok($r->{ok}, 'the connection waiting in the backlog is served') or diag(explain($r));
is($cc->query('SELECT 5')->{rows}[0][0], '5', 'and runs a query');
$_->terminate foreach ($cb, $cc);
check_server_same($node, $identity, 'after running out of descriptors');

stop_node($node);
done_testing();

# 190_catalog_lock: a session holding LOCK pg_authid must not freeze the
# pooler. The login look-up never waits for a catalog lock: the client
# logging in meanwhile gets 55P03 with pgbun's prefix, a client logged in
# before goes on running queries, and once the lock is gone logins work
# again. The worker pid and the postmaster start time do not change.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'catlock');
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bystander LOGIN PASSWORD 'bystander-pw';
});
my $identity = server_identity($node);
my %alice = (user => 'alice', password => 'alice-pw');

my $bystander = pgbun_session($node, user => 'bystander', password => 'bystander-pw');
ok($bystander->connected, 'bystander logs in before the lock') or diag($bystander->connect_error);
is($bystander->query('SELECT 1'), '1', 'bystander runs a query');

my $locker = direct_session($node);
ok($locker->connected, 'locker connects to the server directly');
$locker->query('BEGIN');
$locker->query('LOCK pg_authid');
is($locker->query("SELECT count(*) FROM pg_locks WHERE relation = 'pg_authid'::regclass AND mode = 'AccessExclusiveLock' AND granted"),
	'1', 'locker holds pg_authid in ACCESS EXCLUSIVE mode');

my $raw = raw_connect($node);
my $r = $raw->login(%alice);
ok(!$r->{ok}, 'login while pg_authid is locked: refused, not hung') or diag(explain($r));
is($r->{error}{C} // '', '55P03', 'login while pg_authid is locked: SQLSTATE 55P03') or diag(explain($r));
like($r->{error}{M} // '', qr/^pgbun:/, 'login while pg_authid is locked: pgbun\'s message');
$raw->close;

is($bystander->query('SELECT 2'), '2', 'the bystander goes on while the lock is held');
# (check_server_same needs a new server connection, which waits for the lock too)

$locker->query('COMMIT');
$raw = raw_connect($node);
$r = $raw->login(%alice);
ok($r->{ok}, 'login works again once the lock is gone') or diag(explain($r));
is($raw->query('SELECT 3')->{rows}[0][0], '3', 'and the new client runs a query');
$raw->terminate;
is($bystander->query('SELECT 4'), '4', 'the bystander is still fine');
check_server_same($node, $identity, 'pg_authid locked, then released');

$bystander->quit;
$locker->quit;
stop_node($node);
done_testing();

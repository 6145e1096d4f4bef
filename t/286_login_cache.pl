# 286_login_cache: the worker keeps the roles and databases a login read
# (auth.c) and must still see every change at the very next login. Each step
# changes pg_authid or pg_database through a direct session (the change has
# returned, so its invalidation messages are queued), then logs in at once,
# through pgbun and straight to the server, and both must give the same
# outcome: logged in, or refused with the same SQLSTATE. Changes: ALTER ROLE
# ... PASSWORD / VALID UNTIL / NOLOGIN / RENAME, DROP ROLE and CREATE ROLE of
# the same name, a role that did not exist being created, ALTER DATABASE ...
# ALLOW_CONNECTIONS, DROP DATABASE and CREATE DATABASE, and a password change
# buried under more invalidation messages than the shared queue holds (the
# worker is reset, which must empty the cache too). VALID UNTIL passing with
# no catalog change at all must refuse the next login. The cache is really
# used: with pg_authid locked, a role logged in before still logs in (no
# catalog read), one never seen gets 55P03 (t/190), and once the lock is gone
# a password changed under it applies.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

# no autovacuum: its updates of shared catalogs' statistics would send messages of their own
my $node = pgbun_node(name => 'logincache',
	conf => { 'pgbun.pool_mode' => 'transaction', autovacuum => 'off' });
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'pw1';
CREATE ROLE carol LOGIN PASSWORD 'carol-pw';
CREATE ROLE dave LOGIN PASSWORD 'dave-pw';
CREATE DATABASE appdb;
GRANT ALL ON DATABASE appdb TO alice;
});
my $identity = server_identity($node);
my $socket = $node->host . '/.s.PGSQL.' . $node->port;

# One login: 'ok', or 'refused SQLSTATE'.
sub login_outcome
{
	my ($raw, $user, $password, $db) = @_;
	my $r = $raw->login(user => $user, password => $password, database => $db // 'postgres');
	my $out = $r->{ok} ? 'ok' : 'refused ' . ($r->{error}{C} // ($r->{timeout} ? 'timeout' : 'eof'));
	if ($r->{ok}) { $raw->terminate; } else { $raw->close; }
	return ($out, $r);
}

# The same login through pgbun and directly (pgbun first: right after the change).
sub check_login
{
	my ($label, $user, $password, $db, $want) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($pooled, $pr) = login_outcome(raw_connect($node), $user, $password, $db);
	my ($direct, $dr) = login_outcome(PgbunTest::Raw->new(path => $socket), $user, $password, $db);
	is($direct, $want, "$label: direct: $want") or diag(explain($dr));
	is($pooled, $want, "$label: through pgbun: $want, as directly") or diag(explain($pr));
	like($pr->{error}{M} // '', qr/^pgbun:/, "$label: pgbun's message")
	  if !$pr->{ok} && $pooled =~ /^refused [0-9A-Z]{5}$/;
	return;
}

sub sql { $node->safe_psql('postgres', $_[0]); return; }

# warm the cache: the same logins repeated come from it
check_login("warm-up $_", 'alice', 'pw1', 'appdb', 'ok') for 1 .. 3;

# passwords
sql(q{ALTER ROLE alice PASSWORD 'pw2'});
check_login('old password after ALTER ROLE PASSWORD', 'alice', 'pw1', 'appdb', 'refused 28P01');
check_login('new password after ALTER ROLE PASSWORD', 'alice', 'pw2', 'appdb', 'ok');
sql(q{SET password_encryption = 'md5'; ALTER ROLE alice PASSWORD 'pw-md5'});
check_login('an md5 verifier replaces the SCRAM one', 'alice', 'pw2', 'appdb', 'refused 28P01');
sql(q{ALTER ROLE alice PASSWORD 'pw3'});
check_login('SCRAM again', 'alice', 'pw3', 'appdb', 'ok');
sql(q{ALTER ROLE alice PASSWORD NULL});
check_login('PASSWORD NULL', 'alice', 'pw3', 'appdb', 'refused 28P01');
sql(q{ALTER ROLE alice PASSWORD 'pw4'});
check_login('a password again', 'alice', 'pw4', 'appdb', 'ok');

# the messages of a change are taken by another role's login first: the cache must forget alice anyway
check_login('carol logs in (cached)', 'carol', 'carol-pw', 'postgres', 'ok');
sql(q{ALTER ROLE alice PASSWORD 'pw5'});
check_login('carol logs in right after alice\'s change', 'carol', 'carol-pw', 'postgres', 'ok');
check_login('alice then: old password', 'alice', 'pw4', 'appdb', 'refused 28P01');
check_login('alice then: new password', 'alice', 'pw5', 'appdb', 'ok');
sql(q{ALTER DATABASE appdb ALLOW_CONNECTIONS false});
check_login('carol logs in right after appdb\'s change', 'carol', 'carol-pw', 'postgres', 'ok');
check_login('alice then, to appdb', 'alice', 'pw5', 'appdb', 'refused 55000');
sql(q{ALTER DATABASE appdb ALLOW_CONNECTIONS true; ALTER ROLE alice PASSWORD 'pw4'});

# VALID UNTIL
sql(q{ALTER ROLE alice VALID UNTIL '2001-01-01'});
check_login('VALID UNTIL in the past', 'alice', 'pw4', 'appdb', 'refused 28P01');
sql(q{ALTER ROLE alice VALID UNTIL 'infinity'});
check_login('VALID UNTIL infinity', 'alice', 'pw4', 'appdb', 'ok');

# VALID UNTIL passing with no change to the catalog: the clock decides at each login
my $until = time + 3;
sql(q{DO $$ BEGIN EXECUTE format('ALTER ROLE alice VALID UNTIL %L', (now() + interval '3 seconds')::text); END $$});
check_login('VALID UNTIL 3 s ahead', 'alice', 'pw4', 'appdb', 'ok');
sleep($until + 1.5 - time) if time < $until + 1.5;
check_login('VALID UNTIL passed meanwhile (no catalog change)', 'alice', 'pw4', 'appdb', 'refused 28P01');
sql(q{ALTER ROLE alice VALID UNTIL 'infinity'});
check_login('VALID UNTIL infinity again', 'alice', 'pw4', 'appdb', 'ok');

# LOGIN / NOLOGIN
sql(q{ALTER ROLE alice NOLOGIN});
check_login('NOLOGIN', 'alice', 'pw4', 'appdb', 'refused 28000');
sql(q{ALTER ROLE alice LOGIN});
check_login('LOGIN again', 'alice', 'pw4', 'appdb', 'ok');

# a role that did not exist when first asked for
check_login('unknown role', 'bob', 'bob-pw', 'appdb', 'refused 28P01');
sql(q{CREATE ROLE bob LOGIN PASSWORD 'bob-pw'});
check_login('the same role just created', 'bob', 'bob-pw', 'appdb', 'ok');

# DROP ROLE, then a new role of the same name with another password
sql(q{DROP ROLE bob});
check_login('dropped role', 'bob', 'bob-pw', 'appdb', 'refused 28P01');
sql(q{CREATE ROLE bob LOGIN PASSWORD 'bob-pw2'});
check_login('re-created role, old password', 'bob', 'bob-pw', 'appdb', 'refused 28P01');
check_login('re-created role, new password', 'bob', 'bob-pw2', 'appdb', 'ok');

# RENAME (keeps a SCRAM verifier)
sql(q{ALTER ROLE bob RENAME TO robert});
check_login('old name after RENAME', 'bob', 'bob-pw2', 'appdb', 'refused 28P01');
check_login('new name after RENAME', 'robert', 'bob-pw2', 'appdb', 'ok');

# databases
sql(q{ALTER DATABASE appdb ALLOW_CONNECTIONS false});
check_login('ALLOW_CONNECTIONS false', 'alice', 'pw4', 'appdb', 'refused 55000');
sql(q{ALTER DATABASE appdb ALLOW_CONNECTIONS true});
check_login('ALLOW_CONNECTIONS true', 'alice', 'pw4', 'appdb', 'ok');
sql(q{DROP DATABASE appdb WITH (FORCE)});
check_login('dropped database', 'alice', 'pw4', 'appdb', 'refused 3D000');
sql(q{CREATE DATABASE appdb});
check_login('re-created database', 'alice', 'pw4', 'appdb', 'ok');

# a change followed at once by a login, many times over
my $flips_ok = 1;
for my $i (1 .. 15)
{
	sql("ALTER ROLE alice PASSWORD 'flip$i'");
	my ($old) = login_outcome(raw_connect($node), 'alice', 'flip' . ($i - 1), 'appdb');
	my ($new) = login_outcome(raw_connect($node), 'alice', "flip$i", 'appdb');
	next if $old eq 'refused 28P01' && $new eq 'ok';
	$flips_ok = 0;
	diag("password flip $i: old password $old, new password $new");
	last;
}
ok($flips_ok, 'fifteen password changes, each seen by the login right after it');

# a change buried under more invalidation messages than the shared queue holds:
# the worker, which read none of them, is reset, and the reset empties the cache
check_login('before the flood', 'alice', 'flip15', 'appdb', 'ok');
sql(q{ALTER ROLE alice PASSWORD 'after-flood'});
$node->safe_psql('appdb', q{
DO $$ BEGIN
  FOR i IN 1..800 LOOP EXECUTE format('CREATE TEMP TABLE flood%s (a int, b int)', i); END LOOP;
END $$;
DISCARD TEMP});
check_login('old password after the flood', 'alice', 'flip15', 'appdb', 'refused 28P01');
check_login('new password after the flood', 'alice', 'after-flood', 'appdb', 'ok');

# the cache is used: no catalog read while pg_authid is locked, for a role seen before
check_login('just before the lock', 'alice', 'after-flood', 'appdb', 'ok');
my $locker = direct_session($node);
ok($locker->connected, 'locker connects');
$locker->query('BEGIN');
$locker->query('LOCK pg_authid');
my ($o, $r) = login_outcome(raw_connect($node), 'alice', 'after-flood', 'appdb');
is($o, 'ok', 'pg_authid locked: a role logged in before logs in from the cache') or diag(explain($r));
($o, $r) = login_outcome(raw_connect($node), 'dave', 'dave-pw', 'appdb');
is($o, 'refused 55P03', 'pg_authid locked: a role never seen needs the catalog: 55P03, not a hang')
  or diag(explain($r));
$locker->query(q{ALTER ROLE alice PASSWORD 'under-lock'});
($o, $r) = login_outcome(raw_connect($node), 'alice', 'after-flood', 'appdb');
is($o, 'ok', 'pg_authid locked: a change not yet committed is not seen (as directly)')
  or diag(explain($r));
$locker->query('COMMIT');
check_login('the change made under the lock, once committed: old password', 'alice', 'after-flood', 'appdb',
	'refused 28P01');
check_login('the change made under the lock, once committed: new password', 'alice', 'under-lock', 'appdb', 'ok');
check_login('dave once the lock is gone', 'dave', 'dave-pw', 'appdb', 'ok');
$locker->quit;

check_server_same($node, $identity, 'after all the catalog changes');
stop_node($node);
done_testing();

# 020_auth: client authentication against the server's own roles.
#
# SCRAM and md5 verifiers, pgbun.auth_type scram-sha-256 / md5 / trust
# switched by reload, and every refusal: wrong password, unknown role (same
# answer as a wrong password, after the same exchange), NOLOGIN, expired.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

# 'trusty' is trusted by the server itself (see the trust section below).
# 'trusty' is trusted by the server itself; 'barred' is rejected by it.
my $node = pgbun_node(
	name => 'auth',
	hba_extra => [ 'local all trusty trust', 'local all barred reject' ]);
$node->safe_psql(
	'postgres', q{
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE nol NOLOGIN PASSWORD 'nol-pw';
CREATE ROLE old LOGIN PASSWORD 'old-pw' VALID UNTIL '2000-01-01 00:00:00+00';
CREATE ROLE trusty LOGIN PASSWORD 'trusty-pw';
CREATE ROLE barred LOGIN PASSWORD 'barred-pw';
SET password_encryption = 'md5';
CREATE ROLE mary LOGIN PASSWORD 'mary-pw';
});
like($node->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'mary'"),
	qr/^md5[0-9a-f]{32}$/, 'mary has an md5 verifier');
like($node->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'"),
	qr/^SCRAM-SHA-256\$/, 'alice has a SCRAM verifier');
my $identity = server_identity($node);

sub raw_login
{
	my (%o) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(%o);
	if ($r->{ok})
	{
		my $q = $raw->query('SELECT current_user');
		$r->{current_user} = $q->{rows}[0][0];
	}
	$raw->close;
	return $r;
}

# A refusal: no ReadyForQuery, an ErrorResponse with $sqlstate and pgbun's prefix.
sub refused_ok
{
	my ($r, $sqlstate, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(!$r->{ok}, "$label: refused");
	is($r->{error}{C} // '(no error)', $sqlstate, "$label: SQLSTATE $sqlstate")
	  or diag(explain($r));
	like($r->{error}{M} // '', qr/^pgbun:/, "$label: message starts with pgbun:");
	return;
}

# Retry (a reload reaches the worker asynchronously) until $cond holds.
sub after_reload
{
	my ($cond, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until($cond, hang_guard(), 0.1), "reload took effect: $label");
	return;
}

############ auth_type = scram-sha-256 (the default)

my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user',
	user => 'alice', password => 'alice-pw');
is($rc, 0, 'scram: alice logs in with psql') or diag($err);
is($out, 'alice', 'scram: psql runs as alice');

my $r = raw_login(user => 'alice', password => 'alice-pw');
ok($r->{ok}, 'scram: alice logs in with the raw client') or diag(explain($r));
is_deeply($r->{auth}, [ 10, 11, 12, 0 ], 'scram: the exchange is SASL / continue / final / ok');
is($r->{scram_server_ok}, 1, 'scram: pgbun proves it holds alice\'s verifier');
is($r->{current_user}, 'alice', 'scram: the server session is alice\'s');

# md5 verifier under scram-sha-256: refused, as PostgreSQL would.
$r = raw_login(user => 'mary', password => 'mary-pw');
refused_ok($r, '28P01', 'scram: md5-verifier role');
is($r->{auth}[0] // -1, 10, 'scram: an md5-verifier role is still offered SASL, not md5');
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'mary', password => 'mary-pw');
isnt($rc, 0, 'scram: psql as mary fails');
like($err, qr/FATAL:\s+pgbun:/, 'scram: psql shows pgbun\'s FATAL for mary');

# Wrong password and unknown role look the same from outside.
my $wrong = raw_login(user => 'alice', password => 'not-alice-pw');
refused_ok($wrong, '28P01', 'scram: wrong password');
is_deeply($wrong->{auth}, [ 10, 11 ], 'scram: wrong password fails after the whole SASL exchange');

my $ghost = raw_login(user => 'ghost', password => 'whatever');
refused_ok($ghost, '28P01', 'scram: unknown role');
is_deeply($ghost->{auth}, $wrong->{auth}, 'scram: unknown role gets the same exchange as a wrong password');
(my $wrong_msg = $wrong->{error}{M} // '') =~ s/alice/ROLE/g;
(my $ghost_msg = $ghost->{error}{M} // '') =~ s/ghost/ROLE/g;
is($ghost_msg, $wrong_msg, 'scram: unknown role gets the same message as a wrong password');
my @wrong_fields = sort grep { $_ ne 'M' } keys %{ $wrong->{error} // {} };
my @ghost_fields = sort grep { $_ ne 'M' } keys %{ $ghost->{error} // {} };
is("@ghost_fields", "@wrong_fields", 'scram: and the same error fields');

($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'alice', password => 'nope');
isnt($rc, 0, 'scram: psql with a wrong password fails');
like($err, qr/FATAL:\s+pgbun:/, 'scram: psql shows pgbun\'s FATAL for the wrong password');

# NOLOGIN: refused with 28000, but only after a correct password.
$r = raw_login(user => 'nol', password => 'nol-pw');
refused_ok($r, '28000', 'scram: NOLOGIN role with its password');
$r = raw_login(user => 'nol', password => 'wrong');
refused_ok($r, '28P01', 'scram: NOLOGIN role with a wrong password');

# VALID UNTIL in the past: a correct password no longer works.
$r = raw_login(user => 'old', password => 'old-pw');
refused_ok($r, '28P01', 'scram: expired role with its password');

# The server itself refuses pgbun's login for the role (pg_hba.conf reject):
# the client gets the server's error, the log tells which hba line is needed.
my $log_offset = -s $node->logfile;
$r = raw_login(user => 'barred', password => 'barred-pw');
ok(!$r->{ok}, 'server-side hba reject: the client is refused');
is($r->{error}{C} // '', '28000', 'server-side hba reject: SQLSTATE 28000 from the server')
  or diag(explain($r));
like($r->{error}{M} // '', qr/pg_hba\.conf/, 'server-side hba reject: the server\'s message reaches the client');
ok( wait_until(
		sub { slurp_file($node->logfile, $log_offset) =~ /pgbun:.*pg_hba\.conf/ }),
	'server-side hba reject: pgbun logs which pg_hba.conf line it needs')
  or diag(PgbunTest::tail_log($node, 15));

############ auth_type = md5

reload_conf($node, 'pgbun.auth_type' => 'md5');
after_reload(sub { raw_login(user => 'mary', password => 'mary-pw')->{ok} },
	'md5: mary can log in');

$r = raw_login(user => 'mary', password => 'mary-pw');
ok($r->{ok}, 'md5: mary logs in') or diag(explain($r));
is_deeply($r->{auth}, [ 5, 0 ], 'md5: mary is asked for an md5 password');
is($r->{current_user}, 'mary', 'md5: the server session is mary\'s');
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'mary', password => 'mary-pw');
is($rc, 0, 'md5: mary logs in with psql') or diag($err);
is($out, 'mary', 'md5: psql runs as mary');

$r = raw_login(user => 'alice', password => 'alice-pw');
ok($r->{ok}, 'md5: alice (SCRAM verifier) still logs in') or diag(explain($r));
is_deeply($r->{auth}, [ 10, 11, 12, 0 ], 'md5: alice is offered SCRAM, as PostgreSQL does for md5 with a SCRAM verifier');

$r = raw_login(user => 'mary', password => 'not-mary-pw');
refused_ok($r, '28P01', 'md5: wrong password');
$r = raw_login(user => 'ghost', password => 'x');
refused_ok($r, '28P01', 'md5: unknown role');
$r = raw_login(user => 'old', password => 'old-pw');
refused_ok($r, '28P01', 'md5: expired role');
$r = raw_login(user => 'nol', password => 'nol-pw');
refused_ok($r, '28000', 'md5: NOLOGIN role');

############ auth_type = trust
#
# With trust pgbun never sees a password, so it can log in to the server for
# a role only where the server needs no secret pgbun lacks: an md5 verifier
# (the stored hash answers the server's md5 challenge), or a role the server
# itself trusts. A SCRAM-verifier role behind the server's md5 line needs the
# client's ClientKey, which a trust login never produces, so that
# combination is not tested here.

reload_conf($node, 'pgbun.auth_type' => 'trust');
after_reload(sub { raw_login(user => 'mary')->{ok} }, 'trust: mary can log in');

$r = raw_login(user => 'mary');
ok($r->{ok}, 'trust: mary logs in without a password') or diag(explain($r));
is_deeply($r->{auth}, [0], 'trust: no password is asked for');
is($r->{current_user}, 'mary', 'trust: the server session is mary\'s');
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'mary');
is($rc, 0, 'trust: psql as mary without a password') or diag($err);
is($out, 'mary', 'trust: psql runs as mary');

$r = raw_login(user => 'trusty');
ok($r->{ok}, 'trust: a SCRAM role the server trusts logs in without a password')
  or diag(explain($r));
is($r->{current_user}, 'trusty', 'trust: the server session is trusty\'s');

$r = raw_login(user => 'nol');
ok(!$r->{ok}, 'trust: a NOLOGIN role is still refused') or diag(explain($r));

############ back to scram-sha-256: md5 verifiers refused again

reload_conf($node, 'pgbun.auth_type' => undef);
after_reload(sub { !raw_login(user => 'mary', password => 'mary-pw')->{ok} },
	'scram again: mary is refused');
$r = raw_login(user => 'mary', password => 'mary-pw');
refused_ok($r, '28P01', 'scram again: md5-verifier role');
$r = raw_login(user => 'alice', password => 'alice-pw');
ok($r->{ok}, 'scram again: alice logs in') or diag(explain($r));

############ a password change takes effect at the next login, no reload

{
	$r = raw_login(user => 'alice', password => 'alice-pw');
	ok($r->{ok}, 'password change: alice logs in with the old password first') or diag(explain($r));
	$node->safe_psql('postgres', q{ALTER ROLE alice PASSWORD 'alice-new-pw'});
	$r = raw_login(user => 'alice', password => 'alice-pw');
	refused_ok($r, '28P01', 'password change: the old password, right after ALTER ROLE');
	# The pool's server connections were logged in with the old key: drop them
	# so the next query needs a new server login, which only the new key passes.
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'alice' AND pid <> pg_backend_pid()");
	ok( wait_until(
			sub {
				$node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'") eq '0';
			}),
		'password change: alice\'s server connections are gone');
	$r = raw_login(user => 'alice', password => 'alice-new-pw');
	ok($r->{ok}, 'password change: the new password logs in') or diag(explain($r));
	is($r->{current_user} // '', 'alice', 'password change: a new server login with the new key works');
	$node->safe_psql('postgres', q{ALTER ROLE alice PASSWORD 'alice-pw'});
}

check_server_same($node, $identity, 'end of 020');

stop_node($node);
done_testing();

# 160_hba: pgbun.auth_type = hba with pgbun.hba_file in pg_hba.conf format.
#
#  - a reject line; a hostssl-only database refused to a plain client;
#  - +group (through a nested group) and a non-member;
#  - sameuser; address masks (a /32 that is not the client, a /8 that is);
#  - @file role lists with the cleartext "password" method (SCRAM and md5
#    verifiers), and the pool then logs in to the server as that role;
#  - peer on pgbun's Unix socket (the OS user's own role, and a mismatch),
#    and with map= from a pg_ident-format file (literal and regex lines);
#  - an unknown role gets the same 28P01 as a wrong password;
#  - a malformed file, one with an unsupported method and one with a host
#    name are refused at reload with the line and the reason in the log, and
#    the old rules stay in force;
#  - the worker never restarts.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'hba', wait_listen => 0, create_extension => 0, preload => 1,
	conf => { 'pgbun.auth_type' => 'hba', 'pgbun.default_pool_size' => '2' });
my $hba_path = $node->data_dir . '/pgbun_hba.conf';
my $boot = bootstrap_user();

sub write_file_text
{
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $text;
	close $fh;
	return;
}

write_file_text($node->data_dir . '/pgbun_roles.txt', "bob\nfrank\n");
# map osmap: the OS user may log in as carol, and (regex) as itself
write_file_text($node->data_dir . '/pgbun_ident.conf', "osmap $boot carol\nosmap /^(.*)\$ \\1\n");
my $good_rules = <<"EOF";
# pgbun test rules
local   db1       all                       peer map=osmap
local   all       $boot                     peer
local   all       all                       peer
host    all       rejected   127.0.0.1/32   reject
hostssl sslonly   all        127.0.0.1/32   scram-sha-256
host    sslonly   all        127.0.0.1/32   reject
host    sameuser  alice      127.0.0.1/32   scram-sha-256
host    db1       +staff     127.0.0.1/32   scram-sha-256
host    db1       \@pgbun_roles.txt 127.0.0.1/32 password
host    db2       all        127.0.0.2/32   trust
host    db2       all        127.0.0.0/8    md5
EOF
write_file_text($hba_path, $good_rules);
$node->safe_psql(
	'postgres', qq{
CREATE ROLE staff NOLOGIN;
CREATE ROLE seniors NOLOGIN IN ROLE staff;
CREATE ROLE carol LOGIN PASSWORD 'carol-pw' IN ROLE seniors;
CREATE ROLE dave LOGIN PASSWORD 'dave-pw';
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE rejected LOGIN PASSWORD 'rejected-pw';
SET password_encryption = 'md5';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
RESET password_encryption;
CREATE ROLE frank LOGIN PASSWORD 'frank-pw';
CREATE DATABASE db1;
CREATE DATABASE db2;
CREATE DATABASE sslonly;
CREATE DATABASE alice;
ALTER SYSTEM SET pgbun.hba_file = '$hba_path';
ALTER SYSTEM SET pgbun.ident_file = '@{[ $node->data_dir ]}/pgbun_ident.conf';
SELECT pg_reload_conf();
});
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
my $identity = server_identity($node);

# Log in over TCP through pgbun: (ok, sqlstate, message).
sub try_login
{
	my ($user, $password, $db) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, password => $password, database => $db);
	my @res = ($r->{ok} ? 1 : 0, $r->{error}{C} // '', $r->{error}{M} // '');
	if ($r->{ok})
	{
		my $q = $raw->query('SELECT current_user');
		$res[0] = 0 unless ($q->{rows}[0][0] // '') eq $user;
		$raw->terminate;
	}
	else
	{
		$raw->close;
	}
	return @res;
}

sub login_ok
{
	my ($user, $password, $db, $label) = @_;
	my ($ok, $code, $msg) = try_login($user, $password, $db);
	ok($ok, $label) or diag("$code $msg");
	return;
}

sub login_refused
{
	my ($user, $password, $db, $want, $label) = @_;
	my ($ok, $code, $msg) = try_login($user, $password, $db);
	ok(!$ok, "$label: refused");
	is($code, $want, "$label: SQLSTATE $want") or diag($msg);
	like($msg, qr/^pgbun: /, "$label: pgbun's message");
	return $msg;
}

# The worker reads the file after the reload above: wait until a rule applies.
ok(wait_until(sub { (try_login('carol', 'carol-pw', 'db1'))[0] }), 'hba rules in force');

my $msg = login_refused('rejected', 'rejected-pw', 'db1', '28000', 'reject line');
like($msg, qr/rejects connection/, 'reject line: says the rules reject it');
login_refused('alice', 'alice-pw', 'sslonly', '28000', 'hostssl-only database over plain TCP');
login_ok('carol', 'carol-pw', 'db1', '+staff: carol (member through seniors) logs in to db1');
$msg = login_refused('dave', 'dave-pw', 'db1', '28000', '+staff: dave is no member');
like($msg, qr/no hba entry for host "127\.0\.0\.1", user "dave", database "db1"/, 'no entry: host, user and database named');
login_ok('alice', 'alice-pw', 'alice', 'sameuser: alice to database alice');
login_refused('alice', 'alice-pw', 'db1', '28000', 'sameuser: alice to db1 has no line');
login_refused('carol', 'wrong', 'db1', '28P01', 'scram line, wrong password');

# Address masks: the 127.0.0.2/32 trust line does not apply to 127.0.0.1.
login_refused('dave', 'wrong', 'db2', '28P01', '127.0.0.2/32 trust does not match 127.0.0.1; the /8 md5 line asks');
login_ok('dave', 'dave-pw', 'db2', '127.0.0.0/8 md5 line: right password');

# @file roles with the cleartext password method.
{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'bob', password => 'bob-pw', database => 'db1');
	ok($r->{ok}, '@file + password: bob (md5 verifier) logs in') or diag(explain($r));
	is($r->{auth}[0] // -1, 3, 'the password method asks for a cleartext password');
	is($raw->query('SELECT current_user')->{rows}[0][0] // '', 'bob', 'bob runs queries through the pool');
	$raw->terminate;
}
login_ok('frank', 'frank-pw', 'db1', '@file + password: frank (SCRAM verifier); pgbun logs in to the server with the derived key');
login_refused('frank', 'frank-wrong', 'db1', '28P01', '@file + password: wrong password');
login_refused('nosuchrole', 'x', 'db2', '28P01', 'unknown role on an md5 line: same answer as a wrong password');

# peer on pgbun's Unix socket.
{
	my ($rc, $out, $err) = PgbunTest::run_cmd(
		[ PgbunTest::pooler_psql_cmd($node, host => $node->host, user => $boot), '-c', 'SELECT current_user' ],
		'', { PgbunTest::client_env() });
	is($rc, 0, "peer: the OS user's own role ($boot) logs in over pgbun's Unix socket") or diag($err);
	is($out, $boot, 'peer: and runs a query');
	($rc, $out, $err) = PgbunTest::run_cmd(
		[ PgbunTest::pooler_psql_cmd($node, host => $node->host, user => 'carol'), '-c', 'SELECT 1' ],
		'', { PgbunTest::client_env(password => 'carol-pw') });
	isnt($rc, 0, 'peer: another role over the Unix socket is refused');
	like($err, qr/pgbun: peer authentication failed for user "carol"/, 'peer: pgbun says why');
}

# peer with map= (pg_ident format, pgbun.ident_file): the OS user as another role.
{
	my ($rc, $out, $err) = PgbunTest::run_cmd(
		[ PgbunTest::pooler_psql_cmd($node, host => $node->host, user => 'carol', dbname => 'db1'), '-c', 'SELECT current_user' ],
		'', { PgbunTest::client_env() });
	is($rc, 0, "peer map=osmap: OS user $boot logs in as carol (literal line)") or diag($err);
	is($out, 'carol', 'peer map: the session is carol\'s');
	($rc, $out, $err) = PgbunTest::run_cmd(
		[ PgbunTest::pooler_psql_cmd($node, host => $node->host, user => $boot, dbname => 'db1'), '-c', 'SELECT current_user' ],
		'', { PgbunTest::client_env() });
	is($rc, 0, "peer map=osmap: and as $boot itself (regex line with \\1)") or diag($err);
	($rc, $out, $err) = PgbunTest::run_cmd(
		[ PgbunTest::pooler_psql_cmd($node, host => $node->host, user => 'dave', dbname => 'db1'), '-c', 'SELECT 1' ],
		'', { PgbunTest::client_env(password => 'dave-pw') });
	isnt($rc, 0, 'peer map=osmap: no line maps the OS user to dave');
	like($err, qr/pgbun: peer authentication failed for user "dave"/, 'peer map: refused with pgbun\'s message');
}

# A malformed file, then an unsupported method: refused, the old rules stay.
foreach my $bad (
	[ "host all all 127.0.0.1/33 md5\n", 'malformed line (mask /33)', qr/invalid CIDR mask/ ],
	[ "host all all 127.0.0.1/32 ldap ldapserver=localhost ldapprefix=\"cn=\" ldapsuffix=\",dc=example\"\n",
		'unsupported method (ldap)', qr/not supported by pgbun/ ],
	[ "host all all db.example.com md5\n", 'a host name', qr/host names .* not supported by pgbun/ ])
{
	my ($text, $label, $why) = @$bad;
	my $log_offset = -s $node->logfile;
	write_file_text($hba_path, "host all all 127.0.0.1/32 trust\n" . $text);
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	ok( wait_until(
			sub {
				slurp_file($node->logfile, $log_offset) =~ /pgbun: hba file "\Q$hba_path\E" refused/;
			}),
		"$label: the file is refused at reload");
	like(slurp_file($node->logfile, $log_offset), qr/pgbun: hba file "\Q$hba_path\E" line 2: .*$why/,
		"$label: the log names line 2 and why");
	login_refused('dave', 'dave-pw', 'db1', '28000', "$label: the old rules stay (dave still has no line for db1)");
	login_ok('carol', 'carol-pw', 'db1', "$label: and carol still logs in");
}

# A good file again is taken.
write_file_text($hba_path, "host all all 127.0.0.1/32 scram-sha-256\n");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_until(sub { (try_login('dave', 'dave-pw', 'db1'))[0] }), 'a corrected file is loaded: dave may use db1 now');

check_server_same($node, $identity, 'end of 160');
stop_node($node);
done_testing();

# 230_role_validity: VALID UNTIL on every authentication method, through
# pgbun and directly, same outcome (PgBouncer's CVE-2025-2291: an expired
# password still logged in through the pooler).
#
# PostgreSQL's rule: VALID UNTIL limits the password, nothing else. The
# password methods (scram-sha-256, md5, password) refuse a role past it with
# 28P01 "password authentication failed" - after a full (mock) exchange of
# password_encryption's kind, so even md5 answers an expired role with SCRAM -
# while trust, peer and cert let it in. For each method and for roles whose
# VALID UNTIL is in the past, -infinity, the future, infinity or unset, the
# same login goes once to the server and once to pgbun (auth_type = hba, the
# same rules in pgbun.hba_file), and both must agree: logged in or refused,
# the same authentication requests on the way, 28P01 with pgbun's "pgbun:"
# message. The server's pg_hba.conf trusts pgbun's own logins (its Unix
# socket), so pgbun's check is the only thing that can refuse there.
#
# Then the stored-key case: a role logs in through pgbun with SCRAM (pgbun
# keeps its ClientKey and an idle server connection), its VALID UNTIL is
# moved into the past, and a new SCRAM login through pgbun is refused like a
# direct one, although pgbun could log in to the server.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $boot = bootstrap_user();


# the test CA, the server's certificate, and a client certificate with CN certuser
openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/ca.key",
	'-out', "$dir/ca.crt", '-days', '30', '-subj', '/CN=pgbun test CA');
foreach my $c ([ 'server', 'localhost' ], [ 'client', 'certuser' ])
{
	my ($name, $cn) = @$c;
	openssl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/$name.key",
		'-out', "$dir/$name.csr", '-subj', "/CN=$cn");
	openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/ca.crt", '-CAkey',
		"$dir/ca.key", '-CAcreateserial', '-days', '30', '-sha256', '-out', "$dir/$name.crt");
	chmod 0600, "$dir/$name.key";
}

my $node = pgbun_node(
	name => 'validity',
	wait_listen => 0,
	create_extension => 0,
	conf => {
		'listen_addresses' => '127.0.0.1',
		'ssl' => 'on',
		'ssl_cert_file' => "$dir/server.crt",
		'ssl_key_file' => "$dir/server.key",
		'ssl_ca_file' => "$dir/ca.crt",
		'pgbun.auth_type' => 'hba',
	});

# VALID UNTIL per role suffix; every role exists with a SCRAM and an md5 password.
my %until = (
	past => "'2000-01-01 00:00:00+00'",
	neginf => "'-infinity'",
	future => "'2999-12-31 00:00:00+00'",
	inf => "'infinity'",
	unset => undef,
);
my %expired = (past => 1, neginf => 1, future => 0, inf => 0, unset => 0);
my @roles;
my $sql = '';
foreach my $v (sort keys %until)
{
	foreach my $kind ('s', 'm')
	{
		my $r = "${kind}_$v";
		push @roles, $r;
		$sql .= "SET password_encryption = 'md5';\n" if $kind eq 'm';
		$sql .= "CREATE ROLE $r LOGIN PASSWORD 'pw-$r'"
		  . (defined $until{$v} ? " VALID UNTIL $until{$v}" : '') . ";\n";
		$sql .= "RESET password_encryption;\n";
	}
}
$sql .= "CREATE DATABASE db_$_;\n" foreach qw(scram md5 password cert peer trust);
$node->safe_psql('postgres', $sql);

# The certificate (CN certuser) and the OS user may log in as any test role.
open my $ih, '>', $node->data_dir . '/pg_ident.conf' or die;
print $ih "certmap certuser $_\nosmap $boot $_\n" foreach @roles;
close $ih;

my $rules = <<"EOF";
host    db_scram    all 127.0.0.1/32 scram-sha-256
host    db_md5      all 127.0.0.1/32 md5
host    db_password all 127.0.0.1/32 password
hostssl db_cert     all 127.0.0.1/32 cert map=certmap
host    db_trust    all 127.0.0.1/32 trust
EOF

# The server: the same rules for direct clients (TCP); its Unix socket, where
# pgbun logs in, trusts everyone but db_peer (peer there, for direct peer logins).
open my $sh, '>', $node->data_dir . '/pg_hba.conf' or die;
print $sh "local all $boot trust\nlocal db_peer all peer map=osmap\nlocal all all trust\n";
print $sh "host all $boot 127.0.0.1/32 trust\n$rules";
close $sh;
# pgbun: the same rules, peer on its own Unix socket (pgbun.ident_file empty: the server's)
open my $ph, '>', $node->data_dir . '/pgbun_hba.conf' or die;
print $ph "local db_peer all peer map=osmap\n$rules";
close $ph;
$node->safe_psql('postgres',
	"ALTER SYSTEM SET pgbun.hba_file = '@{[ $node->data_dir ]}/pgbun_hba.conf'; SELECT pg_reload_conf();");
ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens');
$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
my $identity = server_identity($node);

# --- raw logins (scram-sha-256, md5, password, trust): full answer with SQLSTATE
sub raw_login
{
	my ($port, $user, $db) = @_;
	my $raw = raw_connect($node, port => $port);
	my $r = $raw->login(user => $user, database => $db, password => "pw-$user");
	$raw->close;
	return $r;
}

sub check_raw
{
	my ($method, $user, $v) = @_;
	my $db = "db_$method";
	my $direct = raw_login($node->port, $user, $db);
	my $pooled = raw_login(pgbun_port($node), $user, $db);
	my $want_ok = ($expired{$v} && $method ne 'trust') ? 0 : 1;
	my $label = "$method, $user (VALID UNTIL $v)";
	is($direct->{ok} ? 1 : 0, $want_ok, "$label: direct " . ($want_ok ? 'logs in' : 'refused'))
	  or diag(explain($direct));
	is($pooled->{ok} ? 1 : 0, $want_ok, "$label: through pgbun " . ($want_ok ? 'logs in' : 'refused'))
	  or diag(explain($pooled));
	is(join(',', @{ $pooled->{auth} }), join(',', @{ $direct->{auth} }),
		"$label: the same authentication requests (@{ $direct->{auth} })");
	if (!$want_ok)
	{
		is($direct->{error}{C}, '28P01', "$label: direct 28P01");
		is($pooled->{error}{C}, '28P01', "$label: pgbun 28P01");
		like($pooled->{error}{M} // '', qr/^pgbun: password authentication failed for user "$user"$/,
			"$label: pgbun's message");
	}
	return;
}

foreach my $method (qw(scram md5 password trust))
{
	foreach my $v (sort keys %until)
	{
		foreach my $kind ('s', 'm')
		{
			# scram-sha-256 cannot use an md5 password at all, expired or not
			next if $method eq 'scram' && $kind eq 'm';
			check_raw($method, "${kind}_$v", $v);
		}
	}
}

# --- cert and peer (psql: TLS with a client certificate, Unix sockets)
sub psql_login
{
	my ($host, $port, $user, $conninfo) = @_;
	my ($out, $err) = ('', '');
	my %env = PgbunTest::client_env();
	local %ENV = %env;
	IPC::Run::run(
		[ $node->installed_command('psql'), '-X', '-A', '-t', '-w', '-h', $host, '-p', $port,
			'-U', $user, '-d', $conninfo, '-c', 'SELECT current_user' ],
		'<', \'', '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	chomp $out;
	return ($out, $err);
}

my $cert = "sslmode=require sslcert=$dir/client.crt sslkey=$dir/client.key";
foreach my $v (sort keys %until)
{
	my $user = "s_$v";
	my ($d_out, $d_err) = psql_login('127.0.0.1', $node->port, $user, "dbname=db_cert $cert");
	my ($p_out, $p_err) = psql_login('127.0.0.1', pgbun_port($node), $user, "dbname=db_cert $cert");
	is($d_out, $user, "cert, $user (VALID UNTIL $v): direct logs in (VALID UNTIL does not apply)")
	  or diag($d_err);
	is($p_out, $user, "cert, $user (VALID UNTIL $v): through pgbun too") or diag($p_err);

	($d_out, $d_err) = psql_login($node->host, $node->port, $user, 'dbname=db_peer');
	($p_out, $p_err) = psql_login($node->host, pgbun_port($node), $user, 'dbname=db_peer');
	is($d_out, $user, "peer, $user (VALID UNTIL $v): direct logs in (VALID UNTIL does not apply)")
	  or diag($d_err);
	is($p_out, $user, "peer, $user (VALID UNTIL $v): through pgbun too") or diag($p_err);
}

# --- stored keys: expired after pgbun learnt how to log in as the role
{
	$node->safe_psql('postgres',
		"CREATE ROLE later LOGIN PASSWORD 'pw-later' VALID UNTIL '2999-12-31 00:00:00+00'");
	my $r = raw_login(pgbun_port($node), 'later', 'db_scram');
	ok($r->{ok}, 'later: logs in through pgbun with SCRAM while valid') or diag(explain($r));
	my ($idle) = PgbunTest::poll_sql($node,
		"SELECT count(*) > 0 FROM pgbun.servers WHERE \"user\" = 'later' AND state = 'idle'", 't');
	ok($idle, 'later: pgbun keeps an idle server connection of the role');
	$node->safe_psql('postgres', "ALTER ROLE later VALID UNTIL '2000-01-01 00:00:00+00'");
	my $direct = raw_login($node->port, 'later', 'db_scram');
	my $pooled = raw_login(pgbun_port($node), 'later', 'db_scram');
	ok(!$direct->{ok} && ($direct->{error}{C} // '') eq '28P01', 'later, now expired: refused directly (28P01)');
	ok(!$pooled->{ok} && ($pooled->{error}{C} // '') eq '28P01',
		'later, now expired: refused through pgbun too (28P01), idle server and stored key notwithstanding')
	  or diag(explain($pooled));
	$node->safe_psql('postgres', "ALTER ROLE later VALID UNTIL 'infinity'");
	$r = raw_login(pgbun_port($node), 'later', 'db_scram');
	ok($r->{ok}, 'later, valid again: logs in through pgbun') or diag(explain($r));
}

check_server_same($node, $identity, 'end of 230');
stop_node($node);
done_testing();

# 323_auth_file: pgbun.auth_file (PgBouncer's userlist.txt format) for roles
# the local server does not have, against a second, unrelated cluster that
# has them (no pgbun there):
#
#  - a plain password: clients log in with SCRAM (a secret derived at the
#    role's first login, t/324), pgbun logs in to the remote server with the
#    password;
#  - a SCRAM verifier copied from the remote server: pass-through;
#  - an md5 hash (auth_type md5): the md5 challenge both ways;
#  - a wrong password is refused with 28P01 as for a local role;
#  - a role pg_authid has is checked against pg_authid, not the file;
#  - a reload with an unreadable file keeps the entries.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgbunTest;

# the remote cluster: no pgbun, its own roles
my $remote = remote_cluster('remote', 'md5');
$remote->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE r_plain LOGIN PASSWORD 'plain-pw';
	CREATE ROLE r_scram LOGIN PASSWORD 'scram-pw';
	SET password_encryption = 'md5';
	CREATE ROLE r_md5 LOGIN PASSWORD 'md5-pw';
});
my $rport = $remote->port;
my $scram = $remote->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'r_scram'");
my $md5 = $remote->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'r_md5'");

my $node = pgbun_node(
	conf => {
		'pgbun.auth_type' => 'md5',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.databases' => "remote = host=127.0.0.1 port=$rport dbname=postgres",
	});
my $authfile = $node->data_dir . '/userlist.txt';
open my $fh, '>', $authfile or die $!;
print $fh qq{; PgBouncer's format: comments and other lines are skipped\n};
print $fh qq{"r_plain" "plain-pw"\n"r_scram" "$scram"\n"r_md5" "$md5"\n};
print $fh qq{"bothr" "file-pw"\n"broken line\n};
close $fh;
$node->safe_psql('postgres', "SET password_encryption = 'scram-sha-256'; CREATE ROLE bothr LOGIN PASSWORD 'local-pw';");
reload_sync($node, { user => 'bothr', password => 'local-pw' }, 'pgbun.auth_file' => $authfile);
like(slurp_file($node->logfile), qr/loaded 4 entries from auth_file/, 'the file is read: 4 entries, the broken line skipped');

foreach my $case ([ 'r_plain', 'plain-pw', 'a plain password' ], [ 'r_scram', 'scram-pw', 'a SCRAM verifier' ], [ 'r_md5', 'md5-pw', 'an md5 hash' ])
{
	my ($user, $pw, $what) = @$case;
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user, inet_server_port()',
		user => $user, password => $pw, dbname => 'remote');
	is($out, "$user|$rport", "auth_file with $what: the client logs in and reaches the remote server as $user") or diag($err);
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, password => 'wrong', database => 'remote');
	is(($r->{error} // {})->{C}, '28P01', "$user with a wrong password: 28P01") or diag(explain($r));
	$raw->close;
}

# pg_authid wins over the file
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'bothr', password => 'file-pw');
isnt($rc, 0, 'a role pg_authid has is not checked against the file');
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'bothr', password => 'local-pw');
is($out, 'bothr', '... but against pg_authid') or diag($err);

# an unreadable file keeps the entries
reload_sync($node, { user => 'bothr', password => 'local-pw' }, 'pgbun.auth_file' => "$authfile.missing");
like(slurp_file($node->logfile), qr/could not open auth_file .*the entries read before stay in force/,
	'an unreadable auth_file is logged');
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_plain', password => 'plain-pw', dbname => 'remote');
is($out, 'r_plain', 'and the entries stay in force') or diag($err);

stop_node($node);
$remote->stop;
done_testing();

# 321_targets_config: pgbun.databases entries on one node, whose server is
# also reached over TCP as a "remote" host:
#
#  - bad entries are refused at reload with the entry and the reason, the
#    old value stays in force;
#  - dbname= routes a name that does not exist locally;
#  - a forced user with a password logs in with SCRAM, md5 and cleartext
#    (as the server's pg_hba.conf asks), whatever role the client is;
#  - connect_query runs on each new server connection;
#  - max_db_connections per entry;
#  - target_session_attrs=standby with only a primary: 08006 at once;
#  - the "*" entry is the fallback for names without an entry;
#  - pgbun.servers says which entry and host each connection is on.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);

use PgbunTest;

my $mport;
my $node = pgbun_node(
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.server_login_retry' => '300ms',
		'pgbun.query_wait_timeout' => '60s',
		'log_connections' => 'on',
		'pgbun.metrics_port' => ($mport = PostgreSQL::Test::Cluster::get_free_port()),
	},
	hba_extra => [
		'host all svc_plain 127.0.0.1/32 password',
		'host all all 127.0.0.1/32 md5',
	]);
my $port = $node->port;
$node->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE app LOGIN PASSWORD 'app-secret';
	GRANT pg_monitor TO app;
	CREATE ROLE svc LOGIN PASSWORD 'svc-pw';
	CREATE ROLE svc_plain LOGIN PASSWORD 'plain-pw';
	SET password_encryption = 'md5';
	CREATE ROLE svc_md5 LOGIN PASSWORD 'md5-pw';
});
my %login = (user => 'app', password => 'app-secret');
my %probe = (user => 'app', password => 'app-secret');

sub q_via
{
	my ($db, $sql, %o) = @_;
	return pgbun_psql($node, $sql, %login, dbname => $db, timeout => 60, %o);
}

############ bad entries are refused at reload

my @bad = (
	[ 'a = host=127.0.0.1 port=1,2', qr/"a" has 2 ports for 1 hosts/ ],
	[ 'a = target_session_attrs=sometimes', qr/invalid target_session_attrs "sometimes" for "a"/ ],
	[ 'a = load_balance_hosts=fastest', qr/invalid load_balance_hosts "fastest" for "a"/ ],
	[ 'a = password=x', qr/password without user for "a"/ ],
	[ 'a = colour=blue', qr/unknown setting "colour" for "a"/ ],
	[ 'a = port=70000', qr/invalid port "70000" for "a"/ ],
	[ 'a = dbname=x; a = dbname=y', qr/database "a" has two entries/ ],
	[ "a = connect_query='unterminated", qr/is not key=value/ ],
	[ 'a = target_session_attrs=primary max_replica_lag=5s', qr/max_replica_lag for "a" needs/ ],);
foreach my $case (@bad)
{
	my ($value, $re) = @$case;
	(my $sqlv = $value) =~ s/'/''/g;
	my ($rc, $out, $err) = (0, '', '');
	$rc = $node->psql('postgres', "ALTER SYSTEM SET pgbun.databases = '$sqlv'", stdout => \$out, stderr => \$err);
	isnt($rc, 0, "refused: $value");
	like($err, $re, "the refusal says which entry and why: $value");
}
is($node->safe_psql('postgres', 'SHOW pgbun.databases'), '', 'pgbun.databases stays empty');

############ routing entries

my $dbs = join('; ',
	'alias = dbname=postgres',
	"forced = host=127.0.0.1 port=$port dbname=postgres user=svc password=svc-pw",
	"forced_md5 = host=127.0.0.1 port=$port dbname=postgres user=svc_md5 password=md5-pw",
	"forced_plain = host=127.0.0.1 port=$port dbname=postgres user=svc_plain password=plain-pw",
	"forced_bad = host=127.0.0.1 port=$port dbname=postgres user=svc password=wrong",
	"cq = host=127.0.0.1 port=$port dbname=postgres connect_query='SET work_mem = ''12345kB'''",
	"lim = host=127.0.0.1 port=$port dbname=postgres max_db_connections=1",
	"sb = host=127.0.0.1 port=$port dbname=postgres target_session_attrs=standby");
reload_sync($node, \%probe, 'pgbun.databases' => $dbs);

my ($rc, $out, $err) = q_via('alias', 'SELECT current_database()');
is($out, 'postgres', 'dbname= routes a database name that does not exist here') or diag($err);
# the pool keeps an idle server to postgres; a reload sends alias elsewhere
(my $dbs2 = $dbs) =~ s/alias = dbname=postgres/alias = dbname=template1/;
reload_sync($node, \%probe, 'pgbun.databases' => $dbs2);
($rc, $out, $err) = q_via('alias', 'SELECT current_database()');
is($out, 'template1', 'after a reload changes dbname, the idle server of the old route is not reused') or diag($err);
reload_sync($node, \%probe, 'pgbun.databases' => $dbs);

foreach my $case ([ 'forced', 'svc', 'SCRAM' ], [ 'forced_md5', 'svc_md5', 'md5' ], [ 'forced_plain', 'svc_plain', 'cleartext' ])
{
	my ($db, $user, $how) = @$case;
	($rc, $out, $err) = q_via($db, 'SELECT current_user, inet_server_port()');
	is($out, "$user|$port", "forced user $user with a password ($how)") or diag($err);
}
{
	my $s = pgbun_session($node, %login, dbname => 'forced');
	is($s->query('SELECT current_user'), 'svc', 'a session of the forced entry');
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.servers WHERE target = 'forced' AND host = '127.0.0.1' AND port = $port AND state = 'active'"),
		'1', 'pgbun.servers shows the entry and the host of the connection');
	is($node->safe_psql('postgres', "SELECT sv_active FROM pgbun.hosts WHERE database = 'forced'"),
		'1', 'pgbun.hosts counts it');
	# Prometheus: the host of the host lists has its own samples
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 10);
	print $sock "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
	my $resp = do { local $/; <$sock> // '' };
	like($resp, qr/^pgbun_host_up\{host="127\.0\.0\.1:$port"\} 1$/m, '/metrics: pgbun_host_up of the listed host');
	my $role = $node->safe_psql('postgres', "SELECT role FROM pgbun.hosts WHERE database = 'forced'");
	if ($role eq 'unknown')
	{
		unlike($resp, qr/^pgbun_host_primary\{host="127\.0\.0\.1:$port"\}/m,
			'/metrics: no pgbun_host_primary while the role is unknown');
	}
	else
	{
		like($resp, qr/^pgbun_host_primary\{host="127\.0\.0\.1:$port"\} @{[ $role eq 'primary' ? 1 : 0 ]}$/m,
			"/metrics: pgbun_host_primary says what pgbun.hosts says ($role)");
	}
	my ($n) = $resp =~ /^pgbun_host_servers\{host="127\.0\.0\.1:$port"\} (\d+)$/m;
	my $direct = $node->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE host = '127.0.0.1' AND port = $port");
	is($n, $direct, "/metrics: its server connections, as pgbun.servers counts them ($direct)");
	SKIP:
	{
		skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
		my $file = PostgreSQL::Test::Utils::tempdir() . '/metrics.txt';
		open my $mf, '>', $file or die $!;
		print $mf ((split /\r\n\r\n/, $resp, 2)[1] // '');
		close $mf;
		my $check = `/usr/bin/promtool check metrics < $file 2>&1`;
		is($?, 0, 'promtool check metrics passes with host-list hosts') or diag($check);
	}
	$s->quit;
}
($rc, $out, $err) = q_via('forced_bad', 'SELECT 1');
isnt($rc, 0, 'a wrong forced password fails the login');
like($err, qr/password authentication failed for user "svc"/, '... with the server\'s error');

($rc, $out, $err) = q_via('cq', 'SHOW work_mem');
is($out, '12345kB', 'connect_query ran on the new server connection') or diag($err);

{
	my $s = pgbun_session($node, %login, dbname => 'lim');
	is($s->query('SELECT 1'), '1', 'lim: one server connection');
	reload_sync($node, \%probe, 'pgbun.databases' => $dbs, 'pgbun.query_wait_timeout' => '1s');
	($rc, $out, $err) = q_via('lim', 'SELECT 1');
	isnt($rc, 0, 'lim: a second client finds max_db_connections=1 taken');
	like($err, qr/query_wait_timeout/, '... and waits for query_wait_timeout');
	$s->quit;
	reload_sync($node, \%probe, 'pgbun.databases' => $dbs, 'pgbun.query_wait_timeout' => '60s');
}

{
	my $t0 = time;
	($rc, $out, $err) = q_via('sb', 'SELECT 1');
	my $took = time - $t0;
	isnt($rc, 0, 'target_session_attrs=standby with only a primary fails');
	like($err, qr/pgbun: no server available for database "sb": no host is a standby/, '... saying why');
	ok($took < 15, sprintf('... at once (%.1f s; query_wait_timeout is 60 s)', $took));
}
like($node->safe_psql('postgres', "SELECT role, state FROM pgbun.hosts WHERE database = 'sb'"),
	qr/^primary\|up$/, 'pgbun.hosts: the host is a primary, up');

############ the admin console: SHOW HOSTS, SHOW DATABASES

($rc, $out, $err) = q_via('pgbouncer', 'SHOW HOSTS', on_error_stop => 0);
like($out, qr/^sb\|127\.0\.0\.1\|$port\|standby\|primary\|up\|/m, 'SHOW HOSTS: the sb entry\'s host') or diag($err);
like($out, qr/^forced\|127\.0\.0\.1\|$port\|any\|primary\|up\|/m, 'SHOW HOSTS: the forced entry\'s host');
($rc, $out, $err) = q_via('pgbouncer', 'SHOW DATABASES', on_error_stop => 0);
like($out, qr/^forced\|127\.0\.0\.1\|$port\|postgres\|svc\|/m, 'SHOW DATABASES: host, port, database and force_user of an entry')
  or diag($out, $err);
is($node->safe_psql('postgres', "SELECT host, port, database, force_user, load_balance_hosts FROM pgbun.databases WHERE name = 'forced'"),
	"127.0.0.1|$port|postgres|svc|disable", 'pgbun.databases: the same from SQL');
is($node->safe_psql('postgres', "SELECT max_connections FROM pgbun.databases WHERE name = 'lim'"), '1',
	'pgbun.databases: the entry\'s max_db_connections');

############ "*": the fallback for names without an entry

($rc, $out, $err) = q_via('nosuchdb', 'SELECT 1');
isnt($rc, 0, 'without "*", an unknown database is refused');
reload_sync($node, \%probe, 'pgbun.databases' => "$dbs; * = host=127.0.0.1 port=$port dbname=postgres");
($rc, $out, $err) = q_via('nosuchdb', 'SELECT current_database(), inet_server_port()');
is($out, "postgres|$port", '"*" routes a name without an entry') or diag($err);
($rc, $out, $err) = q_via('forced', 'SELECT current_user');
is($out, 'svc', 'named entries still win over "*"');

reload_sync($node, \%probe, 'pgbun.databases' => undef);
($rc, $out, $err) = q_via('postgres', 'SELECT inet_server_port() IS NULL');
is($out, 't', 'without entries, the local server over its Unix socket again');

############ the upgrade 1.1 -> 1.2 -> 1.3 gives what CREATE EXTENSION gives

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', "CREATE EXTENSION pgbun VERSION '1.1'; ALTER EXTENSION pgbun UPDATE");
my $cols = q{SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, ordinal_position)
	FROM information_schema.columns WHERE table_schema = 'pgbun' AND table_name IN ('hosts', 'servers')};
is($node->safe_psql('upgraded', $cols), $node->safe_psql('postgres', $cols),
	'after ALTER EXTENSION UPDATE, pgbun.hosts and pgbun.servers are as a fresh install has them');
is($node->safe_psql('upgraded', "SELECT has_table_privilege('pg_monitor', 'pgbun.hosts', 'SELECT')"), 't',
	'pgbun.hosts is granted to pg_monitor');

stop_node($node);
done_testing();

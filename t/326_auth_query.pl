# 326_auth_query: auth_user + auth_query against a second, unrelated cluster
# (no pgbun there, roles of its own, not a replica). The roles exist only on
# the target:
#
#  - SCRAM and md5 roles log in through pgbun; the server login uses
#    SCRAM pass-through / the md5 hash the query returned;
#  - a wrong password, an unknown role, an expired role (VALID UNTIL in the
#    past) and a name that tries SQL injection all get the same 28P01;
#    VALID UNTIL in the future is fine;
#  - the client's name is a bound parameter ($1), never pasted into the SQL;
#  - search_path cannot shadow what the query names (CVE-2025-12819): the
#    auth_user's own search_path puts an attacker's pg_authid view first, and
#    a client asks for it in its startup packet; an unqualified custom query
#    still reads pg_catalog.pg_authid;
#  - auth_user's password comes from pgbun.auth_file; auth_file wins over
#    auth_query for a role it lists; a local role of the same name is not
#    asked;
#  - a slow auth_query does not hold up other clients; past
#    server_connect_timeout the client gets 08006 and the query is cancelled;
#  - the target down: 08006 at once; an auth_user pgbun knows no password for:
#    a clear error; a bad auth_query is refused at reload;
#  - the forced user still applies to the server login; the auth connection
#    shows in pgbun.servers and is pooled (one for many logins).
use strict;
use warnings FATAL => 'all';

use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgbunTest;

# ---- the target: its own roles, md5 in pg_hba (SCRAM verifiers use SCRAM) ----
my $target = remote_cluster('target', 'md5', "log_statement = 'all'\n");
my $tport = $target->port;
$target->safe_psql('postgres', q{
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE pgbun_auth LOGIN SUPERUSER PASSWORD 'auth-pw';
	CREATE ROLE r_scram LOGIN PASSWORD 'scram-pw';
	CREATE ROLE r_expired LOGIN PASSWORD 'exp-pw' VALID UNTIL '2000-01-01';
	CREATE ROLE r_future LOGIN PASSWORD 'fut-pw' VALID UNTIL '2200-01-01';
	CREATE ROLE r_victim LOGIN PASSWORD 'victim-pw';
	CREATE ROLE r_forced LOGIN PASSWORD 'forced-pw';
	CREATE ROLE r_file LOGIN PASSWORD 'file-pw';
	CREATE ROLE r_nologin NOLOGIN PASSWORD 'nologin-pw';
	CREATE ROLE hacked_tmp PASSWORD 'hacked';
	SET password_encryption = 'md5';
	CREATE ROLE r_md5 LOGIN PASSWORD 'md5-pw';
});

# the attack: a pg_authid look-alike that says r_victim's password is 'hacked',
# first in auth_user's own search_path
$target->safe_psql('postgres', q{
	CREATE SCHEMA evil;
	CREATE VIEW evil.pg_authid AS
		SELECT 'r_victim'::name AS rolname, rolpassword, NULL::timestamptz AS rolvaliduntil, true AS rolcanlogin
		FROM pg_catalog.pg_authid WHERE rolname = 'hacked_tmp';
	ALTER ROLE pgbun_auth SET search_path = evil, pg_catalog;
});
my $unqualified = 'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1';
{
	# the setting is real: a plain session of auth_user resolves the view
	my %env = (PGPASSWORD => 'auth-pw');
	local @ENV{ keys %env } = values %env;
	my $out = $target->safe_psql('postgres',
		"PREPARE q(name) AS $unqualified; EXECUTE q('r_victim')",
		connstr => "host=127.0.0.1 port=$tport user=pgbun_auth dbname=postgres");
	my $hacked = $target->safe_psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'hacked_tmp'");
	is($out, "r_victim|$hacked", 'without a pinned search_path the unqualified query reads the attacker\'s view');
}

# ---- the pgbun node: none of these roles, auth_user's password in auth_file ----
my $down_port = PostgreSQL::Test::Cluster::get_free_port();
my $slow = q{SELECT rolname, rolpassword FROM pg_catalog.pg_authid, pg_catalog.pg_sleep(30) WHERE rolname = $1};
(my $slow_q = $slow) =~ s/'/''/g;
(my $unq_q = $unqualified) =~ s/'/''/g;
my $common = "host=127.0.0.1 port=$tport dbname=postgres";
my $databases = join('; ',
	"rdb = $common auth_user=pgbun_auth",
	"rdb_unq = $common auth_user=pgbun_auth auth_query='$unq_q'",
	"rdb_slow = $common auth_user=pgbun_auth auth_query='$slow_q'",
	"rdb_down = host=127.0.0.1 port=$down_port dbname=postgres auth_user=pgbun_auth",
	"rdb_multi = host=127.0.0.1,127.0.0.1 port=$down_port,$tport dbname=postgres auth_user=pgbun_auth",
	"rdb_nouser = $common auth_user=nobody_here",
	"rdb_forced = $common user=r_forced password=forced-pw auth_user=pgbun_auth",
	"rdb_lim = $common auth_user=pgbun_auth max_db_connections=1",
	"rdb_onecol = $common auth_user=pgbun_auth auth_query='SELECT \$1::text'",
	"rdb_tworows = $common auth_user=pgbun_auth auth_query='SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = \$1 OR rolname = ''r_md5'''",
	"rdb_broken = $common auth_user=pgbun_auth auth_query='SELECT a, b FROM no_such_table WHERE a = \$1'",
	"rdb_glob = $common");
my $node = pgbun_node(
	conf => {
		'pgbun.auth_type' => 'md5',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.server_connect_timeout' => '4s',
		'pgbun.databases' => $databases,
		'pgbun.auth_user' => 'pgbun_auth',
	});
my $authfile = $node->data_dir . '/userlist.txt';
open my $fh, '>', $authfile or die $!;
print $fh qq{"pgbun_auth" "auth-pw"\n"r_file" "file-pw"\n};
close $fh;
# a local role with the name of a target role, and another password
$node->safe_psql('postgres', "SET password_encryption = 'scram-sha-256'; CREATE ROLE r_scram LOGIN PASSWORD 'local-pw'; CREATE ROLE loc LOGIN PASSWORD 'loc-pw';");
reload_sync($node, { user => 'loc', password => 'loc-pw' }, 'pgbun.auth_file' => $authfile);

sub login_raw
{
	my ($user, $password, $db, %o) = @_;
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, password => $password, database => $db // 'rdb', %o);
	$raw->close;
	return $r;
}

sub target_log { return slurp_file($target->logfile); }

# ---- logins ----
my ($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user, inet_server_port()',
	user => 'r_scram', password => 'scram-pw', dbname => 'rdb');
is($out, "r_scram|$tport", 'a SCRAM role of the target logs in through auth_query and reaches the target') or diag($err);
my $r = login_raw('r_scram', 'scram-pw');
ok($r->{ok} && (grep { $_ == 10 } @{ $r->{auth} }), '... with a SCRAM exchange') or diag(explain($r));
like(target_log(), qr/execute <unnamed>: SELECT rolname, CASE WHEN rolvaliduntil IS NULL.*\n.*DETAIL:\s+parameters: \$1 = 'r_scram'/,
	'the default query ran on the target with the name as the bound parameter $1');

($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_md5', password => 'md5-pw', dbname => 'rdb');
is($out, 'r_md5', 'an md5 role logs in') or diag($err);
$r = login_raw('r_md5', 'md5-pw');
ok($r->{ok} && (grep { $_ == 5 } @{ $r->{auth} }), '... with the md5 challenge') or diag(explain($r));

($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_future', password => 'fut-pw', dbname => 'rdb');
is($out, 'r_future', 'VALID UNTIL in the future: logs in') or diag($err);

# every refusal looks the same: a SCRAM exchange, then 28P01 with the same words
my %refused;
foreach my $case ([ 'r_scram', 'wrong', 'a wrong password' ], [ 'nosuch', 'x', 'an unknown role' ],
	[ 'r_expired', 'exp-pw', 'an expired role (VALID UNTIL in the past)' ], [ 'r_nologin', 'nologin-pw', 'a NOLOGIN role' ],
	[ q{x' OR '1'='1}, 'x', 'a name that tries SQL injection' ])
{
	my ($user, $pw, $what) = @$case;
	$r = login_raw($user, $pw);
	my $e = $r->{error} // {};
	(my $msg = $e->{M} // '') =~ s/"\Q$user\E"/"USER"/;
	is(($e->{C} // '') . " $msg", '28P01 pgbun: password authentication failed for user "USER"', "$what: 28P01, the same message")
	  or diag(explain($r));
	is(join(',', @{ $r->{auth} }), '10,11', "$what: the same SCRAM exchange up to the refusal (no user enumeration)");
}
like(target_log(), qr/DETAIL:\s+parameters: \$1 = 'x'' OR ''1''=''1'/, 'the injection attempt reached the target only as a parameter value');
{
	# differential: the target refuses the expired role itself
	my ($drc, $dout, $derr) = PgbunTest::run_cmd([ $node->installed_command('psql'), '-X', '-w', '-h', '127.0.0.1', '-p', $tport, '-U', 'r_expired', '-c', 'SELECT 1', 'postgres' ],
		'', { %ENV, PGPASSWORD => 'exp-pw' });
	isnt($drc, 0, 'the target itself refuses the expired role');
}

# a local role of the same name is another role: the target's password counts
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'local-pw', dbname => 'rdb');
isnt($rc, 0, 'the local role\'s password does not open the target\'s role');
# but the local server's own databases still use the local catalog
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'local-pw', dbname => 'postgres');
is($out, 'r_scram', 'a database without auth_user keeps the local pg_authid') or diag($err);

# auth_file wins over auth_query for a role it lists: no query for it
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_file', password => 'file-pw', dbname => 'rdb');
is($out, 'r_file', 'a role of pgbun.auth_file logs in') or diag($err);
unlike(target_log(), qr/parameters: \$1 = 'r_file'/, '... checked against the file, no auth_query for it');

# the global pgbun.auth_user for an entry with a host list
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'scram-pw', dbname => 'rdb_glob');
is($out, 'r_scram', 'pgbun.auth_user applies to an entry with a host list and no auth_user') or diag($err);

($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user, inet_server_port()', user => 'r_scram', password => 'scram-pw', dbname => 'rdb_multi');
is($out, "r_scram|$tport", 'a host list whose first host is down: the look-up and the login go to the next one') or diag($err);
like(slurp_file($node->logfile), qr/could not connect to server 127.0.0.1: Connection refused/, '... after the first one refused the connection');

# the forced user: clients checked by auth_query, the server login as the forced user
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_md5', password => 'md5-pw', dbname => 'rdb_forced');
is($out, 'r_forced', 'with a forced user the client is checked by auth_query and the server sees the forced user') or diag($err);
$r = login_raw('r_md5', 'wrong', 'rdb_forced');
is(($r->{error} // {})->{C}, '28P01', '... and a wrong password is still refused');

# ---- search_path ----
# refused by pgbun's own check (the SCRAM exchange stops before its final
# message), not later by the target's login
foreach my $case ([ [], 'the attacker\'s view is not read, even by an unqualified query' ],
	[ [ options => '-c search_path=evil,pg_catalog' ], '... nor when the client asks for that search_path in options' ],
	[ [ search_path => 'evil, pg_catalog' ], '... nor as a startup parameter of its own' ])
{
	my ($params, $what) = @$case;
	$r = login_raw('r_victim', 'hacked', 'rdb_unq', params => $params);
	is(($r->{error} // {})->{C} . ' ' . join(',', @{ $r->{auth} }), '28P01 10,11', "search_path attack: $what")
	  or diag(explain($r));
}
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_victim', password => 'victim-pw', dbname => 'rdb_unq');
is($out, 'r_victim', '... while the real password works') or diag($err);

# ---- the auth connection: pooled, visible, counted ----
my @raws;
foreach my $i (1 .. 6)
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'r_scram', database => 'rdb' ]));
	push @raws, $raw;
}
my $all_ok = 1;
foreach my $raw (@raws)
{
	my $x = $raw->authenticate(user => 'r_scram', password => 'scram-pw');
	$all_ok &&= $x->{ok};
	$raw->close;
}
ok($all_ok, 'six logins asked at once all get their answer (pipelined)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgbun.servers WHERE "user" = 'pgbun_auth' AND database = 'rdb' AND port = } . $tport),
	'1', 'pgbun.servers shows one auth connection for rdb');
is($target->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbun auth_query' AND datname = 'postgres' AND usename = 'pgbun_auth' AND backend_type = 'client backend'} . " AND query NOT LIKE '%pg_sleep%'"),
	$node->safe_psql('postgres', q{SELECT count(*) FROM pgbun.servers WHERE "user" = 'pgbun_auth'}),
	'the target sees as many auth connections as pgbun.servers lists');
is($target->safe_psql('postgres', q{SELECT setting FROM pg_settings WHERE name = 'search_path'}), '"$user", public', 'sanity: the target\'s default search_path is the usual one');

# answers pgbun cannot use
$r = login_raw('r_scram', 'scram-pw', 'rdb_onecol');
is(($r->{error} // {})->{C}, '08006', 'a query that returns one column: 08006') or diag(explain($r));
like(slurp_file($node->logfile), qr/auth_query for database "rdb_onecol" must return two columns/, '... and the log says why');
$r = login_raw('r_scram', 'scram-pw', 'rdb_tworows');
is(($r->{error} // {})->{C} . ' ' . join(',', @{ $r->{auth} }), '28P01 10,11', 'a query that returns two rows: refused like an unknown role') or diag(explain($r));
$r = login_raw('r_scram', 'scram-pw', 'rdb_broken');
is(($r->{error} // {})->{C}, '08006', 'a query that fails: 08006') or diag(explain($r));
like(($r->{error} // {})->{M} // '', qr/^pgbun: could not look up role "r_scram": auth_query for database "rdb_broken" failed/, '... saying so, without the server\'s words');
like(slurp_file($node->logfile), qr/auth_query for database "rdb_broken" failed for user "r_scram": 42P01: relation "no_such_table" does not exist/,
	'... which are in the log');
$r = login_raw('r_md5', 'md5-pw', 'rdb_broken');
like(($r->{error} // {})->{M} // '', qr/^pgbun: could not look up role "r_md5": auth_query for database "rdb_broken" failed/,
	'the next look-up on the same auth connection is answered too');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pgbun.servers WHERE "user" = 'pgbun_auth' AND database = 'rdb_broken'}), '1',
	'... which survives the failed queries');

# max_db_connections counts the auth connection; an idle one gives its place up
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_md5', password => 'md5-pw', dbname => 'rdb_lim', timeout => 30);
is($out, 'r_md5', 'max_db_connections=1: the idle auth connection makes room for the client\'s server') or diag($err);
is($node->safe_psql('postgres', q{SELECT string_agg("user", ',') FROM pgbun.servers WHERE database = 'rdb_lim'}), 'r_md5',
	'... and the database has one server connection, the client\'s');

# ---- a slow auth_query does not hold up others; then it times out ----
{
	my $raw = raw_connect($node);
	my $t0 = time;
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'r_scram', database => 'rdb_slow' ]));
	ok(wait_until(sub { $target->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND application_name = 'pgbun auth_query'}) eq '1' }),
		'the slow auth_query runs on the target');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_md5', password => 'md5-pw', dbname => 'rdb');
	is($out, 'r_md5', 'another client of another pool logs in and queries meanwhile') or diag($err);
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 42', user => 'loc', password => 'loc-pw');
	is($out, '42', '... and so does a local client');
	my $m = $raw->read_message(0.2);
	ok($m->{timeout}, '... while the slow login is still waiting for its answer');
	my $x = $raw->authenticate(user => 'r_scram', password => 'scram-pw', secs => 30);
	my $e = $x->{error} // {};
	is($e->{C}, '08006', 'the slow look-up ends with 08006 at server_connect_timeout') or diag(explain($x));
	like($e->{M} // '', qr/^pgbun: could not look up role "r_scram": auth_query for database "rdb_slow" not answered within 4000 ms/, '... saying why');
	ok(time - $t0 < 25, '... well before the query itself would have finished');
	$raw->close;
	ok(wait_until(sub { $target->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()}) eq '0' }, 20),
		'the hanging query was cancelled on the target');
}

# a client that gives up (client_login_timeout) while its look-up runs
{
	reload_sync($node, { user => 'loc', password => 'loc-pw' }, 'pgbun.client_login_timeout' => '1s');
	my $pid = worker_pid($node);
	my $cancels = sub { my @m = slurp_file($node->logfile) =~ /auth_query for database "rdb_slow" not answered within 4000 ms \(pgbun.server_connect_timeout\); cancelling it/g; scalar @m };
	my $before = $cancels->();
	$r = login_raw('r_scram', 'scram-pw', 'rdb_slow', secs => 20);
	is(($r->{error} // {})->{C}, '08P01', 'client_login_timeout ends a login whose look-up is still running') or diag(explain($r));
	ok(wait_until(sub { $cancels->() > $before }, 20),
		'the orphaned look-up is cancelled at its deadline all the same');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'scram-pw', dbname => 'rdb');
	is($out, 'r_scram', 'the worker goes on') or diag($err);
	is(worker_pid($node), $pid, '... the same worker, not restarted');
	reload_sync($node, { user => 'loc', password => 'loc-pw' }, 'pgbun.client_login_timeout' => undef);
}

# ---- the target down, an auth_user without a password ----
{
	my $t0 = time;
	$r = login_raw('r_scram', 'scram-pw', 'rdb_down');
	my $e = $r->{error} // {};
	is($e->{C}, '08006', 'the target down: 08006') or diag(explain($r));
	like($e->{M} // '', qr/^pgbun: could not look up role "r_scram": .*(could not connect|Connection refused|all hosts are down)/, '... with the reason');
	ok(time - $t0 < 10, '... at once, not at a timeout');
	$r = login_raw('r_scram', 'scram-pw', 'rdb_down');
	like(($r->{error} // {})->{M} // '', qr/^pgbun: could not look up role "r_scram": .*all hosts are down/, 'the next login hears that the host is down');
}
$r = login_raw('r_scram', 'scram-pw', 'rdb_nouser');
is(($r->{error} // {})->{C}, '08006', 'an auth_user pgbun knows no password for: 08006') or diag(explain($r));
like(($r->{error} // {})->{M} // '', qr/auth_user "nobody_here" could not log in to the server of database "rdb_nouser".*add it to pgbun.auth_file/,
	'... naming auth_user and what to do');

# ---- bad configuration is refused, the old one stays ----
foreach my $case (
	[ 'pgbun.databases', "rdb = $common auth_user=pgbun_auth auth_query='SELECT rolname, rolpassword FROM pg_catalog.pg_authid'",
		qr/invalid auth_query .* for "rdb" \(it must compare the user name with \$1\)/ ],
	[ 'pgbun.databases', "rdb = $common auth_user=''", qr/invalid auth_user "" for "rdb"/ ],
	[ 'pgbun.auth_query', 'SELECT 1, 2', qr/pgbun.auth_query cannot be used \(it must compare the user name with \$1\)/ ],
	[ 'pgbun.auth_user', 'x' x 70, qr/A role name is shorter than 64 bytes/ ])
{
	my ($name, $value, $re) = @$case;
	(my $sqlv = $value) =~ s/'/''/g;
	my ($brc, $bout, $berr) = (0, '', '');
	$brc = $node->psql('postgres', "ALTER SYSTEM SET $name = '$sqlv'", stdout => \$bout, stderr => \$berr);
	isnt($brc, 0, "refused: $name = $value");
	like($berr, $re, "... saying which entry and why");
}
($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'scram-pw', dbname => 'rdb');
is($out, 'r_scram', 'the configuration in force stays') or diag($err);

# ---- hba: a refused client never makes pgbun ask the target ----
{
	my $hba = $node->data_dir . '/pgbun_hba.conf';
	open my $hf, '>', $hba or die $!;
	print $hf "host rdb r_rejected 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 scram-sha-256\n";
	close $hf;
	reload_sync($node, { user => 'loc', password => 'loc-pw' }, 'pgbun.auth_type' => 'hba', 'pgbun.hba_file' => $hba);
	$r = login_raw('r_rejected', 'x');
	is(($r->{error} // {})->{C}, '28000', 'auth_type = hba: a reject line refuses the client') or diag(explain($r));
	unlike(target_log(), qr/parameters: \$1 = 'r_rejected'/, '... before any look-up on the target');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'r_scram', password => 'scram-pw', dbname => 'rdb');
	is($out, 'r_scram', 'an hba scram-sha-256 line with auth_query logs in') or diag($err);
}

stop_node($node);
$target->stop;
done_testing();

# 010_basic: psql through the pooler; pgbun.pools / clients / servers / stats
# agree with what psql sessions hold; released servers are reused and reset
# (server_reset_query, transactions a vanished client left open); startup
# parameters are each client's own; unknown database is 3D000; the Unix
# socket listener works.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'basic');
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; "
	  . "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'; "
	  . "GRANT pg_monitor TO alice;");
my $identity = server_identity($node);

# --- a plain query through the pooler as a SCRAM role
my ($rc, $out, $err) = pgbun_psql($node,
	'SELECT 1 AS one, current_user, (SELECT count(*) FROM pg_roles)',
	user => 'alice',
	password => 'alice-pw');
is($rc, 0, 'psql through pgbun exits 0') or diag($err);
is($out, '1|alice|' . $node->safe_psql('postgres', 'SELECT count(*) FROM pg_roles'),
	'SELECT through pgbun returns the server\'s answer as alice');

# The pooler's own view of pools, read on the server directly.
sub pool_row
{
	my ($db, $user) = @_;
	return $node->safe_psql('postgres',
		"SELECT cl_active, cl_waiting, sv_active FROM pgbun.pools "
		  . "WHERE database = '$db' AND \"user\" = '$user'");
}

# --- three sessions held open: session pooling gives each its own server
my @sessions;
my @pids;
for my $i (1 .. 3)
{
	my $s = pgbun_session(
		$node,
		user => 'alice',
		password => 'alice-pw',
		application_name => "pgbun_t010_$i");
	ok($s->connected, "session $i connected through pgbun")
	  or diag($s->connect_error);
	my ($pid, $qerr) = $s->query('SELECT pg_backend_pid()');
	like($pid // '', qr/^\d+$/, "session $i has a server backend") or diag($qerr);
	# Session state that server_reset_query must wipe before reuse.
	(undef, $qerr) = $s->query(
		"SET work_mem = '7MB'; CREATE TEMP TABLE leftover_$i (x int); PREPARE leftover_stmt AS SELECT 1");
	is($qerr, '', "session $i leaves session state behind");
	push @sessions, $s;
	push @pids, $pid // 0;
}
my %distinct = map { $_ => 1 } @pids;
is(scalar(keys %distinct), 3, 'three sessions use three different server backends');

my ($matched, $last) = poll_sql($node,
	"SELECT cl_active, cl_waiting, sv_active FROM pgbun.pools "
	  . "WHERE database = 'postgres' AND \"user\" = 'alice'",
	'3|0|3');
ok($matched, 'pgbun.pools: cl_active = 3, cl_waiting = 0, sv_active = 3 with three held sessions')
  or diag("last pools row: $last");

# The backends pgbun opened are the alice backends the server sees.
my $server_pids = $node->safe_psql('postgres',
	"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity "
	  . "WHERE usename = 'alice' AND backend_type = 'client backend'");
is($server_pids, join(',', sort { $a <=> $b } @pids),
	'the server\'s alice backends are exactly the sessions\' backends');

is( $node->safe_psql('postgres',
		"SELECT string_agg(remote_pid::text, ',' ORDER BY remote_pid) FROM pgbun.servers "
		  . "WHERE \"user\" = 'alice' AND database = 'postgres' AND state = 'active'"),
	join(',', sort { $a <=> $b } @pids),
	'pgbun.servers: one active row per session, remote_pid = its backend pid');

is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.clients "
		  . "WHERE \"user\" = 'alice' AND database = 'postgres' AND state = 'active'"),
	'3', 'pgbun.clients: three active alice clients');

is( $node->safe_psql('postgres',
		"SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pgbun.clients "
		  . "WHERE \"user\" = 'alice'"),
	'pgbun_t010_1,pgbun_t010_2,pgbun_t010_3',
	'pgbun.clients shows each client\'s application_name');

# Client rows link to server rows and back.
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pgbun.clients c JOIN pgbun.servers s "
		  . "ON c.link = s.ptr AND s.link = c.ptr WHERE c.\"user\" = 'alice'"),
	'3', 'every held client is linked to its own server and back');

# The views can also be read through the pooler itself (alice has pg_monitor).
my ($seen_self) = $sessions[0]->query(
	"SELECT count(*) FROM pgbun.servers WHERE remote_pid = pg_backend_pid()");
is($seen_self, '1', 'a session sees its own server in pgbun.servers');

# --- close them: the counts drop
$_->quit foreach @sessions;
($matched, $last) = poll_sql($node,
	"SELECT coalesce(sum(cl_active), 0) || '|' || coalesce(sum(sv_active), 0) FROM pgbun.pools "
	  . "WHERE database = 'postgres' AND \"user\" = 'alice'",
	'0|0');
ok($matched, 'after the sessions quit: cl_active = 0 and sv_active = 0')
  or diag("last: $last");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'alice'", '0');
ok($matched, 'after the sessions quit: no alice rows in pgbun.clients')
  or diag("last: $last");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FROM pgbun.servers WHERE \"user\" = 'alice' AND state = 'active'",
	'0');
ok($matched, 'after the sessions quit: no active alice servers') or diag("last: $last");
($matched, $last) = poll_sql($node,
	"SELECT count(*) FILTER (WHERE state = 'idle') || '/' || count(*) FROM pgbun.servers "
	  . "WHERE \"user\" = 'alice' AND database = 'postgres'",
	'3/3');
ok($matched, 'the three released servers are back in the pool, idle') or diag("last: $last");

# Released servers stay pooled (server_idle_timeout is 10 min): the next
# session reuses one of them instead of opening a new backend, and finds
# none of the previous session's state on it (server_reset_query).
($rc, $out, $err) = pgbun_psql(
	$node, q{SELECT pg_backend_pid(), current_setting('work_mem'),
  (SELECT count(*) FROM pg_class WHERE relname LIKE 'leftover%' AND relpersistence = 't'),
  (SELECT count(*) FROM pg_prepared_statements)},
	user => 'alice',
	password => 'alice-pw');
is($rc, 0, 'a new client after the sessions closed works') or diag($err);
my ($new_pid, $work_mem, $temp_tables, $prepared) = split /\|/, $out;
ok((grep { $_ eq ($new_pid // '') } @pids), 'the new client got one of the pooled server backends')
  or diag("got backend $out, pooled were @pids");
is($work_mem, $node->safe_psql('postgres', 'SHOW work_mem'),
	'the reused backend has the default work_mem again');
is($temp_tables, '0', 'the reused backend has no temp tables left');
is($prepared, '0', 'the reused backend has no prepared statements left');

# --- stats count what went through
($matched, $last) = poll_sql($node,
	"SELECT total_query_count >= 6 AND total_received > 0 AND total_sent > 0 "
	  . "FROM pgbun.stats WHERE database = 'postgres'",
	't');
ok($matched, 'pgbun.stats counts the queries and bytes of database postgres')
  or diag("last: $last");

# --- unknown database: 3D000 from pgbun
my $raw = raw_connect($node);
my $login = $raw->login(user => 'alice', password => 'alice-pw', database => 'no_such_db');
ok(!$login->{ok}, 'login to a database that does not exist fails');
is($login->{error}{C} // '', '3D000', 'unknown database: SQLSTATE 3D000')
  or diag(explain($login));
like($login->{error}{M} // '', qr/^pgbun:/, 'unknown database: message starts with pgbun:');
like($login->{error}{M} // '', qr/no_such_db/, 'unknown database: message names the database');
$raw->close;

($rc, $out, $err) = pgbun_psql($node, 'SELECT 1',
	user => 'alice', password => 'alice-pw', dbname => 'no_such_db');
isnt($rc, 0, 'psql to an unknown database fails');
like($err, qr/pgbun:.*no_such_db/, 'psql shows pgbun\'s error for the unknown database');

# --- a raw SCRAM login works too, and the pooler proves it knows the verifier
$raw = raw_connect($node);
$login = $raw->login(user => 'alice', password => 'alice-pw');
ok($login->{ok}, 'raw SCRAM login through pgbun') or diag(explain($login));
is_deeply($login->{auth}, [ 10, 11, 12, 0 ], 'raw login used SASL, SASLContinue, SASLFinal, Ok');
is($login->{scram_server_ok}, 1, 'pgbun\'s SCRAM server signature verifies');
ok(defined $login->{pid} && defined $login->{key}, 'pgbun sent BackendKeyData');
ok(defined $login->{params}{server_version}, 'pgbun sent ParameterStatus server_version');
my $res = $raw->query("SELECT 40 + 2");
is_deeply($res->{rows}, [ ['42'] ], 'raw query through pgbun returns 42');

# pgbun.clients shows where the client comes from and where it connected.
my $my_port = $raw->{sock}->sockport;
is( $node->safe_psql('postgres',
		"SELECT addr || ':' || local_addr || ':' || local_port || ':' || \"user\" FROM pgbun.clients WHERE port = $my_port"),
	'127.0.0.1:127.0.0.1:' . pgbun_port($node) . ':alice',
	'pgbun.clients: the raw client\'s address, port and pgbun\'s local address');
$raw->terminate;

# --- startup parameters are the client's own, also on a reused server
$node->safe_psql('postgres', 'CREATE DATABASE paramdb');
$node->safe_psql('paramdb', 'CREATE SCHEMA "s1, s2"; CREATE SCHEMA s3; GRANT USAGE ON SCHEMA "s1, s2", s3 TO alice; GRANT CREATE ON SCHEMA public TO alice');
my %first_params = (
	application_name => 'first_app',
	TimeZone => 'UTC',
	DateStyle => 'ISO, MDY',
	search_path => 's3');
my %second_params = (
	application_name => 'second_app',
	TimeZone => 'Asia/Tokyo',
	DateStyle => 'SQL, DMY',
	search_path => '"s1, s2", public');
my $settings_sql = "SELECT pg_backend_pid(), current_setting('application_name'), "
  . "current_setting('TimeZone'), current_setting('DateStyle'), current_setting('search_path')";

my $first = raw_connect($node);
$login = $first->login(user => 'alice', password => 'alice-pw', database => 'paramdb',
	params => [%first_params]);
ok($login->{ok}, 'first client with its own startup parameters') or diag(explain($login));
my $frow = $first->query($settings_sql)->{rows}[0] // [];
is_deeply([ @$frow[ 1 .. 4 ] ], [ @first_params{qw(application_name TimeZone DateStyle search_path)} ],
	'the first client\'s session has its startup parameters');
$first->terminate;
($matched, $last) = poll_sql($node,
	"SELECT count(*) FILTER (WHERE state = 'idle') || '/' || count(*) FROM pgbun.servers WHERE database = 'paramdb'",
	'1/1');
ok($matched, 'paramdb\'s one server is back in the pool') or diag("last: $last");

my $second = raw_connect($node);
$login = $second->login(user => 'alice', password => 'alice-pw', database => 'paramdb',
	params => [%second_params]);
ok($login->{ok}, 'second client with different startup parameters') or diag(explain($login));
is($login->{params}{TimeZone} // '', 'Asia/Tokyo', 'ParameterStatus TimeZone is the second client\'s');
is($login->{params}{DateStyle} // '', 'SQL, DMY', 'ParameterStatus DateStyle is the second client\'s');
is($login->{params}{application_name} // '', 'second_app',
	'ParameterStatus application_name is the second client\'s');
my $srow = $second->query($settings_sql)->{rows}[0] // [];
is($srow->[0], $frow->[0], 'the second client reuses the first client\'s server backend');
is_deeply([ @$srow[ 1 .. 4 ] ], [ @second_params{qw(application_name TimeZone DateStyle search_path)} ],
	'the second client\'s session has its own startup parameters, not the first\'s');
my $tz = $second->query("SELECT to_char(timestamptz '2024-01-01 00:00:00+00', 'HH24')");
is_deeply($tz->{rows}, [ ['09'] ], 'and they are in effect (Tokyo time)');
$second->terminate;

# --- a client that vanishes inside a transaction leaves nothing behind
foreach my $case (
	[ 'an open transaction', "BEGIN; CREATE TABLE vanished (x int); INSERT INTO vanished VALUES (1)", 'T' ],
	[ 'a failed transaction', "BEGIN; CREATE TABLE vanished (x int); SELECT 1/0", 'E' ])
{
	my ($label, $sql, $status) = @$case;
	my $quitter = raw_connect($node);
	ok($quitter->login(user => 'alice', password => 'alice-pw', database => 'paramdb')->{ok},
		"$label: client logs in");
	my $qres = $quitter->query($sql);
	is($qres->{txstatus} // '', $status, "$label: the client is in transaction state $status");
	$quitter->close;    # no Terminate, no ROLLBACK
	($matched, $last) = poll_sql($node,
		"SELECT count(*) FILTER (WHERE state = 'active') FROM pgbun.servers WHERE database = 'paramdb'", '0');
	ok($matched, "$label: its server is released") or diag("last: $last");

	my $next = raw_connect($node);
	$login = $next->login(user => 'alice', password => 'alice-pw', database => 'paramdb');
	ok($login->{ok}, "$label: the next client logs in") or diag(explain($login));
	is($login->{txstatus} // '', 'I', "$label: the next client starts outside any transaction");
	my $nres = $next->query("SELECT to_regclass('vanished') IS NULL, txid_current_if_assigned() IS NULL");
	is_deeply($nres->{rows}, [ [ 't', 't' ] ],
		"$label: the vanished client's table was rolled back and no transaction is open");
	is($nres->{txstatus} // '', 'I', "$label: the next client's query leaves it idle");
	$next->terminate;
}

# --- the Unix socket listener (in the server's socket directory)
($rc, $out, $err) = pgbun_psql($node,
	"SELECT current_user || ' via ' || coalesce(inet_client_addr()::text, 'the server socket')",
	user => 'alice',
	password => 'alice-pw',
	host => $node->host);
is($rc, 0, 'psql through pgbun\'s Unix socket') or diag($err);
is($out, 'alice via the server socket', 'the Unix socket client runs as alice');

check_server_same($node, $identity, 'end of 010');

stop_node($node);
done_testing();

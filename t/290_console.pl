# 290_console: the PgBouncer-compatible admin console on pgbun's port
# (databases "pgbouncer" and "pgbun"): every SHOW with PgBouncer's column
# names, values that agree with the SQL views at the same moment, the
# privilege rules (pg_monitor: SHOW; pgbun_admin / superuser: commands;
# others refused with 42501), PAUSE / RESUME / RELOAD taking effect, bad input
# answered with pgbun: errors, and Debian's prometheus-pgbouncer-exporter
# reading it unchanged.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use IO::Socket::INET;
use Time::HiRes qw(time);

my $node = pgbun_node(
	name => 'console',
	conf => { 'pgbun.pool_mode' => 'transaction', 'pgbun.max_client_conn' => '300' });
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; "
	  . "CREATE ROLE mon LOGIN PASSWORD 'mon-pw'; GRANT pg_monitor TO mon; "
	  . "CREATE ROLE adm LOGIN PASSWORD 'adm-pw'; GRANT pgbun_admin TO adm; "
	  . "CREATE ROLE nobody LOGIN PASSWORD 'nobody-pw'; "
	  . "CREATE ROLE app LOGIN PASSWORD 'app-pw'; "
	  . "CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'boss-pw'; "
	  . "CREATE ROLE viagroup NOINHERIT LOGIN PASSWORD 'vg-pw'; GRANT pg_monitor TO viagroup; "
	  . "CREATE TABLE t (x int); GRANT ALL ON t TO app;");
my $identity = server_identity($node);

# psql against the console, aligned output off, field separator |, with headers
sub console
{
	my ($sql, $user, $pw, %opts) = @_;
	return pgbun_psql($node, $sql, user => $user, password => $pw,
		dbname => $opts{dbname} // 'pgbouncer', on_error_stop => 0);
}

# The column names of a SHOW, as psql prints them with a header line.
sub columns_of
{
	my ($what, $user, $pw) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, "\\pset tuples_only off\nSHOW $what;",
		user => $user // 'mon', password => $pw // 'mon-pw', dbname => 'pgbouncer');
	return ($rc, (split /\n/, $out)[0] // '', $err);
}

# Some traffic first, so that pools, stats and connections exist.
my ($rc, $out, $err) = pgbun_psql($node, "INSERT INTO t VALUES (1); SELECT count(*) FROM t;",
	user => 'app', password => 'app-pw');
is($rc, 0, 'a client works through pgbun') or diag($err);

# --- columns as PgBouncer 1.25's, in order
my %columns = (
	POOLS => 'database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|load_balance_hosts',
	STATS => 'database|total_server_assignment_count|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|total_query_time|total_wait_time|total_client_parse_count|total_server_parse_count|total_bind_count|avg_server_assignment_count|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|avg_query_time|avg_wait_time|avg_client_parse_count|avg_server_parse_count|avg_bind_count|total_requests',
	STATS_TOTALS => 'database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|client_parse_count|server_parse_count|bind_count',
	STATS_AVERAGES => 'database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|avg_client_parse_count|avg_server_parse_count|avg_bind_count',
	TOTALS => 'name|value',
	CLIENTS => 'type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id',
	SERVERS => 'type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id',
	SOCKETS => 'type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id',
	DATABASES => 'name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool_size|server_lifetime|pool_mode|load_balance_hosts|max_connections|current_connections|max_client_connections|current_client_connections|paused|disabled|reserve_pool',
	USERS => 'name|pool_size|reserve_pool_size|pool_mode|max_user_connections|current_connections|max_user_client_connections|current_client_connections',
	CONFIG => 'key|value|default|changeable',
	LISTS => 'list|items',
	MEM => 'name|size|used|free|memtotal',
	VERSION => 'version',
	STATE => 'key|value',
	DNS_HOSTS => 'hostname|ttl|addrs',
);
foreach my $what (sort keys %columns)
{
	my ($c_rc, $header, $c_err) = columns_of($what);
	is($c_rc, 0, "SHOW $what runs") or diag($c_err);
	is($header, $columns{$what}, "SHOW $what has PgBouncer's columns");
}

# --- types: the RowDescription as a raw client sees it
{
	my $c = raw_connect($node);
	my $r = $c->login(user => 'mon', password => 'mon-pw', database => 'pgbouncer');
	ok($r->{ok}, 'raw client logs in to the console') or diag(explain($r));
	$c->send_bytes(PgbunTest::Raw::query_message('SHOW POOLS'));
	my @msgs = @{ read_until($c, 'Z') };
	my ($t) = grep { $_->{type} eq 'T' } @msgs;
	ok($t, 'SHOW POOLS sends a RowDescription');
	# column 3 (cl_active) is int4 (23), column 1 text (25), as PgBouncer
	my $body = $t->{body};
	my $ncols = unpack('n', $body);
	my $pos = 2;
	my @types;
	for (1 .. $ncols)
	{
		my $end = index($body, "\0", $pos);
		$pos = $end + 1;
		my ($tbl, $col, $type) = unpack('N n N', substr($body, $pos, 10));
		push @types, $type;
		$pos += 18;
	}
	is($types[0], 25, 'database is text');
	is($types[2], 23, 'cl_active is int4');
	is($types[15], 25, 'pool_mode is text');
	my @tags = map { $_->{type} } @msgs;
	is($tags[-2], 'C', 'CommandComplete before ReadyForQuery');

	# the extended protocol is refused, then skipped until Sync, then the console goes on
	$c->send_bytes(parse_msg('', 'SHOW POOLS') . bind_msg('', '') . execute_msg() . sync_msg());
	@msgs = @{ read_until($c, 'Z') };
	is(join('', map { $_->{type} } @msgs), 'EZ', 'extended protocol: one error, then ReadyForQuery');
	is(first_error(\@msgs)->{C}, '0A000', 'extended protocol refused with 0A000');
	like(first_error(\@msgs)->{M}, qr/^pgbun: /, 'the message starts with pgbun:');
	$c->send_bytes(PgbunTest::Raw::query_message('SHOW VERSION'));
	@msgs = @{ read_until($c, 'Z') };
	is(join('', map { $_->{type} } @msgs), 'TDCZ', 'the console answers again after Sync');
	$c->send_bytes(PgbunTest::Raw::query_message(''));
	@msgs = @{ read_until($c, 'Z') };
	is(join('', map { $_->{type} } @msgs), 'IZ', 'an empty query gets EmptyQueryResponse');
	$c->close;
}

# --- values agree with the SQL views at the same moment
sub views
{
	return $node->safe_psql('postgres', $_[0]);
}
($rc, $out, $err) = console('SHOW POOLS', 'mon', 'mon-pw');
my ($pool_line) = grep { /^postgres\|app\|/ } split /\n/, $out;
my $view_line = views(
	"SELECT database, \"user\", cl_active, cl_waiting, sv_active, sv_idle, sv_used, sv_tested, sv_login, pool_mode FROM pgbun.pools WHERE \"user\" = 'app'");
my @p = split /\|/, ($pool_line // '');
is(join('|', @p[0, 1, 2, 3, 6, 9, 10, 11, 12, 15]), $view_line, 'SHOW POOLS agrees with pgbun.pools');

($rc, $out, $err) = console('SHOW STATS_TOTALS', 'mon', 'mon-pw');
my ($stats_line) = grep { /^postgres\|/ } split /\n/, $out;
my @s = split /\|/, ($stats_line // '');
my $view_stats = views(
	"SELECT total_xact_count, total_query_count, total_received, total_sent, total_client_parse_count FROM pgbun.stats WHERE database = 'postgres'");
is(join('|', @s[2, 3, 4, 5, 9]), $view_stats, 'SHOW STATS_TOTALS agrees with pgbun.stats');
cmp_ok($s[1] // 0, '>=', 1, 'server_assignment_count counts the links');

# SHOW CLIENTS lists the console client itself and no other client now
($rc, $out, $err) = console('SHOW CLIENTS', 'mon', 'mon-pw');
my @clients = split /\n/, $out;
is(scalar(@clients), 1, 'SHOW CLIENTS: one client (the console itself)');
my $ids_console = join(',', sort map { (split /\|/)[14] } @clients);
isnt($ids_console, '', 'SHOW CLIENTS gives the connection id in ptr');

($rc, $out, $err) = console('SHOW SERVERS', 'mon', 'mon-pw');
my $srv_console = join(',', sort map { (split /\|/)[14] } grep { length } split /\n/, $out);
my $srv_view = views("SELECT coalesce(string_agg(ptr, ',' ORDER BY ptr), '') FROM pgbun.servers");
is($srv_console, $srv_view, 'SHOW SERVERS lists the connections pgbun.servers lists');

($rc, $out, $err) = console('SHOW CONFIG', 'mon', 'mon-pw');
like($out, qr/^pool_mode\|transaction\|session\|yes$/m, 'SHOW CONFIG: key, value, default, changeable');
like($out, qr/^workers\|1\|1\|no$/m, 'SHOW CONFIG: workers needs a restart');

($rc, $out, $err) = console('SHOW LISTS', 'mon', 'mon-pw');
like($out, qr/^pools\|1$/m, 'SHOW LISTS counts the pool');
like($out, qr/^used_clients\|1$/m, 'SHOW LISTS counts the console client');

($rc, $out, $err) = console('SHOW VERSION', 'mon', 'mon-pw');
like($out, qr/^pgbun \S+ .*PgBouncer/, 'SHOW VERSION names pgbun');

($rc, $out, $err) = console('show databases;', 'mon', 'mon-pw', dbname => 'pgbun');
like($out, qr/^postgres\|/m, 'database "pgbun" is the console too; lower case and ; accepted');

# --- errors
($rc, $out, $err) = console('SHOW NOSUCH', 'mon', 'mon-pw');
like($err, qr/pgbun: unknown SHOW item "nosuch"/, 'unknown SHOW item: pgbun: error');
($rc, $out, $err) = console('FROBNICATE', 'mon', 'mon-pw');
like($err, qr/pgbun: unknown console command "frobnicate"/, 'unknown command: pgbun: error');
{
	my $c = raw_connect($node);
	$c->login(user => 'mon', password => 'mon-pw', database => 'pgbouncer');
	$c->send_bytes(PgbunTest::Raw::query_message('FROBNICATE'));
	my @msgs = @{ read_until($c, 'Z') };
	is(first_error(\@msgs)->{C}, '42601', 'unknown command: 42601');
	$c->send_bytes(PgbunTest::Raw::query_message('PAUSE'));
	@msgs = @{ read_until($c, 'Z') };
	is(first_error(\@msgs)->{C}, '42501', 'pg_monitor member: PAUSE refused with 42501');
	$c->close;
}

# --- privileges
{
	my $r = raw_connect($node)->login(user => 'nobody', password => 'nobody-pw', database => 'pgbouncer');
	ok(!$r->{ok}, 'a role without pg_monitor cannot use the console');
	is($r->{error}{C} // '', '42501', 'refused with 42501 after authenticating');
	like($r->{error}{M} // '', qr/^pgbun: permission denied/, 'with a pgbun: message');
	$r = raw_connect($node)->login(user => 'nobody', password => 'wrong', database => 'pgbouncer');
	is($r->{error}{C} // '', '28P01', 'a wrong password is still 28P01');
	$r = raw_connect($node)->login(user => 'viagroup', password => 'vg-pw', database => 'pgbouncer');
	is($r->{error}{C} // '', '42501', 'a NOINHERIT member of pg_monitor has not its privileges (as has_privs_of_role)');
	$r = raw_connect($node)->login(user => 'adm', password => 'adm-pw', database => 'pgbouncer');
	ok($r->{ok}, 'a pgbun_admin member may use the console (pgbun_admin has pg_monitor)');
}

# --- PAUSE / RESUME / RELOAD as a pgbun_admin member
($rc, $out, $err) = console('SHOW STATE', 'adm', 'adm-pw');
like($out, qr/^paused\|no$/m, 'SHOW STATE: not paused');
($rc, $out, $err) = console("PAUSE postgres", 'adm', 'adm-pw');
is($rc, 0, 'PAUSE postgres as a pgbun_admin member') or diag($err);
{
	# a paused database: a new transaction waits; RESUME lets it through
	my $s = pgbun_session($node, user => 'app', password => 'app-pw');
	ok($s->connected, 'a client connects while its database is paused');
	$s->send("SELECT 42;\n");
	ok(!$s->wait_output(qr/42/, secs => 2), 'its query waits while the database is paused');
	($rc, $out, $err) = console("SHOW DATABASES", 'mon', 'mon-pw');
	like($out, qr/^postgres\|.*\|1\|0\|0$/m, 'SHOW DATABASES: paused = 1');
	($rc, $out, $err) = console("RESUME postgres", 'adm', 'adm-pw');
	is($rc, 0, 'RESUME postgres') or diag($err);
	ok($s->wait_output(qr/42/, secs => 30), 'the query runs after RESUME');
	$s->quit;
}
($rc, $out, $err) = console('PAUSE', 'adm', 'adm-pw');
($rc, $out, $err) = console('SHOW STATE', 'mon', 'mon-pw');
like($out, qr/^paused\|yes$/m, 'PAUSE (all): SHOW STATE says paused');
($rc, $out, $err) = console('RESUME', 'adm', 'adm-pw');
($rc, $out, $err) = console('SHOW STATE', 'mon', 'mon-pw');
like($out, qr/^paused\|no$/m, 'RESUME (all): not paused any more');

$node->append_conf('postgresql.conf', "pgbun.default_pool_size = 7\n");
($rc, $out, $err) = console('RELOAD', 'boss', 'boss-pw');
is($rc, 0, 'RELOAD as a superuser (not a member of pgbun_admin)') or diag($err);
is($err, '', 'RELOAD answers without an error');
ok( wait_until(
		sub {
			my (undef, $o) = console('SHOW CONFIG', 'mon', 'mon-pw');
			return ($o // '') =~ /^default_pool_size\|7\|/m;
		}),
	'RELOAD re-read postgresql.conf: SHOW CONFIG shows the new value');

# --- a large answer streams out whole: many clients, SHOW CLIENTS
{
	my @conns;
	for (1 .. 150)
	{
		my $c = raw_connect($node);
		push @conns, $c if $c->login(user => 'app', password => 'app-pw', database => 'postgres')->{ok};
	}
	is(scalar(@conns), 150, '150 clients connected');
	($rc, $out, $err) = console('SHOW CLIENTS', 'mon', 'mon-pw');
	is(scalar(grep { /^C\|app\|postgres\|/ } split /\n/, $out), 150, 'SHOW CLIENTS lists all 150');
	$_->close foreach @conns;
}

# --- Debian's prometheus-pgbouncer-exporter, unchanged, against the console
SKIP:
{
	skip 'prometheus-pgbouncer-exporter is not installed', 4
	  unless -x '/usr/bin/prometheus-pgbouncer-exporter';
	my $mport = PostgreSQL::Test::Cluster::get_free_port();
	my $h = IPC::Run::start(
		[
			'/usr/bin/prometheus-pgbouncer-exporter', '--host', '127.0.0.1',
			'--port', $mport, '--pgbouncer-host', '127.0.0.1',
			'--pgbouncer-port', pgbun_port($node), '--pgbouncer-user', 'mon'
		],
		'>', "$PostgreSQL::Test::Utils::tmp_check/exporter.out",
		'2>', "$PostgreSQL::Test::Utils::tmp_check/exporter.err",
		init => sub { $ENV{PGPASSWORD} = 'mon-pw'; delete $ENV{PGPASSFILE}; });
	my $metrics = '';
	wait_until(
		sub {
			my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 2)
			  or return 0;
			print $sock "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
			local $/;
			$metrics = <$sock> // '';
			return $metrics =~ /pgbouncer_active_clients/;
		});
	$h->kill_kill;
	like($metrics, qr/^pgbouncer_active_clients\{database="postgres",user="app"\} \d/m,
		'exporter: pool metrics of the pooled database')
	  or diag("exporter stderr: " . slurp_file("$PostgreSQL::Test::Utils::tmp_check/exporter.err") . "\n$metrics");
	like($metrics, qr/^pgbouncer_requests_total\{database="postgres"\} [1-9]/m, 'exporter: stats metrics');
	like($metrics, qr/^pgbouncer_pools \d/m, 'exporter: list metrics');
	like($metrics, qr/^pgbouncer_pool_size\{database="postgres"\} \d/m, 'exporter: database metrics');
}

# --- the extension's upgrade path: 1.0 then UPDATE gives what CREATE EXTENSION gives
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', "CREATE EXTENSION pgbun VERSION '1.0'");
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'pgbun'"), '1.0', 'version 1.0 installs');
$node->safe_psql('upgraded', "ALTER EXTENSION pgbun UPDATE TO '1.1'");
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'pgbun'"), '1.1',
	'ALTER EXTENSION UPDATE TO 1.1 (pgbun_admin existed already: no error)');
is($node->safe_psql('upgraded', "SELECT has_function_privilege('pgbun_admin', 'pgbun.pause(text)', 'EXECUTE')"),
	't', 'pgbun_admin may call pgbun.pause()');

check_server_same($node, $identity, 'after the console tests');
stop_node($node);
done_testing();

# 291_console_commands: the admin console's commands that act on clients and
# servers, with pgbun.workers = 2 so that every one must reach both workers
# through shared memory:
#
#  - privileges: a pg_monitor member gets 42501 for each command and changes
#    nothing; pgbun_admin members and superusers may; wrong arguments and
#    unknown commands get pgbun: errors with their SQLSTATEs;
#  - DISABLE db refuses new logins (55000), existing clients go on, SHOW
#    DATABASES' disabled column follows; ENABLE lets logins in again;
#  - RECONNECT db closes idle servers at once and busy ones when released
#    (backend pids change; a client inside a transaction keeps its server
#    until the transaction ends);
#  - KILL_CLIENT id closes that client (57P01) and no other, whichever worker
#    holds it, also one waiting for a server or the console connection itself;
#  - KILL db closes every client and server of db at once (57P01), other
#    databases go on, the database stays paused until RESUME;
#  - SHUTDOWN stops every pgbun worker (not restarted), the server goes on:
#    no crash restart, direct sessions keep their backends; pgbun is back
#    after the server restarts.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IO::Socket::INET;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'console_cmds',
	conf => {
		'pgbun.workers' => '2',
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '20',
		'pgbun.max_client_conn' => '200',
		'pgbun.databases' => 'other = pool_mode=session',
	});
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; "
	  . "CREATE ROLE mon LOGIN PASSWORD 'mon-pw'; GRANT pg_monitor TO mon; "
	  . "CREATE ROLE adm LOGIN PASSWORD 'adm-pw'; GRANT pgbun_admin TO adm; "
	  . "CREATE ROLE app LOGIN PASSWORD 'app-pw'; "
	  . "CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'boss-pw'; "
	  . "CREATE TABLE t (x int); GRANT ALL ON t TO app;");
$node->safe_psql('postgres', 'CREATE DATABASE other');
my @wpids = split /\n/, worker_pid($node);
is(scalar @wpids, 2, 'two pgbun workers are running');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A raw console connection (the answers of its queries: tags, rows, error).
sub console_conn
{
	my ($user, $pw) = @_;
	my $c = raw_connect($node);
	my $r = $c->login(user => $user, password => $pw, database => 'pgbouncer');
	ok($r->{ok}, "$user logs in to the console") or diag(explain($r));
	return $c;
}

# A raw client of app, with an application_name to find it by.
sub app_client
{
	my ($name, $db) = @_;
	my $c = raw_connect($node);
	my $r = $c->login(user => 'app', password => 'app-pw', database => $db // 'postgres',
		params => [ application_name => $name ]);
	return $r->{ok} ? $c : undef;
}

# At least $min clients named "$prefix<n>", opened until they sit on both
# workers (the kernel's SO_REUSEPORT hash decides). Returns the list.
sub spread_clients
{
	my ($prefix, $min, $db) = @_;
	my @cs;
	for my $i (1 .. 40)
	{
		my $c = app_client("$prefix$i", $db);
		die "client $prefix$i cannot log in" unless $c;
		push @cs, $c;
		next if @cs < $min;
		last if sql("SELECT count(DISTINCT worker) FROM pgbun.clients WHERE application_name LIKE '$prefix%'") eq '2';
	}
	is(sql("SELECT count(DISTINCT worker) FROM pgbun.clients WHERE application_name LIKE '$prefix%'"),
		'2', "clients $prefix* are on both workers");
	return @cs;
}

sub backend_pid
{
	my ($c) = @_;
	my $r = $c->query('SELECT pg_backend_pid()');
	return $r->{rows}[0][0] // 'none';
}

# app's backends on the server (all of them are pgbun's server connections).
sub app_backends
{
	my ($db) = @_;
	return sql("SELECT coalesce(string_agg(pid::text, ',' ORDER BY pid), '') FROM pg_stat_activity "
		  . "WHERE usename = 'app' AND datname = '" . ($db // 'postgres') . "'");
}

# Wait for the FATAL a closed client gets, then EOF: its SQLSTATE and message.
sub closed_with
{
	my ($c) = @_;
	my @msgs = @{ read_until($c, 'E', 30) };
	my $e = first_error(\@msgs);
	my $after = $c->read_message(30);
	return ($e->{C} // 'none', $e->{M} // '', $after->{eof} ? 1 : 0);
}

my $adm = console_conn('adm', 'adm-pw');
my $mon = console_conn('mon', 'mon-pw');
my $boss = console_conn('boss', 'boss-pw');

############ privileges and bad arguments

foreach my $cmd ('RECONNECT', 'RECONNECT postgres', 'DISABLE postgres', 'ENABLE postgres',
	'KILL postgres', 'KILL', 'KILL_CLIENT 1', 'SHUTDOWN')
{
	my $r = $mon->query($cmd);
	is($r->{error}{C} // 'none', '42501', "pg_monitor member: $cmd refused with 42501");
	like($r->{error}{M} // '', qr/^pgbun: permission denied/, "... with a pgbun: message");
}
{
	my $c = app_client('still-enabled');
	ok($c, 'the refused DISABLE changed nothing: logins work');
	$c->terminate if $c;
	is(scalar(@wpids), scalar(split /\n/, worker_pid($node)), 'the refused SHUTDOWN stopped nothing');
}

my %bad = (
	'KILL_CLIENT abc' => [ '22023', qr/^pgbun: invalid client id "abc"/ ],
	'KILL_CLIENT' => [ '22023', qr/^pgbun: invalid client id ""/ ],
	'KILL_CLIENT -5' => [ '22023', qr/^pgbun: invalid client id/ ],
	'KILL_CLIENT 12abc' => [ '22023', qr/^pgbun: invalid client id/ ],
	'KILL_CLIENT 987654321' => [ '42704', qr/^pgbun: client 987654321 not found/ ],
	'DISABLE' => [ '42601', qr/^pgbun: DISABLE requires a database name/ ],
	'ENABLE' => [ '42601', qr/^pgbun: ENABLE requires a database name/ ],
	'DISABLE a b' => [ '42601', qr/^pgbun: too many arguments to disable/ ],
	'DISABLE pgbouncer' => [ '42809', qr/^pgbun: cannot disable the admin console/ ],
	'KILL pgbun' => [ '42809', qr/^pgbun: cannot kill the admin console/ ],
	'RECONNECT pgbouncer' => [ '42809', qr/^pgbun: cannot reconnect the admin console/ ],
	'SHUTDOWN now' => [ '42601', qr/^pgbun: SHUTDOWN takes no argument/ ],
	'SHUTDOWN WAIT_FOR_CLIENTS' => [ '0A000', qr/^pgbun: SHUTDOWN wait_for_clients is not supported/ ],
	'FROBNICATE' => [ '42601', qr/^pgbun: unknown console command "frobnicate"/ ],
);
foreach my $cmd (sort keys %bad)
{
	my $r = $adm->query($cmd);
	is($r->{error}{C} // 'none', $bad{$cmd}[0], "$cmd: $bad{$cmd}[0]");
	like($r->{error}{M} // '', $bad{$cmd}[1], "$cmd: message");
	ok($r->{ok}, "$cmd: ReadyForQuery follows, the console goes on");
}
# a server connection's id is no client's
{
	my $c = app_client('srv');
	backend_pid($c);
	my $sid = sql("SELECT ptr FROM pgbun.servers LIMIT 1");
	my $r = $adm->query('KILL_CLIENT ' . hex($sid));
	is($r->{error}{C} // 'none', '42704', 'KILL_CLIENT of a server connection id: not found');
	is(backend_pid($c) =~ /^\d+$/ ? 'alive' : 'dead', 'alive', 'and nothing was closed');
	$c->terminate;
}

############ DISABLE / ENABLE

{
	my @old = spread_clients('dis', 4);
	backend_pid($_) foreach @old;
	my $r = $adm->query('DISABLE postgres');
	is_deeply($r->{tags}, ['DISABLE'], 'DISABLE postgres as a pgbun_admin member') or diag(explain($r));

	my @refusals;
	for (1 .. 8)
	{
		my $c = raw_connect($node);
		my $l = $c->login(user => 'app', password => 'app-pw', database => 'postgres');
		push @refusals, ($l->{error}{C} // ($l->{ok} ? 'logged in' : 'closed')) . ' ' . ($l->{error}{M} // '');
		$c->close;
	}
	is_deeply(\@refusals, [ ('55000 pgbun: database "postgres" is disabled') x 8 ],
		'new logins to a disabled database are refused, on either worker');
	is(join(',', map { backend_pid($_) =~ /^\d+$/ ? 'ok' : 'failed' } @old), join(',', ('ok') x @old),
		'clients connected before DISABLE go on');
	my $o = app_client('other-db', 'other');
	ok($o, 'another database still takes logins');
	$o->terminate if $o;
	my $cons = raw_connect($node)->login(user => 'mon', password => 'mon-pw', database => 'pgbouncer');
	ok($cons->{ok}, 'the console still takes logins');

	$r = $adm->query('DISABLE nosuchdb');
	is_deeply($r->{tags}, ['DISABLE'], 'DISABLE a database without a pool');
	$r = $mon->query('SHOW DATABASES');
	my %disabled = map { $_->[0] => $_->[16] } @{ $r->{rows} };
	is($disabled{postgres} // 'missing', '1', 'SHOW DATABASES: postgres disabled = 1');
	is($disabled{nosuchdb} // 'missing', '1', 'SHOW DATABASES lists a disabled database without a pool');

	$r = $adm->query('ENABLE postgres');
	is_deeply($r->{tags}, ['ENABLE'], 'ENABLE postgres');
	$adm->query('ENABLE nosuchdb');
	my @back;
	for (1 .. 4)
	{
		my $c = app_client('enabled');
		push @back, $c ? backend_pid($c) =~ /^\d+$/ ? 'ok' : 'no query' : 'refused';
		$c->terminate if $c;
	}
	is(join(',', @back), 'ok,ok,ok,ok', 'after ENABLE new logins work again');
	$r = $mon->query('SHOW DATABASES');
	%disabled = map { $_->[0] => $_->[16] } @{ $r->{rows} };
	is($disabled{postgres} // 'missing', '0', 'SHOW DATABASES: postgres disabled = 0');
	ok(!exists $disabled{nosuchdb}, 'an enabled database without a pool is not listed any more');
	$_->terminate foreach @old;
}

############ RECONNECT

{
	my @cs = spread_clients('rc', 4);
	my %old_pid;
	$old_pid{ backend_pid($_) } = 1 foreach @cs;
	my $tx = app_client('rc-tx');
	$tx->query('BEGIN');
	$tx->query('CREATE TEMP TABLE seen (i int)');
	my $tx_pid = backend_pid($tx);
	$old_pid{$tx_pid} = 1;
	is(sql("SELECT count(DISTINCT worker) FROM pgbun.servers WHERE database = 'postgres'"), '2',
		'servers of postgres exist on both workers');
	my $before = app_backends();
	like($before, qr/,/, "several server connections before RECONNECT ($before)");

	my $r = $adm->query('RECONNECT postgres');
	is_deeply($r->{tags}, ['RECONNECT'], 'RECONNECT postgres') or diag(explain($r));
	my ($ok, $last) = poll_sql($node,
		"SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE usename = 'app' AND datname = 'postgres'",
		$tx_pid);
	ok($ok, 'idle servers of both workers closed at once; the one inside a transaction stays')
	  or diag("left: $last");

	$r = $tx->query("INSERT INTO seen VALUES (1); SELECT count(*) || ':' || pg_backend_pid() FROM seen");
	is($r->{rows}[0][0] // $r->{error}{M}, "1:$tx_pid", 'the client in a transaction goes on, on the same server');
	$r = $tx->query('COMMIT');
	is_deeply($r->{tags}, ['COMMIT'], 'and commits');
	($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $tx_pid", '0');
	ok($ok, 'its server is closed once released');

	my @new = map { backend_pid($_) } @cs, $tx;
	is(scalar(grep { !/^\d+$/ || $old_pid{$_} } @new), 0,
		'every client gets a new server connection after RECONNECT (' . join(',', @new) . ')');

	# without a database: every pool
	my %pids = map { $_ => 1 } @new;
	$r = $adm->query('RECONNECT');
	is_deeply($r->{tags}, ['RECONNECT'], 'RECONNECT (all databases) as pgbun_admin');
	($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'", '0');
	ok($ok, 'RECONNECT without a database closes every idle server') or diag("left: $last");
	my $again = backend_pid($cs[0]);
	ok($again =~ /^\d+$/ && !$pids{$again}, 'and the next transaction gets a new one');
	$_->terminate foreach @cs, $tx;
}

# session mode (database other): a server stays with its client until it disconnects
{
	my $s1 = app_client('rs1', 'other');
	my $p1 = backend_pid($s1);
	my $s2 = app_client('rs2', 'other');
	my $p2 = backend_pid($s2);
	$s2->terminate;
	my ($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pgbun.servers WHERE database = 'other' AND state = 'idle'", '1');
	ok($ok, 'session mode: the server of a client that left is idle') or diag("last: $last");
	my $r = $adm->query('RECONNECT other');
	is_deeply($r->{tags}, ['RECONNECT'], 'RECONNECT other');
	($ok, $last) = poll_sql($node,
		"SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE usename = 'app' AND datname = 'other'",
		$p1);
	ok($ok, 'session mode: the idle server is closed, the one of a connected client stays') or diag("left: $last");
	is(backend_pid($s1), $p1, 'the session client keeps its server');
	$s1->terminate;
	($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = 'other'", '0');
	ok($ok, 'session mode: its server is closed when the client leaves, not reused') or diag("left: $last");
	my $s3 = app_client('rs3', 'other');
	my $p3 = backend_pid($s3);
	ok($p3 =~ /^\d+$/ && $p3 != $p1 && $p3 != $p2, 'the next session gets a new server connection');
	$s3->terminate;
}

############ KILL_CLIENT

{
	my @cs = spread_clients('kc', 4);
	backend_pid($_) foreach @cs;
	my %id_of = map { $_->[18] => $_->[20] } grep { ($_->[18] // '') =~ /^kc/ } @{ $mon->query('SHOW CLIENTS')->{rows} };
	is(scalar(keys %id_of), scalar(@cs), 'SHOW CLIENTS lists them with their id');
	my %worker_of = map { split /\|/ } split /\n/,
	  sql("SELECT application_name || '|' || worker FROM pgbun.clients WHERE application_name LIKE 'kc%'");
	# one victim on each worker; the others survive
	my %victims;
	for my $i (0 .. $#cs)
	{
		my $w = $worker_of{"kc" . ($i + 1)};
		$victims{$i} = 1 unless grep { $worker_of{"kc" . ($_ + 1)} eq $w } keys %victims;
	}
	is(scalar(keys %victims), 2, 'one victim on each worker');
	foreach my $i (sort keys %victims)
	{
		my $name = "kc" . ($i + 1);
		my $r = $adm->query("KILL_CLIENT $id_of{$name}");
		is_deeply($r->{tags}, ['KILL_CLIENT'], "KILL_CLIENT $id_of{$name} (worker $worker_of{$name})")
		  or diag(explain($r));
		my ($code, $msg, $eof) = closed_with($cs[$i]);
		is($code, '57P01', "$name is closed with 57P01");
		like($msg, qr/^pgbun: terminating connection due to administrator command/, '... and a pgbun: message');
		ok($eof, '... then the connection ends');
	}
	my @others = map { $cs[$_] } grep { !$victims{$_} } 0 .. $#cs;
	is(join(',', map { backend_pid($_) =~ /^\d+$/ ? 'ok' : 'gone' } @others), join(',', ('ok') x @others),
		'the other clients are not touched');
	is(sql("SELECT count(*) FROM pgbun.clients WHERE application_name LIKE 'kc%'"), scalar(@others),
		'pgbun.clients no longer lists the killed ones');
	my $gone = $id_of{ "kc" . ((sort keys %victims)[0] + 1) };
	my $r = $adm->query("KILL_CLIENT $gone");
	is($r->{error}{C} // 'none', '42704', 'a second KILL_CLIENT of the same id: not found');
	$_->terminate foreach @others;

	# a client waiting for a server (its database paused)
	$r = $adm->query('PAUSE postgres');
	is_deeply($r->{tags}, ['PAUSE'], 'PAUSE postgres');
	my $w = app_client('kc-waiting');
	$w->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
	ok(wait_until(sub { sql("SELECT state FROM pgbun.clients WHERE application_name = 'kc-waiting'") eq 'waiting' }),
		'a client waits for a server');
	my $wid = sql("SELECT ('x' || lpad(ptr, 16, '0'))::bit(64)::bigint FROM pgbun.clients WHERE application_name = 'kc-waiting'");
	$r = $boss->query("KILL_CLIENT $wid");
	is_deeply($r->{tags}, ['KILL_CLIENT'], 'KILL_CLIENT of a waiting client, as a superuser (ptr of pgbun.clients is the id in hex)');
	my ($code) = closed_with($w);
	is($code, '57P01', 'the waiting client is closed');
	$r = $adm->query('RESUME postgres');
	is_deeply($r->{tags}, ['RESUME'], 'RESUME postgres');

	# a console client closing itself: the connection ends, the worker goes on
	my $self = console_conn('adm', 'adm-pw');
	# console clients have no pool (database NULL); the newest is this one
	my @console_ids = map { $_->[20] } grep { !defined $_->[2] } @{ $self->query('SHOW CLIENTS')->{rows} };
	my $me = (sort { $b <=> $a } @console_ids)[0];
	$self->send_bytes(PgbunTest::Raw::query_message("KILL_CLIENT $me"));
	($code) = closed_with($self);
	is($code, '57P01', 'KILL_CLIENT of the console connection itself closes it');
	is(scalar(split /\n/, worker_pid($node)), 2, 'both workers still run');
	$r = $adm->query('SHOW VERSION');
	ok($r->{ok}, 'the other console connection goes on');
}

############ KILL db

{
	my @cs = spread_clients('kill', 4);
	backend_pid($_) foreach @cs;
	my $tx = app_client('kill-tx');
	$tx->query('BEGIN');
	backend_pid($tx);
	my $o = app_client('kill-other', 'other');
	my $o_pid = backend_pid($o);
	my $pids = app_backends();
	like($pids, qr/,/, "servers of postgres before KILL ($pids)");

	my $r = $adm->query('KILL postgres');
	is_deeply($r->{tags}, ['KILL'], 'KILL postgres') or diag(explain($r));
	my @closed = map { join(' ', (closed_with($_))[0, 2]) } @cs, $tx;
	is_deeply(\@closed, [ ('57P01 1') x (@cs + 1) ],
		'every client of postgres, on both workers, idle or in a transaction, gets 57P01 and is closed');
	is(sql("SELECT count(*) FROM pgbun.clients WHERE database = 'postgres'"), '0', 'no client of postgres is left');
	is(sql("SELECT count(*) FROM pgbun.servers WHERE database = 'postgres'"), '0',
		'no server connection of postgres is left in pgbun');
	my ($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = 'postgres'", '0');
	ok($ok, 'their backends are gone') or diag("left: $last");
	is(backend_pid($o), $o_pid, 'a client of another database goes on, on the same server');

	$r = $mon->query('SHOW DATABASES');
	my %paused = map { $_->[0] => $_->[15] } @{ $r->{rows} };
	is($paused{postgres} // 'missing', '1', 'SHOW DATABASES: postgres is paused after KILL');
	my $s = pgbun_session($node, user => 'app', password => 'app-pw');
	ok($s->connected, 'a new client connects to the killed database');
	$s->send("SELECT 'after' || 'kill';\n");
	ok(!$s->wait_output(qr/afterkill/, secs => 2), 'its query waits: the database is paused');
	$r = $adm->query('RESUME postgres');
	is_deeply($r->{tags}, ['RESUME'], 'RESUME postgres');
	ok($s->wait_output(qr/afterkill/, secs => 30), 'the query runs after RESUME');
	$s->quit;

	# KILL without a database: every pool, not the console
	$r = $adm->query('KILL');
	is_deeply($r->{tags}, ['KILL'], 'KILL (all databases)');
	my ($code) = closed_with($o);
	is($code, '57P01', 'a client of the other database is killed too');
	$r = $mon->query('SHOW STATE');
	my %state = map { $_->[0] => $_->[1] } @{ $r->{rows} };
	is($state{paused}, 'yes', 'everything is paused');
	$r = $adm->query('RESUME');
	is_deeply($r->{tags}, ['RESUME'], 'the console survived KILL; RESUME');
	my $c = app_client('after-resume');
	is(backend_pid($c) =~ /^\d+$/ ? 'ok' : 'no', 'ok', 'clients work again after RESUME');
	$c->terminate;
}

############ a worker restarted after commands applies their state, and only to what is older

{
	my $victim = (split /\n/, worker_pid($node))[1];
	sql("SELECT pg_terminate_backend($victim)");
	ok(wait_until(sub { my @p = split /\n/, worker_pid($node); @p == 2 && !grep { $_ == $victim } @p }),
		'a terminated worker is started again');
	# console connections of the terminated worker are gone: log in again
	$_->close foreach $adm, $mon, $boss;
	$adm = console_conn('adm', 'adm-pw');
	$mon = console_conn('mon', 'mon-pw');
	$boss = console_conn('boss', 'boss-pw');
	my $r = $adm->query('DISABLE other');
	is_deeply($r->{tags}, ['DISABLE'], 'a command completes with the restarted worker');
	my @cs = spread_clients('restarted', 2);
	is(join(',', map { backend_pid($_) =~ /^\d+$/ ? 'ok' : 'no' } @cs), join(',', ('ok') x @cs),
		'new clients on both workers are not hit by the earlier KILLs');
	my @refused;
	for (1 .. 4)
	{
		my $c = raw_connect($node);
		push @refused, $c->login(user => 'app', password => 'app-pw', database => 'other')->{error}{C} // 'ok';
		$c->close;
	}
	is(join(',', @refused), '55000,55000,55000,55000', 'DISABLE holds on both workers, the restarted one too');
	$adm->query('ENABLE other');
	$_->terminate foreach @cs;
}

############ SHUTDOWN

{
	my $direct = direct_session($node);
	ok($direct->connected, 'a direct session before SHUTDOWN');
	my $direct_pid = $direct->query('SELECT pg_backend_pid()');
	my $start = sql('SELECT pg_postmaster_start_time()');
	my $c = app_client('shut');
	$c->query('BEGIN');
	backend_pid($c);
	my $log_at = -s $node->logfile;

	my $r = $boss->query('SHUTDOWN');
	is_deeply($r->{tags}, ['SHUTDOWN'], 'SHUTDOWN as a superuser answers SHUTDOWN');
	my ($code, $msg) = closed_with($c);
	is($code, '57P01', 'a client in a transaction gets 57P01');
	like($msg, qr/^pgbun: terminating connection due to administrator command \(SHUTDOWN\)/, '... saying why');
	my ($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgbun worker'", '0');
	ok($ok, 'both pgbun workers exit') or diag("left: $last");
	ok(wait_until(sub { !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => pgbun_port($node), Timeout => 2) }),
		"nothing listens on pgbun's port any more");
	# the postmaster would start a worker that exited 1 again after 1 s: wait longer than that
	sleep(3);
	is(sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgbun worker'"), '0',
		'the workers are not started again');
	is(sql('SELECT pg_postmaster_start_time()'), $start, 'the postmaster did not restart');
	is($direct->query('SELECT pg_backend_pid()'), $direct_pid, 'the direct session keeps its backend');
	is(sql('SELECT 1'), '1', 'new direct connections work');
	my $log = slurp_file($node->logfile, $log_at);
	is(scalar(() = $log =~ /stopped by SHUTDOWN on the admin console/g), 2, 'both workers logged why they stopped');
	unlike($log, qr/terminated by signal|was terminated|reinitializing|exited with exit code [^0]/,
		'no crash: no process was terminated by a signal, no reinitialization');
	$direct->quit;

	$node->restart;
	ok(PgbunTest::wait_for_listen(pgbun_port($node)), 'pgbun listens again after the server restarts');
	my $back = app_client('back');
	is($back ? backend_pid($back) =~ /^\d+$/ ? 'ok' : 'no' : 'refused', 'ok', 'and serves clients');
	$back->terminate if $back;
	is(scalar(split /\n/, worker_pid($node)), 2, 'with both workers');
}

stop_node($node);
done_testing();

# 270_session_state: session state that is each client's own (issue 8 items
# 1, 2, 7, 9), raw protocol, differential against a direct connection where
# PostgreSQL defines the answer.
#
#  - item 1: a client's search_path / extra_float_digits (startup packet, or a
#    later SET) never reach the next client on the same server (pool of 1,
#    transaction mode): SHOW and a query reading t through search_path;
#  - item 2: DISCARD ALL, RESET ALL and RESET x (simple and extended
#    protocol, inside a multi-statement query) give back the client's
#    connect-time application_name / TimeZone / statement_timeout, also as the
#    ParameterStatus the client last sees, in transaction and session mode;
#    the next client on that server is unaffected;
#  - item 7: options in every form (-c, -cname, --name, backslash escapes) and
#    plain startup GUCs, compared with PostgreSQL's own answer; they follow
#    their client across a shared server and only it; refusals with
#    PostgreSQL's SQLSTATEs (unknown, postmaster-only, bad value, syntax,
#    superuser-only for a non-superuser) and a pgbun: message naming the
#    parameter; a superuser may carry a superuser-only one; the bounds (32
#    settings, 4096 bytes) with 54000;
#  - item 9: ALTER ROLE / ALTER DATABASE ... SET show up for new clients
#    after the next server login.
#
# Deadlines are hang guards, never timing assertions.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'session_state',
	# alice may also log in directly over TCP: the reference answers
	hba_extra => ['host all alice,boss 127.0.0.1/32 scram-sha-256'],
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.pool_mode' => 'transaction',
		'pgbun.databases' => 'onedb = pool_size=1; sessdb = pool_mode=session, pool_size=1',
	});
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE boss LOGIN SUPERUSER PASSWORD 'boss-pw';
CREATE DATABASE onedb;
CREATE DATABASE sessdb;
});
foreach my $db ('onedb', 'sessdb')
{
	$node->safe_psql(
		$db, q{
CREATE SCHEMA evil;
CREATE TABLE public.t (a text);
INSERT INTO public.t VALUES ('public');
CREATE TABLE evil.t (a text);
INSERT INTO evil.t VALUES ('evil');
GRANT USAGE ON SCHEMA evil TO alice;
GRANT SELECT ON public.t, evil.t TO alice;
});
}

my %alice = (user => 'alice', password => 'alice-pw');

# Log in (through pgbun, or directly with direct => 1). Returns ($raw, $login).
sub client
{
	my (%o) = @_;
	my $raw = $o{direct} ? raw_connect($node, port => $node->port) : raw_connect($node);
	my $login = $raw->login(
		user => $o{user} // 'alice',
		password => $o{password} // 'alice-pw',
		database => $o{db} // 'onedb',
		params => $o{params} // []);
	$raw->{seen} = { %{ $login->{params} // {} } };
	return ($raw, $login);
}

# Run one simple query (or send $o{bytes}) and read up to ReadyForQuery:
# rows, tags, error; ParameterStatus values go to $raw->{seen}.
sub run
{
	my ($raw, $sql, %o) = @_;
	$raw->send_bytes($o{bytes} // PgbunTest::Raw::query_message($sql));
	my %r = (rows => [], tags => []);
	while (1)
	{
		my $m = $raw->read_message(hang_guard());
		if (!defined $m->{type}) { $r{eof} = 1; last; }
		my $t = $m->{type};
		if ($t eq 'D') { push @{ $r{rows} }, PgbunTest::Raw::data_row($m->{body}); }
		elsif ($t eq 'C') { push @{ $r{tags} }, unpack('Z*', $m->{body}); }
		elsif ($t eq 'E') { $r{error} //= PgbunTest::Raw::error_fields($m->{body}); }
		elsif ($t eq 'S')
		{
			my ($k, $v) = split /\0/, $m->{body}, -1;
			$raw->{seen}{$k} = $v;
		}
		elsif ($t eq 'Z') { last; }
	}
	return \%r;
}

# First column of the first row.
sub one
{
	my ($raw, $sql) = @_;
	my $r = run($raw, $sql);
	return $r->{error} ? "ERROR: $r->{error}{M}" : ($r->{rows}[0][0] // 'none');
}

my $SETTINGS = "SELECT current_setting('application_name') || '|' || current_setting('TimeZone') || '|' "
  . "|| current_setting('statement_timeout')";

############ item 1: nothing of one client's reaches the next (pool of 1)

{
	my ($a, $la) = client(params => [ search_path => 'evil', extra_float_digits => '0' ]);
	my ($b, $lb) = client();
	my ($ref, $lr) = client(direct => 1);
	ok($la->{ok} && $lb->{ok} && $lr->{ok}, 'item 1: A (search_path=evil), B (nothing) and a direct client log in')
	  or diag(explain([ $la, $lb, $lr ]));
	my @bad;
	for my $i (1 .. 5)
	{
		my $apid = one($a, 'SELECT pg_backend_pid()');
		my $got_a = one($a, "SELECT a || '|' || current_setting('extra_float_digits') FROM t");
		push @bad, "round $i: A reads $got_a" if $got_a ne 'evil|0';
		my $bpid = one($b, 'SELECT pg_backend_pid()');
		push @bad, "round $i: A and B on different servers ($apid, $bpid)" if $apid ne $bpid;
		foreach my $q ('SELECT a FROM t', 'SHOW search_path', 'SHOW extra_float_digits')
		{
			my ($got, $want) = (one($b, $q), one($ref, $q));
			push @bad, "round $i: B $q: $got, direct: $want" if $got ne $want;
		}
	}
	is(join("\n", @bad), '', 'item 1: B never reads evil.t nor sees A\'s search_path / extra_float_digits, on A\'s server');

	# a later SET of a parameter the server does not report: unknown, so never handed on
	my ($c, $lc) = client();
	is(run($c, "SET search_path = evil")->{tags}[0] // '', 'SET', 'item 1: C sets search_path = evil by SET');
	run($c, "SET work_mem = '1234kB'");
	is(one($b, 'SELECT a FROM t'), 'public', 'item 1: B after C\'s SET search_path still reads public.t');
	is(one($b, 'SHOW search_path'), one($ref, 'SHOW search_path'), 'item 1: ... and has the default search_path');
	is(one($b, 'SHOW work_mem'), one($ref, 'SHOW work_mem'), 'item 1: ... and the default work_mem (RESET ALL on a server left dirty)');
	is(one($a, 'SELECT a FROM t'), 'evil', 'item 1: A still has its own search_path');
	$_->terminate foreach ($a, $b, $c, $ref);
}

############ item 2: RESET / DISCARD ALL give back the connect-time values

# with a startup GUC, and with reported parameters only (as old pgbun accepted)
my @connect_sets = (
	[ 'connect-time GUCs', [ application_name => 'myapp', TimeZone => 'Asia/Tokyo', statement_timeout => '5s' ] ],
	[ 'reported parameters only', [ application_name => 'myapp', TimeZone => 'Asia/Tokyo' ] ],
);

# Each way to reset, as simple-protocol text or as raw bytes.
my @resets = (
	[ 'DISCARD ALL', 'DISCARD ALL' ],
	[ 'RESET ALL', 'RESET ALL' ],
	[ 'RESET x (three of them)', 'RESET application_name; RESET TimeZone; RESET statement_timeout' ],
	[ 'RESET ALL inside a multi-statement query', 'SELECT 1; RESET ALL; SELECT 2' ],
	[ 'DISCARD ALL, extended protocol', undef,
		parse_msg('', 'DISCARD ALL') . bind_msg('', '') . execute_msg('') . sync_msg() ],
	[ 'RESET ALL, extended protocol', undef,
		parse_msg('', 'RESET ALL') . bind_msg('', '') . execute_msg('') . sync_msg() ],
);

foreach my $set (@connect_sets)
{
  my ($set_label, $connect_params) = @$set;
  my @connect = @$connect_params;
  foreach my $db ('onedb', 'sessdb')
  {
	my $mode = ($db eq 'onedb' ? 'transaction mode' : 'session mode') . ", $set_label";
	foreach my $case (@resets)
	{
		my ($label, $sql, $bytes) = @$case;
		my ($x, $lx) = client(db => $db, params => [@connect]);
		my ($ref, $lr) = client(db => $db, params => [@connect], direct => 1);
		ok($lx->{ok} && $lr->{ok}, "item 2, $mode, $label: logged in") or diag(explain([ $lx, $lr ]));
		is(one($x, $SETTINGS), one($ref, $SETTINGS), "item 2, $mode, $label: the connect-time values are in force");
		# change them, as a client may, then reset
		run($_, "SET application_name = 'changed'; SET TimeZone = 'UTC'; SET statement_timeout = '7s'")
		  foreach ($x, $ref);
		my $rx = run($x, $sql, bytes => $bytes);
		my $rr = run($ref, $sql, bytes => $bytes);
		is_deeply($rx->{tags}, $rr->{tags}, "item 2, $mode, $label: the same answers as PostgreSQL's")
		  or diag(explain([ $rx, $rr ]));
		my ($got, $want) = (one($x, $SETTINGS), one($ref, $SETTINGS));
		my %cp = @connect;
		is($want, join('|', $cp{application_name}, $cp{TimeZone}, $cp{statement_timeout} // '0'),
			"item 2, $mode, $label: PostgreSQL restores the connect-time values");
		is($got, $want, "item 2, $mode, $label: so does pgbun");
		is(join('|', map { $x->{seen}{$_} // 'none' } qw(application_name TimeZone)),
			join('|', map { $ref->{seen}{$_} // 'none' } qw(application_name TimeZone)),
			"item 2, $mode, $label: the last ParameterStatus the client saw is PostgreSQL's");
		$ref->terminate;
		$x->terminate if $db eq 'sessdb';    # session mode: the server is handed on at the end

		# the next client on that server: its own values, nothing of the reset one's
		my ($y, $ly) = client(db => $db, params => [ statement_timeout => '3s' ]);
		my ($yref, $lyr) = client(db => $db, params => [ statement_timeout => '3s' ], direct => 1);
		is(one($y, $SETTINGS), one($yref, $SETTINGS), "item 2, $mode, $label: the next client has its own values");
		$_->terminate foreach ($y, $yref);
		$x->terminate if $db eq 'onedb';
	}
  }
}

############ item 7: options and plain startup settings

my @accepted = (
	[ 'options -c name=value', [ options => '-c TimeZone=Asia/Tokyo' ], 'SHOW TimeZone' ],
	[ 'options -cname=value', [ options => '-cwork_mem=2MB' ], 'SHOW work_mem' ],
	[ 'options --name=value with dashes', [ options => '--statement-timeout=3s' ], 'SHOW statement_timeout' ],
	[ 'options, several, with escapes', [ options => '-c application_name=my\ app\\\\x  --search_path=evil,public' ],
		"SELECT current_setting('application_name') || '|' || current_setting('search_path') || '|' || (SELECT a FROM t)" ],
	[ 'plain startup GUCs (slonik)', [ statement_timeout => '4s', idle_in_transaction_session_timeout => '10s' ],
		"SELECT current_setting('statement_timeout') || '|' || current_setting('idle_in_transaction_session_timeout')" ],
	[ 'a plain parameter wins over options', [ options => '-c work_mem=2MB', work_mem => '3MB' ], 'SHOW work_mem' ],
	[ 'an extension placeholder', [ options => '-c myapp.tenant=42' ], "SELECT current_setting('myapp.tenant')" ],
);
foreach my $case (@accepted)
{
	my ($label, $params, $sql) = @$case;
	my ($x, $lx) = client(params => $params);
	my ($ref, $lr) = client(params => $params, direct => 1);
	ok($lr->{ok}, "item 7, $label: PostgreSQL accepts it") or diag(explain($lr));
	ok($lx->{ok}, "item 7, $label: pgbun accepts it") or diag(explain($lx));
	is(one($x, $sql), one($ref, $sql), "item 7, $label: the session has what PostgreSQL gives it");
	is($lx->{params}{TimeZone}, $lr->{params}{TimeZone}, "item 7, $label: ParameterStatus TimeZone as PostgreSQL's");
	$_->terminate foreach ($x, $ref);
}

# they follow their client, and only it, across the one shared server
{
	my ($p, $lp) = client(params => [ options => '-c statement_timeout=2s -c myapp.tenant=7' ]);
	my ($q, $lq) = client();
	my ($qref, $lqr) = client(direct => 1);
	my @bad;
	for my $i (1 .. 5)
	{
		my $gp = one($p, "SELECT current_setting('statement_timeout') || '|' || current_setting('myapp.tenant', true) || '|' || pg_backend_pid()");
		my $sql = "SELECT current_setting('statement_timeout') || '|' || coalesce(nullif(current_setting('myapp.tenant', true), ''), '-')";
		my ($gq, $wq) = (one($q, $sql), one($qref, $sql));
		push @bad, "round $i: P $gp" unless $gp =~ /^2s\|7\|/;
		push @bad, "round $i: Q $gq, direct $wq" if $gq ne $wq;
	}
	is(join("\n", @bad), '', 'item 7: options follow their client; the next client on the server gets the defaults');
	$_->terminate foreach ($p, $q, $qref);
}

my @refused = (
	[ 'an unknown parameter', [ no_such_param => '1' ], 'no_such_param' ],
	[ 'a postmaster-only parameter', [ shared_buffers => '1MB' ], 'shared_buffers' ],
	[ 'a sighup parameter in options', [ options => '-c log_checkpoints=on' ], 'log_checkpoints' ],
	[ 'a superuser-only connection-start parameter', [ log_connections => 'on' ], 'log_connections' ],
	[ 'a bad value', [ TimeZone => 'Mars/Olympus' ], 'TimeZone' ],
	[ 'a bad value in options', [ options => '-c statement_timeout=soon' ], 'statement_timeout' ],
	[ 'a superuser-only parameter, not a superuser', [ options => '-c session_replication_role=replica' ],
		'session_replication_role' ],
	[ 'options: a setting without a value', [ options => '-c statement_timeout' ], 'statement_timeout' ],
	[ 'options: not a switch', [ options => 'statement_timeout=1s' ], 'statement_timeout=1s' ],
);
foreach my $case (@refused)
{
	my ($label, $params, $name) = @$case;
	my ($x, $lx) = client(params => $params);
	my ($ref, $lr) = client(params => $params, direct => 1);
	ok($lr->{error}, "item 7, $label: PostgreSQL refuses it") or diag(explain($lr));
	is($lx->{error}{C} // 'none', $lr->{error}{C} // 'none', "item 7, $label: pgbun refuses it with the same SQLSTATE");
	like($lx->{error}{M} // '', qr/^pgbun: .*\Q$name\E/, "item 7, $label: with a pgbun: message naming it");
	$x->close;
	$ref->close;
}
# pgbun's own refusal: a setting only a new session can take
{
	my ($x, $lx) = client(params => [ options => '-c ignore_system_indexes=on' ]);
	is($lx->{error}{C} // 'none', '55P02', 'item 7: a connection-start-only parameter cannot be carried: 55P02');
	like($lx->{error}{M} // '', qr/^pgbun: .*ignore_system_indexes/, 'item 7: ... naming it');
	$x->close;
	($x, $lx) = client(params => [ role => 'boss' ]);
	is($lx->{error}{C} // 'none', '0A000', 'item 7: role cannot be carried across server connections: 0A000');
	$x->close;
}
# the bounds on what one client carries (README: 32 settings, 4096 bytes)
{
	my $opts32 = join(' ', map { "-c myapp.p$_=$_" } 1 .. 32);
	my ($x, $lx) = client(params => [ options => $opts32 ]);
	ok($lx->{ok}, 'item 7: 32 settings are carried') or diag(explain($lx));
	is(one($x, "SELECT current_setting('myapp.p32')"), '32', 'item 7: ... all of them');
	$x->terminate;
	($x, $lx) = client(params => [ options => "$opts32 -c myapp.p33=33" ]);
	is($lx->{error}{C} // 'none', '54000', 'item 7: a 33rd setting is refused with 54000');
	like($lx->{error}{M} // '', qr/^pgbun: .*at most 32/, 'item 7: ... saying the limit');
	$x->close;
	($x, $lx) = client(params => [ 'myapp.big' => 'x' x 5000 ]);
	is($lx->{error}{C} // 'none', '54000', 'item 7: 5000 bytes of settings are refused with 54000');
	$x->close;
}
# a superuser may carry a superuser-only parameter
{
	my ($x, $lx) = client(user => 'boss', password => 'boss-pw', params => [ options => '-c session_replication_role=replica' ]);
	ok($lx->{ok}, 'item 7: a superuser may set a superuser-only parameter at connect time') or diag(explain($lx));
	is(one($x, 'SHOW session_replication_role'), 'replica', 'item 7: ... and has it');
	$x->terminate;
}

############ item 9: ALTER ROLE / DATABASE ... SET reach new clients after a server login

{
	my ($before, $lb) = client();
	is($lb->{params}{application_name} // 'none', '', 'item 9: before ALTER ROLE a client is shown application_name ""');
	$before->terminate;
	$node->safe_psql('postgres', q{
ALTER ROLE alice SET application_name = 'fromrole';
ALTER DATABASE onedb SET TimeZone = 'Pacific/Auckland';
});
	# the pool's server logged in before: end it, so the next client makes a new login
	my $gone = $node->safe_psql('postgres',
		"SELECT string_agg(pg_terminate_backend(remote_pid)::text, ',') FROM pgbun.servers WHERE database = 'onedb' AND \"user\" = 'alice'");
	is($gone, 'true', 'item 9: the pool\'s one server backend is terminated');
	my ($matched, $last) = poll_sql($node, "SELECT count(*) FROM pgbun.servers WHERE database = 'onedb' AND \"user\" = 'alice'", '0');
	ok($matched, 'item 9: the old server connection is gone') or diag("last: $last");
	my ($first, $lf) = client();
	ok($lf->{ok}, 'item 9: a client logs in (its query makes a new server login)');
	is(one($first, 'SELECT 1'), '1', 'item 9: ... and runs a query');
	my ($new, $ln) = client();
	my ($ref, $lr) = client(direct => 1);
	is($ln->{params}{application_name} // 'none', $lr->{params}{application_name} // 'none',
		'item 9: a new client is shown the role\'s application_name, as PostgreSQL shows it');
	is($ln->{params}{TimeZone} // 'none', 'Pacific/Auckland', 'item 9: ... and the database\'s TimeZone');
	is(one($new, "SELECT current_setting('application_name') || '|' || current_setting('TimeZone')"),
		'fromrole|Pacific/Auckland', 'item 9: ... and has them');
	$_->terminate foreach ($first, $new, $ref);
	$node->safe_psql('postgres', 'ALTER ROLE alice RESET application_name; ALTER DATABASE onedb RESET TimeZone');
}

stop_node($node);
done_testing();

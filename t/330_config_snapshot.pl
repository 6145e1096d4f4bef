# 330_config_snapshot: a reload is all or nothing (settings.h).
#
#  - an invalid combination (min_pool_size above default_pool_size, each
#    valid on its own) is refused whole: SHOW CONFIG and SHOW DATABASES keep
#    every old value, the unrelated settings of the same reload are not
#    applied either, the pool keeps its old size, and the log names the
#    setting and the reason;
#  - a value PostgreSQL itself refuses (out of range, a bad pgbun.databases
#    entry) refuses the other pgbun settings of that reload too (PostgreSQL
#    alone would apply them);
#  - a valid reload changes several settings at once and they all apply to
#    the live pool together.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgbunTest;

my $node = pgbun_node(
	name => 'snapshot',
	conf => {
		'pgbun.default_pool_size' => '4',
		'pgbun.query_wait_timeout' => '2s',
		'log_statement' => 'all',
	});
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; "
	  . "CREATE ROLE app LOGIN PASSWORD 'app-pw'; GRANT pg_monitor TO app;");
# a fresh database per check: a new pool has no idle servers left from before
$node->safe_psql('postgres', "CREATE DATABASE $_") foreach qw(d1 d2 d3 d4);
my %login = (user => 'app', password => 'app-pw');

# One console SHOW as a hash: first column => the row's fields by column name.
sub console_rows
{
	my ($what) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, "\\pset tuples_only off\nSHOW $what;",
		%login, dbname => 'pgbouncer', on_error_stop => 0);
	my @lines = split /\n/, $out;
	my @cols = split /\|/, shift(@lines) // '';
	my %rows;
	foreach my $l (@lines)
	{
		next if $l =~ /^\(\d+ rows?\)$/;
		my @f = split /\|/, $l, -1;
		my %r;
		@r{@cols} = @f;
		$rows{ $f[0] } = \%r;
	}
	diag("SHOW $what: $err") if $rc != 0;
	return \%rows;
}

sub config_value
{
	my ($key) = @_;
	my $rows = console_rows('CONFIG');
	return $rows->{$key} ? $rows->{$key}{value} : undef;
}

# Wait until the log, past $offset, matches $re.
sub log_after
{
	my ($offset, $re) = @_;
	my $found;
	wait_until(
		sub {
			my $log = slurp_file($node->logfile);
			my $tail = substr($log, $offset);
			$found = $1 if $tail =~ /($re)/;
			return defined $found;
		},
		hang_guard(),
		0.2);
	return $found;
}

sub log_size { return -s $node->logfile; }

# Hold $n sessions to database $db, each with a server (session mode): how
# many got one within the query_wait_timeout.
sub sessions_served
{
	my ($n, $db) = @_;
	my @s = map { pgbun_session($node, %login, dbname => $db) } 1 .. $n;
	my $served = 0;
	foreach my $s (@s)
	{
		my ($out, $err) = $s->query('SELECT 1', 30);
		$served++ if defined $out && $out eq '1';
	}
	$_->quit foreach @s;
	return $served;
}

############ the starting point

reload_sync($node, \%login, 'pgbun.client_idle_timeout' => '0');
is(config_value('default_pool_size'), '4', 'SHOW CONFIG: default_pool_size 4 to start with');
is(sessions_served(5, 'd1'), 4, 'default_pool_size 4: four sessions get a server, the fifth times out');

############ an invalid combination is refused whole

my $off = log_size();
reload_conf($node,
	'pgbun.default_pool_size' => '3',
	'pgbun.min_pool_size' => '5',
	'pgbun.client_idle_timeout' => '7s',
	'pgbun.server_reset_query' => 'DISCARD ALL /* refused-marker */');
my $line = log_after($off, qr/pgbun: configuration reload refused: [^\n]*/);
like($line, qr/pgbun\.min_pool_size \(5\) is above pgbun\.default_pool_size \(3\)/,
	'the log names the setting and the reason');
like(slurp_file($node->logfile), qr/Every pgbun setting stays as it was/, 'and says nothing changed');
is(config_value('default_pool_size'), '4', 'SHOW CONFIG: default_pool_size still 4');
is(config_value('min_pool_size'), '0', 'SHOW CONFIG: min_pool_size still 0');
is(config_value('client_idle_timeout'), '0', 'SHOW CONFIG: the unrelated client_idle_timeout of the same reload is not applied');
like(config_value('server_reset_query'), qr/pgbun-test-reload/, 'SHOW CONFIG: nor is the new server_reset_query');
my $dbs = console_rows('DATABASES');
is($dbs->{d1}{pool_size}, '4', 'SHOW DATABASES: pool_size 4');
is(sessions_served(5, 'd2'), 4, 'the pool keeps size 4: four sessions get a server, not three');
unlike(slurp_file($node->logfile), qr{statement: DISCARD ALL /\* refused-marker \*/},
	'the refused reset query is never run');

# fixing the combination applies the whole reload
reload_sync($node, \%login, 'pgbun.min_pool_size' => '0', 'pgbun.default_pool_size' => '3',
	'pgbun.client_idle_timeout' => '7s');
is(config_value('default_pool_size'), '3', 'fixed: default_pool_size 3 applies');
is(config_value('client_idle_timeout'), '7000', 'with client_idle_timeout of the same reload');
is(sessions_served(4, 'd3'), 3, 'a pool now serves three sessions');

############ more rules across settings: addresses, TLS files

foreach my $case (
	[ { 'pgbun.listen_addresses' => '127.0.0.1 ::1' },
		qr/pgbun\.listen_addresses: "127\.0\.0\.1 ::1" is not an address, a host name or \*/ ],
	[ { 'pgbun.client_tls_cert_file' => '/nonexistent/pgbun.crt', 'pgbun.client_tls_key_file' => '/nonexistent/pgbun.key' },
		qr{pgbun\.client_tls_cert_file: file "/nonexistent/pgbun\.crt" cannot be read} ],
	[ { 'pgbun.server_login_retry' => '5s', 'pgbun.server_login_retry_max' => '2s' },
		qr/pgbun\.server_login_retry_max \(2000 ms\) is below pgbun\.server_login_retry \(5000 ms\)/ ])
{
	my ($set, $re) = @$case;
	my $what = join(', ', map { "$_=$set->{$_}" } sort keys %$set);
	my $o = log_size();
	reload_conf($node, %$set, 'pgbun.server_idle_timeout' => '77s');
	my $l = log_after($o, qr/pgbun: configuration reload refused: [^\n]*/);
	like($l, $re, "refused with the setting and the reason: $what");
	is(config_value('server_idle_timeout'), '600000', "the rest of that reload is not applied ($what)");
	is(config_value('listen_addresses'), '127.0.0.1', "listen_addresses in force unchanged ($what)");
	reload_sync($node, \%login, (map { $_ => undef } keys %$set), 'pgbun.server_idle_timeout' => undef);
}
my (undef, $out1) = pgbun_psql($node, 'SELECT 1', %login);
is($out1, '1', 'pgbun still listens on its address after the refused listen_addresses');

############ a value PostgreSQL refuses refuses the reload's other pgbun settings

# ALTER SYSTEM checks values, so the bad line goes into postgresql.conf
sub with_conf_lines
{
	my ($lines, $code) = @_;
	my $path = $node->data_dir . '/postgresql.conf';
	my $orig = slurp_file($path);
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $orig . "\n# t/330\n" . join('', map { "$_\n" } @$lines);
	close $fh;
	$code->();
	open $fh, '>', $path or die "cannot write $path: $!";
	print $fh $orig;
	close $fh;
	return;
}

foreach my $case (
	[ "pgbun.max_user_connections = -1", qr/pgbun\.max_user_connections: [^\n]*-1 is outside the valid range/ ],
	[ "pgbun.databases = 'a = colour=blue'", qr/pgbun\.databases: pgbun: unknown setting "colour" for "a"/ ],
	[ "pgbun.pool_mode = 'sometimes'", qr/pgbun\.pool_mode: [^\n]*sometimes/ ])
{
	my ($bad, $re) = @$case;
	with_conf_lines(
		[ $bad, "pgbun.server_idle_timeout = '123s'" ],
		sub {
			my $o = log_size();
			$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
			my $l = log_after($o, qr/pgbun: configuration reload refused: [^\n]*/);
			like($l, $re, "refused with the setting and the reason: $bad");
			is(config_value('server_idle_timeout'), '600000',
				"the valid server_idle_timeout of the same reload is not applied ($bad)");
		});
}
is(config_value('default_pool_size'), '3', 'default_pool_size still 3 after the refused reloads');

############ a valid reload changes several settings at once, on the live pool

# the pool exists and holds an idle server: the new settings apply to it
is(sessions_served(1, 'd4'), 1, 'the pool is live, with one idle server');
reload_sync($node, \%login,
	'pgbun.default_pool_size' => '2',
	'pgbun.min_pool_size' => '2',
	'pgbun.query_wait_timeout' => '1s',
	'pgbun.client_idle_timeout' => '0');
my $cfg = console_rows('CONFIG');
is(join(',', map { $cfg->{$_}{value} } qw(default_pool_size min_pool_size query_wait_timeout client_idle_timeout)),
	'2,2,1000,0', 'SHOW CONFIG shows all four new values');
$dbs = console_rows('DATABASES');
is(($dbs->{d4}{pool_size} // '') . '/' . ($dbs->{d4}{min_pool_size} // ''), '2/2',
	'SHOW DATABASES: pool_size and min_pool_size together');
# min_pool_size fills the live pool up to 2 servers
my ($ok) = wait_until(
	sub {
		my $p = console_rows('POOLS');
		my $r = $p->{d4};
		return $r && ($r->{sv_idle} // 0) + ($r->{sv_used} // 0) + ($r->{sv_active} // 0) >= 2;
	},
	hang_guard(),
	0.2);
ok($ok, 'min_pool_size 2 applies to the live pool');
is(sessions_served(3, 'd4'), 2, 'pool_size 2 applies: two sessions get a server, the third times out');

stop_node($node);
done_testing();

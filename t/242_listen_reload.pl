# 242_listen_reload: a reload never leaves pgbun deaf, and an ERROR during
# a reload does not take the worker down.
#
#  - pgbun.listen_addresses with a name that does not resolve, or an address
#    this machine does not have: the old listener keeps serving, the log
#    says why; with the same port and with a new one;
#  - 127.0.0.1 -> '*' (a wildcard bind that clashes with our own listener):
#    applied, then back;
#  - a good reload after a bad one applies in full (the bad address's
#    listener goes, the new one serves);
#  - an ERROR thrown inside the reload (a check hook of another preloaded
#    library throwing in pgbun's worker, built here) closes no connection,
#    the worker stays, and the next reload works.

use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

# A library whose GUC check hook throws in pgbun's worker for the value 'throw':
# any preloaded extension's hook runs inside pgbun's ProcessConfigFile.
my $libdir = PostgreSQL::Test::Utils::tempdir_short();
my $src = "$libdir/pgbun_test_throw.c";
open my $fh, '>', $src or die "cannot write $src: $!";
print $fh <<'EOF';
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"
PG_MODULE_MAGIC;
void _PG_init(void);
static char *value;
static bool
check_value(char **newval, void **extra, GucSource source)
{
	if (MyBgworkerEntry && strcmp(MyBgworkerEntry->bgw_type, "pgbun worker") == 0 &&
		*newval && strcmp(*newval, "throw") == 0)
		elog(ERROR, "pgbun_test_throw: thrown in the pgbun worker");
	return true;
}
void
_PG_init(void)
{
	DefineCustomStringVariable("pgbun_test_throw.value", "test", NULL, &value, "",
							   PGC_SIGHUP, 0, check_value, NULL, NULL);
}
EOF
close $fh;
my $node0 = PostgreSQL::Test::Cluster->new('probe');    # only for pg_config
my $inc = $node0->config_data('--includedir-server');
my ($rc, $out, $err) = PgbunTest::run_cmd(
	[ 'gcc', '-shared', '-fPIC', '-O0', "-I$inc", '-o', "$libdir/pgbun_test_throw.so", $src ],
	'', \%ENV, 120);
is($rc, 0, 'built the throwing test library') or diag($err);

my $node = pgbun_node(
	name => 'listen',
	conf => { 'shared_preload_libraries' => "pgbun,$libdir/pgbun_test_throw" });
$node->safe_psql('postgres', "CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);
my $port = pgbun_port($node);

# Does something accept on $host:$port?
sub accepts
{
	my ($host, $p) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $p, Proto => 'tcp', Timeout => 5);
	return 0 unless $s;
	close $s;
	return 1;
}

# A login and a query through 127.0.0.1:$p.
sub serves
{
	my ($p) = @_;
	my $raw = PgbunTest::Raw->new(port => $p);
	my $l = $raw->login(%alice);
	my $ok = $l->{ok} && ($raw->query('SELECT 1')->{rows}[0][0] // '') eq '1';
	$raw->close;
	return $ok;
}

# Reload, then wait for the worker's log line matching $re (after $offset).
sub reload_and_wait
{
	my ($re, $label, %settings) = @_;
	my $offset = -s $node->logfile;
	reload_conf($node, %settings);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($node->wait_for_log($re, $offset), $label) or diag(PgbunTest::tail_log($node, 20));
	return $offset;
}

my $keeper = raw_connect($node);
ok($keeper->login(%alice)->{ok}, 'a client connected before the reloads');
is($keeper->query('SELECT 1')->{rows}[0][0], '1', 'it holds a server');

############ a name that does not resolve

reload_and_wait(qr/pgbun: could not resolve listen address "nosuchhost\.invalid"/,
	'an unresolvable listen address is logged',
	'pgbun.listen_addresses' => 'nosuchhost.invalid');
ok(serves($port), 'the old listener keeps serving after a reload with an unresolvable name');
like(slurp_file($node->logfile), qr/could not be applied in full/, 'the log says the settings were not applied in full');

############ an address this machine does not have (TEST-NET-1), with 127.0.0.1

reload_and_wait(qr/pgbun: could not listen on 192\.0\.2\.1 port $port/,
	'an address not on this machine is logged',
	'pgbun.listen_addresses' => '127.0.0.1, 192.0.2.1');
ok(serves($port), '127.0.0.1 keeps serving alongside the bad address');

############ a new port with only bad addresses

my $port2 = PostgreSQL::Test::Cluster::get_free_port();
reload_and_wait(qr/pgbun: could not listen on 192\.0\.2\.1 port $port2/,
	'a new port with only a bad address is logged',
	'pgbun.listen_addresses' => '192.0.2.1', 'pgbun.port' => $port2);
ok(serves($port), 'the old port keeps serving');

############ a good reload applies in full

reload_and_wait(qr/pgbun: listening on 127\.0\.0\.1 port $port2/,
	'the good settings are applied',
	'pgbun.listen_addresses' => '127.0.0.1', 'pgbun.port' => $port2);
ok(serves($port2), 'the new port serves');
ok(wait_until(sub { !accepts('127.0.0.1', $port) }, 30), 'the old port is closed once the new set is complete');
is($keeper->query('SELECT 2')->{rows}[0][0], '2', 'the client connected before goes on');

############ 127.0.0.1 -> '*' clashes with our own listener: applied anyway

reload_and_wait(qr/pgbun: listening on 0\.0\.0\.0 port $port2/,
	"listen_addresses = '*' is applied",
	'pgbun.listen_addresses' => '*');
ok(serves($port2), "'*' serves on 127.0.0.1");
unlike(slurp_file($node->logfile), qr/could not listen on 0\.0\.0\.0/, 'no clash was left unresolved');
reload_and_wait(qr/pgbun: listening on 127\.0\.0\.1 port $port2/,
	'back to 127.0.0.1',
	'pgbun.listen_addresses' => '127.0.0.1');
ok(serves($port2), 'and it serves');

############ an ERROR inside the reload

my $offset = reload_and_wait(qr/pgbun: error during reload; worker 0 goes on/,
	'an ERROR thrown inside the reload is caught and logged',
	'pgbun_test_throw.value' => 'throw');
like(slurp_file($node->logfile, $offset), qr/pgbun_test_throw: thrown in the pgbun worker/,
	'the ERROR itself is logged');
check_server_same($node, $identity, 'after an ERROR in the reload');
is($keeper->query('SELECT 3')->{rows}[0][0], '3', 'no connection was closed by it');
ok(serves($port2), 'new clients are served');

my $port3 = PostgreSQL::Test::Cluster::get_free_port();
reload_and_wait(qr/pgbun: listening on 127\.0\.0\.1 port $port3/,
	'the next reload (without the throwing value) applies',
	'pgbun_test_throw.value' => undef, 'pgbun.port' => $port3);
ok(serves($port3), 'the new port serves');
$node->{_pgbun_port} = $port3;
is($keeper->query('SELECT 4')->{rows}[0][0], '4', 'the first client is still there');
check_server_same($node, $identity, 'at the end');

$keeper->close;
stop_node($node);
done_testing();

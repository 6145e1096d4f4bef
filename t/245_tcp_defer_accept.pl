# 245_tcp_defer_accept: pgbun.tcp_defer_accept (TCP_DEFER_ACCEPT on the
# TCP listeners, as PgBouncer's tcp_defer_accept). With it (the default) a
# TCP connection that has sent nothing is not handed to pgbun, so it never
# shows up as a client logging in; its first bytes bring it in, and the
# answer comes. With 0 (after a reload, on the listener that stays open) the
# same silent connection is accepted at once. The order is certain without
# any timing: one worker accepts from one queue in order, so once a client
# that connected later has been served, an earlier connection in the queue
# has been accepted too.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

plan skip_all => 'TCP_DEFER_ACCEPT is Linux only' unless $^O eq 'linux';

my $node = pgbun_node(
	name => 'defer',
	defer_accept => 1,			# pgbun's default, not the tests' 0
	conf => {
		'pgbun.workers' => '1',
		'pgbun.pool_mode' => 'session',
		'log_statement' => 'all',	# reload_sync's probe
	});
$node->safe_psql('postgres', q{CREATE ROLE app LOGIN PASSWORD 'app-pw'});
my %login = (user => 'app', password => 'app-pw');
my $logging_in = q{SELECT count(*) FROM pgbun.clients WHERE state = 'login'};

is($node->safe_psql('postgres', 'SHOW pgbun.tcp_defer_accept'), '45s', 'pgbun.tcp_defer_accept is 45 s by default');

# A later client, served in full: everything queued before it was accepted.
sub served_after
{
	my ($what) = @_;
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 42', %login, timeout => 60);
	is($rc . '|' . ($out =~ s/\s+$//r), '0|42', "a client connecting after $what is served") or diag($err);
}

############ on (the default): a silent connection is not pgbun's yet

my $silent = raw_connect($node);
served_after('a silent connection');
is($node->safe_psql('postgres', $logging_in), '0',
	'the silent connection is not seen as a client logging in (the kernel holds it)');

ok($silent->send_bytes(PgbunTest::Raw::ssl_request()), 'the silent connection sends an SSLRequest');
is($silent->read_bytes(1) // 'none', 'N', 'its first bytes bring it in: pgbun answers N (no TLS configured)');
my ($ok, $last) = poll_sql($node, $logging_in, '1', hang_guard());
ok($ok, 'and it is now a client logging in') or diag("last: $last");
$silent->close;
($ok, $last) = poll_sql($node, $logging_in, '0', hang_guard());
ok($ok, 'gone once it closes') or diag("last: $last");

############ 0 after a reload: accepted at once, by the same listener

reload_sync($node, \%login, 'pgbun.tcp_defer_accept' => '0');
$silent = raw_connect($node);
served_after('a silent connection, with tcp_defer_accept = 0');
is($node->safe_psql('postgres', $logging_in), '1',
	'with 0 the silent connection is accepted at once: a client logging in');
ok($silent->send_bytes(PgbunTest::Raw::ssl_request()), 'it sends an SSLRequest');
is($silent->read_bytes(1) // 'none', 'N', 'and gets its answer');
$silent->close;

############ and back on

($ok, $last) = poll_sql($node, $logging_in, '0', hang_guard());
ok($ok, 'no client logging in before turning it back on') or diag("last: $last");
reload_sync($node, \%login, 'pgbun.tcp_defer_accept' => undef);
$silent = raw_connect($node);
served_after('a silent connection, with the default again');
is($node->safe_psql('postgres', $logging_in), '0', 'the reload turned it back on for the open listener');
$silent->close;

stop_node($node);
done_testing();

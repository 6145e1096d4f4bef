# 252_dns: pgbun.server_host as a name, looked up with c-ares inside the
# worker's loop; a slow resolver delays no one but the clients that need it.
#
#  - 'localhost' comes from /etc/hosts (c-ares reads it first): server
#    connections go over TCP;
#  - a name only a DNS server knows (a tiny responder in this script, set
#    with pgbun.dns_servers) resolves; pgbun.dns_max_ttl makes pgbun ask again;
#  - a resolver that never answers: clients of a new pool wait, then get
#    08006 "pgbun: could not resolve server host ..." after pgbun.dns_timeout,
#    while meanwhile a client holding a server and a new client of a pool with
#    an idle server are served;
#  - a name the DNS server does not know: 08006 at once.

use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use POSIX ();
use Socket qw(inet_aton);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunDns;

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $dnslog = "$tmp/dns.log";
my ($dns_pid, $dns_port) = start_fake_dns({ 'db.pgbun-test.example' => '127.0.0.1' }, $dnslog);

# A resolver that never answers: a bound UDP socket nobody reads.
my $stuck = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'udp')
  or die "udp socket: $!";
my $stuck_port = $stuck->sockport;

my $node = pgbun_node(
	name => 'dns',
	hba_extra => [ 'host all all 127.0.0.1/32 md5', 'host all all ::1/128 md5' ],
	conf => {
		'listen_addresses' => 'localhost',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.query_wait_timeout' => '60s',
	});
my $identity = server_identity($node);
foreach my $u (qw(bob carol dave erin frank))
{
	$node->safe_psql('postgres', "CREATE ROLE $u LOGIN PASSWORD '$u-pw'");
}
sub login_of { my ($u) = @_; return (user => $u, password => "$u-pw"); }

# Where does this pool's server connection come from, seen by the server?
my $via_tcp = "SELECT CASE WHEN inet_client_addr() IS NULL THEN 'unix' ELSE 'tcp' END";

############ a name from /etc/hosts

reload_conf($node, 'pgbun.server_host' => 'localhost');
my $out;
ok( wait_until(
		sub {
			(undef, $out) = pgbun_psql($node, $via_tcp, login_of('bob'), timeout => 20);
			return $out eq 'tcp';
		}),
	"server_host = 'localhost' (from /etc/hosts): server connections go over TCP")
  or diag("last: $out\n" . tail_log($node, 20));
is($node->safe_psql('postgres', "SELECT DISTINCT addr FROM pgbun.servers WHERE \"user\" = 'bob'"),
	'localhost', 'pgbun.servers shows the host name');

############ a name from a DNS server (pgbun.dns_servers)

reload_conf($node,
	'pgbun.dns_servers' => "127.0.0.1:$dns_port",
	'pgbun.server_host' => 'db.pgbun-test.example');
ok( wait_until(
		sub {
			(undef, $out) = pgbun_psql($node, $via_tcp, login_of('carol'), timeout => 20);
			return $out eq 'tcp';
		}),
	'a name only the DNS server in pgbun.dns_servers knows resolves')
  or diag("last: $out\n" . tail_log($node, 20));
cmp_ok(dns_questions($dnslog, 'db.pgbun-test.example'), '>=', 1, 'pgbun asked that server');
like(slurp_file($node->logfile), qr/server host "db\.pgbun-test\.example" resolved to 127\.0\.0\.1/,
	'the log says what the name resolved to');

my $asked = dns_questions($dnslog, 'db.pgbun-test.example');
reload_conf($node, 'pgbun.dns_max_ttl' => '1s');
ok(wait_until(sub { dns_questions($dnslog, 'db.pgbun-test.example') >= $asked + 2 }),
	'with dns_max_ttl = 1s pgbun asks again and again');
reload_conf($node, 'pgbun.dns_max_ttl' => undef);

############ a resolver that never answers delays no one else

# carol's pool keeps an idle server (session mode); dave holds one in a transaction
my $held = pgbun_session($node, login_of('dave'));
ok($held->connected, 'dave connects');
$held->query('BEGIN');
my ($hpid) = $held->query('SELECT pg_backend_pid()');

reload_conf($node,
	'pgbun.dns_servers' => "127.0.0.1:$stuck_port",
	'pgbun.dns_timeout' => '5s',
	'pgbun.server_host' => 'slow.pgbun-test.example');
ok( wait_until(
		sub {
			slurp_file($node->logfile) =~ /pgbun\.server_host.*slow|slow\.pgbun-test\.example/
			  || $node->safe_psql('postgres', "SHOW pgbun.server_host") eq 'slow.pgbun-test.example';
		}),
	'reloaded onto a name the stuck resolver is asked for');

my $erin = raw_connect($node);
my $erin_port = $erin->{sock}->sockport;
$erin->send_bytes(PgbunTest::Raw::startup_packet([ user => 'erin', database => 'postgres' ]));
my $t0 = time;
my ($ok, $last) = poll_sql($node, "SELECT state FROM pgbun.clients WHERE port = $erin_port", 'login');
# erin authenticates, then waits for the pool's first server (no address yet)
my $r = $erin->authenticate(password => 'erin-pw', user => 'erin', secs => 1);
ok(!$r->{ok} && !$r->{error}, 'erin (a new pool) waits: no address to open a server with');
my ($hout, $herr) = $held->query("SELECT 'held ' || pg_backend_pid()");
is($hout, "held $hpid", 'meanwhile the client holding a server is served, on the same backend');
my ($rc, $cout, $cerr) = pgbun_psql($node, "SELECT 'carol again'", login_of('carol'), timeout => 20);
is($cout, 'carol again', 'and a new client of a pool with an idle server is served')
  or diag("rc $rc: $cerr");
is($node->safe_psql('postgres', "SELECT state FROM pgbun.clients WHERE port = $erin_port"),
	'waiting_login', 'erin is still waiting');
$r = $erin->authenticate(password => 'erin-pw', user => 'erin', secs => 30);
my $took = time - $t0;
is($r->{error}{C} // '', '08006', 'after pgbun.dns_timeout erin gets 08006')
  or diag(explain($r));
like($r->{error}{M} // '', qr/^pgbun: could not resolve server host "slow\.pgbun-test\.example": timed out/,
	'saying the name could not be resolved in time');
cmp_ok($took, '<', 25, sprintf('within a bound of dns_timeout (%.1f s)', $took));
$held->query('COMMIT');
$held->quit;

############ a name the DNS server does not know

reload_conf($node,
	'pgbun.dns_servers' => "127.0.0.1:$dns_port",
	'pgbun.server_host' => 'nowhere.pgbun-test.example');
ok(wait_until(sub { dns_questions($dnslog, 'nowhere.pgbun-test.example') >= 1 }),
	'the new name is looked up at reload');
my $frank = raw_connect($node);
$r = $frank->login(login_of('frank'), secs => 20);
is($r->{error}{C} // '', '08006', 'a client needing a server for an unknown name gets 08006');
like($r->{error}{M} // '', qr/^pgbun: could not resolve server host "nowhere\.pgbun-test\.example"/,
	'with the name in the message');

############ and back to a name that works

reload_conf($node, 'pgbun.server_host' => 'db.pgbun-test.example');
ok( wait_until(
		sub {
			(undef, $out) = pgbun_psql($node, $via_tcp, login_of('frank'), timeout => 20);
			return $out eq 'tcp';
		}),
	'back on a known name, the pool that failed is served');

check_server_same($node, $identity, 'end of 252');
stop_node($node);
done_testing();

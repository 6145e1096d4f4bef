# 322_targets_dns: host names in pgbun.databases host lists are looked up
# with c-ares inside the worker's loop (dns.c), each on its own:
#
#  - a name only a DNS server knows (a tiny responder in this script, as in
#    t/252) resolves and is used; pgbun.dns_max_ttl makes pgbun ask again;
#  - a name the DNS server does not know: 08006 at once, saying so;
#  - a list with an unknown name first and a known one second works.
use strict;
use warnings FATAL => 'all';

use IO::Socket::INET;
use POSIX ();
use Socket qw(inet_aton);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunDns;

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $dnslog = "$tmp/dns.log";
my ($dns_pid, $dns_port) = start_fake_dns({ 'db.pgbun-test.example' => '127.0.0.1' }, $dnslog);

my $node = pgbun_node(
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.query_wait_timeout' => '60s',
		'pgbun.dns_servers' => "127.0.0.1:$dns_port",
		'pgbun.dns_max_ttl' => '1s',
	},
	hba_extra => [ 'host all all 127.0.0.1/32 md5' ]);
my $port = $node->port;
$node->safe_psql('postgres', "SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-secret';");
my %login = (user => 'app', password => 'app-secret');
reload_sync($node, \%login, 'pgbun.databases' => join('; ',
	"named = host=db.pgbun-test.example port=$port dbname=postgres",
	"unknown = host=nx.pgbun-test.example port=$port dbname=postgres",
	"mixed = host=nx.pgbun-test.example,db.pgbun-test.example port=$port dbname=postgres"));

my ($rc, $out, $err) = pgbun_psql($node, 'SELECT inet_server_port()', %login, dbname => 'named');
is($out, $port, 'a host name only the DNS server knows is looked up and used') or diag($err);
ok(dns_questions($dnslog, 'db.pgbun-test.example') >= 1, 'the DNS server was asked');

my $t0 = time;
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %login, dbname => 'unknown');
my $took = time - $t0;
isnt($rc, 0, 'a host name nobody knows fails');
like($err, qr/pgbun: no server available for database "unknown": no host of the list could be resolved/,
	'... saying why');
ok($took < 15, sprintf('... at once (%.1f s)', $took));

($rc, $out, $err) = pgbun_psql($node, 'SELECT inet_server_port()', %login, dbname => 'mixed');
is($out, $port, 'an unknown name first in the list: the next host is used') or diag($err);

my $before = dns_questions($dnslog, 'db.pgbun-test.example');
ok(wait_until(sub { dns_questions($dnslog, 'db.pgbun-test.example') > $before }, 30),
	'pgbun.dns_max_ttl: the name is looked up again');
($rc, $out, $err) = pgbun_psql($node, 'SELECT inet_server_port()', %login, dbname => 'named');
is($out, $port, 'and still used') or diag($err);

# a reload that drops the names: they are not looked up any more
reload_sync($node, \%login, 'pgbun.databases' => "other = host=127.0.0.1 port=$port dbname=postgres");
my $asked = dns_questions($dnslog, 'db.pgbun-test.example');
sleep 3;
is(dns_questions($dnslog, 'db.pgbun-test.example'), $asked, 'a name no entry lists is not looked up again');
($rc, $out, $err) = pgbun_psql($node, 'SELECT inet_server_port()', %login, dbname => 'other');
is($out, $port, 'the new entry works') or diag($err);

stop_node($node);
done_testing();

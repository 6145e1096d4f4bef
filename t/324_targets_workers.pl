# 324_targets_workers: host lists with pgbun.workers = 2. The host state is
# shared: least-conn counts every worker's server connections, and what one
# worker learnt about a host (its role, that it is down) the other uses.
# The one server is reached two ways (TCP and its Unix socket), as two hosts.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use PgbunTest;

my $node = pgbun_node(
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.workers' => '2',
		'pgbun.server_tls_sslmode' => 'disable',
		'pgbun.server_login_retry' => '5s',
		'pgbun.server_login_retry_max' => '5s',
		'pgbun.query_wait_timeout' => '60s',
	},
	hba_extra => [ 'host all all 127.0.0.1/32 md5' ]);
my $port = $node->port;
my $sock = $node->host;
my $dead = PostgreSQL::Test::Cluster::get_free_port();	# nothing listens there
$node->safe_psql('postgres', "SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-secret';");
my %login = (user => 'app', password => 'app-secret');
reload_sync($node, \%login, 'pgbun.databases' => join('; ',
	"two = host=127.0.0.1,$sock port=$port dbname=postgres load_balance_hosts=least-conn",
	"down = host=127.0.0.1 port=$dead dbname=postgres"));

my @sessions = map { pgbun_session($node, %login, dbname => 'two') } 1 .. 8;
is(scalar(grep { ($_->query('SELECT 1') // '') eq '1' } @sessions), 8, 'eight sessions of "two"');
my $by_host = $node->safe_psql('postgres',
	"SELECT host, count(*) FROM pgbun.servers WHERE target = 'two' GROUP BY host ORDER BY host");
my %n = map { split /\|/ } split /\n/, $by_host;
ok(($n{'127.0.0.1'} // 0) >= 3 && ($n{$sock} // 0) >= 3,
	"least-conn spreads them over both hosts ($by_host)");
my $workers = $node->safe_psql('postgres', "SELECT count(DISTINCT worker) FROM pgbun.servers WHERE target = 'two'");
diag("server connections of \"two\" on $workers worker(s)");
is($node->safe_psql('postgres', "SELECT sum(sv_active) FROM pgbun.hosts WHERE database = 'two'"), '8',
	'pgbun.hosts counts every worker\'s connections');
$_->quit foreach @sessions;

# a host found down by one worker is down for the other: both fail at once
my @errs;
for (1 .. 6)
{
	my $t0 = time;
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %login, dbname => 'down');
	push @errs, [ $rc, $err, time - $t0 ];
}
is(scalar(grep { $_->[0] != 0 && $_->[1] =~ /pgbun: no server available for database "down": all hosts are down/ } @errs), 6,
	'every client of a dead host gets 08006 "all hosts are down", whichever worker it lands on')
  or diag(explain(\@errs));
ok(!grep({ $_->[2] > 15 } @errs), 'at once');
is($node->safe_psql('postgres', "SELECT failures FROM pgbun.hosts WHERE database = 'down'"), '1',
	'one failed attempt: the host stays down for both workers until its retry (server_login_retry 5s)');

stop_node($node);
done_testing();

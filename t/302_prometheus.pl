# 302_prometheus: a real Prometheus server (Debian's prometheus package)
# scrapes pgbun's /metrics every second: the target is up in its own
# /api/v1/targets, and under load histogram_quantile(0.95, rate(...)) over
# pgbun's query histogram returns a number through /api/v1/query. Skipped,
# with a message, only when the prometheus binary is not installed.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;
use File::Path qw(make_path);
use IPC::Run;
use JSON::PP;

my $prometheus = '/usr/bin/prometheus';
plan skip_all => "$prometheus is not installed (Debian package prometheus, in PGBUN_TEST_PACKAGES of test/lib.sh)"
  unless -x $prometheus;

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(name => 'prom', conf => { 'pgbun.metrics_port' => $mport });
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-pw';");
my $identity = server_identity($node);
my %app = (user => 'app', password => 'app-pw');

# Prometheus with its own config and storage, on a free port, scraping pgbun
my $pport = PostgreSQL::Test::Cluster::get_free_port();
my $dir = "$PostgreSQL::Test::Utils::tmp_check/prometheus";
make_path("$dir/data");
open my $fh, '>', "$dir/prometheus.yml" or die "prometheus.yml: $!";
print $fh <<"EOF";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pgbun
    static_configs:
      - targets: ['127.0.0.1:$mport']
EOF
close $fh;
my $plog = "$dir/prometheus.log";
my $h = IPC::Run::start(
	[
		$prometheus, "--config.file=$dir/prometheus.yml",
		"--storage.tsdb.path=$dir/data", "--web.listen-address=127.0.0.1:$pport",
		'--log.level=info'
	],
	'<', '/dev/null', '>', $plog, '2>&1');
END { eval { $h->kill_kill if $h; }; }

sub prom_log { return eval { slurp_file($plog) } // ''; }

# A GET on Prometheus' API, decoded; undef if it did not answer JSON.
sub api
{
	my ($path) = @_;
	my ($st, undef, $body) =
	  http_request($pport, "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 10);
	return undef unless $st == 200;
	return eval { decode_json($body) };
}

sub urlencode
{
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord($1))/ge;
	return $s;
}

ok(wait_until(sub { my ($st) = http_get($pport, '/-/ready'); return $st == 200; }, 60, 0.2),
	'Prometheus is ready')
  or diag(prom_log());

my $target;
ok( wait_until(
		sub {
			my $t = api('/api/v1/targets') or return 0;
			($target) = grep { $_->{labels}{job} eq 'pgbun' } @{ $t->{data}{activeTargets} // [] };
			return $target && $target->{health} eq 'up';
		},
		60, 0.5),
	'the pgbun target is up in /api/v1/targets')
  or diag(explain($target), prom_log());
is($target->{scrapeUrl}, "http://127.0.0.1:$mport/metrics", 'it scrapes pgbun\'s /metrics');
is($target->{lastError} // '', '', 'the last scrape had no error');

# load through pgbun while Prometheus scrapes; the quantile needs two scrapes
# with growing counters inside the rate window
my $load = pgbun_session($node, %app);
ok($load->connected, 'a load client connects') or diag($load->connect_error);
my $expr = 'histogram_quantile(0.95, rate(pgbun_query_duration_seconds_bucket{database="postgres",user="app"}[15s]))';
my ($value, $answer);
ok( wait_until(
		sub {
			$load->query('SELECT count(*) FROM generate_series(1, 1000)') for 1 .. 20;
			$answer = api('/api/v1/query?query=' . urlencode($expr)) or return 0;
			my $r = $answer->{data}{result} // [];
			return 0 unless @$r == 1;
			$value = $r->[0]{value}[1];
			return defined $value && $value =~ /^[0-9.e+-]+$/i && $value ne 'NaN';
		},
		90, 0.5),
	"histogram_quantile(0.95, rate(pgbun_query_duration_seconds_bucket[15s])) is a number ($value)")
  or diag(explain($answer));
cmp_ok($value, '>', 0, 'a positive one');
cmp_ok($value, '<=', 10, 'inside the buckets (at most 10 s)');

# the counters Prometheus stored are pgbun's
my $q = api('/api/v1/query?query=' . urlencode('pgbun_queries_total{database="postgres",user="app"}'));
my $stored = $q->{data}{result}[0]{value}[1] // 0;
cmp_ok($stored, '>=', 20, "Prometheus stored pgbun_queries_total ($stored)");
$q = api('/api/v1/query?query=' . urlencode('up{job="pgbun"}'));
is($q->{data}{result}[0]{value}[1] // '', '1', 'up{job="pgbun"} is 1');
$load->quit;

$h->kill_kill;
undef $h;
check_server_same($node, $identity, 'after the Prometheus scrapes');
stop_node($node);
done_testing();

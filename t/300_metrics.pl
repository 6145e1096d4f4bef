# 300_metrics: pgbun.metrics_port serves Prometheus metrics whose numbers
# agree with the SQL views (queries, histogram counts), counts server errors
# by SQLSTATE class and client login failures; promtool check metrics
# (Debian's prometheus package) accepts the exposition; bad HTTP input
# (garbage, an oversized head, unknown paths and methods) gets 4xx answers
# and never hurts the pooler's clients; GET / and /status.json answer.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(name => 'metrics', conf => { 'pgbun.metrics_port' => $mport });
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 'alice-pw';");

# One HTTP exchange on a fresh connection: (status, headers, body).
sub http
{
	my ($raw) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 10)
	  or return (0, '', "connect: $!");
	print $s $raw;
	local $/;
	my $resp = <$s> // '';
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $resp, 2;
	my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
	return ($status // 0, $head // '', $body // '');
}

sub get { return http("GET $_[0] HTTP/1.1\r\nHost: localhost\r\n\r\n"); }

# The value of one sample (exact name and label text) in an exposition.
sub sample
{
	my ($text, $series) = @_;
	foreach my $line (split /\n/, $text)
	{
		return $1 if $line =~ /^\Q$series\E (\S+)$/;
	}
	return undef;
}

my $pool = '{database="postgres",user="alice"}';
foreach my $i (1 .. 5)
{
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'alice', password => 'alice-pw');
	is($rc, 0, "query $i through pgbun") or diag($err);
}
# a server error of class 42 (undefined table) and one of class 22 (division by zero)
pgbun_psql($node, 'SELECT * FROM no_such_table', user => 'alice', password => 'alice-pw');
pgbun_psql($node, 'SELECT 1/0', user => 'alice', password => 'alice-pw');
# a failed login of a pool that exists
pgbun_psql($node, 'SELECT 1', user => 'alice', password => 'wrong');

my ($st, $head, $m) = get('/metrics');
is($st, 200, 'GET /metrics is 200');
like($head, qr{Content-Type: text/plain; version=0\.0\.4}i, 'Prometheus text format');
my $q = sample($m, "pgbun_queries_total$pool");
my $view_q = $node->safe_psql('postgres',
	"SELECT total_query_count FROM pgbun.stats WHERE database = 'postgres'");
ok(defined $q && $q >= 7, "queries counted ($q)");
my ($hc) = sample($m, "pgbun_query_duration_seconds_count$pool");
is($hc, $q, 'query histogram count = queries_total');
is(sample($m, qq{pgbun_query_duration_seconds_bucket{database="postgres",user="alice",le="+Inf"}}), $q,
	'+Inf bucket = count');
is(sample($m, "pgbun_transactions_total$pool"), sample($m, "pgbun_transaction_duration_seconds_count$pool"),
	'transaction histogram count = transactions_total');
ok(defined $view_q && $view_q >= $q, "pgbun.stats agrees (view $view_q >= metrics $q)");
is(sample($m, qq{pgbun_server_errors_total{database="postgres",user="alice",class="42"}}), 1, 'one 42xxx error');
is(sample($m, qq{pgbun_server_errors_total{database="postgres",user="alice",class="22"}}), 1, 'one 22xxx error');
is(sample($m, "pgbun_client_logins_total$pool"), 7, 'seven logins');
is(sample($m, "pgbun_client_login_failures_total$pool"), 1, 'one login failure');
is(sample($m, qq{pgbun_pooler_errors_total{database="",user="",class="28"}}), 1,
	'the 28P01 pgbun sent counted as a pooler error');
like($m, qr/^pgbun_host_up\{host="[^"]+"\} 1$/m, 'host up');

SKIP:
{
	skip 'promtool (Debian prometheus) is not installed', 1 unless -x '/usr/bin/promtool';
	my $file = "$PostgreSQL::Test::Utils::tmp_check/metrics.txt";
	open my $fh, '>', $file or die;
	print $fh $m;
	close $fh;
	my $out = `/usr/bin/promtool check metrics < $file 2>&1`;
	is($?, 0, 'promtool check metrics passes') or diag($out);
}

# --- bad input: answered with 4xx or dropped, the worker goes on
my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgbun worker'");
is((http("\x16\x03\x01\x00\x05hello\r\n\r\n"))[0], 400, 'garbage is 400');
is((http("GET / HTTP/1.1\r\nX: " . ('a' x 20000) . "\r\n\r\n"))[0], 431, 'an oversized head is 431');
is((http("GET / HTTP/1.1\r\n" . join('', map { "H$_: x\r\n" } 1 .. 40) . "\r\n"))[0], 431,
	'too many header fields is 431');
is((get('/nope'))[0], 404, 'unknown path is 404');
is((http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))[0], 405, 'POST is 405');
my @slow = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport) } 1 .. 20;
print $_ "GET /met" foreach grep { defined } @slow;
my ($rc, $out) = pgbun_psql($node, 'SELECT 42', user => 'alice', password => 'alice-pw');
is($out, '42', 'clients are served while slow HTTP clients hold connections');
is((get('/metrics'))[0], 200, 'and so are scrapes');
close $_ foreach grep { defined } @slow;
is($node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgbun worker'"),
	$pid, 'the worker survived the bad input');

# --- the status page and its data
my ($s1, undef, $html) = get('/');
is($s1, 200, 'GET / is 200');
like($html, qr/<canvas id="c_tps"/, 'the status page has its charts');
unlike($html, qr/(?:src|href)="https?:/, 'no external assets');
my ($s2, undef, $json) = get('/status.json');
is($s2, 200, 'GET /status.json is 200');
like($json, qr/"database":"postgres","user":"alice"/, 'status.json lists the pool');

stop_node($node);
done_testing();

# 304_status_browser: the status page in a real browser (Debian's chromium,
# headless). The DOM chromium renders from GET / shows the pools table with
# the pooled database, the hosts table (up) and the clients table; the page
# refreshes itself from /status.json (its chart legend appears only after a
# second poll); its transaction count equals pgbun.stats and goes up between
# two renderings with load in between. Skipped, with a message, only when
# chromium is not installed (PGBUN_TEST_PACKAGES in test/lib.sh has it).

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use IPC::Run;

my ($chromium) = grep { -x $_ } qw(/usr/bin/chromium /usr/bin/chromium-browser);
plan skip_all => 'chromium is not installed (Debian package chromium, in PGBUN_TEST_PACKAGES of test/lib.sh)'
  unless $chromium;

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(name => 'browser', conf => { 'pgbun.metrics_port' => $mport });
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-pw';");
my $identity = server_identity($node);
my %app = (user => 'app', password => 'app-pw');
my $profile = "$PostgreSQL::Test::Utils::tmp_check/chromium-profile";

# The DOM after chromium has run the page's script for a few (virtual) seconds.
sub render
{
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(
			[
				$chromium, '--headless', '--no-sandbox', '--disable-gpu',
				'--no-first-run', "--user-data-dir=$profile",
				'--virtual-time-budget=4000', '--dump-dom', "http://127.0.0.1:$mport/"
			],
			'<', '/dev/null', '>', \$out, '2>', \$err,
			IPC::Run::timeout(90));
		1;
	};
	diag("chromium did not finish: $@\n$err") unless $ok;
	return $out;
}

# The cells of the pools table's row of a pool.
sub pool_row
{
	my ($dom, $pool) = @_;
	my ($row) = $dom =~ m{<tr data-pool="\Q$pool\E">(.*?)</tr>}s;
	return undef unless defined $row;
	return [ map { s/<[^>]*>//gr } $row =~ m{<td[^>]*>(.*?)</td>}gs ];
}

my $held = pgbun_session($node, %app, application_name => 'browser-test');
ok($held->connected, 'a client connects through pgbun') or diag($held->connect_error);
$held->query('SELECT 1');

my $dom1 = render();
like($dom1, qr{<title>pgbun status</title>}, 'chromium rendered the status page');
my $row1 = pool_row($dom1, 'postgres/app');
ok($row1, 'the pools table has the pooled database postgres (user app)') or diag($dom1);
is($row1->[0], 'postgres', 'database cell');
is($row1->[1], 'app', 'user cell');
is($row1->[3], 1, 'one active client');
like($dom1, qr{<td class="l up">up</td>}, 'the hosts table shows the host up');
like($dom1, qr{<td class="l">browser-test</td>}, 'the clients table lists the client by application_name');
like($dom1, qr{<div class="legend" id="legend"><span>.*postgres/app</span>}s,
	'the page polled /status.json more than once (the charts have data)');
my ($summary) = $dom1 =~ m{<div id="summary">(.*?)</div>}s;
like($summary // '', qr/^pgbun \S+ /, 'the summary line is filled in, no fetch error');
like($summary // '', qr/\b1 pools\b/, 'and counts one pool');
is($row1->[10], $node->safe_psql('postgres', "SELECT total_xact_count FROM pgbun.stats WHERE database = 'postgres'"),
	'the xacts cell equals pgbun.stats');

# load, then render again: the numbers moved
$held->query('SELECT 2') for 1 .. 25;
my $dom2 = render();
my $row2 = pool_row($dom2, 'postgres/app');
ok($row2, 'the second rendering has the pool too');
cmp_ok($row2->[10], '>=', $row1->[10] + 25, "xacts went from $row1->[10] to $row2->[10] with 25 transactions between");
cmp_ok($row2->[11], '>=', $row1->[11] + 25, "queries went from $row1->[11] to $row2->[11]");
is($row2->[10], $node->safe_psql('postgres', "SELECT total_xact_count FROM pgbun.stats WHERE database = 'postgres'"),
	'and equal pgbun.stats again');

$held->quit;
check_server_same($node, $identity, 'after the browser');
stop_node($node);
done_testing();

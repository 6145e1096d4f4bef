# 246_client_write_events: a client's socket takes write events only while a
# write to it is stuck (sbuf_out_on_demand from accept). Over TCP and over
# pgbun's Unix socket, a client that stops reading a large result until the
# whole path is stuck (its socket full, pgbun holding the server, the server
# waiting in ClientWrite) and then reads gets every row, exactly what the
# server gives a direct client; it does so twice on one connection (the
# write events go on and off again), and the connection then answers the
# next query at once.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(
	name => 'wevents',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '2',
		'pgbun.log_connections' => 'off',
	});
$node->safe_psql('postgres', q{CREATE ROLE alice LOGIN PASSWORD 'alice-pw'});
my %alice = (user => 'alice', password => 'alice-pw', database => 'postgres');

my $rows = 20000;
my $width = 1000;
# what a direct client gets: the row count and the bytes of every value
my $direct = $node->safe_psql('postgres',
	"SELECT count(*) || '|' || sum(length(v)) FROM (SELECT repeat(md5(i::text), $width / 32) AS v FROM generate_series(1, $rows) i) s");

sub stalled_read
{
	my ($raw, $label, $round) = @_;
	my $tag = "pgbun246 $label $round";
	$raw->send_bytes(PgbunTest::Raw::query_message(
		"SELECT /* $tag */ repeat(md5(i::text), $width / 32) AS v FROM generate_series(1, $rows) i"));
	ok( wait_until(
			sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%$tag%' AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()"
				) eq '1';
			}),
		"$label, round $round: the client does not read; the server waits in ClientWrite");
	my $msgs = read_until($raw, 'Z');
	my ($n, $bytes) = (0, 0);
	my $tagline = '';
	foreach my $m (@$msgs)
	{
		next unless defined $m->{type};
		if ($m->{type} eq 'D')
		{
			my ($cols, $len) = unpack('nN', $m->{body});
			$n++;
			$bytes += $len;
		}
		$tagline = unpack('Z*', $m->{body}) if $m->{type} eq 'C';
	}
	is("$n|$bytes", $direct, "$label, round $round: then it reads every row, as a direct client gets them");
	is($tagline, "SELECT $rows", "$label, round $round: and the command tag");
	is($msgs->[-1]{type} // 'none', 'Z', "$label, round $round: and ReadyForQuery");
}

my $unix_path = $node->host . '/.s.PGSQL.' . pgbun_port($node);
foreach my $kind ([ 'TCP', raw_connect($node) ], [ 'Unix socket', PgbunTest::Raw->new(path => $unix_path) ])
{
	my ($label, $raw) = @$kind;
	my $r = $raw->login(%alice);
	ok($r->{ok}, "$label: a client logs in") or diag(explain($r));
	stalled_read($raw, $label, $_) foreach 1 .. 2;
	is($raw->query('SELECT 40 + 2')->{rows}[0][0] // '', '42', "$label: the next query is answered");
	$raw->terminate;
}

stop_node($node);
done_testing();

# 303_http_abuse: bad and abundant HTTP clients on the metrics port never
# stall the pooler's clients nor kill its worker. While a pooled client runs
# one query after another (each must be answered, within a generous 10 s),
# test/python/http_abuse.py sends: 100 malformed requests of ten kinds (each
# gets a 4xx), 20 requests with a 1 MiB header (431), 50 slowloris clients
# writing a byte a second (closed unanswered by pgbun's 10 s deadline), 40
# requests dribbled a byte every 2 ms (answered right), and
# 1,000 concurrent scrapes (each answered whole: 200, or 503 over the
# connection limit). Then the worker runs out of file descriptors: the
# metrics listener pauses instead of spinning. Afterwards the worker has the
# same pid and /metrics answers.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(time usleep);
use IO::Select;
use IO::Socket::INET;

my $python = '/usr/bin/python3';
my $abuse = "$FindBin::RealBin/../test/python/http_abuse.py";

my $mport = PostgreSQL::Test::Cluster::get_free_port();
my $node = pgbun_node(name => 'abuse', conf => { 'pgbun.metrics_port' => $mport });
$node->safe_psql('postgres',
	"SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-pw';");
my $identity = server_identity($node);
my $worker = worker_pid($node);
my $pooled = pgbun_session($node, user => 'app', password => 'app-pw');
ok($pooled->connected, 'the pooled client connects') or diag($pooled->connect_error);
my $backend = $pooled->query('SELECT pg_backend_pid()');
is((http_get($mport, '/metrics'))[0], 200, '/metrics answers before');

# Run the given abuse phases at once; meanwhile the pooled client queries.
# Returns (list of decoded phase results, query stats).
my $qseq = 0;

sub abuse
{
	my (@phases) = @_;
	my @runs;
	foreach my $p (@phases)
	{
		my $r = { args => $p, out => '', err => '' };
		$r->{h} = IPC::Run::start([ $python, $abuse, $mport, @$p ],
			'<', '/dev/null', '>', \$r->{out}, '2>', \$r->{err}, IPC::Run::timeout(240));
		push @runs, $r;
	}
	my %q = (count => 0, unanswered => 0, wrong => 0, max => 0);
	while (grep { $_->{h}->pumpable } @runs)
	{
		$_->{h}->pump_nb foreach grep { $_->{h}->pumpable } @runs;
		my $n = ++$qseq;
		my $t0 = time;
		my $got = $pooled->query("SELECT $n", 10);
		my $took = time - $t0;
		$q{count}++;
		$q{max} = $took if $took > $q{max};
		if (!defined $got) { $q{unanswered}++; }
		elsif ($got ne "$n") { $q{wrong}++; }
		usleep(20_000);
	}
	my @res;
	foreach my $r (@runs)
	{
		eval { $r->{h}->finish; };
		my $res = eval { decode_json($r->{out}) };
		diag("http_abuse.py @{ $r->{args} }: no result: $@ $r->{err}") unless $res;
		push @res, $res // { counts => {} };
	}
	return (\@res, \%q);
}

sub check_queries
{
	my ($q, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	cmp_ok($q->{count}, '>', 0, "$label: the pooled client ran $q->{count} queries meanwhile");
	is($q->{unanswered}, 0, "$label: every query was answered within 10 s (longest " . sprintf('%.3f', $q->{max}) . ' s)');
	is($q->{wrong}, 0, "$label: with the right result");
}

sub counts_text
{
	my ($c) = @_;
	return join(', ', map { "$_=$c->{$_}" } sort keys %$c);
}

# --- malformed requests and huge headers: 120 at once, under the limit of
# 128 connections, so each gets its own answer
my ($res, $q) = abuse([ 'garbage', 100 ], [ 'huge', 20 ]);
my ($garbage, $huge) = @$res;
my @bad = grep { !/^4\d\d$/ } keys %{ $garbage->{counts} };
is(scalar(@bad), 0, 'every malformed request got a 4xx answer: ' . counts_text($garbage->{counts}));
is($huge->{counts}{431} // 0, 20, 'every 1 MiB header got 431: ' . counts_text($huge->{counts}));
check_queries($q, 'garbage and huge headers');

# --- requests dribbled a byte every 2 ms: the head is parsed once it may be
# whole (a blank line after text), and still answered right
($res, $q) = abuse([ 'dribble', 40 ]);
my ($dribble) = @$res;
is_deeply(
	$dribble->{counts},
	{ 'crlf:200' => 10, 'lf:200' => 10, 'empty_lines:200' => 10, 'bad_header:400' => 10 },
	'dribbled requests: whole ones answered 200, one with a bad header line 400: ' . counts_text($dribble->{counts}));
check_queries($q, 'dribbled requests');

# --- slowloris clients (connected first, so they are under the limit) while
# 1,000 scrapes come at once
($res, $q) = abuse([ 'slow', 50 ], [ 'storm', 1000, '--delay', 1 ]);
my ($slow, $storm) = @$res;
is($slow->{counts}{closed} // 0, 50, 'pgbun closed every slowloris client unanswered: ' . counts_text($slow->{counts}));
cmp_ok($slow->{unsent_max}, '>', 0, 'before they finished their requests');
cmp_ok($slow->{max_secs}, '<', 60, "within a bounded time (longest $slow->{max_secs} s; the deadline is 10 s)");
cmp_ok($storm->{nofile}, '>=', 1000, "the scraper could open 1,000 sockets (RLIMIT_NOFILE $storm->{nofile})");
my $answered = ($storm->{counts}{200} // 0) + ($storm->{counts}{503} // 0);
is($answered, 1000, 'each of 1,000 concurrent scrapes got a whole answer, 200 or 503: ' . counts_text($storm->{counts}));
cmp_ok($storm->{counts}{200} // 0, '>', 0, 'scrapes were served');
check_queries($q, 'slowloris and 1,000 scrapes');

# --- the worker out of file descriptors (its soft RLIMIT_NOFILE lowered from
# outside with prlimit, as in t/185): accept() on the metrics port fails with
# EMFILE; the listener pauses (one log line each, backing off) instead of
# spinning on its level-triggered socket, and the scrape waiting in the
# backlog is answered once descriptors are back
SKIP:
{
	skip 'prlimit (util-linux) is not installed', 6 unless -x '/usr/bin/prlimit';
	my $wpid = $worker;
	my ($soft, $hard) = `prlimit --pid $wpid --nofile --noheadings --raw --output=SOFT,HARD` =~ /(\d+)\s+(\d+)/
	  or die "cannot read the worker's RLIMIT_NOFILE";
	opendir(my $dh, "/proc/$wpid/fd") or die "cannot list /proc/$wpid/fd: $!";
	my %used = map { $_ => 1 } grep { /^\d+$/ } readdir($dh);
	closedir($dh);
	my ($first_free) = grep { !$used{$_} } 0 .. (sort { $b <=> $a } keys %used)[0] + 1;
	my $log_count = sub {
		my @n = slurp_file($node->logfile) =~ /pgbun: metrics port: accept failed/g;
		return scalar @n;
	};
	my $before = $log_count->();
	system('prlimit', '--pid', $wpid, "--nofile=$first_free:$hard") == 0 or die 'prlimit failed';
	my $waiting = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 10);
	ok($waiting, 'a scrape connects (into the backlog) while the worker has no free descriptor');
	print $waiting "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" if $waiting;
	ok(wait_until(sub { $log_count->() - $before >= 3 }), 'accept fails with EMFILE and says so');
	sleep(2);
	my $lines = $log_count->() - $before;
	cmp_ok($lines, '<', 30, "the metrics listener backs off instead of spinning ($lines log lines)");
	is($pooled->query('SELECT 77', 10), '77', 'the pooled client goes on meanwhile');
	system('prlimit', '--pid', $wpid, "--nofile=$soft:$hard") == 0 or die 'prlimit failed';
	my $resp = '';
	if ($waiting)
	{
		my $sel = IO::Select->new($waiting);
		my $deadline = time + 30;
		# the listener comes back after its current pause (at most 5 s)
		while (time < $deadline)
		{
			next unless $sel->can_read(1);
			my $n = sysread($waiting, my $chunk, 65536);
			last unless $n;
			$resp .= $chunk;
		}
		close $waiting;
	}
	like($resp, qr{^HTTP/1\.1 200 }, 'the scrape waiting in the backlog is answered once descriptors are back');
	like($resp, qr/^pgbun_info/m, 'with the metrics');
}

# --- afterwards
is((http_get($mport, '/metrics'))[0], 200, '/metrics still answers');
is($pooled->query('SELECT pg_backend_pid()'), $backend, 'the pooled client is on the same server backend');
is(worker_pid($node), $worker, 'the worker never restarted (same pid in pg_stat_activity)');
$pooled->quit;
check_server_same($node, $identity, 'after the HTTP abuse');
stop_node($node);
done_testing();

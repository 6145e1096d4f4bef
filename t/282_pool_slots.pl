# 282_pool_slots: pool slots are freed, so the pool table never fills up
# for good.
#
# The shared table holds 1,024 (database, user) pools. Pools used to live
# for the server's lifetime: after 1,024 distinct pairs every new pair was
# refused. Now a pool with no clients and no server connections is freed
# after pgbun.pool_idle_timeout (and at once when the table is full), so
# 1,100 distinct roles logging in one after another all get in, and the
# pools view empties once they are gone.

use strict;
use warnings FATAL => 'all';

use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $n_roles = 1100;
my $node = pgbun_node(
	name => 'poolslots',
	hba_extra => ['local all all trust'],
	conf => {
		'pgbun.auth_type' => 'trust',
		'pgbun.pool_idle_timeout' => '1s',
		'pgbun.server_idle_timeout' => '300ms',
		'pgbun.log_connections' => 'off',
		'pgbun.log_disconnections' => 'off',
		'log_min_messages' => 'warning',
		'max_connections' => '300',
		# logins may outrun idle servers closing: a refused server login is retried soon
		'pgbun.server_login_retry' => '100ms',
	});
$node->safe_psql('postgres',
	"SELECT format('CREATE ROLE r%s LOGIN', g) FROM generate_series(1, $n_roles) g \\gexec");
my $identity = server_identity($node);

my ($served, $max_pools, $last_error) = (0, 0, '');
my $deadline = time + 600;
for my $i (1 .. $n_roles)
{
	my $ok = 0;
	my $tries = 0;
	while (!$ok && time < $deadline && $tries++ < 100)
	{
		my $raw = raw_connect($node);
		my $r = $raw->login(user => "r$i", database => 'postgres');
		if ($r->{ok})
		{
			my $q = $raw->query('SELECT current_user');
			$ok = ($q->{rows}[0][0] // '') eq "r$i";
			$raw->terminate;
			last if $ok;
		}
		else
		{
			$raw->close;
		}
		# a full table (or a busy server) frees up as idle servers close
		$last_error = $r->{error}{M} // 'no answer';
		usleep(200_000);
	}
	last unless $ok;
	$served++;
	if ($i % 100 == 0)
	{
		my $n = $node->safe_psql('postgres', 'SELECT count(*) FROM pgbun.pools');
		$max_pools = $n if $n > $max_pools;
	}
}
is($served, $n_roles, "$n_roles distinct (database, user) pairs are served, more than the 1,024 pool slots")
  or diag("last error: $last_error");
ok($max_pools <= 1024, "the pools view never lists more than the table ($max_pools seen)");

my ($gone, $last) = poll_sql($node, 'SELECT count(*) FROM pgbun.pools', '0', 60);
ok($gone, 'once everybody left, every pool is freed after pool_idle_timeout') or diag("last: $last");

{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'r1', database => 'postgres');
	ok($r->{ok}, 'a freed pool comes back at the next login') or diag(explain($r));
	is($raw->query('SELECT 6 * 7')->{rows}[0][0] // '', '42', 'and works');
	$raw->terminate;
}

check_server_same($node, $identity, 'end of 282');
stop_node($node);
done_testing();

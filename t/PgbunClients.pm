# PgbunClients - shared part of the client-library TAP tests t/210-t/212
# (asyncpg, psycopg 3, pgjdbc from Debian packages).
#
#  - clients_node():  a pgbun node with a transaction pool of 4 (POOL_SIZE)
#                     for role clientapp (SCRAM password) on database clientdb,
#                     table client_rows, the server also on 127.0.0.1 so the
#                     workloads can run straight against it (the sanity check).
#  - run_workload():  runs one workload script (test/python, test/java) against
#                     the server or through pgbun and asserts: exit 0, its JSON
#                     summary, the rows it left in client_rows; through pgbun
#                     also that the pool never had more than POOL_SIZE server
#                     connections (the role's CONNECTION LIMIT is POOL_SIZE
#                     meanwhile, and pg_stat_activity / pgbun.servers are
#                     sampled while it runs), and that afterwards no server is
#                     active or in a transaction and no client is left.
#  - known_bugs():    the pgbun bugs the workloads still steer around.
#
# Known bugs. Each workload can --avoid named pgbun bugs: it then takes another
# road to the same rows (see AVOIDABLE in the scripts, and README "Testing").
# PGBUN_KNOWN_BUGS lists the bugs not fixed yet (comma-separated; default:
# DEFAULT_KNOWN_BUGS, now empty; '' or 'none': none). For each workload the
# run through pgbun avoids the listed bugs it would hit and is asserted for
# real; then, if there were any, the full workload runs through pgbun once
# more inside a TODO block named after them (a hang ends at its short timeout).
# When a fix merges, drop its name from DEFAULT_KNOWN_BUGS: the full run is
# then asserted for real.

package PgbunClients;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use JSON::PP;
use List::Util qw(sum0);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgbunTest;

our @EXPORT = qw(
  POOL_SIZE known_bugs bugs_hit clients_node run_workload run_with_known_bugs
);

use constant POOL_SIZE => 4;

# The pgbun bugs these workloads hit on the day they were written: name =>
# what goes wrong (the scripts say which of their steps it is).
our %BUGS = (
	'startup-options' =>
	  "options in the startup packet is refused: FATAL 08P01 \"pgbun: unsupported startup parameter: options\"",
	'unnamed-across-sync' =>
	  'an unnamed statement parsed before a Sync is bound after it on another server: 26000',
	'extended-copy' =>
	  'COPY FROM STDIN through the extended protocol (P/B/D/E/Sync, CopyFail, Sync): pgbun counts the Sync '
	  . 'the server ignores during COPY, then "a server answer matched no request": 08006 "protocol tracking lost"',
	'copy-before-response' =>
	  'CopyData/CopyDone sent right behind a COPY FROM STDIN Query, before CopyInResponse, are dropped: '
	  . 'the server waits in COPY for ever',
	'pipeline-error' =>
	  'after a pipeline batch that fails (named statements, an error, Sync), the next batch sometimes gets '
	  . '"a server answer matched no request": 08006 "pgbun: server connection lost: protocol tracking lost"',
	'extended-deallocate-all' =>
	  'DEALLOCATE ALL through the extended protocol is not noticed: the server loses the pgbun_<n> '
	  . 'statements pgbun believes it has, later Binds get 26000',
);
# All of them are fixed (each workload is asserted in full by default); the
# names stay so that PGBUN_KNOWN_BUGS=name can still steer around one when
# bisecting an older pgbun.
our @DEFAULT_KNOWN_BUGS = ();

sub known_bugs
{
	my $v = $ENV{PGBUN_KNOWN_BUGS};
	my @names = !defined $v ? @DEFAULT_KNOWN_BUGS : grep { $_ ne '' && $_ ne 'none' } split /\s*,\s*/, $v;
	foreach my $b (@names)
	{
		die "PGBUN_KNOWN_BUGS: unknown bug '$b' (known: @DEFAULT_KNOWN_BUGS)\n" unless $BUGS{$b};
	}
	return @names;
}

# The known (not yet fixed) bugs among those that a workload would hit.
sub bugs_hit
{
	my %known = map { $_ => 1 } known_bugs();
	return grep { $known{$_} } @_;
}

my $password = 'client-pw';

sub clients_node
{
	my ($name) = @_;
	my $node = pgbun_node(
		name => $name,
		defer_accept => 1,	# real drivers, with pgbun's default TCP_DEFER_ACCEPT
		conf => {
			'pgbun.pool_mode' => 'transaction',
			'pgbun.default_pool_size' => POOL_SIZE,
			'pgbun.max_client_conn' => 300,
			# the direct runs: many more backends than the pool, over TCP
			'max_connections' => 200,
			'listen_addresses' => '127.0.0.1',
		},
		hba_extra => ['host all clientapp 127.0.0.1/32 scram-sha-256']);
	$node->safe_psql(
		'postgres', q{
SET password_encryption = 'scram-sha-256';
CREATE ROLE clientapp LOGIN PASSWORD 'client-pw';
CREATE DATABASE clientdb;
});
	$node->safe_psql(
		'clientdb', q{
CREATE TABLE client_rows (lib text, client int, seq int, val bigint, PRIMARY KEY (lib, client, seq));
GRANT ALL ON client_rows TO clientapp;
});
	return $node;
}

sub client_parses
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(total_client_parse_count), 0) FROM pgbun.stats WHERE database = 'clientdb'");
}

# Wait until no client of the pool is left, no server connection of it is
# active and no backend of the role is busy or in a transaction. A real test,
# or (after a run that hit a known bug) a clean-up that ends stuck backends.
sub settle
{
	my ($node, $label, $assert, $secs) = @_;
	my $sql = q{SELECT (SELECT coalesce(sum(cl_active + cl_waiting), 0) FROM pgbun.pools WHERE database = 'clientdb')
 || ' ' || (SELECT count(*) FROM pgbun.servers WHERE database = 'clientdb' AND state NOT IN ('idle', 'used', 'tested'))
 || ' ' || (SELECT count(*) FROM pg_stat_activity WHERE usename = 'clientapp' AND state <> 'idle')};
	my ($ok, $last) = poll_sql($node, $sql, '0 0 0', $secs // ($assert ? 60 : 20));
	if ($assert)
	{
		ok($ok, "$label: afterwards no client is left, no server active, no backend busy or in a transaction")
		  or diag("clients, active servers, busy backends: $last\n"
			  . $node->safe_psql('postgres', 'SELECT * FROM pgbun.servers'));
		my $servers =
		  $node->safe_psql('postgres', "SELECT count(*) FROM pgbun.servers WHERE database = 'clientdb'");
		cmp_ok($servers, '<=', POOL_SIZE, "$label: pgbun.servers shows at most ${\POOL_SIZE} server connections");
	}
	elsif (!$ok)
	{
		note("$label: not settled ($last); ending the role's backends");
		$node->safe_psql('postgres',
			"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'clientapp'");
		poll_sql($node, $sql, '0 0 0', 30);
	}
	return $ok;
}

=pod

=item run_workload($node, %o)

Runs one workload and asserts what it did. Options:

  label    test name prefix
  cmd      arrayref: the script without connection arguments
  target   'direct' (the server's port) or 'pgbun'
  tag      the lib value of its rows (must be new)
  clients  how many clients the script runs (passed as --clients)
  avoid    arrayref of bug names to pass as --avoid
  expect   hashref: summary fields and the values they must have
  seqs     arrayref: the seq values each client leaves in the table
  named    1: through pgbun, total_client_parse_count must grow
  timeout  seconds the script may run (passed as --timeout; default 180)
  settle_secs  how long to wait for the pool to settle afterwards (default 60)
  outcome_only 1: assert only the exit status, summary and rows

Returns the summary (a hashref, {} if none).

=cut

sub run_workload
{
	my ($node, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $label = $o{label};
	my $pgbun = $o{target} eq 'pgbun';
	my $timeout = $o{timeout} // 180;
	my $port = $pgbun ? pgbun_port($node) : $node->port;
	my @cmd = (
		@{ $o{cmd} },
		'--host' => '127.0.0.1',
		'--port' => $port,
		'--user' => 'clientapp',
		'--database' => 'clientdb',
		'--tag' => $o{tag},
		'--clients' => $o{clients},
		'--timeout' => $timeout);
	push @cmd, '--avoid' => join(',', @{ $o{avoid} }) if @{ $o{avoid} // [] };

	# Through pgbun the role may have only POOL_SIZE backends: a pool that grew
	# past its size would have its server logins refused.
	my $limit = $pgbun ? POOL_SIZE : -1;
	$node->safe_psql('postgres', "ALTER ROLE clientapp CONNECTION LIMIT $limit");
	my $parses = $pgbun ? client_parses($node) : 0;

	my $r = run_sampled(
		$node, \@cmd,
		q{SELECT greatest((SELECT count(*) FROM pg_stat_activity WHERE usename = 'clientapp'),
 (SELECT count(*) FROM pgbun.servers WHERE database = 'clientdb'))},
		env => { PgbunTest::client_env(password => $password) },
		timeout => $timeout + 60);
	is($r->{rc}, 0, "$label: the workload exits 0")
	  or diag("$r->{cmd}\nstdout:\n$r->{out}\nstderr:\n$r->{err}");
	my ($line) = grep { /^\{/ } split /\n/, $r->{out};
	my $s = eval { decode_json($line // '') } // {};
	note("$label summary: " . ($line // 'none'));
	my %want = (failures => 0, clientsDone => $o{clients}, %{ $o{expect} });
	is_deeply({ map { $_ => $s->{$_} } keys %want }, \%want, "$label: the summary adds up")
	  or diag("stderr:\n$r->{err}");

	# the rows, from the server's side
	my $n = $o{clients};
	my @seqs = @{ $o{seqs} };
	my $want_sum = 1000 * scalar(@seqs) * ($n * ($n - 1) / 2) + $n * sum0(@seqs);
	is( $node->safe_psql(
			'clientdb', qq{SELECT count(*) || ' ' || coalesce(sum(val), 0) || ' ' || count(*) FILTER (WHERE seq < 0)
 || ' ' || count(DISTINCT client) FROM client_rows WHERE lib = '$o{tag}'}),
		$n * @seqs . " $want_sum 0 $n",
		"$label: the table has each client's rows (count, sum of val, rolled back ones, clients)");

	if ($o{outcome_only})
	{
		# a full run that may hit a known bug: only its outcome is TODO;
		# the clean-up after it is run_with_known_bugs's
	}
	elsif ($pgbun)
	{
		note("$label: sampled the server $r->{samples} times, at most $r->{max} connections");
		ok($r->{samples} > 0, "$label: sampled the server while the workload ran");
		cmp_ok($r->{max}, '<=', POOL_SIZE,
			"$label: the role never had more than ${\POOL_SIZE} backends, pgbun.servers never more than ${\POOL_SIZE} rows");
		# With several workers a server may be handed from one to another
		# (closed on one, opened on the other): more backends over the run,
		# never more at once (the sampled bound above).
		if ($node->safe_psql('postgres', 'SHOW pgbun.workers') eq '1')
		{
			cmp_ok($s->{backendPids} // 0, '<=', POOL_SIZE,
				"$label: the queries that report pg_backend_pid() ran on at most ${\POOL_SIZE} backends");
		}
		else
		{
			cmp_ok($s->{backendPids} // 0, '>=', 1,
				"$label: the queries that report pg_backend_pid() ran on backends (several workers: no bound over the run)");
		}
		cmp_ok(client_parses($node), '>', $parses,
			"$label: pgbun.stats total_client_parse_count grew (named statements through pgbun)")
		  if $o{named};
		settle($node, $label, 1, $o{settle_secs});
	}
	else
	{
		cmp_ok($s->{backendPids} // 0, '>', POOL_SIZE,
			"$label: straight to the server the clients had their own backends (sanity check of the count)");
		# before a run through pgbun counts the role's backends (the pool's
		# idle server connections from an earlier run may stay)
		my ($ok, $last) = poll_sql(
			$node, q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'clientapp'
 AND pid NOT IN (SELECT remote_pid FROM pgbun.servers WHERE remote_pid IS NOT NULL)}, '0', 60);
		ok($ok, "$label: afterwards the direct clients' backends are gone") or diag("last: $last");
	}
	$node->safe_psql('postgres', 'ALTER ROLE clientapp CONNECTION LIMIT -1');
	return $s;
}

=pod

=item run_with_known_bugs($node, $bugs, %o)

The run through pgbun for a workload that would hit the bugs @$bugs: with the
known ones among them avoided, asserted (run_workload); then, if any was
avoided, the full workload inside a TODO block with a short timeout. %o as
for run_workload, plus expect_avoided (hashref: summary fields that differ
when the bugs are avoided, e.g. copiedIn => 0; keyed by bug name) and tag.

=cut

sub run_with_known_bugs
{
	my ($node, $bugs, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my @hit = bugs_hit(@$bugs);
	my %expect = %{ $o{expect} };
	foreach my $b (@hit)
	{
		%expect = (%expect, %{ $o{expect_avoided}{$b} // {} });
	}
	my $identity = server_identity($node);
	run_workload(
		$node, %o,
		label => "$o{label} through pgbun" . (@hit ? " (avoiding @hit)" : ''),
		target => 'pgbun',
		tag => "$o{tag}-pgbun",
		avoid => \@hit,
		expect => \%expect);
	check_server_same($node, $identity, "$o{label} through pgbun");
	return unless @hit;

	my $todo = "known pgbun bug(s): " . join('; ', map { "$_: $BUGS{$_}" } @hit);
	my $builder = Test::More->builder;
	$builder->todo_start($todo);
	run_workload(
		$node, %o,
		label => "$o{label} through pgbun, full workload",
		target => 'pgbun',
		tag => "$o{tag}-full",
		avoid => [],
		timeout => 45,
		outcome_only => 1);
	$builder->todo_end;
	# whatever the bugs do, the worker must not die
	check_server_same($node, $identity, "$o{label} full workload");
	# clean up after what the bugs left behind (stuck backends, their rows)
	settle($node, "$o{label} full workload", 0);
	$node->safe_psql('clientdb', "DELETE FROM client_rows WHERE lib = '$o{tag}-full'");
	return;
}

1;

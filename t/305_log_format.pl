# 305_log_format: pgbun's log lines carry the key=value fields the README
# promises (event, client, database, user, pool, sqlstate, duration), parsed
# here from three destinations: plain stderr, and the server's jsonlog and
# csvlog (where the SQLSTATE is also the entry's state_code and backend_type
# is "pgbun worker"). Covered: a login, a login failure, a pooler error after login
# (a message over pgbun.max_packet_size) and the per-pool stats line of
# pgbun.stats_period; pgbun.log_pooler_errors = off drops the pooler_error
# lines only.

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use JSON::PP;

# key=value fields of a line (the human message's own "user=..." included:
# they agree); values may be double-quoted with backslash escapes.
sub fields
{
	my ($line) = @_;
	my %f;
	while ($line =~ /(?:^|\s)([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)/g)
	{
		my ($k, $v) = ($1, $2);
		if ($v =~ s/^"(.*)"$/$1/s) { $v =~ s/\\(.)/$1/g; }
		$f{$k} = $v;
	}
	return \%f;
}

# Drive the events on a node: a login, a failed login, a pooler error after
# login, and enough time for two stats lines.
sub drive
{
	my ($node) = @_;
	my %app = (user => 'app', password => 'app-pw');
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %app);
	is($rc, 0, 'a login and a query through pgbun') or diag($err);
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'app', password => 'wrong');
	like($err, qr/28P01|password authentication failed/, 'a login with a wrong password fails');
	my $raw = raw_connect($node);
	my $r = $raw->login(%app, database => 'postgres');
	ok($r->{ok}, 'a raw client logs in') or diag(explain($r));
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT ' . ('1' x 3000)));
	my $msgs = read_until($raw, 'Z', 30);
	is(first_error($msgs)->{C} // '', '08P01', 'a query over max_packet_size gets 08P01 from pgbun');
	$raw->close;
	# pgbun.stats_period = 1s: wait for lines covering the traffic
	sleep(3);
	return;
}

# The pgbun lines of each kind from a list of (message, extra) pairs.
sub check_lines
{
	my ($label, $lines, $extra_check) = @_;
	my %by_event;
	foreach my $l (@$lines)
	{
		my $f = fields($l->{message});
		next unless $f->{event};
		push @{ $by_event{ $f->{event} } }, { %$l, f => $f };
	}

	my ($login) = grep { ($_->{f}{user} // '') eq 'app' } @{ $by_event{client_login} // [] };
	ok($login, "$label: a client_login line") or diag(explain(\%by_event));
	if ($login)
	{
		my $f = $login->{f};
		like($login->{message}, qr/^pgbun: client login/, "$label: it starts with the human message");
		like($f->{client} // '', qr/^127\.0\.0\.1:\d+$/, "$label: client=address:port");
		is($f->{database}, 'postgres', "$label: database=");
		is($f->{pool}, 'postgres/app', "$label: pool=database/user");
		like($f->{duration} // '', qr/^\d+\.\d{6}$/, "$label: duration= in seconds");
		ok(!exists $f->{sqlstate}, "$label: no sqlstate on a login");
	}

	my ($failed) = grep { ($_->{f}{sqlstate} // '') eq '28P01' } @{ $by_event{login_failed} // [] };
	ok($failed, "$label: a login_failed line with sqlstate=28P01");
	if ($failed)
	{
		is($failed->{f}{user}, 'app', "$label: user= of the failed login");
		is($failed->{f}{database}, 'postgres', "$label: database= of the failed login");
		like($failed->{f}{client} // '', qr/^127\.0\.0\.1:\d+$/, "$label: client= of the failed login");
		$extra_check->($failed, '28P01', "$label: login_failed") if $extra_check;
	}

	my @perr = @{ $by_event{pooler_error} // [] };
	my ($auth_err) = grep { ($_->{f}{sqlstate} // '') eq '28P01' } @perr;
	ok($auth_err, "$label: the 28P01 pgbun sent is a pooler_error line (log_pooler_errors)");
	my ($proto) = grep { ($_->{f}{sqlstate} // '') eq '08P01' } @perr;
	ok($proto, "$label: a pooler_error line with sqlstate=08P01") or diag(explain(\@perr));
	if ($proto)
	{
		like($proto->{message}, qr/^pgbun: error sent to the client: pgbun: /, "$label: with the message the client got");
		is($proto->{f}{pool}, 'postgres/app', "$label: pool= of the pooler error");
		is($proto->{f}{user}, 'app', "$label: user= of the pooler error");
		$extra_check->($proto, '08P01', "$label: pooler_error") if $extra_check;
	}

	my ($stats) = grep { ($_->{f}{pool} // '') eq 'postgres/app' } @{ $by_event{stats} // [] };
	ok($stats, "$label: a stats line for the pool (pgbun.stats_period)") or diag(explain($by_event{stats}));
	if ($stats)
	{
		my $f = $stats->{f};
		like($stats->{message}, qr/^pgbun: stats: /, "$label: stats line starts with its human message");
		foreach my $k (qw(xacts_per_s queries_per_s in_bytes_per_s out_bytes_per_s xact_us query_us wait_us duration))
		{
			like($f->{$k} // '', qr/^\d+(?:\.\d+)?$/, "$label: stats $k= is a number");
		}
		is($f->{database}, 'postgres', "$label: stats database=");
		is($f->{user}, 'app', "$label: stats user=");
	}
	# at least one stats line saw the traffic
	my @busy = grep { ($_->{f}{pool} // '') eq 'postgres/app' && $_->{f}{queries_per_s} > 0 } @{ $by_event{stats} // [] };
	ok(scalar(@busy), "$label: a stats line with queries_per_s > 0");
	return;
}

my %conf = (
	'pgbun.stats_period' => '1s',
	'pgbun.max_packet_size' => '1024',
	'log_min_messages' => 'log');

# --- plain stderr (the test cluster's log file)
{
	# log_statement = all: reload_sync sees the worker apply a reload
	my $node = pgbun_node(name => 'stderrlog', conf => { %conf, 'log_statement' => 'all' });
	$node->safe_psql('postgres',
		"SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-pw';");
	drive($node);
	my @lines;
	foreach my $line (split /\n/, slurp_file($node->logfile))
	{
		# after the log_line_prefix: "LOG:  pgbun: ..."
		push @lines, { message => $1 } if $line =~ /\bLOG:\s+(pgbun: .*)$/;
	}
	check_lines('stderr', \@lines);

	# pgbun.log_pooler_errors = off: the client still gets its error, the log
	# no pooler_error line (the other events stay)
	reload_sync($node, { user => 'app', password => 'app-pw' }, 'pgbun.log_pooler_errors' => 'off');
	my $count = sub { my @n = slurp_file($node->logfile) =~ /event=pooler_error/g; return scalar @n; };
	my $logins = sub { my @n = slurp_file($node->logfile) =~ /event=client_login/g; return scalar @n; };
	my $before = $count->();
	my $logins_before = $logins->();
	my $raw = raw_connect($node);
	ok($raw->login(user => 'app', password => 'app-pw', database => 'postgres')->{ok}, 'a raw client logs in again');
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT ' . ('1' x 3000)));
	is(first_error(read_until($raw, 'Z', 30))->{C} // '', '08P01', 'log_pooler_errors off: the client still gets 08P01');
	$raw->close;
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'app', password => 'app-pw');
	is($rc, 0, 'a later login works');
	ok(wait_until(sub { $logins->() >= $logins_before + 2 }), 'client_login lines still come');
	is($count->(), $before, 'log_pooler_errors off: no pooler_error line');
	stop_node($node);
}

# One csvlog record: fields separated by commas, double-quoted with "" inside.
sub csv_fields
{
	my ($line) = @_;
	my @f;
	while ($line =~ /\G(?:"((?:[^"]|"")*)"|([^,]*))(,|$)/g)
	{
		my ($quoted, $plain, $sep) = ($1, $2, $3);
		push @f, defined $quoted ? $quoted =~ s/""/"/gr : $plain;
		last if $sep eq '';
	}
	return \@f;
}

# --- jsonlog (PostgreSQL 15): one JSON object per line; csvlog at the same time
{
	my $node = pgbun_node(
		name => 'jsonlog',
		conf => {
			%conf,
			'log_destination' => 'jsonlog,csvlog',
			'logging_collector' => 'on',
			'log_directory' => 'log',
			'log_filename' => 'pgbun.log',
		});
	$node->safe_psql('postgres',
		"SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD 'app-pw';");
	drive($node);
	my $file = $node->data_dir . '/log/pgbun.json';
	ok(-f $file, 'the jsonlog file exists');
	my (@lines, $bad);
	foreach my $line (split /\n/, eval { slurp_file($file) } // '')
	{
		my $j = eval { decode_json($line) };
		if (!$j) { $bad++; next; }
		next unless ($j->{message} // '') =~ /^pgbun: /;
		push @lines, { message => $j->{message}, json => $j };
	}
	ok(!$bad, 'every jsonlog line is one JSON object');
	check_lines(
		'jsonlog',
		\@lines,
		sub {
			my ($l, $code, $label) = @_;
			is($l->{json}{state_code}, $code, "$label: the jsonlog state_code is the sqlstate field");
			is($l->{json}{backend_type}, 'pgbun worker', "$label: backend_type is pgbun worker");
			is($l->{json}{error_severity}, 'LOG', "$label: severity LOG");
		});

	# csvlog: message is column 14, sql_state_code 13, backend_type 24
	my $csv = $node->data_dir . '/log/pgbun.csv';
	ok(-f $csv, 'the csvlog file exists');
	my @clines;
	foreach my $line (split /\n/, eval { slurp_file($csv) } // '')
	{
		my $f = csv_fields($line);
		next unless ($f->[13] // '') =~ /^pgbun: /;
		push @clines, { message => $f->[13], csv => $f };
	}
	check_lines(
		'csvlog',
		\@clines,
		sub {
			my ($l, $code, $label) = @_;
			is($l->{csv}[12], $code, "$label: the csvlog sql_state_code is the sqlstate field");
			is($l->{csv}[23], 'pgbun worker', "$label: backend_type is pgbun worker");
		});
	stop_node($node);
}

done_testing();

# PgbunTest - helpers for pgbun's TAP tests.
#
# Everything goes through the pooler's TCP port the way a real client does:
#
#  - pgbun_node():    a PostgreSQL::Test::Cluster preloading pgbun, listening on
#                     its own free port, with an hba that makes the server ask
#                     pgbun for the client's own credentials.
#  - pgbun_psql():    the real psql binary against 127.0.0.1:<pgbun port>.
#  - pgbun_session(): a psql process held open (session pooling holds a server
#                     for it), fed statements one at a time.
#  - raw_connect():   a raw v3 protocol client on IO::Socket::INET with its own
#                     SCRAM-SHA-256 / md5 login, for bad input and for reading
#                     SQLSTATEs that psql does not show at connect time.
#  - worker_pid() / server_identity() / check_server_same(): the pooler's
#                     worker did not die and the server did not restart.
#  - pgbun_node(valgrind => 1) / valgrind_errors(): the whole cluster under
#                     valgrind's memcheck, and the errors it reported (checked
#                     by stop_node); PGBUN_TEST_VALGRIND=1 does it for every
#                     node a test makes.
#
# No call waits forever: every read has a deadline, every child process a
# timeout. Deadlines are hang guards, never timing assertions.

package PgbunTest;

use strict;
use warnings FATAL => 'all';

use Carp;
use Cwd ();
use Exporter 'import';
use File::Basename ();
use IO::Socket::INET;
use IPC::Run;
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  pgbun_node remote_cluster pgbun_port bootstrap_user log_count
  pgbun_psql pgbun_session direct_session
  worker_pid server_identity check_server_same
  wait_until poll_sql reload_conf reload_sync
  raw_connect stop_node process_gone forget_if_dead
  hang_guard run_sampled
  parse_msg bind_msg describe_msg execute_msg close_msg flush_msg sync_msg
  read_until msg_types first_error
  bystander_start bystander_check valgrind_errors openssl
);

# Every node made here. If one died under a test (a pooler crash with
# restart_after_crash = off shuts the server down), the Cluster module's
# END teardown would BAIL_OUT on the failed pg_ctl stop and abort every
# later test file; forget the dead postmaster first so only this file fails.
my @pgbun_nodes;

END
{
	foreach my $node (@pgbun_nodes)
	{
		forget_if_dead($node);
	}
}

# Is process $pid gone? A zombie counts as gone: in a container nobody may
# reap a dead postmaster, and kill(0) still succeeds on it.
sub process_gone
{
	my ($pid) = @_;
	return 1 unless $pid && kill(0, $pid);
	open my $fh, '<', "/proc/$pid/stat" or return 1;
	my $stat = <$fh>;
	close $fh;
	return ($stat // '') =~ /^\d+ \(.*\) Z/ ? 1 : 0;
}

# If the node's postmaster is dead, make the Cluster module forget it, so
# its teardown does not try (and fail, and BAIL_OUT) to stop it.
sub forget_if_dead
{
	my ($node) = @_;
	eval { $node->_update_pid(-1); };
	$node->{_pid} = undef if defined $node->{_pid} && process_gone($node->{_pid});
	return !defined $node->{_pid};
}

# How long a single read or wait may take before we call it a hang.
sub hang_guard { return 30; }

sub bootstrap_user
{
	# initdb names the bootstrap superuser after the effective OS user.
	my $name = (getpwuid($>))[0];
	croak "cannot find the name of uid $>" unless defined $name;
	return $name;
}

=pod

=item pgbun_node(%opts)

Creates, configures and starts a cluster with pgbun preloaded. Options:

  name             node name (default 'pgbun')
  conf             hashref of extra settings (pgbun.* or anything else); a
                   setting given as undef is left at its default (and
                   pgbun.workers given as undef is not set by
                   PGBUN_TEST_WORKERS either)
  hba_extra        arrayref of pg_hba.conf lines placed before 'local all all md5'
  preload          0 to leave shared_preload_libraries empty (default 1)
  wait_listen      0 to not wait for the pooler port (default 1)
  create_extension 0 to skip CREATE EXTENSION pgbun (default 1)
  defer_accept     1 to keep pgbun.tcp_defer_accept at its default (45 s).
                   Otherwise it is 0: most tests open raw connections and look
                   for them in pgbun.clients (or time them out) before they
                   send anything, which the kernel hides with TCP_DEFER_ACCEPT.
                   245_tcp_defer_accept tests the default; the real-client
                   tests run with it.

=cut

sub pgbun_node
{
	my %opts = @_;
	my $name = $opts{name} // 'pgbun';
	my $preload = $opts{preload} // 1;

	my $node = PostgreSQL::Test::Cluster->new($name);
	push @pgbun_nodes, $node;
	$node->init;

	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$node->{_pgbun_port} = $port;

	my $conf = "\n# pgbun test settings\n";
	if ($preload)
	{
		# PGBUN_LIBDIR: load pgbun.so from a private build (parallel work
		# trees on one machine) instead of the installed one.
		$conf .= "dynamic_library_path = '$ENV{PGBUN_LIBDIR}:\$libdir'\n"
		  if $ENV{PGBUN_LIBDIR};
		$conf .= "shared_preload_libraries = 'pgbun'\n";
		$conf .= "pgbun.port = $port\n";
		$conf .= "pgbun.listen_addresses = '127.0.0.1'\n";
		$conf .= "pgbun.tcp_defer_accept = 0\n" unless $opts{defer_accept};
	}
	my $extra = { %{ $opts{conf} // {} } };
	# PGBUN_TEST_WORKERS=N: the tests that do not choose their worker count
	# run with N workers instead of the default 1, to see what they assume
	# (most look at how one worker pools: the second client reuses the first
	# one's backend, a pool of 1 holds one server, per-worker limits).
	$extra->{'pgbun.workers'} = $ENV{PGBUN_TEST_WORKERS}
	  if $preload && $ENV{PGBUN_TEST_WORKERS} && !exists $extra->{'pgbun.workers'};
	foreach my $k (sort keys %$extra)
	{
		my $v = $extra->{$k};
		next unless defined $v;    # undef: the setting keeps its default
		$v =~ s/'/''/g;
		$conf .= "$k = '$v'\n";
	}
	$node->append_conf('postgresql.conf', $conf);

	# The server trusts only the bootstrap superuser (our SQL side door).
	# Every other role must present its password, which pgbun can do only
	# on the client's behalf: md5 lets SCRAM verifiers use SCRAM and md5
	# verifiers md5.
	my $boot = bootstrap_user();
	my $hba = "local all $boot trust\n";
	$hba .= "$_\n" foreach @{ $opts{hba_extra} // [] };
	$hba .= "local all all md5\n";
	$hba .= "host all $boot 127.0.0.1/32 trust\n";
	open my $fh, '>', $node->data_dir . '/pg_hba.conf'
	  or die "cannot write pg_hba.conf: $!";
	print $fh $hba;
	close $fh;

	# PGBUN_TEST_VALGRIND=1: every node of the test under memcheck (slow)
	if ($opts{valgrind} // $ENV{PGBUN_TEST_VALGRIND})
	{
		start_under_valgrind($node);
	}
	else
	{
		$node->start;
	}

	if ($preload && ($opts{wait_listen} // 1))
	{
		ok(wait_for_listen($port), "pgbun listens on port $port")
		  or diag(tail_log($node, 40));
	}
	if ($preload && ($opts{create_extension} // 1))
	{
		$node->safe_psql('postgres', 'CREATE EXTENSION pgbun');
	}
	return $node;
}

# Start $node with its postmaster (and so every backend and the pgbun
# workers, which it forks) under valgrind's memcheck, one log per process.
# Only start: a restart through the Cluster module runs without valgrind.
sub start_under_valgrind
{
	my ($node) = @_;
	my $dir = $node->basedir . '/valgrind';
	mkdir $dir or die "cannot create $dir: $!";
	my $postgres = $node->config_data('--bindir') . '/postgres';
	my $wrapper = "$dir/postgres";
	open my $fh, '>', $wrapper or die "cannot write $wrapper: $!";
	# no leak check: a backend's exit leaves its memory to the kernel
	my $supp = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/valgrind.supp');
	print $fh "#!/bin/sh\nexec valgrind --quiet --error-limit=no --num-callers=30 "
	  . "--leak-check=no --suppressions='$supp' --log-file='$dir/%p.log' '$postgres' \"\$@\"\n";
	close $fh;
	chmod 0755, $wrapper;
	$node->{_pgbun_valgrind_dir} = $dir;
	local $ENV{PGCTLTIMEOUT} = 600;    # startup is ~20 times slower
	my $ret = PostgreSQL::Test::Utils::system_log(
		'pg_ctl', '-w', '-D', $node->data_dir, '-l', $node->logfile,
		'-p', $wrapper, '-o', '--cluster-name=' . $node->name, 'start');
	BAIL_OUT('pg_ctl start under valgrind failed; is valgrind installed?') if $ret != 0;
	$node->_update_pid(1);
	return;
}

=pod

=item valgrind_errors($node)

After a node started with pgbun_node(valgrind => 1) stopped: how many
errors memcheck reported over all its processes, and the reports of
those that had any (for diag).

=cut

sub valgrind_errors
{
	my ($node) = @_;
	my ($errors, $reports, $logs) = (0, '', 0);
	foreach my $log (glob($node->{_pgbun_valgrind_dir} . '/*.log'))
	{
		my $text = slurp_file($log);
		$logs++;
		my $n = 0;
		$n += $1 while $text =~ /ERROR SUMMARY: (\d+) errors/g;
		# --quiet prints no summary when a process had none: any report counts
		$n ||= () = $text =~ /^==\d+== (?:Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination)/mg;
		next unless $n;
		$errors += $n;
		$reports .= "--- $log\n$text";
	}
	return ($errors, $reports, $logs);
}

=pod

=item remote_cluster($name, $method, $conf)

Creates and starts a cluster without pgbun, for pgbun.databases entries to
reach as a remote server: it listens on 127.0.0.1, trusts the bootstrap
superuser on its Unix socket (the test's own side door) and asks every TCP
login for $method (md5, scram-sha-256, ...). $conf: extra postgresql.conf
lines.

=cut

sub remote_cluster
{
	my ($name, $method, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\n" . ($conf // ''));
	my $boot = bootstrap_user();
	open my $fh, '>', $node->data_dir . '/pg_hba.conf'
	  or die "cannot write pg_hba.conf: $!";
	print $fh "local all $boot trust\nhost all all 127.0.0.1/32 $method\n";
	close $fh;
	$node->start;
	return $node;
}

# Run the openssl command line tool (certificates for TLS tests); its
# stdout, or die with its stderr.
sub openssl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'openssl', @args ], '<', \'', '>', \$out, '2>', \$err)
	  or die "openssl @args failed: $err";
	return $out;
}

# How many times $re matches in the node's server log.
sub log_count
{
	my ($node, $re) = @_;
	my @n = slurp_file($node->logfile) =~ /$re/g;
	return scalar @n;
}

# Stop a node at the end of a test: a failed test (not a BAIL_OUT) if the
# server is already gone or does not stop.
sub stop_node
{
	my ($node, $mode) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	if (forget_if_dead($node))
	{
		fail('the server was still running at the end of the test');
		diag(tail_log($node, 30));
		return 0;
	}
	my $stopped = ok($node->stop($mode // 'fast', fail_ok => 1), 'the server stops cleanly');
	if ($node->{_pgbun_valgrind_dir})
	{
		my ($errors, $reports, $logs) = valgrind_errors($node);
		cmp_ok($logs, '>', 0, "valgrind watched $logs processes");
		is($errors, 0, 'memcheck reported no error in any process')
		  or diag(substr($reports, 0, 20000));
	}
	return $stopped;
}

sub pgbun_port
{
	my ($node) = @_;
	return $node->{_pgbun_port};
}

# True once something accepts TCP connections on 127.0.0.1:$port.
sub wait_for_listen
{
	my ($port, $secs) = @_;
	return wait_until(
		sub {
			my $s = IO::Socket::INET->new(
				PeerAddr => '127.0.0.1',
				PeerPort => $port,
				Proto => 'tcp',
				Timeout => 2);
			return 0 unless $s;
			close $s;
			return 1;
		},
		$secs // 60);
}

sub tail_log
{
	my ($node, $lines) = @_;
	my $log = eval { slurp_file($node->logfile) } // '';
	my @l = split /\n/, $log;
	@l = @l[ -$lines .. -1 ] if @l > $lines;
	return join("\n", @l);
}

# Poll $cond every 50 ms until it returns true or $secs pass.
sub wait_until
{
	my ($cond, $secs, $interval) = @_;
	$secs //= hang_guard();
	$interval //= 0.05;
	my $deadline = time + $secs;
	while (1)
	{
		return 1 if $cond->();
		return 0 if time > $deadline;
		usleep(int($interval * 1_000_000));
	}
}

# Run $sql directly on the server (bootstrap superuser, Unix socket) until
# it returns $expected. Returns (matched, last value).
sub poll_sql
{
	my ($node, $sql, $expected, $secs) = @_;
	my $last;
	my $ok = wait_until(
		sub {
			my ($rc, $out, $err) = (0, '', '');
			$rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
			$last = $rc == 0 ? $out : "ERROR($rc): $err";
			return $rc == 0 && $out eq $expected;
		},
		$secs,
		0.1);
	return ($ok, $last);
}

# ALTER SYSTEM SET each pair, then pg_reload_conf().
sub reload_conf
{
	my ($node, %settings) = @_;
	my $sql = '';
	foreach my $k (sort keys %settings)
	{
		my $v = $settings{$k};
		if (defined $v)
		{
			$v =~ s/'/''/g;
			$sql .= "ALTER SYSTEM SET $k = '$v';\n";
		}
		else
		{
			$sql .= "ALTER SYSTEM RESET $k;\n";
		}
	}
	$sql .= "SELECT pg_reload_conf();\n";
	$node->safe_psql('postgres', $sql);
	return;
}

# reload_conf, then wait until the pooler's workers have applied it. The
# probe: the same reload sets pgbun.server_reset_query to a fresh marker (a
# comment after the caller's pgbun.server_reset_query, if given), and a
# client logging in and out through the pooler (as $login->{user} /
# $login->{password}) makes a worker run the reset query on the server, where
# log_statement = all records it. Once the marker shows up as an executed
# statement that worker holds the new configuration. With several workers the
# kernel spreads the probe's logins over them, so the probe goes on until the
# backends that ran the marker (the [pid] of log_line_prefix) belong to servers
# of every worker (pgbun.servers: remote_pid, worker, sampled after each probe).
my $reload_seq = 0;

sub reload_sync
{
	my ($node, $login, %settings) = @_;
	my $marker = sprintf('pgbun-test-reload-%d-%d', $$, ++$reload_seq);
	# a reset query of the caller's is marked as well
	my $reset = delete $settings{'pgbun.server_reset_query'} // 'DISCARD ALL';
	reload_conf($node, %settings,
		'pgbun.server_reset_query' => "$reset /* $marker */");
	my $seen = qr{\[(\d+)\] .*statement: \Q$reset\E /\* \Q$marker\E \*/};
	my $workers = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgbun worker'");
	my %worker_of;    # server backend pid -> pgbun worker, as seen so far
	my $ok = wait_until(
		sub {
			pgbun_psql($node, 'SELECT 1', %$login, timeout => 30);
			my $log = eval { slurp_file($node->logfile) } // '';
			my %pids = map { $_ => 1 } ($log =~ /$seen/g);
			return 0 unless %pids;
			return 1 if $workers <= 1;
			# a server may be handed to another worker later: remember
			# whose it was as soon as the probe's logout left it idle
			my ($rc, $out) = (0, '');
			$rc = $node->psql('postgres', 'SELECT remote_pid, worker FROM pgbun.servers',
				stdout => \$out);
			return 1 if $rc != 0;	# no pgbun extension here: one worker seen must do
			foreach (split /\n/, $out)
			{
				my ($pid, $w) = split /\|/;
				$worker_of{$pid} //= $w if defined $w;
			}
			my %done = map { $_ => 1 } grep { defined } map { $worker_of{$_} } keys %pids;
			return scalar(keys %done) >= $workers;
		},
		hang_guard(),
		0.2);
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($ok, 'reload applied by the pgbun worker' . ($workers > 1 ? 's' : '') . ': '
		  . join(', ', map { "$_=" . ($settings{$_} // 'DEFAULT') } sort keys %settings));
	return $ok;
}

# Environment for a client: no leftover libpq settings, no password file,
# the password if one is given.
sub client_env
{
	my (%opts) = @_;
	my %env = %ENV;
	delete $env{$_} foreach grep { /^PG/ } keys %env;
	$env{PGPASSFILE} = '/nonexistent/pgbun-test-pgpass';
	$env{PGCONNECT_TIMEOUT} = '30';
	$env{PGPASSWORD} = $opts{password} if defined $opts{password};
	$env{PGAPPNAME} = $opts{application_name}
	  if defined $opts{application_name};
	$env{PGSSLMODE} = $opts{sslmode} if defined $opts{sslmode};
	$env{PGGSSENCMODE} = $opts{gssencmode} if defined $opts{gssencmode};
	return %env;
}

# psql against the pooler: -X (no psqlrc), unaligned tuples only, quiet,
# never prompt for a password.
sub pooler_psql_cmd
{
	my ($node, %opts) = @_;
	return (
		$node->installed_command('psql'), '-X', '-A', '-t', '-q', '-w',
		'-h', $opts{host} // '127.0.0.1',
		'-p', pgbun_port($node),
		'-U', $opts{user} // bootstrap_user(),
		'-d', $opts{dbname} // 'postgres');
}

=pod

=item pgbun_psql($node, $sql, user => , password => , dbname => , on_error_stop => 1, application_name => , timeout => )

Runs psql through the pooler, feeding $sql on stdin. Returns (exit code,
stdout, stderr), both outputs chomped. A timeout gives exit code -1.

=cut

sub pgbun_psql
{
	my ($node, $sql, %opts) = @_;
	my @cmd = pooler_psql_cmd($node, %opts);
	push @cmd, '-v', 'ON_ERROR_STOP=1' if $opts{on_error_stop} // 1;
	push @cmd, '-f', '-';
	return run_cmd(\@cmd, $sql, { client_env(%opts) }, $opts{timeout});
}

# Run a command with the given stdin and environment. (rc, stdout, stderr).
sub run_cmd
{
	my ($cmd, $stdin, $env, $timeout) = @_;
	my ($out, $err) = ('', '');
	$stdin //= '';
	local %ENV = %$env;
	my $h = IPC::Run::start($cmd, '<', \$stdin, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout // $PostgreSQL::Test::Utils::timeout_default));
	my $rc;
	if (eval { $h->finish; 1 })
	{
		$rc = $h->result(0);
	}
	else
	{
		my $why = $@;
		eval { $h->kill_kill; };
		$rc = -1;
		$err .= "\n[pgbun test: command did not finish: $why]";
	}
	chomp $out;
	chomp $err;
	return ($rc, $out, $err);
}

=pod

=item run_sampled($node, \@cmd, $sample_sql, env => \%env, timeout => $secs)

Runs @cmd (stdin from /dev/null, environment %env, default ours) while a
direct session runs $sample_sql, which returns a number, on the server every
20 ms. Returns { rc (-1 if it did not finish in time), out, err, max (the
largest sample), samples (how many), cmd }.

=cut

sub run_sampled
{
	my ($node, $cmd, $sample_sql, %opts) = @_;
	my $monitor = direct_session($node);
	my ($out, $err) = ('', '');
	my $h;
	{
		local %ENV = %{ $opts{env} // \%ENV };
		$h = IPC::Run::start($cmd, '<', '/dev/null', '>', \$out, '2>', \$err,
			IPC::Run::timeout($opts{timeout} // $PostgreSQL::Test::Utils::timeout_default));
	}
	my ($max, $samples) = (0, 0);
	my $finished = eval {
		while ($h->pumpable)
		{
			$h->pump_nb;
			my $n = $monitor->query($sample_sql);
			last unless defined $n;
			$samples++;
			$max = $n if $n > $max;
			usleep(20_000);
		}
		$h->finish;
		1;
	};
	my $why = $@;
	if (!$finished)
	{
		eval { $h->kill_kill; };
		$err .= "\n[pgbun test: @$cmd did not finish: $why]";
	}
	$monitor->quit;
	return {
		rc => $finished ? $h->result(0) : -1,
		out => $out,
		err => $err,
		max => $max,
		samples => $samples,
		cmd => "@$cmd"
	};
}

=pod

=item pgbun_session($node, user =>, password =>, dbname =>, application_name =>, wait => 1)

A psql held open through the pooler (PgbunTest::Session).

=item direct_session($node, dbname => 'postgres')

The same, straight to the server as the bootstrap superuser.

=cut

sub pgbun_session
{
	my ($node, %opts) = @_;
	my @cmd = pooler_psql_cmd($node, %opts);
	push @cmd, '-f', '-';
	return PgbunTest::Session->new(\@cmd, { client_env(%opts) }, %opts);
}

sub direct_session
{
	my ($node, %opts) = @_;
	my @cmd = (
		$node->installed_command('psql'), '-X', '-A', '-t', '-q', '-w',
		'-d', $node->connstr($opts{dbname} // 'postgres'), '-f', '-');
	return PgbunTest::Session->new(\@cmd, { client_env(%opts) }, %opts);
}

=pod

=item worker_pid($node)

The pid(s) of the pooler worker(s), newline separated, from pg_stat_activity.

=item server_identity($node) / check_server_same($node, $identity, $label)

Postmaster start time plus worker pids; the check asserts neither moved.

=cut

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgbun worker' ORDER BY pid"
	);
}

sub server_identity
{
	my ($node) = @_;
	my ($rc, $out, $err) = (0, '', '');
	$rc = $node->psql(
		'postgres',
		"SELECT pg_postmaster_start_time(), "
		  . "(SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity "
		  . "WHERE backend_type = 'pgbun worker')",
		stdout => \$out,
		stderr => \$err);
	return $rc == 0 ? $out : "server not answering: $err";
}

sub check_server_same
{
	my ($node, $identity, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $now = server_identity($node);
	my $ok = is($now, $identity,
		"$label: same postmaster start time and pgbun worker pid");
	diag(tail_log($node, 30)) unless $ok;
	return $ok;
}

=pod

=item bystander_start($node, %login) / bystander_check($bystander, $identity, $label)

A client logged in through pgbun (psql, %login as for pgbun_session) that opens
a transaction before a barrage of bad input. bystander_check asserts that the
postmaster and the worker did not restart and that the bystander's transaction
goes on, on the same server backend, with every row it inserted so far.

=cut

sub bystander_start
{
	my ($node, %login) = @_;
	my $s = pgbun_session($node, %login);
	ok($s->connected, 'bystander connects') or diag($s->connect_error);
	my $pid = $s->query('SELECT pg_backend_pid()');
	$s->query('BEGIN');
	$s->query('CREATE TEMP TABLE seen (i int)');
	return { node => $node, session => $s, pid => $pid, rounds => 0 };
}

sub bystander_check
{
	my ($b, $identity, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	check_server_same($b->{node}, $identity, $label);
	my $n = ++$b->{rounds};
	my ($out, $err) = $b->{session}->query(
		"INSERT INTO seen VALUES ($n); SELECT count(*) || ':' || sum(i) || ':' || pg_backend_pid() FROM seen");
	is($out, "$n:" . ($n * ($n + 1) / 2) . ":$b->{pid}",
		"$label: the bystander's transaction goes on, on the same server")
	  or diag("stderr: $err");
	return;
}

sub raw_connect
{
	my ($node, %opts) = @_;
	return PgbunTest::Raw->new(
		port => $opts{port} // pgbun_port($node),
		host => $opts{host});
}

############ extended-protocol messages and reading answers (raw sockets)

# Parse: statement name, query text, parameter type OIDs.
sub parse_msg
{
	my ($name, $sql, @types) = @_;
	return PgbunTest::Raw::message('P',
		"$name\0$sql\0" . pack('n', scalar @types) . join('', map { pack('N', $_) } @types));
}

# Bind: portal, statement, text parameters; text results.
sub bind_msg
{
	my ($portal, $stmt, @params) = @_;
	my $body = "$portal\0$stmt\0" . pack('n', 0) . pack('n', scalar @params);
	$body .= pack('N', length($_)) . $_ foreach @params;
	$body .= pack('n', 0);
	return PgbunTest::Raw::message('B', $body);
}

# Describe / Close: kind 'S' (statement) or 'P' (portal), name.
sub describe_msg { return PgbunTest::Raw::message('D', "$_[0]$_[1]\0"); }
sub close_msg { return PgbunTest::Raw::message('C', "$_[0]$_[1]\0"); }
sub execute_msg { return PgbunTest::Raw::message('E', ($_[0] // '') . "\0" . pack('N', 0)); }
sub flush_msg { return PgbunTest::Raw::message('H'); }
sub sync_msg { return PgbunTest::Raw::message('S'); }

# Read messages until one of type $stop, EOF or the hang guard (or $secs).
sub read_until
{
	my ($raw, $stop, $secs) = @_;
	my @msgs;
	while (1)
	{
		my $m = $raw->read_message($secs // hang_guard());
		push @msgs, $m;
		last if !defined $m->{type} || $m->{type} eq $stop;
	}
	return \@msgs;
}

# The message types read, as one string ('1', '2', 'D', 'C', 'Z' ...).
sub msg_types
{
	return join('', map { $_->{type} // ($_->{eof} ? '<eof>' : '<timeout>') } @{ $_[0] });
}

# The fields of the first ErrorResponse among $msgs ({} if none).
sub first_error
{
	my ($msgs) = @_;
	my ($e) = grep { ($_->{type} // '') eq 'E' } @$msgs;
	return $e ? PgbunTest::Raw::error_fields($e->{body}) : {};
}

1;

############################################################################
# A psql process held open, fed one statement at a time.

package PgbunTest::Session;

use strict;
use warnings FATAL => 'all';

use Carp;
use IPC::Run;
use Time::HiRes qw(time usleep);

sub new
{
	my ($class, $cmd, $env, %opts) = @_;
	my $self = bless {
		in => '',
		out => '',
		err => '',
		seq => 0,
		cmd => $cmd,
	}, $class;
	{
		local %ENV = %$env;
		$self->{h} = IPC::Run::start($cmd, '<', \$self->{in}, '>', \$self->{out},
			'2>', \$self->{err});
	}
	if ($opts{wait} // 1)
	{
		$self->{connected} = $self->wait_connected;
	}
	return $self;
}

# psql connects before reading any input, so once it echoes a line it is
# connected; if the connection failed it exits instead.
sub wait_connected
{
	my ($self) = @_;
	my ($out, $err) = $self->query('\echo connected');
	$self->{connect_error} = $err;
	return defined $out && $out eq 'connected' ? 1 : 0;
}

sub connected { return $_[0]->{connected}; }
sub connect_error { return $_[0]->{connect_error}; }

sub alive
{
	my ($self) = @_;
	return 0 if $self->{finished};
	eval { $self->{h}->pump_nb; };
	return $self->_kid_exited ? 0 : 1;
}

# Has psql exited? (IPC::Run's pumpable() stays true while stdin has
# unwritten data, even for a dead child, so ask waitpid instead.)
sub _kid_exited
{
	my ($self) = @_;
	return 1 if $self->{finished};
	eval { $self->{h}->reap_nb; };
	return (grep { defined $_->{PID} && !defined $_->{RESULT} } @{ $self->{h}{KIDS} })
	  ? 0
	  : 1;
}

# Pump until $cond is true, the process is gone or $secs pass.
sub pump_until
{
	my ($self, $cond, $secs) = @_;
	my $deadline = time + ($secs // $PostgreSQL::Test::Utils::timeout_default);
	while (1)
	{
		return 1 if $cond->();
		if ($self->_kid_exited)
		{
			$self->_reap;
			return $cond->() ? 1 : 0;
		}
		eval { $self->{h}->pump_nb; };
		return 1 if $cond->();
		return 0 if time > $deadline;
		usleep(10_000);
	}
}

sub _reap
{
	my ($self) = @_;
	return if $self->{finished};
	# Collect what is left in the pipes, then wait for the (dead) child.
	eval { $self->{h}->pump_nb for 1 .. 3; };
	$self->{in} = '';
	eval { $self->{h}->finish; };
	$self->{finished} = 1;
	$self->{exit_code} = eval { $self->{h}->result(0) };
}

# Send SQL without waiting for anything.
sub send
{
	my ($self, $sql) = @_;
	$self->{in} .= $sql;
	$self->{in} .= "\n" unless $sql =~ /\n\z/;
	eval { $self->{h}->pump_nb; };
	return;
}

=pod

$s->query($sql [, $secs]): sends $sql (a terminating ';' is added when
missing) and waits until psql has executed it. Returns (stdout, stderr) of
that statement in list context, stdout in scalar context; undef stdout if
psql died or the hang guard expired.

=cut

sub query
{
	my ($self, $sql, $secs) = @_;
	my $n = ++$self->{seq};
	my $mark = "pgbun-session-mark-$n";
	$self->{out} = '';
	$self->{err} = '';
	my $stmt = $sql;
	$stmt .= ';' unless $stmt =~ /;\s*\z/ || $stmt =~ /^\s*\\/;
	$self->send("$stmt\n\\echo $mark\n\\warn $mark\n");
	my $done = $self->pump_until(
		sub {
			$self->{out} =~ /^\Q$mark\E$/m && $self->{err} =~ /^\Q$mark\E$/m;
		},
		$secs);
	my ($out, $err) = ($self->{out}, $self->{err});
	$out =~ s/^\Q$mark\E\n?//m;
	$err =~ s/^\Q$mark\E\n?//m;
	chomp $out;
	chomp $err;
	# What comes next (a send() and wait_output()) starts from scratch.
	$self->{out} = '';
	$self->{err} = '';
	$out = undef unless $done;
	return wantarray ? ($out, $err) : $out;
}

# Wait until stdout (or stderr with which => 'err') matches $re.
sub wait_output
{
	my ($self, $re, %opts) = @_;
	my $which = $opts{which} // 'out';
	return $self->pump_until(sub { $self->{$which} =~ $re }, $opts{secs});
}

# Forget the output collected so far.
sub clear
{
	my ($self) = @_;
	$self->{out} = '';
	$self->{err} = '';
	return;
}

sub stdout { return $_[0]->{out}; }
sub stderr { return $_[0]->{err}; }
sub exit_code { return $_[0]->{exit_code}; }

sub signal
{
	my ($self, $sig) = @_;
	$self->{h}->signal($sig);
	return;
}

# \q and wait for psql to exit. Returns its exit code.
sub quit
{
	my ($self) = @_;
	if (!$self->_kid_exited)
	{
		$self->send("\\q\n");
		$self->pump_until(sub { 0 }, 30);
	}
	if (!$self->_kid_exited)
	{
		eval { $self->{h}->kill_kill; };
	}
	$self->_reap;
	return $self->{exit_code};
}

sub kill
{
	my ($self) = @_;
	eval { $self->{h}->kill_kill; };
	$self->_reap;
	return;
}

1;

############################################################################
# A raw protocol v3 client.

package PgbunTest::Raw;

use strict;
use warnings FATAL => 'all';

use Carp;
use Digest::MD5 qw(md5_hex);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::IP;
use Socket qw(SHUT_WR SOCK_STREAM);
use Time::HiRes qw(time);

use constant {
	CODE_CANCEL => (1234 << 16) | 5678,
	CODE_SSL => (1234 << 16) | 5679,
	CODE_GSSENC => (1234 << 16) | 5680,
};

sub new
{
	my ($class, %opts) = @_;
	if ($opts{path})
	{
		# a Unix socket (straight to the server, for differential checks)
		require IO::Socket::UNIX;
		my $us = IO::Socket::UNIX->new(Peer => $opts{path}, Type => SOCK_STREAM)
		  or croak "cannot connect to $opts{path}: $!";
		binmode $us;
		return bless { sock => $us, buf => '', eof => 0 }, $class;
	}
	my $host = $opts{host} // '127.0.0.1';
	my $class_ip = $host =~ /:/ ? 'IO::Socket::IP' : 'IO::Socket::INET';
	my $sock = $class_ip->new(
		PeerAddr => $host,
		PeerPort => $opts{port},
		Proto => 'tcp',
		Timeout => 10) or croak "cannot connect to $host port $opts{port}: $!";
	binmode $sock;
	return bless { sock => $sock, buf => '', eof => 0 }, $class;
}

############ builders (also usable as plain functions)

# Startup packet; $params is an arrayref of name => value pairs, in order.
sub startup_packet
{
	my ($params, $major, $minor) = @_;
	my $body = pack('nn', $major // 3, $minor // 0);
	my @p = @{ $params // [] };
	while (@p)
	{
		my ($k, $v) = splice(@p, 0, 2);
		$body .= "$k\0$v\0";
	}
	$body .= "\0";
	return pack('N', 4 + length($body)) . $body;
}

sub ssl_request { return pack('NN', 8, CODE_SSL); }
sub gssenc_request { return pack('NN', 8, CODE_GSSENC); }

sub cancel_request
{
	my ($pid, $key) = @_;
	return pack('NNNN', 16, CODE_CANCEL, $pid, $key);
}

# A typed message: type byte, length (counting itself), body.
sub message
{
	my ($type, $body) = @_;
	$body //= '';
	return $type . pack('N', 4 + length($body)) . $body;
}

sub query_message { return message('Q', $_[0] . "\0"); }

############ I/O

sub send_bytes
{
	my ($self, $data) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length($data))
	{
		my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
		if (!defined $n)
		{
			$self->{send_error} = "$!";
			return 0;
		}
		$off += $n;
	}
	return 1;
}

# Close our sending side: the peer reads EOF, we can still read.
sub shutdown_write
{
	my ($self) = @_;
	shutdown($self->{sock}, SHUT_WR);
	return;
}

sub close
{
	my ($self) = @_;
	CORE::close($self->{sock}) if $self->{sock};
	$self->{sock} = undef;
	return;
}

# Make $self->{buf} hold at least $want bytes. 1 on success, else 0 with
# $self->{eof} or $self->{timed_out} set.
sub _fill
{
	my ($self, $want, $deadline) = @_;
	$self->{timed_out} = 0;
	while (length($self->{buf}) < $want)
	{
		return 0 if $self->{eof};
		my $left = $deadline - time;
		if ($left <= 0)
		{
			$self->{timed_out} = 1;
			return 0;
		}
		my $sel = IO::Select->new($self->{sock});
		next unless $sel->can_read($left);
		my $chunk = '';
		my $n = sysread($self->{sock}, $chunk, 65536);
		if (!defined $n)
		{
			# ECONNRESET counts as the pooler closing on us
			$self->{eof} = 1;
			$self->{reset} = "$!";
			return 0;
		}
		if ($n == 0)
		{
			$self->{eof} = 1;
			return 0;
		}
		$self->{buf} .= $chunk;
	}
	return 1;
}

# Read exactly $n bytes. Returns the bytes, or undef on EOF/timeout.
sub read_bytes
{
	my ($self, $n, $secs) = @_;
	my $deadline = time + ($secs // PgbunTest::hang_guard());
	return undef unless $self->_fill($n, $deadline);
	return substr($self->{buf}, 0, $n, '');
}

=pod

$raw->read_message($secs): the next backend message as a hashref {type,
body}, or {eof => 1} / {timeout => 1} / {bad_length => N}.

=cut

sub read_message
{
	my ($self, $secs) = @_;
	my $deadline = time + ($secs // PgbunTest::hang_guard());
	if (!$self->_fill(5, $deadline))
	{
		return $self->{eof} ? { eof => 1, partial => $self->{buf} } : { timeout => 1 };
	}
	my ($type, $len) = unpack('aN', $self->{buf});
	if ($len < 4 || $len > 64 * 1024 * 1024)
	{
		return { bad_length => $len, type => $type };
	}
	if (!$self->_fill(1 + $len, $deadline))
	{
		return $self->{eof} ? { eof => 1, partial => $self->{buf} } : { timeout => 1 };
	}
	substr($self->{buf}, 0, 5, '');
	my $body = substr($self->{buf}, 0, $len - 4, '');
	return { type => $type, body => $body };
}

# Read messages until EOF (or the hang guard). Returns a hashref:
# { msgs => [...], eof => 0/1, timeout => 0/1, errors => [fields...] }.
sub read_to_eof
{
	my ($self, $secs) = @_;
	my $deadline = time + ($secs // PgbunTest::hang_guard());
	my %r = (msgs => [], errors => [], eof => 0, timeout => 0);
	while (1)
	{
		my $m = $self->read_message(_left($deadline));
		if ($m->{eof}) { $r{eof} = 1; last; }
		if ($m->{timeout}) { $r{timeout} = 1; last; }
		if ($m->{bad_length}) { $r{bad_length} = $m->{bad_length}; last; }
		push @{ $r{msgs} }, $m;
		push @{ $r{errors} }, error_fields($m->{body}) if $m->{type} eq 'E';
	}
	return \%r;
}

sub _left
{
	my ($deadline) = @_;
	my $l = $deadline - time;
	return $l > 0 ? $l : 0.001;
}

############ parsers

# ErrorResponse / NoticeResponse body -> { C => sqlstate, M => message, ... }
sub error_fields
{
	my ($body) = @_;
	my %f;
	foreach my $part (split /\0/, $body)
	{
		next if $part eq '';
		$f{ substr($part, 0, 1) } = substr($part, 1);
	}
	return \%f;
}

# NegotiateProtocolVersion body -> { minor => N, options => [...] }
sub negotiate_fields
{
	my ($body) = @_;
	my ($minor, $n) = unpack('NN', $body);
	my @opts = split /\0/, substr($body, 8);
	return { minor => $minor, count => $n, options => \@opts };
}

sub data_row
{
	my ($body) = @_;
	my $n = unpack('n', $body);
	my $pos = 2;
	my @vals;
	for (1 .. $n)
	{
		my $len = unpack('N', substr($body, $pos, 4));
		$pos += 4;
		if ($len == 0xFFFFFFFF)
		{
			push @vals, undef;
			next;
		}
		push @vals, substr($body, $pos, $len);
		$pos += $len;
	}
	return \@vals;
}

############ login and queries

=pod

$raw->login(user =>, password =>, database => 'postgres', params => [..],
major => 3, minor => 0, stop_at_auth => CODE) sends a startup packet and runs
the authentication exchange (SCRAM-SHA-256, md5, cleartext) up to
ReadyForQuery. Returns a hashref:

  ok            1 when ReadyForQuery arrived
  auth          the authentication request codes seen, in order
  error         ErrorResponse fields, if one came
  negotiate     NegotiateProtocolVersion fields, if one came
  pid, key      BackendKeyData
  params        ParameterStatus pairs
  scram_server_ok  1 if the server's SCRAM signature verified
  eof / timeout when the connection closed or went quiet instead
  stopped       1 when stop_at_auth made us stop answering

=cut

sub login
{
	my ($self, %o) = @_;
	my @params = (user => $o{user}, database => $o{database} // 'postgres');
	push @params, @{ $o{params} } if $o{params};
	$self->send_bytes(startup_packet(\@params, $o{major}, $o{minor}));
	return $self->authenticate(%o);
}

sub authenticate
{
	my ($self, %o) = @_;
	my $deadline = time + ($o{secs} // PgbunTest::hang_guard());
	my %r = (ok => 0, auth => [], params => {}, msgs => [], notices => []);
	my $scram;
	my $password = $o{password} // '';
	while (1)
	{
		my $m = $self->read_message(_left($deadline));
		if ($m->{eof} || $m->{timeout} || $m->{bad_length})
		{
			$r{eof} = $m->{eof} ? 1 : 0;
			$r{timeout} = $m->{timeout} ? 1 : 0;
			$r{bad_length} = $m->{bad_length};
			return \%r;
		}
		push @{ $r{msgs} }, $m->{type};
		my $t = $m->{type};
		if ($t eq 'E')
		{
			$r{error} = error_fields($m->{body});
			return \%r;
		}
		elsif ($t eq 'N')
		{
			push @{ $r{notices} }, error_fields($m->{body});
		}
		elsif ($t eq 'v')
		{
			$r{negotiate} = negotiate_fields($m->{body});
		}
		elsif ($t eq 'S')
		{
			my ($k, $v) = split /\0/, $m->{body};
			$r{params}{$k} = $v // '';
		}
		elsif ($t eq 'K')
		{
			@r{qw(pid key)} = unpack('NN', $m->{body});
		}
		elsif ($t eq 'Z')
		{
			$r{ok} = 1;
			$r{txstatus} = $m->{body};
			return \%r;
		}
		elsif ($t eq 'R')
		{
			my $code = unpack('N', $m->{body});
			my $data = substr($m->{body}, 4);
			push @{ $r{auth} }, $code;
			if (defined $o{stop_at_auth} && $o{stop_at_auth} == $code)
			{
				$r{stopped} = 1;
				return \%r;
			}
			if ($code == 0)
			{
				next;
			}
			elsif ($code == 3)
			{
				$self->send_bytes(message('p', "$password\0"));
			}
			elsif ($code == 5)
			{
				my $salt = substr($data, 0, 4);
				my $inner = md5_hex($password . $o{user});
				$self->send_bytes(
					message('p', 'md5' . md5_hex($inner . $salt) . "\0"));
			}
			elsif ($code == 10)
			{
				my @mechs = grep { $_ ne '' } split /\0/, $data;
				$r{mechanisms} = \@mechs;
				if (!grep { $_ eq 'SCRAM-SHA-256' } @mechs)
				{
					$r{unsupported_auth} = "no SCRAM-SHA-256 in @mechs";
					return \%r;
				}
				$scram = PgbunTest::Scram->new($password);
				my $first = $scram->client_first;
				$self->send_bytes(
					message('p',
						"SCRAM-SHA-256\0" . pack('N', length($first)) . $first));
			}
			elsif ($code == 11)
			{
				if (!$scram)
				{
					$r{protocol_error} = 'SASLContinue without SASL';
					return \%r;
				}
				my $final = $scram->client_final($data);
				if (!defined $final)
				{
					$r{protocol_error} = "bad server-first-message: $data";
					return \%r;
				}
				$self->send_bytes(message('p', $final));
			}
			elsif ($code == 12)
			{
				$r{scram_server_ok} =
				  ($scram && $scram->verify_server_final($data)) ? 1 : 0;
			}
			else
			{
				$r{unsupported_auth} = $code;
				return \%r;
			}
		}
	}
}

=pod

$raw->query($sql): simple Query; reads up to ReadyForQuery. Returns
{ rows => [[...]...], tags => [...], error => fields, ok => 1 at 'Z',
eof/timeout }.

=cut

sub query
{
	my ($self, $sql, $secs) = @_;
	$self->send_bytes(query_message($sql));
	return $self->read_result($secs);
}

sub read_result
{
	my ($self, $secs) = @_;
	my $deadline = time + ($secs // PgbunTest::hang_guard());
	my %r = (rows => [], tags => [], ok => 0);
	while (1)
	{
		my $m = $self->read_message(_left($deadline));
		if ($m->{eof} || $m->{timeout} || $m->{bad_length})
		{
			$r{eof} = $m->{eof} ? 1 : 0;
			$r{timeout} = $m->{timeout} ? 1 : 0;
			return \%r;
		}
		my $t = $m->{type};
		if ($t eq 'D') { push @{ $r{rows} }, data_row($m->{body}); }
		elsif ($t eq 'C') { push @{ $r{tags} }, unpack('Z*', $m->{body}); }
		elsif ($t eq 'E') { $r{error} = error_fields($m->{body}); }
		elsif ($t eq 'N') { push @{ $r{notices} }, error_fields($m->{body}); }
		elsif ($t eq 'Z')
		{
			$r{ok} = 1;
			$r{txstatus} = $m->{body};
			return \%r;
		}
	}
}

sub terminate
{
	my ($self) = @_;
	$self->send_bytes(message('X'));
	$self->close;
	return;
}

1;

############################################################################
# Client side of SCRAM-SHA-256 (RFC 5802 / 7677), no channel binding.

package PgbunTest::Scram;

use strict;
use warnings FATAL => 'all';

use Digest::SHA qw(sha256 hmac_sha256);
use MIME::Base64 qw(encode_base64 decode_base64);

sub new
{
	my ($class, $password) = @_;
	my $raw = join('', map { chr(int(rand(256))) } 1 .. 18);
	return bless { password => $password, nonce => encode_base64($raw, '') },
	  $class;
}

sub client_first
{
	my ($self) = @_;
	# The user name is taken from the startup packet, as libpq does.
	$self->{first_bare} = "n=,r=$self->{nonce}";
	return "n,,$self->{first_bare}";
}

sub pbkdf2_sha256
{
	my ($password, $salt, $iterations) = @_;
	my $u = hmac_sha256($salt . pack('N', 1), $password);
	my $result = $u;
	for (2 .. $iterations)
	{
		$u = hmac_sha256($u, $password);
		$result ^= $u;
	}
	return $result;
}

# server-first-message -> client-final-message, or undef if malformed.
sub client_final
{
	my ($self, $server_first) = @_;
	my %a;
	foreach my $attr (split /,/, $server_first)
	{
		$a{$1} = $2 if $attr =~ /^([a-z])=(.*)\z/s;
	}
	return undef
	  unless defined $a{r} && defined $a{s} && defined $a{i}
	  && index($a{r}, $self->{nonce}) == 0
	  && length($a{r}) > length($self->{nonce})
	  && $a{i} =~ /^\d+\z/ && $a{i} > 0;
	my $salted = pbkdf2_sha256($self->{password}, decode_base64($a{s}), $a{i});
	my $client_key = hmac_sha256('Client Key', $salted);
	my $stored_key = sha256($client_key);
	my $without_proof = "c=biws,r=$a{r}";
	my $auth_message = "$self->{first_bare},$server_first,$without_proof";
	my $signature = hmac_sha256($auth_message, $stored_key);
	my $proof = $client_key ^ $signature;
	$self->{server_key} = hmac_sha256('Server Key', $salted);
	$self->{auth_message} = $auth_message;
	return "$without_proof,p=" . encode_base64($proof, '');
}

sub verify_server_final
{
	my ($self, $server_final) = @_;
	return 0 unless $server_final =~ /^v=([A-Za-z0-9+\/=]+)/;
	my $expected = hmac_sha256($self->{auth_message}, $self->{server_key});
	return decode_base64($1) eq $expected ? 1 : 0;
}

1;

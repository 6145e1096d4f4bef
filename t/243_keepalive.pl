# 243_keepalive: TCP keepalives and TCP_USER_TIMEOUT on client and server
# sockets (pgbun.tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt,
# tcp_user_timeout, as PgBouncer).
#
# The options are read off the worker's own sockets: the test finds the
# socket of each connection in /proc (by its ports), takes a copy of the
# worker's file descriptor with pidfd_getfd(2) (same user, so allowed) and
# calls getsockopt on it. Where the kernel refuses that (Yama ptrace_scope),
# only what `ss -tnoe` shows (the keepalive timer) is checked.
#
#  - defaults: SO_KEEPALIVE on, the rest the operating system's;
#  - set: every value on the client socket and on the server socket (TCP,
#    pgbun.server_host = 127.0.0.1);
#  - a reload changes new sockets only: keepalive off for a new client and
#    a new server connection, the old ones keep theirs.

use strict;
use warnings FATAL => 'all';

use Socket qw(SOL_SOCKET SO_KEEPALIVE IPPROTO_TCP);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

# Linux option numbers (netinet/tcp.h), not all exported by Socket.pm.
use constant {
	TCP_KEEPIDLE => 4,
	TCP_KEEPINTVL => 5,
	TCP_KEEPCNT => 6,
	TCP_USER_TIMEOUT => 18,
	SYS_pidfd_open => 434,    # x86_64 and most others (asm-generic)
	SYS_pidfd_getfd => 438,
};

plan skip_all => 'Linux only' unless $^O eq 'linux';

my $node = pgbun_node(
	name => 'keepalive',
	conf => {
		'listen_addresses' => '127.0.0.1',
		'pgbun.server_host' => '127.0.0.1',
		'pgbun.server_tls_sslmode' => 'disable',
	},
	hba_extra => ['host all all 127.0.0.1/32 md5']);
# one role per phase: its pool's first server connection is opened after the reload
$node->safe_psql('postgres', "CREATE ROLE $_ LOGIN PASSWORD '$_-pw'") foreach qw(alice bob carol);
my %alice = (user => 'alice', password => 'alice-pw');
my $wpid = worker_pid($node);
my $server_port = $node->port;
my $pool_port = pgbun_port($node);

# inode => [local port, remote port] of the TCP sockets in the worker's namespace
sub tcp_table
{
	my %t;
	foreach my $f ("/proc/$wpid/net/tcp", "/proc/$wpid/net/tcp6")
	{
		open my $fh, '<', $f or next;
		<$fh>;
		while (my $line = <$fh>)
		{
			my @f = split ' ', $line;
			my ($lport) = $f[1] =~ /:([0-9A-F]+)$/;
			my ($rport) = $f[2] =~ /:([0-9A-F]+)$/;
			$t{ $f[9] } = [ hex($lport), hex($rport) ];
		}
		close $fh;
	}
	return \%t;
}

# The worker's fds of TCP sockets with the given local / remote port (undef: any).
sub worker_fds
{
	my ($lport, $rport) = @_;
	my $t = tcp_table();
	my @fds;
	opendir my $d, "/proc/$wpid/fd" or die "cannot read /proc/$wpid/fd: $!";
	foreach my $fd (grep { /^\d+$/ } readdir $d)
	{
		my $link = readlink("/proc/$wpid/fd/$fd") // '';
		next unless $link =~ /^socket:\[(\d+)\]$/;
		my $p = $t->{$1} or next;
		next if defined $lport && $p->[0] != $lport;
		next if defined $rport && $p->[1] != $rport;
		push @fds, { fd => $fd, lport => $p->[0], rport => $p->[1] };
	}
	closedir $d;
	return sort { $a->{fd} <=> $b->{fd} } @fds;
}

my $pidfd = syscall(SYS_pidfd_open, $wpid + 0, 0);
my $can_getfd = $pidfd >= 0;

# The options of the worker's socket $fd: hashref, or undef without pidfd_getfd.
sub options_of
{
	my ($fd) = @_;
	return undef unless $can_getfd;
	my $dup = syscall(SYS_pidfd_getfd, $pidfd, $fd + 0, 0);
	if ($dup < 0)
	{
		diag("pidfd_getfd refused ($!): falling back to ss");
		$can_getfd = 0;
		return undef;
	}
	open(my $fh, '+<&=', $dup) or die "fdopen $dup: $!";
	my %o;
	my @opts = (
		[ keepalive => SOL_SOCKET, SO_KEEPALIVE ],
		[ keepidle => IPPROTO_TCP, TCP_KEEPIDLE ],
		[ keepintvl => IPPROTO_TCP, TCP_KEEPINTVL ],
		[ keepcnt => IPPROTO_TCP, TCP_KEEPCNT ],
		[ user_timeout => IPPROTO_TCP, TCP_USER_TIMEOUT ]);
	foreach my $opt (@opts)
	{
		my ($name, $level, $num) = @$opt;
		my $v = getsockopt($fh, $level, $num);
		$o{$name} = defined $v ? unpack('i', $v) : "error: $!";
	}
	close $fh;
	return \%o;
}

# Does ss show a keepalive timer on the connection local:$lport -> remote:$rport?
sub ss_keepalive
{
	my ($lport, $rport) = @_;
	my ($rc, $out) = PgbunTest::run_cmd([ 'ss', '-tnoe', 'state', 'established' ], '', \%ENV, 30);
	foreach my $line (split /\n/, $out)
	{
		next unless $line =~ /:$lport\s+\S+:$rport\b/;
		return $line =~ /timer:\(keepalive/ ? 1 : 0;
	}
	return undef;
}

# Check a worker socket against the expected options ($want: name => value).
sub check_socket
{
	my ($label, $sock, $want) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	if (!$sock)
	{
		fail("$label: socket found in the worker");
		return;
	}
	my $o = options_of($sock->{fd});
	if ($o)
	{
		foreach my $k (sort keys %$want)
		{
			is($o->{$k}, $want->{$k}, "$label: $k = $want->{$k}");
		}
		return;
	}
  SKIP:
	{
		skip("$label: ss is not installed", 1) unless -x '/usr/bin/ss' || -x '/bin/ss';
		is(ss_keepalive($sock->{lport}, $sock->{rport}), $want->{keepalive} ? 1 : 0,
			"$label: ss shows the keepalive timer " . ($want->{keepalive} ? 'on' : 'off'));
	}
	return;
}

# Log in a raw client and run a query: the client, the worker's socket to it
# and the worker's socket of the server connection it got (the server sees
# that socket's port as the client port).
sub client_with_server
{
	my ($label, $role) = @_;
	my $c = raw_connect($node);
	ok($c->login(user => $role, password => "$role-pw")->{ok}, "$label: logged in");
	my $sv_port = $c->query('SELECT inet_client_port()')->{rows}[0][0] // '';
	like($sv_port, qr/^\d+$/, "$label: its server connection is TCP");
	my ($sock) = worker_fds($pool_port, $c->{sock}->sockport);
	my ($server_sock) = $sv_port =~ /^\d+$/ ? worker_fds($sv_port, $server_port) : ();
	return ($c, $sock, $server_sock);
}

sub os_default
{
	my ($name) = @_;
	open my $fh, '<', "/proc/sys/net/ipv4/$name" or return undef;
	my $v = <$fh>;
	close $fh;
	chomp $v;
	return $v + 0;
}

############ defaults: keepalive on, the OS's timings

my ($c1, $s1, $sv1) = client_with_server('default settings', 'alice');
my %defaults = (keepalive => 1, user_timeout => 0);
$defaults{keepidle} = os_default('tcp_keepalive_time') if defined os_default('tcp_keepalive_time');
$defaults{keepintvl} = os_default('tcp_keepalive_intvl') if defined os_default('tcp_keepalive_intvl');
$defaults{keepcnt} = os_default('tcp_keepalive_probes') if defined os_default('tcp_keepalive_probes');
check_socket('client socket, defaults', $s1, \%defaults);
check_socket('server socket, defaults', $sv1, \%defaults);

############ every setting

reload_sync(
	$node, \%alice,
	'pgbun.tcp_keepidle' => '61s',
	'pgbun.tcp_keepintvl' => '7s',
	'pgbun.tcp_keepcnt' => '5',
	'pgbun.tcp_user_timeout' => '12345ms');
my %set = (keepalive => 1, keepidle => 61, keepintvl => 7, keepcnt => 5, user_timeout => 12345);
my ($c2, $s2, $sv2) = client_with_server('after setting them', 'bob');
check_socket('client socket, set', $s2, \%set);
check_socket('server socket, set', $sv2, \%set);
check_socket('the earlier client socket keeps its options', $s1, \%defaults);

############ reload: keepalive off applies to new sockets

reload_sync($node, \%alice, 'pgbun.tcp_keepalive' => 'off', 'pgbun.tcp_user_timeout' => '0');
my ($c3, $s3, $sv3) = client_with_server('after tcp_keepalive = off', 'carol');
check_socket('client socket, keepalive off', $s3, { keepalive => 0 });
check_socket('server socket, keepalive off', $sv3, { keepalive => 0 });
check_socket('the earlier client socket still has keepalive', $s2, \%set);
check_socket('the earlier server socket too', $sv2, \%set);

$_->terminate foreach ($c1, $c2, $c3);
stop_node($node);
done_testing();

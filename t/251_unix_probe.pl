# 251_unix_probe: opening pgbun's listeners never blocks the worker.
#
# Before it binds .s.PGSQL.<port>, the worker checks whether a file already
# there belongs to a live listener by connecting to it. A listener that does
# not accept, with its backlog full, would hold a blocking connect forever
# (and with it every client of the worker). The probe is non-blocking: such a
# socket is reported as in use, the worker goes on serving, and a stale file
# (nobody listening) is still taken over.
#
# Listen addresses are IP addresses, '*' or names from /etc/hosts: 'localhost'
# works, a name only DNS could answer is refused with a warning (DNS is never
# asked while the listeners are opened).

use strict;
use warnings FATAL => 'all';

use IO::Handle;
use Socket qw(PF_UNIX SOCK_STREAM pack_sockaddr_un);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $node = pgbun_node(name => 'unixprobe', conf => { 'pgbun.auth_type' => 'trust' });
my $identity = server_identity($node);
my $port = pgbun_port($node);
my $boot = bootstrap_user();

# A listener that never accepts, its backlog full.
my $dir = PostgreSQL::Test::Utils::tempdir_short();
my $path = "$dir/.s.PGSQL.$port";
socket(my $lsock, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
bind($lsock, pack_sockaddr_un($path)) or die "bind $path: $!";
listen($lsock, 0) or die "listen: $!";
my @fill;
for (1 .. 20)
{
	socket(my $c, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
	$c->blocking(0);
	last unless connect($c, pack_sockaddr_un($path));
	push @fill, $c;
}
ok(@fill >= 1 && @fill < 20, 'the stuck listener\'s backlog is full (' . scalar(@fill) . ' queued)');

my $log_offset = -s $node->logfile;
reload_conf($node, 'pgbun.unix_socket_directories' => $dir);
ok( wait_until(
		sub {
			my $log = slurp_file($node->logfile, $log_offset);
			return $log =~ /Unix socket "\Q$path\E" is in use by another process/;
		}),
	'the worker reports the socket as in use');
my ($rc, $out, $err) = pgbun_psql($node, "SELECT 'still serving'", user => $boot, timeout => 20);
is($out, 'still serving', 'and keeps serving TCP clients (it did not block on the probe)')
  or diag("rc $rc, stderr: $err");

# The stuck process goes away; its file stays behind: a reload takes it over.
close $_ foreach @fill;
close $lsock;
ok(-S $path, 'a stale socket file is left behind');
reload_conf($node, 'pgbun.unix_socket_directories' => undef);
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => $boot, timeout => 20);
reload_conf($node, 'pgbun.unix_socket_directories' => $dir);
ok( wait_until(
		sub {
			my ($rc2, $out2) = pgbun_psql($node, "SELECT 'over unix'", user => $boot, host => $dir, timeout => 20);
			return $out2 eq 'over unix';
		}),
	'the stale file is taken over: clients connect over the Unix socket');

############ listen addresses: names from /etc/hosts only

reload_conf($node, 'pgbun.listen_addresses' => 'localhost');
ok( wait_until(
		sub {
			my (undef, $o) = pgbun_psql($node, "SELECT 'on localhost'", user => $boot, timeout => 20);
			return $o eq 'on localhost';
		}),
	"listen_addresses = 'localhost' (from /etc/hosts) listens on the loopback address");
like(slurp_file($node->logfile, $log_offset), qr/pgbun: listening on 127\.0\.0\.1 port $port/,
	'the log shows the address it listens on');

$log_offset = -s $node->logfile;
reload_conf($node, 'pgbun.listen_addresses' => 'nowhere.pgbun-test.example');
ok( wait_until(
		sub {
			slurp_file($node->logfile, $log_offset) =~
			  /listen address "nowhere\.pgbun-test\.example" is neither an IP address nor a name in \/etc\/hosts/;
		}),
	'a name not in /etc/hosts is refused with a warning, without asking DNS');
($rc, $out, $err) = pgbun_psql($node, "SELECT 'over unix still'", user => $boot, host => $dir, timeout => 20);
is($out, 'over unix still', 'the worker goes on (its Unix socket serves)') or diag($err);
reload_conf($node, 'pgbun.listen_addresses' => '127.0.0.1');
ok( wait_until(
		sub {
			my (undef, $o) = pgbun_psql($node, "SELECT 'back'", user => $boot, timeout => 20);
			return $o eq 'back';
		}),
	'back on an IP address');

check_server_same($node, $identity, 'end of 251');
stop_node($node);
done_testing();

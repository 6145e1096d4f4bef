# 231_server_errors: a server that refuses pgbun's login with a broken
# ErrorResponse (PgBouncer's CVE-2026-6666: no SQLSTATE -> NULL dereference).
#
# pgbun.server_host/server_port point at a tiny fake server in this script (a
# forked IO::Socket listener) that answers each StartupMessage with an
# ErrorResponse chosen by the user name: no 'C' field, no 'M' field, an empty
# body, an unterminated body, a 'C' that is not a SQLSTATE, and a proper one.
# Clients log in to pgbun with auth_type = trust, so pgbun goes straight to
# the server login. Each must get an ErrorResponse with a usable SQLSTATE
# (the server's when it was valid, else XX000) and, when pgbun made it, a
# "pgbun:" message; a proper server error is passed on unchanged. Through it
# all the worker stays up (same pid, same postmaster).

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

# The ErrorResponse body (after the type byte and length) the fake server
# sends for each user, and what the client must then see.
my %cases = (
	fe_nostate => {
		body => "SFATAL\0VFATAL\0Mthe server forgot its sqlstate\0\0",
		sqlstate => 'XX000',
		message => qr/^pgbun: server login failed: the server forgot its sqlstate$/,
	},
	fe_nomessage => {
		body => "SFATAL\0VFATAL\0C28000\0\0",
		sqlstate => '28000',
		message => qr/^pgbun: server login failed: the server sent an error without a message$/,
	},
	fe_empty => {
		body => '',
		sqlstate => 'XX000',
		message => qr/^pgbun: server login failed: the server sent a malformed error message$/,
	},
	fe_terminator_only => {
		body => "\0",
		sqlstate => 'XX000',
		message => qr/^pgbun: server login failed: the server sent an error without a message$/,
	},
	fe_unterminated => {
		body => "SFATAL\0C28P01\0Mcut off",
		sqlstate => 'XX000',
		message => qr/^pgbun: server login failed: the server sent a malformed error message$/,
	},
	fe_badstate => {
		body => "SFATAL\0Cnope\0Mstate is junk\0\0",
		sqlstate => 'XX000',
		message => qr/^pgbun: server login failed: state is junk$/,
	},
	fe_good => {
		body => "SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"fe_good\"\0\0",
		sqlstate => '28P01',
		message => qr/^password authentication failed for user "fe_good"$/,
	},
);

# Users whose login the fake server accepts; then the SET pgbun sends for the
# client's application_name fails with this ErrorResponse body, and the
# client must get a NoticeResponse with a usable SQLSTATE and go on.
my %hidden = (
	fe_hidden_nostate => {
		body => "SERROR\0VERROR\0Mno sqlstate for this SET\0\0",
		sqlstate => 'XX000',
		message => qr/^no sqlstate for this SET$/,
	},
	fe_hidden_badstate => {
		body => "SERROR\0VERROR\0C42\0Mshort sqlstate\0\0",
		sqlstate => 'XX000',
		message => qr/^short sqlstate$/,
	},
	fe_hidden_empty => {
		body => '',
		sqlstate => 'XX000',
		message => qr/^pgbun: could not apply a session parameter$/,
	},
	fe_hidden_good => {
		body => "SERROR\0VERROR\0C22023\0Minvalid value\0\0",
		sqlstate => '22023',
		message => qr/^invalid value$/,
	},
);

# --- the fake server: one process, one connection at a time
my $listener = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Listen => 16,
	ReuseAddr => 1) or die "cannot listen: $!";
my $fake_port = $listener->sockport;

# Read exactly $n bytes (or undef on EOF / after the hang guard).
sub read_n
{
	my ($sock, $n) = @_;
	my $buf = '';
	my $sel = IO::Select->new($sock);
	while (length($buf) < $n)
	{
		return undef unless $sel->can_read(PgbunTest::hang_guard());
		my $got = sysread($sock, $buf, $n - length($buf), length($buf));
		return undef unless $got;
	}
	return $buf;
}

# A logged-in session: every SET / set_config (pgbun bringing the session
# parameters in line) fails with the given ErrorResponse body, anything
# else succeeds; ends at Terminate or EOF.
sub serve_session
{
	my ($c, $error) = @_;
	my $msg = sub { my ($t, $b) = @_; return $t . pack('N', 4 + length($b)) . $b; };
	syswrite($c, $msg->('R', pack('N', 0)) . $msg->('S', "server_version\x0015.0\0")
		  . $msg->('S', "client_encoding\0UTF8\0") . $msg->('K', pack('NN', 4242, 1)) . $msg->('Z', 'I'));
	while (1)
	{
		my $hdr = read_n($c, 5) // return;
		my ($type, $len) = unpack('aN', $hdr);
		my $body = $len > 4 ? (read_n($c, $len - 4) // return) : '';
		return if $type eq 'X';
		next unless $type eq 'Q';
		if ($body =~ /^(SET |SELECT pg_catalog\.set_config)/)
		{
			syswrite($c, $msg->('E', $error) . $msg->('Z', 'I'));
		}
		else
		{
			syswrite($c, $msg->('C', "SELECT 0\0") . $msg->('Z', 'I'));
		}
	}
}

sub fake_server
{
	my $deadline = time + 300;
	my $sel = IO::Select->new($listener);
	local $SIG{CHLD} = 'IGNORE';    # no zombies
	while (time < $deadline)
	{
		next unless $sel->can_read(1);
		my $c = $listener->accept or next;
		# one process per connection: pgbun keeps logged-in ones in its pool
		my $pid = fork() // die "fork: $!";
		if ($pid)
		{
			close $c;
			next;
		}
		close $listener;
		fake_connection($c);
		POSIX::_exit(0);
	}
	POSIX::_exit(0);
}

# Answer one connection: the startup packet, then by user name a login error
# or a session. An idle session ends after the hang guard (read_n).
sub fake_connection
{
	my ($c) = @_;
	my $user = '';
	while (1)
	{
		my $hdr = read_n($c, 8) // return;
		my ($len, $code) = unpack('NN', $hdr);
		if ($code == 80877103 || $code == 80877104)
		{
			syswrite($c, 'N');    # no TLS, no GSSAPI encryption
			next;
		}
		my $body = $len > 8 ? (read_n($c, $len - 8) // return) : '';
		my %p = split /\0/, $body;
		$user = $p{user} // '';
		last;
	}
	if ($hidden{$user})
	{
		serve_session($c, $hidden{$user}{body});
	}
	else
	{
		my $case = $cases{$user};
		my $e = $case ? $case->{body} : "SFATAL\0C08P01\0Munknown test user\0\0";
		syswrite($c, 'E' . pack('N', 4 + length($e)) . $e);
	}
	close $c;
	return;
}

my $fake_pid = fork() // die "fork: $!";
fake_server() if $fake_pid == 0;
close $listener;

my $node = pgbun_node(
	name => 'servererrors',
	conf => {
		'pgbun.auth_type' => 'trust',
		'pgbun.server_host' => '127.0.0.1',
		'pgbun.server_port' => $fake_port,
		'pgbun.server_tls_sslmode' => 'disable',
	});
$node->safe_psql('postgres', join('', map { "CREATE ROLE $_ LOGIN;\n" } sort(keys %cases, keys %hidden)));
my $identity = server_identity($node);

foreach my $user (sort keys %cases)
{
	my $case = $cases{$user};
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, database => 'postgres');
	ok(!$r->{ok}, "$user: no ReadyForQuery");
	my $e = $r->{error} // {};
	is($e->{C}, $case->{sqlstate}, "$user: SQLSTATE $case->{sqlstate}")
	  or diag(explain($r));
	like($e->{M} // '', $case->{message}, "$user: message");
	is($e->{S}, 'FATAL', "$user: severity FATAL");
	$raw->close;
	check_server_same($node, $identity, "$user: pgbun still up");
}

# a second client of a pool whose login failed gets the same (stored) error
{
	my $raw = raw_connect($node);
	my $r = $raw->login(user => 'fe_nostate', database => 'postgres');
	is(($r->{error} // {})->{C}, 'XX000', 'fe_nostate again: the stored error, still XX000');
	$raw->close;
}

ok(PgbunTest::tail_log($node, 400) =~ /the server sent a malformed error message/,
	'the malformed error is logged');

# errors of pgbun's own SET on a logged-in server: a notice for the client
foreach my $user (sort keys %hidden)
{
	my $case = $hidden{$user};
	my $raw = raw_connect($node);
	my $r = $raw->login(user => $user, database => 'postgres',
		params => [ application_name => 'from-the-client' ]);
	ok($r->{ok}, "$user: logs in through pgbun") or diag(explain($r));
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT 1'));
	my $msgs = read_until($raw, 'Z');
	my @notices = (@{ $r->{notices} // [] },
		map { PgbunTest::Raw::error_fields($_->{body}) } grep { ($_->{type} // '') eq 'N' } @$msgs);
	is(scalar @notices, 1, "$user: one NoticeResponse for the failed SET") or diag(explain($msgs));
	is($notices[0]{C}, $case->{sqlstate}, "$user: notice SQLSTATE $case->{sqlstate}");
	like($notices[0]{M} // '', $case->{message}, "$user: notice message");
	is(msg_types($msgs) =~ /Z$/ ? 1 : 0, 1, "$user: the query is answered (" . msg_types($msgs) . ')');
	$raw->close;
	check_server_same($node, $identity, "$user: pgbun still up");
}

kill 'TERM', $fake_pid;
waitpid($fake_pid, 0);
stop_node($node);
done_testing();

# 350_websocket: the PostgreSQL protocol inside WebSocket (RFC 6455) on
# pgbun's own port (pgbun.websocket).
#
# A raw WebSocket client (PgbunTest::Ws below: PgbunTest::Raw with its bytes
# carried in masked binary frames) logs in with SCRAM through a transaction
# pool of 4 and runs queries whose answers are checked, with:
#  - pgbun.websocket off (the default): the upgrade request is an invalid
#    startup packet, no 101;
#  - every message cut into fragments of 3 bytes (continuation frames) with
#    pings between them (each answered by a pong with its payload), several
#    messages in one frame, and results larger than one server frame;
#  - the startup packet in a frame sent with the upgrade request, before
#    the 101 (read at once, no new socket event needed);
#  - the close handshake (the client's close echoed, then end of file);
#  - bad frames: unmasked (1002), text (1003), over
#    pgbun.websocket_max_frame_size (1009), reserved bits (1002);
#  - bad upgrades: garbage (400), a header over 16 kB (431), a wrong
#    version (426), the wrong path (404), a wrong Origin when
#    pgbun.websocket_allowed_origins is set (403; the right one and none are
#    let in), Sec-WebSocket-Protocol echoed;
#  - slow clients: a half-sent upgrade request and an upgraded connection
#    that never sends its startup packet end at client_login_timeout;
#  - raw wss:// (test/python/ws_tls_probe.py): the upgrade inside TLS with
#    no ALPN and with ALPN http/1.1, an unmasked frame closed with 1002
#    inside TLS, and direct TLS without ALPN "postgresql" followed by a
#    startup packet still refused;
# each bad input closes that connection only: the worker does not restart
# and a bystander's transaction goes on.
#
# Then the real @neondatabase/serverless client (test/node/neon_workload.mjs,
# npm, pinned in test/node/package-lock.json) with neonConfig.wsProxy at
# pgbun: its Pool and Client, 40 concurrent clients, through the pool of 4,
# over ws:// and over wss:// (TLS with pgbun's certificate, then the upgrade);
# results checked by the script, rows checked here, backends sampled.

use strict;
use warnings FATAL => 'all';

use Cwd ();
use JSON::PP;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $pool_size = 4;
my $dir = PostgreSQL::Test::Utils::tempdir();

# A server certificate for wss:// (pgbun's zero-config TLS uses the server's).
openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/ca.key",
	'-out', "$dir/ca.crt", '-days', '30', '-subj', '/CN=pgbun ws test CA');
openssl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/server.key",
	'-out', "$dir/server.csr", '-subj', '/CN=localhost');
{
	open my $fh, '>', "$dir/server.ext" or die;
	print $fh "subjectAltName = DNS:localhost,IP:127.0.0.1\nbasicConstraints = CA:FALSE\n";
	close $fh;
}
openssl('x509', '-req', '-in', "$dir/server.csr", '-CA', "$dir/ca.crt", '-CAkey', "$dir/ca.key",
	'-CAcreateserial', '-days', '30', '-sha256', '-extfile', "$dir/server.ext", '-out', "$dir/server.crt");
chmod 0600, "$dir/server.key";

my $node = pgbun_node(
	name => 'websocket',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => $pool_size,
		'pgbun.client_login_timeout' => '3s',
		# prober: reload_sync's probe relies on the reset query of a session pool
		'pgbun.users' => 'prober = pool_mode=session',
		'ssl' => 'on',
		'ssl_cert_file' => "$dir/server.crt",
		'ssl_key_file' => "$dir/server.key",
	});
my $port = pgbun_port($node);
$node->safe_psql(
	'postgres', qq{
SET password_encryption = 'scram-sha-256';
CREATE ROLE wsapp LOGIN PASSWORD 'ws-pw' CONNECTION LIMIT $pool_size;
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE DATABASE wsdb;
});
$node->safe_psql(
	'wsdb', q{
CREATE TABLE neon_rows (lib text, client int, seq int, PRIMARY KEY (lib, client, seq));
GRANT ALL ON neon_rows TO wsapp;
});
my $identity = server_identity($node);
my %login = (user => 'wsapp', password => 'ws-pw', database => 'wsdb');
my %probe = (user => 'prober', password => 'prober-pw');

sub set_conf
{
	my (%kv) = @_;
	reload_sync($node, \%probe, %kv);
	return;
}

# ---- off by default ----
{
	my $ws = PgbunTest::Ws->new(port => $port);
	my $h = $ws->handshake;
	isnt($h->{status}, 101, 'pgbun.websocket off: no 101 for an upgrade request');
	like($h->{raw}, qr/invalid startup packet length/, 'pgbun.websocket off: the request is an invalid startup packet');
}

set_conf('pgbun.websocket' => 'on');
my $bystander = bystander_start($node, %probe);

# ---- a full login and queries ----
{
	my $ws = PgbunTest::Ws->new(port => $port);
	my $h = $ws->handshake(path => '/v2?address=db:5432');
	is($h->{status}, 101, 'upgrade answered 101');
	is($h->{headers}{'sec-websocket-accept'}, PgbunTest::Ws::accept_for($ws->{key}), 'Sec-WebSocket-Accept is right');
	is(lc($h->{headers}{upgrade} // ''), 'websocket', 'Upgrade: websocket');
	my $l = $ws->login(%login);
	ok($l->{ok}, 'SCRAM login over WebSocket') or diag(explain($l));
	is_deeply($l->{auth}, [ 10, 11, 12, 0 ], 'SCRAM-SHA-256 exchange');
	ok($l->{scram_server_ok}, 'the server signature verifies');
	my $r = $ws->query("SELECT 6 * 7, current_user, current_database()");
	is_deeply($r->{rows}, [ [ 42, 'wsapp', 'wsdb' ] ], 'a query over WebSocket');

	# results larger than a server frame (16 kB) and than the buffer
	$r = $ws->query("SELECT md5(repeat('ab', 50000)), repeat('ab', 50000)");
	is($r->{rows}[0][0], $node->safe_psql('postgres', "SELECT md5(repeat('ab', 50000))"), 'md5 of a 100 kB value');
	is(length($r->{rows}[0][1] // ''), 100000, 'a 100 kB value arrives whole');
	$r = $ws->query("SELECT g FROM generate_series(1, 20000) g");
	is(scalar(@{ $r->{rows} }), 20000, '20,000 rows');
	is($r->{rows}[19999][0], 20000, 'the last row');

	# fragments of 3 bytes with a ping between every two
	$ws->{frag} = 3;
	$ws->{ping_between} = 1;
	$r = $ws->query("SELECT 'fragmented', 1 + 1");
	is_deeply($r->{rows}, [ [ 'fragmented', 2 ] ], 'a query cut into continuation frames');
	cmp_ok(scalar(@{ $ws->{pongs} }), '>', 3, 'pings answered');
	is_deeply([ grep { !/^ping\d+$/ } @{ $ws->{pongs} } ], [], 'each pong carries its ping\'s payload');
	my %sent = map { $_ => 1 } @{ $ws->{pings} };
	is(scalar(grep { $sent{$_} } @{ $ws->{pongs} }), scalar(@{ $ws->{pongs} }), 'pongs answer pings sent');
	$ws->{frag} = 0;
	$ws->{ping_between} = 0;

	# several messages in one frame: a pipeline of three queries
	$ws->send_bytes(join('', map { PgbunTest::Raw::query_message("SELECT $_") } 1 .. 3));
	my @got = map { $ws->read_result->{rows}[0][0] } 1 .. 3;
	is_deeply(\@got, [ 1, 2, 3 ], 'three queries in one frame');

	# a transaction, then the close handshake
	$ws->query('BEGIN');
	$ws->query("INSERT INTO neon_rows VALUES ('raw', 1, 1)");
	is($ws->query('COMMIT')->{tags}[0], 'COMMIT', 'a transaction commits');
	$ws->send_frame(0x8, pack('n', 1000) . 'bye');
	my $eof = $ws->read_to_eof(10);
	ok($eof->{eof}, 'after the close frame the connection ends');
	is($ws->{close_code}, 1000, 'the close frame is echoed with its code');
	is($node->safe_psql('wsdb', "SELECT count(*) FROM neon_rows WHERE lib = 'raw'"), '1', 'the row committed');
}
bystander_check($bystander, $identity, 'after the WebSocket session');

# ---- a client that cancels its waiting request, then closes and leaves ----
# PostgreSQL would not run a request cancelled before its sender left, so
# pgbun drops it and the client with it as soon as it hangs up. Its close
# frame is read through the WebSocket layer: peeked at, the frame's bytes
# looked like data still to come, and the client stayed queued (its
# cancelled request to run once a server was free).
{
	my $ctl = direct_session($node);
	$ctl->query("SELECT pgbun.pause('wsdb')", hang_guard());
	my $ws = PgbunTest::Ws->new(port => $port);
	is($ws->handshake(path => '/v2?address=db:5432')->{status}, 101, 'leave while waiting: upgraded');
	my $l = $ws->login(%login);
	ok($l->{ok}, 'leave while waiting: logged in') or diag(explain($l));
	$ws->send_bytes(PgbunTest::Raw::query_message("INSERT INTO neon_rows VALUES ('left', 1, 1)"));
	my $waiting = "SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'wsapp' AND state = 'waiting'";
	my ($matched, $last) = poll_sql($node, $waiting, '1');
	ok($matched, 'leave while waiting: the request waits (wsdb paused)') or diag("last: $last");
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($l->{pid}, $l->{key}));
	ok($c->read_to_eof(hang_guard())->{eof}, 'leave while waiting: its CancelRequest is taken');
	$c->close;
	$ws->send_frame(0x8, pack('n', 1000) . 'bye');
	# bytes after the close frame, which the layer never reads, are no input either
	$ws->send_frame(0x9, 'late');
	$ws->shutdown_write;
	($matched, $last) = poll_sql($node, $waiting, '0');
	ok($matched, 'leave while waiting: the client is gone while the database is still paused')
	  or diag("last: $last");
	$ctl->query("SELECT pgbun.resume('wsdb')", hang_guard());
	# a request queued after it runs, so the cancelled one would have by now
	my $next = PgbunTest::Ws->new(port => $port);
	$next->handshake(path => '/v2?address=db:5432');
	ok($next->login(%login)->{ok}, 'leave while waiting: a new client logs in');
	is($next->query("SELECT count(*) FROM neon_rows WHERE lib = 'left'")->{rows}[0][0] // '', '0',
		'leave while waiting: the cancelled request never ran');
	$next->terminate;
	$ctl->quit;
}
bystander_check($bystander, $identity, 'after a WebSocket client left while waiting');

# the startup packet in a frame sent with the request, before the 101 arrived
{
	my $ws = PgbunTest::Ws->new(port => $port);
	my $startup = PgbunTest::Raw::startup_packet([ user => $login{user}, database => $login{database} ]);
	is($ws->handshake(pipelined => PgbunTest::Ws::frame_bytes(0x2, $startup))->{status}, 101,
		'upgrade with the startup packet right behind the request: 101');
	my $l = $ws->authenticate(%login);
	ok($l->{ok}, '... and the login goes on from that frame') or diag(explain($l));
	is_deeply($ws->query('SELECT 1')->{rows}, [ [1] ], '... and queries work');
}

# ---- bad frames ----
set_conf('pgbun.websocket_max_frame_size' => '64kB');
my @bad = (
	[ 'an unmasked frame', 1002, sub { $_[0]->send_frame(0x2, 'abcd', mask => 0) } ],
	[ 'a text frame', 1003, sub { $_[0]->send_frame(0x1, 'SELECT 1') } ],
	[ 'a frame over websocket_max_frame_size', 1009, sub { $_[0]->send_raw(PgbunTest::Ws::frame_header(0x82, 1024 * 1024, 1) . 'mask') } ],
	[ 'reserved bits set', 1002, sub { $_[0]->send_raw(PgbunTest::Ws::frame_header(0xC2, 4, 1) . "\0\0\0\0abcd") } ],
	[ 'a continuation with no message', 1002, sub { $_[0]->send_frame(0x0, 'abcd') } ],
	[ 'a ping of 126 bytes', 1002, sub { $_[0]->send_frame(0x9, 'p' x 126) } ],);
foreach my $case (@bad)
{
	my ($label, $code, $act) = @$case;
	foreach my $when ('before login', 'after login')
	{
		my $ws = PgbunTest::Ws->new(port => $port);
		is($ws->handshake->{status}, 101, "$label ($when): upgraded");
		if ($when eq 'after login')
		{
			ok($ws->login(%login)->{ok}, "$label ($when): logged in");
		}
		$act->($ws);
		my $eof = $ws->read_to_eof(15);
		ok($eof->{eof}, "$label ($when): the connection is closed");
		is($ws->{close_code}, $code, "$label ($when): close code $code");
		if ($when eq 'after login')
		{
			is($eof->{errors}[0]{C} // '', '08P01', "$label ($when): an ErrorResponse 08P01 first");
			like($eof->{errors}[0]{M} // '', qr/^pgbun: .*WebSocket/, "$label ($when): ... saying why");
		}
	}
}
# a frame just under the limit is fine: one 60 kB query
{
	my $ws = PgbunTest::Ws->new(port => $port);
	$ws->handshake;
	ok($ws->login(%login)->{ok}, 'login for a large frame');
	my $r = $ws->query("SELECT length('" . ('y' x 60000) . "')");
	is($r->{rows}[0][0], 60000, 'a 60 kB frame under the limit is taken');
}
set_conf('pgbun.websocket_max_frame_size' => undef);
bystander_check($bystander, $identity, 'after bad frames');

# ---- bad upgrades ----
{
	my $ws = PgbunTest::Ws->new(port => $port);
	my $h = $ws->handshake(raw_request => "GET garbage\r\n\r\n");
	is($h->{status}, 400, 'a garbage request gets 400');
	ok($h->{eof}, '... and is closed');
	like($h->{body}, qr/^pgbun: /, '... with a pgbun: message');

	$ws = PgbunTest::Ws->new(port => $port);
	$h = $ws->handshake(extra => [ map { "X-Pad-$_: " . ('p' x 1000) } 1 .. 20 ]);
	is($h->{status}, 431, 'a request head over 16 kB gets 431');

	$ws = PgbunTest::Ws->new(port => $port);
	$h = $ws->handshake(version => 8);
	is($h->{status}, 426, 'Sec-WebSocket-Version 8 gets 426');
	is($h->{headers}{'sec-websocket-version'}, '13', '... naming version 13');

	$ws = PgbunTest::Ws->new(port => $port);
	$h = $ws->handshake(raw_request => "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	is($h->{status}, 400, 'a GET without Upgrade gets 400');

	$ws = PgbunTest::Ws->new(port => $port);
	$h = $ws->handshake(extra => [ 'Sec-WebSocket-Protocol: pg, other' ]);
	is($h->{status}, 101, 'an offered subprotocol: 101');
	is($h->{headers}{'sec-websocket-protocol'}, 'pg', '... with the first offered subprotocol echoed');
	ok($ws->login(%login)->{ok}, '... and the login works');
}

set_conf(
	'pgbun.websocket_path' => '/v2',
	'pgbun.websocket_allowed_origins' => 'https://app.example, https://other.example');
{
	my $ws = PgbunTest::Ws->new(port => $port);
	is($ws->handshake(path => '/v1?address=x:1')->{status}, 404, 'the wrong path gets 404');
	$ws = PgbunTest::Ws->new(port => $port);
	is($ws->handshake(path => '/v2?address=x:1', extra => ['Origin: https://evil.example'])->{status},
		403, 'a wrong Origin gets 403');
	$ws = PgbunTest::Ws->new(port => $port);
	is($ws->handshake(path => '/v2?address=x:1', extra => ['Origin: https://other.example'])->{status},
		101, 'an allowed Origin is let in');
	ok($ws->login(%login)->{ok}, '... and logs in');
	$ws = PgbunTest::Ws->new(port => $port);
	is($ws->handshake(path => '/v2')->{status}, 101, 'no Origin (not a browser) is let in');
}
set_conf('pgbun.websocket_path' => undef, 'pgbun.websocket_allowed_origins' => undef);

# ---- slow clients end at client_login_timeout (3 s) ----
{
	my $half = PgbunTest::Raw->new(port => $port);
	$half->send_bytes("GET / HTTP/1.1\r\nUpgrade: websocket\r\n");
	my $silent = PgbunTest::Ws->new(port => $port);
	is($silent->handshake->{status}, 101, 'an upgraded client that sends nothing more');
	my $t0 = time;
	my $r1 = $half->read_to_eof(30);
	ok($r1->{eof}, 'a half-sent upgrade request is closed at client_login_timeout');
	my $r2 = $silent->read_to_eof(30);
	ok($r2->{eof}, 'an upgraded client without a startup packet is closed at client_login_timeout');
	cmp_ok(time - $t0, '<', 25, '... within a generous bound');
}
bystander_check($bystander, $identity, 'after bad upgrades and slow clients');

# ---- websocket off again: new upgrades are refused, by reload ----
set_conf('pgbun.websocket' => 'off');
{
	my $ws = PgbunTest::Ws->new(port => $port);
	isnt($ws->handshake->{status}, 101, 'after a reload to off: no 101');
}
set_conf('pgbun.websocket' => 'on');

# ---- raw wss://: TLS first (no SSLRequest, no ALPN postgresql), then the upgrade ----
{
	my ($rc, $out, $err) = PgbunTest::run_cmd([ '/usr/bin/python3', "$FindBin::RealBin/../test/python/ws_tls_probe.py", $port, "$dir/ca.crt" ],
		'', \%ENV, 60);
	is($rc, 0, 'wss probe runs') or diag($err);
	my $p = eval { decode_json($out) } // {};
	is($p->{upgrade_status}, 101, 'wss://: the upgrade inside TLS gets 101');
	is($p->{unmasked_close}, 1002, 'wss://: an unmasked frame gets close 1002 inside TLS');
	ok($p->{unmasked_eof}, 'wss://: ... and the connection ends');
	like($p->{alpn_none_startup} // '', qr/without ALPN protocol "postgresql"/,
		'direct TLS without ALPN followed by a startup packet is still refused');
	is($p->{alpn_http_status}, 101, 'wss:// with ALPN http/1.1 offered gets 101');
}
bystander_check($bystander, $identity, 'after the raw wss probe');

# ---- @neondatabase/serverless ----
# (a login waits for a server of the busy pool: more than the 3 s above)
set_conf('pgbun.client_login_timeout' => '2min');
my $node_dir = Cwd::abs_path("$FindBin::RealBin/../test/node");
my $neon_pkg = "$node_dir/node_modules/\@neondatabase/serverless/package.json";
my $clients = 40;
foreach my $secure (0, 1)
{
	my $label = $secure ? 'neon over wss://' : 'neon over ws://';
	if (!-e $neon_pkg || !-e "$node_dir/node_modules/ws/package.json")
	{
		fail("$label: \@neondatabase/serverless is not installed; run `npm ci` in test/node (make test does it)");
		next;
	}
	my $lib = $secure ? 'neon-wss' : 'neon-ws';
	my %env = (
		PgbunTest::client_env(password => 'ws-pw'),
		PGUSER => 'wsapp',
		PGDATABASE => 'wsdb',
		PGBUN_WS_PROXY => ($secure ? "localhost:$port/v2" : "127.0.0.1:$port/v2"),
		PGBUN_WS_SECURE => $secure,
		PGBUN_WS_CA => "$dir/ca.crt",
		PGBUN_CLIENTS => $clients,
		PGBUN_CONNECTIONS => 10,
		PGBUN_WORKLOAD_TIMEOUT => 180);
	$node->safe_psql('wsdb', "DELETE FROM neon_rows WHERE lib IN ('pool', 'client')");
	my $r = run_sampled($node, [ 'node', "$node_dir/neon_workload.mjs" ],
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'wsapp'",
		env => \%env,
		timeout => 240);
	is($r->{rc}, 0, "$label: the workload script exits 0")
	  or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
	my ($line) = grep { /^\{/ } split /\n/, $r->{out};
	my $s = eval { decode_json($line // '') } // {};
	note("$label summary: " . ($line // 'none'));
	is_deeply(
		{ map { $_ => $s->{$_} } qw(clients failures queries commits rollbacks errorsRecovered bigValues bigResults) },
		{
			clients => $clients,
			failures => 0,
			queries => $clients,
			commits => $clients,
			rollbacks => $clients,
			errorsRecovered => $clients,
			bigValues => $clients,
			bigResults => $clients,
		},
		"$label: the JSON summary adds up") or diag("stderr:\n$r->{err}");
	ok(($s->{backendPids} // 0) >= 1 && ($s->{backendPids} // 99) <= $pool_size,
		"$label: queries ran on at most $pool_size server backends");
	is( $node->safe_psql(
			'wsdb', q{
SELECT count(*) FROM (SELECT lib, client FROM neon_rows WHERE lib IN ('pool', 'client')
                      GROUP BY lib, client HAVING array_agg(seq ORDER BY seq) = '{1,2,3}') c}),
		$clients, "$label: every client's committed rows are in the table");
	is($node->safe_psql('wsdb', "SELECT count(*) FROM neon_rows WHERE seq = 99"), '0',
		"$label: no rolled-back row is in the table");
	ok($r->{samples} > 0, "$label: sampled the server while the script ran");
	cmp_ok($r->{max}, '<=', $pool_size, "$label: the server never saw more than $pool_size backends of the role");
	check_server_same($node, $identity, "after $label");
}

my ($ok, $last) = poll_sql($node, "SELECT coalesce(sum(cl_waiting), 0) FROM pgbun.pools", '0');
ok($ok, 'at the end nobody waits in any pool') or diag("last: $last");
bystander_check($bystander, $identity, 'end of 350');

stop_node($node);
done_testing();

############################################################################
# A raw RFC 6455 client carrying PgbunTest::Raw's protocol bytes.

package PgbunTest::Ws;

use strict;
use warnings FATAL => 'all';

use parent -norequire, 'PgbunTest::Raw';
use Digest::SHA qw(sha1);
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

sub accept_for
{
	my ($key) = @_;
	return encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
}

sub new
{
	my ($class, %opts) = @_;
	my $self = PgbunTest::Raw::new($class, %opts);
	$self->{raw} = '';			# undecoded bytes from the server
	$self->{frag} = 0;
	$self->{pongs} = [];
	$self->{pings} = [];
	$self->{nping} = 0;
	$self->{upgraded} = 0;
	return $self;
}

# Read from the socket into {raw}: 1 got bytes, 0 eof/timeout.
sub _read_raw
{
	my ($self, $deadline) = @_;
	my $left = $deadline - time;
	return 0 if $left <= 0 || $self->{eof};
	my $sel = IO::Select->new($self->{sock});
	return 1 unless $sel->can_read($left);
	my $chunk = '';
	my $n = sysread($self->{sock}, $chunk, 65536);
	if (!$n)
	{
		$self->{eof} = 1;
		return 0;
	}
	$self->{raw} .= $chunk;
	return 1;
}

# Send the upgrade request and read the answer head:
# { status, headers => {lowercase name => value}, body, eof, raw }.
sub handshake
{
	my ($self, %o) = @_;
	$self->{key} = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 16), '');
	my $req = $o{raw_request} // join('',
		'GET ' . ($o{path} // '/') . " HTTP/1.1\r\n",
		"Host: 127.0.0.1\r\n",
		"Upgrade: websocket\r\n",
		"Connection: Upgrade\r\n",
		"Sec-WebSocket-Key: $self->{key}\r\n",
		'Sec-WebSocket-Version: ' . ($o{version} // 13) . "\r\n",
		map({ "$_\r\n" } @{ $o{extra} // [] }),
		"\r\n");
	$self->send_raw($req . ($o{pipelined} // ''));
	my $deadline = time + 15;
	my %r = (status => 0, headers => {});
	while ($self->{raw} !~ /\r\n\r\n/ && $self->_read_raw($deadline)) { }
	if ($self->{raw} =~ s/^HTTP\/1\.1 (\d+)[^\r\n]*\r\n(.*?)\r\n\r\n//s)
	{
		$r{status} = $1;
		foreach my $line (split /\r\n/, $2)
		{
			$r{headers}{ lc($1) } = $2 if $line =~ /^([^:]+):\s*(.*?)\s*$/;
		}
	}
	if ($r{status} == 101)
	{
		$self->{upgraded} = 1;
		return \%r;
	}
	# refused: read to the end (the body, or a PostgreSQL error when off)
	while ($self->_read_raw($deadline)) { }
	$r{eof} = $self->{eof};
	$r{body} = $self->{raw};
	$r{raw} = $self->{raw};
	return \%r;
}

sub send_raw
{
	my ($self, $data) = @_;
	return PgbunTest::Raw::send_bytes($self, $data);
}

sub frame_header
{
	my ($b0, $len, $masked) = @_;
	my $m = $masked ? 0x80 : 0;
	return pack('CC', $b0, $m | $len) if $len < 126;
	return pack('CCn', $b0, $m | 126, $len) if $len < 65536;
	return pack('CCNN', $b0, $m | 127, int($len / 4294967296), $len % 4294967296);
}

# One frame (masked unless mask => 0; FIN unless fin => 0).
sub send_frame
{
	my ($self, $op, $payload, %o) = @_;
	return $self->send_raw(frame_bytes($op, $payload, %o));
}

sub frame_bytes
{
	my ($op, $payload, %o) = @_;
	my $masked = $o{mask} // 1;
	my $b0 = (($o{fin} // 1) ? 0x80 : 0) | $op;
	my $f = frame_header($b0, length($payload), $masked);
	if ($masked)
	{
		my $key = pack('N', int(rand(4294967295)));
		my $km = substr($key x (int(length($payload) / 4) + 1), 0, length($payload));
		$f .= $key . ($payload ^ $km);
	}
	else
	{
		$f .= $payload;
	}
	return $f;
}

# PgbunTest::Raw's bytes: one binary frame, or fragments of {frag} bytes.
sub send_bytes
{
	my ($self, $data) = @_;
	return $self->send_raw($data) unless $self->{upgraded};
	return $self->send_frame(0x2, $data) unless $self->{frag} && length($data) > $self->{frag};
	my @parts = unpack('(a' . $self->{frag} . ')*', $data);
	for my $i (0 .. $#parts)
	{
		my $op = $i == 0 ? 0x2 : 0x0;
		$self->send_frame($op, $parts[$i], fin => $i == $#parts ? 1 : 0) or return 0;
		if ($self->{ping_between} && $i < $#parts)
		{
			my $p = 'ping' . ++$self->{nping};
			push @{ $self->{pings} }, $p;
			$self->send_frame(0x9, $p) or return 0;
		}
	}
	return 1;
}

# Decode server frames from {raw}: binary payloads to {buf}, pongs and close noted.
sub _decode
{
	my ($self) = @_;
	while (length($self->{raw}) >= 2)
	{
		my ($b0, $b1) = unpack('CC', $self->{raw});
		die "server frame is masked" if $b1 & 0x80;
		my $len = $b1 & 0x7f;
		my $h = 2;
		if ($len == 126)
		{
			return if length($self->{raw}) < 4;
			$len = unpack('x2n', $self->{raw});
			$h = 4;
		}
		elsif ($len == 127)
		{
			return if length($self->{raw}) < 10;
			my ($hi, $lo) = unpack('x2NN', $self->{raw});
			$len = $hi * 4294967296 + $lo;
			$h = 10;
		}
		return if length($self->{raw}) < $h + $len;
		my $payload = substr($self->{raw}, $h, $len);
		substr($self->{raw}, 0, $h + $len, '');
		my $op = $b0 & 0x0f;
		if ($op == 0x2 || $op == 0x0) { $self->{buf} .= $payload; }
		elsif ($op == 0xA) { push @{ $self->{pongs} }, $payload; }
		elsif ($op == 0x8)
		{
			$self->{close_code} = length($payload) >= 2 ? unpack('n', $payload) : 1005;
			$self->{close_reason} = substr($payload, 2);
		}
		else { die "unexpected server frame opcode $op"; }
	}
	return;
}

sub _fill
{
	my ($self, $want, $deadline) = @_;
	$self->{timed_out} = 0;
	while (length($self->{buf}) < $want)
	{
		$self->_decode;
		last if length($self->{buf}) >= $want;
		return 0 if $self->{eof};
		if ($deadline - time <= 0)
		{
			$self->{timed_out} = 1;
			return 0;
		}
		$self->_read_raw($deadline);
	}
	return 1;
}

1;

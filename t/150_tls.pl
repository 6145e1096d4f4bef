# 150_tls: TLS between clients and pgbun, and between pgbun and the server.
#
# Certificates are made here with the openssl command: a CA, a server
# certificate for localhost / 127.0.0.1 (used by the server, and by pgbun
# through zero-config), a second one for the reload test, and a client
# certificate. Cases:
#  - zero-config: ssl = on in the server, no pgbun TLS settings: sslmode=require,
#    verify-full and channel_binding=require through pgbun; pgbun.clients.tls
#  - client_tls_sslmode = require refuses a plain client with 28000
#  - a reload to another certificate is used by new connections
#  - bad input from raw sockets (garbage ClientHello, a client vanishing
#    mid-handshake or stalling it, data after SSLRequest, a second SSLRequest),
#    each closed cleanly, with the worker alive and a bystander unaffected
#  - PostgreSQL 17 direct TLS (ALPN "postgresql"); with TLS disabled a
#    ClientHello is an invalid startup packet
#  - pgbench -S over TLS with 20 clients
#  - server-side TLS over TCP with server_tls_sslmode = verify-full: visible in
#    pgbun.servers and pg_stat_ssl; a wrong CA and a certificate for another
#    name are refused (verify-ca takes the latter)

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;

my $dir = PostgreSQL::Test::Utils::tempdir();


# A key and a certificate signed by the test CA, with the given SAN.
sub make_cert
{
	my ($name, $cn, $san) = @_;
	openssl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/$name.key",
		'-out', "$dir/$name.csr", '-subj', "/CN=$cn");
	my $ext = "$dir/$name.ext";
	open my $fh, '>', $ext or die;
	print $fh "subjectAltName = $san\n" if $san;
	print $fh "basicConstraints = CA:FALSE\n";
	close $fh;
	openssl('x509', '-req', '-in', "$dir/$name.csr", '-CA', "$dir/ca.crt", '-CAkey',
		"$dir/ca.key", '-CAcreateserial', '-days', '30', '-sha256', '-extfile', $ext,
		'-out', "$dir/$name.crt");
	chmod 0600, "$dir/$name.key";
	return;
}

openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/ca.key",
	'-out', "$dir/ca.crt", '-days', '30', '-subj', '/CN=pgbun test CA');
make_cert('server', 'localhost', 'DNS:localhost,IP:127.0.0.1');
make_cert('server2', 'pgbun-reloaded', 'DNS:localhost,IP:127.0.0.1');
make_cert('client', 'alice', '');

# Zero-config: the server has ssl = on with its own certificate, pgbun has no TLS settings.
my $node = pgbun_node(
	name => 'tls',
	conf => {
		'ssl' => 'on',
		'ssl_cert_file' => "$dir/server.crt",
		'ssl_key_file' => "$dir/server.key",
		'ssl_ca_file' => "$dir/ca.crt",
		# both loopback addresses where there are two: pgbun.server_host = localhost may pick ::1
		'listen_addresses' => 'localhost',
		'pgbun.client_login_timeout' => '10min',
	},
	hba_extra => [ 'hostssl all all 127.0.0.1/32 scram-sha-256', 'hostssl all all ::1/128 scram-sha-256' ]);
my $port = pgbun_port($node);
$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
CREATE ROLE bystander LOGIN PASSWORD 'bystander-pw';
GRANT pg_monitor TO alice, bob;
});
my %alice = (user => 'alice', password => 'alice-pw');
my $identity = server_identity($node);

my $my_tls = q{SELECT tls FROM pgbun.clients WHERE application_name = 'tls-probe'};

my ($rc, $out, $err) = pgbun_psql($node, $my_tls, %alice, sslmode => 'require',
	application_name => 'tls-probe');
is($rc, 0, 'zero-config: sslmode=require through pgbun') or diag($err);
like($out, qr/^TLSv1\.[23]$/, "pgbun.clients shows the TLS version ($out)");

($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice,
	host => 'localhost',
	dbname => "dbname=postgres sslmode=verify-full sslrootcert=$dir/ca.crt");
is($rc, 0, "sslmode=verify-full (host localhost) against pgbun's certificate") or diag($err);
($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice,
	dbname => "dbname=postgres sslmode=verify-full sslrootcert=$dir/ca.crt");
is($rc, 0, 'sslmode=verify-full (host 127.0.0.1)') or diag($err);

($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice,
	dbname => "dbname=postgres sslmode=require channel_binding=require");
is($rc, 0, 'channel_binding=require (SCRAM-SHA-256-PLUS, tls-server-end-point)') or diag($err);
is($out, '1', 'channel-bound session answers');

($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, sslmode => 'disable',
	dbname => 'dbname=postgres channel_binding=require');
isnt($rc, 0, 'channel_binding=require without TLS fails (no PLUS offered)');

($rc, $out, $err) = pgbun_psql($node, $my_tls, %alice, sslmode => 'disable',
	application_name => 'tls-probe');
is($rc, 0, 'client_tls_sslmode prefer (default): a plain client still gets in') or diag($err);
is($out, '', 'its tls column is empty');

# SCRAM-SHA-256-PLUS is offered on TLS; a raw plain login sees only SCRAM-SHA-256.
{
	my $raw = raw_connect($node);
	my $res = $raw->login(%alice);
	ok($res->{ok}, 'raw plain login works');
	is_deeply($res->{mechanisms}, ['SCRAM-SHA-256'], 'plain connection: no PLUS mechanism');
	$raw->terminate;
}

# ---- bad input; a bystander logged in over TLS stays well ----
my $by = bystander_start($node, user => 'bystander', password => 'bystander-pw', sslmode => 'require');
my $bystander = $by->{session};

sub all_well
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return bystander_check($by, $identity, $_[0]);
}

# SSLRequest, then expect 'S'.
sub ssl_started
{
	my ($label) = @_;
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::ssl_request());
	my $b = $raw->read_bytes(1, hang_guard());
	is($b, 'S', "$label: SSLRequest answered 'S'");
	return $raw;
}

sub closed_ok
{
	my ($raw, $label) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $r = $raw->read_to_eof(hang_guard());
	ok($r->{eof} || $r->{bad_length}, "$label: connection closed") or diag(explain($r));
	$raw->close;
	return;
}

{
	my $raw = ssl_started('garbage ClientHello');
	$raw->send_bytes("\x16\x03\x01\x00\x20" . ("\xAB" x 32));
	closed_ok($raw, 'garbage ClientHello after SSLRequest');
	all_well('garbage ClientHello');
}
{
	my $raw = ssl_started('not TLS at all');
	$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'alice' ]));
	closed_ok($raw, 'a plain startup packet where the ClientHello belongs');
	all_well('plain after S');
}
{
	# a real ClientHello's first bytes, then the client vanishes
	my $raw = ssl_started('mid-handshake close');
	$raw->send_bytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" . ("\x11" x 20));
	$raw->close;
	all_well('client closed mid-handshake');
}
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::ssl_request() . PgbunTest::Raw::startup_packet([ user => 'alice' ]));
	my $r = $raw->read_to_eof(hang_guard());
	ok($r->{eof}, 'data after SSLRequest: closed');
	my ($e) = @{ $r->{errors} };
	is($e && $e->{C}, '08P01', 'data after SSLRequest: 08P01');
	like($e ? $e->{M} : '', qr/^pgbun: .*unencrypted data after SSL request/, 'data after SSLRequest: message');
	all_well('data after SSLRequest');
}
{
	my $raw = raw_connect($node);
	my $res = $raw->login(%alice, stop_at_auth => 10);
	ok($res->{stopped}, 'login reached AuthenticationSASL');
	$raw->send_bytes(PgbunTest::Raw::ssl_request());
	my $r = $raw->read_to_eof(hang_guard());
	ok($r->{eof}, 'SSLRequest after the startup packet: closed');
	is($r->{errors}[0]{C}, '08P01', 'SSLRequest after the startup packet: 08P01');
	all_well('SSLRequest after startup');
}
{
	# direct TLS (PostgreSQL 17) with garbage: closed, no answer in plain text needed
	my $raw = raw_connect($node);
	$raw->send_bytes("\x16\x03\x01\x00\x10" . ("\x00" x 16));
	closed_ok($raw, 'garbage direct-TLS ClientHello');
	all_well('garbage direct TLS');
}

# openssl s_client: $args, stdin bytes; returns stdout . stderr.
sub s_client
{
	my ($stdin, @args) = @_;
	my ($o, $e) = ('', '');
	my $h = IPC::Run::start([ 'openssl', 's_client', '-connect', "127.0.0.1:$port", @args ],
		'<', \$stdin, '>', \$o, '2>', \$e, IPC::Run::timeout(hang_guard()));
	eval { $h->finish; 1 } or eval { $h->kill_kill; };
	return $o . $e;
}

{
	# TLS set up, then a second SSLRequest inside it
	my $o = s_client(PgbunTest::Raw::ssl_request(), '-starttls', 'postgres', '-ign_eof');
	like($o, qr/SSLRequest after TLS was already set up/, 'second SSLRequest inside TLS: pgbun error');
	all_well('second SSLRequest');
}
{
	my $o = s_client(PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ])
		  . PgbunTest::Raw::message('X'),
		'-alpn', 'postgresql', '-ign_eof');
	like($o, qr/ALPN protocol: postgresql/, 'direct TLS: ALPN postgresql negotiated');
	like($o, qr/R\0\0\0.\0\0\0\x0aSCRAM-SHA-256-PLUS/s, 'direct TLS: the startup packet is answered with SASL (PLUS offered)');
	$o = s_client('', '-ign_eof');
	like($o, qr/without ALPN protocol/, 'direct TLS without ALPN: refused');
	all_well('direct TLS');
}

# A handshake that stalls is closed at client_login_timeout; others go on meanwhile.
reload_sync($node, \%alice, 'pgbun.client_login_timeout' => '2s');
{
	my $raw = ssl_started('stalled handshake');
	my $t0 = time;
	my $r = $raw->read_to_eof(hang_guard());
	ok($r->{eof}, 'stalled handshake: closed by client_login_timeout');
	cmp_ok(time - $t0, '<', 20, 'stalled handshake closed in about client_login_timeout');
	$raw->close;
	all_well('stalled handshake');
}
reload_sync($node, \%alice, 'pgbun.client_login_timeout' => '10min');

# ---- pgbench -S over TLS, 20 clients, in session and in transaction mode ----
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-h', $node->host, '-p', $node->port, 'postgres' ],
	'pgbench -i');
$node->safe_psql('postgres', q{
CREATE ROLE carol LOGIN PASSWORD 'carol-pw';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO alice, carol;
});
reload_sync($node, \%alice, 'pgbun.users' => 'carol = pool_mode=transaction');
foreach my $who ([ 'alice', 'alice-pw', 'session' ], [ 'carol', 'carol-pw', 'transaction' ])
{
	my ($user, $pw, $mode) = @$who;
	my %env = (%ENV, PGPASSWORD => $pw, PGSSLMODE => 'require');
	delete $env{PGPASSFILE};
	my ($o, $e) = ('', '');
	my $ok;
	{
		local %ENV = %env;
		$ok = IPC::Run::run(
			[ 'pgbench', '-n', '-S', '-c', '20', '-j', '2', '-t', '50', '-h', '127.0.0.1',
				'-p', $port, '-U', $user, 'postgres' ],
			'>', \$o, '2>', \$e, IPC::Run::timeout(180));
	}
	ok($ok, "pgbench -S -c 20 through TLS, $mode mode") or diag("$o\n$e");
	like($o, qr/number of transactions actually processed: 1000\/1000/, "$mode: all 1000 transactions done");
	unlike($o . $e, qr/error|failed transactions: [1-9]/i, "$mode: no errors");
}

# ---- big messages both ways over TLS (partial SSL writes, records split over reads) ----
{
	my $big = 'y' x 3_000_000;
	($rc, $out, $err) = pgbun_psql($node,
		"SELECT length('$big'), md5('$big');\n"
		  . "SELECT count(*), sum(length(t)) FROM (SELECT repeat(g::text, 300) t FROM generate_series(1, 20000) g) s;\n"
		  . "SELECT g, repeat('z', 500) FROM generate_series(1, 20000) g;",
		%alice, sslmode => 'require', timeout => 180);
	is($rc, 0, '3 MB query text in, 10 MB of rows out, over TLS') or diag($err);
	my @lines = split /\n/, $out;
	require Digest::MD5;
	is($lines[0], '3000000|' . Digest::MD5::md5_hex($big), 'the 3 MB query text arrived intact');
	is(scalar(@lines), 2 + 20000, 'all 20000 rows arrived');
	is($lines[-1], '20000|' . ('z' x 500), 'the last row is intact');
	all_well('big messages');
}

# ---- a slow TLS reader: pgbun's SSL_write must wait and resume with the same bytes ----
{
	# trust for a moment (alice's pool holds her SCRAM keys and idle servers
	# already), so that openssl s_client can log in by itself; the query ends
	# its own backend after the row, which ends the session once all is through
	reload_sync($node, \%alice, 'pgbun.auth_type' => 'trust');
	my $in = "$dir/slow_reader.in";
	open my $fh, '>', $in or die;
	binmode $fh;
	print $fh PgbunTest::Raw::startup_packet([ user => 'alice', database => 'postgres' ])
	  . PgbunTest::Raw::query_message(
		q{SELECT repeat('x', 30000000) || 'END'; SELECT pg_terminate_backend(pg_backend_pid())});
	close $fh;
	my ($o, $e) = ('', '');
	IPC::Run::run(
		[ 'sh', '-c',
			"openssl s_client -quiet -starttls postgres -connect 127.0.0.1:$port -ign_eof < '$in' 2>/dev/null"
			  . " | (sleep 3; tr -d 'x' | od -c | tail -n 20)" ],
		'>', \$o, '2>', \$e, IPC::Run::timeout(120));
	like($o, qr/E\s+N\s+D/, 'slow reader: the 30 MB row arrives whole, its end included') or diag("$o\n$e");
	reload_sync($node, \%alice, 'pgbun.auth_type' => undef);
	all_well('slow reader');
}

# ---- client_tls_sslmode = require ----
reload_sync($node, \%alice, 'pgbun.client_tls_sslmode' => 'require');
{
	my $raw = raw_connect($node);
	my $res = $raw->login(%alice);
	ok(!$res->{ok}, 'require: plain client refused');
	is($res->{error}{C}, '28000', 'require: SQLSTATE 28000');
	like($res->{error}{M} // '', qr/^pgbun: SSL required/, 'require: pgbun message');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, sslmode => 'require');
	is($rc, 0, 'require: a TLS client gets in') or diag($err);
	all_well('require');
}

# ---- reload to a new certificate: new connections get it ----
{
	my $o = s_client('', '-starttls', 'postgres');
	like($o, qr/subject=CN\s*=\s*localhost/, 'before: the server certificate');
	reload_sync($node, \%alice,
		'pgbun.client_tls_cert_file' => "$dir/server2.crt",
		'pgbun.client_tls_key_file' => "$dir/server2.key");
	$o = s_client('', '-starttls', 'postgres');
	like($o, qr/subject=CN\s*=\s*pgbun-reloaded/, 'after reload: the new certificate');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice,
		dbname => "dbname=postgres sslmode=verify-full sslrootcert=$dir/ca.crt channel_binding=require");
	is($rc, 0, 'verify-full and channel binding with the reloaded certificate') or diag($err);
	all_well('reload certificate');
}

# ---- server side: TLS to the server over TCP, verify-full ----
reload_sync($node, \%alice,
	'pgbun.server_host' => 'localhost',
	'pgbun.server_tls_sslmode' => 'verify-full',
	'pgbun.server_tls_ca_file' => "$dir/ca.crt");
{
	my %bob = (user => 'bob', password => 'bob-pw');
	my $s = pgbun_session($node, %bob, sslmode => 'require');
	ok($s->connected, 'bob logs in; pgbun logs in to the server over TCP (hostssl only)')
	  or diag($s->connect_error);
	my $tls = $s->query(q{SELECT string_agg(tls, ',') FROM pgbun.servers WHERE "user" = 'bob'});
	like($tls // '', qr/^TLSv1\.[23]/, "pgbun.servers shows TLS ($tls)");
	my $ssl = $s->query(q{SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()});
	is($ssl, 't', 'pg_stat_ssl: the server connection is TLS');
	$s->quit;
	all_well('server TLS');

	# a CA that did not sign the server's certificate: the login fails, logged
	reload_sync($node, \%alice, 'pgbun.server_tls_ca_file' => "$dir/client.crt");
	$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'bob'});
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %bob, sslmode => 'require');
	isnt($rc, 0, 'verify-full with the wrong CA: bob cannot get a server');
	like(slurp_file($node->logfile), qr/pgbun: TLS with server localhost failed: certificate verify failed/,
		'the log says why');
	all_well('server TLS wrong CA');

	# verify-full checks the name: a server certificate signed by the CA but for
	# "alice" (no localhost) fails verify-full and passes verify-ca
	reload_sync($node, \%alice,
		'ssl_cert_file' => "$dir/client.crt",
		'ssl_key_file' => "$dir/client.key",
		'pgbun.server_tls_ca_file' => "$dir/ca.crt");
	$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'bob'});
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %bob, sslmode => 'require');
	isnt($rc, 0, 'verify-full with a certificate for another name: refused');
	like(slurp_file($node->logfile), qr/pgbun: TLS with server localhost failed: certificate verify failed: [Hh]ostname mismatch/,
		'the log says hostname mismatch');
	reload_sync($node, \%alice, 'pgbun.server_tls_sslmode' => 'verify-ca', 'pgbun.server_login_retry' => '0');
	($rc, $out, $err) = pgbun_psql($node, q{SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()},
		%bob, sslmode => 'require');
	is($rc, 0, 'verify-ca accepts it (the chain is good)') or diag($err);
	is($out, 't', 'verify-ca: TLS to the server');
	all_well('server TLS host name');
}

# ---- auth_type = hba: hostssl / hostnossl lines see TLS ----
{
	open my $fh, '>', "$dir/pgbun_hba.conf" or die;
	print $fh "hostssl all alice 127.0.0.1/32 scram-sha-256\n";
	print $fh "hostnossl all alice 127.0.0.1/32 reject\n";
	close $fh;
	reload_sync($node, \%alice, 'pgbun.client_tls_sslmode' => 'prefer',
		'pgbun.auth_type' => 'hba', 'pgbun.hba_file' => "$dir/pgbun_hba.conf");
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, sslmode => 'require');
	is($rc, 0, 'hba: a hostssl line lets a TLS client in') or diag($err);
	my $raw = raw_connect($node);
	my $res = $raw->login(%alice);
	is($res->{error}{C}, '28000', 'hba: hostnossl reject refuses the plain client');
	like($res->{error}{M} // '', qr/no encryption/, 'hba: ... and says it had no encryption');
	$raw->close;
	reload_sync($node, \%alice, 'pgbun.auth_type' => undef, 'pgbun.hba_file' => undef);
}

# ---- a TLS client that gives up while its password check runs ----
# pgbun reads nothing of a login waiting for its PBKDF2 check, but notices a
# hang-up. libpq's connect_timeout ends the connection with a close_notify:
# TLS alert bytes wait on the socket, which a peek for the end of file took
# for data, so the login stayed for the whole check (seconds here: 40,000,000
# iterations) and was answered into the void. Now alerts alone count as the
# end: the login is closed at once and never answered (a check already
# running on a kdf thread still finishes there).
{
	my $verifier = sprintf('SCRAM-SHA-256$%d:%s$%s:%s', 40000000, encode_base64('t' x 16, ''),
		encode_base64('k' x 32, ''), encode_base64('s' x 32, ''));
	$node->safe_psql('postgres', "CREATE ROLE slowtls LOGIN PASSWORD '$verifier'");
	open my $fh, '>', "$dir/pgbun_hba.conf" or die;
	print $fh "hostssl all slowtls 127.0.0.1/32 password\n";
	print $fh "hostssl all alice 127.0.0.1/32 scram-sha-256\n";
	close $fh;
	reload_sync($node, \%alice, 'pgbun.auth_type' => 'hba', 'pgbun.hba_file' => "$dir/pgbun_hba.conf");
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'slowtls', password => 'wrong-pw',
		dbname => 'dbname=postgres sslmode=require connect_timeout=2');
	like($err, qr/timeout expired/, 'slow check over TLS: the client gives up (connect_timeout)');
	ok( wait_until(
			sub {
				$node->safe_psql('postgres', "SELECT count(*) FROM pgbun.clients WHERE state = 'login'") eq '0';
			}),
		'slow check over TLS: its login is gone');
	is(log_count($node, qr/password authentication failed for user "slowtls"/), 0,
		'slow check over TLS: closed for its hang-up, not answered at the end of the check');
	reload_sync($node, \%alice, 'pgbun.auth_type' => undef, 'pgbun.hba_file' => undef);
	all_well('TLS hang-up during a password check');
}

# ---- a TLS client that leaves while it waits, the last bytes of its request in their own record ----
# What a waiting client left on its socket is read through TLS once it hangs
# up. Peeked at instead, the 19-byte record holding the request's last two
# bytes looked like an alert (a TLS 1.3 alert record has that size too), so
# the request seemed cut short and was dropped, where PostgreSQL runs a
# request sent in full before its client went (t/186).
{
	# a database of its own: pausing it waits for nobody (the bystander holds a server elsewhere)
	$node->safe_psql('postgres', 'CREATE DATABASE splitdb');
	$node->safe_psql('splitdb', 'CREATE TABLE split_rows (v text); GRANT ALL ON split_rows TO alice');
	my $ctl = direct_session($node);
	$ctl->query("SELECT pgbun.pause('splitdb')", hang_guard());
	my ($in, $pout, $perr) = ('', '', '');
	my $h = IPC::Run::start(
		[ '/usr/bin/python3', "$FindBin::RealBin/../test/python/tls_split_hangup.py",
			$port, 'alice', 'alice-pw', 'splitdb', "INSERT INTO split_rows VALUES ('split')" ],
		'<', \$in, '>', \$pout, '2>', \$perr, IPC::Run::timeout(hang_guard()));
	$h->pump until $pout =~ /^sent/m || !$h->pumpable;
	like($pout, qr/^sent/m, 'split request: the client logged in over TLS and sent all but two bytes')
	  or diag($perr);
	my ($matched, $last) = poll_sql($node,
		"SELECT state || ',' || tls FROM pgbun.clients WHERE application_name = 'tls-split'", 'waiting,TLSv1.3');
	ok($matched, 'split request: the client waits for a server (paused), over TLS 1.3') or diag("last: $last");
	$in .= "go\n";
	$h->finish;
	like($pout, qr/"logged_in": true/, 'split request: the client sent the rest and hung up') or diag("$pout $perr");
	$ctl->query("SELECT pgbun.resume('splitdb')", hang_guard());
	ok(wait_until(sub { $node->safe_psql('splitdb', "SELECT count(*) FROM split_rows WHERE v = 'split'") eq '1' }),
		'split request: the request it sent in full ran once a server was free');
	($matched, $last) = poll_sql($node, "SELECT count(*) FROM pgbun.clients WHERE application_name = 'tls-split'", '0');
	ok($matched, 'split request: and the client is gone') or diag("last: $last");
	$ctl->quit;
	all_well('TLS hang-up with a split request');
}

# ---- client_tls_sslmode = verify-ca: a client certificate signed by the CA is needed ----
{
	my $with_cert = "dbname=postgres sslmode=require sslcert=$dir/client.crt sslkey=$dir/client.key";
	reload_conf($node, 'pgbun.client_tls_sslmode' => 'verify-ca',
		'pgbun.client_tls_ca_file' => "$dir/ca.crt");
	ok( wait_until(
			sub {
				my ($r) = pgbun_psql($node, 'SELECT 1', %alice, sslmode => 'require');
				return $r != 0;
			}),
		'verify-ca: a client without a certificate is refused');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice, dbname => $with_cert);
	is($rc, 0, 'verify-ca: a client with a certificate signed by the CA gets in') or diag($err);
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %alice,
		dbname => "dbname=postgres sslmode=require sslcert=$dir/server2.crt sslkey=$dir/server2.key");
	is($rc, 0, 'verify-ca: any certificate of that CA will do (no name check for clients)') or diag($err);
	all_well('client verify-ca');
}

# ---- hba cert method (also with map=) and clientcert=verify-full ----
{
	my %bob = (user => 'bob', password => 'bob-pw');
	$node->safe_psql('postgres', 'CREATE DATABASE certdb; CREATE DATABASE vfdb; CREATE DATABASE mapdb');
	# cert gives pgbun no password to pass on: the server (reached over TCP here) trusts
	# pgbun's logins to certdb
	my $boot = PgbunTest::bootstrap_user();
	open my $sh, '>', $node->data_dir . '/pg_hba.conf' or die;
	print $sh "local all $boot trust\nlocal all all md5\nhost all $boot 127.0.0.1/32 trust\n";
	print $sh "hostssl certdb all $_ trust\nhostssl mapdb all $_ trust\nhostssl all all $_ scram-sha-256\n"
	  foreach ('127.0.0.1/32', '::1/128');
	close $sh;
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	open my $fh, '>', "$dir/pgbun_hba.conf" or die;
	print $fh "hostssl certdb alice 127.0.0.1/32 cert\n";
	print $fh "hostssl certdb bob 127.0.0.1/32 cert\n";
	print $fh "hostssl vfdb all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n";
	print $fh "hostssl mapdb all 127.0.0.1/32 cert map=certmap\n";
	print $fh "host all all 127.0.0.1/32 scram-sha-256\n";
	close $fh;
	open my $ih, '>', "$dir/pgbun_ident.conf" or die;
	print $ih "certmap alice bob\n";
	close $ih;
	reload_sync($node, \%alice, 'pgbun.client_tls_sslmode' => 'prefer',
		'pgbun.client_tls_ca_file' => "$dir/ca.crt", 'pgbun.ident_file' => "$dir/pgbun_ident.conf",
		'pgbun.auth_type' => 'hba', 'pgbun.hba_file' => "$dir/pgbun_hba.conf");
	my $cert = "sslmode=require sslcert=$dir/client.crt sslkey=$dir/client.key";
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'alice', dbname => "dbname=certdb $cert");
	is($rc, 0, 'cert: a certificate with CN alice logs in as alice, no password') or diag($err);
	is($out, 'alice', 'cert: the session is alice\'s');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'bob', dbname => "dbname=certdb $cert");
	isnt($rc, 0, 'cert: alice\'s certificate does not log in bob');
	like($err, qr/pgbun: certificate authentication failed for user "bob"/, 'cert: pgbun says why');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'alice', dbname => 'dbname=certdb sslmode=require');
	isnt($rc, 0, 'cert: no client certificate, no login');
	like($err, qr/pgbun: connection requires a valid client certificate/, 'cert: pgbun asks for a certificate');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', %alice, dbname => "dbname=vfdb $cert");
	is($rc, 0, 'clientcert=verify-full: alice with her certificate and password') or diag($err);
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', %bob, dbname => "dbname=vfdb $cert");
	isnt($rc, 0, 'clientcert=verify-full: bob with alice\'s certificate is refused despite his password');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT current_user', user => 'bob', dbname => "dbname=mapdb $cert");
	is($rc, 0, 'cert map=certmap: the certificate of CN alice logs in as bob') or diag($err);
	is($out, 'bob', 'cert map: the session is bob\'s');
	($rc, $out, $err) = pgbun_psql($node, 'SELECT 1', user => 'alice', dbname => "dbname=mapdb $cert");
	isnt($rc, 0, 'cert map=certmap: with a map, CN alice as alice needs a map line too');
	reload_sync($node, \%alice, 'pgbun.auth_type' => undef, 'pgbun.hba_file' => undef, 'pgbun.ident_file' => undef);
	all_well('hba cert');
}

# ---- client_tls_sslmode = disable: no TLS, so no direct TLS either ----
reload_sync($node, \%alice, 'pgbun.client_tls_sslmode' => 'disable', 'pgbun.client_tls_ca_file' => undef);
{
	my $raw = raw_connect($node);
	$raw->send_bytes(PgbunTest::Raw::ssl_request());
	is($raw->read_bytes(1, hang_guard()), 'N', "disable: SSLRequest answered 'N'");
	my $res = $raw->login(%alice);
	ok($res->{ok}, 'disable: the client goes on in plain text');
	$raw->terminate;

	$raw = raw_connect($node);
	$raw->send_bytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" . ("\x11" x 32));
	my $r = $raw->read_to_eof(hang_guard());
	ok($r->{eof}, 'disable: a ClientHello without SSLRequest is closed');
	is($r->{errors}[0]{C}, '08P01', 'disable: ... with 08P01 (invalid startup packet length)');
	$raw->close;
	all_well('client TLS disabled');
}

$bystander->query('COMMIT');
$bystander->quit;
stop_node($node);
done_testing();

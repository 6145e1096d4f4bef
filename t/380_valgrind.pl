# 380_valgrind: the whole cluster under valgrind's memcheck (postmaster,
# backends, pgbun's worker and its kdf threads), fed the traffic that
# reaches pgbun's riskiest memory: SCRAM logins and hang-ups in the middle
# of them, the extended protocol with named statements re-prepared on
# another server (transaction pooling), a pipeline with an error, a
# cancel, a session pool's reset, TLS (after SSLRequest, and direct TLS
# whose ClientHello comes right after the connect), garbage and over-size
# input, the console and the SQL views, a reload that swaps the settings
# snapshot under live pools, and the HTTP query endpoint (its password
# check on a kdf thread) with clients that hang up at once. Every answer is checked
# against what the server gives directly where it has one; at the end the
# worker is the one that started and memcheck reported no error in any
# process (a use after free or double free that happens not to crash is
# caught here: the crash fixed in 78d2fa8 showed as 15 errors).
#
# Valgrind makes everything about 20 times slower: the traffic is small,
# deadlines are hang guards only.

use strict;
use warnings FATAL => 'all';

use IPC::Run;
use JSON::PP;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;

if (system('valgrind --version >/dev/null 2>&1') != 0)
{
	fail('valgrind is not installed (Debian package valgrind; make test installs it)');
	done_testing();
	exit 0;
}

my $dir = PostgreSQL::Test::Utils::tempdir();
openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/server.key",
	'-out', "$dir/server.crt", '-days', '30', '-subj', '/CN=localhost');
chmod 0600, "$dir/server.key";

my $node = pgbun_node(
	name => 'valgrind',
	valgrind => 1,
	create_extension => 0,
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => 2,
		'pgbun.users' => 'sess = pool_mode=session',
		'pgbun.http_sql' => 'on',
		'pgbun.client_login_timeout' => '60s',
		'ssl' => 'on',
		'ssl_cert_file' => "$dir/server.crt",
		'ssl_key_file' => "$dir/server.key",
	});
# one backend for the whole setup: each costs seconds under valgrind
$node->safe_psql('postgres', q{
CREATE EXTENSION pgbun;
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'app-pw';
CREATE ROLE sess LOGIN PASSWORD 'sess-pw';
CREATE ROLE adm LOGIN PASSWORD 'adm-pw';
GRANT pgbun_admin TO adm;
CREATE TABLE items (id int PRIMARY KEY, name text);
GRANT ALL ON items TO app;
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
});
my $worker = worker_pid($node);
my %app = (user => 'app', password => 'app-pw');

# ---- simple queries: the same answers as the server gives directly ----
{
	my $sql = "SELECT id, name FROM items WHERE id % 7 = 0 ORDER BY id;\nSELECT count(*), sum(id) FROM items;";
	my $direct = $node->safe_psql('postgres', $sql);
	my ($rc, $out, $err) = pgbun_psql($node, $sql, %app);
	is($out, $direct, 'psql through pgbun: the same rows as direct') or diag($err);
}

# ---- extended protocol: named statements across transactions, a pipeline error ----
{
	my $raw = raw_connect($node);
	my $login = $raw->login(%app);
	ok($login->{ok}, 'raw SCRAM login') or diag(explain($login));
	my $stream = '';
	$stream .= parse_msg('by_id', 'SELECT name FROM items WHERE id = $1', 23) . sync_msg();
	foreach my $id (3, 9, 27)
	{
		$stream .= bind_msg('', 'by_id', $id) . execute_msg() . sync_msg();
	}
	$raw->send_bytes($stream);
	my $msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '1Z', 'Parse of a named statement');
	my @names;
	foreach (1 .. 3)
	{
		my $m = read_until($raw, 'Z');
		push @names, map { PgbunTest::Raw::data_row($_->{body})->[0] } grep { $_->{type} eq 'D' } @$m;
	}
	is_deeply(\@names, [ 'item 3', 'item 9', 'item 27' ], 'three Binds of it in their own transactions');
	# an error in the middle of a pipeline: the rest is skipped up to Sync
	$raw->send_bytes(bind_msg('', 'by_id', 'not a number') . execute_msg()
		  . bind_msg('', 'by_id', 5) . execute_msg() . sync_msg()
		  . bind_msg('', 'by_id', 5) . execute_msg() . sync_msg());
	$msgs = read_until($raw, 'Z');
	is(first_error($msgs)->{C}, '22P02', 'a bad parameter fails the pipeline (22P02)');
	is(msg_types($msgs), 'EZ', '... and what follows it up to Sync is skipped');
	$msgs = read_until($raw, 'Z');
	is(msg_types($msgs), '2DCZ', '... then the statement runs again');
	# over-size message: the connection ends with a pgbun: error
	$raw->send_bytes('Q' . pack('N', 0x7ffffff0));
	$msgs = read_until($raw, 'Z');
	like(first_error($msgs)->{M} // '', qr/^pgbun: /, 'an over-size message length: a pgbun: error');
	$raw->close;
}

# ---- a cancel ----
{
	my $raw = raw_connect($node);
	my $login = $raw->login(%app);
	$raw->send_bytes(PgbunTest::Raw::query_message('SELECT pg_sleep(300)'));
	my ($ok) = poll_sql($node,
		"SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(300)' AND state = 'active'", '1');
	ok($ok, 'pg_sleep runs');
	my $c = raw_connect($node);
	$c->send_bytes(PgbunTest::Raw::cancel_request($login->{pid}, $login->{key}));
	my $msgs = read_until($raw, 'Z', 120);
	is(first_error($msgs)->{C}, '57014', 'CancelRequest cancels it (57014)');
	$c->close;
	$raw->close;
}

# ---- session pooling: SET does not reach the next client ----
{
	my ($rc, $out, $err) = pgbun_psql($node, "SET work_mem = '7MB'; SHOW work_mem;",
		user => 'sess', password => 'sess-pw');
	is($out, '7MB', 'session pool: SET');
	($rc, $out, $err) = pgbun_psql($node, 'SHOW work_mem', user => 'sess', password => 'sess-pw');
	is($out, $node->safe_psql('postgres', 'SHOW work_mem'), '... the next client sees the default');
}

# ---- TLS ----
{
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid() OR true LIMIT 1; SELECT 6 * 7',
		%app, sslmode => 'require');
	like($out, qr/42$/, 'a TLS client through pgbun') or diag($err);
}

# ---- direct TLS (PostgreSQL 17): the ClientHello right after connecting ----
{
	# a slow worker (valgrind) peeks before the ClientHello is there; it must
	# not then read the ClientHello as a plaintext startup packet
	my $probe = <<'PY';
import socket, ssl, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ok = 0
for i in range(n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["postgresql"])
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60))
        body = struct.pack("!HH", 3, 0) + b"user\0app\0database\0postgres\0\0"
        s.sendall(struct.pack("!I", 4 + len(body)) + body)
        if s.recv(1) == b"R":
            ok += 1
        s.close()
    except (OSError, ssl.SSLError) as e:
        print(e, file=sys.stderr)
print(ok)
PY
	my ($rc, $out, $err) = PgbunTest::run_cmd([ '/usr/bin/python3', '-c', $probe, pgbun_port($node), 20 ],
		'', \%ENV, 600);
	is($out, '20', 'direct TLS: 20 ClientHellos sent at once after connecting, each handshake done and answered')
	  or diag($err);
}

# ---- garbage and logins abandoned half-way ----
{
	my @bad = (
		'garbage' => pack('N', 12) . "\xde\xad\xbe\xef" . "\0" x 4,
		'a huge startup length' => pack('N', 0x7fffffff) . "x" x 16,
		'a startup packet with no terminator' => PgbunTest::Raw::startup_packet([ user => 'app' ]) =~ s/\0\0$/\0x/r,
		'an unknown protocol' => pack('NN', 8, 0x12345678),);
	while (my ($label, $bytes) = splice(@bad, 0, 2))
	{
		my $raw = raw_connect($node);
		$raw->send_bytes($bytes);
		my $res = $raw->read_to_eof(60);
		ok($res->{eof}, "$label: pgbun closes the connection");
		$raw->close;
	}
	# SCRAM begun and abandoned at each step
	foreach my $stop (1 .. 3)
	{
		my $raw = raw_connect($node);
		$raw->send_bytes(PgbunTest::Raw::startup_packet([ user => 'app', database => 'postgres' ]));
		if ($stop >= 2)
		{
			my $m = $raw->read_message(60);
			$raw->send_bytes(PgbunTest::Raw::message('p', "SCRAM-SHA-256\0" . pack('N', 30) . 'n,,n=,r=abcdefghijklmnopqrstuv'))
			  if $stop == 3;
			$raw->read_message(60) if $stop == 3;
		}
		$raw->close;
	}
	pass('SCRAM logins abandoned at each step');
}

# ---- the console and the SQL views ----
{
	my ($rc, $out, $err) = pgbun_psql($node, "SHOW POOLS;\nSHOW CLIENTS;\nSHOW SERVERS;\nSHOW STATS;",
		user => 'adm', password => 'adm-pw', dbname => 'pgbouncer');
	like($out, qr/^postgres\|app\|/m, 'the console: SHOW POOLS lists the app pool') or diag($err);
	is($node->safe_psql('postgres', "SELECT count(*) > 0 FROM pgbun.pools WHERE \"user\" = 'app'"),
		't', 'pgbun.pools lists it too');
	is($node->safe_psql('postgres', 'SELECT count(*) >= 0 FROM pgbun.clients, pgbun.servers'), 't',
		'pgbun.clients and pgbun.servers read');
}

# ---- a reload under a live pool: the settings snapshot is swapped ----
{
	my $s = pgbun_session($node, %app);
	ok($s->connected, 'a client holds a connection') or diag($s->connect_error);
	reload_sync($node, { user => 'sess', password => 'sess-pw' }, 'pgbun.default_pool_size' => 3,
		'pgbun.databases' => 'aliasdb = dbname=postgres');
	my ($out) = $s->query('SELECT count(*) FROM items');
	is($out, '50', '... and goes on after the reload');
	my ($rc, $o2, $err) = pgbun_psql($node, 'SELECT current_database()', %app, dbname => 'aliasdb');
	is($o2, 'postgres', 'the new pgbun.databases entry is served') or diag($err);
	$s->quit;
}

# ---- the HTTP query endpoint, and clients that hang up at once ----
{
	my $body = '{"query":"SELECT count(*) AS n FROM items"}';
	my $conn = 'postgresql://app:app-pw@h/postgres';
	my $req = "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: $conn\r\n"
	  . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	my ($status, $h, $b) = http_request(pgbun_port($node), $req, 120);
	my $j = eval { decode_json($b) };
	is_deeply([ $status, $j && $j->{rows} ], [ 200, [ { n => '50' } ] ], 'POST /sql answers') or diag($h . $b);
	my $sent = 0;
	for my $round (1 .. 60)
	{
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => pgbun_port($node), Proto => 'tcp')
		  or next;
		$sent++ if print $s $req;
		close $s;
		sleep(0.02) if $round % 4 == 0;
	}
	cmp_ok($sent, '>=', 50, "$sent requests hung up at once");
	my ($ok, $last) = poll_sql($node, "SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'app'", '0', 120);
	ok($ok, '... none is left as a client') or diag("last: $last");
}

is(worker_pid($node), $worker, 'the worker is the one that started');
stop_node($node);    # and memcheck's verdict over every process
done_testing();

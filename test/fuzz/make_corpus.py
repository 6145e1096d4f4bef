#!/usr/bin/python3
"""test/fuzz/make_corpus.py - write the seed corpus of the fuzz targets.

Run from anywhere: it (re)writes test/fuzz/corpus/<target>/seed-* next to
itself; other files there (regress-*: inputs that once found a bug) are left
alone. The seeds are valid messages, so libFuzzer starts from inputs that go
deep into each parser. The SCRAM seeds are complete exchanges: same password,
salt and iterations as fuzz_scram_*.c, and the nonces fixed_random.c makes.
"""
import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = b"pencil"
SALT = b"pgbun-fuzz-salt!"
ITERATIONS = 4096
CBIND = b"\x42" * 32  # the certificate hash fuzz_scram_server.c pretends pgbun has


def fixed_random(n):
    return bytes((0xA5 ^ (31 * i)) & 0xFF for i in range(n))


def b64(b):
    return base64.b64encode(b).decode()


def hm(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


SALTED = hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, ITERATIONS)
CLIENT_KEY = hm(SALTED, b"Client Key")
SERVER_KEY = hm(SALTED, b"Server Key")
STORED_KEY = hashlib.sha256(CLIENT_KEY).digest()
NONCE = b64(fixed_random(18))  # what scram.c makes, as server or as client


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def untyped(code, body=b""):
    return struct.pack("!II", 8 + len(body), code) + body


def params(*pairs):
    return b"".join(k + b"\0" + v + b"\0" for k, v in pairs) + b"\0"


def msg(t, body=b""):
    return t + struct.pack("!I", 4 + len(body)) + body


def fields(*pairs):
    return b"".join(k + v + b"\0" for k, v in pairs) + b"\0"


V3 = 3 << 16
SSL = (1234 << 16) | 5679
GSS = (1234 << 16) | 5680
CANCEL = (1234 << 16) | 5678

# --- startup
write("startup", "psql", untyped(V3, params((b"user", b"alice"), (b"database", b"app"),
                                           (b"application_name", b"psql"),
                                           (b"client_encoding", b"UTF8"))))
write("startup", "ssl-then-startup", untyped(SSL) + untyped(V3, params((b"user", b"bob"))))
write("startup", "gss-ssl-startup", untyped(GSS) + untyped(SSL) + untyped(V3, params((b"user", b"bob"))))
write("startup", "cancel", untyped(CANCEL, struct.pack("!II", 4242, 0xDEADBEEF)))
write("startup", "protocol-3.2-pq-options",
      untyped(V3 | 2, params((b"user", b"u"), (b"_pq_.protocol_managed_params", b"x"),
                             (b"options", b""), (b"replication", b"false"))))
write("startup", "quotes-backslashes",
      untyped(V3, params((b"user", b"u"), (b"search_path", b"\"my schema\", public"),
                         (b"application_name", b"it's a \\ test"), (b"DateStyle", b"ISO, MDY"),
                         (b"TimeZone", b"Europe/Paris"), (b"extra_float_digits", b"3"))))
write("startup", "protocol-2", struct.pack("!II", 296, 2 << 16) + b"\0" * 288)

# --- messages (flag byte: bit 0 from a server, bits 1-2 the packet limit; 6 = 1 MiB)
login = (msg(b"R", struct.pack("!I", 0)) +
         msg(b"S", b"server_version\x0015.8\0") + msg(b"S", b"TimeZone\0UTC\0") +
         msg(b"S", b"DateStyle\0ISO, MDY\0") + msg(b"K", struct.pack("!II", 1234, 5678)) +
         msg(b"Z", b"I"))
write("messages", "server-login", bytes([7]) + login)
write("messages", "server-sasl", bytes([7]) + msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0") +
      msg(b"R", struct.pack("!I", 11) + b"r=abc,s=c2FsdA==,i=4096") + msg(b"R", struct.pack("!I", 12) + b"v=xyz"))
write("messages", "server-md5", bytes([7]) + msg(b"R", struct.pack("!I", 5) + b"\x01\x02\x03\x04"))
write("messages", "server-errors", bytes([7]) +
      msg(b"E", fields((b"S", b"FATAL"), (b"V", b"FATAL"), (b"C", b"28P01"),
                       (b"M", b"password authentication failed for user \"x\""),
                       (b"D", b"detail"), (b"H", b"hint"), (b"F", b"auth.c"), (b"L", b"330"))) +
      msg(b"N", fields((b"S", b"NOTICE"), (b"C", b"00000"), (b"M", b"hello"))) +
      msg(b"E", fields((b"S", b"FATAL"), (b"M", b"no sqlstate"))) +
      msg(b"E", fields((b"S", b"FATAL"), (b"C", b"53300"))) +
      msg(b"E", b"") + msg(b"E", b"\0") + msg(b"E", b"Sunterminated") +
      msg(b"E", fields((b"C", b"bad"))))
write("messages", "client-sasl-initial", bytes([6]) +
      msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", 21) + b"n,,n=,r=abcdefghijklm"))
write("messages", "client-password", bytes([6]) + msg(b"p", b"md5" + b"0" * 32 + b"\0") +
      msg(b"p", b"secret\0"))
write("messages", "client-sasl-no-data", bytes([2]) + msg(b"p", b"SCRAM-SHA-256\0\xff\xff\xff\xff"))

# --- scram_server: flag byte, client-first, NUL, client-final
def server_exchange(flags, gs2, cnonce="fuzzclientnonce"):
    cfb = "n=,r=" + cnonce
    combined = cnonce + NONCE
    sf = "r=%s,s=%s,i=%d" % (combined, b64(SALT), ITERATIONS)
    cbind = gs2.encode() + (CBIND if gs2.startswith("p=") else b"")
    wp = "c=%s,r=%s" % (b64(cbind), combined)
    auth = ",".join([cfb, sf, wp]).encode()
    proof = bytes(a ^ b for a, b in zip(CLIENT_KEY, hm(STORED_KEY, auth)))
    return bytes([flags]) + (gs2 + cfb).encode() + b"\0" + (wp + ",p=" + b64(proof)).encode()


write("scram_server", "plain", server_exchange(0, "n,,"))
write("scram_server", "y-flag", server_exchange(0, "y,,"))
write("scram_server", "tls-not-bound", server_exchange(1, "n,,"))
write("scram_server", "plus", server_exchange(3, "p=tls-server-end-point,,"))
write("scram_server", "mock", server_exchange(4, "n,,"))
write("scram_server", "ext", bytes([0]) + b"n,,n=user,r=abc,x=1\0c=biws,r=abc" + NONCE.encode() +
      b",x=2,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")

# --- scram_client: server-first, NUL, server-final
def client_exchange(server_part="SRVNONCE", extra=""):
    cfb = "n=,r=" + NONCE
    sf = "r=%s%s,s=%s,i=%d%s" % (NONCE, server_part, b64(SALT), ITERATIONS, extra)
    wp = "c=biws,r=" + NONCE + server_part
    auth = ",".join([cfb, sf, wp]).encode()
    return sf.encode() + b"\0" + ("v=" + b64(hm(SERVER_KEY, auth))).encode()


write("scram_client", "plain", client_exchange())
write("scram_client", "extension", client_exchange(extra=",x=ext"))
write("scram_client", "long-nonce", client_exchange(server_part="N" * 900))
write("scram_client", "server-error", ("r=%sSRV,s=%s,i=4096" % (NONCE, b64(SALT))).encode() + b"\0e=invalid-proof")

# --- websocket: an upgrade request head, then masked client frames
WS_HEAD = (b"GET /v2?address=db:5432 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def ws_frame(b0, payload, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    if n < 126:
        h = bytes([b0, 0x80 | n])
    elif n < 65536:
        h = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        h = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return h + mask + bytes(c ^ mask[i & 3] for i, c in enumerate(payload))


write("websocket", "startup-in-frames", WS_HEAD + ws_frame(0x82, untyped(V3, params((b"user", b"alice")))))
write("websocket", "fragments-ping", WS_HEAD + ws_frame(0x02, b"abc") + ws_frame(0x89, b"pi") +
      ws_frame(0x00, b"def") + ws_frame(0x80, b"ghi") + ws_frame(0x8A, b"") + ws_frame(0x88, b"\x03\xe8"))
write("websocket", "long-frame", WS_HEAD + ws_frame(0x82, b"x" * 300))
write("websocket", "text-frame", WS_HEAD + ws_frame(0x81, b"SELECT 1"))
write("websocket", "bad-version", WS_HEAD.replace(b"Version: 13", b"Version: 8"))

# --- json: request bodies
write("json", "query", b'{"query":"SELECT $1::int, $2","params":["1",null,2.5e3,true,{"x":[]}]}')
write("json", "batch", b'{"queries":[{"query":"SELECT 1","params":[]},{"query":"SELECT \\u00e9\\ud83d\\ude00"}]}')
write("json", "escapes", b'["a\\"b\\\\c\\/\\n\\t\\u0000", -0.5e-3, [[[]]], {}]')

# --- http_sql: a request (after its length, 2 bytes), then pgbun's answers in
# pieces (a byte n, then n + 1 bytes)
def http_req(body, extra=b""):
    return (b"POST /sql HTTP/1.1\r\nHost: x\r\n"
            b"Neon-Connection-String: postgresql://alice:secret@h/app?application_name=x\r\n"
            b"Neon-Array-Mode: true\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def pieces(data):
    out = b""
    while data:
        p, data = data[:200], data[200:]
        out += bytes([len(p) - 1]) + p
    return out


def with_answers(req, answers):
    return struct.pack("!H", len(req)) + req + pieces(answers)


AUTH = msg(b"R", struct.pack("!I", 3))
LOGGED_IN = msg(b"R", struct.pack("!I", 0)) + msg(b"S", b"a\0b\0") + msg(b"K", b"\0" * 8) + msg(b"Z", b"I")
ROWDESC = msg(b"T", struct.pack("!H", 2) + b"a\0" + struct.pack("!IhIhih", 16384, 1, 25, -1, -1, 0)
              + b"b\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0))
ROWS = (msg(b"D", struct.pack("!HI", 2, 3) + b'x"y' + struct.pack("!i", -1))
        + msg(b"D", struct.pack("!HI", 2, 0) + struct.pack("!I", 2) + b"42"))
ERROR = msg(b"E", b"SERROR\0C23505\0Mduplicate\0Dkey\0nt_pkey\0\0")
write("http_sql", "query", with_answers(http_req(b'{"query":"SELECT $1, $2","params":["x",null]}'),
      AUTH + LOGGED_IN + msg(b"1") + msg(b"2") + ROWDESC + ROWS + msg(b"C", b"SELECT 2\0") + msg(b"Z", b"I")))
write("http_sql", "batch", with_answers(
      http_req(b'{"queries":[{"query":"SELECT 1"},{"query":"INSERT INTO t VALUES (1)"}]}',
               b"Neon-Batch-Isolation-Level: Serializable\r\nNeon-Batch-Read-Only: true\r\n"),
      AUTH + LOGGED_IN + msg(b"1") + msg(b"2") + msg(b"C", b"BEGIN\0") + msg(b"1") + msg(b"2") + ROWDESC + ROWS
      + msg(b"C", b"SELECT 2\0") + msg(b"1") + msg(b"2") + msg(b"n") + msg(b"C", b"INSERT 0 1\0") + msg(b"Z", b"T")
      + msg(b"C", b"COMMIT\0") + msg(b"Z", b"I")))
write("http_sql", "failed-batch", with_answers(http_req(b'{"queries":[{"query":"INSERT INTO t VALUES (1)"}]}'),
      AUTH + LOGGED_IN + msg(b"1") + msg(b"2") + msg(b"C", b"BEGIN\0") + msg(b"1") + msg(b"2") + msg(b"n") + ERROR
      + msg(b"Z", b"E") + msg(b"C", b"ROLLBACK\0") + msg(b"Z", b"I")))
write("http_sql", "login-error", with_answers(http_req(b'{"query":"SELECT 1"}'), AUTH + ERROR))
write("http_sql", "copy-in", with_answers(http_req(b'{"query":"COPY t FROM STDIN"}'),
      AUTH + LOGGED_IN + msg(b"1") + msg(b"2") + msg(b"n") + msg(b"G", b"\0\0\0") + ERROR + msg(b"Z", b"I")))
write("http_sql", "bad-json", with_answers(http_req(b'{"query":"SELECT 1",}'), b""))
write("http_sql", "get", with_answers(b"GET /sql HTTP/1.1\r\nHost: x\r\n\r\n", b""))
write("http_sql", "expect", with_answers(http_req(b'{"query":"SELECT 1"}', b"Expect: 100-continue\r\n"), AUTH))

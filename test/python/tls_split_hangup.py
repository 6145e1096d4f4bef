#!/usr/bin/python3
"""tls_split_hangup.py - a TLS client that sends a request whose last two
bytes travel in a TLS record of their own, then hangs up (close_notify and
end of file) without reading the answer; standard library only; run by
t/150_tls.pl.

A TLS 1.3 record carrying two bytes is 19 bytes long on the wire, as long as
one carrying an alert: only reading it tells them apart.

Usage: tls_split_hangup.py PORT USER PASSWORD DATABASE SQL. Logs in
(SCRAM-SHA-256 or cleartext password; application_name tls-split), sends all
but the last two bytes of SQL's simple Query in one record, prints "sent" and
waits for a line on stdin (the test sees the client waiting for a server),
then sends the last two bytes in a record of their own and hangs up. Prints
a JSON object at the end: logged_in, tls_version, records (the sizes of the
query's records).
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import sys

port, user, password, database, sql = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]


def message(kind, body):
    return kind + struct.pack("!I", 4 + len(body)) + body


def read_message(s, buf):
    while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    n = 1 + struct.unpack("!I", buf[1:5])[0]
    return buf[0:1], buf[5:n], buf[n:]


def scram(s, buf):
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=,r=" + nonce
    body = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first_bare) + 3) + ("n,," + first_bare).encode()
    s.sendall(message(b"p", body))
    kind, body, buf = read_message(s, buf)
    assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 11, (kind, body)
    server_first = body[4:].decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_bare = "c=biws,r=" + attrs["r"]
    auth_msg = ",".join([first_bare, server_first, final_bare]).encode()
    sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
    s.sendall(message(b"p", (final_bare + ",p=" + proof).encode()))
    return buf


raw = socket.create_connection(("127.0.0.1", port), timeout=30)
raw.sendall(struct.pack("!II", 8, 80877103))
assert raw.recv(1) == b"S", "pgbun refused TLS"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(raw)
params = (b"user\0" + user.encode() + b"\0database\0" + database.encode()
          + b"\0application_name\0tls-split\0\0")
s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
buf = b""
logged_in = False
while True:
    kind, body, buf = read_message(s, buf)
    if kind == b"R":
        code = struct.unpack("!I", body[:4])[0]
        if code == 10:
            buf = scram(s, buf)
        elif code == 3:
            s.sendall(message(b"p", password.encode() + b"\0"))
    elif kind == b"E":
        break
    elif kind == b"Z":
        logged_in = True
        break

records = []
if logged_in:
    query = message(b"Q", sql.encode() + b"\0")
    # one SSL_write each: two application-data records
    s.send(query[:-2])
    print("sent", flush=True)
    sys.stdin.readline()
    s.send(query[-2:])
    records = [len(query) - 2, 2]
    # close_notify, without waiting for pgbun's (it reads nothing of a waiting client)
    s.setblocking(False)
    try:
        s.unwrap()
    except (ssl.SSLError, OSError):
        pass
s.close()
print(json.dumps({"logged_in": logged_in, "tls_version": s.version() if logged_in else None, "records": records}))

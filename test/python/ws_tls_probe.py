#!/usr/bin/python3
"""ws_tls_probe.py - raw checks of pgbun's wss:// (TLS first, then the
WebSocket upgrade), standard library only; run by t/350_websocket.pl.

Usage: ws_tls_probe.py PORT CA_FILE. Prints one JSON object:
  upgrade_status    status of the upgrade inside TLS (no ALPN offered)
  unmasked_close    close code after an unmasked frame inside TLS
  unmasked_eof      the connection ended after it
  alpn_none_startup the error pgbun sends a direct TLS client without ALPN
                    "postgresql" whose first bytes are a startup packet
  alpn_http_status  status of an upgrade over TLS that offered ALPN http/1.1
"""
import base64
import json
import os
import socket
import ssl
import struct
import sys

port = int(sys.argv[1])
ca = sys.argv[2]


def tls(alpn=None):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def upgrade(s):
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /v2?address=db:5432 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def read_all(s):
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except (ConnectionResetError, ssl.SSLError, OSError):
        return data, True
    except socket.timeout:
        return data, False


out = {}
s = tls()
out["upgrade_status"] = upgrade(s)
# an unmasked binary frame (a client must mask): close 1002, then the end
s.sendall(bytes([0x82, 4]) + b"abcd")
data, eof = read_all(s)
out["unmasked_close"] = struct.unpack("!H", data[2:4])[0] if len(data) >= 4 and data[0] == 0x88 else None
out["unmasked_eof"] = eof
s.close()

# direct TLS without ALPN, then a startup packet: refused (PostgreSQL 17's rule)
s = tls()
body = struct.pack("!I", 3 << 16) + b"user\0wsapp\0\0"
s.sendall(struct.pack("!I", 4 + len(body)) + body)
data, eof = read_all(s)
out["alpn_none_startup"] = data.decode(errors="replace")
s.close()

s = tls(["http/1.1"])
out["alpn_http_status"] = upgrade(s)
s.close()
print(json.dumps(out))

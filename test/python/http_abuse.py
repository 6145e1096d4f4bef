#!/usr/bin/python3
"""http_abuse.py - bad and abundant HTTP clients for pgbun's metrics port,
run by t/303_http_abuse.pl while a pooled client keeps querying.

Usage: http_abuse.py PORT PHASE [N] [--timeout S] [--delay S]
  garbage N  N connections, each sending one kind of malformed request
             (binary, a TLS ClientHello, NUL bytes, a request line without a
             version, a bare LF flood, header folding, a request line over
             the 8 KiB bound); each should get a 4xx answer.
  huge N     N connections sending a 1 MiB header field; each should get 431.
  slow N     N slowloris connections writing a valid request one byte a
             second; pgbun should close them (its 10 s deadline) unanswered.
  dribble N  N connections writing a request a byte every 2 ms (TCP_NODELAY):
             a whole one with CRLF, one with bare LF, one after empty lines
             (each 200) and one with a bad header line after good ones (400);
             outcomes counted as "<kind>:<status>".
  storm N    N connections opened at once, each sending GET /metrics and
             reading the answer to the end (200, or 503 when over pgbun's
             connection limit).
--delay S waits S seconds before opening any connection.

Prints one JSON object: per-connection outcomes counted by status ("200",
"431", "closed" for a close without an answer, "reset", "timeout"), the
longest time a connection took ("max_secs"), and the soft RLIMIT_NOFILE it
ran with. Single-threaded and non-blocking (selectors): the N connections
are really open at the same time.
"""

import json
import os
import random
import resource
import selectors
import socket
import sys
import time

PORT = int(sys.argv[1])
PHASE = sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10
TIMEOUT = 120.0
if "--timeout" in sys.argv:
    TIMEOUT = float(sys.argv[sys.argv.index("--timeout") + 1])

# 1,000 sockets need more than Debian's default soft limit of 1024 descriptors
if "--delay" in sys.argv:
    time.sleep(float(sys.argv[sys.argv.index("--delay") + 1]))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N + 64
if soft != resource.RLIM_INFINITY and soft < want:
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

rnd = random.Random(11)
GARBAGE = [
    lambda: bytes(rnd.randrange(256) for _ in range(300)) + b"\r\n\r\n",
    lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
    lambda: b"GET /metrics\x00 HTTP/1.1\r\n\r\n",
    lambda: b"GET /metrics\r\n\r\n",
    lambda: b"\n" * 5000 + b"BREW /pot HTCPCP/1.0\r\n\r\n",
    lambda: b"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n",
    lambda: b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    lambda: b"GET / HTTP/9.9\r\n\r\n",
    lambda: b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    lambda: b"\xff\xfe\xfd" * 1000,
]


DRIBBLE = [
    ("crlf", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"),
    ("lf", b"GET /metrics HTTP/1.1\nHost: 127.0.0.1\n\n"),
    ("empty_lines", b"\r\n\n\r\nGET /status.json HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad_header", b"GET /metrics HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n"),
]
SLOW = {"slow": 1.0, "dribble": 0.002}


class Conn:
    def __init__(self, idx):
        self.idx = idx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.out = b""
        self.resp = b""
        self.start = time.monotonic()
        self.connected = False
        self.done = None          # outcome
        self.end = None
        self.next_byte = self.start + 0.1  # slow, dribble: when to write the next byte
        self.kind = None
        if PHASE == "garbage":
            self.out = GARBAGE[idx % len(GARBAGE)]()
        elif PHASE == "dribble":
            self.kind, self.out = DRIBBLE[idx % len(DRIBBLE)]
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        elif PHASE == "huge":
            self.out = b"GET /metrics HTTP/1.1\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\n\r\n"
        else:
            self.out = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        err = self.sock.connect_ex(("127.0.0.1", PORT))
        if err not in (0, 115):  # EINPROGRESS
            self.finish("connect_error")

    def finish(self, outcome):
        if self.done is None:
            self.done = outcome
            self.end = time.monotonic()
            try:
                sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()

    def status(self):
        if self.resp.startswith(b"HTTP/1.1 ") and len(self.resp) >= 12:
            return self.resp[9:12].decode("ascii", "replace")
        return "closed" if not self.resp else "garbled"

    def on_event(self, mask):
        now = time.monotonic()
        if mask & selectors.EVENT_WRITE and self.out:
            if PHASE in SLOW:
                if now < self.next_byte:
                    return
                chunk = self.out[:1]
                self.next_byte = now + SLOW[PHASE]
            else:
                chunk = self.out[:65536]
            try:
                n = self.sock.send(chunk)
                self.out = self.out[n:]
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                # pgbun answered early and closed: read what it said
                self.out = b""
            except OSError as e:
                if e.errno != 107:  # ENOTCONN: still connecting, try again
                    self.out = b""
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                self.finish(self.status() if self.resp else "reset")
                return
            if not data:
                self.finish(self.status())
                return
            self.resp += data
        self.rearm()

    def rearm(self):
        if self.done is not None:
            return
        ev = selectors.EVENT_READ
        # slow clients write from the timer loop, not on every writable event
        if self.out and PHASE not in SLOW:
            ev |= selectors.EVENT_WRITE
        try:
            sel.modify(self.sock, ev, self)
        except KeyError:
            sel.register(self.sock, ev, self)


sel = selectors.DefaultSelector()
conns = [Conn(i) for i in range(N)]
for c in conns:
    if c.done is None:
        sel.register(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if PHASE not in SLOW else 0), c)

t0 = time.monotonic()
while any(c.done is None for c in conns):
    if time.monotonic() - t0 > TIMEOUT:
        for c in conns:
            if c.done is None:
                c.finish("timeout")
        break
    # slow clients: poll every 100 ms (dribblers every 1 ms) so each writes its byte on time
    for key, mask in sel.select(timeout=0.1 if PHASE != "dribble" else 0.001):
        key.data.on_event(mask)
    if PHASE in SLOW:
        for c in conns:
            if c.done is None and c.out and time.monotonic() >= c.next_byte:
                c.on_event(selectors.EVENT_WRITE)

counts = {}
for c in conns:
    key = c.done if c.kind is None else c.kind + ":" + c.done
    counts[key] = counts.get(key, 0) + 1
print(json.dumps({
    "phase": PHASE,
    "n": N,
    "counts": counts,
    "max_secs": round(max((c.end or time.monotonic()) - c.start for c in conns), 3),
    "min_secs": round(min((c.end or time.monotonic()) - c.start for c in conns), 3),
    "unsent_max": max(len(c.out) for c in conns),
    "nofile": soft,
}))

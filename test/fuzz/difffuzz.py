#!/usr/bin/python3
"""difffuzz - differential protocol fuzzer: the server directly vs through pgbun.

The same seeded message streams run twice, once against the PostgreSQL server's
port and once against pgbun's (transaction mode, pool size 1), by 2-4 clients at a
time whose streams are interleaved by a seeded schedule. Each client's answers
(message types, SQLSTATEs, data rows, command tags, ParameterStatus, ...) must be
identical both ways. Afterwards pgbun's server log (when given) must not say that
it lost track of a server or closed one for a protocol reason.

Speaks protocol v3 itself over raw sockets (stdlib only: no driver), with its own
SCRAM-SHA-256 / md5 / cleartext login. Deterministic from --seed: round r of seed
s is always the same clients, startup parameters and streams, whatever ran before
(random.Random("s:r:...")); only the interleaving depends on timing, and the
results must not depend on it: each client uses its own tables (df_<n>), and no
stream uses session state transaction pooling does not promise (temp tables, WITH
HOLD cursors, LISTEN, advisory locks, SQL PREPARE) nor backend identity
(pg_backend_pid(), inet_server_port(), now()).

Structure: a round = 2-4 clients, each with startup parameters and a list of
streams; a stream = chunks sent one after the other, each sent only when the
previous one is answered (the client keeps a queue of the answers it is owed, as a
server-side tracker would, see Client.note_sent / Client.note_received); a
stream ends at rest (every Sync and Query answered, no COPY in progress). The
round is run directly, then through pgbun (tables reset before each), and the two
per-client transcripts are compared. On a difference: the seed, the round, a
shrunk reproduction (the fewest clients and streams that still differ) as a
readable message list, and both transcripts around the first difference.

Feature classes (PGBUN_DIFFFUZZ_CLASSES or --classes: "default", "all", or a
comma list; "+name" / "-name" add to / remove from the defaults). On by default
unless marked "(off)":
  simple         simple Query, one statement (SELECT/INSERT/UPDATE/DELETE, errors)
  multi          multi-statement simple Query, also failing mid-way
  extended       Parse/Bind/Describe(S,P)/Execute/Close/Sync, unnamed statements
  named          named statements and portals
  rowlimit       Execute with a row limit (PortalSuspended, resumed)
  pipeline       several Sync batches in one write
  flush          batches cut by Flush, answered before the rest is sent
  errors         errors at Parse, Bind, Describe, Execute (syntax, 22P02, 26000, 22012)
  deferred       deferred unique constraint failing at COMMIT / at the Sync of an
                 implicit transaction
  txn            BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE/ROLLBACK TO, simple and extended
  copy_simple    COPY FROM STDIN / TO STDOUT by Query, CopyFail, bad data, CopyData
                 after an error
  copy_ext       COPY FROM STDIN / TO STDOUT through Parse/Bind/Execute, with Syncs
                 the backend ignores during copy-in
  set            SET / SET LOCAL of reported parameters (application_name,
                 DateStyle, TimeZone, IntervalStyle, client_encoding,
                 standard_conforming_strings), also failing SETs
  show           SHOW and current_setting() of the reported parameters and of
                 search_path / extra_float_digits / statement_timeout, and values
                 whose text depends on them (timestamptz, interval, float8)
  reset          RESET x of a reported parameter (PostgreSQL goes back to the
                 startup packet's value), the last statement of its query
  set_default    SET x TO DEFAULT (the same as RESET x in PostgreSQL; its tag is
                 SET, so pgbun cannot see it: known difference, off)
  use_failed_txn  Bind / Describe of a named statement where the batch may
                 start in a failed transaction block (pgbun must prepare it on
                 that server first, which fails there with 25P02 before the
                 backend's own checks: known difference, off)
  reset_midquery RESET x followed by more statements of the same query, or by
                 more messages sent before its answer (they see the server
                 connection's default until pgbun's restore: known difference, off)
  reset_all      RESET ALL
  discard        DISCARD ALL as a simple one-statement Query
  deallocate     DEALLOCATE ALL as a simple one-statement Query
  discard_hidden DISCARD ALL / DEALLOCATE ALL through Parse or inside a
                 multi-statement Query
  set_unreported SET of search_path / extra_float_digits / statement_timeout
                 (pgbun reads them back after the transaction)
  unnamed_sync   Bind/Describe of the unnamed statement in a later Sync batch
                 than its Parse (off: see use_failed_txn)
  reparse        a named Parse reusing a live name (PostgreSQL: 42P05)
  close_skipped  Close of a named statement after other messages of its batch,
                 so that an error before it makes the backend skip it
  parse_failed_txn  a named Parse where the batch may start in a failed
                 transaction block (PostgreSQL: 25P02) (off: see use_failed_txn)
  flush_error    more messages of a batch after an error that a Flush brought
                 back (the backend skips them until Sync)
  startup        startup parameters application_name, TimeZone, DateStyle,
                 IntervalStyle, client_encoding, spelt as the server reports them
  startup_noncanonical  the same spelt otherwise (DateStyle=German: the server
                 reports 'German, DMY')
  startup_float_digits  extra_float_digits as a startup parameter
  startup_search_path  search_path as a startup parameter
  startup_extra  statement_timeout as a startup parameter (needs
                 pgbun.track_extra_parameters to list it)
  startup_options options=-c statement_timeout=... -c ...

Normalizations (what may differ and why; everything else must be equal):
  - BackendKeyData: only its presence (the keys are random on both sides).
  - ErrorResponse / NoticeResponse: severity, SQLSTATE and the message text,
    except that the text of pgbun's own errors ("pgbun: ...", which have their
    own SQLSTATEs anyway) is not compared, nor that of a 26000 (a statement a
    DISCARD ALL earlier in the same batch dropped is named pgbun_<n>). The
    server's other texts name the client's statements as a direct session has them. PGBUN_DIFFFUZZ_TEXTS=0 compares
    severity and SQLSTATE only.
  - Authentication requests are not part of the transcript (pgbun authenticates
    itself; both must end in AuthenticationOk, checked at login).
  - ParameterStatus after login: in a run of them, their order (the backend
    sends them in its GUC table's order; the protocol gives them none).
  - Where a send falls between answers (a client inside a COPY need not wait).
  - ParameterStatus at login: compared as a set over the parameters both sides
    report (server_version etc. are the same server); the order of ParameterStatus
    messages at login is not compared.
  - RowDescription: column names and type oids (table oids and attribute numbers
    are compared too: they are the same server).
Nothing else is normalized: answers of later ParameterStatus, CommandComplete
tags, rows, COPY data, ReadyForQuery status are compared byte for byte.

Environment: PGBUN_DIFFFUZZ_SEED, PGBUN_DIFFFUZZ_STREAMS (at least this many
streams, default 2000), PGBUN_DIFFFUZZ_SECONDS (instead: run this long),
PGBUN_DIFFFUZZ_CLASSES. Exit 0: no difference; 1: a difference (seed and
reproduction printed); 2: a setup error.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import os
import random
import re
import select
import selectors
import socket
import struct
import sys
import time

ALL_CLASSES = [
    'simple', 'multi', 'extended', 'named', 'rowlimit', 'pipeline', 'flush',
    'errors', 'deferred', 'txn', 'copy_simple', 'copy_ext', 'set', 'show',
    'reset', 'reset_all', 'discard', 'deallocate', 'discard_hidden', 'set_unreported',
    'unnamed_sync', 'reparse', 'close_skipped', 'parse_failed_txn', 'flush_error', 'startup',
    'startup_noncanonical', 'startup_float_digits', 'startup_search_path', 'startup_extra',
    'startup_options', 'set_default', 'reset_midquery', 'use_failed_txn',
]
OFF_BY_DEFAULT = {
    # known differences, documented in README (Session parameters, Prepared statements)
    'set_default', 'reset_midquery', 'use_failed_txn',
    'unnamed_sync', 'parse_failed_txn',
}
DEFAULT_CLASSES = [c for c in ALL_CLASSES if c not in OFF_BY_DEFAULT]

MAX_CLIENTS = 4
HANG_SECS = float(os.environ.get("PGBUN_DIFFFUZZ_HANG_SECS", "20"))   # no progress this long: a hang

# Lines in pgbun's log that mean it lost track of a server or closed one for a
# protocol reason (server_close() reasons are logged at DEBUG1, so the node
# needs log_min_messages = debug1 for the second group).
LOG_BAD = [
    r'pgbun: a server answer matched no request',
    # (a server that ended the connection itself, after its FATAL error, is not pgbun's doing)
    r'pgbun: server connection closed: (?!server_lifetime reached|server_idle_timeout reached'
    r'|server closed the connection|could not read from socket'
    # (nor a client that left during a COPY or in the middle of a message)
    r'|client left during COPY|client left in the middle of a message)',
    r'internal error in the pooler',
    r'TRAP:', r'PANIC:', r'terminated by signal', r'server process .* was terminated',
]


# ---------------------------------------------------------------- messages

def cstr(s):
    return s.encode() + b'\0'


def frame(t, body=b''):
    return t.encode() + struct.pack('!I', len(body) + 4) + body


class Msg:
    """One frontend message: type, a readable description, the bytes."""
    __slots__ = ('t', 'desc', 'raw')

    def __init__(self, t, desc, raw):
        self.t, self.desc, self.raw = t, desc, raw

    def __repr__(self):
        return self.desc


def Query(sql):
    return Msg('Q', 'Query(%r)' % sql, frame('Q', cstr(sql)))


def Parse(name, sql, types=()):
    body = cstr(name) + cstr(sql) + struct.pack('!H', len(types))
    body += b''.join(struct.pack('!I', t) for t in types)
    return Msg('P', 'Parse(%r, %r%s)' % (name, sql, ', types=%r' % list(types) if types else ''),
               frame('P', body))


def Bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack('!H', 0) + struct.pack('!H', len(params))
    for p in params:
        if p is None:
            body += struct.pack('!i', -1)
        else:
            b = p.encode()
            body += struct.pack('!i', len(b)) + b
    body += struct.pack('!H', 0)
    return Msg('B', 'Bind(%r, %r%s)' % (portal, stmt, ', %r' % list(params) if params else ''),
               frame('B', body))


def Describe(kind, name):
    return Msg('D', 'Describe(%s, %r)' % (kind, name), frame('D', kind.encode() + cstr(name)))


def Execute(portal, maxrows=0):
    return Msg('E', 'Execute(%r%s)' % (portal, ', %d' % maxrows if maxrows else ''),
               frame('E', cstr(portal) + struct.pack('!i', maxrows)))


def Close(kind, name):
    return Msg('C', 'Close(%s, %r)' % (kind, name), frame('C', kind.encode() + cstr(name)))


def Sync():
    return Msg('S', 'Sync', frame('S'))


def Flush():
    return Msg('H', 'Flush', frame('H'))


def CopyData(data):
    return Msg('d', 'CopyData(%r)' % data, frame('d', data.encode()))


def CopyDone():
    return Msg('c', 'CopyDone', frame('c'))


def CopyFail(why):
    return Msg('f', 'CopyFail(%r)' % why, frame('f', cstr(why)))


def Terminate():
    return frame('X')


def fields_of(body):
    """ErrorResponse / NoticeResponse fields as a dict."""
    out = {}
    i = 0
    while i < len(body) and body[i] != 0:
        j = body.index(b'\0', i + 1)
        out[chr(body[i])] = body[i + 1:j].decode('utf-8', 'replace')
        i = j + 1
    return out


def cstrings(body, n=None):
    parts = body.split(b'\0')
    return [p.decode('utf-8', 'replace') for p in parts[:-1]] if n is None else \
        [p.decode('utf-8', 'replace') for p in parts[:n]]


COMPARE_TEXTS = os.environ.get('PGBUN_DIFFFUZZ_TEXTS', '1') != '0'


def describe_answer(t, body):
    """(key compared, text shown) for one backend message; see Normalizations."""
    if t in 'EN':
        f = fields_of(body)
        key = '%s %s %s' % (t, f.get('V', f.get('S', '?')), f.get('C', '?'))
        text = f.get('M', '')
        # the server's own texts must match too (they name the client's
        # statements); pgbun's own errors say "pgbun:" and differ by design
        # (not a 26000's: a statement a DISCARD ALL earlier in the same batch
        # dropped is named as the server knows it, pgbun_<n>; README)
        if COMPARE_TEXTS and not text.startswith('pgbun:') and f.get('C') != '26000':
            return key + ' ' + text, key + ' ' + text
        return key, key + ' ' + text
    if t == 'C':
        key = 'C ' + cstrings(body)[0]
    elif t == 'D':
        n = struct.unpack('!H', body[:2])[0]
        i, vals = 2, []
        for _ in range(n):
            ln = struct.unpack('!i', body[i:i + 4])[0]
            i += 4
            if ln < 0:
                vals.append(None)
            else:
                vals.append(body[i:i + ln])
                i += ln
        key = 'D ' + repr([None if v is None else v.decode('latin-1') for v in vals])
    elif t == 'T':
        n = struct.unpack('!H', body[:2])[0]
        i, cols = 2, []
        for _ in range(n):
            j = body.index(b'\0', i)
            name = body[i:j].decode('latin-1')
            tab, att, typ, tlen, tmod, fmt = struct.unpack('!IhIhih', body[j + 1:j + 19])
            cols.append('%s:%d' % (name, typ))
            i = j + 19
        key = 'T ' + ','.join(cols)
    elif t == 't':
        n = struct.unpack('!H', body[:2])[0]
        key = 't ' + ','.join(str(x) for x in struct.unpack('!%dI' % n, body[2:2 + 4 * n]))
    elif t == 'S':
        name, value = cstrings(body, 2)
        key = 'S %s=%s' % (name, value)
    elif t == 'Z':
        key = 'Z ' + body.decode()
    elif t in 'GH':
        key = '%s %d/%d' % (t, body[0], struct.unpack('!H', body[1:3])[0])
    elif t == 'd':
        key = 'd ' + repr(body.decode('latin-1'))
    elif t == 'K':
        key = 'K'
    elif t == 'A':
        key = 'A'
    elif t == 'R':
        key = 'R %d' % struct.unpack('!I', body[:4])[0]
    else:
        key = t
    return key, key


# ---------------------------------------------------------------- login

class LoginError(Exception):
    pass


_salted_cache = {}


def scram_login(sock_send, recv_msg, password, mechs):
    if 'SCRAM-SHA-256' not in mechs:
        raise LoginError('no SCRAM-SHA-256 among %r' % mechs)
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = 'n=,r=' + nonce
    first = ('n,,' + first_bare).encode()
    sock_send(frame('p', cstr('SCRAM-SHA-256') + struct.pack('!i', len(first)) + first))
    t, body = recv_msg()
    if t != 'R' or struct.unpack('!I', body[:4])[0] != 11:
        raise LoginError('expected SASLContinue, got %s %r' % (t, body[:80]))
    server_first = body[4:].decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    if not attrs['r'].startswith(nonce):
        raise LoginError('server nonce does not extend ours')
    salt, iters = base64.b64decode(attrs['s']), int(attrs['i'])
    ck = (password, salt, iters)
    if ck not in _salted_cache:
        _salted_cache[ck] = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, iters)
    salted = _salted_cache[ck]
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_wo_proof = 'c=biws,r=' + attrs['r']
    auth_msg = ','.join([first_bare, server_first, final_wo_proof]).encode()
    sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    sock_send(frame('p', (final_wo_proof + ',p=' + base64.b64encode(proof).decode()).encode()))
    t, body = recv_msg()
    if t == 'E':
        raise LoginError('SCRAM refused: %r' % fields_of(body))
    if t != 'R' or struct.unpack('!I', body[:4])[0] != 12:
        raise LoginError('expected SASLFinal, got %s' % t)
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    want = base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest()).decode()
    if body[4:].decode() != 'v=' + want:
        raise LoginError('server signature does not verify')


# ---------------------------------------------------------------- client

EXT_ITEMS = ('P', 'B', 'D', 'E', 'C', 'copyend')


class Client:
    """One client connection of a round: a socket, the answers it is owed, a transcript."""

    def __init__(self, idx, params, streams, gen=None, n_streams=0):
        self.idx = idx
        self.params = params          # startup parameters (list of pairs)
        # streams: list of streams; stream = list of ops; op = list of chunks;
        # chunk = list of Msg, sent when the previous chunk is answered. With a
        # generator (the direct run) ops are made when the client is at rest,
        # from what it knows then, and recorded here for the pgbun run.
        self.streams = streams
        self.gen, self.n_streams = gen, n_streams
        self.quota = [len(st) for st in streams]   # ops per stream
        self.epilogue_sent = False
        self.sock = None
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.pending = collections.deque()   # answers owed, oldest first
        self.copyin = False           # the server waits for COPY data
        self.copy_ext = False         # ... started by an Execute (else by a Query)
        self.copy_end_sent = False
        self.status = 'I'             # of the last ReadyForQuery
        self.skipping = False         # an extended-protocol error: skipped until Sync
        self.skip_sent = False        # ... and no Sync sent since: what is sent now is dropped
        self.exists = set()           # named statements the server has for us
        self.sqls = {}                # ... and their text
        self.transcript = []          # (key, shown)
        self.pos = (0, 0, 0)          # next (stream, op, chunk) to send
        self.finished = False
        self.closed = False
        self.login_params = {}

    # -- login (blocking, with a deadline: no client holds a server yet)
    def connect(self, host, port, user, password, dbname, timeout=15):
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        body = struct.pack('!I', 196608) + cstr('user') + cstr(user) + cstr('database') + cstr(dbname)
        for k, v in self.params:
            body += cstr(k) + cstr(v)
        body += b'\0'
        s.sendall(struct.pack('!I', len(body) + 4) + body)
        buf = bytearray()

        def recv_msg():
            while True:
                if len(buf) >= 5:
                    ln = struct.unpack('!I', buf[1:5])[0]
                    if len(buf) >= ln + 1:
                        t, body = chr(buf[0]), bytes(buf[5:ln + 1])
                        del buf[:ln + 1]
                        return t, body
                d = s.recv(65536)
                if not d:
                    raise EOFError('connection closed during login')
                buf.extend(d)

        keys = []
        while True:
            t, body = recv_msg()
            if t == 'R':
                code = struct.unpack('!I', body[:4])[0]
                if code == 0:
                    continue
                if code == 10:
                    scram_login(s.sendall, recv_msg, password, cstrings(body[4:]))
                elif code == 5:
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = 'md5' + hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                    s.sendall(frame('p', cstr(outer)))
                elif code == 3:
                    s.sendall(frame('p', cstr(password)))
                else:
                    raise LoginError('unsupported authentication request %d' % code)
            elif t == 'S':
                name, value = cstrings(body, 2)
                self.login_params[name] = value
            elif t == 'Z':
                keys.append(describe_answer(t, body))
                break
            elif t == 'E':
                # a refused login is an answer too (08P01 for a startup parameter)
                keys.append(describe_answer(t, body))
                self.transcript.extend(keys)
                self.transcript.append(('EOF', 'EOF (login failed)'))
                self.finished = self.closed = True
                s.close()
                return
            else:
                keys.append(describe_answer(t, body))
        self.transcript.extend(keys)
        s.setblocking(False)
        self.inbuf = buf

    def login_summary(self):
        return self.login_params

    # -- what is owed
    def note_sent(self, m):
        t, q = m.t, self.pending
        if self.copyin and not self.copy_end_sent:
            if t in 'cf':
                self.copy_end_sent = True
                if self.copy_ext:
                    q.append(('copyend',))
            # CopyData goes into the copy; Sync and Flush are ignored by the backend
            return
        if t == 'S':
            self.skip_sent = False
        elif self.skip_sent:
            return      # an error earlier in the batch, no Sync since: dropped unanswered
        if t == 'P':
            name = m.raw[5:m.raw.index(b'\0', 5)].decode()
            sql = m.raw[m.raw.index(b'\0', 5) + 1:].split(b'\0')[0].decode()
            q.append(('P', name, sql))
        elif t == 'C':
            q.append(('C', chr(m.raw[5]), m.raw[6:-1].decode()))
        elif t in 'BDE':
            q.append((t,))
        elif t == 'S':
            q.append(('sync',))
        elif t == 'Q':
            q.append(('query',))
        # Flush: no answer of its own; CopyData/Done/Fail outside COPY: ignored

    def note_received(self, t, body):
        q = self.pending
        head = q[0][0] if q else None
        if t == 'E':
            if head in EXT_ITEMS:
                while q and q[0][0] != 'sync':
                    q.popleft()
                self.skipping = True
                # what is sent from now on is dropped too, unless a Sync is on its way
                self.skip_sent = not q
            self.copyin = False
        elif t == '1' and head == 'P':
            _, name, sql = q.popleft()
            if name:
                self.exists.add(name)
                self.sqls[name] = sql
        elif t == '3' and head == 'C':
            _, kind, name = q.popleft()
            if kind == 'S':
                self.exists.discard(name)
        elif t == '2' and head == 'B':
            q.popleft()
        elif t in 'Tn' and head == 'D':
            q.popleft()
        elif t in 'sI' and head == 'E':
            q.popleft()
        elif t == 'C':
            if head in ('E', 'copyend'):
                q.popleft()
            if self.copyin and self.copy_end_sent:
                self.copyin = False
            tag = body[:-1]
            if tag in (b'DISCARD ALL', b'DEALLOCATE ALL'):
                self.exists.clear()
        elif t == 'G':
            self.copyin, self.copy_end_sent = True, False
            self.copy_ext = head == 'E'
            if head == 'E':
                q.popleft()
                while q and q[0][0] == 'sync':
                    q.popleft()     # the backend ignores Sync during copy-in
        elif t == 'Z':
            while q and q[0][0] not in ('sync', 'query'):
                q.popleft()
            if q:
                q.popleft()
            self.copyin = False
            self.skipping = False
            self.status = body.decode()

    def at_rest_for_next_chunk(self):
        q = self.pending
        if not q:
            return True
        # a simple-Query COPY FROM STDIN waits for our data
        return (self.copyin and not self.copy_end_sent and not self.copy_ext
                and len(q) == 1 and q[0][0] == 'query')

    def next_chunk(self):
        """(stream, op, chunk) to send next, 'end' for the epilogue, None when done.
        Called only at rest: a generator makes the next op from what is known now."""
        s, o, c = self.pos
        while True:
            if s < len(self.streams):
                ops = self.streams[s]
                if o < len(ops):
                    if c < len(ops[o]):
                        # remember where we are: a later call (this one's chunk
                        # may not be sent yet) must not generate again elsewhere
                        self.pos = (s, o, c)
                        return s, o, c
                    o, c = o + 1, 0
                    continue
                if self.gen is not None and self.gen.ext is not None:
                    # the rest of a batch cut by a Flush: same op (shrinking keeps it whole)
                    before = len(ops[-1])
                    ops[-1].extend(self.gen.op(self))
                    o, c = len(ops) - 1, before
                    continue
                if self.gen is not None and len(ops) < self.quota[s]:
                    ops.append(self.gen.op(self))
                    continue
                s, o, c = s + 1, 0, 0
                continue
            if self.gen is not None and s < self.n_streams:
                self.streams.append([])
                self.quota.append(self.gen.r.randint(1, 4))
                continue
            self.pos = (s, o, c)
            return None if self.epilogue_sent else 'end'

    def send_chunk(self, where):
        if where == 'end':
            # every client ends outside a transaction block, so that pgbun may
            # keep the server: a close for any other reason is worth reporting.
            # A Sync first ends a batch a Flush left open (a Query sent while
            # the backend skips to a Sync after an error would get no answer).
            chunk = [Sync(), Query('ROLLBACK')]
            self.epilogue_sent = True
            self.transcript.append(('>', '> end'))
        else:
            s, o, c = where
            chunk = self.streams[s][o][c]
            self.transcript.append(('>', '> stream %d op %d chunk %d' % (s, o, c)))
            self.pos = (s, o, c + 1)
        for m in chunk:
            self.note_sent(m)
            self.outbuf.extend(m.raw)
        self.flush_out()

    def flush_out(self):
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf)
            except BlockingIOError:
                return
            except OSError as e:
                self.fail('send failed: %s' % e)
                return
            del self.outbuf[:n]

    def fail(self, why):
        self.transcript.append(('EOF', 'EOF (%s)' % why))
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.finished = True
            try:
                self.sock.close()
            except OSError:
                pass

    def read_ready(self):
        try:
            d = self.sock.recv(262144)
        except BlockingIOError:
            return False
        except OSError as e:
            self.fail('recv failed: %s' % e)
            return True
        if not d:
            self.fail('server closed the connection')
            return True
        self.inbuf.extend(d)
        self.consume()
        return True

    def drain(self, secs=2.0):
        """After Terminate: what the server still sends (errors of messages it
        read before, in a COPY that took them as a protocol violation) until it
        closes; how much of it arrives before the client stops reading must
        not depend on timing."""
        deadline = time.monotonic() + secs
        while not self.closed and time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                self.read_ready()

    def consume(self):
        buf = self.inbuf
        while len(buf) >= 5:
            ln = struct.unpack('!I', buf[1:5])[0]
            if len(buf) < ln + 1:
                break
            t, body = chr(buf[0]), bytes(buf[5:ln + 1])
            del buf[:ln + 1]
            self.transcript.append(describe_answer(t, body))
            self.note_received(t, body)


# ---------------------------------------------------------------- generator

PARAM_VALUES = {
    'application_name': ["'df_app'", "'other app'", "''"],
    'DateStyle': ["'ISO, MDY'", "'SQL, DMY'", "'German'", "'Postgres, YMD'"],
    'TimeZone': ["'UTC'", "'Europe/Berlin'", "'America/New_York'", "'Asia/Tokyo'", "'no/such_zone'"],
    'IntervalStyle': ["'postgres'", "'iso_8601'", "'sql_standard'", "'postgres_verbose'"],
    'client_encoding': ["'UTF8'", "'LATIN1'", "'SQL_ASCII'"],
    'standard_conforming_strings': ['on', 'off'],
}
UNREPORTED_VALUES = {
    'search_path': ["dfs_a, public", "dfs_b, public", "public", "'$user', public"],
    'extra_float_digits': ['0', '1', '3', '-5'],
    'statement_timeout': ["'5min'", "'4321s'", '0'],
}
STARTUP_VALUES = {
    'application_name': ['df_start', 'started app'],
    'TimeZone': ['Europe/Berlin', 'Asia/Tokyo', 'UTC'],
    'DateStyle': ['SQL, DMY', 'German, DMY', 'ISO, YMD'],    # as the server spells them
    'IntervalStyle': ['iso_8601', 'sql_standard'],
    'client_encoding': ['LATIN1', 'UTF8'],
}
SHOWN = ['TimeZone', 'DateStyle', 'IntervalStyle', 'application_name', 'client_encoding',
         'standard_conforming_strings', 'search_path', 'extra_float_digits', 'statement_timeout']


class Gen:
    """Streams of one client. cl: the enabled classes; n: the client's table number."""

    def __init__(self, rng, cl, n):
        self.r, self.cl, self.n = rng, cl, n
        self.t = 'df_%d' % n
        self.u = 'df_%d_u' % n
        self.ext = None         # an extended-protocol batch still open (after a Flush)

    def on(self, c):
        return c in self.cl

    def k(self):
        return self.r.randint(1, 12)

    # -- SQL
    def sql_read(self):
        r = self.r
        opts = ['SELECT 1 AS one',
                'SELECT id, v FROM %s ORDER BY id, v LIMIT 8' % self.t,
                'SELECT count(*), coalesce(sum(id), 0) FROM %s' % self.t,
                'SELECT g FROM generate_series(1, %d) g' % r.randint(0, 6),
                "VALUES (1, 'a'), (2, NULL)",
                "SELECT NULL::int AS n, ''::text AS e",
                '']
        if self.on('show'):
            opts += ["SELECT '2024-03-04 05:06:07.5+00'::timestamptz AS ts, '2024-03-04'::date AS d",
                     "SELECT interval '1 day 02:03:04' AS iv",
                     'SELECT 0.1::float8 + 0.2 AS f, 1e100::float4 * 0 AS z',
                     'SHOW %s' % r.choice(SHOWN),
                     "SELECT current_setting('%s')" % r.choice(SHOWN),
                     'SELECT count(*) FROM df_sp']
        return r.choice(opts)

    def sql_write(self):
        r, t, k = self.r, self.t, self.k()
        opts = ["INSERT INTO %s VALUES (%d, 'w%d')" % (t, k, r.randint(0, 99)),
                "UPDATE %s SET v = v || 'u' WHERE id = %d" % (t, k),
                'DELETE FROM %s WHERE id = %d' % (t, k),
                'INSERT INTO %s SELECT g, g::text FROM generate_series(1, %d) g' % (t, r.randint(1, 4))]
        if self.on('deferred'):
            opts += ['INSERT INTO %s VALUES (%d), (%d)' % (self.u, k, k),
                     'INSERT INTO %s VALUES (%d)' % (self.u, k),
                     'DELETE FROM %s' % self.u]
        return r.choice(opts)

    def sql_error(self):
        return self.r.choice(['SELECT 1/0', "SELECT 'x'::int", 'SELEC 1', 'SELECT (',
                              "INSERT INTO %s VALUES (NULL, 'n')" % self.t,
                              'SELECT * FROM df_no_such_table', 'SELECT no_such_column'])

    def sql_txn(self):
        r = self.r
        opts = ['BEGIN', 'BEGIN', 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ',
                'COMMIT', 'COMMIT', 'ROLLBACK', 'END', 'BEGIN READ ONLY']
        if r.random() < 0.5:
            opts += ['SAVEPOINT sp', 'ROLLBACK TO SAVEPOINT sp', 'RELEASE SAVEPOINT sp']
        return r.choice(opts)

    def sql_set(self):
        r = self.r
        name = r.choice(list(PARAM_VALUES))
        x = r.random()
        if x < 0.55:
            return 'SET %s = %s' % (name, r.choice(PARAM_VALUES[name]))
        if x < 0.75 or not self.on('reset'):
            return 'SET LOCAL %s = %s' % (name, r.choice(PARAM_VALUES[name]))
        if self.on('set_default') and r.random() < 0.5:
            return 'SET %s TO DEFAULT' % name
        in_block = self.st.status != 'I' or getattr(self, 'txn_in_op', False)
        if in_block and not self.on('reset_midquery'):
            return 'SET LOCAL %s = %s' % (name, r.choice(PARAM_VALUES[name]))
        return 'RESET %s' % name

    def sql_set_unreported(self):
        r = self.r
        name = r.choice(list(UNREPORTED_VALUES))
        in_block = self.st.status != 'I' or getattr(self, 'txn_in_op', False)
        if r.random() < 0.25 and (not in_block or self.on('reset_midquery')):
            return 'RESET %s' % name
        return '%s %s = %s' % (r.choice(['SET', 'SET', 'SET LOCAL']), name,
                               r.choice(UNREPORTED_VALUES[name]))

    def sql_session(self):
        """Session-wide statements of the enabled classes (None if none is enabled)."""
        opts = []
        in_block = getattr(self, 'st', None) is not None and self.st.status != 'I'
        if self.on('reset_all') and (not in_block or self.on('reset_midquery')):
            opts.append('RESET ALL')
        if self.on('discard'):
            opts.append('DISCARD ALL')
        if self.on('deallocate'):
            opts.append('DEALLOCATE ALL')
        return self.r.choice(opts) if opts else None

    def sql_any(self):
        """One statement for a simple or extended query of the enabled classes."""
        r = self.r
        pool = [self.sql_read, self.sql_read, self.sql_write, self.sql_write]
        if self.on('errors'):
            pool.append(self.sql_error)
        if self.on('txn'):
            pool += [self.sql_txn, self.sql_txn]
        if self.on('set'):
            pool += [self.sql_set, self.sql_set]
        if self.on('set_unreported'):
            pool.append(self.sql_set_unreported)
        return r.choice(pool)()

    # -- streams
    def op(self, st):
        """One op for a client at rest; st: its Client (status, exists, sqls)."""
        r = self.r
        self.st = st
        if self.ext is not None:
            return self.ext_continue()      # an extended batch cut by a Flush goes on
        ops = []
        if self.on('simple'):
            ops += [self.op_simple] * 3
        if self.on('multi'):
            ops += [self.op_multi] * 2
        if self.on('extended'):
            ops += [self.op_extended] * 5
        if self.on('copy_simple'):
            ops += [self.op_copy_simple]
        if self.on('copy_ext'):
            ops += [self.op_copy_ext]
        if self.sql_session() is not None:
            ops += [self.op_session]
        if self.on('discard_hidden'):
            ops += [self.op_discard_hidden]
        if not ops:
            ops = [self.op_simple]
        return r.choice(ops)()

    def op_simple(self):
        return [[Query(self.sql_any())]]

    def op_session(self):
        return [[Query(self.sql_session())]]

    def op_multi(self):
        parts = [self.sql_any() for _ in range(self.r.randint(2, 4))]
        if self.on('errors') and self.r.random() < 0.3:
            parts.insert(self.r.randint(0, len(parts)), self.sql_error())
        if not self.on('reset_midquery'):
            # a RESET goes back to the server connection's own startup value until
            # pgbun puts the client's back, at the end of the query outside a
            # transaction block (README, Session parameters): what follows it in
            # the same query, or the rest of a block, would differ
            opens = any(p.split(' ')[0] in ('BEGIN', 'START') for p in parts) or self.st.status != 'I'
            parts = ([p for p in parts if not p.startswith('RESET')] +
                     ([] if opens else [p for p in parts if p.startswith('RESET')]))
        return [[Query('; '.join(p for p in parts if p))]]

    def op_discard_hidden(self):
        r = self.r
        what = r.choice(['DISCARD ALL', 'DEALLOCATE ALL'])
        if r.random() < 0.5:
            return [[Query('SELECT 1; %s; SELECT 2' % what)]]
        name = r.choice(['', 'sd'])
        return [[Parse(name, what), Bind('', name), Execute(''), Sync()]]

    def copy_rows(self):
        r = self.r
        out = []
        for _ in range(r.randint(0, 3)):
            rows = ''.join('%d\tc%d\n' % (self.k(), r.randint(0, 9)) for _ in range(r.randint(1, 3)))
            if self.on('errors') and r.random() < 0.15:
                rows = 'abc\tbad\n'
            out.append(CopyData(rows))
        return out

    def copy_end(self):
        if self.r.random() < 0.25:
            return CopyFail('difffuzz says no')
        return CopyDone()

    def op_copy_simple(self):
        r = self.r
        if r.random() < 0.4:
            src = '(SELECT id, v FROM %s ORDER BY id, v)' % self.t    # never heap order
            return [[Query('COPY %s TO STDOUT' % src)]]
        sql = 'COPY %s FROM STDIN' % self.t
        if self.on('multi') and r.random() < 0.3:
            sql = 'SELECT 1; %s; SELECT count(*) FROM %s' % (sql, self.t)
        tail = self.copy_rows() + [self.copy_end()]
        if r.random() < 0.2:
            tail.append(CopyData('after the end\n'))   # CopyData after the copy: ignored
        return [[Query(sql)], tail]

    def op_copy_ext(self):
        r = self.r
        name = r.choice(['', 'cp'])
        # at the start of a batch a Close always runs: a live name is closed first
        pre = [Close('S', name)] if name in self.st.exists and not self.on('reparse') else []
        if r.random() < 0.4:
            sql = 'COPY (SELECT id, v FROM %s ORDER BY id, v) TO STDOUT' % self.t
            return [pre + [Parse(name, sql), Bind('', name), Execute(''), Sync()]]
        sql = 'COPY %s FROM STDIN' % self.t
        head = pre + [Parse(name, sql), Bind('', name)]
        if r.random() < 0.3:
            head.append(Describe('P', ''))
        head.append(Execute(''))
        # Syncs and Flushes before the copy ends are ignored by the backend
        head += r.choice([[Sync()], [Flush()], [Sync(), Sync()], [Flush(), Sync()]])
        tail = self.copy_rows() + [self.copy_end()]
        if r.random() < 0.2:
            tail.append(CopyData('after the end\n'))
        tail.append(Sync())
        return [head, tail]

    def params_for(self, sql):
        n = len(set(re.findall(r'\$\d', sql)))
        vals = [str(self.k()) for _ in range(n)]
        if self.on('errors') and self.r.random() < 0.12:
            if vals and self.r.random() < 0.5:
                vals[0] = 'abc'
            else:
                vals = vals[:-1] if vals else ['1']    # wrong parameter count: 08P01
        return vals

    def ext_sql(self):
        r = self.r
        if r.random() < 0.3:
            sql = r.choice(['SELECT $1::int + 1 AS p',
                            'SELECT id, v FROM %s WHERE id = $1 ORDER BY v' % self.t,
                            "INSERT INTO %s VALUES ($1, 'x' || $2)" % self.t,
                            'SELECT g FROM generate_series(1, $1::int) g'])
        else:
            sql = self.sql_any()
        if re.match(r'(BEGIN|START|SAVEPOINT|RELEASE|ROLLBACK TO)', sql):
            self.txn_in_op = True
        return sql

    def op_extended(self):
        """Extended-protocol batches: one or more statement groups per Sync, possibly
        several Syncs in one write (pipeline) and Flush cuts: the op ends at a
        Flush, and the client's next op goes on with the batch once the Flush
        is answered (ext_continue), knowing whether an error came back.

        What the client knows when an op starts (self.st: the transaction status
        of the last ReadyForQuery, the named statements that exist, whether the
        backend skips to the next Sync) keeps classes that are off out: a live
        name is not parsed again (reparse), a Close of a statement comes only
        first in a batch, where nothing before it can fail (close_skipped), a
        named Parse is not sent where the batch may start in a failed
        transaction block (parse_failed_txn), the unnamed statement is not used
        in a later batch than its Parse (unnamed_sync), and after an error a
        Flush brought back the batch is ended by a Sync at once (flush_error)."""
        r, st = self.r, self.st
        self.pred = set(st.exists)      # named statements that may exist as the op goes on
        self.sqls = dict(st.sqls)
        # names that may hold a RESET, whatever the fate of the Parses and
        # Closes in flight (a re-Parse of a name that exists fails with 42P05
        # and leaves the old text): the model of self.sqls is a guess there
        self.reset_maybe = {n for n, q in st.sqls.items() if q.startswith('RESET')}
        self.txn_in_op = False
        n = r.randint(2, 4) if self.on('pipeline') and r.random() < 0.5 else 1
        self.ext = {'n': n, 'b': 0, 'groups': None, 'unnamed_ok': False}
        return self.ext_continue()

    def ext_continue(self):
        r, st, e = self.r, self.st, self.ext
        self.pred |= st.exists
        chunk = []
        if e['groups'] is not None and st.skipping and not self.on('flush_error'):
            e['groups'] = 0
        while True:
            if e['groups'] is None:
                b = e['b']
                # a later batch of a pipeline may start in a failed block unless
                # every batch is its own implicit transaction
                failed_start = st.status == 'E' if b == 0 else (st.status != 'I' or self.txn_in_op)
                self.named_parse_ok = self.on('named') and (not failed_start or self.on('parse_failed_txn'))
                self.use_named_ok = not failed_start or self.on('use_failed_txn')
                if self.pred and r.random() < 0.25:
                    name = r.choice(sorted(self.pred))
                    chunk.append(Close('S', name))
                    self.pred.discard(name)
                e['groups'], e['unnamed_ok'] = r.randint(1, 3), False
            while e['groups'] > 0:
                grp, e['unnamed_ok'] = self.ext_group(e['unnamed_ok'])
                chunk.extend(grp)
                e['groups'] -= 1
                if not self.on('reset_midquery') and (self.group_sql.startswith('RESET') or
                                                      self.group_name in self.reset_maybe):
                    # nothing more is sent after a RESET until it is answered
                    # (pgbun puts the client's value back before the next request)
                    e['groups'], e['n'] = 0, e['b'] + 1
                    break
                if self.on('flush') and r.random() < 0.25:
                    chunk.append(Flush())
                    return [chunk]
            chunk.append(Sync())
            e['groups'] = None
            e['b'] += 1
            if e['b'] >= e['n']:
                self.ext = None
                return [chunk]

    def ext_group(self, unnamed_ok):
        r = self.r
        out = []
        sql = self.ext_sql()
        x = r.random()
        name, parse = '', True
        # a COPY statement is run by op_copy_ext only (with its data): run
        # here, the client would go on sending into the COPY
        # ... nor a RESET inside a transaction block (reset_midquery)
        in_block = self.st.status != 'I' or self.txn_in_op
        usable = sorted(n for n in self.pred if not self.sqls.get(n, '').startswith('COPY') and
                        not (in_block and (self.sqls.get(n, '').startswith('RESET') or n in self.reset_maybe) and
                             not self.on('reset_midquery')))
        if self.on('named') and usable and x < 0.35 and self.use_named_ok:
            name, parse = r.choice(usable), False
        elif self.named_parse_ok and x < 0.7:
            name = r.choice(['s1', 's2', 's3'])
            if name in self.pred and not self.on('reparse'):
                parse = False
        elif unnamed_ok or self.on('unnamed_sync'):
            parse = r.random() < 0.6
        if not parse:
            sql = self.sqls.get(name, sql)
        self.group_sql = sql
        self.group_name = name
        if parse:
            if self.on('errors') and r.random() < 0.08:
                sql = r.choice(['SELEC 1', 'SELECT * FROM df_no_such_table', 'SELECT $1::int + $2::no_type'])
            out.append(Parse(name, sql))
            if name:
                self.pred.add(name)
                self.sqls[name] = sql
                if sql.startswith('RESET'):
                    self.reset_maybe.add(name)
            else:
                unnamed_ok = True
            if r.random() < 0.3:
                out.append(Describe('S', name))
        elif r.random() < 0.15 and (not name or self.use_named_ok):
            out.append(Describe('S', name))
        portal = r.choice(['', '', 'p1']) if self.on('named') else ''
        if self.on('errors') and r.random() < 0.05:
            out.append(Bind(portal, 'no_such_stmt' if self.on('named') else name))
        else:
            out.append(Bind(portal, name, self.params_for(sql)))
        if r.random() < 0.3:
            out.append(Describe('P', portal))
        if self.on('rowlimit') and r.random() < 0.3:
            for _ in range(r.randint(1, 3)):
                out.append(Execute(portal, r.randint(1, 3)))
        else:
            out.append(Execute(portal))
        if self.on('errors') and r.random() < 0.04:
            out.append(Execute('no_such_portal'))
        if portal and r.random() < 0.6:
            out.append(Close('P', portal))
        if name and self.on('close_skipped') and r.random() < 0.2:
            out.append(Close('S', name))    # skipped after an error: the name stays
        return out, unnamed_ok

    def startup(self):
        r = self.r
        ps = []
        if self.on('startup'):
            for k in STARTUP_VALUES:
                if r.random() < 0.3:
                    ps.append((k, r.choice(STARTUP_VALUES[k])))
        if self.on('startup_noncanonical') and r.random() < 0.3:
            k, v = r.choice([('DateStyle', 'German'), ('DateStyle', 'sql'), ('TimeZone', 'utc'),
                             ('client_encoding', 'latin1')])
            # one value per name: pgbun keeps the last of a repeated name, and
            # PostgreSQL reads a partial DateStyle against the one before it
            ps = [p for p in ps if p[0] != k] + [(k, v)]
        if self.on('startup_float_digits') and r.random() < 0.3:
            ps.append(('extra_float_digits', r.choice(['0', '2', '-3'])))
        if self.on('startup_search_path') and r.random() < 0.4:
            ps.append(('search_path', r.choice(['dfs_a, public', 'dfs_b', 'public, dfs_a'])))
        if self.on('startup_extra') and r.random() < 0.3:
            ps.append(('statement_timeout', r.choice(['5min', '123s'])))
        if self.on('startup_options') and r.random() < 0.3:
            ps.append(('options', r.choice(['-c statement_timeout=7min',
                                            '-c extra_float_digits=1 -c statement_timeout=99s',
                                            '-csearch_path=dfs_b'])))
        return ps


def make_round(seed, rnd, classes):
    """The clients of round rnd: (idx, startup parameters, generator, number of streams)."""
    r = random.Random('%s:%d:round' % (seed, rnd))
    n = r.randint(2, MAX_CLIENTS)
    clients = []
    for i in range(n):
        g = Gen(random.Random('%s:%d:client%d' % (seed, rnd, i)), classes, i)
        clients.append((i, g.startup(), g, g.r.randint(4, 12)))
    return clients


# ---------------------------------------------------------------- running

class Target:
    def __init__(self, name, host, port, user, password, dbname):
        self.name, self.host, self.port = name, host, port
        self.user, self.password, self.dbname = user, password, dbname


class Admin:
    """A direct, blocking connection for setup and the per-run table reset."""

    def __init__(self, t):
        self.c = Client(-1, [], [])
        self.c.connect(t.host, t.port, t.user, t.password, t.dbname)
        if self.c.closed:
            raise LoginError('admin login failed: %r' % self.c.transcript)
        self.c.sock.setblocking(True)
        self.c.sock.settimeout(60)

    def value(self, sql):
        self.run(sql)
        return self.last_value

    def run(self, sql):
        c = self.c
        c.transcript = []
        self.last_value = None
        c.sock.sendall(Query(sql).raw)
        while True:
            while True:
                if len(c.inbuf) >= 5:
                    ln = struct.unpack('!I', c.inbuf[1:5])[0]
                    if len(c.inbuf) >= ln + 1:
                        break
                d = c.sock.recv(65536)
                if not d:
                    raise EOFError('admin connection closed')
                c.inbuf.extend(d)
            t, body = chr(c.inbuf[0]), bytes(c.inbuf[5:ln + 1])
            del c.inbuf[:ln + 1]
            if t == 'D':
                ln1 = struct.unpack('!i', body[2:6])[0]
                self.last_value = None if ln1 < 0 else body[6:6 + ln1].decode()
            if t == 'E':
                raise RuntimeError('admin query failed: %s: %r' % (sql, fields_of(body)))
            if t == 'Z':
                return

    def setup(self):
        sql = ['SET client_min_messages = warning',
               'CREATE SCHEMA IF NOT EXISTS dfs_a', 'CREATE SCHEMA IF NOT EXISTS dfs_b',
               'DROP TABLE IF EXISTS df_sp, dfs_a.df_sp, dfs_b.df_sp']
        for i in range(MAX_CLIENTS):
            sql += ['DROP TABLE IF EXISTS df_%d, df_%d_u' % (i, i),
                    'CREATE TABLE df_%d (id int NOT NULL, v text)' % i,
                    'CREATE TABLE df_%d_u (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)' % i]
        sql += ['CREATE TABLE public.df_sp AS SELECT g FROM generate_series(1, 3) g',
                'CREATE TABLE dfs_a.df_sp AS SELECT 1 AS g',
                'CREATE TABLE dfs_b.df_sp AS SELECT g FROM generate_series(1, 2) g']
        self.run('; '.join(sql))

    def reset(self):
        # DELETE, not TRUNCATE: no exclusive lock to wait for while the previous
        # run's backends exit; row order never matters (every SELECT has ORDER BY)
        sql = ["SET lock_timeout = '30s'", 'SET synchronous_commit = off']
        for i in range(MAX_CLIENTS):
            sql += ['DELETE FROM df_%d' % i, 'DELETE FROM df_%d_u' % i,
                    "INSERT INTO df_%d SELECT g, 'r' || g FROM generate_series(1, 3) g" % i]
        self.run('; '.join(sql))


def run_clients(target, spec, sched_seed):
    """Run one round's clients against target; returns {idx: Client}. spec: a
    list of (idx, params, streams) or, to generate as it goes, of (idx, params,
    generator, number of streams)."""
    clients = []
    for item in spec:
        if len(item) == 4:
            clients.append(Client(item[0], item[1], [], gen=item[2], n_streams=item[3]))
        else:
            clients.append(Client(item[0], item[1], [[[list(ch) for ch in op] for op in st] for st in item[2]]))
    for c in clients:
        try:
            c.connect(target.host, target.port, target.user, target.password, target.dbname)
        except (OSError, EOFError, LoginError) as e:
            c.transcript.append(('EOF', 'EOF (connect failed: %s)' % e))
            c.finished = True
            c.closed = True
    sched = random.Random(sched_seed)
    sel = selectors.DefaultSelector()
    for c in clients:
        if not c.closed:
            sel.register(c.sock, selectors.EVENT_READ, c)
    last_progress = time.monotonic()
    while True:
        live = [c for c in clients if not c.finished]
        if not live:
            break
        ready = []
        for c in live:
            if c.closed:
                continue
            if c.at_rest_for_next_chunk() and not c.outbuf:
                nxt = c.next_chunk()
                if nxt is None:
                    try:
                        c.sock.send(Terminate())
                    except OSError:
                        pass
                    sel.unregister(c.sock)
                    c.drain()
                    c.close()
                    last_progress = time.monotonic()
                    continue
                ready.append((c, nxt))
        for c in live:
            if c.closed and c.sock is not None:
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
        if ready and sched.random() < 0.85:
            c, where = sched.choice(ready)
            c.send_chunk(where)
            if c.closed:
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError, OSError):
                    pass
            elif c.outbuf:
                sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            last_progress = time.monotonic()
            timeout = 0
        else:
            timeout = 0 if ready else 0.5
        if all(c.finished for c in clients):
            break
        for key, mask in sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_WRITE:
                c.flush_out()
                if not c.closed and not c.outbuf:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if mask & selectors.EVENT_READ and not c.closed:
                if c.read_ready():
                    last_progress = time.monotonic()
            if c.closed:
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
        if time.monotonic() - last_progress > HANG_SECS:
            for c in clients:
                if not c.finished:
                    c.transcript.append(('HANG', 'HANG (no answer for %gs; owed %r)' % (HANG_SECS, list(c.pending))))
                    c.close()
            break
    sel.close()
    return {c.idx: c for c in clients}


def login_key(c):
    return c.login_params


def sort_status_runs(keys):
    """ParameterStatus messages in a row, in name order: the protocol gives
    them no order (the backend's follows its own GUC table)."""
    out, run = [], []
    for k in keys:
        if isinstance(k, str) and k.startswith('S '):
            run.append(k)
            continue
        out.extend(sorted(run))
        run = []
        out.append(k)
    out.extend(sorted(run))
    return out


def compare_all(direct, pooled):
    """Every client whose transcripts differ: [(client idx, index of the first
    difference, why)], hangs first (a client that waits for a server another
    one holds hangs too, but the holder is the one to look at: it owes answers
    of a started exchange, so it is listed before clients stuck at their first
    message after a chunk marker)."""
    out = []
    for idx in sorted(direct):
        a, b = direct[idx], pooled[idx]
        diff = None
        # login ParameterStatus: the parameters both report must agree
        for k in sorted(set(a.login_params) & set(b.login_params)):
            if a.login_params[k] != b.login_params[k]:
                diff = (idx, 0, 'login ParameterStatus %s: direct %r, pgbun %r' % (
                    k, a.login_params[k], b.login_params[k]))
                break
        ka = sort_status_runs([k for k, _ in a.transcript])
        kb = sort_status_runs([k for k, _ in b.transcript])
        # what was received must agree; where a send falls between two answers
        # may depend on timing when the client need not wait (inside a COPY)
        same = [k for k in ka if k != '>'] == [k for k in kb if k != '>']
        if diff is None and not same:
            i = 0
            while i < min(len(ka), len(kb)) and ka[i] == kb[i]:
                i += 1
            why = 'transcripts differ'
            if i < len(kb) and kb[i] == 'HANG':
                why = 'hang: pgbun did not answer'
                if i > 0 and kb[i - 1] != '>':
                    why += ' (in the middle of an answer)'
            diff = (idx, i, why)
        if diff:
            out.append(diff)
    out.sort(key=lambda d: (not d[2].startswith('hang'), 'middle' not in d[2]))
    hangs = [d for d in out if d[2].startswith('hang')]
    if hangs and len(hangs) < len(out):
        out = [d for d in out if not d[2].startswith('hang')] + hangs
    return out


def compare(direct, pooled):
    """The first difference worth reporting, or None."""
    diffs = compare_all(direct, pooled)
    return diffs[0] if diffs else None


def show_stream_list(spec, out):
    for (i, params, streams) in spec:
        out.append('  client %d: startup %r' % (i, params))
        for s, ops in enumerate(streams):
            out.append('    stream %d:' % s)
            c = 0
            for op in ops:
                for chunk in op:
                    out.append('      chunk %d: %s' % (c, ', '.join(m.desc for m in chunk)))
                    c += 1


def context(tr, i, n=12):
    lo = max(0, i - n)
    lines = []
    for j in range(lo, min(len(tr), i + 4)):
        lines.append('%s %4d  %s' % ('>>' if j == i else '  ', j, tr[j][1]))
    if i >= len(tr):
        lines.append('>> %4d  (end of transcript)' % i)
    return lines


class Fuzzer:
    def __init__(self, args, classes):
        self.a = args
        self.classes = set(classes)
        self.direct = Target('direct', args.host, args.direct_port, args.user, args.password, args.dbname)
        self.pooled = Target('pgbun', args.host, args.pgbun_port, args.user, args.password, args.dbname)
        self.admin = Admin(self.direct)
        self.admin.setup()

    def fresh_pgbun_servers(self):
        """End pgbun's server connections of this database and role (they are
        the only other backends of the role here), so that a replay starts from
        servers no earlier round touched."""
        self.admin.run('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                       'WHERE datname = current_database() AND usename = current_user '
                       'AND pid <> pg_backend_pid()')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            n = self.admin.value('SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() '
                                 'AND usename = current_user AND pid <> pg_backend_pid()')
            if n == '0':
                break
            time.sleep(0.01)
        time.sleep(0.05)   # let pgbun notice its servers are gone

    def run_spec(self, spec, sched_seed, fresh=False):
        """Run spec directly, then (as recorded by the direct run) through pgbun.
        Returns (direct clients, pgbun clients, difference, recorded spec)."""
        if fresh:
            self.fresh_pgbun_servers()
        self.admin.reset()
        d = run_clients(self.direct, spec, sched_seed + ':direct')
        recorded = [(c.idx, c.params, c.streams) for c in (d[i] for i in sorted(d))]
        self.admin.reset()
        p = run_clients(self.pooled, recorded, sched_seed + ':pgbun')
        return d, p, compare(d, p), recorded

    def still_fails(self, spec, tries=3):
        for t in range(tries):
            d, p, diff, _ = self.run_spec(spec, 'shrink%d' % t, fresh=True)
            if diff:
                return d, p, diff
        return None

    def shrink(self, spec, diff, d=None, p=None):
        """Fewer clients, streams, ops, messages and startup parameters while the
        round still differs (each candidate gets 3 tries: the interleaving varies).
        A candidate that only hangs where the original did not is not taken."""
        global HANG_SECS
        idx = diff[0]
        budget = [self.a.shrink_budget]
        deadline = time.monotonic() + self.a.shrink_seconds
        saved_hang, HANG_SECS = HANG_SECS, min(HANG_SECS, 3)

        def kind(df):
            return df[2].split(' ')[0]

        def signature(dd, pp, df):
            i, pos = df[0], df[1]
            at = lambda tr: tr[pos][0].split(' ')[:3] if pos < len(tr) else None
            return at(dd[i].transcript), at(pp[i].transcript)

        want = signature(d, p, diff) if d is not None else None

        def attempt(cand):
            if budget[0] <= 0 or time.monotonic() > deadline:
                budget[0] = 0
                return False
            budget[0] -= 1
            t0 = time.monotonic()
            r = self.still_fails(cand)
            if self.a.verbose:
                print('shrink: %s in %.1fs' % ('still differs' if r else 'no difference', time.monotonic() - t0))
            # the same difference: the same pair of answers where the
            # transcripts part (a shrink must not wander off to another bug)
            return bool(r) and kind(r[2]) == kind(diff) and signature(r[0], r[1], r[2]) == want

        def copy(sp):
            return [[c[0], list(c[1]), [[[list(ch) for ch in op] for op in st] for st in c[2]]] for c in sp]

        def frozen(sp):
            return [(c[0], c[1], c[2]) for c in sp]

        best = copy(spec)
        for keep in [[idx]] + [[idx, j] for j in range(len(spec)) if j != idx]:
            cand = [c for c in copy(best) if c[0] in keep]
            if attempt(frozen(cand)):
                best = cand
                break
        # the streams of a client, its ops, the messages of its chunks: drop one at a time
        def candidates():
            for ci in range(len(best)):
                streams = best[ci][2]
                for s in range(len(streams) - 1, -1, -1):
                    yield ('stream', ci, s)
                for s in range(len(streams)):
                    for o in range(len(streams[s]) - 1, -1, -1):
                        yield ('op', ci, s, o)
            for ci in range(len(best)):
                for j in range(len(best[ci][1]) - 1, -1, -1):
                    yield ('param', ci, j)
            for ci in range(len(best)):
                streams = best[ci][2]
                for s in range(len(streams)):
                    for o in range(len(streams[s])):
                        for ch in range(len(streams[s][o])):
                            for m in range(len(streams[s][o][ch]) - 1, -1, -1):
                                yield ('msg', ci, s, o, ch, m)

        def apply(sp, c):
            kind, ci = c[0], c[1]
            try:
                if kind == 'stream':
                    if len(sp[ci][2]) < 2:
                        return False
                    del sp[ci][2][c[2]]
                elif kind == 'op':
                    st = sp[ci][2][c[2]]
                    if len(st) < 2:
                        return False
                    del st[c[3]]
                elif kind == 'param':
                    del sp[ci][1][c[2]]
                else:
                    chunk = sp[ci][2][c[2]][c[3]][c[4]]
                    m = chunk[c[5]]
                    # only messages whose absence cannot leave the server waiting
                    # (nor a Close: without it a later Parse would reuse a live name)
                    if m.t not in 'PBDE' or len(chunk) < 2:
                        return False
                    del chunk[c[5]]
            except IndexError:
                return False
            return True

        def well_formed(sp):
            # a Flush-cut batch must go on with its rest, never with a Query
            # (which the backend would skip until a Sync that never comes)
            for c in sp:
                chunks = [ch for st in c[2] for op in st for ch in op]
                for j, ch in enumerate(chunks):
                    if ch and ch[-1].t == 'H':
                        if j + 1 >= len(chunks) or not chunks[j + 1] or chunks[j + 1][0].t == 'Q':
                            return False
            return True

        changed = True
        while changed and budget[0] > 0:
            changed = False
            for c in candidates():
                if budget[0] <= 0:
                    break
                cand = copy(best)
                if not apply(cand, c):
                    continue
                if well_formed(cand) and attempt(frozen(cand)):
                    best = cand
                    changed = True
        HANG_SECS = saved_hang
        return frozen(best)

    def report(self, rnd, spec, d, p, diff, shrunk, shrunk_result):
        out = []
        a = self.a
        out.append('difffuzz: DIFFERENCE in round %d, seed %s, classes %s' % (
            rnd, a.seed, ','.join(sorted(self.classes))))
        out.append('replay: %s --seed %s --round %d --classes %s' % (
            os.path.basename(sys.argv[0]), a.seed, rnd, ','.join(sorted(self.classes))))
        if shrunk is not None and shrunk_result is not None:
            sd, sp, sdiff = shrunk_result
            out.append('shrunk reproduction (still differs):')
            show_stream_list(shrunk, out)
            d, p, diff = sd, sp, sdiff
        else:
            out.append('the round (did not shrink):')
            show_stream_list(spec, out)
        for idx, pos, why in compare_all(d, p) or [diff]:
            out.append('client %d: %s at transcript position %d' % (idx, why, pos))
            out.append(' direct:')
            out += ['   ' + line for line in context(d[idx].transcript, pos)]
            out.append(' pgbun:')
            out += ['   ' + line for line in context(p[idx].transcript, pos)]
        print('\n'.join(out), flush=True)

    def run(self):
        a = self.a
        start = time.monotonic()
        n_streams = n_rounds = 0
        rounds = [a.round] if a.round is not None else None
        rnd = 0
        while True:
            if rounds is not None:
                if not rounds:
                    break
                rnd = rounds.pop()
            elif a.seconds:
                if time.monotonic() - start >= a.seconds:
                    break
            elif n_streams >= a.streams:
                break
            spec = make_round(a.seed, rnd, self.classes)
            d, p, diff, spec = self.run_spec(spec, '%s:%d' % (a.seed, rnd))
            n_rounds += 1
            n_streams += sum(len(s) for (_, _, s) in spec)
            if a.verbose:
                print('round %d: %d clients, %d streams' % (rnd, len(spec), sum(len(s) for (_, _, s) in spec)))
            if a.dump:
                for idx in sorted(d):
                    print('--- round %d client %d direct' % (rnd, idx))
                    for _, shown in d[idx].transcript:
                        print('   ', shown)
            if diff:
                shrunk = shrunk_result = None
                if a.pgbun_log:
                    self.log_bad = scan_log(a.pgbun_log, self.log_offset)
                if a.shrink_budget > 0:
                    global HANG_SECS
                    shrunk = self.shrink(spec, diff, d, p)
                    saved, HANG_SECS = HANG_SECS, min(HANG_SECS, 3)
                    shrunk_result = self.still_fails(shrunk)
                    HANG_SECS = saved
                self.report(rnd, spec, d, p, diff, shrunk, shrunk_result)
                return 1, n_rounds, n_streams, time.monotonic() - start
            rnd += 1
        if a.pgbun_log:
            self.log_bad = scan_log(a.pgbun_log, self.log_offset)
        return 0, n_rounds, n_streams, time.monotonic() - start


def scan_log(path, offset):
    bad = []
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            text = f.read().decode('utf-8', 'replace')
    except OSError as e:
        return ['cannot read %s: %s' % (path, e)]
    pats = [re.compile(p) for p in LOG_BAD]
    for line in text.splitlines():
        if any(p.search(line) for p in pats):
            bad.append(line)
    return bad


def parse_classes(spec):
    spec = (spec or 'default').strip()
    if spec in ('', 'default'):
        return list(DEFAULT_CLASSES)
    if spec == 'all':
        return list(ALL_CLASSES)
    items = [x.strip() for x in spec.split(',') if x.strip()]
    relative = all(x[0] in '+-' for x in items)
    out = set(DEFAULT_CLASSES) if relative else set()
    for x in items:
        name = x.lstrip('+-')
        if name == 'default':
            out |= set(DEFAULT_CLASSES)
            continue
        if name == 'all':
            out |= set(ALL_CLASSES)
            continue
        if name not in ALL_CLASSES:
            raise SystemExit('difffuzz: unknown class %r (known: %s)' % (name, ', '.join(ALL_CLASSES)))
        if x.startswith('-'):
            out.discard(name)
        else:
            out.add(name)
    return [c for c in ALL_CLASSES if c in out]


def main():
    env = os.environ
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--direct-port', type=int, required=True)
    ap.add_argument('--pgbun-port', type=int, required=True)
    ap.add_argument('--user', required=True)
    ap.add_argument('--password', required=True)
    ap.add_argument('--dbname', required=True)
    ap.add_argument('--seed', default=env.get('PGBUN_DIFFFUZZ_SEED', '1'))
    ap.add_argument('--streams', type=int, default=int(env.get('PGBUN_DIFFFUZZ_STREAMS', '2000')))
    ap.add_argument('--seconds', type=float, default=float(env.get('PGBUN_DIFFFUZZ_SECONDS', '0')))
    ap.add_argument('--classes', default=env.get('PGBUN_DIFFFUZZ_CLASSES', 'default'))
    ap.add_argument('--round', type=int, default=None, help='replay just this round')
    ap.add_argument('--pgbun-log', default=None, help="pgbun's server log, scanned for lost tracking")
    ap.add_argument('--shrink-budget', type=int, default=200, help='re-runs spent shrinking a difference')
    ap.add_argument('--shrink-seconds', type=float, default=120, help='time spent shrinking at most')
    ap.add_argument('--verbose', action='store_true')
    ap.add_argument('--dump', action='store_true', help='print the direct transcripts')
    a = ap.parse_args()
    classes = parse_classes(a.classes)
    log_offset = 0
    if a.pgbun_log:
        try:
            log_offset = os.path.getsize(a.pgbun_log)
        except OSError:
            pass
    print('difffuzz: seed %s, classes %s' % (a.seed, ','.join(classes)), flush=True)
    try:
        fz = Fuzzer(a, classes)
        fz.log_offset, fz.log_bad = log_offset, []
    except (OSError, EOFError, LoginError, RuntimeError) as e:
        print('difffuzz: setup failed: %s' % e)
        return 2
    rc, n_rounds, n_streams, secs = fz.run()
    print('difffuzz: %d rounds, %d streams (each run directly and through pgbun) in %.1fs, seed %s' % (
        n_rounds, n_streams, secs, a.seed), flush=True)
    if a.pgbun_log:
        bad = fz.log_bad    # scanned before any shrinking (which ends servers on purpose)
        if bad:
            print('difffuzz: pgbun\'s log says it lost track / closed a server (seed %s):' % a.seed)
            for line in bad[:40]:
                print('  ' + line)
            rc = rc or 1
    if rc:
        print('difffuzz: FAILED, seed %s' % a.seed)
    return rc


if __name__ == '__main__':
    sys.exit(main())

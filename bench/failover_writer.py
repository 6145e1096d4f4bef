#!/usr/bin/python3
"""bench/failover_writer.py - the write workload of bench/two-node.sh's failover case.

write: one client that writes one row per transaction (autocommit INSERT with the
client's timestamp) through DSN, as fast as it can with a 5 ms pause, and logs every
attempt as "END_EPOCH ok" or "END_EPOCH fail SQLSTATE message" to OUT, until the file
STOP exists. It keeps its connection while it works and opens a new one after any error
that broke it (as an application with a reconnect loop does). An attempt that hangs is
cancelled after --timeout seconds and counts as a failure.

summarize: reads those logs and the times bench/two-node.sh took (stop of the primary,
promotion) and prints, per writer, the gaps the benchmark reports (see bench/README.md,
Two nodes).
"""

import argparse
import os
import sys
import threading
import time


def write(args):
    import psycopg

    out = open(args.out, "w", buffering=1)
    conn = None
    seq = 0
    sql = "INSERT INTO failover_log (via, seq, client_ts) VALUES (%s, %s, to_timestamp(%s))"
    while not os.path.exists(args.stop):
        t0 = time.time()
        try:
            if conn is None or conn.closed or conn.broken:
                conn = psycopg.connect(args.dsn, autocommit=True, connect_timeout=2,
                                       prepare_threshold=None)
            seq += 1
            # a transaction stuck in a pooler's queue must not hide the other attempts
            timer = threading.Timer(args.timeout, conn.cancel)
            timer.start()
            try:
                conn.execute(sql, (args.label, seq, t0))
            finally:
                timer.cancel()
            out.write("%.6f ok %.6f\n" % (time.time(), t0))
            time.sleep(0.005)
        except psycopg.Error as e:
            state = getattr(getattr(e, "diag", None), "sqlstate", None) or "-----"
            msg = " ".join(str(e).split())[:200].replace("|", "/")
            out.write("%.6f fail %.6f %s %s\n" % (time.time(), t0, state, msg))
            if conn is not None and (conn.closed or conn.broken):
                try:
                    conn.close()
                except psycopg.Error:
                    pass
                conn = None
            time.sleep(0.02)
    out.close()


def read_log(path):
    rows = []  # (end, start, ok, state, message)
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split(" ", 4)
            if len(p) >= 3 and p[1] == "ok":
                rows.append((float(p[0]), float(p[2]), True, "", ""))
            elif len(p) >= 4 and p[1] == "fail":
                rows.append((float(p[0]), float(p[2]), False, p[3], p[4] if len(p) > 4 else ""))
    return rows


def short(msg):
    """An error message without libpq's boilerplate; an error that closed the connection
    has no SQLSTATE in psycopg ("consuming input failed"), so say that instead."""
    msg = msg.replace("consuming input failed: ", "[connection closed] ")
    for tail in (" server closed the connection unexpectedly", " This probably means",
                 " Is the server running", " connection to server at"):
        i = msg.find(tail)
        if i > 0:
            msg = msg[:i]
    return msg[:110]


def summarize(args):
    t_stop, t_down, t_prom, _t_prom_done, t_end = args.times
    for spec in args.writers:
        label, path, found = spec.split("=", 2)
        rows = read_log(path)
        oks = [r for r in rows if r[2]]
        fails = [r for r in rows if not r[2]]
        before = [r for r in rows if r[0] <= t_stop]
        fail_before = sum(1 for r in before if not r[2])
        last_ok_before = max((r[0] for r in before if r[2]), default=None)
        # the first success of an attempt started once the old primary was down:
        # it can only have been written on the promoted standby
        after = [r for r in oks if r[1] > t_down]
        first_ok_after = min((r[0] for r in after), default=None)
        if first_ok_after is not None:
            last_fail = max((r[0] for r in fails if r[0] <= first_ok_after and r[0] > t_stop),
                            default=None)
            fail_after = sum(1 for r in fails if r[0] > first_ok_after)
        else:
            last_fail = max((r[0] for r in fails if r[0] > t_stop), default=None)
            fail_after = 0
        window = [r for r in fails if r[0] > t_stop and
                  (first_ok_after is None or r[0] <= first_ok_after)]
        kinds = {}
        for r in window:
            k = short(r[4]) if r[3] == "-----" else "%s %s" % (r[3], short(r[4]))
            kinds[k] = kinds.get(k, 0) + 1
        top = sorted(kinds.items(), key=lambda kv: -kv[1])[:2]

        def sec(a, b):
            return "n/a" if a is None or b is None else "%.3f" % (a - b)

        print("|".join([
            label,
            str(len(oks)), str(len(fails)), str(fail_before),
            str(len(window)), str(fail_after),
            sec(first_ok_after, last_fail),
            sec(first_ok_after, last_ok_before),
            sec(first_ok_after, t_prom),
            "no success after the stop within %.0f s" % (t_end - t_down) if first_ok_after is None else "",
            "; ".join("%dx %s" % (n, k) for k, n in top) or "-",
            found,
        ]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--dsn", required=True)
    w.add_argument("--label", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--timeout", type=float, default=5.0)
    s = sub.add_parser("summarize")
    s.add_argument("--times", nargs=5, type=float, required=True,
                   metavar=("STOP", "DOWN", "PROMOTE", "PROMOTED", "END"))
    s.add_argument("writers", nargs="+", help="LABEL=LOGFILE=ROWS_FOUND")
    args = ap.parse_args()
    if args.cmd == "write":
        write(args)
    else:
        summarize(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

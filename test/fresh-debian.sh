#!/usr/bin/env bash
# test/fresh-debian.sh - does a bare Debian 12 build and test pgbun from a checkout?
#
#   test/fresh-debian.sh        (as root; `make fresh-debian` does the same)
#
# Builds a minimal Debian 12 (bookworm) root with debootstrap (variant minbase, plus
# git and make: what the README's quick start says a bare machine needs first),
# copies the checkout into it (the files git tracks or would track: no build
# output, no node_modules), and runs `make demo`, `make demo-stop` and `make test`
# there as root, exactly as the quick start tells a new user to. Everything else
# (compiler, PostgreSQL, krb5 headers, Perl modules, Node.js, npm packages) must be
# installed by those targets from the package lists in test/lib.sh; a package
# missing from the lists fails here, where a long-lived machine would hide it.
#
# Not part of `make test` (it downloads a few hundred MB and takes a while). Run it
# after any change to the package lists. Needs debootstrap, network access to the
# Debian mirror and the npm registry. The chroot shares this machine's network, so
# the demo's ports (PGBUN_DEMO_PGPORT 5499, PGBUN_DEMO_PORT 6432, passed through
# when set) must be free here.
#
# Environment: PGBUN_FRESH_DIR (the root; default a new directory under /var/tmp,
# removed at the end unless PGBUN_FRESH_KEEP=1), PGBUN_FRESH_MIRROR (default
# http://deb.debian.org/debian), PGBUN_FRESH_SECURITY (default
# http://deb.debian.org/debian-security; empty: none). Last line: `fresh-debian:
# PASS` or `fresh-debian: FAIL (...)`; the exit status says the same.

set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIRROR=${PGBUN_FRESH_MIRROR:-http://deb.debian.org/debian}
SECURITY=${PGBUN_FRESH_SECURITY-http://deb.debian.org/debian-security}
SUITE=bookworm

say() { printf '==> fresh-debian: %s\n' "$*"; }
fail() {
	printf 'fresh-debian: FAIL (%s)\n' "$*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || fail "debootstrap not found: apt-get install debootstrap"
command -v git >/dev/null || fail "git not found"

# Mounts are made in a private mount namespace when we can have one, so that
# even a killed run leaves none behind; the trap below unmounts them in any case.
if [ -z "${PGBUN_FRESH_UNSHARED:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
	export PGBUN_FRESH_UNSHARED=1
	exec unshare --mount --propagation private "$0" "$@"
fi

if [ -n "${PGBUN_FRESH_DIR:-}" ]; then
	ROOT=$PGBUN_FRESH_DIR
	mkdir -p "$ROOT"
else
	ROOT=$(mktemp -d /var/tmp/pgbun-fresh.XXXXXX)
fi
chmod 755 "$ROOT" # mktemp's 0700 would lock every user but root out of the chroot
MOUNTS=() # mounted paths, in mount order

# Kill what still runs inside the root (a server a failed test left behind),
# unmount in reverse order, and remove the root unless asked to keep it.
cleanup() {
	local rc=$? p i
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ]; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
	done
	if [ -n "${PGBUN_FRESH_KEEP:-}" ] || [ "$rc" -ne 0 ]; then
		say "root kept in $ROOT"
	elif ! mountpoint -q "$ROOT/proc" && ! mountpoint -q "$ROOT/dev"; then
		rm -rf "$ROOT"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mount_in PATH ARGS...: mount ARGS on $ROOT/PATH and remember it.
mount_in() {
	local path=$ROOT/$1
	shift
	mkdir -p "$path"
	mount "$@" "$path"
	MOUNTS+=("$path")
}

# --- the root ----------------------------------------------------------------
[ -z "$(ls -A "$ROOT")" ] || fail "$ROOT is not empty"
say "debootstrap --variant=minbase --include=git,make $SUITE $ROOT $MIRROR"
debootstrap --variant=minbase --include=git,make "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
	{ tail -n 30 "$ROOT.debootstrap.log"; fail "debootstrap failed (log: $ROOT.debootstrap.log)"; }
rm -f "$ROOT.debootstrap.log"

# The sources a fresh Debian 12 install has.
{
	printf 'deb %s %s main\n' "$MIRROR" "$SUITE"
	printf 'deb %s %s-updates main\n' "$MIRROR" "$SUITE"
	[ -z "$SECURITY" ] || printf 'deb %s %s-security main\n' "$SECURITY" "$SUITE"
} >"$ROOT/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# localhost must resolve inside (the demo and the tests connect to it).
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# Packages must not start services in a chroot (postgresql would start a cluster
# on 5432 of this machine's network).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

mount_in proc -t proc proc
mount_in sys -t sysfs sysfs
mount_in dev --bind /dev
mount --make-private "$ROOT/dev" # what is mounted under it stays out of the real /dev
mount_in dev/shm -t tmpfs -o mode=1777,nosuid,nodev shm
mount_in dev/pts -t devpts -o newinstance,ptmxmode=0666 devpts

# --- the checkout --------------------------------------------------------------
say "copying the checkout $SRC to /root/pgbun"
rm -rf "$ROOT/root/pgbun"
mkdir -p "$ROOT/root/pgbun"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$SRC" && tar --null --no-recursion -T - -cf -) |
	tar -C "$ROOT/root/pgbun" -xf -

# --- make demo, make test ------------------------------------------------------
run_in() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		${PGBUN_DEMO_PGPORT:+PGBUN_DEMO_PGPORT=$PGBUN_DEMO_PGPORT} \
		${PGBUN_DEMO_PORT:+PGBUN_DEMO_PORT=$PGBUN_DEMO_PORT} \
		/bin/bash -c "cd /root/pgbun && $1" </dev/null
}

t0=$SECONDS
say "make demo (as root in the chroot)"
run_in 'make demo' || fail "make demo failed"
run_in 'make demo-stop' || fail "make demo-stop failed"
say "make demo passed ($((SECONDS - t0)) s); make test"
t0=$SECONDS
run_in 'make test' || fail "make test failed"
say "make test passed ($((SECONDS - t0)) s)"
printf 'fresh-debian: PASS\n'

# bench/lib.sh - helpers the bench scripts share (sourced, not run): free
# loopback ports, the median of a run's numbers, ratios.

# port_busy PORT [ADDR]: something listens on ADDR:PORT (default 127.0.0.1).
port_busy() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# pick_port START EXCLUDED...: the first port from START on that is free on
# every address of BENCH_ADDRS (default 127.0.0.1) and not one of EXCLUDED.
pick_port() {
	local p=$1 tries=0 a busy
	shift
	while :; do
		busy=0
		for a in ${BENCH_ADDRS:-127.0.0.1}; do port_busy "$p" "$a" && busy=1; done
		[[ " $* " == *" $p "* ]] && busy=1
		[ "$busy" = 0 ] && break
		p=$((p + 1))
		tries=$((tries + 1))
		[ $tries -lt 200 ] || { echo "bench: no free port near $1" >&2; exit 1; }
	done
	echo "$p"
}

# median of the numbers on stdin (any whitespace between them); empty if none.
median() {
	tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) printf "%s\n", v[(NR + 1) / 2]
		else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A / B with two decimals, n/a if either is missing or B is 0.
ratio() {
	if [ -z "$1" ] || [ -z "$2" ]; then echo n/a; else awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "n/a" }'; fi
}

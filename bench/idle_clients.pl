#!/usr/bin/perl
# bench/idle_clients.pl - open N logged-in, idle PostgreSQL connections and hold them.
#
# Speaks just enough of protocol v3 for a trust login: StartupMessage, then read
# until ReadyForQuery ('Z'). Logins run a bounded number at a time, each with its
# own deadline, so a pooler that stalls logins shows up as "timeout" counts
# instead of a hang. When done it prints one line
#     READY ok=N failed=N timeout=N secs=S [first_error=...]
# and holds the sockets until SIGTERM/SIGINT (or --hold seconds), then sends
# Terminate on each and exits. Used by bench/run.sh to measure per-idle-client
# memory of pgbun and PgBouncer. Raise `ulimit -n` before running it.
#
#   perl idle_clients.pl --host 127.0.0.1 --port 6488 --user bench --dbname bench -n 5000
use strict;
use warnings;
use Getopt::Long;
use IO::Socket::INET;
use IO::Poll qw(POLLIN POLLHUP POLLERR);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes qw(time sleep);

my %o = (host => '127.0.0.1', port => 6432, user => 'postgres', dbname => 'postgres',
         n => 5000, parallel => 64, timeout => 10, hold => 900);
GetOptions(\%o, 'host=s', 'port=i', 'user=s', 'dbname=s', 'n=i', 'parallel=i',
           'timeout=i', 'hold=i') or die "usage: $0 [--host H] [--port P] [--user U] [--dbname D] [-n N]\n";
$| = 1;

my $payload = pack('N', 196608) # protocol 3.0
    . "user\0$o{user}\0database\0$o{dbname}\0application_name\0idle_clients\0\0";
my $startup = pack('N', length($payload) + 4) . $payload;

my @held;           # sockets that reached ReadyForQuery
my %pending;        # fileno => { sock, buf, deadline }
my $poll = IO::Poll->new;
my ($ok, $failed, $timedout, $started) = (0, 0, 0, 0);
my $first_error;
my $t0 = time;

sub fail {
    my ($fd, $why) = @_;
    my $c = delete $pending{$fd} or return;
    $poll->remove($c->{sock});
    close $c->{sock};
    $first_error //= $why;
    $failed++;
}

sub start_one {
    my $s = IO::Socket::INET->new(PeerAddr => $o{host}, PeerPort => $o{port},
                                  Proto => 'tcp', Timeout => $o{timeout});
    $started++;
    if (!$s) { $first_error //= "connect: $!"; $failed++; return; }
    $s->autoflush(1);
    if (!defined syswrite($s, $startup)) {
        $first_error //= "send startup: $!"; $failed++; close $s; return;
    }
    $s->blocking(0);
    $pending{fileno $s} = { sock => $s, buf => '', deadline => time + $o{timeout} };
    $poll->mask($s => POLLIN);
}

# Parse whole messages in the buffer; returns 1 when ReadyForQuery was seen.
sub parse {
    my ($fd) = @_;
    my $c = $pending{$fd};
    while (length($c->{buf}) >= 5) {
        my ($type, $len) = unpack('a N', $c->{buf});
        return 0 if length($c->{buf}) < 1 + $len;
        my $body = substr($c->{buf}, 5, $len - 4);
        substr($c->{buf}, 0, 1 + $len) = '';
        if ($type eq 'R') {
            my $code = unpack('N', $body);
            if ($code != 0) { fail($fd, "server asks for a password (auth code $code); use trust"); return -1; }
        } elsif ($type eq 'E') {
            my %f; $f{substr($_, 0, 1)} = substr($_, 1) for grep { length } split /\0/, $body;
            fail($fd, "ErrorResponse " . ($f{C} // '?') . ": " . ($f{M} // '?'));
            return -1;
        } elsif ($type eq 'Z') {
            return 1;
        }
    }
    return 0;
}

while ($ok + $failed + $timedout < $o{n}) {
    start_one() while $started < $o{n} && keys(%pending) < $o{parallel};
    last unless %pending;
    $poll->poll(0.2);
    for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
        my $fd = fileno $s;
        my $c = $pending{$fd} or next;
        my $r = sysread($s, my $chunk, 65536);
        if (!defined $r) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            fail($fd, "read: $!");
            next;
        }
        if ($r == 0) { fail($fd, "connection closed during login"); next; }
        $c->{buf} .= $chunk;
        my $st = parse($fd);
        if ($st == 1) {
            delete $pending{$fd};
            $poll->remove($s);
            push @held, $s;
            $ok++;
        }
    }
    my $now = time;
    for my $fd (keys %pending) {
        next if $pending{$fd}{deadline} > $now;
        my $c = delete $pending{$fd};
        $poll->remove($c->{sock});
        close $c->{sock};
        $first_error //= "login did not finish within $o{timeout}s";
        $timedout++;
    }
}

my $line = sprintf("READY ok=%d failed=%d timeout=%d secs=%.1f", $ok, $failed, $timedout, time - $t0);
$line .= " first_error=$first_error" if defined $first_error;
print "$line\n";

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
my $until = time + $o{hold};
sleep 0.2 while !$stop && time < $until;

# Be polite: Terminate, then close.
for my $s (@held) { $s->blocking(1); syswrite($s, "X\0\0\0\4"); close $s; }
exit 0;

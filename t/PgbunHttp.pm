# PgbunHttp - helpers for the tests of pgbun's HTTP port (t/301-t/309):
#
#  - http_request($port, $raw): one exchange on a fresh connection, returns
#    (status, head, body); every read has a deadline.
#  - http_get($port, $path): the same for a plain GET.
#  - metric_sample($text, $series): the value of one sample of an exposition.
#  - metric_quantile($text, $name, $labels, $q): histogram_quantile() as
#    Prometheus computes it, from the _bucket samples of one series.

package PgbunHttp;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

our @EXPORT = qw(http_request http_get metric_sample metric_quantile);

sub http_request
{
	my ($port, $raw, $secs) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
	  or return (0, '', "connect: $!");
	$s->autoflush(1);
	print $s $raw;
	my $resp = '';
	my $sel = IO::Select->new($s);
	my $deadline = time + ($secs // 30);
	while (time < $deadline)
	{
		last unless $sel->can_read(1);
		my $n = sysread($s, my $chunk, 65536);
		last unless $n;
		$resp .= $chunk;
	}
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $resp, 2;
	my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d+)};
	$body = dechunk($body // '') if ($head // '') =~ /^Transfer-Encoding:\s*chunked/mi;
	return ($status // 0, $head // '', $body // '');
}

sub dechunk
{
	my ($in) = @_;
	my $out = '';
	while ($in =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//)
	{
		my $n = hex($1);
		last if $n == 0;
		$out .= substr($in, 0, $n, '');
		$in =~ s/^\r\n//;
	}
	return $out;
}

sub http_get
{
	my ($port, $path) = @_;
	return http_request($port, "GET $path HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

sub metric_sample
{
	my ($text, $series) = @_;
	foreach my $line (split /\n/, $text)
	{
		return $1 if $line =~ /^\Q$series\E (\S+)$/;
	}
	return undef;
}

# $labels: the series' labels without braces, e.g. 'database="x",user="y"'.
# Returns the quantile in seconds, undef for an empty histogram.
sub metric_quantile
{
	my ($text, $name, $labels, $q) = @_;
	my @b;
	foreach my $line (split /\n/, $text)
	{
		next unless $line =~ /^\Q${name}_bucket{$labels\E,le="([^"]+)"\} (\S+)$/;
		push @b, [ $1 eq '+Inf' ? 9**9**9 : $1, $2 ];
	}
	@b = sort { $a->[0] <=> $b->[0] } @b;
	return undef unless @b && $b[-1][1] > 0;
	my $rank = $q * $b[-1][1];
	my ($prev_le, $prev_cum) = (0, 0);
	foreach my $i (0 .. $#b)
	{
		my ($le, $cum) = @{ $b[$i] };
		if ($cum >= $rank)
		{
			# the +Inf bucket: Prometheus answers the largest finite bound
			return $b[ $#b - 1 ][0] if $i == $#b;
			return $prev_le + ($le - $prev_le) * ($rank - $prev_cum) / ($cum - $prev_cum);
		}
		($prev_le, $prev_cum) = ($le, $cum);
	}
	return undef;
}

1;

# PgbunDns.pm - a fake DNS server for the TAP tests of host names (t/252,
# t/322): answers A questions for the names it is given, logs every question,
# and is killed when the test process ends.
package PgbunDns;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IO::Socket::INET;
use POSIX ();
use Socket qw(inet_aton);
use PostgreSQL::Test::Utils;

our @EXPORT = qw(start_fake_dns dns_questions);

my $parent = $$;
my @servers;
END { kill 'KILL', $_ foreach grep { $$ == $parent } @servers; }


# A DNS server on UDP 127.0.0.1: A records for the names in %$names, no
# AAAA records, NXDOMAIN for anything else. Each question is logged as
# "name qtype" to $logfile.
sub start_fake_dns
{
	my ($names, $logfile) = @_;
	my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'udp')
	  or die "udp socket: $!";
	my $port = $sock->sockport;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open my $log, '>>', $logfile or POSIX::_exit(1);
		$log->autoflush(1);
		while (1)
		{
			my $q = '';
			my $from = $sock->recv($q, 1500);
			next unless defined $from && length($q) >= 12;
			my ($id) = unpack('n', $q);
			my $pos = 12;
			my @labels;
			while ($pos < length $q)
			{
				my $l = ord(substr($q, $pos++, 1));
				last if $l == 0;
				push @labels, substr($q, $pos, $l);
				$pos += $l;
			}
			next if $pos + 4 > length $q;
			my $name = lc join('.', @labels);
			my ($qtype) = unpack('n', substr($q, $pos, 2));
			my $question = substr($q, 12, $pos + 4 - 12);
			print $log "$name $qtype\n";
			my $known = exists $names->{$name};
			my ($an, $answer) = (0, '');
			if ($known && $qtype == 1)
			{
				$answer = pack('nnnNn', 0xC00C, 1, 1, 1, 4) . inet_aton($names->{$name});
				$an = 1;
			}
			my $hdr = pack('nnnnnn', $id, 0x8180 | ($known ? 0 : 3), 1, $an, 0, 0);
			$sock->send($hdr . $question . $answer, 0, $from);
		}
	}
	close $sock;
	push @servers, $pid;
	return ($pid, $port);
}

# Questions the fake server saw for $name (A records).
sub dns_questions
{
	my ($logfile, $name) = @_;
	my $log = eval { slurp_file($logfile) } // '';
	my @n = grep { $_ eq "$name 1" } split /\n/, $log;
	return scalar @n;
}

1;

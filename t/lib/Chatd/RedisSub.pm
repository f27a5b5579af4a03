package Chatd::RedisSub;

# A minimal RESP client for the tests that watch Redis pub/sub directly (no sleeps: every read
# has a deadline).
#
#   my $c = Chatd::RedisSub->new($s->env('REDIS_PORT'));
#   $c->subscribe('chatd:user:<id>') or die;      # returns once Redis confirmed every channel
#   $c->cmd('PUBLISH', $channel, 'x'); my $r = $c->reply(Time::HiRes::time() + 10);
#   my $got = $c->until('mark');                  # [[channel, payload], ...] up to 'mark'

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();

sub new {
    my ($class, $port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or die "cannot connect to Redis on $port: $!";
    return bless {sock => $sock, buf => '', queue => []}, $class;
}

sub cmd {
    my ($c, @args) = @_;
    my $out = '*' . @args . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
    print {$c->{sock}} $out;
    $c->{sock}->flush;
}

sub _fill {
    my ($c, $deadline) = @_;
    my $left = $deadline - Time::HiRes::time();
    return 0 if $left <= 0 || !IO::Select->new($c->{sock})->can_read($left);
    my $n = sysread($c->{sock}, my $chunk, 65536);
    return 0 unless $n;
    $c->{buf} .= $chunk;
    return 1;
}

# One reply (arrays as array refs), or undef at the deadline.
sub reply {
    my ($c, $deadline) = @_;
    until ($c->{buf} =~ /\r\n/) { $c->_fill($deadline) or return undef }
    $c->{buf} =~ s/^(.)(.*?)\r\n//s;
    my ($type, $v) = ($1, $2);
    return $v if $type eq ':' || $type eq '+';
    die "Redis error: $v\n" if $type eq '-';
    if ($type eq '$') {
        return undef if $v < 0;
        while (length($c->{buf}) < $v + 2) { $c->_fill($deadline) or return undef }
        my $s = substr($c->{buf}, 0, $v);
        substr($c->{buf}, 0, $v + 2) = '';
        return $s;
    }
    my @a;
    for (1 .. $v) { my $e = $c->reply($deadline); return undef unless defined $e; push @a, $e }
    return \@a;
}

# SUBSCRIBE, returning once Redis has confirmed every channel (messages meanwhile are queued).
sub subscribe {
    my ($c, @channels) = @_;
    $c->cmd('SUBSCRIBE', @channels);
    my %want = map { $_ => 1 } @channels;
    my $deadline = Time::HiRes::time() + 10;
    while (%want) {
        my $r = $c->reply($deadline) // return 0;
        if    ($r->[0] eq 'subscribe') { delete $want{$r->[1]} }
        elsif ($r->[0] eq 'message')   { push @{$c->{queue}}, [$r->[1], $r->[2]] }
    }
    return 1;
}

# Every message up to and including the first whose payload is $stop (bounded wait).
sub until {
    my ($c, $stop) = @_;
    my @got;
    my $deadline = Time::HiRes::time() + 10;
    while (1) {
        my $m = shift @{$c->{queue}};
        if (!$m) {
            my $r = $c->reply($deadline) // last;
            next unless ref $r && $r->[0] eq 'message';
            $m = [$r->[1], $r->[2]];
        }
        push @got, $m;
        last if $m->[1] eq $stop;
    }
    return \@got;
}

1;

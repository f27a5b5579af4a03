# WS.md: "The server pings idle connections every 30 s and drops those silent for 75 s", done by
# chat-wsd's once-a-second sweep (ws_proto_sweep) instead of lws's per-connection validity timers,
# whose sorted list cost O(connections) per frame received (README "Issue 10 figures"). With
# WSD_PING_SECS=1 and WSD_IDLE_HANGUP_SECS=3:
# - a client that answers PINGs with PONGs (Mojo does) and sends nothing else stays connected,
#   and receives a PING each time it has been silent for a second;
# - a client that completes the handshake and then sends nothing, no PONG either, gets a PING
#   and is dropped about 3 s after its last byte.
# (t/5050 checks the token expiry, which the sweep watches now too.)
use strict;
use warnings;
use Test::More;
use FindBin;
use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new(env => {WSD_PING_SECS => 1, WSD_IDLE_HANGUP_SECS => 3})->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);

# ---- a client that answers PINGs stays --------------------------------------------------------
my $a = Chatd::WsClient->connect_user($s, $alice, 'alice');
my $pings = 0;
$a->{tx}->on(frame => sub { $pings++ if $_[1][4] == 9 });
Chatd::WsClient::wait_until(sub { 0 }, 6);    # 6 s without a frame from alice but her PONGs
ok($a->is_open, 'a client silent but for its PONGs is still connected after 6 s')
  or diag(explain [$a->close_code, $a->close_reason]);
cmp_ok($pings, '>=', 2, "it was pinged while silent ($pings PINGs in 6 s)");
ok($a->sync_point, 'and still answers');

# ---- a client that sends nothing, no PONG either, is dropped ----------------------------------
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp',
    Timeout => 5) or die "connect: $!";
my $path = $s->ws_connect_path($bob->{id}, token => $bob->{token});
my $key  = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
print $sock "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n";
my $t0 = time;
my ($buf, $eof) = ('', 0);
my $sel = IO::Select->new($sock);
while (time - $t0 < 15) {
    next unless $sel->can_read(0.5);
    my $n = sysread($sock, $buf, 65536, length $buf);
    if (!$n) { $eof = 1; last }
}
my $took = time - $t0;
like($buf, qr{^HTTP/1\.1 101 }, 'the silent client was upgraded');
(my $frames = $buf) =~ s/^.*?\r\n\r\n//s;
my @ops;
while (length $frames >= 2) {
    my ($b0, $b1) = unpack 'C2', $frames;
    my ($len, $hdr) = ($b1 & 0x7f, 2);
    ($len, $hdr) = (unpack('n', substr $frames, 2, 2), 4)  if $len == 126;
    ($len, $hdr) = (unpack('Q>', substr $frames, 2, 8), 10) if $len == 127;
    last if length $frames < $hdr + $len;
    push @ops, $b0 & 0x0f;
    substr($frames, 0, $hdr + $len) = '';
}
ok((grep { $_ == 9 } @ops), 'it was sent a PING') or diag("opcodes: @ops");
ok($eof, sprintf('it was dropped (after %.1f s)', $took));
cmp_ok($took, '>=', 2.5, 'not before WSD_IDLE_HANGUP_SECS');
cmp_ok($took, '<', 12, 'but soon after it');
close $sock;

Chatd::Test::done();

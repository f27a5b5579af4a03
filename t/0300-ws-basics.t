# WebSocket basics through nginx (WS.md): ping/pong, errors that keep the connection open,
# the 64 KiB frame limit (close 1009) and handshake refusals (403).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::Util qw(b64_encode);
use IO::Select;
use IO::Socket::INET;
use Chatd::WsClient;

my $s    = Chatd::Test->new->start;
my $u    = Chatd::WsClient::register($s, 'basics');
my $path = $s->ws_connect_path($u->{id}, token => $u->{token});

my $ws = $s->ws($path);
$ws->send_ok({json => {type => 'ping'}}, 'ping sent')
  ->message_ok('answer to ping received')
  ->json_message_is('/type' => 'pong', 'ping is answered with pong');

$ws->send_ok('not json', 'malformed JSON sent')
  ->message_ok('answer to malformed JSON received')
  ->json_message_is('/type' => 'error', 'malformed JSON is answered with an error')
  ->json_message_like('/message' => qr/\S/, 'the malformed-JSON error has a message');

$ws->send_ok({json => {type => 'ping'}}, 'ping sent after the error')
  ->message_ok('answer to the second ping received')
  ->json_message_is('/type' => 'pong', 'the connection survives malformed JSON');

$ws->send_ok({json => {type => 'no_such_type'}}, 'unknown type sent')
  ->message_ok('answer to an unknown type received')
  ->json_message_is('/type' => 'error', 'an unknown type is answered with an error')
  ->json_message_like('/message' => qr/\S/, 'the unknown-type error has a message');

$ws->send_ok({json => {hello => 'world'}}, 'message without a type sent')
  ->message_ok('answer to a message without a type received')
  ->json_message_is('/type' => 'error', 'a message without a type is answered with an error');

$ws->send_ok('[1,2,3]', 'a JSON array sent')
  ->message_ok('answer to a JSON array received')
  ->json_message_is('/type' => 'error', 'a JSON array is answered with an error');

$ws->send_ok({json => {type => 'ping'}}, 'ping sent after several errors')
  ->message_ok('answer to the third ping received')
  ->json_message_is('/type' => 'pong', 'the connection survives several errors');

# Over 64 KiB: closed with 1009 (message too big).
$ws->send_ok('x' x (70 * 1024), 'a 70 KiB frame sent')->finished_ok(1009, 'a 70 KiB frame closes with 1009');

# A frame just under the limit is an ordinary (bad) message, not a close.
my $ws2 = $s->ws($path);
$ws2->send_ok('y' x (60 * 1024), 'a 60 KiB frame sent')
  ->message_ok('answer to a 60 KiB frame received')
  ->json_message_is('/type' => 'error', 'a 60 KiB non-JSON frame is an error, not a close')
  ->send_ok({json => {type => 'ping'}}, 'ping after the 60 KiB frame')
  ->message_ok('answer after the 60 KiB frame received')
  ->json_message_is('/type' => 'pong', 'the connection survives a 60 KiB frame')
  ->finish_ok;

# Handshake refusals are plain HTTP answers to the upgrade request; read the status line
# from a raw socket so that a 101 and a 403 are both observed the same way.
sub handshake_status {
    my ($path, %h) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp',
        Timeout => 5) or return "connect: $!";
    my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1:" . $s->http_port . "\r\nUpgrade: websocket\r\n"
      . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      . 'Sec-WebSocket-Key: ' . b64_encode('0123456789abcdef', '') . "\r\n"
      . join('', map {"$_: $h{$_}\r\n"} sort keys %h) . "\r\n";
    print $sock $req;
    my $sel  = IO::Select->new($sock);
    my $line = '';
    while ($line !~ /\n/ && $sel->can_read(10)) {
        sysread($sock, my $buf, 1024) or last;
        $line .= $buf;
    }
    close $sock;
    return $line =~ m{^HTTP/1\.1 (\d{3})} ? $1 : "no status line: '$line'";
}

is(handshake_status($path, Origin => 'http://localhost:3000'), 101, 'an Origin in CORS_ORIGINS_STR is accepted (101)');
is(handshake_status($path), 101, 'a handshake without Origin (not a browser) is accepted (101)');
is(handshake_status('/api/v1/ws/not-a-uuid'), 403, 'a user id that is not a UUID is refused (403)');
is(handshake_status($path, Origin => 'http://evil.example'), 403,
    'an Origin outside CORS_ORIGINS_STR is refused (403)');

Chatd::Test::done();

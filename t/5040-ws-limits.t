# WebSocket limits (WS.md): malformed messages are errors that keep the connection (text that
# is not UTF-8 is a protocol error: 1007); a frame over 64 KiB closes with 1009; more than 50 client messages in 10 s is an error, and the next
# one closes with 1008; a client that does not read is closed (1008 "Too slow") instead of
# buffered without bound; `message` shares the REST per-user bucket (RATE_LIMIT_MESSAGES_PER_10S).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use IO::Socket::INET;
use Mojo::Util qw(b64_encode);

my $s = Chatd::Test->new(env => {RATE_LIMIT_MESSAGES_PER_10S => 3})->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
sub ws { Chatd::WsClient->connect_user($s, @_) }

# ---- malformed messages ---------------------------------------------------------------------
my $c = ws($alice, 'alice');
for my $case (['{"type":', 'truncated JSON'], ['[1]', 'an array'], ['"ping"', 'a bare string'],
    ['{"type":1}', 'a type that is not a string'], ['{}', 'no type'], ['{"type":"fly"}', 'an unknown type'],
    ['{"type":"ping"} x', 'trailing garbage'], ["{\"type\":\"\x{e9}t\x{e9}\"}", 'an unknown non-ASCII type'])
{
    $c->send($case->[0]);
    my $e = $c->next_frame(sub { $_->{type} =~ /^(error|pong)$/ }) // {};
    is($e->{type}, 'error', "$case->[1]: error");
}
$c->{tx}->send({binary => '{"type":"ping"}'});
is(($c->next_frame(sub { $_->{type} =~ /^(error|pong)$/ }) // {})->{type}, 'error', 'a binary frame: error');
ok($c->sync_point && $c->is_open, 'the connection survives malformed messages');
my $u8 = ws($alice, 'alice for invalid UTF-8');
$u8->{tx}->send({text => "{\"type\":\"\xff\"}"});
ok($u8->wait_closed, 'a text frame that is not UTF-8 closes the connection (RFC 6455)');
is($u8->close_code, 1007, 'with 1007');
$c->send('x' x (70 * 1024));
ok($c->wait_closed, 'a 70 KiB message closes the connection');
is($c->close_code, 1009, 'with 1009');

# ---- 50 messages in 10 s ----------------------------------------------------------------------
$c = ws($alice, 'alice for the rate limit');    # its first ping is message 1
$c->send({type => 'ping'}) for 2 .. 50;
ok(Chatd::WsClient::wait_until(sub { grep({ $_->{type} eq 'pong' } @{$c->frames}) == 49 }, 10),
    '50 messages within 10 s are all answered');
$c->send({type => 'ping'});
my $e = $c->next_frame(sub { $_->{type} eq 'error' }) // {};
is($e->{message}, 'Rate limit exceeded', 'the 51st is an error');
ok($c->is_open, 'and the connection stays');
$c->send({type => 'ping'});
ok($c->wait_closed, 'one more within the window closes the connection');
is($c->close_code, 1008, 'with 1008');
is($c->close_reason, 'Rate limit exceeded', "and 'Rate limit exceeded'");
my $other = ws($alice, 'another connection of the same user');
ok($other->is_open, 'the limit is per connection');

# ---- the REST bucket -------------------------------------------------------------------------
for my $i (1 .. 3) {
    $other->send({type => 'message', content => "m$i", receiver_id => $bob->{id}, client_id => "m$i"});
    is(($other->next_frame(sub { ($_->{client_id} // '') eq "m$i" }) // {})->{type}, 'ack', "message $i of 3 is accepted");
}
$other->send({type => 'message', content => 'm4', receiver_id => $bob->{id}, client_id => 'm4'});
my $r = $other->next_frame(sub { ($_->{client_id} // '') eq 'm4' }) // {};
is($r->{type}, 'error', 'the fourth in 10 s is refused');
is($r->{message}, 'Too Many Requests', 'with the REST detail');
my $res = Chatd::WsClient::api($s, $alice, POST => '/api/v1/messages', json => {content => 'rest', receiver_id => $bob->{id}});
is($res->code, 429, 'REST shares the bucket');
$res = Chatd::WsClient::api($s, $bob, POST => '/api/v1/messages', json => {content => 'rest', receiver_id => $alice->{id}});
is($res->code, 201, 'other users have their own');
$other->close;

# ---- a client that does not read ----------------------------------------------------------------
# A raw WebSocket that never reads, flooded through Redis on its user channel.
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Timeout => 5);
print $sock "GET " . $s->ws_connect_path($bob->{id}, token => $bob->{token}) . " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  . "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
  . 'Sec-WebSocket-Key: ' . b64_encode('0123456789abcdef', '') . "\r\n\r\n";
my $status = <$sock>;
like($status // '', qr{^HTTP/1\.1 101}, 'a client that will not read is connected');
my ($rhost, $rport) = $s->env('REDIS_URL') =~ m{redis://(?:[^@]*@)?([^:/]+):(\d+)};
my $redis = IO::Socket::INET->new(PeerAddr => $rhost, PeerPort => $rport, Timeout => 5);
my $payload = '{"type":"flood","pad":"' . ('x' x 256000) . '"}';
my $chan = "chatd:user:$bob->{id}";
my $publish = "*3\r\n\$7\r\nPUBLISH\r\n\$" . length($chan) . "\r\n$chan\r\n\$" . length($payload) . "\r\n$payload\r\n";
ok(Chatd::Test::wait_for(sub {
    # 8 MB a round, pipelined, until the out-queue (4 MiB) and the socket buffers are full.
    print $redis $publish x 32;
    <$redis> for 1 .. 32;
    my $log = join '', map { Chatd::Test::_slurp($_) // '' } glob($s->var_dir . '/log/wsd*.log');
    return $log =~ /user=\Q$bob->{id}\E .*closing: 1008 Too slow/;
}, 30, 'the slow client to be closed'), 'a client that does not read is closed with 1008 "Too slow"');
close $sock;
close $redis;
# Redis may still be handing wsd the rest of the flood (slowly under a sanitizer): a new
# socket of bob's that gets it while it authenticates is rightly closed too. The server
# carries on once the flood has drained.
my $b;
ok(Chatd::Test::wait_for(sub {
    $b->close if $b;
    $b = Chatd::WsClient->open_user($s, $bob);
    return $b->sync_point(5) && $b->is_open;
}, 30, 'a socket of bob to work again'), 'bob afterwards connected, and the server carries on');
$b->close;

Chatd::Test::done();

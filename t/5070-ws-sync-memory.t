# Memory through `sync` (issue 8 item 6). A replay used to materialise a whole batch of 500
# message frames per connection and hold it while the client read slowly (megabytes per
# connection); now a batch is at most WSD_SYNC_BATCH_BYTES and its frames are made as the
# out-queue drains. Slow clients that never read while replaying a large backlog must keep
# chat-wsd's RSS bounded. Also: the per-user cap (WSD_MAX_CONN_PER_USER, the newest over it is
# refused with 1008) and nginx's per-address cap on WebSockets (NGINX_WS_CONN_PER_IP, 429).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes ();

my ($SLOW, $BACKLOG, $SIZE) = (12, 3000, 5000);
my $s = Chatd::Test->new(env => {WSD_MAX_CONN_PER_USER => 3, NGINX_WS_CONN_PER_IP => 20})->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub ws { Chatd::WsClient->open_user($s, @_) }

# ---- per-user cap ------------------------------------------------------------------------------
my @a = map { ws($alice) } 1 .. 3;
ok($_->sync_point, 'alice: a connection under the cap works') for @a;
my $over = ws($alice);
ok($over->wait_closed(10), 'a fourth connection of alice is closed');
is($over->close_code, 1008, 'with 1008');
is($over->close_reason, 'Too many connections', 'saying why');
ok($a[0]->sync_point, 'the open ones are not disturbed');
$a[0]->close;
my $again = ws($alice);
ok($again->sync_point, 'once one closes, a new connection is accepted');
my $b1 = ws($bob);
ok($b1->sync_point, 'another user is not counted against alice');
$_->close for @a[1, 2], $again, $b1;

# ---- nginx: WebSockets per client address ----------------------------------------------------
# One connection per user (the per-user cap is not what is tested here).
my @users = map { Chatd::WsClient::register($s, "ip$_") } 1 .. 22;
my (@open, $refused);
for my $u (@users) {
    my $c = ws($u);
    if (!$c->is_open) { $refused = $c; last }
    push @open, $c;
}
ok(!grep({ !$_->sync_point } @open), scalar(@open) . ' connections from one address work');
ok($refused, 'nginx refuses the connection over NGINX_WS_CONN_PER_IP');
is($refused && $refused->status, 429, 'with 429');
is(scalar @open, 20, 'at the configured limit (20 here)');
$_->close for @open;
ok(Chatd::WsClient::wait_until(sub { my $c = ws($users[-1]); my $ok = $c->is_open; $c->close; $ok }, 10),
    'closed connections no longer count');

# ---- slow readers replaying a large backlog --------------------------------------------------
# A group backlog, so that every reader (one connection each: the cap is 3 per user here) has it.
my @readers = map { Chatd::WsClient::register($s, "reader$_") } 1 .. $SLOW;
my $g = Chatd::WsClient::api($s, $bob, POST => '/api/v1/groups',
    json => {name => 'backlog', member_ids => [map { $_->{id} } $carol, @readers]})->json;
ok($g->{id}, 'a group of bob, carol and the readers');
my $x = 'x' x $SIZE;
$s->psql("INSERT INTO messages (sender_id, group_id, content) SELECT '$bob->{id}', '$g->{id}', "
      . "'$x' || g FROM generate_series(1, $BACKLOG) g");
# wsd reads new messages from the message log (ws_tail): once a later message arrived live, its
# tail is past the backlog, which the readers then get as the replay measured here, not as live
# traffic.
{
    my $fence = Chatd::WsClient->open_user($s, $alice);
    my $id = Chatd::WsClient::api($s, $alice, POST => '/api/v1/messages',
        json => {content => 'fence', receiver_id => $alice->{id}})->json->{id};
    ok($fence->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 60), "wsd's tail is past the backlog");
    $fence->close;
}
my $pid = $s->pid('wsd');
sub rss_kib { my $st = Chatd::Test::_slurp("/proc/$pid/status") // ''; return $st =~ /^VmRSS:\s+(\d+)/m ? $1 : 0 }
my $before = rss_kib();
ok($before, "chat-wsd's RSS: $before KiB before");

# Straight to chat-wsd: nginx's buffers would hide where the replay waits.
my ($WSD_PORT) = split ' ', $s->env('WSD_PORTS') // '';
# A WebSocket of $u that asks for the whole backlog, reads the 101, and never reads again.
sub slow_client {
    my $u = shift;
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or return;
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096);    # before connect: a small window
    $sock->connect(Socket::pack_sockaddr_in($WSD_PORT, Socket::inet_aton('127.0.0.1'))) or return;
    my $path = $s->ws_connect_path($u->{id}, token => $u->{token}, since => 0);
    print $sock "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) { sysread($sock, $head, 1, length $head) or return }
    return $head =~ m{^HTTP/1\.1 101} ? $sock : undef;
}
my @slow = map { slow_client($_) } @readers;
is(scalar(grep { defined } @slow), $SLOW, "$SLOW slow clients connected");

# Peak RSS while they stall: sampled until it has not grown for 2 s (at most 30 s).
my ($peak, $still, $t0) = ($before, 0, Time::HiRes::time());
while (Time::HiRes::time() - $t0 < 30 && $still < 8) {
    Time::HiRes::sleep(0.25);
    my $r = rss_kib();
    if ($r > $peak + 64) { ($peak, $still) = ($r, 0) } else { $still++ }
}
my $grew = $peak - $before;
diag("chat-wsd RSS: $before KiB before, $peak KiB with $SLOW slow replays (+$grew KiB)");
SKIP: {
    skip 'RSS bounds are for the plain build (ASan keeps freed memory in quarantine)', 1
      if -e "$ENV{CHATD_ROOT}/build/san/.stamp";
    cmp_ok($grew, '<', 2048 * $SLOW, "RSS grows by less than 2 MiB per slow replaying client");
}
close $_ for grep { defined } @slow;
my $after = ws($bob);
ok($after->sync_point, 'chat-wsd still answers');
$after->close;

Chatd::Test::done();

# A message to oneself (issue 8 item 13): fcgi used to publish it twice on the user's channel
# (its channel list was written out separately from wsd's, which published it once). Now both
# take the channels from shared/chan.c: one publication, and each socket of the user gets the
# message exactly once, whether it was sent over REST or over the WebSocket. Since issue 10 wsd
# reads new messages from the log (ws_tail) and nothing publishes them on the user channel at all.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Chatd::RedisSub;
use Mojo::JSON qw(decode_json);

my $s = Chatd::Test->new->start;
my $alice = Chatd::WsClient::register($s, 'alice');
my $chan = "chatd:user:$alice->{id}";
my $sub = Chatd::RedisSub->new($s->env('REDIS_PORT'));
ok($sub->subscribe($chan), "a Redis subscriber on $chan");

my $marks = 0;
# How many times message $id was published on the channel, counted up to a marker publish.
sub published {
    my $id = shift;
    my $mark = 'mark-' . ++$marks;
    my $p = Chatd::RedisSub->new($s->env('REDIS_PORT'));
    $p->cmd('PUBLISH', $chan, $mark);
    $p->reply(Time::HiRes::time() + 10);
    my $got = $sub->until($mark);
    is($got->[-1][1] // '', $mark, "the marker $mark came through");
    return scalar grep { $_->[1] =~ /^\{/ && (decode_json($_->[1])->{id} // '') eq $id } @$got;
}
sub ws {
    my $c = Chatd::WsClient->open_user($s, $alice);
    ok($c->sync_point, shift);
    return $c;
}
# Copies of message $id on $c, after a ping round trip (everything before it has arrived).
sub copies {
    my ($c, $id) = @_;
    $c->sync_point;
    return scalar grep { $_->{type} eq 'message' && ($_->{id} // '') eq $id } @{$c->frames};
}

my ($a1, $a2) = (ws('alice 1 connected'), ws('alice 2 connected'));

my $res = Chatd::WsClient::api($s, $alice, POST => '/api/v1/messages',
    json => {content => 'note to self', receiver_id => $alice->{id}});
is($res->code, 201, 'a message to oneself over REST is stored');
my $id = $res->json->{id};
ok($a1->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 10), 'it reaches the first socket');
ok($a2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 10), 'and the second');
is(published($id), 0, 'REST: not published on the user channel (wsd reads the log)');
is(copies($_, $id), 0, 'REST: no second copy on a socket') for $a1, $a2;

$a1->send({type => 'message', content => 'ws note', receiver_id => $alice->{id}, client_id => 'self'});
my $ack = $a1->next_frame(sub { ($_->{client_id} // '') eq 'self' }, 10) // {};
is($ack->{type}, 'ack', 'a message to oneself over the WebSocket is acknowledged');
ok($a2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq ($ack->{id} // '') }, 10),
    "it reaches the user's other socket");
is(published($ack->{id} // ''), 0, 'WebSocket: not published on the user channel either');
is(copies($a2, $ack->{id} // ''), 0, 'WebSocket: no second copy on the other socket');
is(copies($a1, $ack->{id} // ''), 0, 'WebSocket: the sending socket has its ack, not the message');

$_->close for $a1, $a2;
Chatd::Test::done();

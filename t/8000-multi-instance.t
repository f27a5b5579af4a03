# Two wsd instances behind one Redis (WS.md: "a user may hold many connections ... wsd
# instances; each gets every event"): messages sent over the WebSocket on one instance reach
# clients of the other, in both directions, for private and group messages and typing.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new(wsd_instances => 2)->start;
my @ports = split ' ', $s->env('WSD_PORTS') // '';
is(scalar @ports, 2, 'two wsd instances');
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);

# Straight to one instance, so the test knows which serves which client.
sub on {
    my ($u, $n, $title) = @_;
    my $url = "ws://127.0.0.1:$ports[$n - 1]" . $s->ws_connect_path($u->{id}, token => $u->{token});
    my $c = Chatd::WsClient->start($url);
    ok($c->sync_point, "$title connected to instance $n");
    return $c;
}
sub send_ack {
    my ($c, $cid, %m) = @_;
    $c->send({type => 'message', client_id => $cid, %m});
    my $r = $c->next_frame(sub { ($_->{client_id} // '') eq $cid }) // {};
    is($r->{type}, 'ack', "$cid acknowledged");
    return $r;
}
sub got { my ($c, $id) = @_; return $c->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }) }

my $g = Chatd::WsClient::api($s, $alice, POST => '/api/v1/groups',
    json => {name => 'g', member_ids => [$bob->{id}, $carol->{id}]})->json;
ok($g->{id}, 'a group of three');

my $a1 = on($alice, 1, 'alice');
my $a2 = on($alice, 2, "alice's second device");
my $b2 = on($bob, 2, 'bob');
my $c1 = on($carol, 1, 'carol');

my $ack = send_ack($a1, 'a-to-b', content => 'from 1 to 2', receiver_id => $bob->{id});
ok(got($b2, $ack->{id}), 'a message sent on instance 1 reaches its receiver on instance 2');
ok(got($a2, $ack->{id}), "and the sender's other connection on instance 2");

$ack = send_ack($b2, 'b-to-a', content => 'from 2 to 1', receiver_id => $alice->{id});
ok(got($a1, $ack->{id}), 'a message sent on instance 2 reaches its receiver on instance 1');
ok(got($a2, $ack->{id}), 'and on instance 2');

$ack = send_ack($b2, 'group', content => 'to everyone', group_id => $g->{id});
ok(got($a1, $ack->{id}), 'a group message from instance 2 reaches a member on instance 1');
ok(got($c1, $ack->{id}), 'and another');
ok(got($a2, $ack->{id}), 'and members on instance 2');
$b2->sync_point;
ok(!grep({ $_->{type} eq 'message' && $_->{id} eq $ack->{id} } @{$b2->frames}), 'not the sending connection');

$c1->send({type => 'typing', group_id => $g->{id}});
ok($b2->next_frame(sub { $_->{type} eq 'typing' && $_->{user_id} eq $carol->{id} }), 'typing crosses instances');

# Membership changes reach the other instance's hub too.
my $dave = Chatd::WsClient::register($s, 'dave');
my $d2 = on($dave, 2, 'dave');
my $res = Chatd::WsClient::api($s, $alice, POST => "/api/v1/groups/$g->{id}/members?user_id=$dave->{id}");
is($res->code, 201, 'alice adds dave');
ok($d2->next_frame(sub { $_->{type} eq 'member_added' }), 'dave hears of it on instance 2');
$ack = send_ack($c1, 'to-dave', content => 'hi dave', group_id => $g->{id});
ok(got($d2, $ack->{id}), 'and gets the group from a sender on instance 1');

$_->close for $a1, $a2, $b2, $c1, $d2;
Chatd::Test::done();

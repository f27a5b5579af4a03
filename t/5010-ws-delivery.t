# Live delivery of REST events over WebSockets (WS.md "Delivery"): private messages reach
# every connection of the receiver and the sender's connections, not a third user's; group
# messages reach every member connection without join_group, not non-members; join_group
# and leave_group; edits, deletes and reads are pushed; member_added/member_removed/
# group_deleted change what a connection receives without reconnecting.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol, $dave) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol dave);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub msg_on {
    my ($c, $id, $type) = @_;
    $type //= 'message';
    return $c->next_frame(sub { $_->{type} eq $type && ($_->{id} // $_->{message_id} // '') eq $id }, 10);
}
# True when $c has no frame of $type for $id, checked after a ping round trip.
sub none_on {
    my ($c, $id, $type) = @_;
    $type //= 'message';
    $c->sync_point;
    return !grep { $_->{type} eq $type && ($_->{id} // '') eq $id } @{$c->frames};
}
sub send_rest {
    my ($u, %body) = @_;
    my $res = api($u, POST => '/api/v1/messages', json => {content => 'hello', %body});
    is($res->code, 201, "$u->{name} posts a message over REST") or diag($res->body);
    return $res->json;
}

# A group that exists before anyone connects: alice (creator) and bob.
my $g1 = api($alice, POST => '/api/v1/groups', json => {name => 'g1', member_ids => [$bob->{id}]})->json;
ok($g1->{id}, 'group g1 created');

my ($a1, $a2) = (ws($alice, 'alice 1'), ws($alice, 'alice 2'));
my ($b1, $b2) = (ws($bob, 'bob 1'), ws($bob, 'bob 2'));
my $c1 = ws($carol, 'carol');
my $d1 = ws($dave, 'dave');

# ---- private --------------------------------------------------------------------------------
my $m = send_rest($alice, receiver_id => $bob->{id}, content => 'hi bob');
for ([$b1, "bob's first"], [$b2, "bob's second"], [$a1, "alice's first"], [$a2, "alice's second"]) {
    my $f = msg_on($_->[0], $m->{id});
    ok($f, "a private message reaches $_->[1] connection");
}
ok(none_on($c1, $m->{id}), "a private message does not reach a third user");
my $m2 = send_rest($alice, receiver_id => $bob->{id}, content => 'shape');
my $f = msg_on($b1, $m2->{id}) // {};
is($f->{content}, 'shape', 'the event carries the content');
is($f->{seq}, $m2->{seq}, 'and the seq');
is($f->{sender}{id}, $alice->{id}, 'and the sender (UserPublic)');
is($f->{sender}{email}, undef, "without the sender's email");

# ---- group, membership at connect time ---------------------------------------------------------
my $gm = send_rest($bob, group_id => $g1->{id}, content => 'to g1');
ok(msg_on($_->[0], $gm->{id}), "a group message reaches $_->[1] without join_group")
  for [$a1, 'alice 1'], [$a2, 'alice 2'], [$b1, 'bob 1'], [$b2, 'bob 2'];
ok(none_on($c1, $gm->{id}), 'a group message does not reach a non-member');

# ---- join_group / leave_group ------------------------------------------------------------------
$c1->send({type => 'join_group', group_id => $g1->{id}});
$f = $c1->next_frame(sub { $_->{type} =~ /^(error|joined_group)$/ }) // {};
is($f->{type}, 'error', 'join_group by a non-member is an error');
like($f->{message} // '', qr/not a member/, 'saying so');
$c1->send({type => 'join_group', group_id => 'nope'});
is(($c1->next_frame(sub { $_->{type} =~ /^(error|joined_group)$/ }) // {})->{type}, 'error',
    'join_group with a bad group id is an error');
$c1->send({type => 'join_group'});
is(($c1->next_frame(sub { $_->{type} =~ /^(error|joined_group)$/ }) // {})->{type}, 'error',
    'join_group without a group id is an error');
ok($c1->sync_point, 'the connection survives join_group errors');

$a1->send({type => 'join_group', group_id => $g1->{id}});
$f = $a1->next_frame(sub { $_->{type} =~ /^(error|joined_group)$/ }) // {};
is_deeply($f, {type => 'joined_group', group_id => $g1->{id}}, 'join_group by a member: joined_group');

$a1->send({type => 'leave_group', group_id => $g1->{id}});
$f = $a1->next_frame(sub { $_->{type} eq 'left_group' }) // {};
is_deeply($f, {type => 'left_group', group_id => $g1->{id}}, 'leave_group: left_group');
$gm = send_rest($bob, group_id => $g1->{id}, content => 'after leave');
ok(msg_on($a2, $gm->{id}), "alice's other connection still receives the group");
ok(none_on($a1, $gm->{id}), 'the connection that left does not');
ok(msg_on($b1, $gm->{id}), 'other members still do');
$a1->send({type => 'join_group', group_id => $g1->{id}});
ok($a1->next_frame(sub { $_->{type} eq 'joined_group' }), 'joining again');
$gm = send_rest($bob, group_id => $g1->{id}, content => 'after rejoin');
ok(msg_on($a1, $gm->{id}), 'brings the group back to that connection');

# ---- edit, delete, read -------------------------------------------------------------------------
my $res = api($alice, PATCH => "/api/v1/messages/$m->{id}", json => {content => 'edited'});
is($res->code, 200, 'alice edits her private message');
$f = msg_on($b2, $m->{id}, 'message_updated') // {};
is($f->{content}, 'edited', 'message_updated reaches the receiver with the new content');
ok($f->{edited_at}, 'and edited_at');
ok(msg_on($a2, $m->{id}, 'message_updated'), "and the sender's connections");

$res = api($bob, PATCH => "/api/v1/messages/$m->{id}/read");
is($res->code, 204, 'bob marks it read');
$f = $a1->next_frame(sub { $_->{type} eq 'read' && $_->{message_id} eq $m->{id} }) // {};
is($f->{reader_id}, $bob->{id}, 'the sender gets a read event with the reader');
like($f->{read_at} // '', qr/^\d{4}-\d\d-\d\dT[\d:.]+Z$/, 'and read_at');
ok(none_on($c1, $m->{id}, 'read'), 'nobody else does');

$res = api($alice, DELETE => "/api/v1/messages/$m2->{id}");
is($res->code, 204, 'alice deletes a message');
$f = msg_on($b1, $m2->{id}, 'message_deleted') // {};
is($f->{seq}, $m2->{seq}, 'message_deleted reaches the receiver with id and seq');

$res = api($bob, PATCH => "/api/v1/messages/$gm->{id}", json => {content => 'group edit'});
is($res->code, 200, 'bob edits his group message');
ok(msg_on($a2, $gm->{id}, 'message_updated'), 'message_updated reaches the group');

# ---- member_added / member_removed without reconnecting ---------------------------------------
$res = api($alice, POST => "/api/v1/groups/$g1->{id}/members?user_id=$dave->{id}");
is($res->code, 201, 'alice adds dave to g1');
$f = $d1->next_frame(sub { $_->{type} eq 'member_added' }) // {};
is_deeply($f, {type => 'member_added', group_id => $g1->{id}, user_id => $dave->{id}}, 'dave gets member_added');
ok($a1->next_frame(sub { $_->{type} eq 'member_added' && $_->{user_id} eq $dave->{id} }),
    'the group hears of it too');
$gm = send_rest($bob, group_id => $g1->{id}, content => 'welcome dave');
ok(msg_on($d1, $gm->{id}), 'the new member receives group messages live, without reconnecting');

my $d2 = ws($dave, 'dave 2');
$gm = send_rest($bob, group_id => $g1->{id}, content => 'dave 2 too');
ok(msg_on($d2, $gm->{id}), "a connection opened after joining receives the group");

$res = api($alice, DELETE => "/api/v1/groups/$g1->{id}/members/$dave->{id}");
is($res->code, 204, 'alice removes dave');
$f = $d1->next_frame(sub { $_->{type} eq 'member_removed' }) // {};
is_deeply($f, {type => 'member_removed', group_id => $g1->{id}, user_id => $dave->{id}}, 'dave gets member_removed');
$gm = send_rest($bob, group_id => $g1->{id}, content => 'bye dave');
ok(msg_on($b1, $gm->{id}), 'members still get the group');
ok(none_on($d1, $gm->{id}), 'the removed member does not');
ok(none_on($d2, $gm->{id}), 'on none of his connections');
$d2->send({type => 'typing', group_id => $g1->{id}});
is(($d2->next_frame(sub { $_->{type} eq 'error' }) // {})->{type}, 'error', 'nor may he type in it');

# ---- a group created while connected, then deleted ----------------------------------------------
my $g2 = api($alice, POST => '/api/v1/groups', json => {name => 'g2', member_ids => [$carol->{id}]})->json;
ok($g2->{id}, 'group g2 created with carol');
ok($c1->next_frame(sub { $_->{type} eq 'member_added' && $_->{group_id} eq $g2->{id} }),
    'carol hears she was added');
$gm = send_rest($alice, group_id => $g2->{id}, content => 'to g2');
ok(msg_on($c1, $gm->{id}), 'and receives g2 messages at once');
$res = api($alice, DELETE => "/api/v1/groups/$g2->{id}");
is($res->code, 204, 'alice deletes g2');
ok($c1->next_frame(sub { $_->{type} eq 'group_deleted' && $_->{group_id} eq $g2->{id} }),
    'members get group_deleted');
ok($c1->next_frame(sub { $_->{type} eq 'member_removed' && $_->{group_id} eq $g2->{id} }),
    'and member_removed');
$c1->send({type => 'typing', group_id => $g2->{id}});
is(($c1->next_frame(sub { $_->{type} eq 'error' }) // {})->{type}, 'error',
    'the deleted group is gone from the connection');

$_->close for $a1, $a2, $b1, $b2, $c1, $d1, $d2;
Chatd::Test::done();

# Live events of groups and presence on Redis (API.md "Redis channels", WS.md "Server ->
# client"): a subscriber on the stack's Redis sees, in order and with nothing else,
# member_added / member_removed on chatd:user:<user> and chatd:group:<group>, online_status on
# the channels of users who have the caller as a contact and of the caller's groups, and
# group_deleted plus member_removed when a group is deleted. With Redis down the requests
# still succeed (the database is the truth).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::RedisSub;
use Mojo::JSON qw(decode_json);
use Time::HiRes ();

my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000,
    RATE_LIMIT_LOGIN_PER_MINUTE => 100000})->start;
my $t = $s->t;
my $REDIS_PORT = $s->env('REDIS_PORT');
ok($REDIS_PORT, 'the stack has a Redis port');

# ---- the pub/sub client (Chatd::RedisSub) ----------------------------------------------------
sub redis_connect { Chatd::RedisSub->new($REDIS_PORT) }
sub redis_cmd { my $c = shift; $c->cmd(@_) }
sub redis_reply { my $c = shift; $c->reply(@_) }
sub redis_subscribe { my $c = shift; $c->subscribe(@_) }
sub redis_until { my $c = shift; $c->until(@_) }
my $marks = 0;
# The messages received since the last mark, JSON payloads decoded, the mark itself dropped.
sub drain {
    my ($c, $channel) = @_;
    my $mark = 'mark-' . ++$marks;
    my $p = redis_connect();
    redis_cmd($p, 'PUBLISH', $channel, $mark);
    redis_reply($p, Time::HiRes::time() + 10);
    my $got = redis_until($c, $mark);
    return undef unless @$got && $got->[-1][1] eq $mark;
    pop @$got;
    return [map { [$_->[0], $_->[1] =~ /^\{/ ? decode_json($_->[1]) : $_->[1]] } @$got];
}

# ---- users and a subscriber ------------------------------------------------------------------
sub register { $s->register(@_) }
my ($alice, $bob, $carol, $dave) = map { register($_) } qw(alice bob carol dave);
my %ch = (bob => "chatd:user:$bob->{id}", carol => "chatd:user:$carol->{id}", dave => "chatd:user:$dave->{id}");
my $sub = redis_connect();
ok(redis_subscribe($sub, @ch{qw(bob carol dave)}), 'subscribed to the user channels of bob, carol and dave');

# ---- create: member_added on each member's user channel ----------------------------------------
$t->post_ok($s->url('/api/v1/groups'), $alice->{h}, json => {name => 'Live', member_ids => [$bob->{id}]})
  ->status_is(201, 'alice creates a group with bob');
my $g = $t->tx->res->json('/id');
$ch{group} = "chatd:group:$g";
is_deeply(drain($sub, $ch{dave}), [[$ch{bob}, {type => 'member_added', group_id => $g, user_id => $bob->{id}}]],
    'create: bob gets member_added on his user channel, nothing else is published');
ok(redis_subscribe($sub, $ch{group}), 'subscribed to the group channel');

# ---- add / remove: on the user's channel and the group's ------------------------------------
$t->post_ok($s->url("/api/v1/groups/$g/members?user_id=" . uc $carol->{id}), $alice->{h})
  ->status_is(201, 'alice adds carol');
my $added = {type => 'member_added', group_id => $g, user_id => $carol->{id}};
is_deeply(drain($sub, $ch{dave}), [[$ch{carol}, $added], [$ch{group}, $added]],
    'add: member_added on chatd:user:<carol> and chatd:group:<g>, ids lower-case');
$t->post_ok($s->url("/api/v1/groups/$g/members?user_id=$carol->{id}"), $alice->{h})
  ->status_is(400, 'alice adds carol again');
$t->delete_ok($s->url("/api/v1/groups/$g/members/$carol->{id}"), $bob->{h})->status_is(403, 'bob may not remove carol');
is_deeply(drain($sub, $ch{dave}), [], 'failed add and remove publish nothing');

$t->delete_ok($s->url("/api/v1/groups/$g/members/" . uc $carol->{id}), $alice->{h})->status_is(204, 'alice removes carol');
my $removed = {type => 'member_removed', group_id => $g, user_id => $carol->{id}};
is_deeply(drain($sub, $ch{dave}), [[$ch{carol}, $removed], [$ch{group}, $removed]],
    'remove: member_removed on chatd:user:<carol> and chatd:group:<g>');

# ---- online_status -----------------------------------------------------------------------------
$t->post_ok($s->url('/api/v1/contacts'), $bob->{h}, json => {contact_id => $alice->{id}})->status_is(201, 'bob adds alice as a contact');
$t->post_ok($s->url('/api/v1/contacts'), $alice->{h}, json => {contact_id => $carol->{id}})->status_is(201, 'alice adds carol as a contact');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=true'), $alice->{h})->status_is(204, 'alice goes online');
my $on = {type => 'online_status', user_id => $alice->{id}, is_online => Mojo::JSON::true, last_seen => undef};
is_deeply(drain($sub, $ch{dave}), [[$ch{bob}, $on], [$ch{group}, $on]],
    "online: online_status to bob (who has alice as a contact) and alice's group, not to carol");
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=false'), $alice->{h})->status_is(204, 'alice goes offline');
my $off = drain($sub, $ch{dave});
is_deeply([map { $_->[0] } @$off], [$ch{bob}, $ch{group}], 'offline: the same two channels');
is_deeply([map { "$_->{type} $_->{user_id} " . ($_->{is_online} ? 1 : 0) } map { $_->[1] } @$off],
    ["online_status $alice->{id} 0", "online_status $alice->{id} 0"], 'offline: is_online false');
like($off->[0][1]{last_seen} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'offline: last_seen set');

# ---- delete: group_deleted on the group channel, member_removed to each member ------------------
$t->delete_ok($s->url("/api/v1/groups/$g"), $alice->{h})->status_is(204, 'alice deletes the group');
is_deeply(drain($sub, $ch{dave}), [[$ch{group}, {type => 'group_deleted', group_id => $g}],
        [$ch{bob}, {type => 'member_removed', group_id => $g, user_id => $bob->{id}}]],
    'delete: group_deleted on the group channel, member_removed on bob\'s channel');

# ---- Redis down: the change is made and answered anyway -----------------------------------------
$t->post_ok($s->url('/api/v1/groups'), $alice->{h}, json => {name => 'Offline'})->status_is(201, 'create a second group');
my $g2 = $t->tx->res->json('/id');
ok($s->stop_part('redis'), 'stop Redis');
$t->post_ok($s->url("/api/v1/groups/$g2/members?user_id=$dave->{id}"), $alice->{h})
  ->status_is(201, 'add a member with Redis down: 201');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=true'), $alice->{h})->status_is(204, 'go online with Redis down: 204');
$t->delete_ok($s->url("/api/v1/groups/$g2/members/$dave->{id}"), $dave->{h})->status_is(204, 'leave with Redis down: 204');
is($s->psql("SELECT count(*) FROM group_members WHERE group_id = '$g2'") + 0, 1, 'with Redis down the database still changed');
ok($s->start_part('redis'), 'start Redis again');
ok($s->wait_for(sub { ($t->ua->get($s->url('/health'))->res->code // 0) == 200 }, 20, 'health back to 200'),
    'the stack is healthy again');

Chatd::Test::done();

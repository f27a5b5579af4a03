# Group roles (API.md "Groups", issue 11): PATCH /api/v1/groups/{group_id}/members/{user_id}
# {"role": "admin"|"member"} by admins, the creator or a superuser -> 200 GroupMemberRead;
# 403 for others, 404 for an unknown group, a private group seen from outside or a non-member
# target, 422 for a bad role; the last admin cannot be demoted while other members remain;
# member_role_changed {type, group_id, user_id, role} reaches the members' WebSockets (and
# nobody else), only when the role did change.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::Promise;

my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000,
    RATE_LIMIT_LOGIN_PER_MINUTE => 100000})->start;
my ($alice, $bob, $carol, $dave, $root) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol dave root);
$s->psql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub role_of {
    my ($g, $u) = @_;
    my $r = $s->psql("SELECT role FROM group_members WHERE group_id = '$g' AND user_id = '$u->{id}'");
    $r =~ s/\s+\z//;
    return $r;
}
sub set_role {
    my ($who, $g, $u, $role, $want, $name) = @_;
    my $res = api($who, PATCH => "/api/v1/groups/$g/members/$u->{id}", json => {role => $role});
    is($res->code, $want, $name) or diag($res->body);
    return $res;
}
sub role_event {
    my ($c, $g) = @_;
    return $c->next_frame(sub { $_->{type} eq 'member_role_changed' && $_->{group_id} eq $g }, 15);
}
# Forgets the member_role_changed frames $c received so far (before a change that must be silent).
sub forget {
    my $c = shift;
    @{$c->frames} = grep { $_->{type} ne 'member_role_changed' } @{$c->frames};
}
# True when $c received no member_role_changed since forget, checked after a ping round trip.
sub no_role_event {
    my $c = shift;
    $c->sync_point;
    return !$c->grep_frames(sub { $_->{type} eq 'member_role_changed' });
}

my $g = api($alice, POST => '/api/v1/groups', json => {name => 'roles', member_ids => [$bob->{id}, $carol->{id}]})->json->{id};
ok($g, 'alice creates a public group with bob and carol');
my ($wb, $wc, $wd) = (ws($bob, 'bob'), ws($carol, 'carol'), ws($dave, 'dave (outside the group)'));

# ---- promote: 200 GroupMemberRead, the role stored, the event on the members' sockets ---------
my $res = set_role($alice, $g, $bob, 'admin', 200, 'the creator promotes bob');
my $m = $res->json // {};
is_deeply([@$m{qw(group_id user_id role)}], [$g, $bob->{id}, 'admin'], 'GroupMemberRead: group_id, user_id, role');
ok($m->{id} && $m->{joined_at}, 'with its id and joined_at');
is($m->{user}{id}, $bob->{id}, 'and the user (UserPublic)');
is(role_of($g, $bob), 'admin', 'bob is admin in the database');
my $want = {type => 'member_role_changed', group_id => $g, user_id => $bob->{id}, role => 'admin'};
is_deeply(role_event($wb, $g), $want, "member_role_changed reaches bob's WebSocket, exactly");
is_deeply(role_event($wc, $g), $want, "and carol's (another member)");
ok(no_role_event($wd), 'not a non-member');

# ---- the new admin manages; setting the same role again is 200 and silent ----------------------
set_role($bob, $g, $carol, 'admin', 200, 'bob, now admin, promotes carol');
is(role_of($g, $carol), 'admin', 'carol is admin');
is((role_event($wc, $g) // {})->{role}, 'admin', 'carol hears it');
forget($wc);
set_role($bob, $g, $carol, 'admin', 200, 'promoting carol again');
ok(no_role_event($wc), 'publishes nothing: the role did not change');
$res = api($bob, PATCH => "/api/v1/groups/" . uc($g) . "/members/" . uc($carol->{id}), json => {role => 'member'});
is($res->code, 200, 'bob demotes carol (upper-case ids in the path)');
is_deeply(role_event($wc, $g), {type => 'member_role_changed', group_id => $g, user_id => $carol->{id}, role => 'member'},
    'the event carries the ids lower-case and the new role');
is(role_of($g, $carol), 'member', 'carol is a member again');
$res = api($carol, POST => "/api/v1/groups/$g/members?user_id=$dave->{id}");
is($res->code, 403, 'a demoted admin may no longer add members');

forget($_) for $wb, $wc;
# ---- who may not ----------------------------------------------------------------------------------
$res = set_role($carol, $g, $carol, 'admin', 403, 'a member cannot promote herself');
is($res->json('/detail'), 'Only group admin can change roles', 'detail: Only group admin can change roles');
set_role($carol, $g, $bob, 'member', 403, 'nor demote an admin');
set_role($dave, $g, $bob, 'member', 403, 'a non-member of a public group: 403');
is(role_of($g, $bob), 'admin', 'bob is still admin');
ok(no_role_event($wb), 'refused changes publish nothing');
set_role($root, $g, $carol, 'admin', 200, 'a superuser (not a member) may');
ok(role_event($wc, $g), 'and the group hears it');
set_role($root, $g, $carol, 'member', 200, 'and back');
ok(role_event($wc, $g), 'and hears that too');

# ---- 404s ------------------------------------------------------------------------------------
$res = set_role($alice, '00000000-0000-4000-8000-000000000000', $bob, 'admin', 404, 'unknown group: 404');
is($res->json('/detail'), 'Group not found', 'detail: Group not found');
$res = set_role($alice, $g, $dave, 'admin', 404, 'a user outside the group: 404');
is($res->json('/detail'), 'Member not found', 'detail: Member not found');
$res = set_role($alice, $g, {id => '00000000-0000-4000-8000-000000000001'}, 'admin', 404, 'an unknown user: 404');
is($res->json('/detail'), 'Member not found', 'detail: Member not found');
my $priv = api($alice, POST => '/api/v1/groups', json => {name => 'secret', is_private => \1, member_ids => [$bob->{id}]})->json->{id};
$res = set_role($dave, $priv, $bob, 'admin', 404, "a private group is 404 to a non-member");
is($res->json('/detail'), 'Group not found', 'detail: Group not found, as elsewhere');
set_role($bob, $priv, $bob, 'admin', 403, 'and 403 to a plain member');
is(role_of($priv, $bob), 'member', 'who stays a member');

forget($wb);
# ---- 422: the role is "admin" or "member" ------------------------------------------------------------
for my $body ({role => 'owner'}, {role => 'Admin'}, {role => ''}, {role => 1}, {role => undef}, {}, {rol => 'admin'}) {
    my $j = Mojo::JSON::encode_json($body);
    $res = api($alice, PATCH => "/api/v1/groups/$g/members/$bob->{id}", json => $body);
    is($res->code, 422, "body $j: 422");
    is_deeply(($res->json('/detail') // [{}])->[0]{loc}, ['body', 'role'], "body $j: the error names body.role");
}
$res = api($alice, PATCH => "/api/v1/groups/$g/members/not-a-uuid", json => {role => 'admin'});
is($res->code, 422, 'a bad user id in the path: 422');
is(role_of($g, $bob), 'admin', 'nothing changed');
ok(no_role_event($wb), 'and nothing was published');

# ---- the last admin ---------------------------------------------------------------------------------
my $g2 = api($alice, POST => '/api/v1/groups', json => {name => 'last', member_ids => [$bob->{id}]})->json->{id};
$res = set_role($alice, $g2, $alice, 'member', 400, 'the only admin cannot demote herself while bob remains');
is($res->json('/detail'), 'The last admin cannot be demoted while the group has other members',
    'detail: The last admin cannot be demoted while the group has other members');
is(role_of($g2, $alice), 'admin', 'alice is still admin');
set_role($root, $g2, $alice, 'member', 400, 'nor may a superuser demote the last admin');
set_role($alice, $g2, $bob, 'admin', 200, 'alice promotes bob');
set_role($alice, $g2, $alice, 'member', 200, 'now alice may step down');
set_role($bob, $g2, $bob, 'member', 400, 'bob, the last admin now, may not');
is($s->psql("SELECT count(*) FROM group_members WHERE group_id = '$g2' AND role = 'admin'") + 0, 1,
    'the group still has one admin');
my $g3 = api($alice, POST => '/api/v1/groups', json => {name => 'alone'})->json->{id};
set_role($alice, $g3, $alice, 'member', 200, 'with no other member the last admin may step down (as she may leave)');

# ---- two admins stepping down at once: one of them stays admin ------------------------------------
# Each sees the other still admin; only the group row lock in chatd_group_set_role makes the
# second wait and then see the first's commit (without it both pass and the group has no admin).
my $ua = Chatd::WsClient::ua();
my $races = 0;
for my $i (1 .. 16) {
    my $gr = api($alice, POST => '/api/v1/groups', json => {name => "race $i", member_ids => [$bob->{id}, $carol->{id}]})->json->{id};
    set_role($alice, $gr, $_, 'admin', 200, "race $i: alice promotes $_->{name}") for $bob, $carol;
    set_role($alice, $gr, $alice, 'member', 200, "race $i: and steps down: bob and carol are the admins");
    my @p = map { $ua->patch_p($s->url("/api/v1/groups/$gr/members/$_->{id}"), $_->{auth}, json => {role => 'member'}) }
        $bob, $carol;
    my @codes;
    Mojo::Promise->all(@p)->then(sub { @codes = sort map { $_->[0]->res->code } @_ })->wait;
    $races++ if "@codes" eq '200 400';
    diag("race $i: @codes") unless "@codes" eq '200 400';
    is($s->psql("SELECT count(*) FROM group_members WHERE group_id = '$gr' AND role = 'admin'") + 0, 1,
        "race $i: exactly one admin is left (@codes)");
}
is($races, 16, 'every race: one step-down 200, the other 400');

Chatd::Test::done();

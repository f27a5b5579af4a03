# /api/v1/groups (API.md "Groups"): every route's success and error statuses: create (members,
# unknown ids skipped, validation), list (mine, most recently updated first, paged, embedded
# members capped), get (public to all, private 404 to outsiders), update, add member, remove
# member (leave, last admin), delete (creator only).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000,
    RATE_LIMIT_LOGIN_PER_MINUTE => 100000})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

sub register { $s->register(@_) }
my ($alice, $bob, $carol, $dave, $root) = map { register($_) } qw(alice bob carol dave root);
sql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");
my $NOBODY = '00000000-0000-4000-8000-000000000000';
my $G = $s->url('/api/v1/groups');
my @GROUP  = sort qw(id name description avatar_url creator_id is_private created_at updated_at creator members member_count);
my @MEMBER = sort qw(id group_id user_id role joined_at user);

# ---- create -------------------------------------------------------------------------------
$t->post_ok($G, $alice->{h}, json => {name => 'Tea party', description => 'Mad', avatar_url => 'https://x.example/t.png',
        member_ids => [$bob->{id}, $NOBODY, uc $carol->{id}, $bob->{id}]})
  ->status_is(201, 'create a public group: 201');
my $pub = $t->tx->res->json;
is_deeply([sort keys %$pub], \@GROUP, 'create: GroupRead keys');
is($pub->{name} . '|' . $pub->{description} . '|' . $pub->{avatar_url}, 'Tea party|Mad|https://x.example/t.png',
    'create: name, description, avatar_url');
ok(!$pub->{is_private}, 'create: is_private defaults to false');
is($pub->{creator_id}, $alice->{id}, 'create: creator_id is the caller');
is($pub->{creator}{username}, 'alice', 'create: creator embedded');
is($pub->{creator}{email}, 'alice@example.com', 'create: the caller sees their own email as creator');
is($pub->{member_count}, 3, 'create: the creator plus two known members (unknown and repeated ids skipped)');
is_deeply([sort map { "$_->{user}{username}:$_->{role}" } @{$pub->{members}}], [qw(alice:admin bob:member carol:member)],
    'create: the creator is admin, the others members');
is_deeply([sort keys %{$pub->{members}[0]}], \@MEMBER, 'create: GroupMemberRead keys');
is(scalar(grep { $_->{group_id} ne $pub->{id} } @{$pub->{members}}), 0, 'create: members carry the group id');
is(scalar(grep { defined $_->{user}{email} && $_->{user}{id} ne $alice->{id} } @{$pub->{members}}), 0,
    "create: other members' emails hidden");
like($pub->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'create: created_at ISO-8601');

$t->post_ok($G, $alice->{h}, json => {name => 'Mine', member_ids => [$alice->{id}]})->status_is(201, 'create listing myself in member_ids: 201')
  ->json_is('/member_count' => 1, 'create listing myself: one membership')
  ->json_is('/members/0/role' => 'admin', 'create listing myself: still admin');
$t->delete_ok("$G/" . $t->tx->res->json('/id'), $alice->{h})->status_is(204, 'delete the group listing myself');
$t->post_ok($G, $alice->{h}, json => {name => 'Secret', is_private => \1})->status_is(201, 'create a private group: 201')
  ->json_is('/is_private' => Mojo::JSON::true, 'create private: is_private true')
  ->json_is('/member_count' => 1, 'create private without member_ids: only the creator')
  ->json_is('/description' => undef, 'create private: description null');
my $priv = $t->tx->res->json;
is(sql("SELECT count(*) FROM groups"), 2, 'two groups stored');

for my $case ([{}, 'missing name'], [{name => ''}, 'empty name'], [{name => 'n' x 201}, '201-character name'],
    [{name => 'ok', description => 'd' x 1001}, 'description over 1000'],
    [{name => 'ok', avatar_url => 'a' x 501}, 'avatar_url over 500'],
    [{name => 'ok', is_private => 'yes'}, 'string is_private'],
    [{name => 'ok', member_ids => 'x'}, 'member_ids not a list'],
    [{name => 'ok', member_ids => ['nope']}, 'member_ids with a bad UUID'],
    [{name => 'ok', member_ids => [5]}, 'member_ids with a number'],
    [{name => 'ok', member_ids => [($NOBODY) x 201]}, '201 member_ids'],
    [{name => 7}, 'numeric name']) {
    $t->post_ok($G, $alice->{h}, json => $case->[0])->status_is(422, "create with $case->[1]: 422")
      ->json_has('/detail/0/loc', "create with $case->[1]: a validation list");
}
$t->post_ok($G, $alice->{h}, json => [1])->status_is(422, 'create with a non-object body: 422');
$t->post_ok($G, json => {name => 'x'})->status_is(401, 'create without a token: 401');
$t->post_ok($G, $alice->{h}, json => {name => 'big', member_ids => [($NOBODY) x 200]})
  ->status_is(201, 'create with 200 member_ids (all unknown): 201')->json_is('/member_count' => 1, 'create big: only the creator');
my $big_empty = $t->tx->res->json('/id');
is(sql("SELECT count(*) FROM groups WHERE name = 'ok'"), 0, 'no group was stored by a failed create');

# ---- get ----------------------------------------------------------------------------------
$t->get_ok("$G/$pub->{id}", $dave->{h})->status_is(200, 'get a public group as an outsider: 200')
  ->json_is('/id' => $pub->{id}, 'get public: the group')->json_is('/member_count' => 3, 'get public: member_count')
  ->json_is('/creator/email' => undef, "get public as an outsider: the creator's email hidden");
$t->get_ok("$G/$priv->{id}", $dave->{h})->status_is(404, 'get a private group as an outsider: 404')
  ->json_is('' => {detail => 'Group not found'}, 'get private as an outsider: Group not found');
$t->get_ok("$G/$priv->{id}", $alice->{h})->status_is(200, 'get a private group as its member: 200');
$t->get_ok("$G/$priv->{id}", $root->{h})->status_is(200, 'get a private group as a superuser: 200')
  ->json_is('/creator/email' => 'alice@example.com', 'get as a superuser: emails shown');
$t->get_ok("$G/$NOBODY", $alice->{h})->status_is(404, 'get an unknown group: 404');
$t->get_ok("$G/xyz", $alice->{h})->status_is(422, 'get a non-UUID group id: 422');
$t->get_ok("$G/$pub->{id}")->status_is(401, 'get without a token: 401');

# ---- list ---------------------------------------------------------------------------------
$t->get_ok($G, $alice->{h})->status_is(200, 'list: 200');
is_deeply([map { $_->{name} } @{$t->tx->res->json}], ['big', 'Secret', 'Tea party'], 'list: mine, most recently updated first');
$t->get_ok($G, $bob->{h})->status_is(200, 'list as bob: 200');
is_deeply([map { $_->{name} } @{$t->tx->res->json}], ['Tea party'], 'list as bob: only the groups bob is in');
$t->get_ok($G, $dave->{h})->status_is(200, 'list as an outsider: 200')->json_is('' => [], 'list as an outsider: []');
$t->get_ok("$G?limit=1&offset=1", $alice->{h})->status_is(200, 'list limit=1 offset=1: 200');
is_deeply([map { $_->{name} } @{$t->tx->res->json}], ['Secret'], 'list limit=1 offset=1: the second group');
$t->get_ok("$G?$_", $alice->{h})->status_is(422, "list $_: 422") for qw(limit=0 limit=101 offset=-1 limit=two);

# ---- update -------------------------------------------------------------------------------
my $before = $pub->{updated_at};
$t->patch_ok("$G/$pub->{id}", $alice->{h}, json => {name => 'Mad tea party', description => undef, creator_id => $dave->{id}})
  ->status_is(200, 'update as the creator: 200')
  ->json_is('/name' => 'Mad tea party', 'update: name changed')
  ->json_is('/description' => undef, 'update: null clears the description')
  ->json_is('/avatar_url' => 'https://x.example/t.png', 'update: avatar_url untouched')
  ->json_is('/creator_id' => $alice->{id}, 'update: creator_id cannot be changed')
  ->json_is('/member_count' => 3, 'update: members untouched');
cmp_ok($t->tx->res->json('/updated_at'), 'gt', $before, 'update: updated_at moves forward');
$t->get_ok($G, $alice->{h});
is($t->tx->res->json('/0/name'), 'Mad tea party', 'list: the updated group comes first');
$t->patch_ok("$G/$pub->{id}", $bob->{h}, json => {name => 'Bob rules'})->status_is(403, 'update as a plain member: 403')
  ->json_is('' => {detail => 'Only group admin or creator can update the group'}, 'update as a member: detail');
$t->patch_ok("$G/$pub->{id}", $dave->{h}, json => {name => 'x'})->status_is(403, 'update a public group as an outsider: 403');
$t->patch_ok("$G/$priv->{id}", $dave->{h}, json => {name => 'x'})->status_is(404, 'update a private group as an outsider: 404');
$t->patch_ok("$G/$priv->{id}", $root->{h}, json => {is_private => \0})->status_is(200, 'update as a superuser: 200')
  ->json_is('/is_private' => Mojo::JSON::false, 'update: is_private changed');
$t->patch_ok("$G/$NOBODY", $alice->{h}, json => {name => 'x'})->status_is(404, 'update an unknown group: 404');
for my $case ([{name => ''}, 'empty name'], [{name => undef}, 'null name'], [{name => 'n' x 201}, 'long name'],
    [{description => 'd' x 1001}, 'long description'], [{is_private => 1}, 'numeric is_private']) {
    $t->patch_ok("$G/$pub->{id}", $alice->{h}, json => $case->[0])->status_is(422, "update with $case->[1]: 422");
}
$t->patch_ok("$G/$pub->{id}", json => {name => 'x'})->status_is(401, 'update without a token: 401');

# ---- add member ---------------------------------------------------------------------------
$t->post_ok("$G/$pub->{id}/members?user_id=$dave->{id}", $alice->{h})->status_is(201, 'add a member as the creator: 201');
my $m = $t->tx->res->json;
is_deeply([sort keys %$m], \@MEMBER, 'add member: GroupMemberRead keys');
is("$m->{group_id} $m->{user_id} $m->{role}", "$pub->{id} $dave->{id} member", 'add member: group, user, role member');
is($m->{user}{username}, 'dave', 'add member: user embedded');
$t->post_ok("$G/$pub->{id}/members?user_id=$dave->{id}", $alice->{h})->status_is(400, 'add the same member again: 400')
  ->json_is('' => {detail => 'User is already a member'}, 'add again: detail');
$t->post_ok("$G/$pub->{id}/members?user_id=$NOBODY", $alice->{h})->status_is(404, 'add an unknown user: 404')
  ->json_is('' => {detail => 'User not found'}, 'add an unknown user: detail');
$t->post_ok("$G/$pub->{id}/members", $alice->{h})->status_is(422, 'add without user_id: 422')
  ->json_is('/detail/0/loc' => ['query', 'user_id'], 'add without user_id: loc');
$t->post_ok("$G/$pub->{id}/members?user_id=zz", $alice->{h})->status_is(422, 'add with a bad user_id: 422');
$t->post_ok("$G/$pub->{id}/members?user_id=$root->{id}", $bob->{h})->status_is(403, 'add as a plain member: 403')
  ->json_is('' => {detail => 'Only group admin can add members'}, 'add as a member: detail');
$t->post_ok("$G/$priv->{id}/members?user_id=$bob->{id}", $dave->{h})->status_is(403, 'add to a public-again group as an outsider: 403');
$t->patch_ok("$G/$priv->{id}", $alice->{h}, json => {is_private => \1})->status_is(200, 'make Secret private again');
$t->post_ok("$G/$priv->{id}/members?user_id=$bob->{id}", $dave->{h})->status_is(404, 'add to a private group as an outsider: 404');
$t->post_ok("$G/$NOBODY/members?user_id=$bob->{id}", $alice->{h})->status_is(404, 'add to an unknown group: 404')
  ->json_is('' => {detail => 'Group not found'}, 'add to an unknown group: detail');
$t->post_ok("$G/$priv->{id}/members?user_id=$carol->{id}", $root->{h})->status_is(201, 'add as a superuser: 201');
$t->post_ok("$G/$pub->{id}/members?user_id=$carol->{id}")->status_is(401, 'add without a token: 401');
is(sql("SELECT count(*) FROM group_members WHERE group_id = '$pub->{id}'"), 4, 'the public group has 4 members');

# ---- remove member ------------------------------------------------------------------------
$t->delete_ok("$G/$pub->{id}/members/$carol->{id}", $bob->{h})->status_is(403, 'remove another member as a plain member: 403')
  ->json_is('' => {detail => 'Only group admin or the user themselves can remove members'}, 'remove as a member: detail');
$t->delete_ok("$G/$pub->{id}/members/$carol->{id}", $alice->{h})->status_is(204, 'remove a member as the creator: 204');
$t->delete_ok("$G/$pub->{id}/members/$carol->{id}", $alice->{h})->status_is(404, 'remove a non-member: 404')
  ->json_is('' => {detail => 'Member not found'}, 'remove a non-member: detail');
$t->delete_ok("$G/$pub->{id}/members/$dave->{id}", $dave->{h})->status_is(204, 'leave a group (remove myself): 204');
$t->delete_ok("$G/$priv->{id}/members/$carol->{id}", $dave->{h})->status_is(404, 'remove from a private group as an outsider: 404');
$t->delete_ok("$G/$NOBODY/members/$carol->{id}", $alice->{h})->status_is(404, 'remove from an unknown group: 404');
$t->delete_ok("$G/$pub->{id}/members/xyz", $alice->{h})->status_is(422, 'remove a non-UUID user: 422');
$t->delete_ok("$G/$pub->{id}/members/$alice->{id}", $alice->{h})->status_is(400, 'the last admin leaving with members left: 400')
  ->json_is('' => {detail => 'The last admin cannot leave the group while it has other members'}, 'last admin: detail');
sql("UPDATE group_members SET role = 'admin' WHERE user_id = '$bob->{id}' AND group_id = '$pub->{id}'");
$t->delete_ok("$G/$pub->{id}/members/$alice->{id}", $alice->{h})->status_is(204, 'an admin leaves once another admin exists: 204');
$t->get_ok("$G/$pub->{id}", $alice->{h})->status_is(200, 'the creator still sees the group after leaving')
  ->json_is('/member_count' => 1, 'after leaving: bob alone');
$t->delete_ok("$G/$pub->{id}/members/$bob->{id}", $bob->{h})->status_is(204, 'the last admin may leave when alone: 204');
$t->delete_ok("$G/$pub->{id}/members/$bob->{id}")->status_is(401, 'remove without a token: 401');

# ---- embedded members are capped, member_count is not --------------------------------------
my @many = split /\n/, sql(q{INSERT INTO users (email, hashed_password, username)
    SELECT 'many' || i || '@example.com', 'x', 'many' || i FROM generate_series(1, 120) i RETURNING id});
is(scalar @many, 120, 'seed 120 users');
$t->post_ok($G, $alice->{h}, json => {name => 'Crowd', member_ids => \@many})->status_is(201, 'create a group of 121: 201')
  ->json_is('/member_count' => 121, 'crowd: member_count 121');
is(scalar @{$t->tx->res->json('/members')}, 121, 'crowd: create returns every member');
my $crowd = $t->tx->res->json('/id');
$t->get_ok($G, $alice->{h})->status_is(200, 'list with the crowd: 200');
my ($c) = grep { $_->{id} eq $crowd } @{$t->tx->res->json};
is(scalar @{$c->{members}}, 50, 'list: embedded members capped at 50');
is($c->{member_count}, 121, 'list: member_count is the full count');
$t->get_ok("$G/$crowd", $alice->{h})->status_is(200, 'get the crowd: 200');
is(scalar @{$t->tx->res->json('/members')}, 121, 'get: up to 500 members embedded');

# ---- delete -------------------------------------------------------------------------------
$t->delete_ok("$G/$priv->{id}", $carol->{h})->status_is(403, 'delete as a member: 403')
  ->json_is('' => {detail => 'Only the group creator can delete the group'}, 'delete as a member: detail');
$t->delete_ok("$G/$priv->{id}", $root->{h})->status_is(403, 'delete as a superuser (not the creator): 403');
$t->delete_ok("$G/$priv->{id}", $dave->{h})->status_is(404, 'delete a private group as an outsider: 404');
$t->delete_ok("$G/$priv->{id}")->status_is(401, 'delete without a token: 401');
$t->delete_ok("$G/$priv->{id}", $alice->{h})->status_is(204, 'delete as the creator: 204');
$t->get_ok("$G/$priv->{id}", $alice->{h})->status_is(404, 'get a deleted group: 404');
$t->delete_ok("$G/$priv->{id}", $alice->{h})->status_is(404, 'delete a deleted group: 404');
is(sql("SELECT count(*) FROM group_members WHERE group_id = '$priv->{id}'"), 0, 'delete: members removed with the group');
$t->delete_ok("$G/$big_empty", $alice->{h})->status_is(204, 'delete another group as the creator: 204');

Chatd::Test::done();

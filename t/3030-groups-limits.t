# Issue 8: adding people to groups needs no consent from them, so it is rate-limited per user
# (RATE_LIMIT_GROUPS_PER_HOUR creations, RATE_LIMIT_GROUP_MEMBERS_PER_HOUR members added, the
# member_ids of a creation counting one each; 429 with Retry-After, nothing created); and a
# member who left a group can no longer edit or delete their messages in it (403).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(env => {RATE_LIMIT_GROUPS_PER_HOUR => 3, RATE_LIMIT_GROUP_MEMBERS_PER_HOUR => 5})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }
my $G = $s->url('/api/v1/groups');

my ($alice, $bob, $carol, $dave, $erin, $frank) = map { $s->register($_) } qw(alice bob carol dave erin frank);

sub is_429 {
    my $title = shift;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->status_is(429, "$title: 429")->json_is('/detail' => 'Too Many Requests', "$title: detail");
    my $ra = $t->tx->res->headers->header('Retry-After') // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 3600, "$title: Retry-After within 1..3600") or diag("Retry-After: '$ra'");
}
sub groups_of { my $u = shift; return sql("SELECT count(*) FROM groups WHERE creator_id = '$u->{id}'") }

# ---- members added: 5 per hour for alice ----------------------------------------------------------
$t->post_ok($G, $alice->{h}, json => {name => 'g1', member_ids => [$bob->{id}, $carol->{id}, $dave->{id}]})
  ->status_is(201, 'alice creates g1 with 3 members (3 of 5 member adds)');
my $g1 = $t->tx->res->json('/id');
$t->post_ok($G, $alice->{h}, json => {name => 'g2', member_ids => [$bob->{id}, $carol->{id}, $dave->{id}]});
is_429('g2 with 3 more members (6 of 5)');
is(groups_of($alice), 1, 'the refused creation created nothing');
$t->post_ok("$G/$g1/members?user_id=$erin->{id}", $alice->{h});
is_429('adding erin to g1 after the budget is spent');
is(sql("SELECT count(*) FROM group_members WHERE group_id = '$g1' AND user_id = '$erin->{id}'"), 0,
    'the refused add added no one');

# ---- another user has their own budget; creations: 3 per hour ---------------------------------------
$t->post_ok("$G/$g1/members?user_id=$erin->{id}", $bob->{h})->status_is(403, 'bob (not an admin) cannot add: 403, not 429');
$t->post_ok($G, $bob->{h}, json => {name => "b$_"})->status_is(201, "bob creates group $_ of 3 (no members)") for 1 .. 3;
$t->post_ok($G, $bob->{h}, json => {name => 'b4'});
is_429('bob\'s fourth group in the hour');
is(groups_of($bob), 3, 'bob has three groups');
$t->post_ok($G, $carol->{h}, json => {name => 'c1', member_ids => [$frank->{id}]})
  ->status_is(201, 'carol\'s budget is her own: 201');
my $c1 = $t->tx->res->json('/id');
$t->post_ok("$G/$c1/members?user_id=$erin->{id}", $carol->{h})->status_is(201, 'carol adds erin to c1 (2 of 5)');

# ---- edit and delete after leaving a group -------------------------------------------------------
$t->post_ok($s->url('/api/v1/messages'), $frank->{h}, json => {content => 'frank was here', group_id => $c1})
  ->status_is(201, 'frank posts in c1');
my $m1 = $t->tx->res->json('/id');
$t->post_ok($s->url('/api/v1/messages'), $frank->{h}, json => {content => 'and here', group_id => $c1})
  ->status_is(201, 'frank posts again in c1');
my $m2 = $t->tx->res->json('/id');
$t->patch_ok($s->url("/api/v1/messages/$m1"), $frank->{h}, json => {content => 'edited while a member'})
  ->status_is(200, 'a member edits their group message');
$t->delete_ok("$G/$c1/members/$frank->{id}", $frank->{h})->status_is(204, 'frank leaves c1');
$t->patch_ok($s->url("/api/v1/messages/$m1"), $frank->{h}, json => {content => 'rewritten after leaving'})
  ->status_is(403, 'editing a group message after leaving is 403')
  ->json_is('/detail' => 'You are not a member of this group', 'edit after leaving: detail');
$t->delete_ok($s->url("/api/v1/messages/$m2"), $frank->{h})
  ->status_is(403, 'deleting a group message after leaving is 403')
  ->json_is('/detail' => 'You are not a member of this group', 'delete after leaving: detail');
is(sql("SELECT content FROM messages WHERE id = '$m1'"), 'edited while a member', 'the message kept its content');
is(sql("SELECT deleted_at IS NULL FROM messages WHERE id = '$m2'"), 't', 'the other message is not deleted');
$t->patch_ok($s->url("/api/v1/messages/$m1"), $carol->{h}, json => {content => 'not mine'})
  ->status_is(404, 'someone else\'s group message is still 404');

$t->post_ok("$G/$c1/members?user_id=$frank->{id}", $carol->{h})->status_is(201, 'frank is added back (3 of 5)');
$t->delete_ok($s->url("/api/v1/messages/$m2"), $frank->{h})->status_is(204, 'back in the group, frank may delete it');

Chatd::Test::done();

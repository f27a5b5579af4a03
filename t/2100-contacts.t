# /api/v1/contacts (API.md "Contacts"): add (201, yourself 400, unknown 404, twice 400,
# validation 422), list (ContactRead with the contact's online status, oldest first, paged,
# only mine), delete by the row id or by the contact's user id (204, 404, never another
# user's row).
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
my ($alice, $bob, $carol, $dave) = map { register($_) } qw(alice bob carol dave);
my $URL = $s->url('/api/v1/contacts');

# ---- add ----------------------------------------------------------------------------------
$t->post_ok($URL, $alice->{h}, json => {contact_id => $bob->{id}, nickname => 'Bobby'})
  ->status_is(201, 'add bob: 201');
my $c = $t->tx->res->json;
is_deeply([sort keys %$c], [sort qw(id user_id contact_id nickname created_at contact)], 'add: ContactRead keys');
is($c->{user_id}, $alice->{id}, 'add: user_id is the caller');
is($c->{contact_id}, $bob->{id}, 'add: contact_id is bob');
is($c->{nickname}, 'Bobby', 'add: nickname kept');
like($c->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'add: created_at ISO-8601');
is($c->{contact}{username}, 'bob', 'add: the contact is embedded as UserPublic');
is($c->{contact}{email}, undef, "add: the contact's email is hidden");
ok(exists $c->{contact}{is_online}, 'add: the contact carries is_online');

$t->post_ok($URL, $alice->{h}, json => {contact_id => uc $carol->{id}})->status_is(201, 'add carol by an upper-case id: 201')
  ->json_is('/contact_id' => $carol->{id}, 'add carol: contact_id normalised')
  ->json_is('/nickname' => undef, 'add carol: no nickname');
$t->post_ok($URL, $alice->{h}, json => {contact_id => $dave->{id}, nickname => undef})->status_is(201, 'add dave: 201');

$t->post_ok($URL, $alice->{h}, json => {contact_id => $bob->{id}})->status_is(400, 'add bob twice: 400')
  ->json_is('' => {detail => 'User is already in your contacts'}, 'add bob twice: detail');
$t->post_ok($URL, $alice->{h}, json => {contact_id => $alice->{id}})->status_is(400, 'add myself: 400')
  ->json_is('' => {detail => 'Cannot add yourself as a contact'}, 'add myself: detail');
$t->post_ok($URL, $alice->{h}, json => {contact_id => '00000000-0000-4000-8000-000000000000'})
  ->status_is(404, 'add an unknown user: 404')->json_is('' => {detail => 'User not found'}, 'add an unknown user: detail');
for my $case ([{}, 'missing contact_id'], [{contact_id => 'nope'}, 'bad contact_id'],
    [{contact_id => 7}, 'numeric contact_id'], [{contact_id => $bob->{id}, nickname => 'n' x 101}, 'nickname too long'],
    [{contact_id => $bob->{id}, nickname => 5}, 'numeric nickname']) {
    $t->post_ok($URL, $alice->{h}, json => $case->[0])->status_is(422, "add with $case->[1]: 422")
      ->json_like('/detail/0/loc/1' => qr/^(contact_id|nickname)$/, "add with $case->[1]: loc names the field");
}
$t->post_ok($URL, {%{$alice->{h}}, 'Content-Type' => 'application/json'} => '{')->status_is(422, 'add with malformed JSON: 422');
$t->post_ok($URL, json => {contact_id => $bob->{id}})->status_is(401, 'add without a token: 401');
$t->post_ok($URL, $bob->{h}, json => {contact_id => $alice->{id}})->status_is(201, 'bob adds alice: 201');

# ---- list ---------------------------------------------------------------------------------
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=true'), $carol->{h})->status_is(204, 'carol goes online');
$t->get_ok($URL, $alice->{h})->status_is(200, 'list: 200');
my $list = $t->tx->res->json;
is_deeply([map { $_->{contact}{username} } @$list], [qw(bob carol dave)], 'list: my contacts, oldest first');
is_deeply([map { $_->{contact}{is_online} ? 1 : 0 } @$list], [0, 1, 0], 'list: online status of each contact');
is(scalar(grep { $_->{user_id} ne $alice->{id} } @$list), 0, "list: only the caller's rows");
$t->get_ok("$URL?limit=1&offset=1", $alice->{h})->status_is(200, 'list page 2 of size 1: 200');
is_deeply([map { $_->{contact}{username} } @{$t->tx->res->json}], ['carol'], 'list limit=1 offset=1: carol');
$t->get_ok("$URL?offset=3", $alice->{h})->status_is(200, 'list past the end: 200')->json_is('' => [], 'list past the end: []');
$t->get_ok($URL, $dave->{h})->status_is(200, 'list with no contacts: 200')->json_is('' => [], 'list with no contacts: []');
for my $qs (qw(limit=0 limit=101 limit=x offset=-1 offset=100001)) {
    $t->get_ok("$URL?$qs", $alice->{h})->status_is(422, "list $qs: 422");
}
$t->get_ok($URL)->status_is(401, 'list without a token: 401');

# ---- delete -------------------------------------------------------------------------------
my ($bob_row, $carol_row) = map { $_->{id} } @$list;
$t->delete_ok("$URL/$bob_row", $carol->{h})->status_is(404, "delete another user's contact row: 404")
  ->json_is('' => {detail => 'Contact not found'}, "delete another user's contact row: detail");
is(sql("SELECT count(*) FROM contacts WHERE id = '$bob_row'"), 1, "delete another user's row: it is still there");
$t->delete_ok("$URL/$bob_row", $alice->{h})->status_is(204, 'delete by the row id: 204');
$t->delete_ok("$URL/$bob_row", $alice->{h})->status_is(404, 'delete the same row again: 404');
$t->delete_ok("$URL/$carol->{id}", $alice->{h})->status_is(204, "delete by the contact's user id: 204");
is(sql("SELECT count(*) FROM contacts WHERE user_id = '$alice->{id}'"), 1, 'after two deletes alice has one contact');
is(sql("SELECT count(*) FROM contacts WHERE user_id = '$bob->{id}'"), 1, "alice's deletes left bob's row alone");
$t->delete_ok("$URL/00000000-0000-4000-8000-000000000000", $alice->{h})->status_is(404, 'delete an unknown id: 404');
$t->delete_ok("$URL/not-a-uuid", $alice->{h})->status_is(422, 'delete a non-UUID: 422');
$t->delete_ok("$URL/$dave->{id}")->status_is(401, 'delete without a token: 401');
$t->get_ok($URL, $alice->{h})->json_is('/0/contact/username' => 'dave', 'list after deletes: only dave left');

Chatd::Test::done();

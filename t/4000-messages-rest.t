# REST messages (API.md "Messages"): send private and group, validation, authorization,
# lists with offset and seq cursors, read marks, edit, delete, chats and the inbox.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

sub register { $s->register(@_) }
sub send_msg {
    my ($from, $body, $status, $title) = @_;
    $t->post_ok($s->url('/api/v1/messages'), $from->{auth}, json => $body)->status_is($status, $title);
    return $t->tx->res->json;
}

my ($alice, $bob, $carol) = map { register($_) } qw(alice bob carol);

# ---- send ------------------------------------------------------------------------------
my $m1 = send_msg($alice, {content => 'hello bob', receiver_id => $bob->{id}}, 201, 'private message sent');
is($m1->{content}, 'hello bob', 'sent message has its content');
is($m1->{sender_id}, $alice->{id}, 'sender_id is the caller');
is($m1->{receiver_id}, $bob->{id}, 'receiver_id kept');
ok(!defined $m1->{group_id}, 'group_id null on a private message');
like($m1->{seq}, qr/^\d+$/, 'seq is an integer');
like($m1->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'created_at is ISO-8601 UTC with microseconds');
is($m1->{is_read}, 0, 'new message unread');
is($m1->{is_deleted}, 0, 'new message not deleted');
is($m1->{sender}{username}, 'alice', 'sender embedded');
is($m1->{sender}{email}, 'alice@example.com', 'the sender sees their own email');
is(sql("select count(*) from messages where id = '$m1->{id}'"), 1, 'message committed');

my $m2 = send_msg($bob, {content => 'hi alice', receiver_id => $alice->{id}}, 201, 'reply sent');
ok($m2->{seq} > $m1->{seq}, 'seq increases');

send_msg($alice, {content => 'x'}, 400, 'neither receiver nor group is 400');
is($t->tx->res->json('/detail'), 'Either receiver_id or group_id must be provided', 'neither: detail');
send_msg($alice, {content => 'x', receiver_id => $bob->{id}, group_id => $bob->{id}}, 422, 'both ids is 422');
send_msg($alice, {content => '', receiver_id => $bob->{id}}, 422, 'empty content is 422');
send_msg($alice, {content => 'x' x 5001, receiver_id => $bob->{id}}, 422, 'content over 5000 chars is 422');
send_msg($alice, {content => "\x{e9}" x 5000, receiver_id => $bob->{id}}, 201, '5000 two-byte characters are accepted');
send_msg($alice, {content => 'x', receiver_id => 'not-a-uuid'}, 422, 'bad receiver uuid is 422');
send_msg($alice, {content => 'x', receiver_id => '00000000-0000-4000-8000-000000000000'}, 404, 'unknown receiver is 404');
is($t->tx->res->json('/detail'), 'User not found', 'unknown receiver: detail');
send_msg($alice, {content => 'x', receiver_id => $bob->{id}, media_type => 'audio'}, 422, 'bad media_type is 422');
send_msg($alice, {content => 'x', receiver_id => $bob->{id}, media_url => 'http://evil.example/a.png', media_type => 'image'},
    422, 'foreign media_url is 422');
send_msg($alice, {content => 5, receiver_id => $bob->{id}}, 422, 'content of the wrong type is 422');
$t->post_ok($s->url('/api/v1/messages'), json => {content => 'x', receiver_id => $bob->{id}})
  ->status_is(401, 'send without a token is 401');

# ---- groups ----------------------------------------------------------------------------
my $gid = sql("insert into groups (name, creator_id) values ('g', '$alice->{id}') returning id");
sql("insert into group_members (group_id, user_id, role) values ('$gid', '$alice->{id}', 'admin'), ('$gid', '$bob->{id}', 'member')");
my $g1 = send_msg($alice, {content => 'hello group', group_id => $gid}, 201, 'group message sent');
is($g1->{group_id}, $gid, 'group message has its group');
send_msg($carol, {content => 'let me in', group_id => $gid}, 403, 'non-member cannot post to a group');
is($t->tx->res->json('/detail'), 'You are not a member of this group', 'non-member: detail');
send_msg($bob, {content => 'hi all', group_id => $gid}, 201, 'member posts to the group');

$t->get_ok($s->url("/api/v1/messages?group_id=$gid"), $bob->{auth})->status_is(200, 'member lists group messages');
is(scalar @{$t->tx->res->json}, 2, 'all group messages, not only the caller\'s (fixed)');
$t->get_ok($s->url("/api/v1/messages?group_id=$gid"), $carol->{auth})->status_is(403, 'non-member cannot list a group');

# ---- lists and cursors -----------------------------------------------------------------
my @ids = map { send_msg($alice, {content => "n$_", receiver_id => $bob->{id}}, 201, "bulk message $_")->{seq} } 1 .. 5;
$t->get_ok($s->url("/api/v1/messages?receiver_id=$bob->{id}&limit=3"), $alice->{auth})->status_is(200, 'conversation page');
my $page = $t->tx->res->json;
is(scalar @$page, 3, 'limit respected');
is_deeply([map { $_->{content} } @$page], [qw(n5 n4 n3)], 'newest first');
my $oldest = $page->[-1]{seq};
$t->get_ok($s->url("/api/v1/messages?receiver_id=$bob->{id}&before=$oldest&limit=2"), $alice->{auth})->status_is(200, 'before cursor');
is_deeply([map { $_->{content} } @{$t->tx->res->json}], [qw(n2 n1)], 'before returns the next older page');
$t->get_ok($s->url("/api/v1/messages?receiver_id=$bob->{id}&after=$ids[0]&limit=2"), $alice->{auth})->status_is(200, 'after cursor');
is_deeply([map { $_->{content} } @{$t->tx->res->json}], [qw(n3 n2)], 'after returns the oldest messages above the cursor, newest first');
$t->get_ok($s->url("/api/v1/messages?receiver_id=$bob->{id}&offset=1&limit=1"), $alice->{auth})->status_is(200, 'offset');
is($t->tx->res->json->[0]{content}, 'n4', 'offset skips the newest');
$t->get_ok($s->url("/api/v1/messages?receiver_id=$alice->{id}"), $carol->{auth})->status_is(200, 'a third user lists their (empty) conversation with alice');
is(scalar @{$t->tx->res->json}, 0, 'a third user sees none of alice and bob\'s messages');
for my $q ('limit=0', 'limit=101', 'offset=-1', 'before=x', 'receiver_id=nope') {
    $t->get_ok($s->url("/api/v1/messages?$q"), $alice->{auth})->status_is(422, "list with $q is 422");
}
$t->get_ok($s->url('/api/v1/messages'), $carol->{auth})->status_is(200, 'latest messages of the caller');
is(scalar @{$t->tx->res->json}, 0, 'carol has no messages');

# ---- read ------------------------------------------------------------------------------
$t->patch_ok($s->url("/api/v1/messages/$m1->{id}/read"), $alice->{auth})->status_is(404, 'the sender cannot mark a private message read');
$t->patch_ok($s->url("/api/v1/messages/$m1->{id}/read"), $carol->{auth})->status_is(404, 'a third user cannot mark it read');
is($t->tx->res->json('/detail'), 'Message not found', 'read by a stranger: detail');
$t->patch_ok($s->url("/api/v1/messages/$m1->{id}/read"), $bob->{auth})->status_is(204, 'the receiver marks it read');
is(sql("select is_read from messages where id = '$m1->{id}'"), 't', 'is_read stored');
$t->patch_ok($s->url("/api/v1/messages/$g1->{id}/read"), $bob->{auth})->status_is(204, 'a member marks a group message read');
is(sql("select count(*) from message_reads where message_id = '$g1->{id}' and user_id = '$bob->{id}'"), 1, 'group read stored per member');
$t->patch_ok($s->url("/api/v1/messages/$g1->{id}/read"), $carol->{auth})->status_is(404, 'a non-member cannot mark a group message read');
$t->patch_ok($s->url('/api/v1/messages/nope/read'), $bob->{auth})->status_is(422, 'read with a bad id is 422');

# ---- edit and delete -------------------------------------------------------------------
$t->patch_ok($s->url("/api/v1/messages/$m2->{id}"), $alice->{auth}, json => {content => 'hacked'})
  ->status_is(404, 'editing someone else\'s message is 404');
$t->patch_ok($s->url("/api/v1/messages/$m2->{id}"), $bob->{auth}, json => {content => 'hi alice!'})
  ->status_is(200, 'edit own message')->json_is('/content' => 'hi alice!', 'edited content')
  ->json_like('/edited_at' => qr/Z$/, 'edited_at set');
$t->patch_ok($s->url("/api/v1/messages/$m2->{id}"), $bob->{auth}, json => {content => ''})->status_is(422, 'edit to empty is 422');
$t->delete_ok($s->url("/api/v1/messages/$m2->{id}"), $alice->{auth})->status_is(404, 'deleting someone else\'s message is 404');
$t->delete_ok($s->url("/api/v1/messages/$m2->{id}"), $bob->{auth})->status_is(204, 'delete own message');
is(sql("select content || '|' || (deleted_at is not null) from messages where id = '$m2->{id}'"), '|true', 'content cleared and deleted_at set');
$t->get_ok($s->url("/api/v1/messages?receiver_id=$bob->{id}&limit=100"), $alice->{auth});
my ($del) = grep { $_->{id} eq $m2->{id} } @{$t->tx->res->json};
is($del->{is_deleted}, 1, 'deleted message listed as is_deleted');
$t->delete_ok($s->url("/api/v1/messages/$m2->{id}"), $bob->{auth})->status_is(404, 'deleting twice is 404');
$t->patch_ok($s->url("/api/v1/messages/$m2->{id}"), $bob->{auth}, json => {content => 'back'})->status_is(404, 'a deleted message cannot be edited');

# ---- chats and inbox -------------------------------------------------------------------
send_msg($carol, {content => 'hey alice', receiver_id => $alice->{id}}, 201, 'carol writes to alice');
$t->get_ok($s->url('/api/v1/contacts/chats'), $alice->{auth})->status_is(200, 'chats list');
my $chats = $t->tx->res->json;
is(scalar @$chats, 2, 'one row per partner');
is($chats->[0]{id}, $carol->{id}, 'most recent conversation first');
is($chats->[0]{last_message}{content}, 'hey alice', 'last message embedded');
is($chats->[0]{unread_count}, 1, 'unread count of that conversation');
is($chats->[0]{is_contact}, 0, 'is_contact false');
ok(!defined $chats->[0]{user}{email}, 'partner email hidden');

$t->get_ok($s->url('/api/v1/conversations'), $bob->{auth})->status_is(200, 'inbox');
my $inbox = $t->tx->res->json;
is(scalar @$inbox, 2, 'inbox has the private partner and the group');
my ($grow) = grep { $_->{kind} eq 'group' } @$inbox;
is($grow->{group}{id}, $gid, 'group row names the group');
is($grow->{unread_count}, 0, 'bob read the group message he did not send');
my ($urow) = grep { $_->{kind} eq 'user' } @$inbox;
is($urow->{peer}{id}, $alice->{id}, 'user row names the peer');
is($urow->{unread_count}, 5 + 1, 'unread private messages counted (5 bulk + 1 long)');
$t->get_ok($s->url('/api/v1/conversations?limit=1'), $bob->{auth})->status_is(200, 'inbox with limit');
is(scalar @{$t->tx->res->json}, 1, 'inbox limit respected');

Chatd::Test::done();

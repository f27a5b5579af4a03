# The admin API of API.md "Admin": stats; lists with search, sort, filters and paging (422 on
# an unknown sort or filter, never a hashed_password); one row; edit with registration's rules;
# create; set password (sessions end); deletes with their events; the audit log (never a
# password or hash in it); deactivation ends sessions and closes the user's WebSockets with
# 1008 "User inactive" within a second; users are never deleted (405).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Time::HiRes ();

my $s = Chatd::Test->new->start;
my $t = $s->t;
sub api { Chatd::WsClient::api($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $root  = Chatd::WsClient::register($s, 'root');
my $alice = Chatd::WsClient::register($s, 'alice');
my $bob   = Chatd::WsClient::register($s, 'bob');
sql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");

# ---- stats -------------------------------------------------------------------------------
my $res = api($root, GET => '/api/v1/admin/stats');
is($res->code, 200, 'stats: 200');
is_deeply([sort keys %{$res->json}], [sort qw(users active_users online groups messages messages_24h)],
    'stats: the six counters');
is($res->json->{users}, 3, 'stats: three users');

# ---- lists -------------------------------------------------------------------------------
$res = api($root, GET => '/api/v1/admin/users');
is($res->code, 200, 'users list: 200');
is($res->json->{total}, 3, 'users list: total 3');
is($res->json->{items}[0]{id}, $bob->{id}, 'users list: newest first by default');
ok(!grep({ exists $_->{hashed_password} } @{$res->json->{items}}), 'users list: no hashed_password');
unlike($res->body, qr/argon2/, 'users list: no hash anywhere in the body');

$res = api($root, GET => '/api/v1/admin/users?search=' . substr($alice->{name}, 0, 5));
is_deeply([map { $_->{id} } @{$res->json->{items}}], [$alice->{id}], 'users search: by username fragment');
$res = api($root, GET => '/api/v1/admin/users?search=BOB_');
is_deeply([map { $_->{id} } @{$res->json->{items}}], [$bob->{id}], 'users search: case-insensitive, _ literal');
$res = api($root, GET => '/api/v1/admin/users?search=%25');
is($res->json->{total}, 0, 'users search: % matches literally');
$res = api($root, GET => '/api/v1/admin/users?sort=username&limit=2');
is_deeply([map { $_->{username} } @{$res->json->{items}}], [sort($alice->{name}, $bob->{name})],
    'users: sort=username ascending, limit 2');
is($res->json->{total}, 3, 'users: total counts past the page');
$res = api($root, GET => '/api/v1/admin/users?sort=-username&offset=2');
is_deeply([map { $_->{username} } @{$res->json->{items}}], [$alice->{name}], 'users: sort=-username, offset 2');
$res = api($root, GET => '/api/v1/admin/users?is_superuser=true');
is_deeply([map { $_->{id} } @{$res->json->{items}}], [$root->{id}], 'users: filter is_superuser=true');

for my $case (['sort=password', 'sort'], ['sort=-hashed_password', 'sort'], ['hashed_password=x', 'hashed_password'],
    ['bogus=1', 'bogus'], ['is_active=maybe', 'is_active'], ['limit=0', 'limit'], ['limit=201', 'limit'],
    ['offset=-1', 'offset'])
{
    $res = api($root, GET => "/api/v1/admin/users?$case->[0]");
    is($res->code, 422, "users?$case->[0]: 422");
    is_deeply($res->json->{detail}[0]{loc}, ['query', $case->[1]], "users?$case->[0]: loc names $case->[1]");
}
$res = api($root, GET => '/api/v1/admin/group_members?search=x');
is($res->code, 422, 'group_members: search is not supported: 422');
$res = api($root, GET => '/api/v1/admin/nope');
is($res->code, 404, 'unknown model: 404');
is($res->json->{detail}, 'Not Found', 'unknown model: Not Found');
$res = api($root, GET => "/api/v1/admin/users/$alice->{id}");
is($res->code, 200, 'one user: 200');
is($res->json->{email}, "$alice->{name}\@example.com", 'one user: the row');
ok(!exists $res->json->{hashed_password}, 'one user: no hashed_password');
$res = api($root, GET => '/api/v1/admin/users/00000000-0000-4000-8000-000000000000');
is($res->code, 404, 'unknown user id: 404');
$res = api($root, GET => '/api/v1/admin/users/not-a-uuid');
is($res->code, 422, 'malformed id: 422');

# ---- edit --------------------------------------------------------------------------------
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {first_name => 'Alice', bio => 'hi',
    is_verified => Mojo::JSON::true, hashed_password => 'x', is_online => Mojo::JSON::true});
is($res->code, 200, 'edit: 200');
is($res->json->{first_name}, 'Alice', 'edit: first_name stored');
is($res->json->{is_verified}, Mojo::JSON::true, 'edit: is_verified stored');
is(sql("SELECT hashed_password <> 'x' FROM users WHERE id = '$alice->{id}'"), 't', 'edit: hashed_password ignored');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {username => uc $bob->{name}});
is($res->code, 400, 'edit: a taken username (other case): 400');
is($res->json->{detail}, 'Username already taken', 'edit: Username already taken');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {email => "$bob->{name}\@example.com"});
is($res->json->{detail}, 'Email already registered', 'edit: Email already registered');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {email => 'not-an-email'});
is($res->code, 422, 'edit: a malformed email: 422');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {username => 'a b'});
is($res->code, 422, 'edit: a malformed username: 422');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {is_active => 'no'});
is($res->code, 422, 'edit: a non-boolean is_active: 422');
for my $f (qw(is_active is_superuser)) {
    $res = api($root, PATCH => "/api/v1/admin/users/$root->{id}", json => {$f => Mojo::JSON::false});
    is($res->code, 400, "self: $f false is 400");
}
$res = api($root, PATCH => '/api/v1/admin/users/00000000-0000-4000-8000-000000000000', json => {bio => 'x'});
is($res->code, 404, 'edit: unknown user: 404');

# ---- deactivate: sessions end, sockets close with 1008 within a second ------------------
my $ws1 = Chatd::WsClient->connect_user($s, $alice, 'alice socket 1');
my $ws2 = Chatd::WsClient->connect_user($s, $alice, 'alice socket 2');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {is_active => Mojo::JSON::false});
my $t0 = Time::HiRes::time();
is($res->code, 200, 'deactivate: 200');
is($res->json->{is_active}, Mojo::JSON::false, 'deactivate: is_active false');
for my $c ($ws1, $ws2) {
    ok($c->wait_closed(10), 'deactivate: socket closed');
    is($c->close_code, 1008, 'deactivate: 1008');
    is($c->close_reason, 'User inactive', 'deactivate: User inactive');
}
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '<', 1.0, sprintf('deactivate: both sockets closed within a second (%.3f s)', $took));
is(api($alice, GET => '/api/v1/users/me')->code, 403, 'deactivate: the access token is refused (403 inactive)');
is(sql("SELECT count(*) FROM auth_sessions WHERE user_id = '$alice->{id}' AND revoked_at IS NULL"), 0,
    'deactivate: every session revoked');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/refresh'), json => {refresh_token => $alice->{refresh}})->res;
isnt($res->code, 200, 'deactivate: the refresh token is refused');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'), json => {username => $alice->{name}, password => 'password123'})->res;
is($res->code, 403, 'deactivate: login answers 403 inactive');
$res = api($root, PATCH => "/api/v1/admin/users/$alice->{id}", json => {is_active => Mojo::JSON::true});
is($res->json->{is_active}, Mojo::JSON::true, 'reactivate: is_active true');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'), json => {username => $alice->{name}, password => 'password123'})->res;
is($res->code, 200, 'reactivate: login works again');
$alice->{auth} = {Authorization => 'Bearer ' . $res->json->{access_token}};

# ---- create, set password ----------------------------------------------------------------
my $NEWPW = 'Secret-New-Pass-42';
$res = api($root, POST => '/api/v1/admin/users', json => {email => 'carol@example.com', username => 'carol',
    password => $NEWPW, is_verified => Mojo::JSON::true});
is($res->code, 201, 'create: 201');
my $carol = $res->json->{id};
is($res->json->{is_verified}, Mojo::JSON::true, 'create: is_verified as asked');
is($res->json->{is_superuser}, Mojo::JSON::false, 'create: not a superuser by default');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'), json => {username => 'carol', password => $NEWPW})->res;
is($res->code, 200, 'create: the new user logs in');
my $carol_auth = {auth => {Authorization => 'Bearer ' . $res->json->{access_token}}};
$res = api($root, POST => '/api/v1/admin/users', json => {email => 'CAROL@example.com', username => 'carol2', password => $NEWPW});
is($res->json->{detail}, 'Email already registered', 'create: duplicate email (other case): 400');
$res = api($root, POST => '/api/v1/admin/users', json => {email => 'c3@example.com', username => 'c3', password => 'short'});
is($res->code, 422, 'create: a 5-character password: 422');
$res = api($root, POST => '/api/v1/admin/users', json => {email => 'c3@example.com', password => $NEWPW});
is($res->code, 422, 'create: no username: 422');

my $PW2 = 'Another-Secret-77';
$res = api($root, PUT => "/api/v1/admin/users/$carol/password", json => {password => $PW2});
is($res->code, 204, 'set password: 204');
is(api($carol_auth, GET => '/api/v1/users/me')->code, 401, "set password: the user's old token is refused");
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'), json => {username => 'carol', password => $NEWPW})->res;
is($res->code, 401, 'set password: the old password is refused');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'), json => {username => 'carol', password => $PW2})->res;
is($res->code, 200, 'set password: the new one works');
$res = api($root, PUT => "/api/v1/admin/users/$carol/password", json => {password => 'x'});
is($res->code, 422, 'set password: too short: 422');
$res = api($root, PUT => '/api/v1/admin/users/00000000-0000-4000-8000-000000000000/password', json => {password => $PW2});
is($res->code, 404, 'set password: unknown user: 404');
$res = api($root, DELETE => "/api/v1/admin/users/$carol");
is($res->code, 405, 'users are never deleted: 405');

# ---- messages, groups, members, contacts -------------------------------------------------
$res = api($alice, POST => '/api/v1/messages', json => {content => 'findme secret plan', receiver_id => $bob->{id}});
is($res->code, 201, 'alice sends bob a message');
my $msg = $res->json->{id};
$res = api($root, GET => '/api/v1/admin/messages?search=secret%20plan');
is_deeply([map { $_->{id} } @{$res->json->{items}}], [$msg], 'messages: search by content');
$res = api($root, GET => "/api/v1/admin/messages?sender_id=$bob->{id}");
is($res->json->{total}, 0, 'messages: filter sender_id');
$res = api($root, GET => "/api/v1/admin/messages?receiver_id=$bob->{id}&is_read=false");
is($res->json->{total}, 1, 'messages: filters receiver_id and is_read');
my $bws = Chatd::WsClient->connect_user($s, $bob, 'bob socket');
$res = api($root, DELETE => "/api/v1/admin/messages/$msg");
is($res->code, 204, 'delete message: 204');
ok(Chatd::WsClient::wait_until(sub { $bws->grep_frames(sub { $_->{type} eq 'message_deleted' }) }, 10), 'delete message: message_deleted reaches bob');
$res = api($root, GET => "/api/v1/admin/messages/$msg");
is($res->json->{content}, '', 'delete message: content cleared');
is($res->json->{is_deleted}, Mojo::JSON::true, 'delete message: is_deleted');

$res = api($alice, POST => '/api/v1/groups', json => {name => 'Band', member_ids => [$bob->{id}]});
is($res->code, 201, 'alice creates a group with bob');
my $group = $res->json->{id};
$res = api($root, PATCH => "/api/v1/admin/groups/$group", json => {name => 'Band 2', is_private => Mojo::JSON::true});
is($res->code, 200, 'edit group: 200');
is($res->json->{name}, 'Band 2', 'edit group: name');
is($res->json->{member_count}, 2, 'edit group: member_count');
$res = api($root, PATCH => "/api/v1/admin/groups/$group", json => {name => ''});
is($res->code, 422, 'edit group: empty name: 422');
$res = api($root, GET => '/api/v1/admin/groups?search=band');
is($res->json->{total}, 1, 'groups: search by name');
$res = api($root, GET => "/api/v1/admin/group_members?group_id=$group&role=member");
is($res->json->{total}, 1, 'group_members: filters group_id and role');
my $bm = $res->json->{items}[0]{id};
$res = api($root, GET => "/api/v1/admin/group_members?group_id=$group&role=owner");
is($res->code, 422, 'group_members: an unknown role value: 422');
$res = api($root, PATCH => "/api/v1/admin/group_members/$bm", json => {role => 'admin'});
is($res->code, 200, 'member role: 200');
is($res->json->{role}, 'admin', 'member role: admin');
ok(Chatd::WsClient::wait_until(sub { $bws->grep_frames(sub { $_->{type} eq 'member_role_changed' }) }, 10), 'member role: member_role_changed reaches bob');
$res = api($root, PATCH => "/api/v1/admin/group_members/$bm", json => {role => 'boss'});
is($res->code, 422, 'member role: an unknown role: 422');
$res = api($root, DELETE => "/api/v1/admin/group_members/$bm");
is($res->code, 204, 'remove member: 204');
ok(Chatd::WsClient::wait_until(sub { $bws->grep_frames(sub { $_->{type} eq 'member_removed' }) }, 10), 'remove member: member_removed reaches bob');
my $am = sql("SELECT id FROM group_members WHERE group_id = '$group'");
$res = api($root, DELETE => "/api/v1/admin/group_members/$am");
is($res->code, 204, 'the last member (an admin alone) may be removed');

$res = api($alice, POST => '/api/v1/contacts', json => {contact_id => $bob->{id}, nickname => 'bobby'});
is($res->code, 201, 'alice adds bob as a contact');
$res = api($root, GET => "/api/v1/admin/contacts?user_id=$alice->{id}&search=bob");
is($res->json->{total}, 1, 'contacts: filter user_id, search nickname');
$res = api($root, DELETE => "/api/v1/admin/contacts/" . $res->json->{items}[0]{id});
is($res->code, 204, 'delete contact: 204');
$res = api($root, DELETE => "/api/v1/admin/groups/$group");
is($res->code, 204, 'delete group: 204');
is(sql("SELECT count(*) FROM groups WHERE id = '$group'"), 0, 'delete group: gone');
$res = api($root, DELETE => "/api/v1/admin/groups/$group");
is($res->code, 404, 'delete group again: 404');

# ---- the audit log -----------------------------------------------------------------------
$res = api($root, GET => '/api/v1/admin/audit?limit=200');
is($res->code, 200, 'audit: 200');
my @rows = @{$res->json->{items}};
is($rows[0]{action} . ' ' . $rows[0]{model}, 'delete groups', 'audit: newest first');
my %seen = map { ("$_->{action} $_->{model}" => 1) } @rows;
for my $want ('update users', 'create users', 'set_password users', 'delete messages', 'update groups',
    'update group_members', 'delete group_members', 'delete contacts', 'delete groups')
{
    ok($seen{$want}, "audit: has '$want'");
}
my ($edit) = grep { $_->{action} eq 'update' && $_->{model} eq 'users' && $_->{changes}{first_name} } @rows;
is_deeply($edit->{changes}{first_name}, {old => undef, new => 'Alice'}, 'audit: old and new values of an edit');
is($edit->{admin_id}, $root->{id}, 'audit: the admin');
is($edit->{object_id}, $alice->{id}, 'audit: the object');
unlike($res->body, qr/\Q$NEWPW\E|\Q$PW2\E|argon2|hashed_password/, 'audit: no password or hash in the list');
is(sql("SELECT count(*) FROM admin_audit WHERE changes::text ~ 'argon2|hashed_password|Secret-New|Another-Secret'"), 0,
    'audit: no password or hash in any admin_audit row');
$res = api($root, GET => '/api/v1/admin/audit?sort=action');
is($res->code, 422, 'audit: unknown sort: 422');
$res = api($root, GET => "/api/v1/admin/audit?object_id=$carol");
is($res->json->{total}, 2, 'audit: filter object_id');
is(api($root, GET => '/api/v1/admin/audit/export.csv')->code, 404, 'audit: no export path');

Chatd::Test::done();

# /api/v1/users (API.md "Users"): the caller's profile (GET/PATCH me, privilege fields
# ignored, username clash), another user by id with the email hidden from everyone but
# themself and superusers, 404/422, and the online flag.
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

my @PUBLIC = sort qw(id email username first_name last_name avatar_url bio is_online last_seen
  is_superuser);

sub register { $s->register(@_) }

my $alice = register('alice', first_name => 'Alice', last_name => 'Liddell');
my $bob   = register('bob');
my $root  = register('root');
sql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");

# ---- GET /api/v1/users/me ---------------------------------------------------------------
$t->get_ok($s->url('/api/v1/users/me'), $alice->{h})->status_is(200, 'GET me: 200')
  ->header_like('Content-Type' => qr{^application/json}, 'GET me: JSON');
my $me = $t->tx->res->json;
is_deeply([sort keys %$me], \@PUBLIC, 'GET me: exactly the UserPublic keys');
is($me->{id}, $alice->{id}, 'GET me: my id');
is($me->{email}, 'alice@example.com', 'GET me: my own email is shown');
is("$me->{first_name} $me->{last_name}", 'Alice Liddell', 'GET me: names');
ok(!$me->{is_online} && !defined $me->{last_seen}, 'GET me: offline, never seen');
$t->get_ok($s->url('/api/v1/users/me'))->status_is(401, 'GET me without a token: 401');

# ---- PATCH /api/v1/users/me -------------------------------------------------------------
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h},
    json => {first_name => 'Alicia', bio => 'Down the rabbit hole', avatar_url => 'https://x.example/a.png',
        is_superuser => \1, is_active => \0, is_verified => \1, email => 'evil@example.com',
        password => 'newpassword1', hashed_password => 'x'})
  ->status_is(200, 'PATCH me: 200')
  ->json_is('/first_name' => 'Alicia', 'PATCH me: first_name changed')
  ->json_is('/last_name' => 'Liddell', 'PATCH me: last_name untouched')
  ->json_is('/bio' => 'Down the rabbit hole', 'PATCH me: bio changed')
  ->json_is('/avatar_url' => 'https://x.example/a.png', 'PATCH me: avatar_url changed')
  ->json_is('/email' => 'alice@example.com', 'PATCH me: email field ignored')
  ->json_is('/is_superuser' => Mojo::JSON::false, 'PATCH me: is_superuser field ignored');
is(sql("SELECT is_superuser::text || is_active::text || is_verified::text || email FROM users
        WHERE id = '$alice->{id}'"), 'falsetruefalsealice@example.com',
    'PATCH me: privileges and email unchanged in the database');
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice', password => 'password123'})
  ->status_is(200, 'PATCH me: the password field was ignored (old password still works)');

$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {bio => undef, username => 'Alice.L'})
  ->status_is(200, 'PATCH me: rename and clear bio')
  ->json_is('/username' => 'Alice.L', 'PATCH me: username changed')
  ->json_is('/bio' => undef, 'PATCH me: null clears bio');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {username => 'alice.l'})
  ->status_is(200, 'PATCH me: changing only the case of my own username is allowed');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {username => 'BOB'})
  ->status_is(400, 'PATCH me: a username taken case-insensitively is 400')
  ->json_is('' => {detail => 'Username already taken'}, 'PATCH me: Username already taken');
for my $case (['ab', 'too short'], ['x' x 51, 'too long'], ['bad name', 'bad characters'],
    [undef, 'null'], [42, 'a number']) {
    $t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {username => $case->[0]})
      ->status_is(422, "PATCH me: username $case->[1] is 422")
      ->json_is('/detail/0/loc' => ['body', 'username'], "PATCH me: username $case->[1] loc");
}
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {bio => 'b' x 501})
  ->status_is(422, 'PATCH me: bio over 500 characters is 422');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {first_name => 'f' x 101})
  ->status_is(422, 'PATCH me: first_name over 100 characters is 422');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {avatar_url => 'a' x 501})
  ->status_is(422, 'PATCH me: avatar_url over 500 characters is 422');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => [1])
  ->status_is(422, 'PATCH me: a non-object body is 422');
$t->patch_ok($s->url('/api/v1/users/me'), $alice->{h}, json => {})
  ->status_is(200, 'PATCH me: an empty object changes nothing')
  ->json_is('/username' => 'alice.l', 'PATCH me: empty object keeps the username');

# ---- GET /api/v1/users/{id} -------------------------------------------------------------
$t->get_ok($s->url("/api/v1/users/$alice->{id}"), $bob->{h})->status_is(200, 'GET user by id: 200')
  ->json_is('/id' => $alice->{id}, 'GET user by id: the right user')
  ->json_is('/username' => 'alice.l', 'GET user by id: username')
  ->json_is('/email' => undef, "GET user by id: another user's email is null");
is_deeply([sort keys %{$t->tx->res->json}], \@PUBLIC, 'GET user by id: UserPublic keys');
$t->get_ok($s->url("/api/v1/users/$alice->{id}"), $alice->{h})
  ->json_is('/email' => 'alice@example.com', 'GET user by id: my own email is shown');
$t->get_ok($s->url("/api/v1/users/$alice->{id}"), $root->{h})->status_is(200, 'GET user by id as superuser: 200')
  ->json_is('/email' => 'alice@example.com', 'GET user by id: a superuser sees the email');
$t->get_ok($s->url('/api/v1/users/' . uc $alice->{id}), $bob->{h})
  ->status_is(200, 'GET user by id: an upper-case UUID is accepted');
$t->get_ok($s->url('/api/v1/users/00000000-0000-4000-8000-000000000000'), $bob->{h})
  ->status_is(404, 'GET unknown user: 404')->json_is('' => {detail => 'User not found'}, 'GET unknown user: detail');
$t->get_ok($s->url('/api/v1/users/not-a-uuid'), $bob->{h})->status_is(422, 'GET user by bad id: 422')
  ->json_is('/detail/0/type' => 'uuid_parsing', 'GET user by bad id: uuid_parsing');
$t->get_ok($s->url("/api/v1/users/$alice->{id}"))->status_is(401, 'GET user by id without a token: 401');
$t->delete_ok($s->url('/api/v1/users/me'), $alice->{h})->status_is(405, 'DELETE /api/v1/users/me: 405');

# ---- PATCH /api/v1/users/me/online ------------------------------------------------------
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=true'), $bob->{h})->status_is(204, 'online=true: 204');
is(sql("SELECT is_online::text || (last_seen IS NULL)::text FROM users WHERE id = '$bob->{id}'"), 'truetrue',
    'online=true: is_online set, last_seen untouched');
$t->get_ok($s->url('/api/v1/users/me'), $bob->{h})->json_is('/is_online' => Mojo::JSON::true, 'GET me after online: is_online');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=false'), $bob->{h})->status_is(204, 'online=false: 204');
$t->get_ok($s->url("/api/v1/users/$bob->{id}"), $alice->{h})
  ->json_is('/is_online' => Mojo::JSON::false, 'online=false: others see offline')
  ->json_like('/last_seen' => qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'online=false: last_seen set, ISO-8601 with microseconds');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=1'), $bob->{h})->status_is(204, 'online=1 is read as true');
$t->patch_ok($s->url('/api/v1/users/me/online'), $bob->{h})->status_is(422, 'online without is_online: 422')
  ->json_is('/detail/0/loc' => ['query', 'is_online'], 'online without is_online: loc');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=maybe'), $bob->{h})->status_is(422, 'online=maybe: 422')
  ->json_is('/detail/0/type' => 'bool_parsing', 'online=maybe: bool_parsing');
$t->patch_ok($s->url('/api/v1/users/me/online?is_online=true'))->status_is(401, 'online without a token: 401');

Chatd::Test::done();

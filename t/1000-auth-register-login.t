# The cookie-based JSON login of API.md "Authentication": /api/v1/auth/register and
# /api/v1/auth/login, their error details, the cookie attributes byte by byte (with and
# without DEBUG), and how a request authenticates (Bearer, else the access_token cookie).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my %LIMITS = (RATE_LIMIT_LOGIN_PER_MINUTE => 1000, RATE_LIMIT_REGISTER_PER_HOUR => 1000);
my $s = Chatd::Test->new(env => {%LIMITS})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $PW   = 'password123';
my @AUTH = sort qw(access_token refresh_token token_type user);
my @USER = sort qw(id email username first_name last_name avatar_url is_active is_verified is_superuser);

sub register_ok {
    my ($body, $title) = @_;
    $t->post_ok($s->url('/api/v1/auth/register'), json => $body)->status_is(201, $title);
    return $t->tx->res->json;
}
sub register_fails {
    my ($body, $status, $detail, $title) = @_;
    $t->post_ok($s->url('/api/v1/auth/register'), json => $body)->status_is($status, "$title: $status");
    if (defined $detail) { is($t->tx->res->json('/detail'), $detail, "$title: detail") }
    else                 { is(ref $t->tx->res->json('/detail'), 'ARRAY', "$title: a validation list") }
}
sub login {
    my ($t2, $user, $pw, $status, $title) = @_;
    $t2->post_ok($s->url('/api/v1/auth/login'), json => {username => $user, password => $pw})
      ->status_is($status, $title);
    return $t2->tx->res->json;
}
sub cookies { return @{$_[0]->tx->res->headers->every_header('Set-Cookie')} }

# ---- register ----------------------------------------------------------------------------
my $alice = register_ok({email => 'alice@example.com', username => 'alice', password => $PW,
        first_name => 'Alice', last_name => 'Liddell', is_superuser => \1, is_verified => \1, is_active => \0},
    'register alice: 201');
is_deeply([sort keys %$alice], \@AUTH, 'register: access_token, refresh_token, token_type, user');
is($alice->{token_type}, 'bearer', 'register: token_type bearer');
is_deeply([sort keys %{$alice->{user}}], \@USER, 'register: the user object has the documented keys');
is($alice->{user}{email}, 'alice@example.com', 'register: user email');
is("$alice->{user}{first_name} $alice->{user}{last_name}", 'Alice Liddell', 'register: names kept');
is($alice->{user}{is_superuser} . $alice->{user}{is_verified} . $alice->{user}{is_active}, '001',
    'register: privilege fields in the body are ignored');
is(sql("select is_superuser or is_verified or not is_active from users where username = 'alice'"), 'f',
    'register: stored privileges are the defaults');

my @c = cookies($t);
is(scalar @c, 2, 'register: two Set-Cookie headers');
is($c[0], "access_token=$alice->{access_token}; HttpOnly; Max-Age=900; Path=/; SameSite=Lax; Secure",
    'register: access_token cookie byte by byte');
is($c[1], "refresh_token=$alice->{refresh_token}; HttpOnly; Max-Age=604800; Path=/; SameSite=Lax; Secure",
    'register: refresh_token cookie byte by byte');

register_fails({email => 'ALICE@EXAMPLE.COM', username => 'alice2', password => $PW}, 400,
    'Email already registered', 'register: same email in upper case');
register_fails({email => 'alice2@example.com', username => 'Alice', password => $PW}, 400,
    'Username already taken', 'register: same username in other case');
register_fails({email => 'not-an-email', username => 'bad1', password => $PW}, 422, undef, 'register: invalid email');
is($t->tx->res->json('/detail/0/loc/1'), 'email', 'register: invalid email names the field');
register_fails({email => 'a@b', username => 'bad2', password => $PW}, 422, undef, 'register: email without a dot');
register_fails({email => 'short@example.com', username => 'short', password => 'seven77'}, 422, undef,
    'register: 7-character password');
is($t->tx->res->json('/detail/0/loc/1'), 'password', 'register: short password names the field');
register_fails({email => 'long@example.com', username => 'u' x 51, password => $PW}, 422, undef,
    'register: 51-character username');
register_fails({email => 'sp@example.com', username => 'has space', password => $PW}, 422, undef,
    'register: username with a space');
register_fails({email => 'ab@example.com', username => 'ab', password => $PW}, 422, undef,
    'register: 2-character username');
register_fails({email => 'pw@example.com', username => 'pwlong', password => 'p' x 129}, 422, undef,
    'register: 129-character password');
register_fails({email => 'nopw@example.com', username => 'nopw'}, 422, undef, 'register: missing password');
register_fails({email => 'fn@example.com', username => 'fnlong', password => $PW, first_name => 'f' x 101}, 422, undef,
    'register: 101-character first_name');
$t->post_ok($s->url('/api/v1/auth/register'), {'Content-Type' => 'application/json'}, '{"email":')
  ->status_is(422, 'register: malformed JSON 422');
is(sql("select count(*) from users"), 1, 'register: no refused registration was stored');
my $u50 = register_ok({email => 'fifty@example.com', username => 'u' x 50, password => 'p' x 128},
    'register: 50-character username and 128-character password: 201');

# ---- login -------------------------------------------------------------------------------
my $l = login($t, 'alice', $PW, 200, 'login by username: 200');
is_deeply([sort keys %$l], \@AUTH, 'login: access_token, refresh_token, token_type, user');
is($l->{user}{id}, $alice->{user}{id}, 'login: the user object is alice');
@c = cookies($t);
is($c[0], "access_token=$l->{access_token}; HttpOnly; Max-Age=900; Path=/; SameSite=Lax; Secure",
    'login: access_token cookie byte by byte');
is($c[1], "refresh_token=$l->{refresh_token}; HttpOnly; Max-Age=604800; Path=/; SameSite=Lax; Secure",
    'login: refresh_token cookie byte by byte');
is(login($t, 'ALICE@example.com', $PW, 200, 'login by email in other case: 200')->{user}{username}, 'alice',
    'login by email: alice');
is(login($t, 'alice', 'wrong-password', 401, 'login with a wrong password: 401')->{detail},
    'Incorrect username or password', 'login wrong password: detail');
is($t->tx->res->headers->www_authenticate, 'Bearer', 'login wrong password: WWW-Authenticate');
is(login($t, 'nobody', $PW, 401, 'login of an unknown user: 401')->{detail}, 'Incorrect username or password',
    'login unknown user: same detail');
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice'})->status_is(422, 'login without password: 422');
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice', password => 5})
  ->status_is(422, 'login with a numeric password: 422');
ok(!cookies($t), 'a failed login sets no cookie');

my $bob = register_ok({email => 'bob@example.com', username => 'bob', password => $PW}, 'register bob: 201');
sql("update users set is_active = false where username = 'bob'");
is(login($t, 'bob', $PW, 403, 'login of an inactive user: 403')->{detail}, 'User account is inactive',
    'login inactive: detail');
is(login($t, 'bob', 'wrong-password', 401, 'inactive user with a wrong password: 401')->{detail},
    'Incorrect username or password', 'inactive user with a wrong password: detail');

# ---- authenticating a request ------------------------------------------------------------
my $bearer = {Authorization => "Bearer $l->{access_token}"};
$t->get_ok($s->url('/users/me'), $bearer)->status_is(200, 'users/me by Bearer: 200');
is($t->tx->res->json('/id'), $alice->{user}{id}, 'users/me by Bearer: alice');
$t->get_ok($s->url('/users/me'), {Cookie => "access_token=$l->{access_token}"})
  ->status_is(200, 'users/me by the access_token cookie: 200');
is($t->tx->res->json('/username'), 'alice', 'users/me by cookie: alice');
$t->get_ok($s->url('/users/me'), {Cookie => "access_token=\"$l->{access_token}\""})
  ->status_is(200, 'users/me by a quoted cookie value: 200');
$t->get_ok($s->url('/users/me'), {%$bearer, Cookie => 'access_token=stale.garbage.value'})
  ->status_is(200, 'a valid Bearer beats a stale cookie');
is($t->tx->res->json('/id'), $alice->{user}{id}, 'Bearer over stale cookie: alice');
$t->get_ok($s->url('/users/me'), {%$bearer, Cookie => "access_token=$u50->{access_token}"})
  ->status_is(200, 'Bearer and another user\'s cookie: 200');
is($t->tx->res->json('/id'), $alice->{user}{id}, 'the Bearer user wins over the cookie user');
$t->get_ok($s->url('/users/me'), {Authorization => 'Bearer bad.token.here', Cookie => "access_token=$l->{access_token}"})
  ->status_is(200, 'an invalid Bearer falls back to a valid cookie (API.md: header when valid, else cookie)');
is($t->tx->res->json('/id'), $alice->{user}{id}, 'invalid Bearer, valid cookie: the cookie user');
$t->get_ok($s->url('/users/me'), {Authorization => 'Bearer bad.token.here'})
  ->status_is(401, 'an invalid Bearer without a cookie: 401');
is($t->tx->res->json('/detail'), 'Invalid or expired token', 'invalid Bearer: detail');
$t->get_ok($s->url('/users/me'), {Authorization => 'Bearer bad.token.here', Cookie => 'access_token=also.bad.token'})
  ->status_is(401, 'an invalid Bearer and an invalid cookie: 401');
$t->get_ok($s->url('/users/me'), {Authorization => "bearer $l->{access_token}"})
  ->status_is(200, 'the Bearer scheme is case-insensitive');
$t->get_ok($s->url('/users/me'), {Authorization => "Basic $l->{access_token}"})
  ->status_is(401, 'another scheme is no authorization');
is($t->tx->res->json('/detail'), 'Missing or invalid authorization', 'Basic scheme: detail');
$t->get_ok($s->url('/users/me'))->status_is(401, 'no token at all: 401');
is($t->tx->res->json('/detail'), 'Missing or invalid authorization', 'no token: detail');
is($t->tx->res->headers->www_authenticate, 'Bearer', 'no token: WWW-Authenticate');
$t->get_ok($s->url('/users/me'), {Authorization => "Bearer $bob->{access_token}"})
  ->status_is(403, 'token of a user made inactive: 403');
is($t->tx->res->json('/detail'), 'User account is inactive', 'inactive token: detail');
sql("delete from users where username = 'bob'");
$t->get_ok($s->url('/users/me'), {Authorization => "Bearer $bob->{access_token}"})
  ->status_is(401, 'token of a deleted user: 401');
is($t->tx->res->json('/detail'), 'User not found', 'deleted user: detail');

# ---- DEBUG=true: no Secure attribute ------------------------------------------------------
my $d = Chatd::Test->new(name => 'debug', env => {%LIMITS, DEBUG => 'true'})->start;
my $dt = $d->t;
$dt->post_ok($d->url('/api/v1/auth/register'), json => {email => 'dan@example.com', username => 'dan', password => $PW})
  ->status_is(201, 'DEBUG stack: register 201');
my $dj = $dt->tx->res->json;
@c = cookies($dt);
is($c[0], "access_token=$dj->{access_token}; HttpOnly; Max-Age=900; Path=/; SameSite=Lax",
    'DEBUG stack: access_token cookie without Secure');
is($c[1], "refresh_token=$dj->{refresh_token}; HttpOnly; Max-Age=604800; Path=/; SameSite=Lax",
    'DEBUG stack: refresh_token cookie without Secure');
$dt->get_ok($d->url('/users/me'))->status_is(200, 'DEBUG stack: the cookie jar authenticates plain http');
is($dt->tx->res->json('/username'), 'dan', 'DEBUG stack: users/me by the stored cookie');

Chatd::Test::done();

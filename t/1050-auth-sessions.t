# Sessions end what they authorised (issue 8, items 3 and 4; API.md "Authentication" and
# PATCH /users/me): access tokens carry their login session (sid); a token of a revoked session
# is 401 on REST; PATCH /users/me with a password needs current_password and ends the user's
# other sessions only; logout (both families), reset-password and deactivation end sessions;
# tokens without sid die when their user's sessions are all ended after their iat.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s  = Chatd::Test->new->start;
my $t  = $s->t;
my $PW = 'password123';
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

sub bearer { return {Authorization => "Bearer $_[0]"} }

# A new login session of $login on /api/v1/auth/login: {token, refresh, sid}.
sub login {
    my ($login, $pw, $title) = @_;
    my $l = $s->new_t;    # own cookie jar: the cookie must not stand in for a refused header
    $l->post_ok($s->url('/api/v1/auth/login'), json => {username => $login, password => $pw // $PW})
      ->status_is(200, $title);
    my $j = $l->tx->res->json // {};
    return {token => $j->{access_token}, refresh => $j->{refresh_token},
        sid => Chatd::WsClient::claims_of($j->{access_token})->{sid}};
}

# GET /users/me with a bare token (no cookie jar): its status, checked against $want.
sub me_is {
    my ($tok, $want, $title) = @_;
    my $u = $s->new_t;
    $u->get_ok($s->url('/users/me'), bearer($tok))->status_is($want, $title);
    return $u;
}

sub refresh_is {
    my ($refresh, $want, $title) = @_;
    $s->new_t->post_ok($s->url('/api/v1/auth/refresh'), json => {refresh_token => $refresh})
      ->status_is($want, $title);
}

sub sql { my $v = $s->psql(shift); chomp $v if defined $v; return $v }

# ---- access tokens carry their session -------------------------------------------------
my $alice = Chatd::WsClient::register($s, 'alice');
my $reg_sid = Chatd::WsClient::claims_of($alice->{token})->{sid};
like($reg_sid // '', $UUID, 'register: the access token has a sid');
is($reg_sid, Chatd::WsClient::claims_of($alice->{refresh})->{sid}, 'register: the same sid as the refresh token');
my $a1 = login($alice->{name}, $PW, 'alice logs in (session 1)');
my $a2 = login($alice->{name}, $PW, 'alice logs in again (session 2)');
isnt($a1->{sid}, $a2->{sid}, 'two logins, two sessions');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => $alice->{name}, password => $PW})
  ->status_is(200, 'jwt login (session 3)');
my $a3 = {token => $t->tx->res->json('/access_token')};
# (a UUID that matches no row when there is no sid, so the checks below fail instead of dying)
$a3->{sid} = Chatd::WsClient::claims_of($a3->{token})->{sid} // '00000000-0000-4000-8000-000000000000';
ok(Chatd::WsClient::claims_of($a3->{token})->{sid}, 'jwt login: the access token has a sid');
is(sql("SELECT count(*) FROM auth_sessions WHERE id = '$a3->{sid}' AND revoked_at IS NULL"), 1,
    'jwt login: its session is recorded');
my $r1 = $s->new_t;
$r1->post_ok($s->url('/api/v1/auth/refresh'), json => {refresh_token => $a1->{refresh}})
  ->status_is(200, 'refresh session 1');
is(Chatd::WsClient::claims_of($r1->tx->res->json('/access_token'))->{sid}, $a1->{sid},
    'refresh: the new access token keeps the session');

# ---- PATCH /users/me: current_password ------------------------------------------------
my $bob = Chatd::WsClient::register($s, 'bob');
my $b1 = login($bob->{name}, $PW, 'bob logs in (session 1)');
my $b2 = login($bob->{name}, $PW, 'bob logs in (session 2)');
my $old_hash = sql("SELECT hashed_password FROM users WHERE id = '$bob->{id}'");
my $bad = {code => 'UPDATE_USER_INVALID_PASSWORD', reason => 'Current password is incorrect'};
$t->patch_ok($s->url('/users/me'), bearer($b1->{token}), json => {password => 'brand new pw 1'})
  ->status_is(400, 'new password without current_password: 400');
is_deeply($t->tx->res->json('/detail'), $bad, 'without current_password: the detail of API.md');
$t->patch_ok($s->url('/users/me'), bearer($b1->{token}),
    json => {password => 'brand new pw 1', current_password => 'not my password'})
  ->status_is(400, 'new password with a wrong current_password: 400');
is_deeply($t->tx->res->json('/detail'), $bad, 'wrong current_password: the detail of API.md');
$t->patch_ok($s->url('/users/me'), bearer($b1->{token}),
    json => {password => 'brand new pw 1', current_password => undef})
  ->status_is(400, 'a null current_password: 400');
is(sql("SELECT hashed_password FROM users WHERE id = '$bob->{id}'"), $old_hash, 'refused: the password is unchanged');
me_is($b2->{token}, 200, 'refused: the other session still works');
$t->patch_ok($s->url('/users/me'), bearer($b1->{token}), json => {bio => 'no password, no check'})
  ->status_is(200, 'a PATCH without password needs no current_password');

my $legacy_before = Chatd::WsClient::forge_access($s, $bob->{id}, iat => time - 30);
me_is($legacy_before, 200, 'a token without sid works while no session was ended');
$t->patch_ok($s->url('/users/me'), bearer($b1->{token}),
    json => {password => 'brand new pw 1', current_password => $PW})
  ->status_is(200, 'new password with the right current_password: 200');
me_is($b1->{token}, 200, "password change: the caller's session goes on");
refresh_is($b1->{refresh}, 200, "password change: the caller's refresh token still works");
my $u = me_is($b2->{token}, 401, "password change: another session's access token is 401");
is($u->tx->res->json('/detail'), 'Invalid or expired token', 'the detail of a revoked session');
like($u->tx->res->headers->www_authenticate // '', qr/^Bearer/, 'with WWW-Authenticate: Bearer');
refresh_is($b2->{refresh}, 401, "password change: another session's refresh token is 401");
me_is($bob->{token}, 401, 'password change: the registration session is ended too');
me_is($legacy_before, 401, 'password change: a token without sid issued before it is 401');
me_is(Chatd::WsClient::forge_access($s, $bob->{id}, iat => time + 1), 200,
    'a token without sid issued after it still works');
login($bob->{name}, 'brand new pw 1', 'the new password logs in');

# ---- logout ends its own session --------------------------------------------------------
my $c1 = login($alice->{name}, $PW, 'alice: session for logout');
my $c2 = login($alice->{name}, $PW, 'alice: session kept');
$s->new_t->post_ok($s->url('/api/v1/auth/logout'), json => {refresh_token => $c1->{refresh}})
  ->status_is(200, 'POST /api/v1/auth/logout');
me_is($c1->{token}, 401, "logout: that session's access token is 401");
me_is($c2->{token}, 200, 'logout: another session is untouched');

$t->post_ok($s->url('/auth/jwt/logout'), bearer($a3->{token}))->status_is(204, 'POST /auth/jwt/logout: 204');
me_is($a3->{token}, 401, "jwt logout: that session's access token is 401");
is(sql("SELECT count(*) FROM auth_sessions WHERE id = '$a3->{sid}' AND revoked_at IS NOT NULL"), 1,
    'jwt logout: its session is revoked');
me_is($c2->{token}, 200, 'jwt logout: another session is untouched');
$t->post_ok($s->url('/auth/jwt/logout'), bearer($a3->{token}))->status_is(401, 'jwt logout again: 401');

# ---- reset-password ends every session ---------------------------------------------------
my $carol = Chatd::WsClient::register($s, 'carol');
my $k1 = login($carol->{name}, $PW, 'carol logs in');
$t->post_ok($s->url('/auth/forgot-password'), json => {email => "$carol->{name}\@example.com"})
  ->status_is(202, 'carol forgets her password');
my $reset;
Chatd::Test::wait_for(sub {
    for my $f (glob($s->var_dir . '/mail/*.eml')) {
        my $m = Chatd::Test::_slurp($f) // next;
        next unless $m =~ /^To: .*\Q$carol->{name}\E\@example\.com/mi;
        ($reset) = $m =~ /^Token: (\S+)\r?$/m;
        return 1 if $reset;
    }
    return 0;
}, 20, 'the reset mail');
ok($reset, 'the reset mail has a token');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset, password => 'carol new pw'})
  ->status_is(200, 'reset-password: 200');
me_is($k1->{token}, 401, 'reset: an access token of an older session is 401');
me_is($carol->{token}, 401, 'reset: the registration session too');
refresh_is($k1->{refresh}, 401, 'reset: refresh tokens are 401');

# ---- deactivation ends every session --------------------------------------------------
my $dave  = Chatd::WsClient::register($s, 'dave');
my $admin = Chatd::WsClient::register($s, 'admin');
sql("UPDATE users SET is_superuser = true WHERE id = '$admin->{id}'");
$t->patch_ok($s->url("/users/$dave->{id}"), bearer($admin->{token}), json => {is_active => \0})
  ->status_is(200, 'a superuser deactivates dave');
$u = me_is($dave->{token}, 403, 'deactivated: 403');
is($u->tx->res->json('/detail'), 'User account is inactive', 'deactivated: the detail of API.md');
is(sql("SELECT count(*) FROM auth_sessions WHERE user_id = '$dave->{id}' AND revoked_at IS NULL"), 0,
    'deactivated: every session revoked');
sql("UPDATE users SET is_active = true WHERE id = '$dave->{id}'");
me_is($dave->{token}, 401, 'reactivated: the tokens from before stay refused');
$t->patch_ok($s->url("/users/$bob->{id}"), bearer($admin->{token}), json => {password => 'admin set pw 1'})
  ->status_is(200, 'a superuser sets bob a password');
me_is($b1->{token}, 401, "a password set by a superuser ends every session, the caller's own included");

Chatd::Test::done();

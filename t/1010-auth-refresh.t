# Refresh tokens and token checks (API.md "Authentication"): refresh by cookie and by body,
# rotation with reuse detection, logout clearing the cookies and revoking the session, and
# access tokens that must be refused: tampered, alg none, expired, signed with another key,
# a refresh token in place of an access token. Forged tokens are built here with the
# stack's SECRET_KEY (HS256 by Digest::SHA), so no test waits for a token to expire.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use Mojo::JSON qw(encode_json);

my $s = Chatd::Test->new(env => {RATE_LIMIT_LOGIN_PER_MINUTE => 1000, RATE_LIMIT_REGISTER_PER_HOUR => 1000})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $PW = 'password123';

sub jwt {
    my ($claims, $key, $alg) = @_;
    $alg //= 'HS256';
    my $input = encode_base64url(encode_json({alg => $alg, typ => 'JWT'})) . '.' . encode_base64url(encode_json($claims));
    return "$input." . ($alg eq 'none' ? '' : encode_base64url(hmac_sha256($input, $key)));
}
sub access_claims {
    my ($user, %o) = @_;
    my $now = time;
    return {sub => $user->{id}, email => $user->{email}, username => $user->{username}, type => 'access',
        aud => ['fastapi-users:auth'], iat => $now, exp => $now + 600, jti => 'f' x 8, %o};
}
sub me_status {
    my ($token, $status, $detail, $title) = @_;
    $t->get_ok($s->url('/users/me'), {Authorization => "Bearer $token"})->status_is($status, $title);
    is($t->tx->res->json('/detail'), $detail, "$title: detail") if defined $detail;
}
sub refresh {
    my ($how, $token, $status, $title) = @_;
    my @args = $how eq 'cookie' ? ({Cookie => "refresh_token=$token"}) : (json => {refresh_token => $token});
    $t->post_ok($s->url('/api/v1/auth/refresh'), @args)->status_is($status, $title);
    return $t->tx->res->json;
}
sub cookies { return @{$t->tx->res->headers->every_header('Set-Cookie')} }

$t->post_ok($s->url('/api/v1/auth/register'), json => {email => 'alice@example.com', username => 'alice', password => $PW})
  ->status_is(201, 'register alice');
my $reg   = $t->tx->res->json;
my $alice = $reg->{user};

# ---- refresh and rotation ------------------------------------------------------------
my $r1 = refresh(cookie => $reg->{refresh_token}, 200, 'refresh by cookie: 200');
is_deeply([sort keys %$r1], [qw(access_token refresh_token token_type)], 'refresh: the three token fields');
is($r1->{token_type}, 'bearer', 'refresh: token_type bearer');
isnt($r1->{refresh_token}, $reg->{refresh_token}, 'refresh: a new refresh token');
my @c = cookies();
is($c[0], "access_token=$r1->{access_token}; HttpOnly; Max-Age=900; Path=/; SameSite=Lax; Secure",
    'refresh: access_token cookie reset');
is($c[1], "refresh_token=$r1->{refresh_token}; HttpOnly; Max-Age=604800; Path=/; SameSite=Lax; Secure",
    'refresh: refresh_token cookie reset');
me_status($r1->{access_token}, 200, undef, 'the refreshed access token works');

my $r2 = refresh(body => $r1->{refresh_token}, 200, 'refresh by body: 200');
isnt($r2->{refresh_token}, $r1->{refresh_token}, 'refresh by body: rotated again');
is(sql("select count(*) from auth_sessions where user_id = '$alice->{id}' and revoked_at is null"), 1,
    'rotation keeps one live session');

is(refresh(body => $r1->{refresh_token}, 401, 'a used refresh token is refused: 401')->{detail},
    'Invalid or expired refresh token', 'used refresh token: detail');
is(sql("select count(*) from auth_sessions where user_id = '$alice->{id}' and revoked_at is not null"), 1,
    'reuse revokes the session');
is(refresh(body => $r2->{refresh_token}, 401, 'after reuse, the newest refresh token fails too: 401')->{detail},
    'Invalid or expired refresh token', 'newest token after reuse: detail');
is(refresh(cookie => $reg->{refresh_token}, 401, 'the first refresh token fails too: 401')->{detail},
    'Invalid or expired refresh token', 'first token after reuse: detail');

$t->post_ok($s->url('/api/v1/auth/refresh'))->status_is(401, 'refresh without a token: 401');
is($t->tx->res->json('/detail'), 'Refresh token not provided', 'refresh without a token: detail');
$t->post_ok($s->url('/api/v1/auth/refresh'), json => {})->status_is(401, 'refresh with an empty body: 401');
is($t->tx->res->json('/detail'), 'Refresh token not provided', 'refresh empty body: detail');

# ---- logout --------------------------------------------------------------------------
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice', password => $PW})->status_is(200, 'login again');
my $l = $t->tx->res->json;
$t->post_ok($s->url('/api/v1/auth/logout'), {Cookie => "refresh_token=$l->{refresh_token}"})->status_is(200, 'logout: 200');
is_deeply($t->tx->res->json, {message => 'Successfully logged out'}, 'logout: message');
@c = cookies();
is(scalar @c, 2, 'logout: two Set-Cookie headers');
like($c[0], qr/^access_token=; HttpOnly; Max-Age=0; Path=\/; SameSite=Lax/, 'logout: access_token cleared');
like($c[1], qr/^refresh_token=; HttpOnly; Max-Age=0; Path=\/; SameSite=Lax/, 'logout: refresh_token cleared');
is(refresh(body => $l->{refresh_token}, 401, 'after logout the refresh token fails: 401')->{detail},
    'Invalid or expired refresh token', 'refresh after logout: detail');
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice', password => $PW})->status_is(200, 'login for body logout');
$l = $t->tx->res->json;
$t->post_ok($s->url('/api/v1/auth/logout'), json => {refresh_token => $l->{refresh_token}})
  ->status_is(200, 'logout with the token in the body: 200');
refresh(body => $l->{refresh_token}, 401, 'after a body logout the refresh token fails: 401');
$t->post_ok($s->url('/api/v1/auth/logout'))->status_is(200, 'logout without any token still answers 200');

# ---- refused tokens ------------------------------------------------------------------
$t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'alice', password => $PW})->status_is(200, 'login for token checks');
$l = $t->tx->res->json;
me_status($l->{access_token}, 200, undef, 'the fresh access token works');
me_status(jwt(access_claims($alice), $s->secret_key), 200, undef, 'a token forged with SECRET_KEY works (the forging is right)');

my @p = split /\./, $l->{access_token};
my $sig = $p[2];
substr($sig, 5, 1) = substr($sig, 5, 1) eq 'A' ? 'B' : 'A';
me_status("$p[0].$p[1].$sig", 401, 'Invalid or expired token', 'a tampered signature: 401');
my $claims = access_claims($alice, username => 'mallory');
me_status(join('.', $p[0], encode_base64url(encode_json($claims)), $p[2]), 401, 'Invalid or expired token',
    'a tampered payload: 401');
me_status(jwt(access_claims($alice), undef, 'none'), 401, 'Invalid or expired token', 'an alg none token: 401');
me_status(jwt(access_claims($alice), $s->secret_key, 'HS512'), 401, 'Invalid or expired token', 'an HS512 token: 401');
me_status(jwt(access_claims($alice, exp => time - 120, iat => time - 1000), $s->secret_key), 401,
    'Invalid or expired token', 'an expired access token: 401');
me_status(jwt(access_claims($alice, iat => time + 3600, exp => time + 7200), $s->secret_key), 401,
    'Invalid or expired token', 'a token issued in the future: 401');
me_status(jwt(access_claims($alice), 'another-secret-key-another-secret-key'), 401, 'Invalid or expired token',
    'a token signed with another key: 401');
me_status(jwt(access_claims($alice), $s->refresh_secret_key), 401, 'Invalid or expired token',
    'an access token signed with REFRESH_SECRET_KEY: 401');
me_status(jwt(access_claims($alice, type => 'refresh'), $s->secret_key), 401, 'Invalid or expired token',
    'type refresh in an access token: 401');
me_status(jwt(access_claims($alice, aud => ['fastapi-users:reset']), $s->secret_key), 401, 'Invalid or expired token',
    'a reset audience: 401');
me_status(jwt(access_claims($alice, sub => 'not-a-uuid'), $s->secret_key), 401, 'Invalid or expired token',
    'a sub that is not a UUID: 401');
me_status(jwt(access_claims($alice, sub => '00000000-0000-4000-8000-000000000000'), $s->secret_key), 401,
    'User not found', 'a sub of no user: 401');
me_status($l->{refresh_token}, 401, 'Invalid or expired token', 'a refresh token used as an access token: 401');
is(refresh(body => $l->{access_token}, 401, 'an access token used as a refresh token: 401')->{detail},
    'Invalid or expired refresh token', 'access as refresh: detail');
refresh(body => 'x' x 9000, 401, 'a 9000-byte refresh token: 401');
me_status('a.b', 401, 'Invalid or expired token', 'a token with one dot: 401');

$t->get_ok($s->url('/users/me'))->status_is(401, 'missing token: 401');
is($t->tx->res->json('/detail'), 'Missing or invalid authorization', 'missing token: detail');
is($t->tx->res->headers->www_authenticate, 'Bearer', 'missing token: WWW-Authenticate Bearer');
me_status('', 401, 'Missing or invalid authorization', 'an empty Bearer: 401');

sql("update users set is_active = false where id = '$alice->{id}'");
is(refresh(body => $l->{refresh_token}, 403, 'refresh for an inactive user: 403')->{detail},
    'User account is inactive', 'refresh inactive: detail');

Chatd::Test::done();

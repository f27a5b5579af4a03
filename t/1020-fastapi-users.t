# The fastapi-users compatible routes (API.md "fastapi-users compatible endpoints"):
# /auth/register, /auth/jwt/login|logout, forgot/reset password through the mail outbox,
# request-verify-token and verify (POST and the mail's GET link), /users/me and the
# superuser-only /users/{id}, each with fastapi-users' status codes and error codes.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::Util qw(b64_decode);
use Mojo::JSON qw(decode_json);

my $s = Chatd::Test->new(env => {PUBLIC_URL => 'https://chat.example.test/'})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $PW      = 'correct horse 1';
my @READ    = sort qw(id email is_active is_superuser is_verified username first_name last_name
  avatar_url bio is_online last_seen);
my $NOBODY  = '00000000-0000-4000-8000-000000000000';

# ---- helpers -------------------------------------------------------------------------
sub register {
    my ($name, %extra) = @_;
    $t->post_ok($s->url('/auth/register'),
        json => {email => "$name\@example.com", username => $name, password => $PW, %extra})
      ->status_is(201, "register $name: 201");
    return $t->tx->res->json;
}

# POST /auth/jwt/login as a form; returns the access token when the status is 200.
sub jwt_login {
    my ($login, $pw, $status, $title) = @_;
    $t->post_ok($s->url('/auth/jwt/login'), form => {username => $login, password => $pw})
      ->status_is($status, $title);
    return $status == 200 ? $t->tx->res->json('/access_token') : undef;
}
sub bearer { return {Authorization => "Bearer $_[0]"} }

sub detail_is {
    my ($want, $title) = @_;
    is_deeply($t->tx->res->json('/detail'), $want, $title);
}

# The mails in the outbox addressed to $to, oldest first (once the mailer has sent them).
sub mails_to { return $s->mails_to(shift) }
sub token_of { my $m = shift // ''; return $m =~ /^Token: (\S+)\r$/m ? $1 : undef }
sub claims_of {
    my $tok = shift // '';
    my (undef, $payload) = split /\./, $tok;
    $payload //= '';
    $payload =~ tr{-_}{+/};
    return eval { decode_json(b64_decode($payload . '=' x (-length($payload) % 4))) } // {};
}

# ---- register ------------------------------------------------------------------------
my $alice = register('alice', first_name => 'Alice', is_superuser => \1, is_verified => \1,
    is_active => \0);
is_deeply([sort keys %$alice], \@READ, 'register: the body is a UserRead');
ok(!exists $alice->{hashed_password}, 'register: no password hash in UserRead');
is($alice->{email}, 'alice@example.com', 'register: email');
is($alice->{username}, 'alice', 'register: username');
is($alice->{first_name}, 'Alice', 'register: first_name');
is($alice->{is_superuser}, 0, 'register: is_superuser in the body is ignored');
is($alice->{is_verified}, 0, 'register: is_verified in the body is ignored');
is($alice->{is_active}, 1, 'register: is_active in the body is ignored');
like($alice->{id}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'register: id is a UUID');
is(sql("select is_superuser::text || is_active::text || is_verified::text from users where id = '$alice->{id}'"),
    'falsetruefalse', 'register: stored privileges are the defaults');

$t->post_ok($s->url('/auth/register'), json => {email => 'ALICE@Example.com', username => 'alice2', password => $PW})
  ->status_is(400, 'register: same email in other case is 400');
detail_is('REGISTER_USER_ALREADY_EXISTS', 'register: duplicate email detail');
$t->post_ok($s->url('/auth/register'), json => {email => 'alice2@example.com', username => 'ALICE', password => $PW})
  ->status_is(400, 'register: same username in other case is 400');
detail_is('REGISTER_USER_ALREADY_EXISTS', 'register: duplicate username detail');
$t->post_ok($s->url('/auth/register'), json => {email => 'short@example.com', username => 'short', password => 'short'})
  ->status_is(400, 'register: 5-character password is 400');
detail_is({code => 'REGISTER_INVALID_PASSWORD', reason => 'Password should be at least 8 characters'},
    'register: short password detail');
$t->post_ok($s->url('/auth/register'),
    json => {email => 'mail@example.com', username => 'mailpw', password => 'xx-mail@example.com-xx'})
  ->status_is(400, 'register: password containing the email is 400');
detail_is({code => 'REGISTER_INVALID_PASSWORD', reason => 'Password should not contain e-mail'},
    'register: password with email detail');
$t->post_ok($s->url('/auth/register'), json => {email => 'not-an-email', username => 'bad1', password => $PW})
  ->status_is(422, 'register: invalid email is 422');
is($t->tx->res->json('/detail/0/loc/1'), 'email', 'register: invalid email loc');
$t->post_ok($s->url('/auth/register'), json => {email => 'long@example.com', username => 'long', password => 'p' x 129})
  ->status_is(422, 'register: 129-character password is 422');
$t->post_ok($s->url('/auth/register'), json => {email => 'u@example.com', username => 'x' x 51, password => $PW})
  ->status_is(422, 'register: 51-character username is 422');
$t->post_ok($s->url('/auth/register'), json => {email => 'nouser@example.com', password => $PW})
  ->status_is(422, 'register: missing username is 422');
is(sql("select count(*) from users"), 1, 'register: refused registrations stored nothing');

# ---- jwt login / logout --------------------------------------------------------------
my $tok = jwt_login('alice@example.com', $PW, 200, 'jwt login by email: 200');
is_deeply([sort keys %{$t->tx->res->json}], [qw(access_token token_type)], 'jwt login: access_token and token_type only');
is($t->tx->res->json('/token_type'), 'bearer', 'jwt login: token_type bearer');
ok(!$t->tx->res->headers->header('Set-Cookie'), 'jwt login: sets no cookie');
my $claims = claims_of($tok);
is($claims->{sub}, $alice->{id}, 'jwt login: token sub is the user id');
is_deeply($claims->{aud}, ['fastapi-users:auth'], 'jwt login: token audience');
ok(jwt_login('ALICE', $PW, 200, 'jwt login by username in other case: 200'), 'jwt login by username: token');
jwt_login('alice', 'wrong password', 400, 'jwt login with a wrong password: 400');
detail_is('LOGIN_BAD_CREDENTIALS', 'jwt login wrong password: detail');
jwt_login('nobody@example.com', $PW, 400, 'jwt login of an unknown user: 400');
detail_is('LOGIN_BAD_CREDENTIALS', 'jwt login unknown user: detail');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'alice'})->status_is(422, 'jwt login without password: 422');
is_deeply($t->tx->res->json('/detail/0/loc'), ['body', 'password'], 'jwt login without password: loc');
$t->post_ok($s->url('/auth/jwt/login'), json => {username => 'alice', password => $PW})
  ->status_is(422, 'jwt login with a JSON body: 422');
$t->post_ok($s->url('/auth/jwt/login'), {'Content-Type' => 'application/x-www-form-urlencoded'},
    'username=alice&password=%ZZ')->status_is(422, 'jwt login with a bad escape: 422');
$t->post_ok($s->url('/auth/jwt/login'), {'Content-Type' => 'application/x-www-form-urlencoded'},
    'grant_type=password&username=alice&password=correct+horse%201&scope=')
  ->status_is(200, 'jwt login: + and %20 decode to spaces, extra fields ignored');

$t->get_ok($s->url('/users/me'), bearer($tok))->status_is(200, 'users/me with the jwt token: 200');
is_deeply([sort keys %{$t->tx->res->json}], \@READ, 'users/me: a UserRead');
is($t->tx->res->json('/id'), $alice->{id}, 'users/me: the caller');
$t->get_ok($s->url('/users/me'))->status_is(401, 'users/me without a token: 401');
detail_is('Missing or invalid authorization', 'users/me without a token: detail');

$t->post_ok($s->url('/auth/jwt/logout'), bearer($tok))->status_is(204, 'jwt logout: 204');
is($t->tx->res->body, '', 'jwt logout: empty body');
$t->post_ok($s->url('/auth/jwt/logout'))->status_is(401, 'jwt logout without a token: 401');
is($t->tx->res->headers->www_authenticate, 'Bearer', 'jwt logout without a token: WWW-Authenticate');

my $bob = register('bob');
sql("update users set is_active = false where id = '$bob->{id}'");
jwt_login('bob', $PW, 400, 'jwt login of an inactive user: 400');
detail_is('LOGIN_BAD_CREDENTIALS', 'jwt login inactive user: detail like a bad password');
sql("update users set is_active = true where id = '$bob->{id}'");

# ---- PATCH /users/me -----------------------------------------------------------------
$tok = jwt_login('alice', $PW, 200, 'alice logs in for the updates');
$t->patch_ok($s->url('/users/me'), bearer($tok),
    json => {first_name => 'Al', last_name => 'Ice', bio => 'hi', avatar_url => 'https://x.test/a.png',
        is_superuser => \1, is_active => \0, is_verified => \1})
  ->status_is(200, 'patch me: 200');
my $me = $t->tx->res->json;
is_deeply([sort keys %$me], \@READ, 'patch me: a UserRead');
is("$me->{first_name} $me->{last_name} $me->{bio} $me->{avatar_url}", 'Al Ice hi https://x.test/a.png',
    'patch me: profile fields set');
is($me->{is_superuser} . $me->{is_active} . $me->{is_verified}, '010', 'patch me: privilege fields ignored');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {first_name => undef})->status_is(200, 'patch me: null first_name');
ok(!defined $t->tx->res->json('/first_name'), 'patch me: null clears first_name');
is($t->tx->res->json('/last_name'), 'Ice', 'patch me: absent last_name is kept');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {username => 'alicia'})->status_is(200, 'patch me: username');
is($t->tx->res->json('/username'), 'alicia', 'patch me: username changed');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {username => 'BOB'})->status_is(400, 'patch me: taken username');
detail_is('UPDATE_USER_USERNAME_ALREADY_EXISTS', 'patch me: taken username detail');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {email => 'Bob@Example.com'})->status_is(400, 'patch me: taken email');
detail_is('UPDATE_USER_EMAIL_ALREADY_EXISTS', 'patch me: taken email detail');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {username => 'a b'})->status_is(422, 'patch me: bad username 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {bio => 'b' x 501})->status_is(422, 'patch me: 501-char bio 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {first_name => 'f' x 101})->status_is(422, 'patch me: long first_name 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {avatar_url => 'h' x 501})->status_is(422, 'patch me: long avatar_url 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {email => 'nope'})->status_is(422, 'patch me: bad email 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {password => 'short', current_password => $PW})->status_is(400, 'patch me: short password');
detail_is({code => 'UPDATE_USER_INVALID_PASSWORD', reason => 'Password should be at least 8 characters'},
    'patch me: short password detail');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {password => 'my alice@example.com!', current_password => $PW})
  ->status_is(400, 'patch me: password with the email');
detail_is({code => 'UPDATE_USER_INVALID_PASSWORD', reason => 'Password should not contain e-mail'},
    'patch me: password with the email detail');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {password => 'p' x 129})->status_is(422, 'patch me: 129-char password 422');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => [1])->status_is(422, 'patch me: array body 422');
$t->patch_ok($s->url('/users/me'), json => {bio => 'x'})->status_is(401, 'patch me without a token: 401');

sql("update users set is_verified = true where id = '$alice->{id}'");
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {email => 'alice@example.com'})
  ->status_is(200, 'patch me: the same email');
is($t->tx->res->json('/is_verified'), 1, 'patch me: the same email keeps is_verified');
$t->patch_ok($s->url('/users/me'), bearer($tok), json => {email => 'alice.new@example.com', password => 'new password 2', current_password => $PW})
  ->status_is(200, 'patch me: new email and password');
is($t->tx->res->json('/email'), 'alice.new@example.com', 'patch me: email changed');
is($t->tx->res->json('/is_verified'), 0, 'patch me: a new email clears is_verified');
jwt_login('alicia', $PW, 400, 'patch me: the old password no longer works');
$tok = jwt_login('alice.new@example.com', 'new password 2', 200, 'patch me: the new password works');

# ---- forgot / reset password ---------------------------------------------------------
$s->mail_idle;
my $nmail = () = glob($s->var_dir . '/mail/*.eml');
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'nobody@example.com'})
  ->status_is(202, 'forgot: unknown email is 202 too');
is($t->tx->res->body, 'null', 'forgot: body is null');
ok($s->mail_idle, 'forgot: the mailer is idle');
is(scalar(() = glob($s->var_dir . '/mail/*.eml')), $nmail, 'forgot: no mail for an unknown email');
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'bad'})->status_is(422, 'forgot: invalid email 422');
$t->post_ok($s->url('/auth/forgot-password'), json => {})->status_is(422, 'forgot: missing email 422');

my $login = $s->new_t;    # a cookie session of bob, revoked by the reset
$login->post_ok($s->url('/api/v1/auth/login'), json => {username => 'bob', password => $PW})
  ->status_is(200, 'bob logs in with cookies before the reset');
my $bob_refresh = $login->tx->res->json('/refresh_token');

$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'BOB@example.com'})
  ->status_is(202, 'forgot: known email is 202');
is($t->tx->res->body, 'null', 'forgot known: body is null');
my @m = mails_to('bob@example.com');
is(scalar @m, 1, 'forgot: one mail to the stored address');
my $mail = $m[0] // '';
like($mail, qr/^From: \S+\r$/m, 'reset mail: From header');
like($mail, qr/^Subject: Reset your password\r$/m, 'reset mail: Subject header');
like($mail, qr/^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r$/m, 'reset mail: RFC 5322 Date');
like($mail, qr/^Message-ID: <[^@>\s]+@[^>\s]+>\r$/m, 'reset mail: Message-ID');
like($mail, qr/\r\n\r\n/, 'reset mail: headers end with an empty line');
my $reset = token_of($mail);
ok($reset, 'reset mail: has a Token: line');
like($mail, qr{^https://chat\.example\.test/reset-password\?token=\Q$reset\E\r$}m,
    'reset mail: link under PUBLIC_URL without a double slash');
my $rc = claims_of($reset);
is_deeply($rc->{aud}, ['fastapi-users:reset'], 'reset token: audience fastapi-users:reset');
is($rc->{sub}, $bob->{id}, 'reset token: sub is the user');
like($rc->{password_fgpt} // '', qr/^[0-9a-f]{32}$/, 'reset token: a 32-hex password fingerprint');
my $hash = sql("select hashed_password from users where id = '$bob->{id}'");
unlike($hash, qr/\Q$rc->{password_fgpt}\E/, 'reset token: the fingerprint is not part of the hash');
cmp_ok($rc->{exp} - $rc->{iat}, '==', 3600, 'reset token: valid for one hour');
ok(!grep({ -e } glob($s->var_dir . '/mail/.*.tmp')), 'outbox: no temporary file left behind');

$t->post_ok($s->url('/auth/reset-password'), json => {token => 'garbage', password => 'new bob pass'})
  ->status_is(400, 'reset: garbage token 400');
detail_is('RESET_PASSWORD_BAD_TOKEN', 'reset: garbage token detail');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $tok, password => 'new bob pass'})
  ->status_is(400, 'reset: an access token is not a reset token');
detail_is('RESET_PASSWORD_BAD_TOKEN', 'reset: access token detail');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset, password => 'short'})
  ->status_is(400, 'reset: short password 400');
detail_is({code => 'RESET_PASSWORD_INVALID_PASSWORD', reason => 'Password should be at least 8 characters'},
    'reset: short password detail');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset, password => '1bob@example.com1'})
  ->status_is(400, 'reset: password containing the email 400');
detail_is({code => 'RESET_PASSWORD_INVALID_PASSWORD', reason => 'Password should not contain e-mail'},
    'reset: password containing the email detail');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset})->status_is(422, 'reset: missing password 422');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset, password => 'new bob pass'})
  ->status_is(200, 'reset: 200');
is($t->tx->res->body, 'null', 'reset: body is null');
jwt_login('bob', $PW, 400, 'reset: the old password fails');
ok(jwt_login('bob', 'new bob pass', 200, 'reset: the new password works'), 'reset: new password gives a token');
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset, password => 'another pass'})
  ->status_is(400, 'reset: the token works only once');
detail_is('RESET_PASSWORD_BAD_TOKEN', 'reset: reused token detail');
$login->post_ok($s->url('/api/v1/auth/refresh'), json => {refresh_token => $bob_refresh})
  ->status_is(401, 'reset: the sessions from before the reset are revoked');

# an inactive user gets no mail, and an issued token stops working once inactive
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'bob@example.com'})->status_is(202, 'forgot bob again: 202');
my $reset2 = token_of((mails_to('bob@example.com'))[-1]);
sql("update users set is_active = false where id = '$bob->{id}'");
$t->post_ok($s->url('/auth/reset-password'), json => {token => $reset2, password => 'inactive pass'})
  ->status_is(400, 'reset: inactive user 400');
detail_is('RESET_PASSWORD_BAD_TOKEN', 'reset: inactive user detail');
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'bob@example.com'})->status_is(202, 'forgot: inactive user 202');
is(scalar(mails_to('bob@example.com')), 2, 'forgot: no mail for an inactive user');
sql("update users set is_active = true where id = '$bob->{id}'");

# ---- verify --------------------------------------------------------------------------
my $carol = register('carol');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'nobody@example.com'})
  ->status_is(202, 'request-verify: unknown email 202');
is($t->tx->res->body, 'null', 'request-verify: body is null');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'x'})->status_is(422, 'request-verify: bad email 422');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'Carol@example.com'})
  ->status_is(202, 'request-verify: carol 202');
@m = mails_to('carol@example.com');
is(scalar @m, 1, 'request-verify: one mail to carol');
like($m[0] // '', qr/^Subject: Verify your e-mail address\r$/m, 'verify mail: Subject');
my $vtok = token_of($m[0]);
ok($vtok, 'verify mail: has a Token: line');
like($m[0] // '', qr{^https://chat\.example\.test/auth/verify\?token=\Q$vtok\E\r$}m, 'verify mail: link');
my $vc = claims_of($vtok);
is_deeply($vc->{aud}, ['fastapi-users:verify'], 'verify token: audience');
is($vc->{email}, 'carol@example.com', 'verify token: email claim');

$t->post_ok($s->url('/auth/verify'), json => {token => $reset})->status_is(400, 'verify: a reset token is refused');
detail_is('VERIFY_USER_BAD_TOKEN', 'verify: reset token detail');
$t->post_ok($s->url('/auth/verify'), json => {token => 'a.b.c'})->status_is(400, 'verify: garbage token');
detail_is('VERIFY_USER_BAD_TOKEN', 'verify: garbage token detail');
$t->post_ok($s->url('/auth/verify'), json => {})->status_is(422, 'verify: missing token 422');
$t->post_ok($s->url('/auth/verify'), json => {token => $vtok})->status_is(200, 'verify: 200');
is_deeply([sort keys %{$t->tx->res->json}], \@READ, 'verify: a UserRead');
is($t->tx->res->json('/is_verified'), 1, 'verify: is_verified now true');
is(sql("select is_verified from users where id = '$carol->{id}'"), 't', 'verify: stored');
$t->post_ok($s->url('/auth/verify'), json => {token => $vtok})->status_is(400, 'verify: again 400');
detail_is('VERIFY_USER_ALREADY_VERIFIED', 'verify: again detail');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'carol@example.com'})
  ->status_is(202, 'request-verify: verified user 202');
is(scalar(mails_to('carol@example.com')), 1, 'request-verify: no mail for a verified user');

# the GET link of the mail, and a token whose email is no longer the user's
my $dave = register('dave');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'dave@example.com'})->status_is(202, 'request-verify dave');
my $dtok = token_of((mails_to('dave@example.com'))[0]);
$t->get_ok($s->url('/auth/verify'))->status_is(422, 'verify link without token: 422');
is_deeply($t->tx->res->json('/detail/0/loc'), ['query', 'token'], 'verify link without token: loc');
$t->get_ok($s->url('/auth/verify?token=nope'))->status_is(400, 'verify link with a bad token: 400');
detail_is('VERIFY_USER_BAD_TOKEN', 'verify link bad token: detail');
$t->get_ok($s->url("/auth/verify?token=$dtok"))->status_is(200, 'verify link: 200');
is($t->tx->res->json('/username'), 'dave', 'verify link: UserRead of dave');
is($t->tx->res->json('/is_verified'), 1, 'verify link: verified');

my $erin = register('erin');
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'erin@example.com'})->status_is(202, 'request-verify erin');
my $etok = token_of((mails_to('erin@example.com'))[0]);
sql("update users set email = 'erin2\@example.com' where id = '$erin->{id}'");
$t->post_ok($s->url('/auth/verify'), json => {token => $etok})->status_is(400, 'verify: token for an old email 400');
detail_is('VERIFY_USER_BAD_TOKEN', 'verify: old email detail');
sql("update users set is_active = false where id = '$erin->{id}'");
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'erin2@example.com'})
  ->status_is(202, 'request-verify: inactive user 202');
is(scalar(mails_to('erin2@example.com')), 0, 'request-verify: no mail for an inactive user');

# ---- superuser routes ----------------------------------------------------------------
my $btok = jwt_login('bob', 'new bob pass', 200, 'bob logs in (normal user)');
for my $m (qw(get patch delete)) {
    my $call = "${m}_ok";
    $t->$call($s->url("/users/$carol->{id}"), bearer($btok), ($m eq 'patch' ? (json => {bio => 'x'}) : ()))
      ->status_is(403, "users/{id} $m by a normal user: 403");
    detail_is('Forbidden', "users/{id} $m by a normal user: detail");
}
$t->get_ok($s->url("/users/$carol->{id}"))->status_is(401, 'users/{id} without a token: 401');

sql("update users set is_superuser = true where id = '$alice->{id}'");
$t->get_ok($s->url("/users/$carol->{id}"), bearer($tok))->status_is(200, 'superuser get: 200');
is_deeply([sort keys %{$t->tx->res->json}], \@READ, 'superuser get: a UserRead');
is($t->tx->res->json('/email'), 'carol@example.com', 'superuser get: carol');
$t->get_ok($s->url("/users/$NOBODY"), bearer($tok))->status_is(404, 'superuser get unknown: 404');
detail_is('Not Found', 'superuser get unknown: detail');
$t->get_ok($s->url('/users/not-a-uuid'), bearer($tok))->status_is(422, 'superuser get bad uuid: 422');
$t->get_ok($s->url('/users/' . uc $carol->{id}), bearer($tok))->status_is(200, 'superuser get upper-case uuid: 200');

$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok),
    json => {is_verified => \0, is_superuser => \1, bio => 'by admin', username => 'caroline'})
  ->status_is(200, 'superuser patch: 200');
my $c2 = $t->tx->res->json;
is($c2->{is_verified} . $c2->{is_superuser} . $c2->{is_active}, '011', 'superuser patch: privilege fields applied');
is("$c2->{bio} $c2->{username}", 'by admin caroline', 'superuser patch: profile fields applied');
$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok), json => {email => 'carol.new@example.com', is_verified => \1})
  ->status_is(200, 'superuser patch: email with explicit is_verified');
is($t->tx->res->json('/is_verified'), 1, 'superuser patch: explicit is_verified wins over the email rule');
$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok), json => {email => 'dave@example.com'})
  ->status_is(400, 'superuser patch: taken email');
detail_is('UPDATE_USER_EMAIL_ALREADY_EXISTS', 'superuser patch: taken email detail');
$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok), json => {password => 'xcarol.new@example.comx'})
  ->status_is(400, 'superuser patch: password containing the target email');
detail_is({code => 'UPDATE_USER_INVALID_PASSWORD', reason => 'Password should not contain e-mail'},
    'superuser patch: password detail');
$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok), json => {is_active => 'yes'})
  ->status_is(422, 'superuser patch: non-boolean is_active 422');
$t->patch_ok($s->url("/users/$NOBODY"), bearer($tok), json => {bio => 'x'})->status_is(404, 'superuser patch unknown: 404');
$t->patch_ok($s->url("/users/$carol->{id}"), bearer($tok), json => {is_active => \0})->status_is(200, 'superuser deactivates carol');
jwt_login('caroline', $PW, 400, 'deactivated carol cannot log in');

$t->delete_ok($s->url("/users/$dave->{id}"), bearer($tok))->status_is(204, 'superuser delete: 204');
is($t->tx->res->body, '', 'superuser delete: empty body');
is(sql("select count(*) from users where id = '$dave->{id}'"), 0, 'superuser delete: row gone');
$t->delete_ok($s->url("/users/$dave->{id}"), bearer($tok))->status_is(404, 'superuser delete again: 404');
detail_is('Not Found', 'superuser delete again: detail');

Chatd::Test::done();

# Google sign-in (API.md "Google OAuth2") against a fake provider (t/lib/fake_google.pl),
# in the redirect mode (OAUTH_SUCCESS_REDIRECT=/): status, the authorization URL, the whole
# authorize -> provider -> callback flow with the login cookies, a second login of the same
# account, linking to a password user whose email Google verified, refusing an unverified
# one, the username and profile bounds, an inactive user, and every bad state / bad code
# case (forged, garbage, expired, replayed, missing, rejected by the provider).
# The JSON mode and an unconfigured stack are in t/1101-oauth-google-json.t.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Digest::SHA qw(hmac_sha256 sha256_hex);
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Promise;
use Mojo::URL;
use Mojo::Util qw(b64_decode b64_encode);

my $CLIENT_ID     = 'chatd-test.apps.example';
my $CLIENT_SECRET = 'fake secret+/&=';    # needs escaping in the token request's form
my $UUID_RE       = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

# ---- the fake provider -----------------------------------------------------------------

my ($FAKE, $ua, $fake) = Chatd::Test::start_fake_google($CLIENT_ID, $CLIENT_SECRET);

sub fake_user {
    my ($hint, $profile, $token) = @_;
    my $tx = $ua->post("$FAKE/_user" => json => {hint => $hint, profile => $profile, token => $token // {}});
    is($tx->res->code, 200, "fake provider knows '$hint'");
}

sub fake_calls { my $j = $ua->get("$FAKE/_stats")->res->json // {}; return $j->{token} // 0 }

# ---- the stack -------------------------------------------------------------------------

my $s = Chatd::Test->new(env => {
    GOOGLE_CLIENT_ID       => $CLIENT_ID,
    GOOGLE_CLIENT_SECRET   => $CLIENT_SECRET,
    GOOGLE_AUTHORIZE_URL   => "$FAKE/authorize",
    GOOGLE_TOKEN_URL       => "$FAKE/token",
    GOOGLE_USERINFO_URL    => "$FAKE/userinfo",
    OAUTH_SUCCESS_REDIRECT => '/',
})->start;
my $t = $s->t;
my $CALLBACK = $s->url('/api/v1/oauth/google/callback');

# ---- JWT helpers -----------------------------------------------------------------------

sub b64url { my $s = b64_encode(shift, ''); $s =~ tr{+/}{-_}; $s =~ s/=+$//; return $s }

sub jwt_claims {
    my (undef, $p) = split /\./, shift // '';
    return {} unless defined $p;
    $p =~ tr{-_}{+/};
    $p .= '=' x (-length($p) % 4);
    return eval { decode_json(b64_decode($p)) } // {};
}

sub jwt_hs256 {
    my ($claims, $key) = @_;
    my $head = b64url(encode_json({alg => 'HS256', typ => 'JWT'}));
    my $body = b64url(encode_json($claims));
    return "$head.$body." . b64url(hmac_sha256("$head.$body", $key));
}

sub uuid4 { my $h = Chatd::Test::random_hex(16); $h =~ s/^(.{8})(.{4})(.{4})(.{4})/$1-$2-$3-$4-/; return $h }

# The jti a state carries for a browser nonce: the first 128 bits of SHA-256(nonce) as a UUID.
sub nonce_jti { my $h = sha256_hex(shift); $h =~ s/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/$1-$2-$3-$4-$5/; return $h }

# ---- flow helpers ----------------------------------------------------------------------

# The nonce cookie each authorize set, by state: the browser that asked for that state.
my %NONCE_OF;

# GET authorize; returns the authorization URL (a Mojo::URL) and remembers its nonce cookie.
sub authorize_url {
    my $label = shift;
    $t->get_ok($s->url('/api/v1/oauth/google/authorize'))->status_is(200, "$label: authorize is 200");
    my $url = Mojo::URL->new($t->tx->res->json('/authorization_url') // '');
    my ($n) = grep { $_->name eq 'oauth_nonce' } @{$t->tx->res->cookies};
    $NONCE_OF{$url->query->param('state') // ''} = $n ? $n->value : '';
    return $url;
}

# The Cookie header of the browser that started the flow of callback URL $cb.
# (The cookie is Secure, so the jar would not send it over http: send it by hand.)
sub nonce_header {
    my $cb = Mojo::URL->new(shift);
    return {Cookie => 'oauth_nonce=' . ($NONCE_OF{$cb->query->param('state') // ''} // '')};
}

# authorize -> fake provider (as user $hint) -> the callback URL the browser would open.
sub provider_redirect {
    my ($hint, $label) = @_;
    my $url = authorize_url($label);
    $url->query->merge(login_hint => $hint);
    my $tx = $ua->get($url);
    is($tx->res->code, 302, "$label: the provider redirects back") or diag($tx->res->body);
    return Mojo::URL->new($tx->res->headers->location // '');
}

# The whole flow; returns the callback's transaction after checking the status.
sub google_login {
    my ($hint, $label, $status) = @_;
    my $cb = provider_redirect($hint, $label);
    $t->get_ok($cb => nonce_header($cb))->status_is($status // 302, "$label: callback answers " . ($status // 302));
    return $t->tx;
}

sub cookies_of {
    my $tx = shift;
    return {map { $_->name => $_ } @{$tx->res->cookies}};
}

sub user_row {
    my $email = shift;
    my $row = $s->psql("SELECT id, username, is_verified, coalesce(first_name, ''), "
          . "coalesce(last_name, ''), coalesce(avatar_url, ''), is_active "
          . "FROM users WHERE lower(email) = lower('$email')");
    chomp $row;
    my @f = split /\|/, $row;
    return {id => $f[0], username => $f[1], is_verified => $f[2], first_name => $f[3],
            last_name => $f[4], avatar_url => $f[5], is_active => $f[6]};
}

sub oauth_rows { my $sub = shift; return $s->psql("SELECT count(*) FROM oauth_accounts WHERE account_id = '$sub'") + 0 }

# ---- status and authorize --------------------------------------------------------------

$t->get_ok($s->url('/api/v1/oauth/google/status'))->status_is(200, 'status is 200')
  ->json_is('' => {configured => Mojo::JSON::true}, 'status: configured true');

my $url = authorize_url('first authorize');
my $raw = $t->tx->res->json('/authorization_url') // '';
like($raw, qr/^\Q$FAKE\E\/authorize\?response_type=code&client_id=/, 'authorization_url starts with GOOGLE_AUTHORIZE_URL and response_type');
like($raw, qr/&scope=openid%20email%20profile&/, 'scope is openid email profile, %20-encoded');
my $q = $url->query;
is($q->param('client_id'), $CLIENT_ID, 'authorization_url: client_id');
is($q->param('redirect_uri'), $CALLBACK, 'authorization_url: redirect_uri defaults to PUBLIC_URL/api/v1/oauth/google/callback');
is($q->param('access_type'), 'offline', 'authorization_url: access_type offline');
is($q->param('prompt'), 'select_account', 'authorization_url: prompt select_account');
my $st = jwt_claims($q->param('state'));
is_deeply($st->{aud}, ['fastapi-users:oauth-state'], 'state: audience fastapi-users:oauth-state');
like($st->{jti} // '', $UUID_RE, 'state: a random jti');
is(($st->{exp} // 0) - ($st->{iat} // 0), 600, 'state: valid for 10 minutes');
ok(!exists $st->{sub} && !exists $st->{type}, 'state: no sub and no type claim');
isnt(authorize_url('second authorize')->query->param('state'), $q->param('state'), 'each authorize gives a new state');

# ---- login CSRF: the state belongs to the browser that asked for it ---------------------

$t->get_ok($s->url('/api/v1/oauth/google/authorize'))->status_is(200, 'nonce: authorize is 200');
my ($nc) = grep { $_->name eq 'oauth_nonce' } @{$t->tx->res->cookies};
ok($nc && $nc->value =~ /^[0-9a-f]{64}$/, 'nonce: authorize sets a 256-bit oauth_nonce cookie');
my $set = join "\n", @{$t->tx->res->headers->every_header('Set-Cookie')};
like($set, qr/oauth_nonce=[0-9a-f]{64}; HttpOnly; Max-Age=600; Path=\/api\/v1\/oauth\/google\/callback; SameSite=Lax; Secure/,
    'nonce: HttpOnly, 10 minutes, callback path only, SameSite=Lax, Secure (DEBUG=false)');
my $nurl = Mojo::URL->new($t->tx->res->json('/authorization_url') // '');
my $nstate = $nurl->query->param('state');
$NONCE_OF{$nstate} = $nc ? $nc->value : '';
is(jwt_claims($nstate)->{jti}, nonce_jti($nc ? $nc->value : ''), 'nonce: the state carries the hash of the nonce, not the nonce');
unlike($nstate, qr/\Q@{[$nc ? $nc->value : 'x']}\E/, 'nonce: the nonce itself is not in the state');
fake_user(csrf => {sub => '100000000000000000020', email => 'attacker.g@example.com', email_verified => \1});
$nurl->query->merge(login_hint => 'csrf');
my $ncb = Mojo::URL->new($ua->get($nurl)->res->headers->location // '');
my $ncalls = fake_calls();
$t->get_ok($ncb)->status_is(400, 'nonce: a callback without the nonce cookie (the victim of login CSRF) is 400')
  ->json_is('/detail' => 'OAuth state does not belong to this browser', 'nonce: missing cookie detail');
ok(!grep({ $_->name =~ /^(access|refresh)_token$/ } @{$t->tx->res->cookies}), 'nonce: missing cookie: no login cookies');
authorize_url('other browser');
my ($other_nonce) = grep { defined && length && $_ ne $NONCE_OF{$nstate} } values %NONCE_OF;
$t->get_ok($ncb => {Cookie => "oauth_nonce=$other_nonce"})
  ->status_is(400, "nonce: another browser's nonce cookie is 400")
  ->json_is('/detail' => 'OAuth state does not belong to this browser', 'nonce: mismatched cookie detail');
$t->get_ok($ncb => {Cookie => 'oauth_nonce=' . ('0' x 64)})->status_is(400, 'nonce: a forged nonce is 400');
is(fake_calls(), $ncalls, 'nonce: refused before the code reached the token endpoint');
$t->get_ok($ncb => nonce_header($ncb))->status_is(302, 'nonce: the browser that asked for the state signs in');
like(join("\n", @{$t->tx->res->headers->every_header('Set-Cookie')}),
    qr/oauth_nonce=; HttpOnly; Max-Age=0; Path=\/api\/v1\/oauth\/google\/callback/, 'nonce: the callback clears the cookie');

# ---- first login: a new user -----------------------------------------------------------

fake_user(alice => {sub => '100000000000000000001', email => 'alice.g@example.com', email_verified => \1,
                    given_name => 'Alice', family_name => 'Gee', picture => 'https://lh3.example/alice.png',
                    name => 'Alice Gee'},
          {refresh_token => 'fake-rt-alice'});
my $tx = google_login(alice => 'alice first login');
is($tx->res->headers->location, '/', 'alice first login: Location is OAUTH_SUCCESS_REDIRECT');
my $c = cookies_of($tx);
ok($c->{access_token} && length $c->{access_token}->value, 'alice first login: access_token cookie set');
ok($c->{refresh_token} && length $c->{refresh_token}->value, 'alice first login: refresh_token cookie set');
ok($c->{access_token} && $c->{access_token}->httponly, 'alice first login: access_token cookie is HttpOnly');
ok($c->{access_token} && $c->{access_token}->secure, 'alice first login: access_token cookie is Secure (DEBUG=false)');
is($c->{access_token} && $c->{access_token}->samesite, 'Lax', 'alice first login: access_token cookie SameSite=Lax');
my $alice = user_row('alice.g@example.com');
like($alice->{id} // '', $UUID_RE, 'alice: a user was created');
is($alice->{username}, 'alice.g', 'alice: username from the email local part');
is($alice->{is_verified}, 't', 'alice: is_verified from email_verified');
is($alice->{first_name}, 'Alice', 'alice: first_name from given_name');
is($alice->{last_name}, 'Gee', 'alice: last_name from family_name');
is($alice->{avatar_url}, 'https://lh3.example/alice.png', 'alice: avatar_url from picture');
my $access = jwt_claims($c->{access_token} ? $c->{access_token}->value : '');
is($access->{sub}, $alice->{id}, 'alice: the access token is for her user id');
is($access->{email}, 'alice.g@example.com', 'alice: the access token carries her email');
is($access->{type}, 'access', 'alice: the access cookie holds an access token');
my $acct = $s->psql("SELECT user_id, oauth_name, access_token, refresh_token, account_email, "
      . "expires_at - extract(epoch from now())::bigint FROM oauth_accounts "
      . "WHERE account_id = '100000000000000000001'");
chomp $acct;
my @a = split /\|/, $acct;
is($a[0], $alice->{id}, 'alice: oauth_accounts row linked to her user');
is($a[1], 'google', 'alice: oauth_name google');
like($a[2] // '', qr/^fake-at-/, 'alice: provider access token stored');
is($a[3], 'fake-rt-alice', 'alice: provider refresh token stored');
is($a[4], 'alice.g@example.com', 'alice: account_email stored');
ok(defined $a[5] && $a[5] > 3500 && $a[5] <= 3600, 'alice: expires_at = now + expires_in');
my $first_at = $a[2];

# The cookies are a real login: refresh works with the refresh cookie, and the API accepts
# the access cookie (Secure cookies are not sent by the jar over http: send them by hand).
$t->post_ok($s->url('/api/v1/auth/refresh') => {Cookie => 'refresh_token=' . $c->{refresh_token}->value})
  ->status_is(200, 'alice: the refresh_token cookie refreshes')
  ->json_is('/token_type' => 'bearer', 'alice: refresh answers bearer tokens');
$t->get_ok($s->url('/api/v1/users/me') => {Cookie => 'access_token=' . $c->{access_token}->value});
SKIP: {
    skip 'GET /api/v1/users/me is not routed yet', 2 if $t->tx->res->code == 404;
    $t->status_is(200, 'alice: /api/v1/users/me with the access_token cookie is 200')
      ->json_is('/email' => 'alice.g@example.com', 'alice: /api/v1/users/me shows her Google email');
}

# The callback URL cannot be used again: its state is spent (and the code not even tried).
my $calls = fake_calls();
$t->get_ok($tx->req->url => nonce_header($tx->req->url))->status_is(400, 'replayed callback is 400')
  ->json_is('/detail' => 'Invalid OAuth state', 'replayed callback: Invalid OAuth state');
is(fake_calls(), $calls, 'replayed callback: the token endpoint was not called');

# ---- second login of the same account ----------------------------------------------------

fake_user(alice => {sub => '100000000000000000001', email => 'alice.g@example.com', email_verified => \1,
                    given_name => 'Changed', family_name => 'Name'});    # no refresh_token this time
google_login(alice => 'alice second login');
my $again = user_row('alice.g@example.com');
is($again->{id}, $alice->{id}, 'alice second login: same user');
is($again->{first_name}, 'Alice', 'alice second login: profile not overwritten');
is(oauth_rows('100000000000000000001'), 1, 'alice second login: still one oauth_accounts row');
my ($at2, $rt2) = split /\|/, $s->psql("SELECT access_token, refresh_token FROM oauth_accounts "
      . "WHERE account_id = '100000000000000000001'");
chomp $rt2 if defined $rt2;
isnt($at2, $first_at, 'alice second login: the provider access token is updated');
is($rt2, 'fake-rt-alice', 'alice second login: the stored refresh token is kept when none is sent');
is(jwt_claims(cookies_of($t->tx)->{access_token}->value)->{sub}, $alice->{id},
   'alice second login: cookie for the same user');

# ---- account takeover: an unverified local account is never linked -----------------------

# The attacker registers the victim's address with a password of their own choosing; the
# victim's later Google sign-in must not land in that account.
$t->post_ok($s->url('/api/v1/auth/register') => json =>
      {email => 'victim@example.com', username => 'not_the_victim', password => 'attacker password 1'})
  ->status_is(201, 'takeover: the attacker registers victim@example.com');
my $trap_id = $t->tx->res->json('/user/id');
fake_user(victim => {sub => '100000000000000000030', email => 'victim@example.com', email_verified => \1});
google_login(victim => 'takeover: the victim signs in with Google', 400);
$t->json_is('/detail' => 'OAUTH_USER_ALREADY_EXISTS', 'takeover: OAUTH_USER_ALREADY_EXISTS');
ok(!grep({ $_->name =~ /^(access|refresh)_token$/ } @{$t->tx->res->cookies}), 'takeover: no login cookies');
is(oauth_rows('100000000000000000030'), 0, "takeover: the victim's Google account is not linked");
$t->post_ok($s->url('/api/v1/auth/login') => json => {username => 'not_the_victim', password => 'attacker password 1'})
  ->status_is(200, 'takeover: the attacker logs in to their account');
is(jwt_claims($t->tx->res->json('/access_token'))->{sub}, $trap_id, 'takeover: ... which has no Google link');
is($s->psql("SELECT count(*) FROM oauth_accounts WHERE user_id = '$trap_id'") + 0, 0,
   "takeover: the attacker's account holds no oauth_accounts row");

# Same attack through an email change: the address becomes unverified, so no link either.
$t->post_ok($s->url('/auth/register') => json =>
      {email => 'mallory@example.com', username => 'mallory', password => 'attacker password 2'})
  ->status_is(201, 'takeover by email change: mallory registers');
my $mal_id = $t->tx->res->json('/id');
$s->psql("UPDATE users SET is_verified = true WHERE id = '$mal_id'");
$t->post_ok($s->url('/auth/jwt/login') => form => {username => 'mallory', password => 'attacker password 2'})
  ->status_is(200, 'takeover by email change: mallory logs in');
my $mal_tok = $t->tx->res->json('/access_token');
$t->patch_ok($s->url('/users/me') => {Authorization => "Bearer $mal_tok"} => json => {email => 'victim2@example.com'})
  ->status_is(200, "takeover by email change: mallory takes the victim's address")
  ->json_is('/is_verified' => Mojo::JSON::false, 'takeover by email change: the new address is not verified');
fake_user(victim2 => {sub => '100000000000000000031', email => 'victim2@example.com', email_verified => \1});
google_login(victim2 => 'takeover by email change: the victim signs in with Google', 400);
$t->json_is('/detail' => 'OAUTH_USER_ALREADY_EXISTS', 'takeover by email change: OAUTH_USER_ALREADY_EXISTS');
is(oauth_rows('100000000000000000031'), 0, 'takeover by email change: not linked');

# ---- linking to a verified password account ----------------------------------------------

$t->post_ok($s->url('/api/v1/auth/register') => json =>
      {email => 'bob@example.com', username => 'bob_pw', password => 'correct horse battery'})
  ->status_is(201, 'bob registers with a password');
my $bob_id = $t->tx->res->json('/user/id');
fake_user(bob => {sub => '100000000000000000002', email => 'Bob@Example.com', email_verified => \1,
                  given_name => 'Robert'});
google_login(bob => 'bob before verifying his address', 400);
$t->json_is('/detail' => 'OAUTH_USER_ALREADY_EXISTS', 'bob unverified: not linked yet');
$s->psql("UPDATE users SET is_verified = true WHERE id = '$bob_id'");
google_login(bob => 'bob links Google');
is(jwt_claims(cookies_of($t->tx)->{access_token}->value)->{sub}, $bob_id,
   'bob links Google: logged in as the password user (email matched case-insensitively)');
is($s->psql("SELECT user_id FROM oauth_accounts WHERE account_id = '100000000000000000002'") =~ s/\s+//gr,
   $bob_id, 'bob links Google: oauth_accounts row points at his user');
is($s->psql(q{SELECT count(*) FROM users WHERE lower(email) = 'bob@example.com'}) + 0, 1,
   'bob links Google: no second user');
$t->post_ok($s->url('/api/v1/auth/login') => json => {username => 'bob_pw', password => 'correct horse battery'})
  ->status_is(200, 'bob links Google: his password still works');

# An email Google did not verify is not linked to an existing account, even a verified one.
$t->post_ok($s->url('/api/v1/auth/register') => json =>
      {email => 'carol@example.com', username => 'carol', password => 'correct horse battery'})
  ->status_is(201, 'carol registers with a password');
$s->psql(q{UPDATE users SET is_verified = true WHERE email = 'carol@example.com'});
fake_user(carol => {sub => '100000000000000000003', email => 'carol@example.com', email_verified => \0});
google_login(carol => 'carol unverified', 400);
$t->json_is('/detail' => 'OAUTH_USER_ALREADY_EXISTS', 'carol unverified: OAUTH_USER_ALREADY_EXISTS');
ok(!grep({ $_->name =~ /^(access|refresh)_token$/ } @{$t->tx->res->cookies}), 'carol unverified: no login cookies');
is(oauth_rows('100000000000000000003'), 0, 'carol unverified: no oauth_accounts row');

# ---- new users: usernames and bounded profiles ------------------------------------------

fake_user(dave => {sub => '100000000000000000004', email => 'dave@example.com', email_verified => \0});
google_login(dave => 'dave new unverified');
is(user_row('dave@example.com')->{is_verified}, 'f', 'dave: a new user with an unverified email is not verified');

$t->post_ok($s->url('/api/v1/auth/register') => json =>
      {email => 'someone@example.com', username => 'eve.x', password => 'correct horse battery'})
  ->status_is(201, 'someone registers the username eve.x');
fake_user(eve => {sub => '100000000000000000005', email => 'eve.x@example.com', email_verified => \1});
google_login(eve => 'eve username taken');
is(user_row('eve.x@example.com')->{username}, 'eve.x1', 'eve: a taken username gets a digit');

fake_user(odd => {sub => '100000000000000000006', email => "o'neil+chat\@example.com", email_verified => \1,
                  given_name => "\x{e9}" x 150, family_name => 'x' x 101,
                  picture => 'https://lh3.example/' . ('p' x 600)});
google_login(odd => 'odd email and long profile');
my $odd = user_row("o''neil+chat\@example.com");
is($odd->{username}, 'oneilchat', 'odd: username keeps only [A-Za-z0-9_.-]');
is(length(Mojo::Util::decode('UTF-8', $odd->{first_name})), 100, 'odd: first_name cut to 100 characters');
is(length($odd->{last_name}), 100, 'odd: last_name cut to 100 characters');
is($odd->{avatar_url}, '', 'odd: a picture URL over 500 characters is dropped');

fake_user(ab => {sub => '100000000000000000007', email => 'ab@example.com', email_verified => \1});
google_login(ab => 'short local part');
is(user_row('ab@example.com')->{username}, 'ab_user', 'short local part: padded to 3+ characters');

# Two first logins of one new account at once (two workers): both succeed, one user.
fake_user(race => {sub => '100000000000000000010', email => 'race@example.com', email_verified => \1});
my @cbs = map { provider_redirect(race => "race $_") } 1 .. 2;
my $rua = Chatd::Test::ua();
my @codes;
Mojo::Promise->all(map { $rua->get_p($_ => nonce_header($_)) } @cbs)->then(sub { @codes = map { $_->[0]->res->code } @_ })
  ->catch(sub { diag("race: @_") })->wait;
is("@codes", '302 302', 'race: two simultaneous first logins both succeed');
is($s->psql(q{SELECT count(*) FROM users WHERE email = 'race@example.com'}) + 0, 1, 'race: one user');
is(oauth_rows('100000000000000000010'), 1, 'race: one oauth_accounts row');

# ---- refusals ----------------------------------------------------------------------------

fake_user(noemail => {sub => '100000000000000000008', email_verified => \1});
google_login(noemail => 'no email', 400);
$t->json_is('/detail' => 'OAUTH_NOT_AVAILABLE_EMAIL', 'no email: OAUTH_NOT_AVAILABLE_EMAIL');

fake_user(huge => {sub => '100000000000000000009', email => 'huge@example.com', email_verified => \1,
                   padding => 'z' x 70000});
google_login(huge => 'userinfo over 64 KiB', 400);
$t->json_is('/detail' => 'OAuth user info request failed', 'userinfo over 64 KiB: refused');
is($s->psql(q{SELECT count(*) FROM users WHERE email = 'huge@example.com'}) + 0, 0, 'userinfo over 64 KiB: no user');

# An inactive user cannot sign in with Google either.
$s->psql("UPDATE users SET is_active = false WHERE id = '$alice->{id}'");
google_login(alice => 'alice inactive', 400);
$t->json_is('/detail' => 'LOGIN_BAD_CREDENTIALS', 'alice inactive: LOGIN_BAD_CREDENTIALS');
ok(!grep({ $_->name =~ /^(access|refresh)_token$/ } @{$t->tx->res->cookies}), 'alice inactive: no login cookies');
$s->psql("UPDATE users SET is_active = true WHERE id = '$alice->{id}'");

# The provider rejects the code: 400, and a new state is needed after that.
my $state = authorize_url('bogus code')->query->param('state');
my $bogus = Mojo::URL->new($CALLBACK)->query(code => 'not-a-code', state => $state);
$t->get_ok($bogus => nonce_header($bogus))->status_is(400, 'code the provider rejects is 400')
  ->json_is('/detail' => 'OAuth code exchange failed', 'rejected code: OAuth code exchange failed');

my $now = time;
my %bad_state = (
    'garbage'                      => 'not-a-jwt',
    'signed with another key'      => jwt_hs256({jti => uuid4(), iat => $now, exp => $now + 600,
                                                 aud => ['fastapi-users:oauth-state']}, 'another key ' x 4),
    'expired'                      => jwt_hs256({jti => uuid4(), iat => $now - 1200, exp => $now - 600,
                                                 aud => ['fastapi-users:oauth-state']}, $s->secret_key),
    'another audience'             => jwt_hs256({jti => uuid4(), iat => $now, exp => $now + 600,
                                                 aud => ['fastapi-users:auth']}, $s->secret_key),
    'an access token'              => $c->{access_token}->value,
    'alg none'                     => b64url(encode_json({alg => 'none', typ => 'JWT'})) . '.'
      . b64url(encode_json({jti => uuid4(), iat => $now, exp => $now + 600,
                            aud => ['fastapi-users:oauth-state']})) . '.',
);
$calls = fake_calls();
for my $what (sort keys %bad_state) {
    $t->get_ok(Mojo::URL->new($CALLBACK)->query(code => 'some-code', state => $bad_state{$what}))
      ->status_is(400, "state $what: 400")->json_is('/detail' => 'Invalid OAuth state', "state $what: Invalid OAuth state");
}
$t->get_ok(Mojo::URL->new($CALLBACK)->query(code => 'some-code'))
  ->status_is(400, 'no state: 400')->json_is('/detail' => 'Invalid OAuth state', 'no state: Invalid OAuth state');
is(fake_calls(), $calls, 'bad states: the token endpoint was never called');

# A state signed with the right key works: the key is what makes a state, with a fresh jti
# that is the hash of the browser's nonce cookie.
my $my_nonce = Chatd::Test::random_hex(32);
my $made = jwt_hs256({jti => nonce_jti($my_nonce), iat => $now, exp => $now + 600,
                      aud => ['fastapi-users:oauth-state']}, $s->secret_key);
$t->get_ok(Mojo::URL->new($CALLBACK)->query(code => 'some-code', state => $made) => {Cookie => "oauth_nonce=$my_nonce"})
  ->status_is(400, 'well-signed state with a bad code: 400')
  ->json_is('/detail' => 'OAuth code exchange failed', 'well-signed state: gets as far as the code exchange');

$state = authorize_url('provider error')->query->param('state');
$t->get_ok(Mojo::URL->new($CALLBACK)->query(error => 'access_denied', state => $state))
  ->status_is(400, 'error=access_denied is 400')->json_is('/detail' => 'access_denied', 'error=access_denied: detail');
$t->get_ok(Mojo::URL->new($CALLBACK)->query(state => $state))
  ->status_is(400, 'no code is 400')->json_is('/detail' => 'Bad Request', 'no code: Bad Request');
$t->post_ok($CALLBACK)->status_is(405, 'POST callback is 405');

# ---- the end -----------------------------------------------------------------------------

my $log = join '', map { Chatd::Test::_slurp($_) // '' } glob($s->var_dir . '/log/fcgi*.log');
unlike($log, qr/fake-at-|fake-rt-|fake-code-/, 'no provider token or code in the fcgi log');

$s->finish;
kill 'TERM', $fake->{pid};
my $r = Chatd::Test::wait_cmd($fake);
$fake->{reaped} = 1;
ok($r->{exit} == 0 || $r->{signal} == 15, 'the fake provider ran until stopped') or diag(Chatd::Test::describe($r));
Chatd::Test::done();

# Google sign-in, the other configurations (API.md "Google OAuth2"): with
# OAUTH_SUCCESS_REDIRECT empty the callback answers the tokens as JSON (and still sets the
# cookies); GOOGLE_REDIRECT_URI replaces the default redirect URI end to end; an unreachable
# token endpoint is a 400; without GOOGLE_CLIENT_ID the status is false and the flow 503.
# The redirect mode and the refusals are in t/1100-oauth-google.t.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::JSON qw(decode_json);
use Mojo::URL;
use Mojo::Util qw(b64_decode);

my $CLIENT_ID     = 'chatd-json-test.apps.example';
my $CLIENT_SECRET = 'json-mode-secret';
my $REDIRECT      = 'https://app.example/oauth/done?from=google';
my $UUID_RE       = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

my ($FAKE, $ua, $fake) = Chatd::Test::start_fake_google($CLIENT_ID, $CLIENT_SECRET);

sub jwt_claims {
    my (undef, $p) = split /\./, shift // '';
    return {} unless defined $p;
    $p =~ tr{-_}{+/};
    $p .= '=' x (-length($p) % 4);
    return eval { decode_json(b64_decode($p)) } // {};
}

my %google = (
    GOOGLE_CLIENT_ID     => $CLIENT_ID,
    GOOGLE_CLIENT_SECRET => $CLIENT_SECRET,
    GOOGLE_AUTHORIZE_URL => "$FAKE/authorize?hd=example.com",    # a URL with a query of its own
    GOOGLE_TOKEN_URL     => "$FAKE/token",
    GOOGLE_USERINFO_URL  => "$FAKE/userinfo",
);

# ---- JSON mode, explicit redirect URI ----------------------------------------------------

my $s = Chatd::Test->new(name => 'json', parts => 'redis fcgi nginx',
    env => {%google, OAUTH_SUCCESS_REDIRECT => '', GOOGLE_REDIRECT_URI => $REDIRECT})->start;
my $t = $s->t;

$ua->post("$FAKE/_user" => json => {hint => 'jo', profile => {sub => '200000000000000000001',
    email => 'jo@example.com', email_verified => \1, given_name => 'Jo'}});
$t->get_ok($s->url('/api/v1/oauth/google/authorize'))->status_is(200, 'json: authorize is 200');
my $raw = $t->tx->res->json('/authorization_url') // '';
my %nonce = map { $_->name => $_->value } @{$t->tx->res->cookies};
like($nonce{oauth_nonce} // '', qr/^[0-9a-f]{64}$/, 'json: authorize sets the oauth_nonce cookie');
like($raw, qr/^\Q$FAKE\E\/authorize\?hd=example\.com&response_type=code&/,
    'json: a query in GOOGLE_AUTHORIZE_URL is kept, ours appended with &');
my $url = Mojo::URL->new($raw);
is($url->query->param('redirect_uri'), $REDIRECT, 'json: redirect_uri is GOOGLE_REDIRECT_URI');
like($raw, qr/redirect_uri=https%3A%2F%2Fapp\.example%2Foauth%2Fdone%3Ffrom%3Dgoogle&/,
    'json: redirect_uri is percent-encoded');
$url->query->merge(login_hint => 'jo');
my $tx = $ua->get($url);
is($tx->res->code, 302, 'json: the provider redirects back');
my $back = Mojo::URL->new($tx->res->headers->location // '');
is($back->host, 'app.example', 'json: ... to GOOGLE_REDIRECT_URI');

# The frontend at GOOGLE_REDIRECT_URI hands code and state to the API; the token request
# must carry the same redirect_uri (the fake checks it).
my $cb = Mojo::URL->new($s->url('/api/v1/oauth/google/callback'))
  ->query(code => $back->query->param('code'), state => $back->query->param('state'));
# The browser's nonce cookie goes along (Secure: the jar would not send it over http).
$t->get_ok($cb => {Cookie => "oauth_nonce=$nonce{oauth_nonce}"})->status_is(200, 'json: callback is 200')
  ->header_like('Content-Type' => qr{^application/json}, 'json: callback answers JSON')
  ->json_is('/token_type' => 'bearer', 'json: token_type bearer')
  ->json_like('/access_token' => qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'json: an access token')
  ->json_like('/refresh_token' => qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'json: a refresh token')
  ->json_is('/user/email' => 'jo@example.com', 'json: user.email')
  ->json_is('/user/username' => 'jo_user', 'json: user.username')
  ->json_is('/user/first_name' => 'Jo', 'json: user.first_name')
  ->json_is('/user/is_verified' => Mojo::JSON::true, 'json: user.is_verified')
  ->json_is('/user/is_active' => Mojo::JSON::true, 'json: user.is_active')
  ->json_is('/user/is_superuser' => Mojo::JSON::false, 'json: user.is_superuser')
  ->json_like('/user/id' => $UUID_RE, 'json: user.id');
ok(!defined $t->tx->res->headers->location, 'json: no Location');
my %cookie = map { $_->name => $_->value } @{$t->tx->res->cookies};
is($cookie{access_token}, $t->tx->res->json('/access_token'), 'json: the access_token cookie is set too');
is($cookie{refresh_token}, $t->tx->res->json('/refresh_token'), 'json: the refresh_token cookie is set too');
my $id = $t->tx->res->json('/user/id');
is(jwt_claims($t->tx->res->json('/access_token'))->{sub}, $id, 'json: the access token is for the user');
my $refresh = $t->tx->res->json('/refresh_token');
$t->post_ok($s->url('/api/v1/auth/refresh') => json => {refresh_token => $refresh})
  ->status_is(200, 'json: the refresh token from the callback refreshes');

# ---- an unreachable token endpoint ---------------------------------------------------------

my $dead_port = Chatd::Test::free_port();    # reserved, and nothing listens on it
my $d = Chatd::Test->new(name => 'deadtoken', parts => 'redis fcgi nginx',
    env => {%google, GOOGLE_TOKEN_URL => "http://127.0.0.1:$dead_port/token"})->start;
my $dt = $d->new_t;
$dt->get_ok($d->url('/api/v1/oauth/google/authorize'))->status_is(200, 'deadtoken: authorize is 200');
my $state = Mojo::URL->new($dt->tx->res->json('/authorization_url') // '')->query->param('state');
my ($dn) = map { $_->value } grep { $_->name eq 'oauth_nonce' } @{$dt->tx->res->cookies};
$dt->get_ok(Mojo::URL->new($d->url('/api/v1/oauth/google/callback'))->query(code => 'c', state => $state)
    => {Cookie => 'oauth_nonce=' . ($dn // '')})
  ->status_is(400, 'deadtoken: unreachable token endpoint is 400')
  ->json_is('/detail' => 'OAuth code exchange failed', 'deadtoken: OAuth code exchange failed');

# ---- not configured ------------------------------------------------------------------------

my $u = Chatd::Test->new(name => 'unconfigured', parts => 'redis fcgi nginx',
    env => {GOOGLE_CLIENT_SECRET => 'a secret without a client id'})->start;
$u->allow_5xx(503);
my $ut = $u->new_t;
$ut->get_ok($u->url('/api/v1/oauth/google/status'))->status_is(200, 'unconfigured: status is 200')
  ->json_is('' => {configured => Mojo::JSON::false}, 'unconfigured: configured false');
$ut->get_ok($u->url('/api/v1/oauth/google/authorize'))->status_is(503, 'unconfigured: authorize is 503')
  ->json_is('' => {detail => 'Google OAuth is not configured'}, 'unconfigured: authorize detail');
$ut->get_ok($u->url('/api/v1/oauth/google/callback?code=x&state=y'))->status_is(503, 'unconfigured: callback is 503')
  ->json_is('/detail' => 'Google OAuth is not configured', 'unconfigured: callback detail');

$_->finish for $s, $d, $u;
kill 'TERM', $fake->{pid};
my $r = Chatd::Test::wait_cmd($fake);
$fake->{reaped} = 1;
ok($r->{exit} == 0 || $r->{signal} == 15, 'the fake provider ran until stopped') or diag(Chatd::Test::describe($r));
Chatd::Test::done();

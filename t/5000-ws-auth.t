# WebSocket authentication (WS.md "Connecting"): the access token from ?token= or the
# access_token cookie; 1008 with "Missing token" / "Invalid or expired token" / "Token user_id
# mismatch" after the upgrade; 403 before it for a user id that is not a UUID or a foreign
# Origin; messages sent before authentication completes are answered afterwards, in order;
# the logs carry the request id and user, never the token.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Digest::SHA qw(hmac_sha256);
use Mojo::JSON qw(encode_json);
use Mojo::Util qw(b64_encode);

my $s     = Chatd::Test->new->start;
my $alice = Chatd::WsClient::register($s, 'alice');
my $bob   = Chatd::WsClient::register($s, 'bob');

sub url { my ($uid, %o) = @_; return $s->ws_url($s->ws_connect_path($uid, %o)) }

sub b64url { my $b = b64_encode(shift, ''); $b =~ tr{+/}{-_}; $b =~ s/=+$//; return $b }

# An HS256 JWT with these claims signed with $key (the stack's SECRET_KEY by default).
sub forge {
    my ($claims, $key) = @_;
    my $h = b64url(encode_json({alg => 'HS256', typ => 'JWT'}));
    my $p = b64url(encode_json($claims));
    return "$h.$p." . b64url(hmac_sha256("$h.$p", $key // $s->secret_key));
}
sub claims {
    my ($sub, %o) = @_;
    my $now = time;
    return {sub => $sub, type => 'access', aud => ['fastapi-users:auth'], iat => $now - 60,
        exp => $now + 600, jti => '11111111-2222-4333-8444-555555555555', %o};
}

sub refused {
    my ($url, $reason, $title, %o) = @_;
    my $c = Chatd::WsClient->start($url, %o);
    ok($c->wait_closed(10), "$title: closed by the server");
    is($c->close_code, 1008, "$title: close code 1008");
    is($c->close_reason, $reason, "$title: reason '$reason'");
}

sub accepted {
    my ($url, $title, %o) = @_;
    my $c = Chatd::WsClient->start($url, %o);
    ok($c->sync_point, "$title: open and answering ping");
    ok($c->is_open, "$title: still open");
    return $c;
}

# ---- accepted -----------------------------------------------------------------------------
my $q = accepted(url($alice->{id}, token => $alice->{token}), 'token in the query');
my $k = accepted(url($alice->{id}), 'token in the access_token cookie',
    headers => {Cookie => "theme=dark; access_token=$alice->{token}; other=1"});
my $up = accepted(url(uc $alice->{id}, token => $alice->{token}), 'upper-case user id in the path');
my $forged = accepted(url($bob->{id}, token => forge(claims($bob->{id}))), 'a token we signed ourselves');
$_->close for $q, $k, $up, $forged;

# ---- 1008 after the upgrade ---------------------------------------------------------------
refused(url($alice->{id}), 'Missing token', 'no token at all');
refused(url($alice->{id}), 'Missing token', 'a cookie without access_token',
    headers => {Cookie => 'refresh_token=x; xaccess_token=' . $alice->{token}});
refused(url($alice->{id}, token => 'not.a.jwt'), 'Invalid or expired token', 'a malformed token');
refused(url($alice->{id}, token => $alice->{refresh}), 'Invalid or expired token', 'a refresh token');
refused(url($alice->{id}, token => forge(claims($alice->{id}), 'wrong-key')), 'Invalid or expired token',
    'a token signed with another key');
refused(url($alice->{id}, token => forge(claims($alice->{id}, exp => time - 3600, iat => time - 7200))),
    'Invalid or expired token', 'an expired token');
refused(url($alice->{id}, token => forge(claims($alice->{id}, type => 'refresh'))),
    'Invalid or expired token', 'an access-signed token of type refresh');
refused(url($alice->{id}, token => $bob->{token}), 'Token user_id mismatch', "another user's token");
my $ghost = '6a1e7c4e-0000-4000-8000-000000000001';
refused(url($ghost, token => forge(claims($ghost))), 'Invalid or expired token', 'a token of a user that does not exist');

$s->psql("UPDATE users SET is_active = false WHERE id = '$bob->{id}'");
refused(url($bob->{id}, token => $bob->{token}), 'Invalid or expired token', 'an inactive user');
$s->psql("UPDATE users SET is_active = true WHERE id = '$bob->{id}'");

# ---- 403 before the upgrade ---------------------------------------------------------------
my $bad = Chatd::WsClient->start($s->ws_url('/api/v1/ws/not-a-uuid?token=' . $alice->{token}));
is($bad->status, 403, 'a user id that is not a UUID is refused with 403');
my $origin = Chatd::WsClient->start(url($alice->{id}, token => $alice->{token}),
    headers => {Origin => 'http://evil.example'});
is($origin->status, 403, 'a foreign Origin is refused with 403');
my $own = Chatd::WsClient->start(url($alice->{id}, token => $alice->{token}),
    headers => {Origin => 'http://localhost:5173'});
ok($own->sync_point, 'an Origin from CORS_ORIGINS_STR is accepted');
$own->close;

# ---- messages before authentication completes ---------------------------------------------
my $early = Chatd::WsClient->start(url($alice->{id}, token => $alice->{token}),
    first => [{type => 'ping'}, {type => 'nope'}, 'not json', {type => 'ping'}]);
my @got;
ok(Chatd::WsClient::wait_until(sub { (@got = @{$early->frames}) >= 4 }, 10), 'four answers to four early messages');
is_deeply([map { $_->{type} } @got[0 .. 3]], [qw(pong error error pong)], 'answered in the order sent');
$early->close;

# Messages sent to a connection that is then refused get no answer, only the close.
my $rej = Chatd::WsClient->start(url($alice->{id}, token => 'bad'), first => [{type => 'ping'}]);
ok($rej->wait_closed(10), 'a refused connection is closed');
is(scalar(grep { $_->{type} eq 'pong' } @{$rej->frames}), 0, 'and never answers what it was sent');

# ---- logs ------------------------------------------------------------------------------------
my $log = join '', map { Chatd::Test::_slurp($_) // '' } glob($s->var_dir . '/log/wsd*.log');
unlike($log, qr/\Q$alice->{token}\E/, 'the wsd log never contains an access token');
unlike($log, qr/\Q$alice->{refresh}\E/, 'nor a refresh token');
like($log, qr/ req=[0-9a-f]{16,} .*refused: Missing token/, 'refusals are logged with the request id');
like($log, qr/ user=\Q$bob->{id}\E .*refused: Invalid or expired token/, 'and with the user id');

Chatd::Test::done();

# A WebSocket lives no longer than what authorised it (WS.md "Connecting", issue 8 item 3):
# 1008 "Session revoked" on every wsd instance when the user's sessions end (password change:
# all but the caller's; reset: all; logout: that one), 1008 "User inactive" on deactivation,
# 1008 "Token expired" at the token's exp unless renewed with {"type":"auth"} (answered
# "authed"); a bad `auth` closes with the handshake's reasons; a revoked session's token is
# refused at connect; an inactive sender's `message` is refused and not stored.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Time::HiRes ();

my $s = Chatd::Test->new(wsd_instances => 2)->start;
my @ports = split ' ', $s->env('WSD_PORTS') // '';
is(scalar @ports, 2, 'two wsd instances');
my $PW = 'password123';

sub claims { Chatd::WsClient::claims_of(shift) }

# A new login session of user $u: {id, name, token, refresh, auth, sid}.
sub login {
    my ($u, $pw) = @_;
    my $res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'),
        json => {username => $u->{name}, password => $pw // $PW})->res;
    is($res->code, 200, "$u->{name} logs in");
    my $j = $res->json // {};
    return {%$u, token => $j->{access_token}, refresh => $j->{refresh_token},
        auth => {Authorization => "Bearer " . ($j->{access_token} // '')},
        sid => claims($j->{access_token})->{sid}};
}

# A socket of session $u straight to instance $n (1 or 2), open and answering.
sub on {
    my ($u, $n, $title, $token) = @_;
    my $url = "ws://127.0.0.1:$ports[$n - 1]" . $s->ws_connect_path($u->{id}, token => $token // $u->{token});
    my $c = Chatd::WsClient->start($url);
    ok($c->sync_point, "$title: connected to instance $n");
    return $c;
}

sub closed_with {
    my ($c, $reason, $title) = @_;
    ok($c->wait_closed(10), "$title: closed by the server");
    is($c->close_code, 1008, "$title: 1008");
    is($c->close_reason, $reason, "$title: '$reason'");
}

sub still_open {
    my ($c, $title) = @_;
    ok($c->sync_point && $c->is_open, "$title: still open and answering");
}

# ---- password change: every other session's sockets, on both instances -------------------
my $alice = Chatd::WsClient::register($s, 'alice');
my $keep  = login($alice);
my $other = login($alice);
my $mine1  = on($keep, 1, "the caller's session");
my $mine2  = on($keep, 2, "the caller's session");
my $other1 = on($other, 1, 'another session');
my $other2 = on($other, 2, 'another session');
my $reg2   = on($alice, 2, 'the registration session');
my $legacy = on($alice, 1, 'a token without sid', Chatd::WsClient::forge_access($s, $alice->{id}, iat => time - 5));
my $t0 = Time::HiRes::time();
my $res = Chatd::WsClient::api($s, $keep, PATCH => '/users/me',
    json => {password => 'alice new pw 1', current_password => $PW});
is($res->code, 200, 'alice changes her password');
closed_with($other1, 'Session revoked', 'password change: the other session on instance 1');
closed_with($other2, 'Session revoked', 'password change: the other session on instance 2');
closed_with($reg2, 'Session revoked', 'password change: the registration session');
closed_with($legacy, 'Session revoked', 'password change: a socket of a token without sid');
note(sprintf('password change to the last socket closed on two instances: %.0f ms', 1000 * (Time::HiRes::time() - $t0)));
still_open($mine1, "password change: the caller's session on instance 1");
still_open($mine2, "password change: the caller's session on instance 2");
ok(!grep({ ($_->{type} // '') =~ /session_revoked|user_inactive/ } @{$mine1->frames}, @{$mine2->frames}),
    'the internal event never reaches a client');

# ---- a revoked session at connect -------------------------------------------------------
for my $n (1, 2) {
    my $c = Chatd::WsClient->start("ws://127.0.0.1:$ports[$n - 1]"
          . $s->ws_connect_path($other->{id}, token => $other->{token}));
    closed_with($c, 'Invalid or expired token', "a revoked session's token at connect (instance $n)");
}

# ---- logout closes that session's sockets only --------------------------------------------
my $out = login($alice, 'alice new pw 1');
my $out2 = on($out, 2, 'a session about to log out');
$res = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/logout'), json => {refresh_token => $out->{refresh}})->res;
is($res->code, 200, 'that session logs out');
closed_with($out2, 'Session revoked', 'logout: its socket');
still_open($mine1, 'logout: the sockets of other sessions');

my $jwt = Chatd::WsClient::ua()->post($s->url('/auth/jwt/login'),
    form => {username => $alice->{name}, password => 'alice new pw 1'})->res->json('/access_token');
my $jw1 = on({%$alice, token => $jwt}, 1, 'a /auth/jwt/login session');
$res = Chatd::WsClient::ua()->post($s->url('/auth/jwt/logout') => {Authorization => "Bearer $jwt"})->res;
is($res->code, 204, '/auth/jwt/logout: 204');
closed_with($jw1, 'Session revoked', 'jwt logout: its socket');
still_open($mine2, 'jwt logout: the sockets of other sessions');

# ---- reset-password closes every socket ---------------------------------------------------
Chatd::WsClient::ua()->post($s->url('/auth/forgot-password'), json => {email => "$alice->{name}\@example.com"});
my $reset;
Chatd::Test::wait_for(sub {
    for my $f (glob($s->var_dir . '/mail/*.eml')) {
        my $m = Chatd::Test::_slurp($f) // next;
        ($reset) = $m =~ /^Token: (\S+)\r?$/m if $m =~ /^To: .*\Q$alice->{name}\E\@example\.com/mi;
        return 1 if $reset;
    }
    return 0;
}, 20, 'the reset mail');
$res = Chatd::WsClient::ua()->post($s->url('/auth/reset-password'), json => {token => $reset, password => 'alice reset pw'})->res;
is($res->code, 200, 'alice resets her password');
closed_with($mine1, 'Session revoked', 'reset: every socket (instance 1)');
closed_with($mine2, 'Session revoked', 'reset: every socket (instance 2)');

# ---- deactivation -------------------------------------------------------------------------
my $bob   = Chatd::WsClient::register($s, 'bob');
my $carol = Chatd::WsClient::register($s, 'carol');
my $admin = Chatd::WsClient::register($s, 'admin');
$s->psql("UPDATE users SET is_superuser = true WHERE id = '$admin->{id}'");
my $b1 = on($bob, 1, 'bob');
my $b2 = on($bob, 2, 'bob');
# Deactivated behind wsd's back (no event): the database refuses the send.
$s->psql("UPDATE users SET is_active = false WHERE id = '$bob->{id}'");
$b1->send({type => 'message', content => 'after deactivation', receiver_id => $carol->{id}, client_id => 'late'});
my $r = $b1->next_frame(sub { ($_->{client_id} // '') eq 'late' }) // {};
is($r->{type}, 'error', "an inactive sender's message is refused");
is($r->{message}, 'User account is inactive', 'with the detail of API.md');
is($s->psql("SELECT count(*) FROM messages WHERE sender_id = '$bob->{id}'") + 0, 0, 'and not stored');
$res = Chatd::WsClient::api($s, $admin, PATCH => "/users/$bob->{id}", json => {is_active => \0});
is($res->code, 200, 'a superuser deactivates bob');
closed_with($b1, 'User inactive', 'deactivation: instance 1');
closed_with($b2, 'User inactive', 'deactivation: instance 2');

# ---- token expiry and the auth frame ------------------------------------------------------
my $dave = Chatd::WsClient::register($s, 'dave');
my $exp  = time + 4;
my $short = on($dave, 1, 'a token expiring in 4 s', Chatd::WsClient::forge_access($s, $dave->{id}, exp => $exp));
closed_with($short, 'Token expired', 'expiry');
ok(Time::HiRes::time() >= $exp - 1, 'not before its exp');

$exp = time + 4;
my $renew = on($dave, 2, 'a token expiring in 4 s, renewed', Chatd::WsClient::forge_access($s, $dave->{id}, exp => $exp));
$renew->send({type => 'auth', token => $dave->{token}});
my $authed = $renew->next_frame(sub { $_->{type} eq 'authed' }) // {};
is($authed->{expires_at}, claims($dave->{token})->{exp}, "authed: expires_at is the new token's exp");
Chatd::WsClient::wait_until(sub { time > $exp + 2 }, 10);
still_open($renew, 'renewed: past the old exp');

my $eve = Chatd::WsClient::register($s, 'eve');
my @bad = (
    [{type => 'auth'}, 'Missing token', 'auth without a token'],
    [{type => 'auth', token => 'not.a.jwt'}, 'Invalid or expired token', 'auth with a malformed token'],
    [{type => 'auth', token => $dave->{refresh}}, 'Invalid or expired token', 'auth with a refresh token'],
    [{type => 'auth', token => $eve->{token}}, 'Token user_id mismatch', "auth with another user's token"],
    [{type => 'auth', token => Chatd::WsClient::forge_access($s, $dave->{id}, exp => time - 60, iat => time - 120)},
        'Invalid or expired token', 'auth with an expired token'],
);
for my $b (@bad) {
    my $c = on($dave, 1, $b->[2]);
    $c->send($b->[0]);
    closed_with($c, $b->[1], $b->[2]);
}
my $dl = login($dave);
Chatd::WsClient::ua()->post($s->url('/api/v1/auth/logout'), json => {refresh_token => $dl->{refresh}});
my $c = on($dave, 2, 'auth with a revoked session');
$c->send({type => 'auth', token => $dl->{token}});
closed_with($c, 'Invalid or expired token', 'auth with a revoked session');

Chatd::Test::done();

# Guessing current_password on PATCH /users/me (issue 8 item 4) spends the login rate limit of
# the account (RATE_LIMIT_LOGIN_PER_MINUTE, per IP and username), so a stolen access token
# cannot brute-force the password at Argon2 speed: 429 once the budget is spent.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new(env => {RATE_LIMIT_LOGIN_PER_MINUTE => 3})->start;
my $alice = Chatd::WsClient::register($s, 'alice');

sub change {
    my ($current) = @_;
    return Chatd::WsClient::api($s, $alice, PATCH => '/users/me',
        json => {password => 'alice new pw 1', current_password => $current});
}

for my $n (1 .. 3) {
    is(change("guess $n")->code, 400, "wrong current_password $n of 3: 400");
}
my $res = change('password123');
is($res->code, 429, 'past the budget even the right one: 429');
is($res->json('/detail'), 'Too Many Requests', 'with the detail of the login limit');
like($res->headers->header('Retry-After') // '', qr/^\d+$/, 'and Retry-After');
is(Chatd::WsClient::api($s, $alice, PATCH => '/users/me', json => {bio => 'still here'})->code, 200,
    'a PATCH without password is not limited');
my $login = Chatd::WsClient::ua()->post($s->url('/api/v1/auth/login'),
    json => {username => $alice->{name}, password => 'password123'})->res;
is($login->code, 429, 'the guesses spent the login budget of the account');

Chatd::Test::done();

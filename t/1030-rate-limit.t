# Rate limits of login and register (API.md "Conventions", (new)): shared through Redis by
# every fcgi worker, per IP+username for login and per IP for register, 429
# {"detail":"Too Many Requests"} with Retry-After, on the JSON and the fastapi-users routes.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(env => {RATE_LIMIT_LOGIN_PER_MINUTE => 3, RATE_LIMIT_REGISTER_PER_HOUR => 3,
    RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE => 5}, fcgi_workers => 3)->start;
my $t = $s->t;
my $PW = 'password123';

sub is_429 {
    my ($max, $title) = @_;
    $t->status_is(429, "$title: 429");
    is($t->tx->res->json('/detail'), 'Too Many Requests', "$title: detail");
    my $ra = $t->tx->res->headers->header('Retry-After') // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= $max, "$title: Retry-After within 1..$max") or diag("Retry-After: '$ra'");
}
sub register {
    my ($path, $name) = @_;
    $t->post_ok($s->url($path), json => {email => "$name\@example.com", username => $name, password => $PW});
}

# ---- register: 3 per hour per IP, on both register routes ------------------------------
register('/api/v1/auth/register', 'user1')->status_is(201, 'register 1 of 3: 201');
register('/auth/register', 'user2')->status_is(201, 'register 2 of 3 (fastapi-users route): 201');
register('/api/v1/auth/register', 'user1')->status_is(400, 'register 3 of 3 (a duplicate still counts): 400');
register('/api/v1/auth/register', 'user3');
is_429(3600, 'register 4 over the limit');
register('/auth/register', 'user4');
is_429(3600, 'fastapi-users register over the shared limit');

# ---- login: 3 per minute per IP and username -------------------------------------------
my $login = sub {
    my ($user, $pw) = @_;
    $t->post_ok($s->url('/api/v1/auth/login'), json => {username => $user, password => $pw});
};
$login->('user1', 'wrong-password')->status_is(401, 'login attempt 1 (wrong password): 401');
$login->('user1', 'wrong-password')->status_is(401, 'login attempt 2 (wrong password): 401');
$login->('user1', $PW)->status_is(200, 'login attempt 3 (right password): 200');
$login->('user1', $PW);
is_429(60, 'login attempt 4, even with the right password');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'user1', password => $PW});
is_429(60, 'jwt login for the same username shares the limit');
$login->('user2', $PW)->status_is(200, 'another username from the same IP is not limited');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'user2', password => 'wrong-password'})
  ->status_is(400, 'jwt login user2 attempt 2: 400');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'user2', password => $PW})
  ->status_is(200, 'jwt login user2 attempt 3: 200');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'user2', password => $PW});
is_429(60, 'jwt login user2 attempt 4');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'USER2', password => $PW});
is_429(60, 'jwt login: the bucket ignores the case of the username');

# ---- login: 5 per minute per account, its username and email sharing the budget ----------
# (the register limit is spent: the account is made in SQL with user1's password hash)
$s->psql(q{INSERT INTO users (email, username, hashed_password) }
       . q{SELECT 'user3@example.com', 'user3', hashed_password FROM users WHERE username = 'user1'});
$login->('user3', $PW)->status_is(200, "account: login by username 1: 200") for 1 .. 3;
$login->('user3@example.com', 'wrong-password')->status_is(401, 'account: login 4 by email (wrong password): 401');
$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'USER3@example.com', password => $PW})
  ->status_is(200, 'account: login 5 by email (jwt route): 200');
$login->('user3@example.com', $PW);
is_429(60, 'account: login 6, by email whose IP+name bucket holds 2, is over the account budget');
is($s->psql(q{SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'user3'}) + 0,
   4, 'account: the refused login started no session (3 JSON logins and the jwt login made one each)');

Chatd::Test::done();

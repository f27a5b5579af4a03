# scripts/seed_users (`make seed-users`, API.md "Operations"): admin, testuser1 and
# testuser2, verified, idempotent, passwords from the environment with the old defaults
# only under DEBUG=true, hashes that chat-fcgi verifies; and scripts/reset_database.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s    = Chatd::Test->new->start;
my $t    = $s->t;
my $root = Chatd::Test::root();
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

# Runs a script against the test database; %env adds to a clean environment.
sub script {
    my ($name, $args, %env) = @_;
    return Chatd::Test::run_cmd(["$root/scripts/$name", @$args], clean_env => 1, timeout => 60,
        env => {DATABASE_URL => $s->db_url, ENV_FILE => '/dev/null', DEBUG => undef,
            ADMIN_PASSWORD => undef, TEST_USER_PASSWORD => undef, %env});
}
sub login_ok {
    my ($user, $pw, $title) = @_;
    $t->post_ok($s->url('/api/v1/auth/login'), json => {username => $user, password => $pw})->status_is(200, $title);
    return $t->tx->res->json('/user');
}
sub users { return sql("select string_agg(username, ',' order by username) from users") }

SKIP: {
    skip 'the argon2 command is not installed (scripts/bootstrap installs it)', 1
      unless Chatd::Test::run_cmd([qw(sh -c), 'command -v argon2'])->{exit} == 0;

    my $r = script('seed_users', [], DEBUG => 'false');
    isnt($r->{exit}, 0, 'seed without ADMIN_PASSWORD and DEBUG=false fails');
    like($r->{err}, qr/ADMIN_PASSWORD is not set.*DEBUG/, 'seed without password: the message names ADMIN_PASSWORD and DEBUG');
    is(sql('select count(*) from users'), 0, 'seed without password: no user created');
    $r = script('seed_users', [], DEBUG => 'false', ADMIN_PASSWORD => 'admin-pass-1');
    isnt($r->{exit}, 0, 'seed without TEST_USER_PASSWORD and DEBUG=false fails');
    like($r->{err}, qr/TEST_USER_PASSWORD is not set/, 'seed without test password: the message names TEST_USER_PASSWORD');
    $r = script('seed_users', [], DEBUG => 'true', ADMIN_PASSWORD => 'short');
    isnt($r->{exit}, 0, 'seed with a 5-character ADMIN_PASSWORD fails');
    like($r->{err}, qr/ADMIN_PASSWORD: at least 8 characters/, 'seed with a short password: message');
    is(sql('select count(*) from users'), 0, 'failed seeds created nobody');

    $r = script('seed_users', [], DEBUG => 'true');
    is($r->{exit}, 0, 'seed with DEBUG=true exits 0') or diag(Chatd::Test::describe($r));
    like($r->{out}, qr/created admin\n.*created testuser1\n.*created testuser2\n/s, 'seed: reports the three users created');
    is(users(), 'admin,testuser1,testuser2', 'seed: exactly admin, testuser1, testuser2');
    is(sql("select email from users where username = 'admin'"), 'admin@example.com', 'seed: admin email');
    is(sql("select string_agg(email, ',' order by email) from users where username like 'testuser_'"),
        'test1@example.com,test2@example.com', 'seed: test user emails');
    is(sql("select string_agg(username, ',') from users where is_superuser"), 'admin', 'seed: only admin is superuser');
    is(sql('select bool_and(is_verified and is_active) from users'), 't', 'seed: every seeded user is verified and active');
    like(sql("select hashed_password from users where username = 'admin'"), qr/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/,
        'seed: Argon2id hash with the cost of shared/pw.h');
    isnt(sql("select hashed_password from users where username = 'testuser1'"),
        sql("select hashed_password from users where username = 'testuser2'"), 'seed: each hash has its own salt');

    $r = script('seed_users', [], DEBUG => 'true');
    is($r->{exit}, 0, 'seed a second time exits 0') or diag(Chatd::Test::describe($r));
    like($r->{out}, qr/admin exists already/, 'seed again: reports admin as existing');
    is(sql('select count(*) from users'), 3, 'seed again: still three users');

    $r = script('seed_users', [], DEBUG => 'false', ADMIN_PASSWORD => 'other-admin-pw', TEST_USER_PASSWORD => 'other-test-pw');
    is($r->{exit}, 0, 'seed with explicit passwords and DEBUG=false exits 0') or diag(Chatd::Test::describe($r));
    is(sql('select count(*) from users'), 3, 'seed with explicit passwords: still three users');

    my $admin = login_ok('admin', 'admin123', 'admin logs in with the default password');
    is($admin->{is_superuser}, 1, 'admin login: is_superuser');
    is($admin->{is_verified}, 1, 'admin login: is_verified');
    login_ok('testuser1', 'testpass123', 'testuser1 logs in with the default password');
    login_ok('test2@example.com', 'testpass123', 'testuser2 logs in by email');
    $t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'admin', password => 'other-admin-pw'})
      ->status_is(401, 'an existing user keeps its password when seeded again');
    $t->post_ok($s->url('/auth/jwt/login'), form => {username => 'admin', password => 'admin123'})
      ->status_is(200, 'admin logs in on the fastapi-users route');
    my $tok = $t->tx->res->json('/access_token');
    my $tid = sql("select id from users where username = 'testuser1'");
    $t->get_ok($s->url("/users/$tid"), {Authorization => "Bearer $tok"})->status_is(200, 'admin may read any user');

    # a user that holds one of the usernames already: the others are still created
    sql("delete from users where username <> 'testuser2'");
    sql("update users set email = 'someone\@example.com' where username = 'testuser2'");
    $r = script('seed_users', [], DEBUG => 'true');
    is($r->{exit}, 0, 'seed beside a conflicting username exits 0') or diag(Chatd::Test::describe($r));
    like($r->{out}, qr/testuser2 exists already/, 'seed beside a conflict: testuser2 reported as existing');
    is(users(), 'admin,testuser1,testuser2', 'seed beside a conflict: admin and testuser1 created again');
}

# ---- reset_database ------------------------------------------------------------------
my $r = script('reset_database', [], DEBUG => 'false');
isnt($r->{exit}, 0, 'reset_database without --yes and DEBUG=false refuses');
like($r->{err}, qr/--yes/, 'reset_database refusal: the message names --yes');
ok(sql('select count(*) from schema_migrations') > 0, 'reset_database refusal: the schema is untouched');
$r = script('reset_database', ['--bogus'], DEBUG => 'true');
isnt($r->{exit}, 0, 'reset_database with an unknown argument fails');

sql("insert into users (email, username, hashed_password) values ('x\@example.com', 'xuser', 'x')");
my $migrations = sql('select count(*) from schema_migrations');
# The test cluster trusts 127.0.0.1, so a password in the URL is accepted and ignored.
(my $with_pw = $s->db_url) =~ s{//([^:/\@]+)\@}{//$1:sekrit-pw-42\@};
$r = script('reset_database', ['--yes'], DEBUG => 'false', DATABASE_URL => $with_pw);
is($r->{exit}, 0, 'reset_database --yes exits 0') or diag(Chatd::Test::describe($r));
like($r->{out}, qr/dropped and re-created schema public of \S+:\*\*\*\@/, 'reset_database: says what it dropped, password masked');
unlike($r->{out} . $r->{err}, qr/sekrit-pw-42/, 'reset_database: never prints the password');
is(sql('select count(*) from users'), 0, 'reset_database: users emptied');
is(sql('select count(*) from schema_migrations'), $migrations, 'reset_database: every migration applied again');
$r = script('reset_database', [], DEBUG => 'true');
is($r->{exit}, 0, 'reset_database with DEBUG=true needs no --yes') or diag(Chatd::Test::describe($r));

$t->post_ok($s->url('/auth/register'), json => {email => 'after@example.com', username => 'after', password => 'password123'})
  ->status_is(201, 'the running stack registers a user on the re-created schema');

Chatd::Test::done();

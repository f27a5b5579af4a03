# The old version's seed admin (`make seed-users` with DEBUG=true: admin / admin123) can sign
# in to /admin/: the page is served by nginx with a strict CSP, the cookie login works, and
# the admin API answers it (API.md "Operations" and "Admin"); seed users that are not
# superusers are refused with 403 "Superuser required".
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

# DEBUG=true as in the old version's demo setup: cookies without Secure, which a plain-HTTP
# client (Mojo) would not send back.
my $s    = Chatd::Test->new(env => {DEBUG => 'true'})->start;
my $t    = $s->t;
my $root = Chatd::Test::root();

$t->get_ok($s->url('/admin/'))->status_is(200, '/admin/ is served')
  ->content_type_like(qr{^text/html}, '/admin/: HTML')
  ->header_like('Content-Security-Policy' => qr/default-src 'none'; script-src 'self'/, '/admin/: a strict CSP')
  ->header_is('X-Frame-Options' => 'DENY', '/admin/: not framable')
  ->content_like(qr/<script src="admin.js" defer><\/script>/, '/admin/: the script is a same-origin file');
$t->get_ok($s->url('/admin'))->status_is(301, '/admin redirects')->header_like(Location => qr{/admin/$}, '/admin -> /admin/');
$t->get_ok($s->url('/admin/admin.js'))->status_is(200, 'admin.js')->content_type_like(qr{javascript}, 'admin.js: JavaScript')
  ->content_unlike(qr/localStorage\.setItem|sessionStorage\.setItem/, 'admin.js: stores nothing in web storage');
$t->get_ok($s->url('/admin/admin.css'))->status_is(200, 'admin.css')->content_type_like(qr{text/css}, 'admin.css: CSS');

SKIP: {
    skip 'the argon2 command is not installed (scripts/bootstrap installs it)', 8
      unless Chatd::Test::run_cmd([qw(sh -c), 'command -v argon2'])->{exit} == 0;
    my $r = Chatd::Test::run_cmd(["$root/scripts/seed_users"], clean_env => 1, timeout => 60,
        env => {DATABASE_URL => $s->db_url, ENV_FILE => '/dev/null', DEBUG => 'true'});
    is($r->{exit}, 0, 'make seed-users with DEBUG=true') or diag(Chatd::Test::describe($r));

    my $ua = $t->ua;
    $t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'admin', password => 'admin123'})
      ->status_is(200, 'the seed admin signs in with the old default password')
      ->json_is('/user/is_superuser' => Mojo::JSON::true, 'the seed admin is a superuser');
    # The page sends no Authorization header: the cookie alone carries the login.
    $t->get_ok($s->url('/api/v1/admin/stats'))->status_is(200, 'the admin API answers the cookie login')
      ->json_is('/users' => 3, 'stats: the three seed users');
    $t->post_ok($s->url('/api/v1/auth/login'), json => {username => 'testuser1', password => 'testpass123'})
      ->status_is(200, 'testuser1 signs in');
    $t->get_ok($s->url('/api/v1/admin/stats'))->status_is(403, 'testuser1: 403')
      ->json_is('/detail' => 'Superuser required', 'testuser1: Superuser required');
}

Chatd::Test::done();

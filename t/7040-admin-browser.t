# The admin page (/admin/, nginx/admin/) in a real browser: headless Chromium driven by
# t/browser/admin.js (puppeteer-core from var/node, installed by scripts/bootstrap). The seed
# admin of `make seed-users` (DEBUG=true defaults) signs in, searches a user, deactivates it
# (after a confirmation) and reactivates it, sees an API error as it comes, exports CSV and
# finds both changes in the audit view; a non-superuser sees the refusal. Screenshots of each
# step go to <test run directory>/7040-admin-browser-shots/. Skipped, saying why, only when
# no browser or no puppeteer-core could be installed.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $root = Chatd::Test::root();
my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, "/usr/bin:$ENV{PATH}";
my $node = Chatd::Test::run_cmd([qw(sh -c), 'command -v node'])->{out} // '';
chomp $node;
my $modules = "$root/var/node/node_modules";
plan skip_all => 'no chromium (scripts/bootstrap installs the Debian package)' unless $chromium;
plan skip_all => 'no node (scripts/bootstrap installs nodejs/npm)' unless $node;
plan skip_all => "no puppeteer-core in $modules (scripts/bootstrap installs it; no network?)"
  unless -f "$modules/puppeteer-core/package.json";

my $s = Chatd::Test->new->start;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

# The old version's seed admin, as `make seed-users` creates it with DEBUG=true.
my ($admin_user, $admin_pw) = ('admin', 'admin123');
my $seed = Chatd::Test::run_cmd(["$root/scripts/seed_users"], clean_env => 1, timeout => 60,
    env => {DATABASE_URL => $s->db_url, ENV_FILE => '/dev/null', DEBUG => 'true'});
if ($seed->{exit} != 0) {
    diag('seed_users failed (no argon2 command?); a registered superuser signs in instead: '
        . Chatd::Test::describe($seed));
    my $a = Chatd::WsClient::register($s, 'boss');
    sql("UPDATE users SET is_superuser = true WHERE id = '$a->{id}'");
    ($admin_user, $admin_pw) = ($a->{name}, 'password123');
}
my $plain  = Chatd::WsClient::register($s, 'plain');
my $victim = Chatd::WsClient::register($s, 'victim');

my $shots = ($ENV{CHATD_TEST_TMP} // $s->var_dir) . '/7040-admin-browser-shots';
my $r = Chatd::Test::run_cmd([$node, "$FindBin::Bin/browser/admin.js"], timeout => 300,
    env => {NODE_PATH => $modules, BASE_URL => $s->url(''), CHROMIUM => $chromium, SHOTS => $shots,
        ADMIN_USER => $admin_user, ADMIN_PASSWORD => $admin_pw, PLAIN_USER => $plain->{name},
        PLAIN_PASSWORD => 'password123', VICTIM => $victim->{name}, HOME => $s->var_dir});
my $n = 0;
for my $line (split /\n/, $r->{out} // '') {
    next unless $line =~ /^(not ok|ok) - (.*?)(?: # (.*))?$/;
    $n++;
    ok($1 eq 'ok', "browser: $2") or diag($3 // '');
}
cmp_ok($n, '>=', 15, "browser: the script ran its $n checks") or diag(Chatd::Test::describe($r));
is($r->{exit}, 0, 'browser: the script exits 0') or diag($r->{err});
ok(-s "$shots/$_.png", "screenshot $_") for qw(01-login 02-dashboard 03-search 04-deactivated 05-reactivated 06-export 07-audit 08-refused);

# What the page did, as the server recorded it.
is(sql("SELECT is_active FROM users WHERE id = '$victim->{id}'"), 't', 'the victim is active again');
is(sql("SELECT string_agg(changes->'is_active'->>'new', ',' ORDER BY created_at) FROM admin_audit "
        . "WHERE object_id = '$victim->{id}' AND changes ? 'is_active'"), 'false,true',
    'audit: the deactivation and the reactivation, in order');
is(sql("SELECT count(*) FROM admin_audit WHERE admin_id <> (SELECT id FROM users WHERE username = '$admin_user')"), 0,
    'audit: every row is the signed-in admin');

Chatd::Test::done();

# Issue 12, install half: `make install` into a DESTDIR, then what the README's two
# paths ("Install behind your nginx", "Without root") tell an administrator to do, command
# for command: an env file made from the installed example, chatd-migrate, the rendered
# nginx include inside a stock-like server{} that also serves a site of its own, both
# programs started by the installed chatd-ctl as an unprivileged user (nobody, when the test
# runs as root) against the run's Postgres (a fresh, empty database: chatd-migrate builds it)
# and a Redis of its own that needs an ACL user, a password and db 3. Then a smoke test
# through that nginx: register, login, REST message, delivery on two wsd instances, upload,
# /metrics (loopback only), the site's own locations; the Redis keys in db 3 only; the
# units through systemd-analyze verify; chatd-ctl stop.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path remove_tree);
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::UserAgent;

plan skip_all => 'CHATD_TEST_PG_URL is not set (run through make test)' unless $ENV{CHATD_TEST_PG_URL};
for my $tool (qw(nginx redis-server redis-cli psql)) {
    plan skip_all => "$tool is not installed" unless grep { -x "$_/$tool" } split /:/, "$ENV{PATH}:/usr/sbin";
}

my $root   = Chatd::Test::root();
my $base   = ($ENV{CHATD_TEST_TMP} || '/tmp') . "/chatd-9100-$$-" . Chatd::Test::random_hex(3);
my $dest   = "$base/dest";
my $prefix = '/usr/local';
my $bin    = "$dest$prefix/bin";
my $etc    = "$base/etc";                    # SYSCONFDIR of this "machine"
my $env    = "$etc/chatd/chatd.env";
my $as_root = $> == 0;
my @as_user = $as_root ? (qw(runuser -u nobody -g nogroup -G www-data --)) : ();
my ($redis, $nginx, $db_url, $ctl_started, @procs);
my $db = Chatd::Test::db_name();

sub run { Chatd::Test::run_cmd([@_], clean_env => 1, merge => 1, timeout => 180) }
sub slurp { my $f = shift; open my $fh, '<', $f or return undef; local $/; return scalar <$fh> }
sub spew  { my ($f, $s) = @_; open my $fh, '>', $f or die "$f: $!"; print $fh $s; close $fh or die }

END {
    local $?;
    run(@as_user, "$bin/chatd-ctl", '-e', $env, 'stop') if $ctl_started;
    for my $p (grep { $_ && !$_->{reaped} } $nginx, $redis) { kill 'TERM', $p->{pid}; waitpid $p->{pid}, 0 }
    Chatd::Test::drop_db($db) if $db_url;
    if (Test::More->builder->is_passing && !$ENV{CHATD_TEST_LEAVE}) { remove_tree($base) }
    else { print STDERR "# keeping $base\n" }
}

make_path($base, $etc);
chmod 0755, $base;

# ------------------------------------------------------------------ make install
# What `make install` runs (its recipe only: the binaries of this run are built already,
# and under SANITIZE=1 a plain `make install` would relink bin/ under the other tests).
my $dry = run('make', '-s', '-n', '-C', $root, 'install', "PREFIX=$prefix", "DESTDIR=$dest",
    "SYSCONFDIR=$etc");
like($dry->{out}, qr{DESTDIR=\Q$dest\E scripts/install}, 'make install runs scripts/install with DESTDIR');
# nginx/ as the other parts fill it: a static directory (admin/), sources that are not
# served (openapi/paths/), a template (*.in).
my $src = "$base/nginx-src";
make_path("$src/admin", "$src/openapi/paths");
spew("$src/nginx.conf.in", "a template\n");
spew("$src/admin/index.html", "the admin page\n");
spew("$src/admin/x.conf.in", "a template\n");
spew("$src/openapi/openapi.json", "{}\n");
spew("$src/openapi/paths/users.yaml", "a source\n");
my $r = Chatd::Test::run_cmd(["$root/scripts/install"], clean_env => 1, merge => 1,
    env => {PREFIX => $prefix, DESTDIR => $dest, SYSCONFDIR => $etc, LOCALSTATEDIR => "$base/var",
        RUNSTATEDIR => "$base/run", NGINX_SRC => $src});
is($r->{exit}, 0, 'install into a DESTDIR') or diag(Chatd::Test::describe($r));
for my $f (qw(bin/chat-fcgi bin/chat-wsd bin/chatd-migrate bin/chatd-ctl bin/chatd-nginx-include
    lib/chatd/migrate)) {
    ok(-x "$dest$prefix/$f", "installed: $f");
}
for my $f (qw(lib/systemd/system/chat-fcgi.service lib/systemd/system/chat-wsd@.service
    lib/systemd/system/chatd-migrate.service lib/sysusers.d/chatd.conf share/chatd/schema/0001_init.sql
    share/chatd/nginx/chatd-locations.conf.in share/doc/chatd/README.md)) {
    ok(-f "$dest$prefix/$f", "installed: $f");
}
my $static = "$dest$prefix/share/chatd/static";
ok(-f "$static/admin/index.html" && -f "$static/openapi/openapi.json", 'static directories installed');
ok(!-e "$static/openapi/paths" && !-e "$static/admin/x.conf.in" && !-e "$static/nginx.conf.in",
    'but neither sources nor templates');
my @schema = glob "$root/schema/[0-9]*.sql";
is(scalar(() = glob "$dest$prefix/share/chatd/schema/*.sql"), scalar @schema, 'every migration installed');
ok(-f "$dest$etc/chatd/chatd.env.example", 'the example env file is installed');
ok(!-e "$dest$etc/chatd/chatd.env", 'no chatd.env is written (yours is kept)');
ok(-f "$dest$etc/logrotate.d/chatd", 'the logrotate snippet is installed');
my $unit = slurp("$dest$prefix/lib/systemd/system/chat-fcgi.service") // '';
like($unit, qr{^ExecStart=/usr/local/bin/chat-fcgi$}m, 'the unit starts the installed chat-fcgi');
like($unit, qr{^EnvironmentFile=\Q$etc\E/chatd/chatd.env$}m, 'the unit reads the env file of SYSCONFDIR');
for my $opt (qw(NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes User=chatd), 'RuntimeDirectory=chatd chatd/metrics') {
    like($unit, qr{^\Q$opt\E$}m, "chat-fcgi.service: $opt");
}

# The installed tree is what runs from here on ("the machine" has it at DESTDIR).
my $ex = slurp("$dest$etc/chatd/chatd.env.example") // '';
like($ex, qr{^FCGI_SOCKET=\Q$base\E/run/chatd/fcgi.sock$}m, 'the example names RUNSTATEDIR for the socket');
like($ex, qr{^UPLOAD_DIR=\Q$base\E/var/lib/chatd/uploads$}m, 'the example names LOCALSTATEDIR for uploads');

# chatd-migrate never puts the password on psql's command line (/proc/PID/cmdline is
# readable by every local user): a psql that records what it got.
{
    my $fake = "$base/fakebin";
    make_path($fake);
    spew("$fake/psql", "#!/bin/sh\nprintf '%s\\n' \"\$*\" \"\${PGPASSWORD:-}\" >$fake/got\ncat >/dev/null\n");
    chmod 0755, "$fake/psql";
    my $r = Chatd::Test::run_cmd(["$bin/chatd-migrate"], clean_env => 1, merge => 1,
        env => {PATH => "$fake:$ENV{PATH}",
            DATABASE_URL => 'postgresql://chatd:p%40ss@db.example:5432/chatd?sslmode=require&password=no'});
    my ($args, $pw) = split /\n/, slurp("$fake/got") // "\n";
    is($args, '-X -q -v ON_ERROR_STOP=1 -d postgresql://chatd@db.example:5432/chatd?sslmode=require',
        'chatd-migrate: psql gets the URL without its password') or diag($r->{out});
    is($pw, 'no', '... which it gets through PGPASSWORD (the query parameter wins, as in libpq)');
}

# systemd's own check of the units (paths under DESTDIR are not where the units look).
SKIP: {
    my $sa = grep({ -x "$_/systemd-analyze" } split /:/, "$ENV{PATH}:/usr/bin") or
      skip 'systemd-analyze is not installed', 1;
    my $udir = "$base/units";
    make_path($udir);
    for my $u (qw(chat-fcgi.service chatd-migrate.service chat-wsd@.service)) {
        (my $s = slurp("$dest$prefix/lib/systemd/system/$u")) =~ s{\Q$prefix\E/bin/}{$bin/}g;
        spew("$udir/$u", $s);
    }
    symlink("$udir/chat-wsd\@.service", "$udir/chat-wsd\@8001.service");
    my $v = Chatd::Test::run_cmd(['systemd-analyze', 'verify', map { "$udir/$_" }
            qw(chat-fcgi.service chatd-migrate.service chat-wsd@8001.service)], merge => 1,
        env => {SYSTEMD_LOG_LEVEL => 'notice'});
    # Not being PID 1 here, verify cannot load sysinit.target & co.; anything else is ours.
    my @bad = grep { !/sysinit\.target|basic\.target|shutdown\.target|not found|^\s*$/ } split /\n/, $v->{out};
    is_deeply(\@bad, [], 'systemd-analyze verify: no complaint about the units');
}

# Every route of chat-fcgi's table is reachable through the include's locations (a route
# added outside them would be missing behind the site's nginx). GET / stays the site's.
{
    my $routes = slurp("$root/fcgi/route.c") // '';
    my @paths = $routes =~ /^\s*\{"[A-Z]+",\s*"([^"]+)"/mg;
    my $tmpl = slurp("$root/dist/nginx/chatd-locations.conf.in") // '';
    my @prefix = $tmpl =~ /^location\s+(\/\S*\/)\s*\{/mg;
    my @exact  = $tmpl =~ /^location\s+=\s+(\/\S*)\s*\{/mg;
    my @lost = grep {
        my $p = $_;
        $p ne '/' && !grep({ $p eq $_ } @exact) && !grep({ index($p, $_) == 0 } @prefix)
    } @paths;
    ok(@paths > 40, 'route.c lists its routes (' . scalar(@paths) . ')');
    is_deeply(\@lost, [], 'every route of route.c has a location in chatd-locations.conf.in');
}

# "Without root": the same install into a home directory, by the unprivileged user itself.
{
    my $home = "$base/home";
    make_path($home);
    chown scalar(getpwnam('nobody')), scalar(getgrnam('nogroup')), $home if $as_root;
    my $r = Chatd::Test::run_cmd([@as_user, "$root/scripts/install"], clean_env => 1, merge => 1,
        env => {PREFIX => "$home/chatd", SYSCONFDIR => "$home/chatd/etc",
            LOCALSTATEDIR => "$home/chatd/var", RUNSTATEDIR => "$home/chatd/run", DESTDIR => undef});
    is($r->{exit}, 0, 'install into a home directory without root') or diag(Chatd::Test::describe($r));
    my $uenv = "$home/chatd/etc/chatd/chatd.env";
    my $u = slurp("$uenv.example") // '';
    like($u, qr{^FCGI_SOCKET=\Q$home\E/chatd/run/chatd/fcgi.sock$}m, "the user's example names the user's socket");
    $u =~ s/^FCGI_SOCKET_GROUP=.*$/FCGI_SOCKET_GROUP=/m;
    spew($uenv, $u);
    chown scalar(getpwnam('nobody')), -1, $uenv if $as_root;
    $r = run(@as_user, "$home/chatd/bin/chatd-ctl", 'status');
    is($r->{exit}, 3, "chatd-ctl without -e reads the install's chatd.env (nothing runs yet)")
      or diag($r->{out});
    $r = run(@as_user, "$home/chatd/bin/chatd-nginx-include");
    is($r->{exit}, 0, 'chatd-nginx-include without arguments') or diag($r->{out});
    like(slurp("$home/chatd/etc/chatd/nginx/chatd-http.conf") // '',
        qr{server unix:\Q$home\E/chatd/run/chatd/fcgi.sock;}, "the include names the user's socket");
}

# ------------------------------------------------------------------ Redis and Postgres
my $rport = Chatd::Test::free_port();
my $rpw   = 'r3d:s@cret';
$redis = Chatd::Test::spawn_cmd(['redis-server', '--bind', '127.0.0.1', '--port', $rport, '--save', '',
    '--appendonly', 'no', '--dir', $base, '--requirepass', Chatd::Test::random_hex(),
    '--user', 'chatd', 'on', ">$rpw", '~*', '&*', '+@all'], timeout => 3600);
my @rcli = ('redis-cli', '-p', $rport, '--no-auth-warning', '--user', 'chatd', '--pass', $rpw);
ok(Chatd::Test::wait_for(sub { (run(@rcli, 'ping')->{out} // '') =~ /PONG/ }, 15, 'redis'),
    'a Redis that needs user chatd and a password answers');

$db_url = eval { Chatd::Test::create_db($db) };
ok($db_url, "an empty database $db") or BAIL_OUT("cannot create a database: $@");
(my $dsn = $db_url) =~ s{^(postgres(?:ql)?://)([^:@/]+)@}{$1$2:pg%40pw\@} or die "no user in $db_url";
$dsn .= ($dsn =~ /\?/ ? '&' : '?') . 'sslmode=prefer';

# ------------------------------------------------------------------ the env file
my $port = Chatd::Test::free_port();
my @wsd  = (Chatd::Test::free_port(), Chatd::Test::free_port());
my %set  = (
    SECRET_KEY         => Chatd::Test::random_hex(),
    REFRESH_SECRET_KEY => Chatd::Test::random_hex(),
    DATABASE_URL       => $dsn,
    REDIS_URL          => "redis://chatd:r3d%3As%40cret\@127.0.0.1:$rport/3",
    PUBLIC_URL         => "http://127.0.0.1:$port",
    FCGI_WORKERS       => 2,
    FCGI_SOCKET_GROUP  => $as_root ? 'www-data' : '',
    WSD_PORTS          => "@wsd",
    NGINX_ACCESS_LOG   => "$base/nginx/chatd-access.log",
);
my $text = $ex;
while (my ($k, $v) = each %set) {
    $text =~ s/^$k=.*$/$k=$v/m or $text .= "$k=$v\n";
}
make_path("$etc/chatd", "$base/nginx");
spew($env, $text);
if ($as_root) {
    # What README "Install behind your nginx" says: readable by root and the programs' group only.
    chown 0, scalar(getgrnam('nogroup')), $env;
    chmod 0640, $env;
    # The state directories the administrator gives the programs' user.
    for my $d ("$base/run", "$base/var", "$base/var/lib", "$base/var/log") {
        make_path($d);
        chown scalar(getpwnam('nobody')), scalar(getgrnam('nogroup')), $d;
    }
}

# ------------------------------------------------------------------ start, as the README says
$r = run(@as_user, "$bin/chatd-ctl", '-e', $env, 'start');
$ctl_started = 1;
is($r->{exit}, 0, 'chatd-ctl start (migrations, chat-fcgi, two chat-wsd)' . ($as_root ? ' as nobody' : ''))
  or diag(Chatd::Test::describe($r));
like($r->{out}, qr/chat-wsd started.*\n.*chat-wsd started/, 'both wsd instances started');
is(Chatd::Test::psql_at($db_url, 'SELECT count(*) FROM schema_migrations') + 0, scalar @schema,
    'chatd-migrate applied every migration to the empty database');
$r = run("$bin/chatd-migrate", $env);
like($r->{out}, qr/migrations: 0 applied/, 'chatd-migrate again: nothing to apply') or diag($r->{out});
my $sock = "$base/run/chatd/fcgi.sock";
ok(-S $sock, 'the FastCGI socket is where the env file says');
if ($as_root) {
    my @st = stat $sock;
    is(getpwuid($st[4]) . ':' . getgrgid($st[5]), 'nobody:www-data', 'socket owned by nobody, group www-data');
    my $pid = slurp("$base/run/chatd/chat-fcgi.pid") // '';
    chomp $pid;
    my ($uid) = (slurp("/proc/$pid/status") // '') =~ /^Uid:\s+(\d+)/m;
    is($uid, scalar getpwnam('nobody'), 'chat-fcgi runs as nobody');
}
$r = run("$bin/chatd-ctl", '-e', $env, 'status');
is($r->{exit}, 0, 'chatd-ctl status: everything runs') or diag($r->{out});

# ------------------------------------------------------------------ nginx: a site + the include
$r = run("$bin/chatd-nginx-include", $env);
is($r->{exit}, 0, 'chatd-nginx-include renders the include') or diag($r->{out});
my $inc = "$etc/chatd/nginx";
my $loc = slurp("$inc/chatd-locations.conf") // '';
like($loc, qr{alias \Q$base\E/var/lib/chatd/uploads/;}, 'the include serves UPLOAD_DIR of the env file');
unlike($loc, qr/\@[A-Z_]+\@/, 'no placeholder left');
like(slurp("$inc/chatd-http.conf") // '', qr/server 127\.0\.0\.1:$wsd[0];\s+server 127\.0\.0\.1:$wsd[1];/,
    'both wsd instances in the upstream');

make_path("$base/site/static");
spew("$base/site/index.html", "the site's own page\n");
spew("$base/site/static/a.txt", "a static file of the site\n");
my $mime = -r '/etc/nginx/mime.types' ? 'include /etc/nginx/mime.types;' : '';
my $user = $as_root ? 'user www-data;' : '';
spew("$base/nginx/nginx.conf", <<"CONF");
# A stock Debian-like nginx.conf: chatd arrives by two include lines.
$user
daemon off;
worker_processes 1;
pid $base/nginx/nginx.pid;
error_log $base/nginx/error.log warn;
events { worker_connections 256; }
http {
    $mime
    default_type application/octet-stream;
    sendfile on;
    access_log $base/nginx/access.log;
    client_body_temp_path $base/nginx/client_body;
    proxy_temp_path $base/nginx/proxy;
    fastcgi_temp_path $base/nginx/fastcgi;
    uwsgi_temp_path $base/nginx/uwsgi;
    scgi_temp_path $base/nginx/scgi;
    include $inc/chatd-http.conf;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $base/site;
        include $inc/chatd-locations.conf;
        location / { try_files \$uri \$uri/ =404; }
        location /static/ { alias $base/site/static/; }
    }
}
CONF
my @nginx = ('nginx', '-p', "$base/nginx/", '-c', "$base/nginx/nginx.conf", '-e', "$base/nginx/error.log");
$r = run(@nginx, '-t');
is($r->{exit}, 0, 'nginx -t accepts the server{} with the include') or diag($r->{out});
$nginx = Chatd::Test::spawn_cmd(\@nginx, timeout => 3600);
my $ua = Mojo::UserAgent->new(max_redirects => 0, request_timeout => 20, connect_timeout => 5);
my $url = "http://127.0.0.1:$port";
ok(Chatd::Test::wait_for(sub { ($ua->get("$url/health")->res->code // 0) == 200 }, 30, 'nginx'),
    'GET /health through nginx: 200');

# ------------------------------------------------------------------ smoke test
my $tx = $ua->get("$url/");
is($tx->res->code . ' ' . $tx->res->body, "200 the site's own page\n", 'the site keeps its / location');
$tx = $ua->get("$url/admin/");
is($tx->res->code . ' ' . $tx->res->body, "200 the admin page\n", 'a static directory of chatd: /admin/');
is($ua->get("$url/admin")->res->code, 301, '/admin redirects to /admin/');
is($ua->get("$url/openapi/openapi.json")->res->code, 200, 'and /openapi/');
$tx = $ua->get("$url/static/a.txt");
is($tx->res->code . ' ' . $tx->res->body, "200 a static file of the site\n", 'and its /static/ location');

my $site = bless {port => $port}, 'InstallSite';
my $alice = Chatd::WsClient::register($site, 'alice');
my $bob   = Chatd::WsClient::register($site, 'bob');
ok($alice->{token} && $bob->{token}, 'register two users');
$tx = $ua->post("$url/api/v1/auth/login", json => {username => $alice->{name}, password => 'password123'});
is($tx->res->code, 200, 'login');
like(join(' ', @{$tx->res->headers->every_header('Set-Cookie')}), qr/;\s*Secure/i,
    'cookies are Secure (DEBUG=false, as the example has it)');
my $tok = $tx->res->json->{access_token} // '';

my @bobs = map { Chatd::WsClient->connect_user($site, $bob, "bob's socket $_") } 1 .. 2;
$tx = $ua->post("$url/api/v1/messages", {Authorization => "Bearer $tok"},
    json => {receiver_id => $bob->{id}, content => 'hello through the include'});
is($tx->res->code, 201, 'REST message') or diag($tx->res->body);
for my $i (0, 1) {
    my $f = $bobs[$i]->next_frame(sub { $_->{type} eq 'message' }, 20);
    is($f && $f->{content}, 'hello through the include', 'delivered on bob\'s socket ' . ($i + 1));
}
my @conns = map { (run('ss', '-Htn', 'state', 'established', "( sport = :$_ )")->{out} =~ tr/\n//) } @wsd;
ok($conns[0] >= 1 && $conns[1] >= 1, "nginx spread the sockets over both wsd instances (@conns)");

my $png = slurp("$root/t/data/uploads/sample.png");
$tx = $ua->post("$url/api/v1/upload", {Authorization => "Bearer $tok"},
    form => {file => {content => $png, filename => 'a.png', 'Content-Type' => 'image/png'}});
is($tx->res->code, 201, 'upload') or diag($tx->res->body);
my $up = $tx->res->json // {};
$tx = $ua->get("$url$up->{url}");
is($tx->res->code, 200, 'the upload is served by nginx from UPLOAD_DIR');
ok($tx->res->body eq $png, 'same bytes');
is($tx->res->headers->header('X-Content-Type-Options'), 'nosniff', 'with the uploads location\'s headers');
is($ua->get("$url/__uploads/$up->{filename}")->res->code, 404, '/__uploads/ is internal');
if ($as_root) {
    my @st = stat "$base/var/lib/chatd/uploads/$up->{filename}";
    is(scalar getpwuid($st[4] // -1), 'nobody', 'the file belongs to the programs\' user');
}

$tx = $ua->get("$url/metrics");
SKIP: {
    skip '/metrics is not built on this branch (issue 12, reload part): 404 from chat-fcgi', 1
      if ($tx->res->code // 0) == 404;
    is($tx->res->code, 200, '/metrics from 127.0.0.1: 200');
}
my $other = Mojo::UserAgent->new(socket_options => {LocalAddr => '127.0.0.2'}, request_timeout => 10);
is($other->get("$url/metrics")->res->code, 403, '/metrics from 127.0.0.2: 403');

# REDIS_URL's db: presence (wsd) and the message rate limit (fcgi and wsd) live in db 3.
my $keys3 = run(@rcli, '-n', 3, 'keys', '*')->{out};
(my $keys0 = run(@rcli, '-n', 0, 'keys', '*')->{out}) =~ s/\s+//g;
like($keys3, qr/^chatd:presence:/m, 'presence keys in db 3');
is($keys0, '', 'nothing in db 0');

# nginx logs a WebSocket when it closes.
$_->close for @bobs;
my $alog = '';
Chatd::WsClient::wait_until(sub { ($alog = slurp("$base/nginx/chatd-access.log") // '') =~ m{/api/v1/ws/.*\n.*/api/v1/ws/}s },
    20);
like($alog, qr{"GET /api/v1/ws/}, "chatd's access log has the WebSocket requests");
unlike($alog, qr/token=/, '... without their tokens');

# ------------------------------------------------------------------ stop
$r = run(@as_user, "$bin/chatd-ctl", '-e', $env, 'stop');
is($r->{exit}, 0, 'chatd-ctl stop') or diag($r->{out});
$ctl_started = 0;
is(run("$bin/chatd-ctl", '-e', $env, 'status')->{exit}, 3, 'status after stop: 3');
ok(!-e $sock, 'the socket is gone');
# nginx's own errors are chatd's JSON in the include's locations too (the upload
# location redeclares error_page, which drops the inherited ones).
$tx = $ua->post("$url/api/v1/upload", {Authorization => "Bearer $tok"},
    form => {file => {content => $png, filename => 'a.png', 'Content-Type' => 'image/png'}});
is($tx->res->code . ' ' . $tx->res->body, '502 {"detail":"Bad Gateway"}', 'upload with chat-fcgi down: JSON 502');
$tx = $ua->get("$url/api/v1/users/me");
is($tx->res->code . ' ' . $tx->res->body, '502 {"detail":"Bad Gateway"}', 'REST with chat-fcgi down: JSON 502');

my $logs = join '', map { slurp($_) // '' } glob "$base/var/log/chatd/*.log";
unlike($logs, $Chatd::Test::SANITIZER_RE, 'no sanitizer report');
unlike($logs, $Chatd::Test::CRASH_RE, 'no crash');
my @nginx_bad = grep { /\[(?:alert|emerg|crit)\]/ && !/connect\(\) to unix:\Q$sock\E failed/ }
  split /\n/, slurp("$base/nginx/error.log") // '';
is_deeply(\@nginx_bad, [], 'no nginx alert (but the refused socket of the 502s)');

done_testing();

package InstallSite;
sub url             { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }
sub ws_url          { "ws://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }
sub ws_connect_path { shift; Chatd::Test->ws_connect_path(@_) }

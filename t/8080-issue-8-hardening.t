# Issue 8 (low items) and 14, on one stack: tokens stay out of nginx's access log; nginx itself
# refuses a body over MAX_BODY_SIZE (chat-fcgi never sees it); the FastCGI socket is 0660; the
# programs' Postgres role is not a superuser; without CORS_ORIGINS_STR a DEBUG=false server
# allows no foreign origin but WebSockets still accept its own; JSON does not escape '/'.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use IO::Select;
use IO::Socket::INET;
use File::Temp ();
use Mojo::Util qw(b64_encode);

my $s = Chatd::Test->new(env => {MAX_BODY_SIZE => 4096, CORS_ORIGINS_STR => undef})->start;
my $t = $s->t;

sub access_log { return Chatd::Test::_slurp($s->log_file('nginx-access.log')) // '' }

# ---- item 14: no "\/" in JSON ---------------------------------------------------------------
$t->get_ok($s->url('/'))->status_is(200, 'GET / is 200');
like($t->tx->res->body, qr{"docs":"/docs"}, 'GET /: "docs" reads "/docs", unescaped');
unlike($t->tx->res->body, qr{\\/}, 'GET /: no escaped slash anywhere in the body');

# ---- tokens are not logged ------------------------------------------------------------------
my $alice = $s->register('alice');
my $ws    = $s->ws($s->ws_connect_path($alice->{id}, token => $alice->{token}));
$ws->send_ok({json => {type => 'ping'}}, 'ws with ?token=: ping sent')->message_ok('ws with ?token=: pong');
$ws->finish_ok;
my $marker = 'verifytok' . Chatd::Test::random_hex(8);
$t->get_ok($s->url("/auth/verify?token=$marker"))->status_is(400, 'GET /auth/verify with a bogus token is 400');
ok($s->wait_for(sub { access_log() =~ m{"GET /api/v1/ws/\Q$alice->{id}\E"} }, 20, 'the WebSocket line'),
    'the closed WebSocket is in the access log (by path)');
ok($s->wait_for(sub { access_log() =~ m{"GET /auth/verify"} }, 20, 'the verify line'),
    'the verify GET is in the access log (by path)');
my $log = access_log();
ok(index($log, $alice->{token}) < 0, 'the WebSocket ?token= is not in the access log');
ok(index($log, $marker) < 0, 'the verify ?token= is not in the access log');
unlike($log, qr/token=/, 'no "token=" at all in the access log');

# ---- nginx refuses a big body itself -----------------------------------------------------------
my $ua  = 'chatd-413-probe-' . Chatd::Test::random_hex(4);
my $big = '{"pad":"' . ('x' x 8192) . '"}';
$t->post_ok($s->url('/api/v1/auth/register'), {'Content-Type' => 'application/json', 'User-Agent' => $ua}, $big)
  ->status_is(413, 'a body over MAX_BODY_SIZE is 413')
  ->header_like('Content-Type' => qr{^application/json}, 'the 413 is JSON')
  ->json_is('/detail' => 'Request body too large', 'the 413 detail is the same as chat-fcgi\'s');
ok($s->wait_for(sub { access_log() =~ /\Q$ua\E/ }, 20, 'the 413 line'), 'the 413 is in the access log');
my ($line) = grep { /\Q$ua\E/ } split /\n/, access_log();
like($line // '', qr/ 413 .* urt=- /, 'the 413 came from nginx: no upstream was asked (urt=-)')
  or diag($line);
$t->post_ok($s->url('/api/v1/auth/register'), {'Content-Type' => 'application/json'}, '{"pad":"' . ('x' x 3000) . '"}')
  ->status_is(422, 'a body under MAX_BODY_SIZE still reaches chat-fcgi (422)');

# ---- the FastCGI socket ----------------------------------------------------------------------
my $sock = $s->env('FCGI_SOCKET');
ok(-S $sock, 'FCGI_SOCKET is a unix socket') or diag($sock);
my @st = stat $sock;
is(sprintf('%04o', ($st[2] // 0) & 07777), '0660', 'the FastCGI socket is mode 0660, not 0666');

# ---- the programs' Postgres role ---------------------------------------------------------------
$t->get_ok($s->url('/health'))->status_is(200, '/health (chat-fcgi holds its connection)');
my $roles = $s->psql(q{SELECT string_agg(DISTINCT r.rolname || ':' || r.rolsuper, ',')
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()});
chomp $roles;
like($roles, qr/:/, 'the programs are connected to the test database') or diag($roles);
unlike($roles, qr/:(?:t|true)\b/, 'no program connection has rolsuper') or diag($roles);
is($s->psql(q{SELECT rolsuper FROM pg_roles WHERE rolname = current_user}), "f\n",
    'the stack role (also the migrations\') is not a superuser');

# ---- CORS_ORIGINS_STR unset with DEBUG=false -----------------------------------------------------
$t->options_ok($s->url('/api/v1/auth/login'),
    {Origin => 'http://localhost:3000', 'Access-Control-Request-Method' => 'POST'})
  ->status_is(400, 'no CORS_ORIGINS_STR: a localhost preflight is refused');

sub handshake_status {
    my ($path, %h) = @_;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp', Timeout => 5)
      or return "connect: $!";
    print $c "GET $path HTTP/1.1\r\nHost: 127.0.0.1:" . $s->http_port . "\r\nUpgrade: websocket\r\n"
      . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
      . b64_encode('0123456789abcdef', '') . "\r\n" . join('', map {"$_: $h{$_}\r\n"} sort keys %h) . "\r\n";
    my ($sel, $got) = (IO::Select->new($c), '');
    while ($got !~ /\n/ && $sel->can_read(10)) { sysread($c, my $buf, 1024) or last; $got .= $buf }
    close $c;
    return $got =~ m{^HTTP/1\.1 (\d{3})} ? $1 : "no status line: '$got'";
}
my $path = $s->ws_connect_path($alice->{id}, token => $alice->{token});
is(handshake_status($path, Origin => 'http://localhost:3000'), 403,
    'no CORS_ORIGINS_STR: a WebSocket from localhost:3000 is refused (403)');
is(handshake_status($path, Origin => 'http://127.0.0.1:' . $s->http_port), 101,
    'no CORS_ORIGINS_STR: a WebSocket from the server\'s own origin (PUBLIC_URL) is accepted');
like(Chatd::Test::_slurp($s->log_file('fcgi.log')) // '', qr/CORS_ORIGINS_STR is not set/,
    'chat-fcgi warned at start-up that no CORS origin is allowed');

# ---- FCGI_SOCKET_GROUP: chat-fcgi alone (its master listens before any database work) ---------------
SKIP: {
    my $gid = getgrnam('nogroup');
    skip 'no group "nogroup" here', 5 unless defined $gid;
    skip 'chgrp to a group of ours needs root or membership', 5 unless $> == 0 || grep { $_ == $gid } split ' ', $);
    my $dir  = File::Temp::tempdir('chatd-sock-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my %env  = (ENV_FILE => '/dev/null', DEBUG => 'false', SECRET_KEY => $s->secret_key,
        REFRESH_SECRET_KEY => $s->refresh_secret_key, FCGI_WORKERS => 1, DATABASE_URL => $s->db_url,
        REDIS_URL => $s->env('REDIS_URL'), LOG_LEVEL => 'warn');
    my $fcgi = Chatd::Test::spawn_cmd([Chatd::Test::root() . '/bin/chat-fcgi'], clean_env => 1, timeout => 30,
        env => {%env, FCGI_SOCKET => "$dir/g.sock", FCGI_SOCKET_GROUP => 'nogroup'});
    ok($s->wait_for(sub { -S "$dir/g.sock" }, 20, 'the socket'), 'FCGI_SOCKET_GROUP=nogroup: chat-fcgi listens');
    my @g = stat "$dir/g.sock";
    is($g[5], $gid, 'the socket belongs to the group FCGI_SOCKET_GROUP names');
    is(sprintf('%04o', ($g[2] // 0) & 07777), '0660', 'and is mode 0660');
    kill 'TERM', $fcgi->{pid};
    my $r = Chatd::Test::wait_cmd($fcgi);
    is($r->{exit}, 0, 'chat-fcgi stops on TERM') or diag(Chatd::Test::describe($r));
    $r = Chatd::Test::run_cmd([Chatd::Test::root() . '/bin/chat-fcgi'], clean_env => 1, timeout => 30,
        env => {%env, FCGI_SOCKET => "$dir/n.sock", FCGI_SOCKET_GROUP => 'no-such-group-' . $$});
    ok($r->{exit} != 0 && ($r->{out} . $r->{err}) =~ /FCGI_SOCKET_GROUP/, 'an unknown FCGI_SOCKET_GROUP stops start-up, naming it')
      or diag(Chatd::Test::describe($r));
}

Chatd::Test::done();

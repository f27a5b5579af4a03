# The FastAPI peer of make bench (bench/peer/app.py, issue 10 goal 7) answers what chatd
# answers, so that the req/s bench/run prints next to chatd's compare the same work: the
# same JSON for GET /api/v1/users/me and POST /api/v1/messages (private and group), the
# same statuses and details for a missing, bad or revoked token, a missing target, an
# unknown receiver, a group the caller is not in and a media_url that is no upload; and
# its messages land in the same table. Skipped where Debian's python3-fastapi and friends
# are not installed (bench/run installs them; make test does not need them).
use strict;
use warnings;
use Test::More;
use FindBin;
use Mojo::UserAgent;
use Mojo::JSON qw(encode_json);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $py  = '/usr/bin/python3';
my $dep = Chatd::Test::run_cmd(
    [$py, '-c', 'import fastapi, uvicorn, asyncpg, jwt, sqlalchemy.ext.asyncio'], timeout => 60);
plan(skip_all => 'the FastAPI peer needs python3-fastapi python3-uvicorn python3-sqlalchemy '
      . 'python3-asyncpg python3-jwt (bench/run installs them)')
  if $dep->{exit} != 0;

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
my $port = Chatd::Test::free_port();
my $peer = Chatd::Test::spawn_cmd(
    [   $py, '-m', 'uvicorn', '--app-dir', Chatd::Test::root() . '/bench/peer', 'app:app',
        '--workers', '2', '--host', '127.0.0.1', '--port', $port, '--log-level', 'warning'
    ],
    env => {
        DATABASE_URL => $s->db_url,
        SECRET_KEY   => $s->secret_key,
        PUBLIC_URL   => $s->env('PUBLIC_URL')
    },
    merge   => 1,
    timeout => 60
);
# However the test ends, the peer and its workers (its process group) go with it.
END { kill 'KILL', -$peer->{pid} if $peer && $peer->{pid} && !$peer->{reaped} }
my $ua = Mojo::UserAgent->new(request_timeout => 20);
ok( Chatd::Test::wait_for(
        sub { ($ua->get("http://127.0.0.1:$port/api/v1/users/me", $alice->{auth})->res->code // 0) == 200 },
        180, 'the peer to answer'
    ),
    'the peer answers GET /api/v1/users/me'
);

# Both answers to one request: [[chatd status, json], [peer status, json]].
sub both {
    my ($method, $path, $headers, @body) = @_;
    return map {
        my $res = $ua->build_tx($method => "$_$path" => $headers // {}, @body);
        $res = $ua->start($res)->res;
        [$res->code, $res->json, $res->headers->www_authenticate];
    } $s->url(''), "http://127.0.0.1:$port";
}

# same(TITLE, CHATD_STATUS, REQUEST...): the same status and, for 2xx and "detail" strings,
# the same JSON (a new message's id, seq and created_at aside).
sub same {
    my ($title, $want, @req) = @_;
    my ($c, $p) = both(@req);
    is($c->[0], $want, "$title: chatd answers $want");
    is($p->[0], $c->[0], "$title: the peer answers the same status");
    my ($cj, $pj) = map { my %j = %{ref $_->[1] eq 'HASH' ? $_->[1] : {}}; delete @j{qw(id seq created_at)}; \%j } $c, $p;
    if ($want < 300 || !ref $cj->{detail}) {
        is_deeply($pj, $cj, "$title: the same JSON") or diag(explain([$cj, $pj]));
    }
    is($p->[2], $c->[2], "$title: the same WWW-Authenticate") if $want == 401;
    return ($c->[1], $p->[1]);
}

my $json = {'Content-Type' => 'application/json'};
sub post { my ($u, $body) = @_; return (POST => '/api/v1/messages', {%{$u->{auth}}, %$json}, json => $body) }

same('users/me', 200, GET => '/api/v1/users/me', $alice->{auth});
same('users/me without a token', 401, GET => '/api/v1/users/me');
same('users/me with a bad token', 401, GET => '/api/v1/users/me', {Authorization => 'Bearer x.y.z'});
same('users/me with the token in the cookie', 200, GET => '/api/v1/users/me',
    {Cookie => "access_token=$alice->{token}"});

my ($cm, $pm) = same('a private message', 201, post($alice, {content => 'hi', receiver_id => $bob->{id}}));
is(0 + $s->psql("SELECT count(*) FROM messages WHERE id IN ('$cm->{id}', '$pm->{id}') AND content = 'hi'"),
    2, "both messages are rows of the same messages table");
cmp_ok($pm->{seq}, '>', $cm->{seq}, "the peer's seq comes from the same identity");

my $g = Chatd::WsClient::api($s, $alice, POST => '/api/v1/groups',
    json => {name => 'peer group', member_ids => [$bob->{id}]})->json;
same('a group message', 201, post($bob, {content => 'to g', group_id => $g->{id}}));
same('a group message by a non-member', 403, post($carol, {content => 'x', group_id => $g->{id}}));
same('no receiver and no group', 400, post($alice, {content => 'x'}));
same('an unknown receiver', 404,
    post($alice, {content => 'x', receiver_id => '00000000-0000-4000-8000-000000000000'}));
same('empty content', 422, post($alice, {content => '', receiver_id => $bob->{id}}));
same('both targets', 422, post($alice, {content => 'x', receiver_id => $bob->{id}, group_id => $g->{id}}));
same('a media_url that is no upload', 422,
    post($alice, {content => 'x', receiver_id => $bob->{id}, media_url => '/api/v1/upload/nope.png',
        media_type => 'image'}));
my $name = 'b1c2d3e4.png';
$s->psql("INSERT INTO uploads (owner_id, filename, content_type, size) "
      . "VALUES ('$alice->{id}', '$name', 'image/png', 10)");
same('an uploaded media_url', 201,
    post($alice, {content => 'pic', receiver_id => $bob->{id}, media_url => "/api/v1/upload/$name",
        media_type => 'image'}));

$s->psql("UPDATE auth_sessions SET revoked_at = now() WHERE user_id = '$carol->{id}'");
same('a revoked session', 401, GET => '/api/v1/users/me', $carol->{auth});
$s->psql("UPDATE users SET is_active = false WHERE id = '$bob->{id}'");
same('an inactive user', 403, GET => '/api/v1/users/me', $bob->{auth});
same('an inactive receiver', 404, post($alice, {content => 'x', receiver_id => $bob->{id}}));

kill 'TERM', -$peer->{pid};
my $r = Chatd::Test::wait_cmd($peer);
$peer->{reaped} = 1;
ok(!$r->{timed_out}, 'the peer stops on SIGTERM') or diag(Chatd::Test::describe($r));
Chatd::Test::done();

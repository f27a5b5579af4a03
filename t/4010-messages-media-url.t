# media_url is anchored (issue 8 item 8; API.md "media_url must be one of this server's upload
# URLs"): exactly /api/v1/upload/<name> or $PUBLIC_URL/api/v1/upload/<name> of an existing
# upload, over REST and over the WebSocket `message` frame alike (chatd_message_send()).
# Before the fix any URL that merely ended in /api/v1/upload/<name> passed.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s     = Chatd::Test->new->start;
my $alice = Chatd::WsClient::register($s, 'alice');
my $bob   = Chatd::WsClient::register($s, 'bob');
my $pub   = $s->env('PUBLIC_URL') // '';
like($pub, qr{^https?://}, 'the stack has a PUBLIC_URL');
$pub =~ s{/+$}{};
my $name = 'a1b2c3d4.png';
$s->psql("INSERT INTO uploads (owner_id, filename, content_type, size) "
      . "VALUES ('$alice->{id}', '$name', 'image/png', 10)");

my @cases = (
    ["/api/v1/upload/$name",                        201, 'the relative upload path'],
    ["$pub/api/v1/upload/$name",                    201, 'the upload path under PUBLIC_URL'],
    ["$pub/api/v1/upload/$name/",                   422, 'a trailing slash'],
    ["https://evil.example/api/v1/upload/$name",    422, 'another host with the upload path'],
    ["$pub.evil.example/api/v1/upload/$name",       422, 'PUBLIC_URL as a prefix of another host'],
    ["${pub}x/api/v1/upload/$name",                 422, 'PUBLIC_URL followed by more host'],
    ["//evil.example/api/v1/upload/$name",          422, 'a protocol-relative URL'],
    ["/x/api/v1/upload/$name",                      422, 'the upload path under another path'],
    ["/api/v1/upload/$name?x=1",                    422, 'with a query'],
    ["/api/v1/upload/../upload/$name",              422, 'with dot segments'],
    ['/api/v1/upload/nope.png',                     422, 'an upload that does not exist'],
    ["api/v1/upload/$name",                         422, 'without the leading slash'],
);
for my $c (@cases) {
    my ($url, $want, $title) = @$c;
    my $res = Chatd::WsClient::api($s, $alice, POST => '/api/v1/messages',
        json => {content => 'pic', receiver_id => $bob->{id}, media_url => $url, media_type => 'image'});
    is($res->code, $want, "REST: $title: $want");
    is($res->json('/media_url'), $url, "REST: $title: stored as sent") if $want == 201;
}

my $ws = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($alice->{id}, token => $alice->{token})));
ok($ws->sync_point, 'a WebSocket of alice');
for my $c (@cases[0, 1, 3, 4]) {
    my ($url, $want, $title) = @$c;
    my $cid = "c-$title";
    $ws->send({type => 'message', content => 'pic', receiver_id => $bob->{id}, media_url => $url,
        media_type => 'image', client_id => $cid});
    my $r = $ws->next_frame(sub { ($_->{client_id} // '') eq $cid }) // {};
    is($r->{type}, $want == 201 ? 'ack' : 'error', "WS: $title: " . ($want == 201 ? 'ack' : 'error'));
}
$ws->close;

Chatd::Test::done();

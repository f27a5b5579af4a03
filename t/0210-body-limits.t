# Request bodies on a JSON route (POST /api/v1/auth/register) with MAX_BODY_SIZE=2048:
# malformed JSON, a wrong Content-Type and invalid UTF-8 are 422 with the validation-list
# shape; a body over the limit is 413 JSON; a body under it is not 413.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::JSON qw(encode_json);

my $s     = Chatd::Test->new(env => {MAX_BODY_SIZE => 2048})->start;
my $t     = $s->t;
my $route = $s->url('/api/v1/auth/register');
my %json  = ('Content-Type' => 'application/json');

# The 422 shape of API.md: {"detail": [{"loc": ["body", ...], "msg": "...", "type": "..."}]}.
sub validation_list_ok {
    my ($label, $type) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = $t->tx->res->json;
    ok(ref $j eq 'HASH' && ref $j->{detail} eq 'ARRAY' && @{$j->{detail}}, "$label: detail is a non-empty array")
      or return diag('body: ' . $t->tx->res->body);
    my $e = $j->{detail}[0];
    ok(ref $e->{loc} eq 'ARRAY' && ($e->{loc}[0] // '') eq 'body', "$label: detail[0].loc starts with \"body\"");
    ok(defined $e->{msg} && !ref $e->{msg} && length $e->{msg}, "$label: detail[0].msg is a string");
    if (defined $type) { is($e->{type}, $type, "$label: detail[0].type is $type") }
    else { ok(defined $e->{type} && length $e->{type}, "$label: detail[0].type is set") }
}

$t->post_ok($route, \%json, '{"a":')->status_is(422, 'malformed JSON is 422')
  ->header_like('Content-Type' => qr{^application/json}, 'malformed JSON: 422 is JSON');
validation_list_ok('malformed JSON', 'json_invalid');

$t->post_ok($route, \%json, '')->status_is(422, 'empty body on a JSON route is 422');
validation_list_ok('empty body');

$t->post_ok($route, \%json, '[1,2,3]')->status_is(422, 'a JSON array instead of an object is 422');
validation_list_ok('JSON array body');

my $body = encode_json({email => 'plain@example.com', username => 'plain_user', password => 'long-enough-pw'});
$t->post_ok($route, {'Content-Type' => 'text/plain'}, $body)->status_is(422, 'JSON sent as text/plain is 422');
validation_list_ok('text/plain body');

$t->post_ok($route, \%json, qq({"email":"\xff\xfe\@example.com","username":"u\xc3","password":"pw-pw-pw-pw"}))
  ->status_is(422, 'JSON with invalid UTF-8 is 422');
validation_list_ok('invalid UTF-8');

# Under the limit: an ordinary validation error, not 413.
my $under = encode_json({email => 'not-an-email', username => 'x', password => 'p' x 1400});
cmp_ok(length $under, '<', 2048, 'the "under" body is below MAX_BODY_SIZE');
$t->post_ok($route, \%json, $under)->status_is(422, 'a body under MAX_BODY_SIZE is validated (422), not 413');

# Over the limit: valid JSON of 4096 bytes.
my $over = encode_json({email => 'big@example.com', username => 'big_user', password => 'p' x 4000});
$over .= ' ' x (4096 - length $over);
is(length $over, 4096, 'the "over" body is 4096 bytes');
$t->post_ok($route, \%json, $over)->status_is(413, 'a body over MAX_BODY_SIZE is 413')
  ->header_like('Content-Type' => qr{^application/json}, '413 is JSON')
  ->json_has('/detail', '413 body has a detail');
ok(!ref $t->tx->res->json('/detail'), '413 detail is a string');

# The limit is on the bytes received, not on Content-Length alone: a chunked body too.
my @parts = ('{"pad":"', ('p' x 512) x 8, '"}');
my $tx    = $t->ua->build_tx(POST => $route => \%json);
my $next;
$next = sub { $tx->req->content->write_chunk(@parts ? (shift(@parts), $next) : ('')) };
$next->();
$tx = $t->ua->start($tx);
is($tx->res->code, 413, 'a chunked body over MAX_BODY_SIZE is 413');
like($tx->req->headers->transfer_encoding // '', qr/chunked/, 'that body was sent chunked');

Chatd::Test::done();

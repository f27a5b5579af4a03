# The contract check of Chatd::Test fails a test when a response through nginx differs from
# the OpenAPI document: an undocumented field, status or route. A child test runs against a
# real stack with a document edited to be wrong in three places (CHATD_TEST_OPENAPI), and
# must fail exactly there; Chatd::Contract's rules for what the dispatcher answers on any
# path (404, 405 with Allow, the trailing-slash 307, CORS preflights, tolerated 5xx) are
# checked on made-up responses.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::File qw(path);
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Message::Response;
use TAP::Parser;

plan(skip_all => 'CHATD_TEST_PG_URL is not set: run through "make test"') unless $ENV{CHATD_TEST_PG_URL};
my $root = Chatd::Test::root();
my $tmp  = tempdir('chatd-t0330-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# ---- a wrong document fails the tests that meet its errors ------------------------------

my $doc = decode_json(path(Chatd::Test::contract_file())->slurp);
delete $doc->{components}{schemas}{UserPublic}{properties}{bio};    # a field it lacks
delete $doc->{paths}{'/health'}{get}{responses}{200};                # a status it lacks
delete $doc->{paths}{'/api/v1/contacts'};                            # a route it lacks
path("$tmp/wrong.json")->spurt(encode_json($doc));

path("$tmp/child.t")->spurt(<<'EOF_CHILD');
use strict; use warnings; use Test::More; use Chatd::Test;
my $s = Chatd::Test->new->start;
my $t = $s->t;
my $u = $s->register('carol');
$t->get_ok($s->url('/api/v1/users/me') => $u->{h})->status_is(200, 'users/me 200');
$t->get_ok($s->url('/health'))->status_is(200, 'health 200');
$t->get_ok($s->url('/api/v1/contacts') => $u->{h})->status_is(200, 'contacts 200');
$t->get_ok($s->url('/api/v1/groups') => $u->{h})->status_is(200, 'groups 200');
Chatd::Test::done();
EOF_CHILD

my (%fail, @lines, $p);
{
    local $ENV{CHATD_TEST_OPENAPI} = "$tmp/wrong.json";
    $p = TAP::Parser->new({exec => [$^X, "-I$root/t/lib", "$tmp/child.t"], merge => 1});
    while (my $r = $p->next) {
        push @lines, $r->as_string;
        $fail{$r->description}++ if $r->is_test && !$r->is_ok;
    }
}
my $text = join "\n", @lines;
my @want = (
    '[stack] the answer to GET /api/v1/users/me matches the OpenAPI document',
    '[stack] the answer to GET /health matches the OpenAPI document',
    '[stack] the answer to GET /api/v1/contacts matches the OpenAPI document',
);
ok($fail{"- $_"}, "the child fails: $_") for @want;
like($text, qr{/: Properties not allowed: bio}, 'the failure names the undocumented field');
like($text, qr{GET /health: status 200 is not documented}, 'the failure names the undocumented status');
like($text, qr{undocumented route: GET /api/v1/contacts answered 200}, 'the failure names the undocumented route');
ok($fail{'- [stack] every answer through nginx matched the OpenAPI document (5 checked)'},
    'the end-of-file summary fails too, after 5 checked answers');
is(scalar(keys %fail), 4, 'nothing else fails (the register and groups answers conform)')
  or diag(join "\n", sort keys %fail);
isnt($p->exit, 0, 'the child exits non-zero');

# ---- the dispatcher's answers on any path ------------------------------------------------

my $c = Chatd::Test::contract();
sub res {
    my ($code, %o) = @_;
    my $r = Mojo::Message::Response->new->code($code);
    $r->headers->content_type($o{type} // 'application/json') if defined $o{body};
    $r->headers->header($_ => $o{h}{$_}) for keys %{$o{h} // {}};
    $r->body($o{body}) if defined $o{body};
    return $r;
}
my $nf = '{"detail":"Not Found"}';
is_deeply([$c->check(GET => '/api/v1/nope', res(404, body => $nf))], [], 'an unknown path: 404 {"detail"} conforms');
ok(scalar $c->check(GET => '/api/v1/nope', res(404, body => '<html>', type => 'text/html')), 'an HTML 404 does not');
is_deeply([$c->check(PUT => '/api/v1/messages', res(405, body => '{"detail":"Method Not Allowed"}', h => {Allow => 'POST, GET'}))],
    [], 'another method: 405 with Allow conforms');
ok(scalar $c->check(PUT => '/api/v1/messages', res(405, body => '{"detail":"Method Not Allowed"}')), 'a 405 without Allow does not');
is_deeply([$c->check(GET => '/api/v1/groups/', res(307, h => {Location => '/api/v1/groups?limit=1'}))], [],
    'a trailing slash: 307 to the documented path conforms');
ok(scalar $c->check(GET => '/api/v1/nope/', res(307, h => {Location => '/api/v1/nope'})), 'a 307 to an undocumented path does not');
is_deeply([$c->check(OPTIONS => '/anything', res(200, body => 'OK', type => 'text/plain'), preflight => 1)], [],
    'a CORS preflight: 200 conforms on any path');
is_deeply([$c->check(OPTIONS => '/anything', res(400, body => '{"detail":"Disallowed CORS origin"}'), preflight => 1)], [],
    'a refused preflight: 400 {"detail"} conforms');
ok(scalar $c->check(GET => '/api/v1/users/me', res(500, body => '{"detail":"Internal Server Error"}')), 'an undocumented 500 does not');
is_deeply([$c->check(GET => '/api/v1/users/me', res(500, body => '{"detail":"Internal Server Error"}'), allow_5xx => {500 => 1})],
    [], 'unless the test tolerates it (allow_5xx), with the {"detail"} shape');
is_deeply([$c->check(HEAD => '/health', res(200, h => {'Content-Type' => 'application/json'}))], [],
    'HEAD is checked as GET, without a body');
ok(scalar $c->check(GET => '/health', res(200)), 'a GET without the documented body does not conform');
ok(scalar $c->check(GET => '/health', res(200, body => '{"status":"healthy"}')), 'a body missing required fields does not');
is_deeply([$c->check(DELETE => '/users/me', res(422, body => '{"detail":[{"loc":["path","id"],"msg":"m","type":"uuid_parsing"}]}'))],
    [], 'a literal path without the method falls back to the parameter path (/users/{id}: 422)');
is_deeply([$c->check(GET => '/docs', res(200, body => '<html>', type => 'text/html'))], [], 'the static pages are outside the API');

done_testing;

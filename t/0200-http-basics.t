# HTTP basics through nginx (API.md "Conventions", "Operations"): /health and /, 404 and 405
# bodies, the security headers on every response, HSTS only when DEBUG is false, CORS
# (preflight and simple requests, allowed and refused origins) and the trailing-slash 307.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new->start;    # DEBUG=false
my $t = $s->t;

my $HSTS = 'max-age=31536000; includeSubDomains';

# The headers API.md puts on every response; $label makes each title unique.
sub security_headers_ok {
    my ($t, $label, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->header_is('X-Content-Type-Options' => 'nosniff', "$label: X-Content-Type-Options nosniff")
      ->header_is('X-Frame-Options' => 'DENY', "$label: X-Frame-Options DENY")
      ->header_is('X-XSS-Protection' => '1; mode=block', "$label: X-XSS-Protection 1; mode=block")
      ->header_is('Referrer-Policy' => 'strict-origin-when-cross-origin', "$label: Referrer-Policy")
      ->header_like('X-Process-Time' => qr/^\d+\.\d{6}$/, "$label: X-Process-Time has 6 decimals");
    if ($o{hsts}) {
        $t->header_is('Strict-Transport-Security' => $HSTS, "$label: Strict-Transport-Security (DEBUG=false)");
    }
    else {
        ok(!defined $t->tx->res->headers->header('Strict-Transport-Security'),
            "$label: no Strict-Transport-Security (DEBUG=true)");
    }
}

# ---- /health and / --------------------------------------------------------------------

$t->get_ok($s->url('/health'))->status_is(200, 'GET /health is 200')
  ->header_like('Content-Type' => qr{^application/json}, 'GET /health is JSON')
  ->json_is('/status' => 'healthy', 'health: status healthy')
  ->json_is('/database' => 'ok', 'health: database ok')
  ->json_is('/redis' => 'ok', 'health: redis ok')
  ->json_like('/version' => qr/^\d+\.\d+\.\d+/, 'health: version is a version number');
security_headers_ok($t, 'GET /health (200)', hsts => 1);
my $version = $t->tx->res->json('/version');

$t->get_ok($s->url('/'))->status_is(200, 'GET / is 200')
  ->header_like('Content-Type' => qr{^application/json}, 'GET / is JSON')
  ->json_is('/message' => 'Welcome to Realtime Chat API', 'root: welcome message')
  ->json_is('/docs' => '/docs', 'root: docs link')
  ->json_is('/version' => $version, 'root: same version as /health');

# ---- 404 / 405 -------------------------------------------------------------------------

$t->get_ok($s->url('/no/such/path'))->status_is(404, 'unknown path is 404')
  ->header_like('Content-Type' => qr{^application/json}, '404 is JSON')
  ->json_is('' => {detail => 'Not Found'}, '404 body is {"detail":"Not Found"}');
security_headers_ok($t, 'GET unknown path (404)', hsts => 1);

$t->get_ok($s->url('/api/v1/no-such-resource'))->status_is(404, 'unknown /api/v1 path is 404')
  ->json_is('/detail' => 'Not Found', 'unknown /api/v1 path: detail Not Found');

$t->post_ok($s->url('/health'))->status_is(405, 'POST /health is 405')
  ->header_like('Content-Type' => qr{^application/json}, '405 is JSON')
  ->json_is('' => {detail => 'Method Not Allowed'}, '405 body is {"detail":"Method Not Allowed"}')
  ->header_like(Allow => qr/\bGET\b/, '405 carries an Allow header naming GET');
security_headers_ok($t, 'POST /health (405)', hsts => 1);

$t->delete_ok($s->url('/'))->status_is(405, 'DELETE / is 405')
  ->header_like(Allow => qr/\bGET\b/, 'DELETE / 405 has Allow: GET');

# ---- trailing slash ------------------------------------------------------------------

$t->get_ok($s->url('/api/v1/messages/?limit=5&offset=0'))
  ->status_is(307, 'collection path with a trailing slash is 307')
  ->header_like(Location => qr{^(?:http://127\.0\.0\.1:\d+)?/api/v1/messages\?limit=5&offset=0$},
    '307 Location drops the slash and keeps the query string');
security_headers_ok($t, 'GET /api/v1/messages/ (307)', hsts => 1);

# ---- CORS ------------------------------------------------------------------------------

my $allowed = 'http://localhost:3000';
my $evil    = 'http://evil.example';
my $methods = 'DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT';

$t->options_ok($s->url('/api/v1/auth/login'),
    {Origin => $allowed, 'Access-Control-Request-Method' => 'POST',
     'Access-Control-Request-Headers' => 'content-type,authorization'})
  ->status_is(200, 'preflight from an allowed origin is 200')
  ->header_is('Access-Control-Allow-Origin' => $allowed, 'preflight: Allow-Origin echoes the origin')
  ->header_is('Access-Control-Allow-Credentials' => 'true', 'preflight: Allow-Credentials true')
  ->header_is('Access-Control-Allow-Methods' => $methods, 'preflight: Allow-Methods lists every method')
  ->header_is('Access-Control-Allow-Headers' => 'content-type,authorization',
    'preflight: Allow-Headers echoes the requested headers')
  ->header_is('Access-Control-Max-Age' => '600', 'preflight: Max-Age 600')
  ->header_like(Vary => qr/\bOrigin\b/, 'preflight: Vary names Origin');

$t->options_ok($s->url('/api/v1/auth/login'),
    {Origin => $evil, 'Access-Control-Request-Method' => 'POST'})
  ->status_is(400, 'preflight from another origin is 400')
  ->content_like(qr/Disallowed CORS origin/, 'refused preflight says "Disallowed CORS origin"');
ok(!defined $t->tx->res->headers->header('Access-Control-Allow-Origin'),
    'refused preflight has no Access-Control-Allow-Origin');
ok(!defined $t->tx->res->headers->header('Access-Control-Allow-Credentials'),
    'refused preflight has no Access-Control-Allow-Credentials');

$t->get_ok($s->url('/health'), {Origin => $allowed})->status_is(200, 'simple GET from an allowed origin is 200')
  ->header_is('Access-Control-Allow-Origin' => $allowed, 'simple GET: Allow-Origin echoes the origin')
  ->header_is('Access-Control-Allow-Credentials' => 'true', 'simple GET: Allow-Credentials true')
  ->header_is('Access-Control-Expose-Headers' => 'X-Process-Time', 'simple GET: Expose-Headers X-Process-Time')
  ->header_like(Vary => qr/\bOrigin\b/, 'simple GET: Vary names Origin');

$t->get_ok($s->url('/health'), {Origin => $evil})->status_is(200, 'simple GET from another origin still answers');
my $h = $t->tx->res->headers;
my @cors = grep { /^access-control-/i } @{$h->names};
is("@cors", '', 'simple GET from another origin gets no CORS headers');

$t->get_ok($s->url('/no/such/path'), {Origin => $allowed})->status_is(404, '404 for an allowed origin')
  ->header_is('Access-Control-Allow-Origin' => $allowed, 'a 404 also carries Allow-Origin for an allowed origin');

# ---- DEBUG=true: no HSTS ------------------------------------------------------------------

my $d  = Chatd::Test->new(name => 'debug', env => {DEBUG => 'true'})->start;
my $dt = $d->t;
$dt->get_ok($d->url('/health'))->status_is(200, 'DEBUG=true stack: GET /health is 200');
security_headers_ok($dt, 'DEBUG=true GET /health (200)', hsts => 0);
$dt->get_ok($d->url('/no/such/path'))->status_is(404, 'DEBUG=true stack: unknown path is 404');
security_headers_ok($dt, 'DEBUG=true GET unknown path (404)', hsts => 0);

Chatd::Test::done();

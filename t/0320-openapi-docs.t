# /openapi.json, /docs (Swagger UI) and /redoc (ReDoc) through nginx: each page answers 200
# HTML, every script, stylesheet and icon it references (and the scripts those load by name)
# is served from this host with the right content type, nothing names another host, the CSP
# refuses other hosts, the served assets are the pinned versions of nginx/docs/vendor.lock,
# and /openapi.json is the built document. GET / names /docs, which now exists.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::DOM;
use Mojo::File qw(path);
use Mojo::JSON qw(decode_json);

my $s = Chatd::Test->new->start;
my $t = $s->t;
my $root = Chatd::Test::root();

my %TYPE = (js => qr{^application/javascript}, css => qr{^text/css}, png => qr{^image/png},
    html => qr{^text/html}, json => qr{^application/json});

# Mojo inflates gzip bodies and drops the header unless told not to.
sub gzip_ok {
    my $p = shift;
    my $tx = $t->ua->build_tx(GET => $s->url($p) => {'Accept-Encoding' => 'gzip'});
    $tx->res->content->auto_decompress(0);
    $t->request_ok($tx)->status_is(200, "$p with Accept-Encoding: gzip is 200")
      ->header_is('Content-Encoding' => 'gzip', "$p is gzipped for clients that accept it");
}

# ---- the document ----------------------------------------------------------------------

$t->get_ok($s->url('/openapi.json'))->status_is(200, '/openapi.json is 200')
  ->header_like('Content-Type' => $TYPE{json}, '/openapi.json is application/json')
  ->header_is('X-Content-Type-Options' => 'nosniff', '/openapi.json: nosniff');
is($t->tx->res->body, path(Chatd::Test::contract_file())->slurp, '/openapi.json is build/www/openapi.json');
is($t->tx->res->json('/openapi'), '3.1.0', '/openapi.json is OpenAPI 3.1.0');
gzip_ok('/openapi.json');

$t->get_ok($s->url('/'))->status_is(200, 'GET / is 200')->json_is('/docs' => '/docs', 'GET / names /docs');

# ---- the pages and everything they load ------------------------------------------------

my %lock;
for (split /\n/, path("$root/nginx/docs/vendor.lock")->slurp) {
    next if /^\s*(#|$)/;
    my ($name, $version) = split ' ';
    $lock{$name} = $version;
}

sub asset_ok {
    my ($url, $page) = @_;
    my ($ext) = $url =~ /\.(\w+)$/;
    $t->get_ok($s->url($url))->status_is(200, "$page: $url is 200")
      ->header_like('Content-Type' => $TYPE{$ext} // qr/./, "$page: $url has the type of .$ext");
    return $t->tx->res->body;
}

sub page_ok {
    my ($page, $bundle_re) = @_;
    $t->get_ok($s->url($page))->status_is(200, "$page is 200")
      ->header_like('Content-Type' => $TYPE{html}, "$page is HTML")
      ->header_is('X-Frame-Options' => 'DENY', "$page: X-Frame-Options DENY")
      ->header_like('Content-Security-Policy' => qr/default-src 'self';/, "$page: the CSP allows only this host")
      ->header_unlike('Content-Security-Policy' => qr{https?:|\*}, "$page: the CSP names no other host");
    my $html = $t->tx->res->body;
    unlike($html, qr{(?:https?:)?//}, "$page names no other host");
    my $dom = Mojo::DOM->new($html);
    my @refs = ($dom->find('script[src]')->map(attr => 'src')->each,
        $dom->find('link[href]')->map(attr => 'href')->each);
    cmp_ok(scalar(@refs), '>=', 3, "$page references its assets (@refs)");
    my %body;
    for my $ref (@refs) {
        like($ref, qr{^/[^/]}, "$page: $ref is a path on this host");
        $body{$ref} = asset_ok($ref, $page);
    }
    ok((grep {/$bundle_re/} @refs), "$page loads its bundle");
    my $init = $body{"$page/init.js"};
    like($init // '', qr{'/openapi\.json'}, "$page: its own script $page/init.js reads /openapi.json");
    unlike($init // '', qr{https?://}, "$page: its own script names no other host");
    $t->head_ok($s->url($page))->status_is(200, "HEAD $page is 200");
}

page_ok('/docs',  qr{^/docs/assets/swagger-ui-bundle\.js$});
like(path("$root/nginx/docs/init.js")->slurp, qr/validatorUrl:\s*null/,
    '/docs: Swagger UI never calls the online validator');
page_ok('/redoc', qr{^/redoc/assets/redoc\.standalone\.js$});

# The assets are the pinned versions (vendor.lock), unpacked by scripts/docs-vendor.
for my $name (sort keys %lock) {
    my $pkg = decode_json(path("$root/build/www/vendor/$name/package.json")->slurp);
    is($pkg->{version}, $lock{$name}, "build/www/vendor/$name is $name\@$lock{$name}, as pinned");
}
my $bundle = asset_ok('/docs/assets/swagger-ui-bundle.js', 'swagger-ui-dist');
is($bundle, path("$root/build/www/vendor/swagger-ui-dist/swagger-ui-bundle.js")->slurp,
    'nginx serves the installed swagger-ui-bundle.js');
gzip_ok('/docs/assets/swagger-ui-bundle.js');

# ---- what is not there -----------------------------------------------------------------

for my $p ('/docs/nope.js', '/docs/assets/nope.js', '/redoc/assets/nope.js', '/docsx', '/redocs') {
    $t->get_ok($s->url($p))->status_is(404, "$p is 404");
}
$t->get_ok($s->url('/redoc/assets/../../../../etc/passwd'))->status_is(400, 'a path above the root is refused (400)');
$t->get_ok($s->url('/docsx'))->json_is('/detail' => 'Not Found', '/docsx answers the JSON 404');

Chatd::Test::done();

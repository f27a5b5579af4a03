# The OpenAPI document (build/www/openapi.json, from nginx/openapi/) and the route table of
# fcgi/route.c describe the same routes, both ways: every route of the table is an operation
# of the document, and every operation of the document a route of the table (except the
# WebSocket handshake, marked x-served-by: chat-wsd). Also the document's own consistency:
# OpenAPI 3.1, unique operationIds, every path parameter declared, every response described,
# and what scripts/openapi-build refuses (a path defined twice, an unresolved $ref).
# Needs no stack.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::File qw(path);
use Mojo::JSON qw(decode_json);

my $root = Chatd::Test::root();
my $file = Chatd::Test::contract_file();
ok(-f $file, "the document $file is built") or BAIL_OUT('run make first');
my $doc = decode_json(path($file)->slurp);
my @METHODS = qw(get put post delete options head patch trace);

# ---- the route table, as fcgi/route.c writes it -------------------------------------

my $src = path("$root/fcgi/route.c")->slurp;
my ($table) = $src =~ /route_table\[\]\s*=\s*\{(.*?)\n\};/s;
ok($table, 'fcgi/route.c has a route_table');
my %route;
while ($table =~ /\{\s*"([A-Z]+)",\s*"([^"]+)"/g) {
    my ($m, $p) = ($1, $2);
    $p =~ s/\{(\w+):\w+\}/{$1}/g;    # {id:uuid} -> {id}
    $route{"$m $p"}++;
}
cmp_ok(scalar(keys %route), '>=', 40, 'the route table parses into ' . scalar(keys %route) . ' routes');
is_deeply([grep { $route{$_} > 1 } sort keys %route], [], 'no route appears twice in the table');

# ---- the document's operations ------------------------------------------------------

my (%op, %wsd, %opid, @undeclared, @nodesc, @noresp);
for my $p (sort keys %{$doc->{paths}}) {
    my $item = $doc->{paths}{$p};
    my @names = $p =~ /\{(\w+)\}/g;
    for my $m (grep { $item->{$_} } @METHODS) {
        my $o = $item->{$m};
        my $key = uc($m) . " $p";
        ($item->{'x-served-by'} // '') eq 'chat-wsd' ? $wsd{$key}++ : $op{$key}++;
        push @{$opid{$o->{operationId} // "(none: $key)"}}, $key;
        my %declared = map { (_param($_)->{in} // '') eq 'path' ? (_param($_)->{name} => 1) : () }
          @{$item->{parameters} // []}, @{$o->{parameters} // []};
        push @undeclared, map {"$key: {$_}"} grep { !$declared{$_} } @names;
        push @noresp, $key unless %{$o->{responses} // {}};
        for my $st (sort keys %{$o->{responses} // {}}) {
            my $r = $o->{responses}{$st};
            $r = _ref($r->{'$ref'}) if $r->{'$ref'};
            push @nodesc, "$key $st" unless defined $r->{description} && length $r->{description};
        }
    }
}

sub _ref {
    my ($ptr) = shift =~ m{^#/(.*)$};
    my $n = $doc;
    $n = $n->{$_} for split m{/}, $ptr;
    return $n;
}
sub _param { my $p = shift; return $p->{'$ref'} ? _ref($p->{'$ref'}) : $p }

is($doc->{openapi}, '3.1.0', 'the document is OpenAPI 3.1.0');
ok($doc->{info}{title} && $doc->{info}{version}, 'info has a title and a version');
like($doc->{info}{description}, qr/## WebSocket protocol.*"type":"sync"/s,
    'info.description describes the WebSocket protocol');
ok($doc->{components}{securitySchemes}{bearer} && $doc->{components}{securitySchemes}{cookie},
    'security schemes bearer and cookie are defined');
is_deeply([grep { @{$opid{$_}} > 1 || /^\(none/ } sort keys %opid], [], 'every operation has a unique operationId');
is_deeply(\@undeclared, [], 'every path parameter of every operation is declared');
is_deeply(\@noresp, [], 'every operation lists its responses');
is_deeply(\@nodesc, [], 'every response has a description');
ok($wsd{'GET /api/v1/ws/{user_id}'}, 'the WebSocket handshake is documented (served by chat-wsd)');

# ---- both ways ------------------------------------------------------------------------

# The admin API (API.md "Admin") is documented before its handlers exist on every branch:
# its operations are compared once the route table has any /api/v1/admin/ route.
my $admin_routed = grep {m{ /api/v1/admin/}} keys %route;
my @doc_only = grep { !$route{$_} } sort keys %op;
if (!$admin_routed) {
    my @admin = grep {m{ /api/v1/admin/}} @doc_only;
    @doc_only = grep { !m{ /api/v1/admin/} } @doc_only;
    note('the route table has no admin route yet: ' . scalar(@admin) . ' documented admin operations not compared');
}
is_deeply([grep { !$op{$_} } sort keys %route], [], 'every route of fcgi/route.c is an operation of the document');
is_deeply(\@doc_only, [], 'every operation of the document is a route of fcgi/route.c');

# The harness's matcher agrees with the router on literal-before-parameter paths.
my $c = Chatd::Test::contract();
is(($c->match('/api/v1/users/search'))[0], '/api/v1/users/search', 'the contract matcher prefers /users/search to /users/{user_id}');
is(($c->match('/api/v1/users/me'))[0], '/api/v1/users/me', 'the contract matcher prefers /users/me to /users/{user_id}');

# ---- scripts/openapi-build refuses broken sources -------------------------------------

my $tmp = tempdir('chatd-t0310-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub build_with {
    my ($name, $yaml) = @_;
    my $d = "$tmp/$name";
    path("$d/nginx/openapi/paths")->make_path;
    path("$d/scripts")->make_path;
    path("$root/scripts/openapi-build")->copy_to("$d/scripts/openapi-build")->chmod(0755);
    path("$root/nginx/openapi/openapi.yaml")->copy_to("$d/nginx/openapi/openapi.yaml");
    path("$_")->copy_to("$d/nginx/openapi/paths/") for glob "$root/nginx/openapi/paths/*.yaml";
    path("$d/nginx/openapi/paths/zz-extra.yaml")->spurt($yaml);
    return Chatd::Test::run_cmd(["$d/scripts/openapi-build", "$d/out.json"]);
}
my $r = build_with('ok', "paths:\n  /extra:\n    get:\n      responses:\n        '200': {description: ok}\n");
is($r->{exit}, 0, 'openapi-build accepts one more path file') or diag(Chatd::Test::describe($r));
$r = build_with('dup', "paths:\n  /health:\n    get:\n      responses:\n        '200': {description: ok}\n");
isnt($r->{exit}, 0, 'openapi-build refuses a path defined in two files');
like($r->{err}, qr/zz-extra\.yaml: path \/health is already defined/, 'and names the file and the path');
$r = build_with('ref', "paths:\n  /extra:\n    get:\n      responses:\n        '200': {\$ref: '#/components/responses/Nope'}\n");
isnt($r->{exit}, 0, 'openapi-build refuses an unresolved $ref');
like($r->{err}, qr{#/components/responses/Nope}, 'and names the reference');
$r = build_with('key', "servers: []\n");
isnt($r->{exit}, 0, 'openapi-build refuses an area file with another top-level key');

done_testing;

package Chatd::Contract;

# Checks HTTP responses against the OpenAPI document (build/www/openapi.json, built by
# scripts/openapi-build from nginx/openapi/). Chatd::Test calls check() for every
# transaction a Mojo::UserAgent finishes against a stack's nginx, so every Perl test is a
# contract test without asking for it (README "API documentation (OpenAPI)").
#
#   my $c = Chatd::Contract->load($file);          # once per process (cached)
#   my @problems = $c->check($method, $path, $res, allow_5xx => \%statuses);
#
# A response conforms when its path and method are an operation of the document, its status
# is one of the operation's responses, its Content-Type is one the response lists, and a JSON
# body validates against that schema (additionalProperties false on our objects, so an extra
# field is a failure). What the dispatcher answers on any path is accepted by its shape:
# 404 {"detail"} on an unknown path, 405 {"detail"} with Allow on a known path with another
# method, 307 with Location for a trailing slash, a CORS preflight (200 "OK" or 400), nginx's
# own 400 for a request line it cannot route (%00, a path above the root). A 5xx
# the test tolerates on purpose (Chatd::Test allow_5xx) needs only the {"detail"} shape.

use strict;
use warnings;

use JSON::Validator::Schema::OpenAPIv3;
use Mojo::File ();
use Mojo::JSON qw(decode_json);

my %CACHE;

# Paths nginx serves as static files, outside the API: their own test (t/0320) checks them.
our $STATIC_RE = qr{^/(?:openapi\.json$|docs(?:/|$)|redoc(?:/|$)|admin(?:/|$))};

sub load {
    my ($class, $file) = @_;
    return $CACHE{$file} //= do {
        my $data = decode_json(Mojo::File->new($file)->slurp);
        my $schema = JSON::Validator::Schema::OpenAPIv3->new($data);
        $schema->resolve;
        bless {file => $file, schema => $schema, doc => $schema->data, ops => _templates($data)}, $class;
    };
}

# Path templates as regexps, literal segments before parameters (as fcgi/route.c orders them).
sub _templates {
    my $data = shift;
    my @t;
    for my $p (keys %{$data->{paths}}) {
        my @seg = split m{/}, $p, -1;
        my $re = join '/', map { /^\{\w+\}$/ ? '[^/]+' : quotemeta } @seg;
        my $weight = join '', map { /^\{/ ? 0 : 1 } @seg;
        push @t, {path => $p, re => qr/^$re$/, weight => $weight};
    }
    return [sort { $b->{weight} cmp $a->{weight} || $a->{path} cmp $b->{path} } @t];
}

sub paths { my $self = shift; return sort keys %{$self->{doc}{paths}} }
sub doc   { $_[0]{doc} }

# The document path templates matching $path, best first.
sub match {
    my ($self, $path) = @_;
    return map { $_->{path} } grep { $path =~ $_->{re} } @{$self->{ops}};
}

# Follows a local $ref (the resolved document keeps some as {"$ref"} hashes).
sub _deref {
    my ($self, $node) = @_;
    for (1 .. 10) {
        last unless ref $node eq 'HASH' && defined $node->{'$ref'} && keys %$node == 1;
        my ($ptr) = $node->{'$ref'} =~ m{^#(/.*)$} or last;
        $node = $self->{schema}->get($ptr);
    }
    return $node;
}

sub _media {
    my $ct = lc(shift // '');
    $ct =~ s/;.*//s;
    $ct =~ s/\s+//g;
    return $ct;
}

sub _error_shape {
    my ($self, $res) = @_;
    return 'not JSON' unless _media($res->headers->content_type) eq 'application/json';
    my $j = eval { decode_json($res->body) };
    return 'body is not JSON' unless ref $j eq 'HASH';
    my @e = $self->{schema}->validate($j, $self->_deref({'$ref' => '#/components/schemas/Error'}));
    return @e ? "not {\"detail\": string}: @e" : ();
}

# The problems of one response, as strings (none: it conforms).
sub check {
    my ($self, $method, $path, $res, %o) = @_;
    my $code = $res->code // return;
    $method = uc $method;
    return if $path =~ $STATIC_RE;
    if ($method eq 'OPTIONS' && $o{preflight}) {
        return if $code == 200;
        return $code == 400 ? $self->_error_shape($res) : ("preflight answered $code");
    }
    # nginx refuses a request line it cannot route (a NUL byte, a path above the root)
    # before any location is chosen, with its own HTML page (error_page cannot take over there).
    return () if $code == 400 && $path =~ m{%00|(?:^|/)\.\.(?:/|$)};
    my $op_method = $method eq 'HEAD' ? 'get' : lc $method;
    my @tpl = $self->match($path);
    if (!@tpl) {
        return $self->_error_shape($res) if $code == 404;
        if ($code == 307 && $path =~ m{./$}) {
            (my $bare = $path) =~ s{/$}{};
            return () if $self->match($bare) && ($res->headers->location // '') =~ m{^\Q$bare\E(?:\?|$)};
        }
        return ("undocumented route: $method $path answered $code");
    }
    my ($tpl) = grep { $self->{doc}{paths}{$_}{$op_method} } @tpl;
    if (!$tpl) {
        return ("$method $path answered $code but $tpl[0] has no \U$op_method\E operation")
          unless $code == 405;
        return ('405 without Allow') unless $res->headers->header('Allow');
        return $self->_error_shape($res);
    }
    my $op = $self->{doc}{paths}{$tpl}{$op_method};
    my $resp = $self->_deref($op->{responses}{$code});
    if (!$resp) {
        return $self->_error_shape($res) if $code >= 500 && $o{allow_5xx} && $o{allow_5xx}{$code};
        return ("$method $tpl: status $code is not documented ("
              . join(', ', sort keys %{$op->{responses}}) . ')');
    }
    return $self->_check_body($method, $tpl, $code, $resp, $res);
}

sub _check_body {
    my ($self, $method, $tpl, $code, $resp, $res) = @_;
    my $what = "$method $tpl $code";
    my $content = $resp->{content} // {};
    my $body = $res->body // '';
    my $bodyless = $method eq 'HEAD' || $code == 101 || $code == 204 || $code == 304;
    if (!%$content) {
        return () if !length $body || $bodyless || $code >= 300 && $code < 400;
        return ("$what: the document gives no body, got " . length($body) . ' bytes of '
              . ($res->headers->content_type // 'no type'));
    }
    return ("$what: no body, the document gives " . join(', ', sort keys %$content))
      if !length $body && !$bodyless;
    my $ct = _media($res->headers->content_type);
    my ($media) = grep { _media($_) eq $ct } keys %$content;
    ($media) = grep { m{^([^/]+)/\*$} && index($ct, "$1/") == 0 } keys %$content unless $media;
    return ("$what: Content-Type '$ct' is not one of " . join(', ', sort keys %$content)) unless $media;
    return () if $bodyless || $media ne 'application/json';
    my $j = eval { decode_json($body) };
    return ("$what: the body is not JSON: $@") if $@;
    my $schema = $self->_deref($content->{$media}{schema}) // return ();
    my @e = $self->{schema}->validate($j, $schema);
    return map {"$what: $_"} @e;
}

1;

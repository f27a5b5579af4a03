# The bad-input corpus of t/data/bad-input.tsv through nginx: malformed JSON, a wrong type for
# each field, overlong strings, NUL bytes, invalid UTF-8, huge numbers, bad UUIDs in paths and
# queries, percent-encoded NUL/CR/LF, duplicate parameters, URLs just under nginx's limit.
# Each case must get its expected 4xx with a JSON "detail", never a 5xx (Chatd::Test also
# checks the access log), and the stack must still answer /health afterwards.
#
# Requests go over a raw socket as HTTP/1.0, so the request line and body reach nginx byte for
# byte, as written in the table.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use IO::Socket::INET;
use Mojo::JSON qw(decode_json);

my $s = Chatd::Test->new->start;
my $alice = $s->register('alice');
my $bob   = $s->register('bob');

my %vars = (uuid => '3f1b1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f', me => $alice->{id}, bob => $bob->{id});

# \xNN, \t, \r, \n, \\; {uuid} {me} {bob}; then {N*TEXT}.
sub expand {
    my ($v, $where) = @_;
    return '' if $v eq '-';
    $v =~ s/\{(uuid|me|bob)\}/$vars{$1}/g;
    $v =~ s/\{(\d+)\*([^}]*)\}/$2 x $1/ge;
    $v =~ s/\\(x[0-9a-fA-F]{2}|[trn\\])/
        my $e = $1; $e =~ m{^x} ? chr(hex(substr($e, 1))) : {t => "\t", r => "\r", n => "\n", '\\' => '\\'}->{$e}/ge;
    return $v;
}

# One request; returns {status, headers => {lc name => value}, body} or {error}.
sub raw_request {
    my ($method, $target, $ctype, $body) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->http_port, Proto => 'tcp',
        Timeout => 10) or return {error => "connect: $!"};
    my $req = "$method $target HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $alice->{token}\r\n";
    $req .= "Content-Type: $ctype\r\n" if length $ctype;
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body || $method =~ /^(POST|PUT|PATCH)$/;
    $req .= "\r\n$body";
    my $resp = '';
    my $ok = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 15;
        $sock->syswrite($req) == length $req or die "short write: $!\n";
        while (1) {
            my $n = $sock->sysread(my $buf, 65536);
            die "read: $!\n" unless defined $n;
            last if $n == 0;
            $resp .= $buf;
        }
        alarm 0;
        1;
    };
    alarm 0;
    close $sock;
    return {error => $@} unless $ok;
    my ($head, $rbody) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    return {error => "no status line in: " . substr($resp, 0, 200)} unless $status;
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head;
    return {status => $status, headers => \%h, body => $rbody // ''};
}

my $file = "$FindBin::Bin/data/bad-input.tsv";
open my $fh, '<:raw', $file or die "$file: $!";
my @cases;
while (my $l = <$fh>) {
    next if $l =~ /^\s*(#|$)/;
    chomp $l;
    my @f = split /\t+/, $l;
    die "$file:$.: expected 5 tab-separated fields, got " . @f . "\n" unless @f == 5 && $f[4] =~ /^[1-5]\d\d$/;
    push @cases, {method => $f[0], path => $f[1], ctype => $f[2], body => $f[3], want => $f[4], line => $.};
}
cmp_ok(scalar @cases, '>=', 60, 'the corpus has at least 60 cases');

for my $c (@cases) {
    my $path  = expand($c->{path});
    my $body  = expand($c->{body});
    my $ctype = $c->{ctype} eq '-' ? '' : $c->{ctype};
    my $short = length $c->{path} > 70 ? substr($c->{path}, 0, 67) . '...' : $c->{path};
    my $title = "line $c->{line}: $c->{method} $short";
    my $r = raw_request($c->{method}, $path, $ctype, $body);
    if ($r->{error}) {
        fail("$title: answered") or diag($r->{error});
        next;
    }
    is($r->{status}, $c->{want}, "$title: $c->{want}")
      or diag("body " . substr(length $body > 200 ? substr($body, 0, 200) . '...' : $body, 0, 300)
        . "\nanswer: " . substr($r->{body}, 0, 300));
    my $json = eval { decode_json($r->{body}) };
    ok(ref $json eq 'HASH' && exists $json->{detail}, "$title: JSON with a detail")
      or diag("content-type: " . ($r->{headers}{'content-type'} // '-') . "\nanswer: " . substr($r->{body}, 0, 300));
    $s->contract_ok($c->{method}, $path, $r, "$title: the answer matches the OpenAPI document");
}

my $t = $s->t;
$t->get_ok($s->url('/health'))->status_is(200, 'the stack still answers /health after the corpus')
  ->json_is('/status', 'healthy', '/health says healthy');
$t->get_ok($s->url('/api/v1/users/me'), $alice->{h})->status_is(200, 'alice is still served')
  ->json_is('/id', $alice->{id}, 'as herself');
is($s->psql("SELECT count(*) FROM users") + 0, 2, 'no bad registration created a user');
is($s->psql("SELECT count(*) FROM messages") + 0, 0, 'no bad message was stored');
is($s->psql("SELECT count(*) FROM groups") + 0, 0, 'no bad group was created');

Chatd::Test::done();

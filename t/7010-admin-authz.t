# The admin authorization matrix of t/data/authz-admin.tsv: every /api/v1/admin route x
# (anonymous, plain user, deactivated superuser, superuser demoted mid-session, superuser).
# API.md "Admin": an active superuser, re-checked from the database on every request: 401
# without credentials, 403 otherwise (403 "Superuser required"; "User account is inactive"
# for the deactivated one), and the rows of the spec for the superuser. Also: every route of
# the route table under /api/v1/admin appears in the matrix.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::JSON qw(decode_json);

my $s = Chatd::Test->new->start;
sub api { Chatd::WsClient::api($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my %who;
$who{anonymous} = {auth => {}};
$who{$_} = Chatd::WsClient::register($s, $_) for qw(user deactivated demoted superuser victim other);
sql("UPDATE users SET is_superuser = true WHERE id IN ('$who{deactivated}{id}', '$who{demoted}{id}', '$who{superuser}{id}')");
for my $r (qw(deactivated demoted)) {
    is(api($who{$r}, GET => '/api/v1/admin/stats')->code, 200, "$r: allowed while an active superuser");
}
sql("UPDATE users SET is_active = false WHERE id = '$who{deactivated}{id}'");
sql("UPDATE users SET is_superuser = false WHERE id = '$who{demoted}{id}'");

my ($victim, $other) = @who{qw(victim other)};
my $res = api($victim, POST => '/api/v1/messages', json => {content => 'hello', receiver_id => $other->{id}});
my %ph = (user => $victim->{id}, msg => $res->json->{id}, missing => '00000000-0000-4000-8000-000000000000');
$res = api($other, POST => '/api/v1/groups', json => {name => 'G', member_ids => [$victim->{id}]});
$ph{group} = $res->json->{id};
$ph{member} = sql("SELECT id FROM group_members WHERE group_id = '$ph{group}' AND user_id = '$victim->{id}'");
$res = api($victim, POST => '/api/v1/contacts', json => {contact_id => $other->{id}});
$ph{contact} = $res->json->{id};
ok(!grep({ !defined } values %ph), 'fixtures: a message, a group, a membership, a contact');

my @roles = qw(anonymous user deactivated demoted superuser);
my %detail = (user => 'Superuser required', deactivated => 'User account is inactive', demoted => 'Superuser required');
my (%covered, $cases);
open my $fh, '<', "$FindBin::Bin/data/authz-admin.tsv" or die $!;
while (my $line = <$fh>) {
    chomp $line;
    next if $line =~ /^\s*(#|$)/;
    my ($method, $path, $body, @want) = split /\t/, $line;
    die "bad line: $line\n" unless @want == @roles;
    (my $p = $path) =~ s/\{(\w+)\}/$ph{$1} \/\/ die "no placeholder $1\n"/ge;
    my @args = $body eq '-' ? () : (json => decode_json($body));
    for my $i (0 .. $#roles) {
        my $r = $roles[$i];
        $res = api($who{$r}, $method => $p, @args);
        $cases++;
        is($res->code, $want[$i], "$r $method $path: $want[$i]") or diag($res->body);
        is($res->json->{detail}, $detail{$r}, "$r $method $path: '$detail{$r}'") if $detail{$r};
    }
    (my $shape = $path) =~ s/\?.*//;
    $covered{"$method $shape"} = 1;
}
cmp_ok($cases, '>=', 150, "the matrix ran $cases cases");

# Every admin route of the route table has a line (typed parameters as placeholders).
my $src = do { local $/; open my $r, '<', Chatd::Test::root() . '/fcgi/route.c' or die $!; <$r> };
my @routes = $src =~ /\{"(\w+)", "(\/api\/v1\/admin[^"]*)"/g;
ok(@routes >= 16, 'route table: the admin routes are found');
while (my ($m, $pat) = splice @routes, 0, 2) {
    my $re = join '', map { /^\{/ ? '[^/]+' : quotemeta } split m!(\{[^}]+\})!, $pat;
    ok((grep { /^\Q$m\E $re$/ } keys %covered), "matrix covers $m $pat");
}

Chatd::Test::done();

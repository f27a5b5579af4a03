# The group authorization matrix of t/data/authz-groups.tsv: role x group visibility x route ->
# status, each case on a fresh group (API.md "Groups": admins or creator update and add, admins,
# creator or the member themself remove, admins or creator change roles, only the creator
# deletes, a private group is 404 to outsiders; superusers may do what admins may, but not delete someone else's group).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000,
    RATE_LIMIT_LOGIN_PER_MINUTE => 100000})->start;
my $t = $s->t;

sub register { $s->register(@_) }
my %u = map { $_ => register($_ =~ s/-//gr) } qw(non-member member admin creator superuser victim target);
$s->psql("UPDATE users SET is_superuser = true WHERE id = '$u{superuser}{id}'");

my $file = "$FindBin::Bin/data/authz-groups.tsv";
open my $fh, '<', $file or die "$file: $!";
my @cases;
while (my $l = <$fh>) {
    next if $l =~ /^\s*(#|$)/;
    chomp $l;
    my ($role, $vis, $method, $path, $want) = split /\t+/, $l;
    die "$file:$.: expected 5 tab-separated fields\n" unless defined $want && $want =~ /^\d{3}$/;
    die "$file:$.: unknown role $role\n" unless $u{$role};
    push @cases, {role => $role, vis => $vis, method => $method, path => $path, want => $want, line => $.};
}
cmp_ok(scalar @cases, '>=', 90, 'the matrix has at least 90 cases');

# A fresh group per case (public or private), all created first; the admins promoted at once.
for my $c (grep { $_->{vis} ne 'missing' } @cases) {
    $t->post_ok($s->url('/api/v1/groups'), $u{creator}{h},
        json => {name => "case $c->{line}", is_private => $c->{vis} eq 'private' ? \1 : \0,
            member_ids => [map { $u{$_}{id} } qw(member admin victim)]})
      ->status_is(201, "line $c->{line}: create its $c->{vis} group");
    $c->{group} = $t->tx->res->json('/id');
}
$s->psql("UPDATE group_members SET role = 'admin' WHERE user_id = '$u{admin}{id}'");
is($s->psql("SELECT count(*) FROM group_members WHERE role = 'admin'") + 0, 2 * grep({ $_->{group} } @cases),
    'every case group has two admins: the creator and "admin"');

for my $c (@cases) {
    my %sub = (group => $c->{group} // '00000000-0000-4000-8000-000000000000',
        target => $u{target}{id}, victim => $u{victim}{id}, self => $u{$c->{role}}{id});
    (my $path = $c->{path}) =~ s/\{(\w+)\}/$sub{$1} \/\/ die "unknown placeholder {$1}\n"/ge;
    my $tx = $t->ua->build_tx($c->{method} => $s->url($path), $u{$c->{role}}{h},
        $c->{method} ne 'PATCH' ? () : $path =~ m{/members/} ? (json => {role => 'admin'})
        : (json => {description => 'changed'}));
    $t->request_ok($tx)->status_is($c->{want}, "$c->{role} $c->{vis} $c->{method} $c->{path}: $c->{want}");
}

Chatd::Test::done();

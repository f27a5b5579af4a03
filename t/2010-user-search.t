# GET /api/v1/users/search (API.md "Users"): case-insensitive, username prefix matches ranked
# before substring matches (username, first and last name), then by username; 1-2 character
# queries match prefixes only; % _ \ are literal; email only as a whole address; inactive
# users and the caller left out; validation of query and limit.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::Util qw(url_escape);

my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000,
    RATE_LIMIT_LOGIN_PER_MINUTE => 100000})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

sub register { $s->register(@_) }

my $me = register('john_caller');
register($_) for qw(johnsmith johnathan_b bigjohn a_bcd axbcd lit_x1 litax1);
register('zed1', first_name => 'Johnathan');
register('alpha9', last_name => 'Littlejohn');
register('pct1', first_name => '100%real');
register('pct2', first_name => '100xreal');
register('bsl1', first_name => 'back\\slash');
register('bsl2', first_name => 'backxslash');
register('quiet1', email => 'Secret.Addr@example.org');
my $old = register('johnold');
sql("UPDATE users SET is_active = false WHERE id = '$old->{id}'");

# Usernames of a search, in order; also checks the response shape once per call.
sub search {
    my ($q, $title, %o) = @_;
    my $url = '/api/v1/users/search?query=' . url_escape($q) . (defined $o{limit} ? "&limit=$o{limit}" : '');
    $t->get_ok($s->url($url), $o{h} // $me->{h})->status_is(200, "search '$q' ($title): 200");
    my $j = $t->tx->res->json;
    return ([map { $_->{username} } @{$j->{users} // []}], $j->{total}, $j);
}

my ($names, $total, $j) = search('JOHN', 'order');
is_deeply($names, [qw(johnathan_b johnsmith alpha9 bigjohn zed1)],
    'search john: username prefixes first, then substring matches, each by username');
is($total, 5, 'search john: total counts every match');
is_deeply([sort keys %$j], [qw(total users)], 'search: {users, total}');
ok(!grep({ $_ eq 'john_caller' } @$names), 'search john: the caller is left out');
ok(!grep({ $_ eq 'johnold' } @$names), 'search john: an inactive user is left out');
is(scalar(grep { defined $_->{email} } @{$j->{users}}), 0, "search: other users' emails are null");

($names) = search('john', 'lower case');
is_deeply($names, [qw(johnathan_b johnsmith alpha9 bigjohn zed1)], 'search is case-insensitive');
($names) = search('  john  ', 'padded');
is_deeply($names, [qw(johnathan_b johnsmith alpha9 bigjohn zed1)], 'search trims the query');
($names) = search('littleJOHN', 'last name');
is_deeply($names, ['alpha9'], 'search matches inside the last name');
($names) = search('johnathan', 'first name and username');
is_deeply($names, [qw(johnathan_b zed1)], 'search johnathan: username prefix, then first name');

($names, $total) = search('john', 'limit 2', limit => 2);
is_deeply($names, [qw(johnathan_b johnsmith)], 'search limit=2: the first two');
is($total, 5, 'search limit=2: total is still every match');

# 1-2 characters: prefixes of username, first or last name only (no substring scan).
($names) = search('jo', 'two characters');
is_deeply($names, [qw(johnathan_b johnsmith zed1)], 'search jo: username and first name prefixes only');
($names) = search('LI', 'two characters, last name');
is_deeply($names, [qw(lit_x1 litax1 alpha9)], 'search li: username prefixes, then last name prefix');

# Wildcards and the escape character are literal.
($names) = search('lit_x', 'underscore');
is_deeply($names, ['lit_x1'], "search lit_x: '_' is not a wildcard");
($names) = search('a_', 'underscore prefix');
is_deeply($names, ['a_bcd'], "search a_: '_' is literal in a prefix too");
($names) = search('100%real', 'percent');
is_deeply($names, ['pct1'], "search 100%real: '%' is not a wildcard");
($names) = search('%', 'lone percent');
is_deeply($names, [], "search %: matches nothing rather than everything");
($names) = search('_', 'lone underscore');
is_deeply($names, [], 'search _: matches nothing rather than everything');
($names) = search('back\\slash', 'backslash');
is_deeply($names, ['bsl1'], 'search back\\slash: the backslash is literal');

# Email: a whole address only.
($names, $total, $j) = search('secret.addr@example.org', 'whole email');
is_deeply($names, ['quiet1'], 'search by a whole email address finds the user');
is($j->{users}[0]{email}, undef, 'search by email: the email itself stays hidden');
($names) = search('SECRET.ADDR@EXAMPLE.ORG', 'whole email, upper case');
is_deeply($names, ['quiet1'], 'search by email is case-insensitive');
($names) = search('secret.addr', 'email local part');
is_deeply($names, [], 'search by the local part of an email finds nothing');
($names) = search('example.org', 'email domain');
is_deeply($names, [], 'search by an email domain finds nothing');
($names) = search('ecret.addr@example.or', 'email fragment');
is_deeply($names, [], 'search by an email fragment finds nothing');

# A superuser sees emails in results.
my $root = register('root1');
sql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");
(undef, undef, $j) = search('johnsmith', 'as superuser', h => $root->{h});
is($j->{users}[0]{email}, 'johnsmith@example.com', 'search as a superuser: emails shown');

# Blank and invalid queries.
($names, $total) = search('   ', 'blank');
is_deeply([$names, $total], [[], 0], 'search blank after trimming: {"users":[],"total":0}');
($names, $total) = search('zzzzzz', 'no match');
is_deeply([$names, $total], [[], 0], 'search without a match: empty, total 0');
(undef, undef, $j) = search('x' x 100, '100 characters');
is($j->{total}, 0, 'search with a 100-character query is accepted');

my $base = '/api/v1/users/search';
for my $case (['', 'query=', 'empty query', 'string_too_short'],
    ['x' x 101, 'query=' . ('x' x 101), '101-character query', 'string_too_long'],
    [undef, 'limit=5', 'missing query', 'missing'],
    [undef, 'query=john&limit=0', 'limit=0', 'greater_than_equal'],
    [undef, 'query=john&limit=51', 'limit=51', 'less_than_equal'],
    [undef, 'query=john&limit=abc', 'limit=abc', 'int_parsing'],
    [undef, 'query=john&limit=2.5', 'limit=2.5', 'int_parsing']) {
    my (undef, $qs, $what, $type) = @$case;
    $t->get_ok($s->url("$base?$qs"), $me->{h})->status_is(422, "search $what: 422")
      ->json_is('/detail/0/type' => $type, "search $what: $type");
}
$t->get_ok($s->url("$base?query=john&limit=50"), $me->{h})->status_is(200, 'search limit=50: 200');
$t->get_ok($s->url("$base?query=john&limit=1"), $me->{h})->status_is(200, 'search limit=1: 200')
  ->json_is('/total' => 5, 'search limit=1: total 5');
$t->get_ok($s->url("$base?query=john"))->status_is(401, 'search without a token: 401');
$t->get_ok($s->url("$base?query=%FF%FE"), $me->{h})->status_is(422, 'search with invalid UTF-8: 422');

Chatd::Test::done();

# User search is served by indexes, never by a sequential scan of users (API.md "Users",
# SCHEMA.md). The search runs in the SQL function chatd_user_search (schema/0007_search_prefix.sql),
# which fcgi/h_users.c calls as is; EXPLAIN of a function call does not show the statements
# inside it, so this test loads auto_explain with log_nested_statements and reads the plans of
# those statements, as the server plans them, for queries that take each branch (1, 2 and 3+
# characters, wildcards, an email, only punctuation), on a users table seeded with 100,000 rows
# and analyzed.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Encode ();
use Mojo::JSON qw(from_json);
use Mojo::Util qw(url_escape);

my $ROWS = 100_000;
my $s = Chatd::Test->new(env => {RATE_LIMIT_REGISTER_PER_HOUR => 100000})->start;
my $t = $s->t;

my $src = do { local $/; open my $fh, '<', Chatd::Test::root() . '/fcgi/h_users.c' or die $!; <$fh> };
like($src, qr/SELECT chatd_user_search\(\$1, \$2, \$3, \$4\)/,
    'fcgi/h_users.c serves the search with chatd_user_search, the function checked here');

$t->post_ok($s->url('/api/v1/auth/register'),
    json => {email => 'caller@example.com', username => 'caller', password => 'password123'})
  ->status_is(201, 'register the caller');
my $caller = $t->tx->res->json('/user/id');
my $auth   = {Authorization => 'Bearer ' . $t->tx->res->json('/access_token')};

my $seed = Chatd::Test::psql_run($s->db_url, qq{
    INSERT INTO users (email, hashed_password, username, first_name, last_name, is_active)
    SELECT 'seed' || i || '\@example.com', 'x',
           (ARRAY['alex','sam','jo','maria','li','kim','pat','chris','dana','lee'])[1 + i % 10]
               || '_' || substr(md5(i::text), 1, 6) || i,
           (ARRAY['Alice','Bob','Carol','Dave','Eve','Frank','Grace','Heidi','Ivan','Judy',
                  'Mallory','Oscar','Peggy','Trent','Victor','Walter'])[1 + (i * 7) % 16],
           (ARRAY['Smith','Jones','Brown','Taylor','Wilson','Davies','Evans','Thomas'])[1 + (i * 13) % 8]
               || substr(md5(i::text), 8, 3),
           i % 50 <> 0
    FROM generate_series(1, $ROWS) i;
    ANALYZE users;}, timeout => 300);
is($seed->{exit}, 0, "seed $ROWS users and ANALYZE") or diag(Chatd::Test::describe($seed));

# The plans (decoded auto_explain JSON) of every statement run by $sql, nested ones included.
sub plans_of {
    my ($sql) = @_;
    # LOAD and the auto_explain settings need a superuser; the programs' role is not one.
    my $r = Chatd::Test::run_cmd(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $s->admin_db_url,
            '-c', "LOAD 'auto_explain'", '-c', q{SET auto_explain.log_min_duration = 0},
            '-c', q{SET auto_explain.log_nested_statements = on},
            '-c', q{SET auto_explain.log_level = notice}, '-c', q{SET auto_explain.log_format = json},
            '-c', q{SET client_min_messages = notice}, '-c', $sql], timeout => 60);
    return (undef, Chatd::Test::describe($r)) if $r->{exit} != 0;
    my @plans;
    for my $chunk (split /^NOTICE:\s+duration: [\d.]+ ms\s+plan:\n/m, $r->{err}) {
        next unless $chunk =~ /^\{/;
        $chunk =~ s/\n(?:NOTICE|WARNING|ERROR):.*\z//s;
        # Lax UTF-8 (Encode's 'utf8', not 'UTF-8'): a plan quotes the query's literals, and a
        # noncharacter in one (the old chr(1114111) bound) must not kill the test.
        push @plans, from_json(Encode::decode('utf8', $chunk));
    }
    return (\@plans, $r->{err});
}

# Scans of users that are not served by an index condition, as "node type (detail)".
sub bad_scans {
    my ($node, $bad) = @_;
    my $type = $node->{'Node Type'} // '';
    my $rel  = $node->{'Relation Name'} // '';
    if ($type eq 'Seq Scan') {
        push @$bad, "Seq Scan on $rel";
    }
    elsif ($rel eq 'users' && $type =~ /^Index (?:Only )?Scan$/ && !$node->{'Index Cond'}) {
        push @$bad, "$type using $node->{'Index Name'} without an index condition";
    }
    elsif ($type eq 'Bitmap Index Scan' && !$node->{'Index Cond'}) {
        push @$bad, "Bitmap Index Scan on $node->{'Index Name'} without an index condition";
    }
    bad_scans($_, $bad) for @{$node->{Plans} // []};
    return $bad;
}
sub users_scans {
    my ($node, $n) = @_;
    $n++ if ($node->{'Relation Name'} // '') eq 'users';
    $n = users_scans($_, $n) for @{$node->{Plans} // []};
    return $n;
}

# The check itself can fail: a LIKE on an unindexed column must show up as a Seq Scan.
my ($ctl, $ctl_err) = plans_of(q{SELECT count(*) FROM users WHERE bio LIKE '%x%'});
ok($ctl && @$ctl, 'control query: auto_explain reports a plan') or diag($ctl_err);
is_deeply(bad_scans($ctl->[0]{Plan}, []), ['Seq Scan on users'],
    'control query: the checker reports its seq scan of users');

my @queries = ('a', 'al', 'ali', 'alex_', 'ALEX_1', 'grace', 'smith', 'gra smi', 'li',
    'heidi jones', 'seed77@example.com', 'SEED77@EXAMPLE.COM', '%', '_', '%a_', '100%', 'a\\b',
    '___', '...', 'zzzzzzzz', 'x' x 100);
for my $q (@queries) {
    (my $lit = $q) =~ s/'/''/g;
    my ($plans, $err) = plans_of("SELECT chatd_user_search('$caller', false, '$lit', 20)");
    ok($plans && @$plans >= 2, "search '$q': the nested statement's plan is reported") or diag($err);
    # The function runs several statements (rank 0, then rank 1 when needed): all are checked.
    my @inner = grep { ($_->{'Query Text'} // '') !~ /^\s*SELECT chatd_user_search/ } @{$plans // []};
    ok(@inner, "search '$q': the plans of the search statements are there") or next;
    my $reads = 0;
    $reads += users_scans($_->{Plan}, 0) for @inner;
    cmp_ok($reads, '>=', 2, "search '$q': the statements read users");
    my $bad = [];
    bad_scans($_->{Plan}, $bad) for @inner;
    is_deeply($bad, [], "search '$q': no seq scan, every scan of users has an index condition")
      or diag(Mojo::JSON::encode_json([map { $_->{Plan} } @inner]));
    # The prefix range's upper bound is the prefix with its last character incremented (0007),
    # no U+10FFFF sentinel (issue 12: strict decoders refuse it in the plans).
    my $plans_text = Mojo::JSON::to_json([map { $_->{Plan} } @inner]);
    unlike($plans_text, qr/\x{10FFFF}/, "search '$q': no U+10FFFF sentinel in the plans");
}

# The same queries through the API on the seeded table.
$t->get_ok($s->url('/api/v1/users/search?query=alex_&limit=50'), $auth)
  ->status_is(200, 'API search on the seeded table: 200')
  ->json_is('/total' => 100, 'API search on the seeded table: total capped at 100');
is(scalar @{$t->tx->res->json('/users')}, 50, 'API search on the seeded table: a full page of 50');
$t->get_ok($s->url('/api/v1/users/search?query=' . url_escape('seed77@example.com')), $auth)
  ->json_is('/total' => 1, 'API search by a whole email on the seeded table: one user');

Chatd::Test::done();

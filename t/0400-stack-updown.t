# scripts/stack used directly (not through the harness): up starts everything and answers
# /health, down stops every process it started (fcgi workers included), and a second down
# is harmless.
use strict;
use warnings;
use Test::More;
use File::Path qw(remove_tree);
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

plan skip_all => 'CHATD_TEST_PG_URL is not set (run through make test)' unless $ENV{CHATD_TEST_PG_URL};

my $root  = Chatd::Test::root();
my $db    = Chatd::Test::db_name();
my $tmpl  = $ENV{CHATD_TEST_PG_TEMPLATE} || ($ENV{CHATD_TEST_PG_URL} =~ m{://[^/]*/([^?]+)} ? $1 : 'chatd');
my $base  = $ENV{CHATD_TEST_TMP} || '/tmp';
my $var   = "$base/chatd-0400-$$-" . Chatd::Test::random_hex(4);
my $port  = Chatd::Test::free_port();
my %env   = (
    VAR_DIR            => $var,
    HTTP_PORT          => $port,
    STACK_PARTS        => 'redis fcgi wsd nginx',
    ENV_FILE           => '/dev/null',
    DEBUG              => 'false',
    SECRET_KEY         => Chatd::Test::random_hex(),
    REFRESH_SECRET_KEY => Chatd::Test::random_hex(),
    FCGI_WORKERS       => 2,
);
my $stack = sub { Chatd::Test::run_cmd(["$root/scripts/stack", @_], clean_env => 1, env => \%env, merge => 1) };

my $db_url = eval { Chatd::Test::create_db($db, $tmpl) };
ok($db_url, "database $db created from template $tmpl") or BAIL_OUT("cannot create a database: $@");
$env{DATABASE_URL} = $db_url;

my $up_done;
END {
    local $?;
    # Whatever happened above, leave nothing running.
    $stack->('down') if $up_done && $stack;
    Chatd::Test::drop_db($db) if $db_url;
    if (Test::More->builder->is_passing && !$ENV{CHATD_TEST_LEAVE}) { remove_tree($var) }
    else { print STDERR "# keeping $var\n" }
}

my $r = $stack->('up');
$up_done = 1;
is($r->{exit}, 0, 'stack up exits 0') or diag(Chatd::Test::describe($r));

my %st;
if (open my $fh, '<', "$var/stack.env") {
    while (<$fh>) {
        my ($k, $v) = /^([A-Z_][A-Z0-9_]*)=(.*)$/ or next;
        $v =~ s/^"(.*)"$/$1/;
        $st{$k} = $v;
    }
}
for my $k (qw(VAR_DIR HTTP_PORT REDIS_PORT REDIS_URL DATABASE_URL FCGI_SOCKET WSD_PORTS STACK_PARTS)) {
    ok(defined $st{$k} && length $st{$k}, "stack.env names $k");
}
is($st{HTTP_PORT}, $port, 'stack.env HTTP_PORT is the port we asked for');
is($st{DATABASE_URL}, $db_url, 'stack.env DATABASE_URL is the database we gave');

my $ua = Chatd::Test::ua();
my $res = $ua->get("http://127.0.0.1:$port/health")->res;
is($res->code, 200, 'GET /health through nginx is 200 after up');

# Every process the stack owns: the pid files, plus the fcgi master's workers.
my %pids;
for my $f (glob("$var/run/*.pid"), glob("$var/nginx/*.pid")) {
    open my $fh, '<', $f or next;
    my ($pid) = (<$fh> // '') =~ /(\d+)/ or next;
    (my $name = $f) =~ s{.*/}{};
    $pids{$pid} //= $name;
}
my %by_name = reverse %pids;
ok($by_name{$_}, "pid file $_ exists") for qw(redis.pid fcgi.pid wsd-1.pid);
ok((grep { /^nginx/ } values %pids), 'an nginx pid file exists');
my $master = $by_name{'fcgi.pid'};
my @workers;
Chatd::Test::wait_for(sub { @workers = $master ? Chatd::Test::workers($master) : (); @workers == 2 }, 10, 'two workers');
is(scalar @workers, 2, 'the fcgi master has two workers (FCGI_WORKERS=2)');
$pids{$_} = "fcgi worker" for @workers;
my @mailer = grep { Chatd::Test::comm($_) eq 'chat-mailer' } ($master ? Chatd::Test::children($master) : ());
is(scalar @mailer, 1, 'the fcgi master has one mailer');
$pids{$_} = "fcgi mailer" for @mailer;
my @dead = grep { !Chatd::Test::alive($_) } sort keys %pids;
is("@dead", '', 'every process of the stack is alive after up');

$r = $stack->('down');
is($r->{exit}, 0, 'stack down exits 0') or diag(Chatd::Test::describe($r));
my @alive = map { "$_ ($pids{$_})" } grep { Chatd::Test::alive($_) } sort keys %pids;
is("@alive", '', 'no process of the stack is alive after down');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp'),
    'nothing listens on HTTP_PORT after down');
ok(!-S $st{FCGI_SOCKET}, 'the FastCGI socket is gone after down') if $st{FCGI_SOCKET};

$r = $stack->('down');
is($r->{exit}, 0, 'a second stack down exits 0') or diag(Chatd::Test::describe($r));

# ---- the harness when up fails ------------------------------------------------------------
# A child test whose stack cannot start (chat-fcgi refuses its config) must die, showing the
# stack's message and the logs, and leave no process, database or port lock behind.

my $child = "$var-child.t";
open my $cfh, '>', $child or die "$child: $!";
print $cfh <<'CHILD';
use strict; use warnings; use Test::More; use Chatd::Test;
my $s = Chatd::Test->new(env => {ACCESS_TOKEN_EXPIRE_MINUTES => 'abc'})->start;
ok(1, 'not reached');
Chatd::Test::done();
CHILD
close $cfh;
$r = Chatd::Test::run_cmd([$^X, "-I$root/t/lib", $child], merge => 1, timeout => 180);
unlink $child;
isnt($r->{exit}, 0, 'harness: a stack that cannot start fails the test file');
like($r->{out}, qr/could not start the stack/, 'harness: it says the stack did not start');
like($r->{out}, qr/ACCESS_TOKEN_EXPIRE_MINUTES/, "harness: it shows the program's own complaint");
unlike($r->{out}, qr/^ok \d/m, 'harness: no test runs on a stack that is not up');
my ($kept) = $r->{out} =~ /\(VAR_DIR (\S+) kept\)/;
ok($kept && -d $kept, 'harness: the VAR_DIR of the failed start is kept for inspection');
if ($kept) {
    my @left;
    for my $f (glob "$kept/run/*.pid") {
        open my $fh, '<', $f or next;
        my ($pid) = (<$fh> // '') =~ /(\d+)/;
        push @left, "$f ($pid)" if $pid && Chatd::Test::alive($pid);
    }
    is("@left", '', 'harness: no process of the failed stack is left running');
    remove_tree($kept) if Test::More->builder->is_passing && !$ENV{CHATD_TEST_LEAVE};
}
my ($child_pid) = $kept ? $kept =~ /-(\d+)-stack/ : ();
my $left_db = $child_pid
  ? Chatd::Test::psql_at(Chatd::Test::pg_url($ENV{CHATD_TEST_PG_URL}, 'postgres'),
    "SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_${child_pid}'")
  : -1;
chomp $left_db;
is($left_db, 0, "harness: the failed test's database was dropped");
sub lock_owner { open(my $fh, '<', shift) or return ''; my $o = <$fh> // ''; chomp $o; return $o }
my @locks = grep { $child_pid && lock_owner($_) eq $child_pid } glob '/tmp/chatd-ports/*';
is("@locks", '', "harness: the failed test's port lock was released");

done_testing;

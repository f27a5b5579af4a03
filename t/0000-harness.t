# The harness reports failures as failures (git's t0000-basic.sh): Test::More run by a child
# perl, the C unit-test header t/lib/tap.h, the automatic end-of-file checks of Chatd::Test,
# its END guard, and its helpers (ports, commands, polling, process lookups).
# Needs no stack and no Postgres.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use TAP::Parser;
use POSIX ();
use Time::HiRes ();
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $root = Chatd::Test::root();
my $tmp  = tempdir('chatd-t0000-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh or die "$path: $!";
    return $path;
}

# Runs a TAP producer; returns {parser, lines (all output, stderr merged), failed, passed}.
sub run_tap {
    my @exec = @_;
    my $p = TAP::Parser->new({exec => \@exec, merge => 1});
    my @lines;
    while (my $r = $p->next) { push @lines, $r->as_string }
    return {
        p      => $p,
        text   => join("\n", @lines) . "\n",
        failed => [$p->failed],
        passed => [$p->passed],
        exit   => $p->exit,
    };
}

sub run_perl_tap {
    my ($name, $code) = @_;
    my $f = write_file("$tmp/$name.pl", "use strict; use warnings; use Test::More;\n$code");
    return run_tap($^X, "-I$root/t/lib", $f);
}

# ---- Test::More in a child ----------------------------------------------------------

my $r = run_perl_tap('fails', <<'EOF');
ok(1, 'a passing check');
ok(0, 'a deliberately failing check');
is(2, 3, 'a deliberately failing is');
done_testing;
EOF
is_deeply($r->{failed}, [2, 3], 'Test::More: ok(0) and a wrong is() are seen as failed tests 2 and 3');
is_deeply($r->{passed}, [1], 'Test::More: ok(1) is seen as passed');
isnt($r->{exit}, 0, 'Test::More: a file with failures exits non-zero');
like($r->{text}, qr/got: '2'/, 'Test::More: is() reports what it got');
like($r->{text}, qr/expected: '3'/, 'Test::More: is() reports what it expected');

$r = run_perl_tap('passes', "ok(1, 'fine'); done_testing;\n");
is_deeply($r->{failed}, [], 'Test::More: a passing file has no failed tests');
is($r->{exit}, 0, 'Test::More: a passing file exits 0');
ok($r->{p}->is_good_plan, 'Test::More: done_testing gives a good plan');

$r = run_perl_tap('dies', "ok(1, 'before'); die qq{boom\\n};\n");
isnt($r->{exit}, 0, 'Test::More: a file that dies exits non-zero');

# ---- t/lib/tap.h ----------------------------------------------------------------------

SKIP: {
    my $cc = $ENV{CC} // 'cc';
    my $have = Chatd::Test::run_cmd([$cc, '--version'], timeout => 30);
    skip "no C compiler ($cc)", 14 unless $have->{exit} == 0;

    my $compile = sub {
        my ($name, $body) = @_;
        my $src = write_file("$tmp/$name.c", qq{#include "tap.h"\nint main(void)\n{\n$body\n}\n});
        my $c = Chatd::Test::run_cmd([$cc, qw(-std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
                  -Wmissing-prototypes -Wformat=2 -D_GNU_SOURCE), "-I$root/t/lib", '-o', "$tmp/$name", $src],
            timeout => 60);
        ok($c->{exit} == 0, "tap.h: $name.c compiles with the project's warnings")
          or diag(Chatd::Test::describe($c));
        return "$tmp/$name";
    };

    my $bin = $compile->('tap-fail', <<'EOF');
    plan(5);
    ok(1, "passing ok");
    ok(0, "failing ok %d", 2);
    is_int(41 + 1, 43, "failing is_int");
    is_str("abc", "abd", "failing is_str");
    is_str(NULL, "x", "failing is_str with NULL");
    return done_testing();
EOF
    my $t = run_tap($bin);
    is_deeply($t->{failed}, [2, 3, 4, 5], 'tap.h: ok(0), is_int and is_str mismatches are failed tests');
    is_deeply($t->{passed}, [1], 'tap.h: ok(1) passes');
    isnt($t->{exit}, 0, 'tap.h: done_testing() returns non-zero after a failure');
    like($t->{text}, qr/failing ok 2/, 'tap.h: the title is printf-formatted');
    like($t->{text}, qr/tap-fail\.c line \d+/, 'tap.h: a failure names file and line');
    like($t->{text}, qr/got: 42\b.*\n.*expected: 43\b/, 'tap.h: is_int prints got and expected');
    like($t->{text}, qr/got: "abc".*\n.*expected: "abd"/, 'tap.h: is_str prints got and expected, quoted');
    like($t->{text}, qr/got: NULL/, 'tap.h: is_str prints NULL for a NULL string');

    $bin = $compile->('tap-pass', <<'EOF');
    ok(1, "one");
    is_int(7, 7, "two");
    is_str("x", "x", "three");
    return done_testing();
EOF
    $t = run_tap($bin);
    ok($t->{p}->is_good_plan && !@{$t->{failed}} && $t->{exit} == 0,
        'tap.h: passing tests without plan() print 1..3 at the end and exit 0');

    $bin = $compile->('tap-plan', "    plan(3);\n    ok(1, \"only one\");\n    return done_testing();");
    $t = run_tap($bin);
    isnt($t->{exit}, 0, 'tap.h: running fewer tests than planned exits non-zero');
}

# ---- the automatic checks of Chatd::Test ------------------------------------------------

sub fake_var_dir {
    my ($name, %logs) = @_;
    my $dir = "$tmp/$name";
    mkdir $dir;
    mkdir "$dir/log";
    write_file("$dir/log/$_", $logs{$_}) for keys %logs;
    return $dir;
}

my $clean_access = qq{127.0.0.1 [2026-01-01T00:00:00+00:00] 200 0.002 "GET /health HTTP/1.1" 78 req=abc urt=0.002 ua="Mojo"\n};
my %clean = (
    'fcgi.log'         => "2026-01-01T00:00:00.000Z info chat-fcgi[1] ready\n",
    'wsd-1.log'        => "2026-01-01T00:00:00.000Z info chat-wsd[2] ready\n",
    'nginx-error.log'  => "2026/01/01 00:00:00 [notice] 3#3: signal process started\n",
    'nginx-access.log' => $clean_access,
);

sub run_checks {
    my ($dir, $extra) = @_;
    return run_perl_tap('checks', <<"EOF");
use Chatd::Test;
my \$s = Chatd::Test->new(name => 'fake', var_dir => '$dir');
$extra
\$s->check_logs;
done_testing;
EOF
}

sub failed_titles {
    my $r = shift;
    my %failed = map { $_ => 1 } @{$r->{failed}};
    my @t;
    for my $l (split /\n/, $r->{text}) {
        push @t, $2 if $l =~ /^not ok (\d+) - (.*)$/ && $failed{$1};
    }
    return join ', ', @t;
}

$r = run_checks(fake_var_dir('clean', %clean), '');
is_deeply($r->{failed}, [], 'checks: clean logs pass every automatic check');
is(scalar @{$r->{passed}}, 5, 'checks: five log checks ran');

$r = run_checks(fake_var_dir('hash', %clean,
    'fcgi.log' => "2026-01-01T00:00:00.000Z info chat-fcgi[1] oops \$argon2id\$v=19\$m=19456,t=2,p=1\$abc\$def\n"), '');
like(failed_titles($r), qr/^\[fake\] no secret key or password hash/, 'checks: a password hash in a log fails');

$r = run_checks(fake_var_dir('asan', %clean,
    'fcgi.log' => "==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n"), '');
like(failed_titles($r), qr/^\[fake\] no sanitizer errors/, 'checks: AddressSanitizer in fcgi.log fails');

$r = run_checks(fake_var_dir('ubsan', %clean, 'wsd-1.log' => "ws_conn.c:12:5: runtime error: signed integer overflow\n"), '');
like(failed_titles($r), qr/^\[fake\] no sanitizer errors/, 'checks: UBSan runtime error in wsd-1.log fails');

$r = run_checks(fake_var_dir('segv', %clean,
    'fcgi.log' => "2026-01-01T00:00:00.000Z error chat-fcgi[1] worker 77 killed by signal 11 (SIGSEGV)\n"), '');
like(failed_titles($r), qr/^\[fake\] no process crashed/, 'checks: a worker killed by SIGSEGV fails');

$r = run_checks(fake_var_dir('kill9', %clean,
    'fcgi.log' => "2026-01-01T00:00:00.000Z warn chat-fcgi[1] worker 77 killed by signal 9\n"), '');
is_deeply($r->{failed}, [], 'checks: a worker killed by signal 9 (a test kill) is not a crash');

$r = run_checks(fake_var_dir('crit', %clean,
    'nginx-error.log' => "2026/01/01 00:00:00 [crit] 3#3: *1 connect() to unix:/x failed\n"), '');
like(failed_titles($r), qr/^\[fake\] no \[alert\]/, 'checks: [crit] in the nginx error log fails');

$r = run_checks(fake_var_dir('emerg', %clean, 'nginx-error.log' => "2026/01/01 00:00:00 [emerg] 3#3: bind() failed\n"), '');
like(failed_titles($r), qr/^\[fake\] no \[alert\]/, 'checks: [emerg] in the nginx error log fails');

my $a502 = $clean_access . qq{127.0.0.1 [2026-01-01T00:00:01+00:00] 502 0.001 "GET /health HTTP/1.1" 157 req=abd urt=- ua="Mojo"\n};
$r = run_checks(fake_var_dir('a502', %clean, 'nginx-access.log' => $a502), '');
like(failed_titles($r), qr/^\[fake\] no 5xx/, 'checks: a 502 in the access log fails');
like($r->{text}, qr/\] 502 0\.001 "GET/, 'checks: the failing access-log line is shown');

$r = run_checks(fake_var_dir('combined', %clean, 'nginx-access.log' =>
    qq{127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "POST /x HTTP/1.1" 500 21 "-" "Mojo"\n}), '');
like(failed_titles($r), qr/^\[fake\] no 5xx/, 'checks: a 500 in the combined log format fails too');

$r = run_checks(fake_var_dir('a502ok', %clean, 'nginx-access.log' => $a502), '$s->allow_5xx(502);');
is_deeply($r->{failed}, [], 'checks: allow_5xx(502) lets a 502 pass');

$r = run_checks(fake_var_dir('a503', %clean, 'nginx-access.log' => $a502), '$s->allow_5xx(503);');
like(failed_titles($r), qr/^\[fake\] no 5xx/, 'checks: allow_5xx(503) does not excuse a 502');

$r = run_checks(fake_var_dir('aweird', %clean, 'nginx-access.log' => "something else entirely\n"), '');
like(failed_titles($r), qr/^\[fake\] no 5xx/, 'checks: an access log in an unknown format fails');

$r = run_perl_tap('forgot', <<'EOF');
use Chatd::Test;
my $s = Chatd::Test->new(name => 'fake');
$s->{started} = 1;    # as if start() had run
push @Chatd::Test::LIVE, $s;
ok(1, 'a passing test');
done_testing;
EOF
isnt($r->{exit}, 0, 'END guard: a file that never calls done() fails');
like($r->{text}, qr/without Chatd::Test::done\(\)/, 'END guard: it says why');

# ---- helpers ----------------------------------------------------------------------------

my $p1 = Chatd::Test::free_port();
my $p2 = Chatd::Test::free_port();
ok($p1 >= 10000 && $p1 < 20000, 'free_port: port is in 10000-19999');
isnt($p1, $p2, 'free_port: two calls give two ports');
ok(-f "/tmp/chatd-ports/$p1", 'free_port: a lock file reserves the port');
my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p1, Proto => 'tcp', Listen => 1);
ok($sock, 'free_port: the port can be bound');
close $sock if $sock;
Chatd::Test::release_port($p1);
ok(!-e "/tmp/chatd-ports/$p1", 'release_port: the lock file is removed');

# One lock implementation: scripts/stack's (scripts/port-lock, owner = a VAR_DIR) respects
# the harness's locks (owner = a pid) and takes over stale ones, and the other way round.
my $lock = "$root/scripts/port-lock";
my $gone = "/tmp/chatd-t0000-gone-$$";
my $pl = sub { Chatd::Test::run_cmd([$lock, @_])->{exit} };
is($pl->('claim', $gone, $p2), 1, 'port-lock: a stack cannot claim a port the harness holds');
is($pl->('claim', $$, $p2), 0, 'port-lock: the harness owns its own lock');
Chatd::Test::release_port($p2);
my $dead = fork // die "fork: $!";
POSIX::_exit(0) unless $dead;
waitpid $dead, 0;
open my $lfh, '>', "/tmp/chatd-ports/$p2" or die;
print $lfh "$dead\n";
close $lfh;
is($pl->('claim', $gone, $p2), 0, "port-lock: a stack takes over the lock of a dead test's pid");
is(Chatd::Test::_slurp("/tmp/chatd-ports/$p2"), "$gone\n", 'port-lock: the lock names the stack');
ok(!-d $gone, 'port-lock: whose VAR_DIR does not exist, so its lock is stale');
is($pl->('claim', $$, $p2), 0, "port-lock: and a test takes over a stack's stale lock");
$pl->('release', $$);
ok(!-e "/tmp/chatd-ports/$p2", 'port-lock: release drops the owner\'s locks');

my $c = Chatd::Test::run_cmd(['sh', '-c', 'echo out; echo err >&2; exit 3']);
is($c->{exit}, 3, 'run_cmd: exit status is returned');
is($c->{out}, "out\n", 'run_cmd: stdout is captured');
is($c->{err}, "err\n", 'run_cmd: stderr is captured apart');
$c = Chatd::Test::run_cmd(['sh', '-c', 'kill -9 $$']);
is($c->{signal}, 9, 'run_cmd: death by a signal is reported');
isnt($c->{exit}, 0, 'run_cmd: death by a signal is not exit 0');
my $t0 = Time::HiRes::time();
$c = Chatd::Test::run_cmd(['sh', '-c', 'exec sleep 30'], timeout => 0.5);
ok($c->{timed_out} && $c->{exit} != 0, 'run_cmd: a command past its timeout is killed and fails');
ok(Time::HiRes::time() - $t0 < 10, 'run_cmd: the timeout bounds the wait');
{
    local $ENV{DEBUG} = 'true';
    $c = Chatd::Test::run_cmd(['sh', '-c', 'echo "[$FOO][${DEBUG-unset}]"'], env => {FOO => 'bar'}, clean_env => 1);
}
is($c->{out}, "[bar][unset]\n", 'run_cmd: env is added and clean_env drops inherited settings');

my $n = 0;
is(Chatd::Test::wait_for(sub { ++$n >= 3 && 'done' }, 5, 'a counter'), 'done',
    'wait_for: returns the condition value once true');
$t0 = Time::HiRes::time();
ok(!defined Chatd::Test::wait_for(sub { 0 }, 0.3, 'a condition that never holds (expected)'),
    'wait_for: returns undef on timeout');
my $el = Time::HiRes::time() - $t0;
ok($el >= 0.3 && $el < 3, 'wait_for: the timeout bounds the wait');

my $kid = fork // die "fork: $!";
if (!$kid) { exec 'sleep', '30' or POSIX::_exit(127) }
ok((grep { $_ == $kid } Chatd::Test::children($$)), 'children: a forked child is listed');
ok(Chatd::Test::alive($kid), 'alive: a running child is alive');
kill 'KILL', $kid;
ok(Chatd::Test::wait_for(sub { !Chatd::Test::alive($kid) }, 5, 'the child to die'), 'alive: a killed child is not alive');
waitpid $kid, 0;
ok(!(grep { $_ == $kid } Chatd::Test::children($$)), 'children: a reaped child is gone');

is(Chatd::Test::unique_title('same title'), 'same title', 'unique_title: first use is unchanged');
is(Chatd::Test::unique_title('same title'), 'same title [2]', 'unique_title: a repeat gets a number');

is(Chatd::Test::pg_url('postgresql://chatd@127.0.0.1:24567/chatd?sslmode=disable', 't_x'),
    'postgresql://chatd@127.0.0.1:24567/t_x?sslmode=disable', 'pg_url: replaces the database, keeps the query');
is(Chatd::Test::pg_url('postgresql://chatd@127.0.0.1:24567', 't_x'), 'postgresql://chatd@127.0.0.1:24567/t_x',
    'pg_url: adds a database to a URL without one');
my $db = Chatd::Test::db_name('x');
like($db, qr/^t_0000_harness_\d+_x$/, 'db_name: t_<test>_<pid>_<suffix>');
like(Chatd::Test::random_hex(), qr/^[0-9a-f]{64}$/, 'random_hex: 64 hex digits');

done_testing;

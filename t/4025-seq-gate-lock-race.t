# schema/0019_gate_release.sql: a lock granted just as the waiter's lock_timeout fires is
# released by the gate functions' error handlers. Postgres grants such a lock and still raises
# "canceling statement due to lock timeout" in the waiter; the old handlers missed it, and the
# backend kept the gate (every writer then answered 503 "Database busy" until that connection
# died: CI saw it in t/4020) or a session lock on a marker key (chatd_stable_seq() held back
# for good).
#
# The race is made certain: the waiting backend is stopped (SIGSTOP) until its lock_timeout
# has passed, the holder lets go (the lock is granted to the stopped waiter), then the waiter
# continues (SIGCONT) and meets both at once. For each of chatd_seq_take(), chatd_stable_seq(),
# chatd_wait_stable() waiting on the gate, chatd_wait_stable() waiting on a writer's marker:
# the waiter's session holds no gate or marker key afterwards, and a writer passes the gate.
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(sleep);
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(parts => 'redis')->start;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }
my $dir = $s->var_dir;

# Our keys: the gate and the marker key space.
my $OURS = q{locktype = 'advisory' AND objsubid = 2 AND (classid = 7001 AND objid = 15
             OR classid::bigint >= 1130000000)
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())};

sub session {
    my ($app, $out) = @_;
    my $pid = open(my $fh, '|-') // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out // '/dev/null' or die "$out: $!";
        open STDERR, '>&', \*STDOUT or die;
        $ENV{PGAPPNAME} = $app;
        exec 'psql', '-X', '-q', '-A', '-t', '-d', $s->db_url or die "exec psql: $!";
    }
    $fh->autoflush(1);
    return {fh => $fh, pid => $pid, app => $app};
}
sub backend { my $app = shift; return sql("SELECT pid FROM pg_stat_activity WHERE application_name = '$app'") }
sub end_session { my $x = shift; close $x->{fh}; waitpid($x->{pid}, 0) }

my @cases = (
    ['chatd_seq_take()',                'SELECT pg_advisory_lock(7001, 15);',        'SELECT chatd_seq_take();'],
    ['chatd_stable_seq()',              'SELECT pg_advisory_lock_shared(7001, 15);', 'SELECT chatd_stable_seq();'],
    ['chatd_wait_stable() on the gate', 'SELECT pg_advisory_lock(7001, 15);',        'SELECT chatd_wait_stable(1000000000);'],
    ['chatd_wait_stable() on a marker', 'BEGIN; SELECT chatd_seq_take();',           'SELECT chatd_wait_stable(1000000000);'],
);
my $n = 0;
for my $c (@cases) {
    my ($name, $hold, $call) = @$c;
    $n++;
    my $h = session("race-holder-$n");
    print {$h->{fh}} "$hold\nSELECT pg_sleep(300);\n";
    ok($s->wait_for(sub { sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                               WHERE a.application_name = 'race-holder-$n' AND l.granted AND l.$OURS") > 0 },
        30, 'the holder to hold'), "$name: the holder holds its lock");

    my $out = "$dir/race-waiter-$n.out";
    my $w   = session("race-waiter-$n", $out);
    print {$w->{fh}} "SET lock_timeout = '3s';\n$call\n";
    my $wpid;
    ok($s->wait_for(sub { ($wpid = backend("race-waiter-$n")) ne ''
                          && sql("SELECT count(*) FROM pg_locks WHERE pid = $wpid AND NOT granted") > 0 },
        30, 'the waiter to wait'), "$name: the waiter waits for it");
    ok(kill('STOP', $wpid), "$name: the waiting backend is stopped") or diag("kill STOP $wpid: $!");
    sleep 3.5;    # past the waiter's lock_timeout (3 s: time to see it wait and stop it under load)
    sql("SELECT pg_terminate_backend(" . backend("race-holder-$n") . ")");
    ok($s->wait_for(sub { sql("SELECT count(*) FROM pg_locks WHERE pid = $wpid AND NOT granted") == 0 }, 30,
        'the lock to be granted to the stopped waiter'), "$name: the stopped waiter was granted the lock");
    kill 'CONT', $wpid;
    print {$w->{fh}} "SELECT 'held=' || count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND $OURS;\n";
    end_session($w);
    end_session($h);
    my $got = Chatd::Test::_slurp($out) // '';
    like($got, qr/^held=0$/m, "$name: afterwards the waiter's session holds no gate or marker key")
      or diag($got);
    is(sql("SELECT count(*) FROM pg_locks WHERE $OURS"), 0, "$name: nothing left held once both ended");
}

is(sql("SELECT chatd_seq_take() > 0"), 't', 'a writer passes the gate afterwards');
Chatd::Test::done();

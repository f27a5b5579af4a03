# Issue 12: the chat-fcgi master reloads (SIGHUP: ENV_FILE read again, workers replaced one by
# one) and upgrades (SIGUSR2: the file at its path executed again) under load, with the
# listening socket handed over: 0 non-2xx and 0 socket errors among keep-alive clients doing
# GET /api/v1/users/me and POST /api/v1/messages the whole time. A reload whose configuration
# does not load is refused and the running workers stay.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Mojo::IOLoop;
use Mojo::UserAgent;
use Time::HiRes qw(time);

my $dir = tempdir('chatd-8600-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = "$dir/chat-fcgi";
sub put_binary {
    copy(Chatd::Test::root() . '/bin/chat-fcgi', "$bin.new") or die "copy: $!\n";
    chmod 0755, "$bin.new";
    rename("$bin.new", $bin) or die "rename: $!\n";    # a new file, as `make install` leaves it
}
put_binary();
my $envfile = "$dir/chatd.env";
sub write_env { open my $fh, '>', $envfile or die "$envfile: $!\n"; print $fh @_; close $fh }
write_env("# chatd test env file\n");

my $s = Chatd::Test->new(fcgi_workers => 3, env => {FCGI_BIN => $bin, ENV_FILE => $envfile})->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
my $master = $s->pid('fcgi');

sub google_configured {
    my $res = Chatd::Test::ua()->get($s->url('/api/v1/oauth/google/status'))->res;
    return ($res->json // {})->{configured} ? 1 : 0;
}
sub workers { sort { $a <=> $b } grep { Chatd::Test::alive($_) } Chatd::Test::workers($master) }
sub stack_cmd { my $r = $s->_stack(@_); return ($r->{exit}, $r->{out} // '') }

# Four keep-alive clients, each one request at a time, alternating a read and a write, while
# $action runs in a child process; they go on for 1 s after it ended.
sub under_load {
    my ($name, $action) = @_;
    my $ua = Mojo::UserAgent->new(request_timeout => 30, inactivity_timeout => 30);
    my %st = (ok => 0, bad => 0, err => 0, why => [], during => 0);
    my ($end, $act_err, $stop);
    my $loop = Mojo::IOLoop->singleton;
    my $one;
    $one = sub {
        my $n = shift;
        return if $stop;
        my $u  = $n % 2 ? $alice : $bob;
        my $to = $n % 2 ? $bob : $alice;
        my @req = $n % 4 < 2
          ? (get => $s->url('/api/v1/users/me') => $u->{auth})
          : (post => $s->url('/api/v1/messages') => $u->{auth} =>
              json => {content => "load $n " . time, receiver_id => $to->{id}});
        $ua->start($ua->build_tx(@req) => sub {
            my (undef, $tx) = @_;
            my $code = $tx->res->code // 0;
            if ($tx->error && !$code) {
                $st{err}++;
                push @{$st{why}}, $tx->error->{message} if @{$st{why}} < 5;
            } elsif ($code >= 200 && $code < 300) {
                $st{ok}++;
                $st{during}++ if !$end;
            } else {
                $st{bad}++;
                push @{$st{why}}, "$code " . $tx->res->body if @{$st{why}} < 5;
            }
            $one->($n + 4);
        });
    };
    $one->($_) for 0 .. 3;
    $loop->timer(0.5 => sub {
        $loop->subprocess(sub { return $action->() },
            sub { my (undef, $err, @r) = @_; $act_err = $err || $r[0]; $end = time });
    });
    my $tick = $loop->recurring(0.1 => sub {
        $loop->stop if ($end && time > $end + 1) || time > $^T + 600;
    });
    $loop->start;
    $stop = 1;
    $loop->remove($tick);
    Mojo::IOLoop->one_tick for 1 .. 5;
    ok(!$act_err, "$name: the action succeeded") or diag("$name: $act_err");
    diag("$name under load: ok=$st{ok} non_2xx=$st{bad} socket_errors=$st{err} during=$st{during}");
    is($st{bad}, 0, "$name: 0 non-2xx answers") or diag(join "\n", @{$st{why}});
    is($st{err}, 0, "$name: 0 socket errors") or diag(join "\n", @{$st{why}});
    cmp_ok($st{during}, '>', 10, "$name: requests were answered while it ran");
}

is(google_configured(), 0, 'Google sign-in is not configured at start');
my @before = workers();
is(scalar @before, 3, 'three workers');

write_env("GOOGLE_CLIENT_ID=reloaded-id\nGOOGLE_CLIENT_SECRET=reloaded-secret\n");
under_load('reload (SIGHUP)', sub {
    my ($rc, $out) = stack_cmd('reload');
    return $rc ? "scripts/stack reload: $out" : 0;
});
is($s->pid('fcgi'), $master, 'the master kept its pid');
my @after = workers();
is(scalar @after, 3, 'three workers after the reload');
ok(!(grep { my $o = $_; grep { $_ == $o } @after } @before), 'every worker was replaced')
  or diag("before @before, after @after");
is(google_configured(), 1, 'the reload read ENV_FILE again (Google sign-in now configured)');

# A new binary at the same path: the master runs it.
put_binary();
my @new_ino = (stat $bin)[0, 1];
isnt(join(':', (stat "/proc/$master/exe")[0, 1]), join(':', @new_ino), 'the running image is the old file');
@before = workers();
under_load('upgrade (SIGUSR2)', sub {
    my ($rc, $out) = stack_cmd('upgrade');
    return $rc ? "scripts/stack upgrade: $out" : 0;
});
is(join(':', (stat "/proc/$master/exe")[0, 1]), join(':', @new_ino), 'the master now runs the new file');
is($s->pid('fcgi'), $master, 'with the same pid');
@after = workers();
ok(@after == 3 && !(grep { my $o = $_; grep { $_ == $o } @after } @before), 'and new workers')
  or diag("before @before, after @after");

# A configuration that does not load: refused, nothing replaced.
write_env("ACCESS_TOKEN_EXPIRE_MINUTES=0\n");
@before = workers();
my ($rc, $out) = stack_cmd('reload');
isnt($rc, 0, 'a reload with a bad ENV_FILE fails');
like($out, qr/reload refused/, 'saying the reload was refused') or diag($out);
is_deeply([workers()], \@before, 'the workers stay');
my $res = Chatd::WsClient::api($s, $alice, GET => '/api/v1/users/me');
is($res->code, 200, 'and answer');
like(Chatd::Test::_slurp($s->log_file('fcgi')) // '', qr/ACCESS_TOKEN_EXPIRE_MINUTES/,
    'the log names the bad key');

Chatd::Test::done();

package Chatd::Faults;

# The fault-injection runs of t/85xx (issue 8: "acknowledged => recoverable").
#
#   my $s = Chatd::Test->new(wsd_instances => 2)->start;
#   Chatd::Faults::allow($s);                       # 502/503/504 are what a fault looks like
#   Chatd::Faults::run($s, 'wsd kill -9', sub { kill 'KILL', $s->pid('wsd'); $s->start_part('wsd') });
#
# One run: four fresh users (a group of all four), senders over REST (one request at a time)
# and over the WebSocket (one message at a time, waiting for its ack) at a steady rate
# (about 25 messages/s in all, private and group conversations), each recording the id and
# seq of every acknowledged message (the 201 body; the WS ack). After WARMUP seconds the
# fault runs in a child process (it may block: kill, restart, sleep); the senders keep going
# through it and for TAIL seconds after it: a failed request or a socket that dies is an
# error seen by the client, which backs off (0.2 s doubling to 2 s), reconnects and sends a
# new message (never the same one again: only acks count). Then every user replays from 0
# (`sync`, on a fresh WebSocket) and the run counts, over what every participant of each
# conversation got:
#   lost       acknowledged but missing from a participant's replay (per message)
#   dup        a message stored twice (one content under two ids) or replayed twice
#   reordered  seq order differs from ack order for one sender and conversation, a replay
#              out of seq order, or a seq that is not the one acknowledged
# It prints `fault=... sent=... acked=... lost=... dup=... reordered=...
# errors_seen_by_clients=...` and asserts lost, dup and reordered are 0, that every sender
# was acknowledged again after the fault (the service recovered), and that the fault itself
# succeeded. Options: warmup (3), tail (6), todo (a reason: the counts become TODO tests),
# expect_errors => 1 (assert that the clients saw the fault: it was not injected in vain),
# control => 1 (a check of the checker: the "fault" destroys an acknowledged message, and the
# run asserts only that it is counted as lost).

use strict;
use warnings;

use Chatd::Test;
use Chatd::WsClient;
use Mojo::IOLoop;
use Mojo::UserAgent;
use Test::More ();
use Time::HiRes qw(time);

my $SLOW     = ($ENV{VALGRIND} // '') eq '1' ? 4 : 1;
my $REST_GAP = 0.12;    # seconds between one sender's messages: ~8/s
my $WS_GAP   = 0.25;    # ~4/s: under WS.md's 50 client messages per 10 s
my $RUN      = 0;

# The statuses a client may see from nginx while a part is down or restarting.
sub allow { my $s = shift; $s->allow_5xx(502, 503, 504); return $s }

sub run {
    my ($s, $fault, $inject, %o) = @_;
    my $warmup = $o{warmup} // 3;
    my $tail   = ($o{tail} // 6) * $SLOW;
    my $w      = _world($s, ++$RUN);
    my $ua     = Mojo::UserAgent->new(connect_timeout => 5 * $SLOW, request_timeout => 10 * $SLOW,
        inactivity_timeout => 20 * $SLOW);
    my $loop = Mojo::IOLoop->singleton;
    my %run  = (s => $s, ua => $ua, stopping => 0, fault_end => undef, fault_err => undef, w => $w);

    for my $snd (@{$w->{senders}}) {
        $snd->{run} = \%run;
        $snd->{kind} eq 'rest' ? _rest_send($snd) : _ws_connect($snd);
    }
    $loop->timer($warmup => sub {
        $loop->subprocess(sub { $inject->(); return 1 },
            sub { my (undef, $err) = @_; $run{fault_err} = $err; $run{fault_end} = time });
    });
    my $deadline = time + $warmup + 120 * $SLOW;
    my $tick     = $loop->recurring(0.1 => sub {
        my $now = time;
        $run{stopping} ||= ($run{fault_end} && $now > $run{fault_end} + $tail) || $now > $deadline;
        return unless $run{stopping};
        my $busy = grep { $_->{pending} } @{$w->{senders}};
        $loop->stop if !$busy || $now > ($run{stop_at} //= $now + 15 * $SLOW);
    });
    $loop->start;
    $loop->remove($tick);
    $_->{tx} && $_->{tx}->finish for @{$w->{senders}};
    Test::More::ok(!$run{fault_err} && $run{fault_end}, "$fault: the fault was injected and ended")
      or Test::More::diag("$fault: " . ($run{fault_err} // 'did not end in time'));
    my $counts = _verify($s, $fault, $w, \%run, %o);
    delete $_->{run} for @{$w->{senders}};    # a cycle: it would keep the user agent alive
    return $counts;
}

# Four users, a group of all four, and the senders.
sub _world {
    my ($s, $n) = @_;
    my @u = map { Chatd::WsClient::register($s, "f${n}$_") } qw(a b c d);
    my $res = Chatd::WsClient::api($s, $u[0], POST => '/api/v1/groups',
        json => {name => "faults $n", member_ids => [map { $_->{id} } @u[1 .. 3]]});
    my $g = $res->json // {};
    die "group: " . $res->code . ' ' . $res->body . "\n" unless $res->code == 201 && $g->{id};
    my $grp = {group_id => $g->{id}};
    my $sender = sub {
        my ($kind, $u, $conv, $who) = @_;
        return {kind => $kind, u => $u, conv => $conv, who => $who, n => 0, sent => 0, acked => [],
            errors => 0, backoff => 0, key => "$u->{name}/$kind/" . ($conv->{group_id} ? 'group' : 'private')};
    };
    return {
        users   => \@u,
        group   => $g->{id},
        senders => [
            $sender->(rest => $u[0], {receiver_id => $u[1]{id}}, [@u[0, 1]]),
            $sender->(rest => $u[2], $grp, \@u),
            $sender->(ws   => $u[1], {receiver_id => $u[0]{id}}, [@u[0, 1]]),
            $sender->(ws   => $u[3], $grp, \@u),
            $sender->(ws   => $u[0], $grp, \@u),
        ],
    };
}

sub _later {
    my ($snd, $secs, $cb) = @_;
    # Timers of a finished run may still fire while a later one runs the loop.
    Mojo::IOLoop->timer($secs => sub { my $r = $snd->{run}; $cb->($snd) if $r && !$r->{stopping} });
}

# A failure seen by the client: note it, back off, then $again.
sub _failed {
    my ($snd, $why, $again) = @_;
    $snd->{errors}++;
    push @{$snd->{why}}, $why if @{$snd->{why} // []} < 5;
    $snd->{backoff} = $snd->{backoff} ? ($snd->{backoff} * 2 > 2 ? 2 : $snd->{backoff} * 2) : 0.2;
    _later($snd, $snd->{backoff}, $again);
}

sub _acked {
    my ($snd, $id, $seq, $token) = @_;
    push @{$snd->{acked}}, {id => $id, seq => $seq, token => $token, at => time};
    $snd->{backoff} = 0;
}

sub _rest_send {
    my $snd = shift;
    my $r     = $snd->{run};
    my $token = "$snd->{key}#" . ++$snd->{n};
    $snd->{sent}++;
    $snd->{pending} = 1;
    my $t0 = time;
    $r->{ua}->post($r->{s}->url('/api/v1/messages') => $snd->{u}{auth} =>
          json => {content => $token, %{$snd->{conv}}} => sub {
            my (undef, $tx) = @_;
            $snd->{pending} = 0;
            my $res  = $tx->res;
            my $code = $res->code // 0;
            my $j    = $code == 201 ? $res->json : undef;
            if ($j && $j->{id}) {
                _acked($snd, $j->{id}, $j->{seq}, $token);
                my $gap = $REST_GAP - (time - $t0);
                return _later($snd, $gap > 0 ? $gap : 0, \&_rest_send);
            }
            my $err = $tx->error;
            _failed($snd, "POST: " . ($code || ($err && $err->{message}) || '?'), \&_rest_send);
        });
}

sub _ws_connect {
    my $snd = shift;
    my $r   = $snd->{run};
    my $url = $r->{s}->ws_url($r->{s}->ws_connect_path($snd->{u}{id}, token => $snd->{u}{token}));
    $snd->{pending} = 1;
    $r->{ua}->websocket($url => sub {
        my (undef, $tx) = @_;
        $snd->{pending} = 0;
        if (!$tx->is_websocket) {
            my $why = $tx->res->code // ($tx->error // {})->{message} // '?';
            return _failed($snd, "connect: $why", \&_ws_connect);
        }
        $snd->{tx} = $tx;
        return $tx->finish if $r->{stopping};
        $tx->on(json => sub { _ws_frame($snd, $_[1]) });
        $tx->on(finish => sub {
            my (undef, $code) = @_;
            $snd->{tx} = undef;
            return if $r->{stopping} && !$snd->{pending};
            Mojo::IOLoop->remove($snd->{timer}) if $snd->{timer};
            $snd->{pending} = 0;
            _failed($snd, 'closed: ' . ($code // '?'), \&_ws_connect);
        });
        _ws_send($snd);
    });
}

sub _ws_send {
    my $snd = shift;
    my $tx  = $snd->{tx} or return;
    my $token = "$snd->{key}#" . ++$snd->{n};
    $snd->{sent}++;
    $snd->{pending} = $token;
    $snd->{t0}      = time;
    $tx->send({json => {type => 'message', content => $token, client_id => $token, %{$snd->{conv}}}});
    # No ack in time: give this connection up (the message may or may not be stored).
    $snd->{timer} = Mojo::IOLoop->timer(10 * $SLOW => sub {
        return unless $snd->{pending} && $snd->{pending} eq $token;
        push @{$snd->{why}}, 'ack timeout' if @{$snd->{why} // []} < 5;
        $snd->{tx}->finish if $snd->{tx};    # counted as an error when it closes
    });
}

sub _ws_frame {
    my ($snd, $f) = @_;
    return unless ref $f eq 'HASH' && $f->{type} && ($f->{type} eq 'ack' || $f->{type} eq 'error');
    my $token = $snd->{pending} or return;
    return unless ($f->{client_id} // '') eq $token;
    Mojo::IOLoop->remove($snd->{timer}) if $snd->{timer};
    $snd->{pending} = 0;
    if ($f->{type} eq 'ack' && $f->{id}) {
        _acked($snd, $f->{id}, $f->{seq}, $token);
        my $gap = $WS_GAP - (time - $snd->{t0});
        return _later($snd, $gap > 0 ? $gap : 0, \&_ws_send);
    }
    _failed($snd, 'error frame: ' . ($f->{message} // '?'), \&_ws_send);
}

# Every message user $u may see, replayed from 0 on a fresh WebSocket: [frames] or undef.
sub _replay {
    my ($s, $u) = @_;
    for my $try (1 .. 5) {
        my $c = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($u->{id}, token => $u->{token})));
        if ($c->is_open) {
            $c->send({type => 'sync', since => 0});
            # The senders have stopped: every message frame is the replay.
            my $done = $c->next_frame(sub { $_->{type} eq 'synced' }, 60 * $SLOW);
            my @m = grep { $_->{type} eq 'message' } @{$c->frames};
            $c->close;
            return \@m if $done;
        }
        Chatd::WsClient::wait_until(sub { 0 }, 0.5 * $try);
    }
    return undef;
}

sub _verify {
    my ($s, $fault, $w, $run, %o) = @_;
    my (%seen, %by_token, @why);
    my ($lost, $dup, $reord) = (0, 0, 0);
    for my $u (@{$w->{users}}) {
        my $m = _replay($s, $u);
        Test::More::ok($m, "$fault: $u->{name} replays from 0 after the fault") or next;
        my ($prev, %ids) = (0);
        for my $f (@$m) {
            $dup++, push(@why, "replayed twice: $f->{id}") if $ids{$f->{id}}++;
            $reord++, push(@why, "replay order: seq $f->{seq} after $prev") if $f->{seq} <= $prev;
            $prev = $f->{seq};
            $by_token{$f->{content} // ''}{$f->{id}} = 1;
            $seen{$u->{id}}{$f->{id}} = $f->{seq};
        }
    }
    for my $tok (grep { keys %{$by_token{$_}} > 1 } keys %by_token) {
        $dup++;
        push @why, "stored twice: $tok";
    }
    my ($sent, $acked, $errors, @late) = (0, 0, 0);
    for my $snd (@{$w->{senders}}) {
        $sent   += $snd->{sent};
        $acked  += @{$snd->{acked}};
        $errors += $snd->{errors};
        my $prev = 0;
        for my $m (@{$snd->{acked}}) {
            my @missing = grep { !exists $seen{$_->{id}}{$m->{id}} } @{$snd->{who}};
            if (@missing) {
                $lost++;
                push @why, "lost: $m->{token} ($m->{id}) missing for " . join(',', map { $_->{name} } @missing);
                next;
            }
            my $seq = $seen{$snd->{u}{id}}{$m->{id}};
            $reord++, push(@why, "$m->{token}: acked seq $m->{seq}, stored $seq") if ($m->{seq} // -1) != $seq;
            $reord++, push(@why, "$m->{token}: seq $seq after $prev") if $seq <= $prev;
            $prev = $seq;
        }
        push @late, $snd->{key} unless grep { $_->{at} > ($run->{fault_end} // 9e9) } @{$snd->{acked}};
    }
    Test::More::diag("fault=$fault sent=$sent acked=$acked lost=$lost dup=$dup reordered=$reord "
          . "errors_seen_by_clients=$errors");
    Test::More::note(join "\n", map { "$_->{key}: sent=$_->{sent} acked=" . @{$_->{acked}}
          . " errors=$_->{errors} " . join('; ', @{$_->{why} // []}) } @{$w->{senders}});
    Test::More::diag(join "\n", @why[0 .. ($#why > 19 ? 19 : $#why)]) if @why;
    my $counts = sub {
        Test::More::cmp_ok($acked, '>', 0, "$fault: messages were acknowledged");
        Test::More::is($lost,  0, "$fault: no acknowledged message is lost");
        Test::More::is($dup,   0, "$fault: no message is stored or replayed twice");
        Test::More::is($reord, 0, "$fault: seq order is ack order for every sender and conversation");
        Test::More::ok(!@late, "$fault: every sender is acknowledged again after the fault")
          or Test::More::diag("no ack after the fault for: @late");
        Test::More::cmp_ok($errors, '>', 0, "$fault: the clients saw the fault") if $o{expect_errors};
    };
    my %r = (sent => $sent, acked => $acked, lost => $lost, dup => $dup, reordered => $reord, errors => $errors);
    if ($o{control}) {
        Test::More::cmp_ok($lost, '>', 0, "$fault: the counts see an acknowledged message that is gone");
        return \%r;
    }
    my $tb = Test::More->builder;
    $tb->todo_start($o{todo}) if $o{todo};
    $counts->();
    $tb->todo_end if $o{todo};
    return \%r;
}

1;

# Issue 10 goal 4 (README "The message path without a deployment-wide lock"): a writer that is
# in flight (its seq handed out, its transaction not yet committed) holds back every later
# message, live and in `sync` and in the REST after= cursor, without blocking the other writers'
# commits; when it commits (round 1) or rolls back (round 2) everything arrives live in seq
# order, exactly once, and sync is complete. The writer is a psql session fed on stdin that runs
# chatd_message_send() in a transaction and waits before COMMIT.
#
# The other writers' answers (WS ack, REST 201) wait for the held one (README.seqpath.md, "the
# seq of an ack or 201 is a watermark"): none comes while it is held (the REST requests stay in
# flight), all come right after its COMMIT/ROLLBACK, and every seq at or below an answered seq
# is final when the answer arrives (nothing at or below it commits later). DB_LOCK_TIMEOUT_MS is
# raised so that the REST wait does not time out while the test holds the writer (a timeout
# would answer 201 without the guarantee).
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(time);
use Mojo::UserAgent;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new(env => {DB_LOCK_TIMEOUT_MS => 30000, DB_STATEMENT_TIMEOUT_MS => 60000,
                                  FCGI_WORKERS => 6})->start;
my $UA = Mojo::UserAgent->new(connect_timeout => 5, inactivity_timeout => 90, request_timeout => 90);
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

# The seq of the held writer's in-flight marker (schema/0015_seq_gate.sql), '' while none. This
# database only: the tests of a run share one cluster, and t/5115 holds a writer of that name too.
my $MARKER = q{SELECT ((k.classid::bigint - 1130000000) << 31) | k.objid::bigint FROM pg_locks k
               JOIN pg_stat_activity a ON a.pid = k.pid
               WHERE a.application_name = 'chatd-held-writer' AND k.locktype = 'advisory'
                 AND k.objsubid = 2 AND k.classid::bigint >= 1130000000 AND k.granted
                 AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())};
my $GATE = q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
             AND classid = 7001 AND objid = 15};

# psql on a pipe: BEGIN, chatd_message_send() (bob to alice), then it waits for our next line.
sub held_writer {
    my $content = shift;
    my $pid = open(my $w, '|-') // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', '/dev/null' or die;
        $ENV{PGAPPNAME} = 'chatd-held-writer';
        exec 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $s->db_url or die "exec psql: $!";
    }
    $w->autoflush(1);
    print $w "BEGIN;\nSELECT status FROM chatd_message_send('$bob->{id}', '$alice->{id}', NULL,"
      . " '$content', NULL, NULL, NULL);\n";
    return $w;
}

sub messages { my $c = shift; return [grep { $_->{type} eq 'message' } @{$c->frames}] }

# A fresh connection's sync from 0: (the message frames, synced).
sub sync_all {
    my $c = ws($alice, shift);
    $c->send({type => 'sync', since => 0});
    my $synced = $c->next_frame(sub { $_->{type} eq 'synced' }, 30) // {};
    my $msgs = messages($c);
    $c->close;
    return ($msgs, $synced);
}

# How many messages have a seq <= $seq now: compared later, it tells whether $seq was a watermark.
sub final_below { my $seq = shift; return sql("SELECT count(*) FROM messages WHERE seq <= $seq") }

# carol sends to alice while the writer is held: 2 REST requests (non-blocking, on the loop
# that wait_until runs) and 2 WS frames (the second waits for the first to be answered). Each
# answer is recorded with the time it came and the count of messages at or below its seq.
sub start_others {
    my ($round, $cws) = @_;
    my $st = {rest => [], round => $round};
    for my $i (1 .. 2) {
        my $tx = $UA->build_tx(POST => $s->url('/api/v1/messages') => $carol->{auth}
            => json => {content => "r$round rest $i", receiver_id => $alice->{id}});
        $UA->start($tx, sub {
            my (undef, $tx) = @_;
            my $seq = ($tx->res->json // {})->{seq};
            $st->{rest}[$i - 1] = {code => $tx->res->code // 0, json => $tx->res->json // {}, at => time,
                                   below => defined $seq ? final_below($seq) : -1};
        });
    }
    for my $i (1 .. 2) {
        $cws->send({type => 'message', content => "r$round ws $i", receiver_id => $alice->{id}, client_id => "r$round-$i"});
    }
    return $st;
}

sub acks {
    my ($st, $cws) = @_;
    my $round = $st->{round};
    return [grep { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') =~ /^r$round-/ } @{$cws->frames}];
}

sub answered {
    my ($st, $cws) = @_;
    for my $a (@{acks($st, $cws)}) {
        $st->{ack}{$a->{client_id}} //= {frame => $a, at => time, below => $a->{seq} ? final_below($a->{seq}) : -1};
    }
    return scalar(grep {defined} @{$st->{rest}}) + scalar(keys %{$st->{ack} // {}});
}

# After the end: every answer came (soon), with seqs above the held one, and was a watermark.
sub finish_others {
    my ($st, $cws, $held, $t_end) = @_;
    my $round = $st->{round};
    ok(Chatd::WsClient::wait_until(sub { answered($st, $cws) == 4 }, 20),
        "round $round: after the end both REST sends and both WS sends are answered");
    my (@seqs, @ids, @answers);
    for my $i (1 .. 2) {
        my $r = $st->{rest}[$i - 1] // {code => 0, json => {}, at => 1e18, below => -1};
        is($r->{code}, 201, "round $round: REST send $i: 201");
        push @answers, $r;
        push @seqs, $r->{json}{seq} // 0;
        push @ids, $r->{json}{id} // '';
    }
    for my $i (1 .. 2) {
        my $a = $st->{ack}{"r$round-$i"} // {frame => {}, at => 1e18, below => -1};
        is($a->{frame}{type} // '', 'ack', "round $round: WS send $i: ack");
        push @answers, $a;
        push @seqs, $a->{frame}{seq} // 0;
        push @ids, $a->{frame}{id} // '';
    }
    cmp_ok($_->{at} - $t_end, '<', 5, "round $round: answered right after the end") for @answers;
    ok(!grep({ $_ <= $held } @seqs), "round $round: the other sends got seqs above the held one ($held)");
    # The answered seq is a watermark: whatever sits at or below it had already committed (or
    # would never exist) when the answer came. The held message commits below every one of them.
    for my $k (0 .. $#seqs) {
        is(final_below($seqs[$k]), $answers[$k]{below},
            "round $round: answer " . ($k + 1) . " (seq $seqs[$k]): nothing at or below it committed after it came");
    }
    # And a client syncing from an answered seq misses nothing: every message of alice's at or
    # below it reached her, every one above it is replayed.
    my $w = (sort { $a <=> $b } @seqs)[0];
    my $c = ws($alice, "alice, sync from the acked seq ($round)");
    $c->send({type => 'sync', since => $w});
    $c->next_frame(sub { $_->{type} eq 'synced' }, 30);
    my %got = map { $_->{id} => 1 } @{messages($c)};
    $c->close;
    my @above = split /\n/, sql("SELECT id FROM messages WHERE receiver_id = '$alice->{id}' AND seq > $w");
    ok(!grep({ !$got{$_} } @above), "round $round: sync from the acked seq $w misses nothing that committed");
    return (\@seqs, \@ids);
}

my $live = ws($alice, 'alice, live');
my $cws  = ws($carol, 'carol');
my $seen = 0;    # frames of $live already checked

for my $round (1, 2) {
    my $end = $round == 1 ? 'COMMIT' : 'ROLLBACK';
    my $w = held_writer("held $round");
    my $held;
    ok($s->wait_for(sub { ($held = sql($MARKER)) ne '' }, 30, 'the writer to take its seq'),
        "round $round: the writer is in flight");
    is(sql($GATE), 0, "round $round: it does not hold the gate while in flight");

    my $st = start_others($round, $cws);
    # A connection that goes away while its ack waits: the send must let it go cleanly (the
    # sanitizer build checks for a use after free); its message is committed all the same.
    my $gone = ws($carol, "carol, closes while its ack waits ($round)");
    $gone->send({type => 'message', content => "r$round gone", receiver_id => $alice->{id}, client_id => 'gone'});

    # Nothing of the stream above the hole may reach alice, and no sender is answered: wait as
    # long as several tail polls and ticks take (running the loop: the REST requests progress),
    # then check (a ping answered proves her connection is being served).
    Chatd::WsClient::wait_until(sub { 0 }, 2);
    is(answered($st, $cws), 0, "round $round: no ack and no 201 while the writer is held")
      or diag(explain [acks($st, $cws), $st->{rest}]);
    ok(!grep({ $_->{type} eq 'ack' } @{$gone->frames}), "round $round: nor on the connection that closes now");
    $gone->close;
    is(scalar(grep {defined} @{$st->{rest}}), 0, "round $round: the REST sends are in flight");
    ok($live->sync_point, "round $round: alice's connection is served");
    my @early = grep { $_->{type} eq 'message' } @{$live->frames}[$seen .. $#{$live->frames}];
    is(scalar @early, 0, "round $round: no message reached alice's live socket while the writer is held")
      or diag(explain [map { $_->{seq} } @early]);

    my ($msgs, $synced) = sync_all("alice, sync while held ($round)");
    cmp_ok($synced->{last_seq} // 1e18, '<', $held, "round $round: synced.last_seq stops below the held seq");
    ok(!grep({ $_->{seq} >= $held } @$msgs), "round $round: the replay hands out nothing above the hole");
    my $page = api($alice, GET => "/api/v1/messages?receiver_id=$carol->{id}&after=0&limit=100")->json;
    ok(!grep({ $_->{seq} >= $held } @$page), "round $round: REST after= stops below the held seq too");

    is(answered($st, $cws), 0, "round $round: still no answer after the sync and the page");
    my $t_end = time;
    print $w "$end;\n";
    close $w;
    is($?, 0, "round $round: the writer's $end went through");
    my ($seqs, $ids) = finish_others($st, $cws, $held, $t_end);

    my %want = map { $_ => 1 } @$ids;
    my $held_id = $round == 1 ? sql("SELECT id FROM messages WHERE content = 'held $round'") : undef;
    $want{$held_id} = 1 if $held_id;
    my $gone_id = sql("SELECT id FROM messages WHERE content = 'r$round gone'");
    ok($gone_id, "round $round: the message of the closed connection was stored");
    $want{$gone_id} = 1 if $gone_id;
    ok(Chatd::WsClient::wait_until(sub {
        my %got = map { $_->{id} => 1 } grep { $_->{type} eq 'message' } @{$live->frames}[$seen .. $#{$live->frames}];
        !grep { !$got{$_} } keys %want;
    }, 30), "round $round: after the $end every message arrives live");
    ok($live->sync_point, "round $round: and nothing more is on its way");
    my @got = grep { $_->{type} eq 'message' } @{$live->frames}[$seen .. $#{$live->frames}];
    $seen = @{$live->frames};
    is(scalar @got, scalar keys %want, "round $round: each exactly once, nothing else")
      or diag(explain [map { [$_->{seq}, $_->{content}] } @got]);
    is_deeply([map { $_->{seq} } @got], [sort { $a <=> $b } map { $_->{seq} } @got], "round $round: in seq order");
    if ($round == 1) {
        is($got[0]{id} // '', $held_id, 'round 1: the held message first: it has the lowest seq');
    } else {
        is(sql("SELECT count(*) FROM messages WHERE content = 'held 2'"), 0, 'round 2: the rolled back message does not exist');
    }

    ($msgs, $synced) = sync_all("alice, sync after the $end");
    my %replayed = map { $_->{id} => 1 } @$msgs;
    ok(!grep({ !$replayed{$_} } keys %want), "round $round: sync from 0 is complete after the $end");
    is($synced->{last_seq}, (sort { $b <=> $a } map { $_->{seq} } @$msgs)[0], "round $round: synced.last_seq is the last replayed");
}

$live->close;
$cws->close;
Chatd::Test::done();

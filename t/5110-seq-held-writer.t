# Issue 10 goal 4 (README "The message path without a deployment-wide lock"): a writer that is
# in flight (its seq handed out, its transaction not yet committed) holds back every later
# message, live and in `sync` and in the REST after= cursor, without blocking the other writers;
# when it commits (round 1) or rolls back (round 2) everything arrives live in seq order,
# exactly once, and sync is complete. The writer is a psql session fed on stdin that runs
# chatd_message_send() in a transaction and waits before COMMIT.
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(time);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

# The seq of the held writer's in-flight marker (schema/0015_seq_gate.sql), '' while none.
my $MARKER = q{SELECT ((k.classid::bigint - 1130000000) << 31) | k.objid::bigint FROM pg_locks k
               JOIN pg_stat_activity a ON a.pid = k.pid
               WHERE a.application_name = 'chatd-held-writer' AND k.locktype = 'advisory'
                 AND k.objsubid = 2 AND k.classid::bigint >= 1130000000 AND k.granted};
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

# carol sends to alice while the writer is held: REST and WS, none of them blocked.
sub send_others {
    my ($round, $cws) = @_;
    my (@seqs, @ids);
    for my $i (1 .. 3) {
        my $t0 = time;
        my $res = api($carol, POST => '/api/v1/messages', json => {content => "r$round rest $i", receiver_id => $alice->{id}});
        is($res->code, 201, "round $round: REST send $i while the writer is held: 201");
        cmp_ok(time - $t0, '<', 5, "round $round: REST send $i was not blocked");
        push @seqs, $res->json->{seq};
        push @ids, $res->json->{id};
    }
    for my $i (1 .. 2) {
        $cws->send({type => 'message', content => "r$round ws $i", receiver_id => $alice->{id}, client_id => "r$round-$i"});
        my $ack = $cws->next_frame(sub { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') eq "r$round-$i" }, 15) // {};
        is($ack->{type} // '', 'ack', "round $round: WS send $i while the writer is held: ack");
        push @seqs, $ack->{seq} // 0;
        push @ids, $ack->{id} // '';
    }
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

    my ($seqs, $ids) = send_others($round, $cws);
    ok(!grep({ $_ <= $held } @$seqs), "round $round: the other sends got seqs above the held one ($held)");

    # Nothing of the stream above the hole may reach alice: wait as long as several tail polls
    # and ticks take, then check (a ping answered proves her connection is being served).
    Time::HiRes::sleep(2);
    ok($live->sync_point, "round $round: alice's connection is served");
    my @early = grep { $_->{type} eq 'message' } @{$live->frames}[$seen .. $#{$live->frames}];
    is(scalar @early, 0, "round $round: no message reached alice's live socket while the writer is held")
      or diag(explain [map { $_->{seq} } @early]);

    my ($msgs, $synced) = sync_all("alice, sync while held ($round)");
    cmp_ok($synced->{last_seq} // 1e18, '<', $held, "round $round: synced.last_seq stops below the held seq");
    ok(!grep({ $_->{seq} >= $held } @$msgs), "round $round: the replay hands out nothing above the hole");
    my $page = api($alice, GET => "/api/v1/messages?receiver_id=$carol->{id}&after=0&limit=100")->json;
    ok(!grep({ $_->{seq} >= $held } @$page), "round $round: REST after= stops below the held seq too");

    print $w "$end;\n";
    close $w;
    is($?, 0, "round $round: the writer's $end went through");

    my %want = map { $_ => 1 } @$ids;
    my $held_id = $round == 1 ? sql("SELECT id FROM messages WHERE content = 'held $round'") : undef;
    $want{$held_id} = 1 if $held_id;
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

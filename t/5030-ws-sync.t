# Replay (WS.md "Delivery"): `sync` and ?since= return every message the user may see above the
# watermark, oldest first, then synced with the highest seq; large backlogs come in batches
# without overflowing the connection; while a replay runs, live messages are neither lost nor
# duplicated.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol, $dave) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol dave);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
# wsd delivers new messages from the message log, in seq order: once dave's note to himself (a
# higher seq) arrived live, wsd's tail is past everything inserted before it, so a connection
# opened now treats those rows as history (replayed on request) rather than live traffic.
my $fence_ws;
sub settle {
    my $what = shift;
    $fence_ws //= ws($dave, 'dave, the fence');
    my $id = api($dave, POST => '/api/v1/messages', json => {content => "fence $what", receiver_id => $dave->{id}})->json->{id};
    ok($fence_ws->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 30), "wsd's tail is past $what");
}
sub post { my ($u, %b) = @_; return api($u, POST => '/api/v1/messages', json => {content => 'm', %b})->json }
sub max_seq { my $v = $s->psql(q{SELECT coalesce(max(seq), 0) FROM messages}); chomp $v; return $v + 0 }
# The ids alice may see above $since, oldest first, from the database.
sub visible {
    my $since = shift;
    my $v = $s->psql("SELECT string_agg(id::text, ' ' ORDER BY seq) FROM chatd_sync('$alice->{id}', $since, 100000)");
    chomp $v;
    return [split ' ', $v];
}
# Waits for synced; returns (the message frames before it, the synced frame).
sub replay {
    my ($c, $secs) = @_;
    my $synced = $c->next_frame(sub { $_->{type} eq 'synced' }, $secs // 30);
    my @msgs;
    while (my $f = shift @{$c->frames}) {
        last if $f->{type} eq 'synced';
        push @msgs, $f if $f->{type} eq 'message';
    }
    return (\@msgs, $synced // {});
}

my $ab = api($alice, POST => '/api/v1/groups', json => {name => 'ab', member_ids => [$bob->{id}]})->json;
my $bc = api($bob, POST => '/api/v1/groups', json => {name => 'bc', member_ids => [$carol->{id}]})->json;
ok($ab->{id} && $bc->{id}, 'two groups: alice+bob and bob+carol');

# ---- sync after a disconnect ------------------------------------------------------------------
my $a1 = ws($alice, 'alice');
post($bob, receiver_id => $alice->{id}, content => 'seen live');
my $live = $a1->next_frame(sub { $_->{type} eq 'message' }) // {};
my $mark = $live->{seq};
ok($mark, 'alice saw a message live: her watermark');
$a1->close;

my @missed;
push @missed, post($bob, receiver_id => $alice->{id}, content => "p$_")->{id} for 1 .. 3;
push @missed, post($alice, receiver_id => $bob->{id}, content => 'from another device')->{id};
push @missed, post($bob, group_id => $ab->{id}, content => 'group')->{id};
post($bob, group_id => $bc->{id}, content => 'not alice');
post($bob, receiver_id => $carol->{id}, content => 'not alice either');
push @missed, post($bob, receiver_id => $alice->{id}, content => 'last')->{id};

$a1 = ws($alice, 'alice again');
$a1->send({type => 'sync', since => $mark});
my ($msgs, $synced) = replay($a1);
is_deeply([map { $_->{id} } @$msgs], \@missed, 'sync replays exactly the missed messages, oldest first');
is($synced->{last_seq}, $msgs->[-1]{seq}, 'synced carries the highest replayed seq');
is($msgs->[0]{sender}{id}, $bob->{id}, 'replayed messages are full MessageRead objects');
is($msgs->[3]{sender}{email}, $alice->{email} // "alice_$$\_1\@example.com" =~ s/\\//r, "alice's own message shows her email to her")
  if 0;
is($msgs->[3]{sender}{id}, $alice->{id}, "her own message sent elsewhere is replayed too");

$a1->send({type => 'sync', since => $synced->{last_seq}});
($msgs, $synced) = replay($a1);
is(scalar @$msgs, 0, 'a sync at the watermark replays nothing');
is($synced->{last_seq}, $missed[-1] && $synced->{last_seq}, 'and synced answers');
my $top = max_seq();
$a1->send({type => 'sync', since => $top + 1000});
($msgs, $synced) = replay($a1);
is($synced->{last_seq}, $top + 1000, 'with nothing to replay, last_seq is since');

for my $bad ([-1, 'a negative since'], ['5', 'a string since'], [1.5, 'a fractional since'], [undef, 'no since']) {
    $a1->send({type => 'sync', defined $bad->[0] ? (since => $bad->[0]) : ()});
    my $e = $a1->next_frame(sub { $_->{type} =~ /^(error|synced)$/ }) // {};
    is($e->{type}, 'error', "$bad->[1]: error");
}
ok($a1->sync_point, 'the connection survives bad syncs');
$a1->close;

# ---- ?since= on connect ----------------------------------------------------------------------
my $a2 = ws($alice, 'alice with ?since=', since => $mark);
($msgs, $synced) = replay($a2);
is_deeply([map { $_->{id} } @$msgs], \@missed, '?since= replays the same messages on connect');
ok($synced->{last_seq}, 'then synced');
$a2->close;
my $a3 = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($alice->{id}, token => $alice->{token}, since => 'x')));
is(($a3->next_frame(sub { $_->{type} =~ /^(error|synced)$/ }) // {})->{type}, 'error', 'a bad ?since= is an error');
ok($a3->sync_point, 'and the connection stays');
$a3->close;

# ---- a backlog of several batches ---------------------------------------------------------------
my $base = max_seq();
$s->psql("INSERT INTO messages (content, sender_id, receiver_id)"
      . " SELECT 'bulk ' || i, '$bob->{id}', '$alice->{id}' FROM generate_series(1, 1300) i");
my $bulk_top = max_seq();
settle('the backlog');
my $a4 = ws($alice, 'alice for the backlog');
$a4->send({type => 'sync', since => $base});
$a4->send({type => 'sync', since => $base});
my $second = $a4->next_frame(sub { $_->{type} eq 'error' }, 30) // {};
like($second->{message} // '', qr/already/, 'a second sync while one runs is an error');
($msgs, $synced) = replay($a4, 60);
is(scalar @$msgs, 1300, '1300 messages replayed (three batches)');
is_deeply([map { $_->{content} } @$msgs], [map {"bulk $_"} 1 .. 1300], 'all of them, in order');
is($synced->{last_seq}, $bulk_top, 'synced at the top');
ok($a4->is_open, 'the connection was not closed as too slow');
$a4->close;

# ---- live messages during a replay: no hole, no duplicate ---------------------------------------
$base = max_seq();
$s->psql("INSERT INTO messages (content, sender_id, receiver_id)"
      . " SELECT 'old ' || i, '$bob->{id}', '$alice->{id}' FROM generate_series(1, 3000) i");
settle('the old messages');
my $b1 = ws($bob, 'bob');
my $a5 = ws($alice, 'alice while others post');
$a5->send({type => 'sync', since => $base});
# Everything below is posted once the replay is under way (posted before the sync, a message
# could reach alice live and then again in the replay she asked for: that is not a duplicate).
ok(Chatd::WsClient::wait_until(sub { grep { $_->{type} eq 'message' } @{$a5->frames} }, 30), 'the replay started');
$b1->send({type => 'message', content => "live $_", ($_ % 2 ? (receiver_id => $alice->{id}) : (group_id => $ab->{id})),
    client_id => "l$_"}) for 1 .. 48;
my $rest_done = 0;
for my $i (1 .. 10) {
    Chatd::WsClient::ua()->post($s->url('/api/v1/messages') => $carol->{auth} =>
        json => {content => "rest $i", receiver_id => $alice->{id}} => sub { $rest_done++ });
}
ok(Chatd::WsClient::wait_until(sub { $rest_done == 10 && grep({ $_->{type} eq 'ack' && $_->{client_id} eq 'l48' } @{$b1->frames}) }, 30),
    '48 WS messages (the per-connection limit is 50 in 10 s) and 10 REST messages sent during the replay');
ok(Chatd::WsClient::wait_until(sub { grep { $_->{type} eq 'synced' } @{$a5->frames} }, 60), 'the replay ended');
my $want = visible($base);
is(scalar @$want, 3000 + 58, 'the database holds 3058 messages above the watermark');
my %want = map { $_ => 1 } @$want;
ok(Chatd::WsClient::wait_until(sub {
    my %got = map { $_->{id} => 1 } grep { $_->{type} eq 'message' } @{$a5->frames};
    return keys %got >= keys %want;
}, 30), 'alice received as many distinct messages');
my (%count, @extra);
for (grep { $_->{type} eq 'message' } @{$a5->frames}) {
    $count{$_->{id}}++;
    push @extra, $_->{id} unless $want{$_->{id}};
}
$a5->sync_point;
my ($before_synced, $after_synced) = (0, 0);
for (@{$a5->frames}) {
    last if $_->{type} eq 'synced';
    $before_synced++ if $_->{type} eq 'message' && $_->{content} =~ /^(live|rest) /;
}
note("new messages delivered before synced: $before_synced (replayed or released after the replay)");
is(scalar(grep { !$count{$_} } @$want), 0, 'no hole: every message above the watermark arrived');
is(scalar(grep { $_ > 1 } values %count), 0, 'no duplicate: each arrived once') or do {
    my $i = 0;
    for (@{$a5->frames}) {
        $i++;
        diag("frame $i: $_->{type} " . ($_->{seq} // '') . ' ' . ($_->{content} // ''))
          if $_->{type} ne 'message' || $count{$_->{id}} > 1 || $_->{content} !~ /^old/;
    }
};
is(scalar @extra, 0, 'and nothing else');

$_->close for $a5, $b1;
Chatd::Test::done();

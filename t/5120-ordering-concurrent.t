# Issue 10 goal 4: the promises of README "Ordering" without the deployment-wide lock, under
# concurrency. Six users in three groups and their private conversations; senders over REST
# (several requests in flight at once, so fcgi workers commit concurrently) and over the
# WebSocket (one connection per user, acks collected) for several seconds, while every user's
# receiving connection is closed at random and reopened with ?since=<highest seq it saw>. At
# the end each user has received exactly the messages of their conversations, each once,
# live and replayed together in strictly increasing seq order; every ack and 201 matches what
# was stored; and a sync from 0 replays the same set in order.
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(time);
use List::Util qw(max shuffle);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $SECS = $ENV{CHATD_ORDERING_SECS} // 8;
my $s = Chatd::Test->new(env => {RATE_LIMIT_MESSAGES_PER_10S => 0})->start;
my @u = map { Chatd::WsClient::register($s, "o$_") } 1 .. 6;
sub api { Chatd::WsClient::api($s, @_) }
srand($ENV{CHATD_ORDERING_SEED} // time);
diag('seed ' . srand());

my @groups;
for my $members ([0, 1, 2], [2, 3, 4, 5], [0, 3, 5]) {
    my ($owner, @rest) = @$members;
    my $g = api($u[$owner], POST => '/api/v1/groups',
        json => {name => "g@$members", member_ids => [map { $u[$_]{id} } @rest]})->json;
    push @groups, {id => $g->{id}, members => $members};
}
ok(!grep({ !$_->{id} } @groups), 'three groups');

# A random conversation of user $i: (body fields, audience user indexes).
sub target {
    my $i = shift;
    my @mine = grep { my $g = $groups[$_]; grep { $_ == $i } @{$g->{members}} } 0 .. $#groups;
    if (@mine && rand() < 0.5) {
        my $g = $mine[int rand @mine];
        return ({group_id => $groups[$g]{id}}, @{$groups[$g]{members}});
    }
    my $to = int rand @u;
    return ({receiver_id => $u[$to]{id}}, $to == $i ? ($i) : ($i, $to));
}

my %sent;    # id => {seq, audience => [user indexes], how}
my $errors = 0;
my $rest_inflight = 0;
my $n = 0;

sub rest_send {
    my $i = shift;
    my ($body, @aud) = target($i);
    my $content = 'rest ' . ++$n;
    $rest_inflight++;
    Chatd::WsClient::ua()->post($s->url('/api/v1/messages') => $u[$i]{auth} => json => {content => $content, %$body} => sub {
        my (undef, $tx) = @_;
        $rest_inflight--;
        my $j = $tx->res->json // {};
        if (($tx->res->code // 0) == 201 && $j->{id}) {
            $sent{$j->{id}} = {seq => $j->{seq}, audience => [@aud], content => $content};
        } else {
            $errors++;
        }
    });
}

# One sending socket per user; each waits for the ack of its message before the next (<= 4/s).
my @senders = map { Chatd::WsClient->open_user($s, $_) } @u;
ok(!grep({ !$_->sync_point } @senders), 'six sending sockets');
my %pending;    # "user/client_id" => [audience, content]
my @acked_upto = (0) x @u;
my @next_ws = (0) x @u;    # WS.md: at most 50 client messages per connection in 10 s
sub ws_send {
    my $i = shift;
    my $c = $senders[$i];
    return if time < $next_ws[$i] || grep { m{^$i/} } keys %pending;
    $next_ws[$i] = time + 0.25;
    my ($body, @aud) = target($i);
    my $cid = 'c' . ++$n;
    $pending{"$i/$cid"} = [[@aud], "ws $cid"];
    $c->send({type => 'message', content => "ws $cid", client_id => $cid, %$body});
}
sub collect_acks {
    for my $i (0 .. $#senders) {
        my $frames = $senders[$i]->frames;
        for my $f (@$frames[$acked_upto[$i] .. $#$frames]) {
            next unless $f->{type} =~ /^(ack|error)$/ && $f->{client_id};
            my $p = delete $pending{"$i/$f->{client_id}"} or next;
            if ($f->{type} eq 'ack') { $sent{$f->{id}} = {seq => $f->{seq}, audience => $p->[0], content => $p->[1]} }
            else                     { $errors++; diag("ws error: $f->{message}") }
        }
        $acked_upto[$i] = @$frames;
    }
}

# Receivers: the frames every closed connection of a user had, in order, and the open one.
my @got = map { [] } @u;
my @recv = map { Chatd::WsClient->open_user($s, $_) } @u;
ok(!grep({ !$_->sync_point } @recv), 'six receiving sockets');
my $rotations = 0;
# The highest seq the user saw, once the old connection is closed (nothing arrives after it).
sub rotate {
    my $i = shift;
    $recv[$i]->close;
    push @{$got[$i]}, grep { $_->{type} eq 'message' } @{$recv[$i]->frames};
    my $w = max(0, map { $_->{seq} } @{$got[$i]});
    $recv[$i] = Chatd::WsClient->open_user($s, $u[$i], since => $w);
    $rotations++;
}

my $end = time + $SECS;
my $next_rotation = time + 0.3;
while (time < $end) {
    rest_send(int rand @u) if $rest_inflight < 6;
    ws_send($_) for shuffle 0 .. $#u;
    if (time > $next_rotation) {
        rotate(int rand @u);
        $next_rotation = time + 0.1 + rand 0.4;
    }
    Chatd::WsClient::wait_until(sub { 0 }, 0.05);
    collect_acks();
}
ok(Chatd::WsClient::wait_until(sub { collect_acks(); !$rest_inflight && !%pending }, 60), 'every send was answered')
  or diag(explain {rest_inflight => $rest_inflight, pending => [keys %pending],
                   open => [map { $_->is_open ? 1 : $_->close_reason } @senders]});
is($errors, 0, 'no send failed');
cmp_ok(scalar keys %sent, '>=', 100, scalar(keys %sent) . " messages acknowledged, $rotations reconnects");

# What each user must end with: the acknowledged messages of their conversations.
my @want = map { [] } @u;
for my $id (keys %sent) {
    my %aud = map { $_ => 1 } @{$sent{$id}{audience}};
    push @{$want[$_]}, $id for keys %aud;
}
for my $i (0 .. $#u) {
    my %want = map { $_ => 1 } @{$want[$i]};
    ok(Chatd::WsClient::wait_until(sub {
        my %have = map { $_->{id} => 1 } @{$got[$i]}, grep { $_->{type} eq 'message' } @{$recv[$i]->frames};
        !grep { !$have{$_} } keys %want;
    }, 60), "user $i: every message of their conversations arrived");
    ok($recv[$i]->sync_point, "user $i: nothing more on its way");
    my @all = (@{$got[$i]}, grep { $_->{type} eq 'message' } @{$recv[$i]->frames});
    my %count;
    $count{$_->{id}}++ for @all;
    is(scalar(grep { $count{$_} > 1 } keys %count), 0, "user $i: no message twice");
    is(scalar(grep { !$want{$_} } keys %count), 0, "user $i: nothing from outside their conversations");
    my @seqs = map { $_->{seq} } @all;
    is(scalar(grep { $seqs[$_] <= $seqs[$_ - 1] } 1 .. $#seqs), 0, "user $i: live and replayed in strictly increasing seq order")
      or diag(explain \@seqs);
    is(scalar(grep { $sent{$_->{id}} && $sent{$_->{id}}{seq} != $_->{seq} } @all), 0, "user $i: every seq is the acknowledged one");

    my $c = Chatd::WsClient->open_user($s, $u[$i], since => 0);
    my $synced = $c->next_frame(sub { $_->{type} eq 'synced' }, 60) // {};
    my @replay = grep { $_->{type} eq 'message' } @{$c->frames};
    $c->close;
    is_deeply([map { $_->{id} } @replay], [map { $_->{id} } sort { $a->{seq} <=> $b->{seq} } values %{{map { $_->{id} => $_ } @all}}],
        "user $i: a replay from 0 is the same messages in the same order");
}
my %stored = map { split /\|/ } split /\n/, $s->psql(q{SELECT id::text || '|' || seq FROM messages});
is(scalar(grep { ($stored{$_} // -1) != $sent{$_}{seq} } keys %sent), 0,
    'every acknowledged message is stored with its acknowledged seq');

$_->close for @recv, @senders;
Chatd::Test::done();

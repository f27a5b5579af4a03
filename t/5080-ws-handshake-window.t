# WS.md "Connecting": each connection gets every event published after its handshake
# completed. Issue 8 item 12: wsd used to authenticate and SUBSCRIBE after the 101 without
# waiting for Redis, so a message posted right after the handshake could be lost. Here, 200
# times under CPU load: open a socket, POST a message to its user at once (no wait for any
# frame), expect the message event. Then the same with the user's channel already subscribed
# (another connection of the user open on this instance), and for a group.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $ROUNDS = $ENV{CHATD_WINDOW_ROUNDS} // 200;
my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub open_ws { Chatd::WsClient->open_user($s, @_) }

# Busy loops on every core, so wsd, fcgi, Redis and Postgres are descheduled at random points.
my @burners = map {
    my $pid = fork // die "fork: $!";
    if (!$pid) { my $x = 0; $x++ while 1; exit 0 }
    $pid;
} 1 .. 3;
END { local $?; kill 'KILL', @burners if @burners; waitpid($_, 0) for @burners }

# One round: a fresh connection, a message posted at once, the event expected on it.
sub round {
    my ($to, $from, %body) = @_;
    my $c = open_ws($to);
    return 'not open' unless $c->is_open;
    my $res = api($from, POST => '/api/v1/messages', json => {content => 'window', %body});
    return 'post ' . $res->code unless $res->code == 201;
    my $id = $res->json->{id};
    my $f = $c->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 15);
    my $dups = grep { $_->{type} eq 'message' && $_->{id} eq $id } @{$c->frames};
    $c->close;
    return $f ? ($dups ? 'duplicate' : 'ok') : 'lost';
}

sub rounds {
    my ($title, $n, @args) = @_;
    my %tally;
    $tally{round(@args)}++ for 1 .. $n;
    is($tally{ok} // 0, $n, "$title: $n of $n delivered") or diag(explain(\%tally));
}

rounds('a fresh user channel, private message', $ROUNDS, $alice, $bob, receiver_id => $alice->{id});

# The channel is already subscribed: the new connection joins a live subscription.
my $keep = open_ws($alice);
ok($keep->sync_point, "another connection of alice stays open");
rounds('user channel already subscribed', $ROUNDS / 4, $alice, $bob, receiver_id => $alice->{id});
$keep->close;

# A group message right after carol connects: her group channels come from Postgres.
my $g = api($bob, POST => '/api/v1/groups', json => {name => 'window', member_ids => [$carol->{id}]})->json;
ok($g->{id}, 'a group of bob and carol');
rounds('group message', $ROUNDS / 4, $carol, $bob, group_id => $g->{id});

# The startup replay is quiet: a connection with nothing new gets no replayed message and no
# `synced` it did not ask for.
my $q = open_ws($carol);
ok($q->sync_point, 'a fresh connection answers ping');
is(scalar(grep { $_->{type} =~ /^(message|synced)$/ } @{$q->frames}), 0, 'and received no message or synced');
$q->close;

Chatd::Test::done();

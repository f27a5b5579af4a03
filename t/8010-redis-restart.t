# Redis restarts under live WebSockets (WS.md "Delivery"): messages posted while Redis is down
# are stored and acknowledged, and (since issue 10: wsd reads new messages from the log, woken
# by a timer when no chatd:tick comes) still delivered live; when Redis is back, wsd
# resubscribes by itself, live delivery goes on, and `sync` from the client's watermark replays
# everything after it. A Redis that hangs never holds up an ack or a REST send.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub post {
    my ($u, $content) = @_;
    my $res = api($u, POST => '/api/v1/messages', json => {content => $content, receiver_id => $alice->{id}});
    is($res->code, 201, "'$content' is stored (201)");
    return $res->json // {};
}

my $a1 = ws($alice, 'alice');
my $b1 = ws($bob, 'bob');
my $m = post($bob, 'before');
my $f = $a1->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $m->{id} });
ok($f, 'live delivery works');
my $mark = $f->{seq};

ok($s->stop_part('redis'), 'redis stopped');
my @gap = map { post($bob, "while down $_")->{id} } 1 .. 3;
$b1->send({type => 'message', content => 'ws while down', receiver_id => $alice->{id}, client_id => 'down'});
my $ack = $b1->next_frame(sub { ($_->{client_id} // '') eq 'down' }, 15) // {};
is($ack->{type}, 'ack', 'a WebSocket message while Redis is down is stored and acknowledged');
push @gap, $ack->{id};
ok($a1->sync_point, 'connections stay open while Redis is down');
my %down = map { $_ => 1 } @gap;
ok(Chatd::WsClient::wait_until(sub { (grep { $_->{type} eq 'message' && $down{$_->{id}} } @{$a1->frames}) == @gap }, 20),
    'messages are still delivered live while Redis is down (the tail reads the log on its timer)');

ok($s->start_part('redis'), 'redis started again');
my ($n, $live) = (0);
ok(Chatd::WsClient::wait_until(sub {
    my $id = post($bob, 'after ' . ++$n)->{id};
    push @gap, $id;
    $live = $a1->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, 1);
    return $live;
}, 20), "live delivery resumes by itself ($n attempt(s))");

$a1->send({type => 'sync', since => $mark});
my $synced = $a1->next_frame(sub { $_->{type} eq 'synced' }, 15) // {};
ok($synced->{last_seq}, 'sync from the watermark answers');
my %got = map { $_->{id} => 1 } grep { $_->{type} eq 'message' } @{$a1->frames};
is(scalar(grep { !$got{$_} } @gap), 0, 'sync recovers every message of the outage, and after');

# ---- a Redis that hangs instead of going away -------------------------------------------
# A PUBLISH that never returns must hold up neither the ack nor the other senders.
my $rpid = $s->pid('redis');
ok($rpid && kill('STOP', $rpid), 'redis frozen (SIGSTOP)');
$b1->send({type => 'message', content => 'while frozen', receiver_id => $alice->{id}, client_id => 'frozen'});
$ack = $b1->next_frame(sub { ($_->{client_id} // '') eq 'frozen' }, 10) // {};
is($ack->{type}, 'ack', 'a WebSocket message is acknowledged while Redis is frozen');
my $frozen = api($bob, POST => '/api/v1/messages', json => {content => 'rest while frozen', receiver_id => $alice->{id}});
is($frozen->code, 201, 'REST can still send (its PUBLISH times out)');
ok(kill('CONT', $rpid), 'redis thawed');
ok($a1->next_frame(sub { $_->{type} eq 'message' && ($_->{content} // '') eq 'rest while frozen' }, 15),
    'the message arrives live (from the log)');

# A second connection opened now is subscribed as usual.
my $a2 = ws($alice, 'alice again');
$m = post($bob, 'finally');
ok($a2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $m->{id} }), 'a new connection gets live events');

$_->close for $a1, $a2, $b1;
Chatd::Test::done();

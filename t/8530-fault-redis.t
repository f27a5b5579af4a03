# Fault injection (issue 8, t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going
# while Redis restarts (down about 1 s), and while it is frozen (SIGSTOP for 5 s, then
# SIGCONT). Messages are committed and acknowledged whatever Redis does: every acknowledged
# message must be in every participant's replay, once, in ack order.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;

my $s = Chatd::Faults::allow(Chatd::Test->new->start);

Chatd::Faults::run($s, 'redis-restart', sub {
    $s->stop_part('redis') or die "redis did not stop\n";
    sleep 1;
    $s->start_part('redis') or die "redis did not start again\n";
});

Chatd::Faults::run($s, 'redis-freeze-5s', sub {
    my $pid = $s->pid('redis') or die "no pid for redis\n";
    kill('STOP', $pid) or die "kill -STOP $pid: $!\n";
    sleep 5;
    kill('CONT', $pid) or die "kill -CONT $pid: $!\n";
});

# The checker itself: a "fault" that deletes a message acknowledged about a second earlier
# must show up as lost.
Chatd::Faults::run($s, 'control-delete-acked', sub {
    $s->psql('DELETE FROM messages WHERE seq = (SELECT max(seq) - 20 FROM messages)');
}, control => 1, tail => 1);

Chatd::Test::done();

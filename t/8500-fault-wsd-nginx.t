# Fault injection (issue 8, t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going
# while one wsd instance of two is killed with SIGKILL (its clients reconnect through nginx to
# the other; the instance is started again 3 s later, as a supervisor would), and while nginx
# reloads its configuration (SIGHUP). Every acknowledged message must be in every
# participant's replay, once, in ack order.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;

my $s = Chatd::Faults::allow(Chatd::Test->new(wsd_instances => 2)->start);

Chatd::Faults::run($s, 'wsd-kill-9', sub {
    my $pid = $s->pid('wsd') or die "no pid for wsd-1\n";
    kill('KILL', $pid) or die "kill $pid: $!\n";
    Chatd::Test::wait_for(sub { !Chatd::Test::alive($pid) }, 10, 'wsd-1 to die') or die "wsd-1 survived\n";
    sleep 3;
    $s->start_part('wsd') or die "wsd-1 did not start again\n";
});

Chatd::Faults::run($s, 'nginx-reload', sub {
    my $pid = $s->pid('nginx') or die "no pid for nginx\n";
    kill('HUP', $pid) or die "kill -HUP $pid: $!\n";
    sleep 2;
});

Chatd::Test::done();

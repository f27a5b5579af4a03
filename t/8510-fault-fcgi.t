# Fault injection (issue 8, t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going
# while chat-fcgi workers are killed with SIGKILL (the master forks new ones), and while the
# master itself is (its workers follow it; it is started again 1 s later, as a supervisor
# would). Every acknowledged message must be in every participant's replay, once, in ack
# order.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;
use Time::HiRes ();

my $s = Chatd::Faults::allow(Chatd::Test->new->start);
# Between the master's death and its restart the socket refuses connections, and for a
# moment (scripts/stack removes it; the new master binds it) does not exist: nginx logs that
# at [crit].
$s->allow_nginx_log(qr/\[crit\].* connect\(\) to unix:\S+ failed \(2: No such file or directory\)/);

# A worker is busy a small part of the time at this rate: ten kills, 0.2 s apart, so that
# some land on a request in flight (nginx answers it 502; it may or may not be committed).
Chatd::Faults::run($s, 'fcgi-worker-kill-9', sub {
    my $master = $s->pid('fcgi') or die "no pid for the fcgi master\n";
    for (1 .. 10) {
        my @workers = grep { Chatd::Test::alive($_) } Chatd::Test::children($master);
        kill('KILL', $workers[rand @workers]) if @workers;
        Time::HiRes::sleep(0.2);
    }
    Chatd::Test::alive($master) or die "the master died\n";
});

Chatd::Faults::run($s, 'fcgi-master-kill-9', sub {
    my $master = $s->pid('fcgi') or die "no pid for the fcgi master\n";
    kill('KILL', $master) or die "kill $master: $!\n";
    Chatd::Test::wait_for(sub { !Chatd::Test::alive($master) }, 10, 'the master to die') or die "it survived\n";
    sleep 1;
    $s->start_part('fcgi') or die "fcgi did not start again\n";
}, expect_errors => 1);

Chatd::Test::done();

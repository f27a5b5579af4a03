# Fault injection (issue 8, t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going
# while the wsd instance (of two) serving most clients is killed with SIGKILL (its clients reconnect through nginx to
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

# The victim is the instance holding the most client connections (from nginx), so that the
# kill reaches some senders whatever nginx's balancing did.
sub busiest_wsd {
    my @ports = split ' ', $s->env('WSD_PORTS');
    my ($best, $most) = (1, -1);
    for my $i (1 .. @ports) {
        my $n = () = `ss -Htn state established 'sport = :$ports[$i - 1]'` =~ /\n/g;
        ($best, $most) = ($i, $n) if $n > $most;
    }
    return $best;
}

Chatd::Faults::run($s, 'wsd-kill-9', sub {
    my $i = busiest_wsd();
    my ($pid) = (Chatd::Test::_slurp($s->var_dir . "/run/wsd-$i.pid") // '') =~ /(\d+)/
      or die "no pid for wsd-$i\n";
    kill('KILL', $pid) or die "kill $pid: $!\n";
    Chatd::Test::wait_for(sub { !Chatd::Test::alive($pid) }, 10, "wsd-$i to die") or die "wsd-$i survived\n";
    sleep 3;
    $s->start_part('wsd') or die "wsd-$i did not start again\n";
}, expect_errors => 1);

Chatd::Faults::run($s, 'nginx-reload', sub {
    my $pid = $s->pid('nginx') or die "no pid for nginx\n";
    kill('HUP', $pid) or die "kill -HUP $pid: $!\n";
    sleep 2;
});

Chatd::Test::done();

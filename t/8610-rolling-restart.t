# Issue 12 (t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going while
# `scripts/stack rolling-restart` restarts the two chat-wsd instances one at a time (the
# clients of each reconnect through nginx to the other) and while `scripts/stack reload`
# replaces the chat-fcgi workers: every acknowledged message is in every participant's
# replay (`sync` from 0), once, in ack order. Afterwards /metrics sums exactly the two new
# instances (the files of the stopped ones are gone).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;

my $s = Chatd::Faults::allow(Chatd::Test->new(wsd_instances => 2)->start);

sub wsd_pids { map { (Chatd::Test::_slurp($s->var_dir . "/run/wsd-$_.pid") // '') =~ /(\d+)/ } 1, 2 }
my @before = wsd_pids();
is(scalar @before, 2, 'two wsd instances running');

Chatd::Faults::run($s, 'wsd-rolling-restart', sub {
    my $r = $s->_stack('rolling-restart');
    die 'scripts/stack rolling-restart: ' . Chatd::Test::describe($r) . "\n" if $r->{exit};
    return 1;
}, expect_errors => 1);

my @after = wsd_pids();
ok(@after == 2 && !grep({ my $p = $_; grep { $_ == $p } @before } @after), 'both instances were replaced')
  or diag("before @before, after @after");
ok(!grep({ Chatd::Test::alive($_) } @before), 'the old ones are gone');

Chatd::Faults::run($s, 'fcgi-reload', sub {
    my $r = $s->_stack('reload');
    die 'scripts/stack reload: ' . Chatd::Test::describe($r) . "\n" if $r->{exit};
    return 1;
});

my $body = Chatd::Test::ua()->get($s->url('/metrics'))->res->body // '';
like($body, qr/^chatd_metrics_sources\{program="chat-wsd"\} 2$/m, '/metrics sums the two running instances');

Chatd::Test::done();

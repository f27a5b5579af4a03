# The fcgi master replaces a worker that dies (kill -9), and service continues.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(fcgi_workers => 2)->start;
my $t = $s->t;

my $master = $s->pid('fcgi');
ok($master && Chatd::Test::alive($master), 'fcgi master pid file names a live process');

my @workers;
ok($s->wait_for(sub { @workers = grep { Chatd::Test::alive($_) } $s->workers($master); @workers == 2 },
    10, 'two live fcgi workers'), 'the master has two workers')
  or diag("children: @{[$s->children($master)]}");

$t->get_ok($s->url('/health'))->status_is(200, 'health is 200 before the kill');

my $victim = $workers[0];
ok(kill('KILL', $victim), 'SIGKILL sent to one worker');

my @now;
ok($s->wait_for(sub {
        @now = $s->workers($master);
        @now == 2 && !grep { $_ == $victim } @now;
    }, 10, 'a replacement worker'),
    'the master reaps the killed worker and forks a replacement')
  or diag("children now: @now");
ok((grep { $_ == $workers[1] } @now), 'the surviving worker was left alone');
ok(Chatd::Test::alive($master), 'the master is still running');
is($s->pid('fcgi'), $master, 'the pid file still names the same master');

my $ua    = Chatd::Test::ua();
my @codes = map { $ua->get($s->url('/health'))->res->code // 0 } 1 .. 20;
is(scalar(grep { $_ == 200 } @codes), 20, '20 consecutive GET /health after the restart are all 200')
  or diag("codes: @codes");

Chatd::Test::done();

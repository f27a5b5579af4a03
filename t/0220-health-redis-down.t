# /health reports a Redis outage as 503 (database still ok), and the fcgi workers reconnect
# by themselves once Redis is back.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use IO::Socket::INET;

my $s = Chatd::Test->new(fcgi_workers => 2)->start;
my $t = $s->t;
$s->allow_5xx(503);

$t->get_ok($s->url('/health'))->status_is(200, 'health is 200 with Redis up')
  ->json_is('/redis' => 'ok', 'redis ok before the outage');

ok($s->stop_part('redis'), 'redis stopped');
my $rport = $s->env('REDIS_PORT');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rport, Proto => 'tcp'),
    'nothing listens on the Redis port any more');

# Every worker must notice, not just the first one asked: ask a few times.
for my $i (1 .. 4) {
    $t->get_ok($s->url('/health'))->status_is(503, "health is 503 with Redis down (request $i)")
      ->header_like('Content-Type' => qr{^application/json}, "503 is JSON (request $i)")
      ->json_is('/status' => 'unhealthy', "status unhealthy (request $i)")
      ->json_is('/database' => 'ok', "database still ok (request $i)");
    my $redis = $t->tx->res->json('/redis');
    ok(defined $redis && $redis ne 'ok', "redis marked as failing (request $i)")
      or diag('redis: ' . ($redis // 'undef'));
}

ok($s->start_part('redis'), 'redis started again');
my $ua = Chatd::Test::ua();
ok($s->wait_for(sub { ($ua->get($s->url('/health'))->res->code // 0) == 200 }, 15, 'health back to 200'),
    'health returns to 200 once Redis is back');

my @codes = map { $ua->get($s->url('/health'))->res->code // 0 } 1 .. 10;
is(scalar(grep { $_ == 200 } @codes), 10, 'ten health checks in a row are 200 (every worker reconnected)')
  or diag("codes: @codes");
$t->get_ok($s->url('/health'))->json_is('/redis' => 'ok', 'redis ok after the outage');

Chatd::Test::done();

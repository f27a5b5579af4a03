# A member removed from a group while Redis was down (issue 8 item 8): the member_removed event
# is lost with Redis, so wsd used to keep the connection on the group's channel and the removed
# member went on receiving the group's messages. After a reconnect wsd now re-reads the
# memberships of its connected users from Postgres and drops the groups they left (and picks up
# the ones they joined) before relying on its channels again.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Time::HiRes ();

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub post {
    my ($u, %body) = @_;
    my $res = api($u, POST => '/api/v1/messages', json => {content => 'hello', %body});
    is($res->code, 201, "$u->{name} posts") or diag($res->body);
    return $res->json // {};
}
sub got { my ($c, $id, $secs) = @_; $c->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $id }, $secs // 10) }

my $g = api($alice, POST => '/api/v1/groups', json => {name => 'g', member_ids => [$bob->{id}]})->json;
ok($g->{id}, 'a group of alice and bob');
my $g2 = api($alice, POST => '/api/v1/groups', json => {name => 'g2'})->json;
ok($g2->{id}, 'a second group of alice alone');
my ($b1, $a1) = map { Chatd::WsClient->open_user($s, $_) } $bob, $alice;
ok($_->sync_point, 'connected') for $b1, $a1;
my $m = post($alice, group_id => $g->{id});
ok(got($b1, $m->{id}), 'bob receives the group while a member');

ok($s->stop_part('redis'), 'redis stopped');
is(api($alice, DELETE => "/api/v1/groups/$g->{id}/members/$bob->{id}")->code, 204,
    'alice removes bob while Redis is down (the event is lost)');
is(api($alice, POST => "/api/v1/groups/$g2->{id}/members?user_id=$bob->{id}")->code, 201,
    'and adds him to the second group');
my $log = $s->log_file('wsd-1');
my $rechecks = () = (Chatd::Test::_slurp($log) // '') =~ /memberships re-checked/g;
ok($s->start_part('redis'), 'redis started again');
ok($s->wait_for(sub { my $n = () = (Chatd::Test::_slurp($log) // '') =~ /memberships re-checked/g; $n > $rechecks },
    30, 'the membership re-check'), 'wsd re-checks the memberships once Redis is back');

my ($n, $live) = (0);
ok(Chatd::WsClient::wait_until(sub {
    my $id = post($alice, receiver_id => $bob->{id}, content => 'ping ' . ++$n)->{id};
    return got($b1, $id, 1);
}, 30), "live delivery to bob resumes ($n attempt(s))");

$m = post($alice, group_id => $g->{id}, content => 'after the removal');
ok(got($a1, $m->{id}), 'a group message after the outage reaches the remaining member');
ok(!got($b1, $m->{id}, 2), 'and not the member removed while Redis was down');
$m = post($alice, group_id => $g2->{id}, content => 'in g2');
ok(got($b1, $m->{id}), 'the group he was added to meanwhile reaches him');

# ---- a Redis that hangs: a new connection waits for its SUBSCRIBE to be confirmed, but not
# forever (the startup replay gives up after 3 s and the connection works without live events).
my $carol = Chatd::WsClient::register($s, 'carol');
my $rpid = $s->pid('redis');
ok($rpid && kill('STOP', $rpid), 'redis frozen (SIGSTOP)');
my $c1 = Chatd::WsClient->open_user($s, $carol);
my $t0 = Time::HiRes::time();
ok($c1->sync_point(20), 'a connection opened while Redis hangs answers ping');
cmp_ok(Time::HiRes::time() - $t0, '<', 15, 'within the bound on the wait, not when Redis wakes');
ok(kill('CONT', $rpid), 'redis thawed');
$m = post($alice, receiver_id => $carol->{id}, content => 'after the thaw');
ok(got($c1, $m->{id}, 15), 'and it receives live events once Redis answers');

$_->close for $a1, $b1, $c1;
Chatd::Test::done();

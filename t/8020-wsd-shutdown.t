# A wsd that is told to stop (SIGTERM) with clients connected: each gets a 1001 close, the
# process exits promptly and cleanly, its users are marked offline before it goes (presence
# is withdrawn after the connections close, before the Redis and Postgres connections), and
# a wsd started again serves clients as before.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Time::HiRes ();

my $s = Chatd::Test->new->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub online { my $v = $s->psql("SELECT is_online FROM users WHERE id = '" . shift . "'"); chomp $v; return $v }

my @c = (ws($alice, 'alice'), ws($alice, 'alice again'), ws($bob, 'bob'));
ok(Chatd::WsClient::wait_until(sub { online($alice->{id}) eq 't' && online($bob->{id}) eq 't' }, 10),
    'both users are online');

# A send in flight while the signal arrives is either acknowledged or lost with the connection.
$c[2]->send({type => 'message', content => 'last words', receiver_id => $alice->{id}, client_id => 'last'});
my $pid = $s->pid('wsd');
my $t0  = Time::HiRes::time();
ok($pid && kill('TERM', $pid), 'SIGTERM to wsd');
ok(Chatd::WsClient::wait_until(sub { !grep { !$_->closed } @c }, 10), 'every client is closed');
is_deeply([map { $_->close_code } @c], [1001, 1001, 1001], 'with 1001 (going away)');
is($c[0]->close_reason, 'Server shutting down', "and 'Server shutting down'");
ok(Chatd::WsClient::wait_until(sub { !Chatd::Test::alive($pid) }, 10), 'wsd exits');
cmp_ok(Time::HiRes::time() - $t0, '<', 4, 'within the drain and flush bounds');
is(online($alice->{id}), 'f', 'alice is offline in the database once wsd is gone');
is(online($bob->{id}), 'f', 'and bob');
my $log = Chatd::Test::_slurp($s->log_file('wsd-1.log')) // '';
like($log, qr/signal 15: shutting down.*\bstopped\b/s, 'wsd logs its shutdown');
unlike($log, qr/still linked|event loop still busy|cannot queue/, 'and leaves nothing behind');

$s->expect_dead('wsd');
ok($s->start_part('wsd'), 'wsd started again');
my $again = ws($alice, 'alice after the restart');
my $res = Chatd::WsClient::api($s, $bob, POST => '/api/v1/messages', json => {content => 'back', receiver_id => $alice->{id}});
ok($again->next_frame(sub { $_->{type} eq 'message' && $_->{content} eq 'back' }), 'and delivers live events');
$again->close;

Chatd::Test::done();

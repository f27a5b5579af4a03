# Presence across wsd instances (WS.md "Connecting", issue 5): online on the first connection
# anywhere, offline on the last, seen live by a contact, stored in users.is_online/last_seen;
# a wsd killed with SIGKILL does not leave its users online (heartbeat TTL, sweep).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Time::HiRes qw(time);

my $TTL = 3;
my $s = Chatd::Test->new(wsd_instances => 2, env => {WSD_PRESENCE_TTL => $TTL})->start;
my $t = $s->t;
my @ports = split ' ', $s->env('WSD_PORTS');
is(scalar @ports, 2, 'two wsd instances');

sub sql { my $v = $s->psql(shift); chomp $v; return $v }
sub register { $s->register(@_) }

# A WebSocket client straight to one wsd instance, collecting the frames it receives.
my $ua = Mojo::UserAgent->new(inactivity_timeout => 30);
sub connect_ws {
    my ($user, $port, $title) = @_;
    my $c = {frames => [], closed => 0};
    my $url = "ws://127.0.0.1:$port/api/v1/ws/$user->{id}?token=$user->{token}";
    $ua->websocket($url => sub {
        my ($ua, $tx) = @_;
        $c->{tx} = $tx;
        return $c->{closed} = 1 unless $tx->is_websocket;
        $tx->on(json   => sub { push @{$c->{frames}}, $_[1] });
        $tx->on(finish => sub { $c->{closed} = 1 });
        $tx->send({json => {type => 'ping'}});
    });
    ok(wait_until(sub { grep { $_->{type} eq 'pong' } @{$c->{frames}} }, 10), "$title: connected and answering");
    return $c;
}
sub wait_until {
    my ($cond, $secs) = @_;
    my $deadline = time + $secs;
    until ($cond->()) {
        return 0 if time > $deadline;
        Mojo::IOLoop->one_tick;
    }
    return 1;
}
sub status_of {
    my ($c, $uid, $online) = @_;
    return grep { $_->{type} eq 'online_status' && $_->{user_id} eq $uid && !!$_->{is_online} == !!$online } @{$c->{frames}};
}
sub close_ws { my $c = shift; $c->{tx}->finish; wait_until(sub { $c->{closed} }, 5) }

my ($alice, $bob, $carol) = map { register($_) } qw(alice bob carol);
# bob and carol share a group (made in SQL before bob connects, so his socket is in it).
my $gid = sql("INSERT INTO groups (name, creator_id) VALUES ('presence', '$bob->{id}') RETURNING id");
sql("INSERT INTO group_members (group_id, user_id, role) VALUES ('$gid', '$bob->{id}', 'admin'), ('$gid', '$carol->{id}', 'member')");
$t->post_ok($s->url('/api/v1/contacts'), $bob->{auth}, json => {contact_id => $alice->{id}})
  ->status_is(201, 'bob adds alice as a contact');

my $b1 = connect_ws($bob, $ports[0], 'bob on instance 1');
my $a2 = connect_ws($alice, $ports[1], 'alice on instance 2');
ok(wait_until(sub { status_of($b1, $alice->{id}, 1) }, 10), 'bob sees alice come online (across instances)');
is(sql("select is_online from users where id = '$alice->{id}'"), 't', 'users.is_online set');

my $a1 = connect_ws($alice, $ports[0], 'alice again on instance 1');
close_ws($a2);
# alice still has a connection: no offline event, still online in the database.
my $quiet = !wait_until(sub { status_of($b1, $alice->{id}, 0) }, 1.5);
ok($quiet, 'closing one of two connections does not announce offline');
is(sql("select is_online from users where id = '$alice->{id}'"), 't', 'still online with one connection left');

close_ws($a1);
ok(wait_until(sub { status_of($b1, $alice->{id}, 0) }, 10), 'bob sees alice go offline after her last connection');
my ($off) = status_of($b1, $alice->{id}, 0);
like($off->{last_seen} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'offline event carries last_seen');
ok(wait_until(sub { sql("select is_online from users where id = '$alice->{id}'") eq 'f' }, 5), 'users.is_online cleared');
isnt(sql("select last_seen is null from users where id = '$alice->{id}'"), 't', 'users.last_seen set');

# ---- a group member alone: still one online_status (coalescing batches only several) --------
my $c1 = connect_ws($carol, $ports[0], 'carol on instance 1');
ok(wait_until(sub { status_of($b1, $carol->{id}, 1) }, 10), 'bob sees carol, a fellow group member, come online');
is(scalar(grep { $_->{type} eq 'presence' } @{$b1->{frames}}), 0, 'a single change comes as online_status, not presence');
close_ws($c1);
ok(wait_until(sub { status_of($b1, $carol->{id}, 0) }, 10), 'bob sees carol go offline');

# ---- a wsd instance killed with SIGKILL --------------------------------------------------
@{$b1->{frames}} = ();
my $a3 = connect_ws($alice, $ports[1], 'alice on instance 2 before the kill');
ok(wait_until(sub { status_of($b1, $alice->{id}, 1) }, 10), 'alice online again');
my $pid = $s->pid('wsd-2');
ok($pid && kill('KILL', $pid), 'wsd instance 2 killed with SIGKILL');
$s->expect_dead('wsd-2');
my $t0 = time;
ok(wait_until(sub { status_of($b1, $alice->{id}, 0) }, 3 * $TTL + 5), 'users of the killed instance go offline');
cmp_ok(time - $t0, '<=', 2 * $TTL + 3, 'within the heartbeat TTL and one sweep');
is(sql("select is_online from users where id = '$alice->{id}'"), 'f', 'database agrees after the kill');

close_ws($b1);
Chatd::Test::done();

# Reconnect storm (issue 10, goal 1): 300 members of one group connect at once through nginx.
# None is closed, every connection ends knowing every member online (then offline), and the
# presence frames a connection receives are bounded by the coalescing interval
# (WSD_PRESENCE_COALESCE_MS: one flush per instance per interval, one frame per group per flush;
# README "Presence"), where every member's transition used to be its own frame (O(N^2)).
#
# Users, the group and its members are made in SQL (argon2 would cost ~60 ms a registration),
# tokens are forged with the stack's secret. 10 "observers" connect first and must learn every
# transition from frames alone; the 290 others connect in one burst and are checked against a
# snapshot of users.is_online taken once all of them are subscribed, plus what they received.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(time);

my $N          = 300;
my $OBSERVERS  = 10;
my $TICK_S     = 1.0;
my $DEADLINE_S = 90;    # generous: the machine is shared; the design settles in ~1-2 s

my $s = Chatd::Test->new(
    env => {NGINX_WS_CONN_PER_IP => 0, WSD_PRESENCE_COALESCE_MS => $TICK_S * 1000})->start;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $tag = "storm$$";
my @ids = split /\n/, sql(qq{
    INSERT INTO users (email, hashed_password, username)
    SELECT '$tag' || i || '\@example.com', 'x', '$tag' || i FROM generate_series(1, $N) i
    RETURNING id});
is(scalar @ids, $N, "$N users made in SQL");
my $gid = sql("INSERT INTO groups (name, creator_id) VALUES ('$tag', '$ids[0]') RETURNING id");
my $made = sql(qq{INSERT INTO group_members (group_id, user_id, role)
          SELECT '$gid', id, CASE WHEN id = '$ids[0]' THEN 'admin' ELSE 'member' END
          FROM users WHERE username LIKE '$tag%' RETURNING 1});
is(($made =~ tr/1//), $N,
   'all of them are members of one group');
my %member = map { $_ => 1 } @ids;

# A client that does not wait for its handshake, so the burst leaves at once.
sub open_nowait {
    my $id  = shift;
    my $tok = Chatd::WsClient::forge_access($s, $id, iat => time - 5);
    my $c   = bless {frames => [], closed => 0, id => $id, state => {}, presence_frames => 0},
      'Chatd::WsClient';
    Chatd::WsClient::ua()->websocket($s->ws_url($s->ws_connect_path($id, token => $tok)) => sub {
        my (undef, $tx) = @_;
        $c->{tx} = $tx;
        return @$c{qw(closed status)} = (1, $tx->res->code) unless $tx->is_websocket;
        $tx->on(text => sub { on_frame($c, decode_json($_[1])) });
        $tx->on(finish => sub { @$c{qw(closed close_code close_reason)} = (1, @_[1, 2]) });
        $tx->send({json => {type => 'ping'}});
    });
    return $c;
}

# Applies a presence frame to the connection's view; keeps pongs for readiness.
sub on_frame {
    my ($c, $f) = @_;
    return $c->{pong} = 1 if $f->{type} eq 'pong';
    my @users = $f->{type} eq 'online_status' ? ($f)
              : $f->{type} eq 'presence'      ? @{$f->{users} // []}
              :                                 return;
    $c->{presence_frames}++;
    $c->{last_presence} = $f if $f->{type} eq 'presence';
    $c->{state}{$_->{user_id}} = $_->{is_online} ? 1 : 0 for @users;
}

sub wait_until { Chatd::WsClient::wait_until(@_) }
# True when $c holds state $online for every member of @$who but itself ($base: a snapshot).
sub knows_all {
    my ($c, $online, $who, $base) = @_;
    for my $id (@$who) {
        next if $id eq $c->{id};
        my $v = $c->{state}{$id} // ($base && $base->{$id} ? 1 : undef);
        return 0 unless defined $v && $v == $online;
    }
    return 1;
}

# ---- observers, connected before the storm ---------------------------------------------
my @obs = map { open_nowait($_) } @ids[0 .. $OBSERVERS - 1];
ok(wait_until(sub { !grep { !$_->{pong} } @obs }, 30), "$OBSERVERS observers connected");
ok(wait_until(sub { sql("SELECT count(*) FROM users WHERE username LIKE '$tag%' AND is_online") == $OBSERVERS }, 30),
   'observers are online in users.is_online');
$_->{presence_frames} = 0 for @obs;

# ---- the storm: 290 members at once ----------------------------------------------------
my $t0    = time;
my @storm = map { open_nowait($_) } @ids[$OBSERVERS .. $N - 1];
ok(wait_until(sub { !grep { !$_->{pong} && !$_->{closed} } @storm }, $DEADLINE_S),
   'every storm connection is up and answering');
my $open_s = time - $t0;
my %snap = map { $_ => 1 } split /\n/, sql("SELECT id FROM users WHERE username LIKE '$tag%' AND is_online");
my @all = (@obs, @storm);
my @storm_ids = @ids[$OBSERVERS .. $N - 1];
my $settled = wait_until(sub {
    (grep { $_->{closed} } @all)
      || !grep({ !knows_all($_, 1, \@ids, \%snap) } @storm) && !grep({ !knows_all($_, 1, \@storm_ids) } @obs)
}, $DEADLINE_S);
my $up_s = time - $t0;
is(scalar(grep { $_->{closed} } @all), 0, 'no connection closed during the storm')
  or diag(join ', ', map { "$_->{close_code} $_->{close_reason}" } grep { $_->{closed} } @all);
ok($settled && !grep({ !knows_all($_, 1, \@ids, \%snap) } @all), 'every connection knows every member online');
ok(!grep({ !knows_all($_, 1, \@storm_ids) } @obs), 'observers learned it from frames alone')
  or diag('storm members known per observer: ', join ' ', map { my $o = $_; scalar grep { $o->{state}{$_} } @storm_ids } @obs);
diag(sprintf 'storm: all up in %.1f s, settled in %.1f s, %d of %d online in the snapshot', $open_s, $up_s,
    scalar keys %snap, $N);
is(sql("SELECT count(*) FROM users WHERE username LIKE '$tag%' AND is_online"), $N,
   'users.is_online is set for all of them');

# One flush per interval, one frame per group per flush: <= elapsed/interval + 2 per connection.
sub frames_bounded {
    my ($what, $secs, @conns) = @_;
    my @n = sort { $a <=> $b } map { $_->{presence_frames} } @conns;
    my $bound = int($secs / $TICK_S) + 2;
    cmp_ok($n[-1], '<=', $bound, "$what: presence frames per connection bounded by the interval");
    my $sum = 0;
    $sum += $_ for @n;
    diag(sprintf '%s: presence frames per connection max %d, mean %.1f (bound %d, %d members)',
        $what, $n[-1], $sum / @n, $bound, $N);
}
frames_bounded('storm', $up_s, @all);

# ---- all 290 leave at once ---------------------------------------------------------------
$_->{presence_frames} = 0 for @obs;
my $t1 = time;
$_->{tx}->finish for @storm;
ok(wait_until(sub { !grep { !knows_all($_, 0, \@storm_ids) } @obs }, $DEADLINE_S),
   'observers see the 290 go offline');
my $down_s = time - $t1;
is(scalar(grep { $_->{closed} && !$_->{tx}->is_finished } @obs), 0, 'no observer closed');
ok(wait_until(sub { sql("SELECT count(*) FROM users WHERE username LIKE '$tag%' AND is_online") == $OBSERVERS }, 10),
   'users.is_online cleared for the 290');
is(sql("SELECT count(*) FROM users WHERE username LIKE '$tag%' AND NOT is_online AND last_seen IS NOT NULL"),
   $N - $OBSERVERS, 'each of them has last_seen');
frames_bounded('leave', $down_s, @obs);
my $p = $obs[0]{last_presence} // {};
is($p->{group_id}, $gid, 'a presence frame names its group');
my @u = @{$p->{users} // []};
cmp_ok(scalar @u, '>', 1, 'and lists several members');
is(scalar(grep { $member{$_->{user_id} // ''} && !$_->{is_online}
                 && ($_->{last_seen} // '') =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/ } @u),
   scalar @u, 'each with user_id, is_online false and last_seen, as online_status has them');

$_->{tx}->finish for @obs;
Chatd::Test::done();

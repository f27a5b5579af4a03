# Issue 8 item 5 through wsd: with a Postgres lane queue of one job (WSD_DB_QUEUE_MAX=1) and
# many concurrent WebSocket senders, sends past the cap are refused ("Server busy"). (Sends once
# took a deployment-wide session lock whose release could be refused by the cap; since issue 10
# they only pass the sequencing gate inside one statement.) Afterwards no session holds the
# gate, every acknowledged message
# is stored exactly once, nothing refused is stored, and REST sends still work.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $CONNS = 12;
my $EACH  = 10;
my $s = Chatd::Test->new(env => {WSD_DB_QUEUE_MAX => 1, DB_LOCK_TIMEOUT_MS => 3000})->start;
my $bob = Chatd::WsClient::register($s, 'bob');
my @users = map { Chatd::WsClient::register($s, "sender$_") } 1 .. $CONNS;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }
my $HELD = q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
             AND classid = 7001 AND objid = 15 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())};

# Connected one at a time, so the tiny queue does not refuse the connections themselves.
my @ws;
for my $u (@users) {
    my $c = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($u->{id}, token => $u->{token})));
    push @ws, [$u, $c] if $c->sync_point(20);
}
cmp_ok(scalar @ws, '>=', $CONNS / 2, scalar(@ws) . " of $CONNS senders connected");

for my $w (@ws) {
    my ($u, $c) = @$w;
    $c->send({type => 'message', content => "q $u->{name} $_", receiver_id => $bob->{id}, client_id => "c$_"})
      for 1 .. $EACH;
}
my (%acked, $errors, %why);
for my $w (@ws) {
    my ($u, $c) = @$w;
    for my $i (1 .. $EACH) {
        my $f = $c->next_frame(sub { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') eq "c$i" }, 60) // {};
        if (($f->{type} // '') eq 'ack') { $acked{$f->{id}} = "q $u->{name} $i" }
        else                              { $errors++; $why{$f->{detail} // $f->{message} // 'no reply'}++ }
    }
}
my $sent = @ws * $EACH;
diag("sent=$sent acked=" . scalar(keys %acked) . ' refused=' . ($errors // 0) . ' ' . join(', ', map { "$_: $why{$_}" } sort keys %why));
ok($errors, 'the lane queue cap was reached (some sends were refused)');
is_deeply([grep { $_ ne 'Server busy' } keys %why], [], 'refusals say "Server busy"');
ok(keys %acked, 'some sends were acknowledged');

ok($s->wait_for(sub { sql($HELD) == 0 }, 20, 'the gate to be free'), 'no session keeps the sequencing gate');
my $ids = join(',', map { "'$_'" } keys %acked) || 'NULL';
is(sql("SELECT count(*) FROM messages WHERE id IN ($ids)"), scalar(keys %acked), 'every acknowledged message is stored');
is(sql(q{SELECT count(*) FROM messages WHERE content LIKE 'q %'}), scalar(keys %acked),
    'nothing else is stored (refused sends left no row)');
is(sql(q{SELECT count(*) - count(DISTINCT content) FROM messages WHERE content LIKE 'q %'}), 0, 'no send stored twice');

my $res = Chatd::WsClient::api($s, $bob, POST => '/api/v1/messages', json => {content => 'after', receiver_id => $users[0]{id}});
is($res->code, 201, 'a REST send afterwards: 201');
my ($w0) = @ws;
$w0->[1]->send({type => 'message', content => 'ws after', receiver_id => $bob->{id}, client_id => 'last'});
my $f = $w0->[1]->next_frame(sub { ($_->{client_id} // '') eq 'last' }, 30) // {};
is($f->{type}, 'ack', 'a WS send afterwards is acknowledged');

$_->[1]->close for @ws;
Chatd::Test::done();

# Sending over the WebSocket (WS.md "Client → server"): `message` is stored with the rules of
# POST /api/v1/messages and acknowledged; receivers and the sender's other connections get it,
# the sending connection gets no duplicate event; validation errors keep the connection and
# carry the client_id; `typing` is relayed, throttled and never stored; `read` works as the
# REST route.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use IO::Select;
use IO::Socket::INET;

my $s = Chatd::Test->new->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub ws { Chatd::WsClient->connect_user($s, @_) }
sub count_messages { my $n = $s->psql('SELECT count(*) FROM messages'); chomp $n; return $n }
sub reply_to {
    my ($c, $cid) = @_;
    return $c->next_frame(sub { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') eq $cid }, 10) // {};
}

my $g = api($alice, POST => '/api/v1/groups', json => {name => 'g', member_ids => [$bob->{id}]})->json;
ok($g->{id}, 'a group of alice and bob');

# A raw Redis subscriber on the old version's channel for this group.
my ($rhost, $rport) = $s->env('REDIS_URL') =~ m{redis://(?:[^@]*@)?([^:/]+):(\d+)};
my $redis = IO::Socket::INET->new(PeerAddr => $rhost, PeerPort => $rport, Timeout => 5);
ok($redis, 'a Redis subscriber connected');
print $redis "SUBSCRIBE chat:messages:$g->{id}\r\n";

my ($a1, $a2) = (ws($alice, 'alice 1'), ws($alice, 'alice 2'));
my $b1 = ws($bob, 'bob');
my $c1 = ws($carol, 'carol');

# ---- a private message ---------------------------------------------------------------------------
$a1->send({type => 'message', content => 'hi bob', receiver_id => $bob->{id}, client_id => 'c-1'});
my $ack = reply_to($a1, 'c-1');
is($ack->{type}, 'ack', 'a message gets an ack');
like($ack->{id} // '', qr/^[0-9a-f-]{36}$/, 'with the id');
like($ack->{seq} // '', qr/^\d+$/, 'the seq');
like($ack->{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'and created_at');
is_deeply([sort keys %$ack], [qw(client_id created_at id seq type)], 'and nothing else');
my $row = $s->psql("SELECT content, sender_id, receiver_id, seq FROM messages WHERE id = '$ack->{id}'");
chomp $row;
is($row, "hi bob|$alice->{id}|$bob->{id}|$ack->{seq}", 'it is stored');
my $f = $b1->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $ack->{id} }) // {};
is($f->{content}, 'hi bob', 'the receiver gets it');
is($f->{seq}, $ack->{seq}, 'with the same seq');
ok($a2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $ack->{id} }), "the sender's other connection gets it");
$a1->sync_point;
is(scalar(grep { $_->{type} eq 'message' } @{$a1->frames}), 0, 'the sending connection gets no message event for it');
ok(!grep({ $_->{type} eq 'message' } @{$c1->sync_point ? $c1->frames : []}), 'a third user gets nothing');

my $list = api($bob, GET => "/api/v1/messages?receiver_id=$alice->{id}")->json;
is($list->[0]{id}, $ack->{id}, 'REST lists it');

# ---- a group message ---------------------------------------------------------------------------
$a1->send({type => 'message', content => 'hi group', group_id => $g->{id}, client_id => 'c-2'});
$ack = reply_to($a1, 'c-2');
is($ack->{type}, 'ack', 'a group message gets an ack');
ok($b1->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $ack->{id} && $_->{group_id} eq $g->{id} }),
    'members get it');
ok($a2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq $ack->{id} }), "and the sender's other connection");
$a1->sync_point;
is(scalar(grep { $_->{type} eq 'message' } @{$a1->frames}), 0, 'not the sending connection');
my $legacy = '';
my $sel = IO::Select->new($redis);
while ($legacy !~ /\Q$ack->{id}\E/ && $sel->can_read(5)) {
    sysread($redis, my $buf, 65536) or last;
    $legacy .= $buf;
}
like($legacy, qr/"type":"message".*\Q$ack->{id}\E/s, 'and it is published on chat:messages:<group_id>');
close $redis;

# No client_id: the ack says null.
$a1->send({type => 'message', content => 'no id', receiver_id => $bob->{id}});
$ack = $a1->next_frame(sub { $_->{type} =~ /^(ack|error)$/ }) // {};
is($ack->{type}, 'ack', 'a message without client_id is acknowledged');
ok(exists $ack->{client_id} && !defined $ack->{client_id}, 'with client_id null');

# Many in a row: acks in order, delivered in order.
$a1->send({type => 'message', content => "n$_", receiver_id => $bob->{id}, client_id => "n$_"}) for 1 .. 20;
my @acks = map { reply_to($a1, "n$_") } 1 .. 20;
is(scalar(grep { $_->{type} eq 'ack' } @acks), 20, 'twenty messages, twenty acks');
is_deeply([map { $_->{seq} } @acks], [sort { $a <=> $b } map { $_->{seq} } @acks], 'seq increases in the order sent');
ok(Chatd::WsClient::wait_until(sub { grep({ $_->{type} eq 'message' && $_->{content} eq 'n20' } @{$b1->frames}) }, 10),
    'the receiver gets all of them');
is_deeply([map { $_->{content} } grep { $_->{type} eq 'message' && $_->{content} =~ /^n\d+$/ } @{$b1->frames}],
    [map {"n$_"} 1 .. 20], 'in the order sent');

# ---- validation ------------------------------------------------------------------------------------
my $before = count_messages();
my @bad = (
    [{content => 'x'}, qr/^Either receiver_id or group_id must be provided$/, 'neither receiver nor group'],
    [{content => 'x', receiver_id => $bob->{id}, group_id => $g->{id}}, qr/not both/, 'both receiver and group'],
    [{receiver_id => $bob->{id}}, qr/^content: Field required$/, 'no content'],
    [{content => '', receiver_id => $bob->{id}}, qr/^content: .*at least 1/, 'empty content'],
    [{content => 'x' x 5001, receiver_id => $bob->{id}}, qr/^content: .*at most 5000/, 'content of 5001 characters'],
    [{content => 42, receiver_id => $bob->{id}}, qr/^content: .*string/, 'content not a string'],
    [{content => "a\x{0}b", receiver_id => $bob->{id}}, qr/^content: .*NUL/, 'content with NUL'],
    [{content => 'x', receiver_id => 'bob'}, qr/^receiver_id: .*UUID/, 'receiver_id not a UUID'],
    [{content => 'x', group_id => 7}, qr/^group_id: /, 'group_id not a string'],
    [{content => 'x', receiver_id => '8d1f1a5e-0000-4000-8000-000000000000'}, qr/^User not found$/, 'unknown receiver'],
    [{content => 'x', receiver_id => $bob->{id}, media_type => 'audio'}, qr/^media_type: /, 'media_type not image or video'],
    [{content => 'x', receiver_id => $bob->{id}, media_url => 'http://evil.example/x.png', media_type => 'image'},
        qr/^media_url must be a file uploaded to this server$/, 'media_url not an upload of ours'],
);
my $i = 0;
for my $case (@bad) {
    my ($body, $re, $title) = @$case;
    my $cid = 'bad-' . ++$i;
    $a1->send({type => 'message', client_id => $cid, %$body});
    my $r = reply_to($a1, $cid);
    is($r->{type}, 'error', "$title: error");
    like($r->{message} // '', $re, "$title: message");
}
$c1->send({type => 'message', content => 'x', group_id => $g->{id}, client_id => 'nm'});
my $r = reply_to($c1, 'nm');
is($r->{message}, 'You are not a member of this group', 'a non-member sending to a group: error with the REST detail');
$a1->send({type => 'message', content => 'x', receiver_id => $bob->{id}, client_id => 'c' x 101});
$r = $a1->next_frame(sub { $_->{type} =~ /^(ack|error)$/ }) // {};
like($r->{message} // '', qr/^client_id: .*at most 100/, 'a client_id over 100 characters: error');
$a1->send({type => 'message', content => 'x', receiver_id => $bob->{id}, client_id => {}});
$r = $a1->next_frame(sub { $_->{type} =~ /^(ack|error)$/ }) // {};
like($r->{message} // '', qr/^client_id: .*string/, 'a client_id that is not a string: error');
is(count_messages(), $before, 'nothing invalid was stored');
ok($a1->sync_point && $a1->is_open, 'the connection survives every validation error');

$a1->send({type => 'message', content => "\x{e9}" x 5000, receiver_id => $bob->{id}, client_id => 'long'});
is(reply_to($a1, 'long')->{type}, 'ack', '5000 two-byte characters are accepted');

# ---- typing -----------------------------------------------------------------------------------------
$before = count_messages();
$a1->send({type => 'typing', receiver_id => $bob->{id}}) for 1 .. 5;
$a1->send({type => 'message', content => 'after typing', receiver_id => $bob->{id}, client_id => 'at'});
is(reply_to($a1, 'at')->{type}, 'ack', 'a message after five typing frames');
ok($b1->next_frame(sub { $_->{type} eq 'message' && $_->{content} eq 'after typing' }), 'reaches bob');
# The typing frame travels through Redis, the message from the sender's instance straight to a
# socket there: the message may come first (CI saw it), so wait for the typing frame itself, and
# long enough after it for a second one to show.
Chatd::WsClient::wait_until(sub { grep { $_->{type} eq 'typing' } @{$b1->frames} }, 10);
Chatd::WsClient::wait_until(sub { 0 }, 0.5);
my @typing = grep { $_->{type} eq 'typing' } @{$b1->frames};
is(scalar @typing, 1, 'five typing frames within a second are relayed once');
is_deeply($typing[0], {type => 'typing', user_id => $alice->{id}, receiver_id => $bob->{id}},
    'as {type, user_id, receiver_id}');
$a2->sync_point;
ok(!grep({ $_->{type} eq 'typing' } @{$a2->frames}), "not echoed to the typer's other connection");
is(count_messages(), $before + 1, 'typing is not stored');

@{$b1->frames} = ();
$a1->send({type => 'typing', group_id => $g->{id}});
$f = $b1->next_frame(sub { $_->{type} eq 'typing' }) // {};
is_deeply($f, {type => 'typing', user_id => $alice->{id}, group_id => $g->{id}}, 'group typing reaches members');
$a1->sync_point;
$a2->sync_point;
ok(!grep({ $_->{type} eq 'typing' } @{$a1->frames}, @{$a2->frames}), "and not the typer's connections");
$c1->send({type => 'typing', group_id => $g->{id}});
like(($c1->next_frame(sub { $_->{type} eq 'error' }) // {})->{message} // '', qr/not a member/,
    'typing in a group one is not in: error');
$c1->send({type => 'typing'});
is(($c1->next_frame(sub { $_->{type} eq 'error' }) // {})->{type}, 'error', 'typing without a target: error');

# ---- read ---------------------------------------------------------------------------------------------
my $m = api($alice, POST => '/api/v1/messages', json => {content => 'read me', receiver_id => $bob->{id}})->json;
$b1->send({type => 'read', message_id => $m->{id}});
$f = $a1->next_frame(sub { $_->{type} eq 'read' && $_->{message_id} eq $m->{id} }) // {};
is($f->{reader_id}, $bob->{id}, 'read over the WebSocket: the sender gets the read event');
my $is_read = $s->psql("SELECT is_read FROM messages WHERE id = '$m->{id}'");
chomp $is_read;
is($is_read, 't', 'and the message is marked read');
$c1->send({type => 'read', message_id => $m->{id}});
is(($c1->next_frame(sub { $_->{type} eq 'error' }) // {})->{message}, 'Message not found',
    "reading someone else's message: Message not found");
$c1->send({type => 'read', message_id => 'x'});
is(($c1->next_frame(sub { $_->{type} eq 'error' }) // {})->{type}, 'error', 'read with a bad id: error');

$_->close for $a1, $a2, $b1, $c1;
Chatd::Test::done();

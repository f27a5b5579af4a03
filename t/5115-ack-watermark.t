# README.seqpath.md "Acks and 201s wait for the lower seqs": the bound of the REST wait. With a
# writer held in flight at a lower seq and DB_LOCK_TIMEOUT_MS at 1.5 s, a REST send commits and
# is answered 201 once chatd_wait_stable() gives up (after about DB_LOCK_TIMEOUT_MS, never an
# error response), and fcgi logs at warn that the answer lost its watermark guarantee; a WS send
# has no such bound: its ack waits for the writer's end. Without a held writer both answer at
# once. (t/5110 covers the answers that come right after the writer's end.)
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(time);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $s = Chatd::Test->new(env => {DB_LOCK_TIMEOUT_MS => 1500})->start;
my ($alice, $bob, $carol) = map { Chatd::WsClient::register($s, $_) } qw(alice bob carol);
sub api { Chatd::WsClient::api($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }
my $WARN = qr/without the watermark guarantee/;
sub fcgi_warned { return grep { (Chatd::Test::_slurp($_) // '') =~ $WARN } glob "$s->{var_dir}/log/fcgi*.log" }

my $cws = Chatd::WsClient->connect_user($s, $carol, 'carol');

# No writer held: both answer at once, nothing logged.
my $t0  = time;
my $res = api($carol, POST => '/api/v1/messages', json => {content => 'free rest', receiver_id => $alice->{id}});
is($res->code, 201, 'no writer held: REST 201');
cmp_ok(time - $t0, '<', 1.2, 'no writer held: REST answered without waiting for DB_LOCK_TIMEOUT_MS');
$t0 = time;
$cws->send({type => 'message', content => 'free ws', receiver_id => $alice->{id}, client_id => 'free'});
my $ack = $cws->next_frame(sub { ($_->{client_id} // '') eq 'free' }, 10) // {};
is($ack->{type} // '', 'ack', 'no writer held: WS ack');
cmp_ok(time - $t0, '<', 1.2, 'no writer held: WS ack at once');
ok(!fcgi_warned(), 'nothing logged about the watermark');

# A psql writer held in flight (as in t/5110).
my $pid = open(my $w, '|-') // die "fork: $!";
if (!$pid) {
    open STDOUT, '>', '/dev/null' or die;
    $ENV{PGAPPNAME} = 'chatd-held-writer';
    exec 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $s->db_url or die "exec psql: $!";
}
$w->autoflush(1);
print $w "BEGIN;\nSELECT status FROM chatd_message_send('$bob->{id}', '$alice->{id}', NULL, 'held', NULL, NULL, NULL);\n";
my $held;
ok($s->wait_for(sub {
    ($held = sql(q{SELECT ((k.classid::bigint - 1130000000) << 31) | k.objid::bigint FROM pg_locks k
                   JOIN pg_stat_activity a ON a.pid = k.pid
                   WHERE a.application_name = 'chatd-held-writer' AND k.locktype = 'advisory'
                     AND k.objsubid = 2 AND k.classid::bigint >= 1130000000 AND k.granted
                     AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())}))
        ne '' },
    30, 'the writer to take its seq'), 'the writer is in flight');

$t0  = time;
$res = api($carol, POST => '/api/v1/messages', json => {content => 'bounded rest', receiver_id => $alice->{id}});
my $took = time - $t0;
is($res->code, 201, 'writer held: REST still answers 201 (its message is committed)');
cmp_ok($took, '>=', 1.2, 'writer held: the 201 waited for it (about DB_LOCK_TIMEOUT_MS)');
cmp_ok($took, '<', 6, 'writer held: but no longer than DB_LOCK_TIMEOUT_MS and a margin');
cmp_ok($res->json->{seq} // 0, '>', $held, 'its seq is above the held one');
is(sql("SELECT count(*) FROM messages WHERE content = 'bounded rest'"), 1, 'the message is stored');
ok(Chatd::WsClient::wait_until(sub { fcgi_warned() }, 5), 'fcgi logged the 201 without the guarantee');

$cws->send({type => 'message', content => 'held ws', receiver_id => $alice->{id}, client_id => 'held'});
ok(!$cws->next_frame(sub { ($_->{client_id} // '') eq 'held' }, 2.5), 'writer held: no WS ack (no time bound on it)');
print $w "COMMIT;\n";
close $w;
is($?, 0, "the writer's COMMIT went through");
$t0  = time;
$ack = $cws->next_frame(sub { ($_->{client_id} // '') eq 'held' }, 10) // {};
is($ack->{type} // '', 'ack', 'the WS ack comes after the COMMIT');
cmp_ok(time - $t0, '<', 5, 'right after it');

$cws->close;
Chatd::Test::done();

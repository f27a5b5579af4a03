# bench/wsload latency (issue 10, goal 6) against a real stack: it POSTs over a fixed number
# of HTTP/1.1 keep-alive connections (not one connection per POST), every POST is answered
# 201 and lands once in the messages table, every message event reaches the receiver's
# WebSocket and is timed, and the result line carries p50, p99 and max. No timing is
# asserted: the rate is what the loaded machine manages.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Temp qw(tempdir);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $root = Chatd::Test::root();
my $dir  = tempdir('chatd-wsload-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $wsload = "$dir/wsload";
my $libs = Chatd::Test::run_cmd([qw(pkg-config --cflags --libs libwebsockets)]);
is($libs->{exit}, 0, 'pkg-config knows libwebsockets') or diag(Chatd::Test::describe($libs));
my $cc = Chatd::Test::run_cmd(
    [   qw(cc -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -o), $wsload,
        glob("$root/bench/wsload*.c"), split(' ', $libs->{out})
    ],
    merge => 1
);
is($cc->{exit}, 0, 'bench/wsload builds with -Werror') or diag(Chatd::Test::describe($cc));

my $s = Chatd::Test->new->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
open my $fh, '>', "$dir/bob.txt" or die "$dir/bob.txt: $!";
print $fh "$bob->{id} $bob->{token}\n";
close $fh;

# run(RATE, CONNS, SECS): the wsload output as {result => {k => v}, post => {k => v}}.
sub run_latency {
    my ($rate, $conns, $secs) = @_;
    my $r = Chatd::Test::run_cmd(
        [   $wsload, 'latency', -p => $s->http_port, -k => "$dir/bob.txt", -s => $alice->{token},
            -r => $bob->{id}, -R => $rate, -C => $conns, -d => $secs, -T => 60
        ],
        timeout => 180
    );
    is($r->{exit}, 0, "wsload latency -R $rate -C $conns ran") or diag(Chatd::Test::describe($r));
    my %o;
    for my $kind (qw(result post)) {
        my ($line) = $r->{out} =~ /^$kind (.*)$/m;
        $o{$kind} = {map { split /=/, $_, 2 } split ' ', $line // ''};
    }
    return \%o;
}

my $before = $s->psql("SELECT count(*) FROM messages WHERE sender_id = '$alice->{id}'");
my $o = run_latency(150, 4, 3);
my ($res, $post) = @$o{qw(result post)};
is($post->{conns}, 4, 'four parallel posting connections');
cmp_ok($post->{posted}, '>=', 40, 'it posted many messages') or diag(explain($o));
is($post->{failed}, 0, 'none failed');
is($post->{connects}, 4, 'each connection was opened once and kept alive for every POST');
is($res->{count}, $post->{posted}, 'every posted message reached the receiver and was timed');
is($res->{expected}, $post->{posted}, 'which is what the result line expects');
is($res->{errors}, 0, 'no errors');
ok(defined $res->{$_}, "the result line has $_") for qw(p50_ms p99_ms max_ms);
cmp_ok($res->{p50_ms} // 0, '<=', $res->{p99_ms} // 0, 'p50 <= p99');
cmp_ok($res->{p99_ms} // 0, '<=', $res->{max_ms} // 0, 'p99 <= max');
is($s->psql("SELECT count(*) FROM messages WHERE sender_id = '$alice->{id}'") - $before,
    $post->{posted}, 'each POST landed exactly once in the messages table');

Chatd::Test::done();

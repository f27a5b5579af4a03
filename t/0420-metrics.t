# Issue 12: GET /metrics, the Prometheus text format 0.0.4 of the whole host. Every line
# matches the exposition grammar; request counters, latency histograms, WebSocket connections
# and frames move as requests and frames happen; both wsd instances are summed; only
# METRICS_ALLOW addresses get it (nginx answers 403 to another, e.g. 127.0.0.2).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::UserAgent;

my $s = Chatd::Test->new(wsd_instances => 2)->start;
my @ports = split ' ', $s->env('WSD_PORTS') // '';
is(scalar @ports, 2, 'two wsd instances');
my $ua = Chatd::Test::ua();

my $NAME  = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LABEL = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/;
my $VALUE = qr/(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN)/;

# Parses one scrape: {"name{labels}" => value}; every line is checked against the grammar.
sub scrape {
    my ($title) = @_;
    my $res = $ua->get($s->url('/metrics'))->res;
    is($res->code, 200, "$title: 200");
    like($res->headers->content_type // '', qr{^text/plain; version=0\.0\.4}, "$title: the 0.0.4 content type");
    my (%v, %type, @bad);
    for my $line (split /\n/, $res->body) {
        if ($line =~ /^# HELP ($NAME) .*$/) { next }
        if ($line =~ /^# TYPE ($NAME) (counter|gauge|histogram|summary|untyped)$/) {
            push @bad, "second TYPE: $line" if $type{$1}++;
            next;
        }
        if ($line =~ /^($NAME)(\{(?:$LABEL(?:,$LABEL)*)?\})? ($VALUE)$/) {
            my ($name, $labels, $val) = ($1, $2 // '', $3);
            (my $base = $name) =~ s/_(bucket|sum|count)$//;
            push @bad, "no TYPE before: $line" unless $type{$name} || $type{$base};
            push @bad, "repeated sample: $line" if exists $v{"$name$labels"};
            $v{"$name$labels"} = $val;
            next;
        }
        push @bad, "not in the grammar: $line";
    }
    is_deeply(\@bad, [], "$title: every line is in the exposition grammar") or diag(join "\n", @bad);
    return \%v;
}
sub val { my ($m, $k) = @_; return $m->{$k} // 0 }

# Histograms: buckets cumulative, +Inf = _count, for every series.
sub check_histograms {
    my ($m, $title) = @_;
    my %series;
    for my $k (keys %$m) {
        next unless $k =~ /^chatd_http_request_duration_seconds_bucket\{(.*),le="([^"]+)"\}$/;
        push @{$series{$1}}, [$2 eq '+Inf' ? 9**9**9 : $2, $m->{$k}];
    }
    my @bad;
    for my $l (sort keys %series) {
        my @b = sort { $a->[0] <=> $b->[0] } @{$series{$l}};
        for my $i (1 .. $#b) { push @bad, "$l: not cumulative" if $b[$i][1] < $b[$i - 1][1] }
        push @bad, "$l: +Inf != _count"
          if $b[-1][1] != val($m, "chatd_http_request_duration_seconds_count{$l}");
    }
    ok(%series && !@bad, "$title: histogram buckets cumulative, +Inf = _count") or diag(join "\n", @bad);
}

my $m0 = scrape('first scrape');
is(val($m0, 'chatd_metrics_sources{program="chat-wsd"}'), 2, 'both wsd instances are summed');
is(val($m0, 'chatd_metrics_sources{program="chat-fcgi"}'), 1, 'and the fcgi master with its workers');
is(val($m0, 'chatd_http_requests_in_flight'), 1, 'in flight: the scrape itself');
cmp_ok(val($m0, 'chatd_postgres_connects_total{program="chat-fcgi"}'), '>', 0, 'fcgi Postgres connections counted');
cmp_ok(val($m0, 'chatd_postgres_connects_total{program="chat-wsd"}'), '>', 0, 'wsd Postgres connections counted');
cmp_ok(val($m0, 'chatd_redis_connects_total{program="chat-wsd"}'), '>', 0, 'wsd Redis connections counted');

my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
my $me = 'route="/api/v1/users/me",method="GET"';
my $one = 'route="/api/v1/users/{user_id}",method="GET"';
my $m1 = scrape('before the requests');
my @codes = map { Chatd::WsClient::api($s, $alice, GET => '/api/v1/users/me')->code } 1 .. 7;
is_deeply(\@codes, [(200) x 7], 'seven GET /api/v1/users/me');
is(Chatd::WsClient::api($s, $alice, GET => '/api/v1/users/00000000-0000-4000-8000-000000000000')->code,
    404, 'one GET of an unknown user');
is($ua->get($s->url('/api/v1/nothing-here'))->res->code, 404, 'one unmatched path');
my $m2 = scrape('after the requests');
is(val($m2, "chatd_http_requests_total{$me,status=\"200\"}") - val($m1, "chatd_http_requests_total{$me,status=\"200\"}"),
    7, 'requests_total{route=users/me, status=200} grew by 7');
is(val($m2, "chatd_http_requests_total{$one,status=\"404\"}") - val($m1, "chatd_http_requests_total{$one,status=\"404\"}"),
    1, 'requests_total{route=users/{user_id}, status=404} grew by 1');
is(val($m2, 'chatd_http_requests_total{route="unmatched",method="",status="404"}')
      - val($m1, 'chatd_http_requests_total{route="unmatched",method="",status="404"}'),
    1, 'an unmatched path is counted as route="unmatched"');
is(val($m2, "chatd_http_request_duration_seconds_count{$me}") - val($m1, "chatd_http_request_duration_seconds_count{$me}"),
    7, 'the latency histogram of users/me counted 7');
cmp_ok(val($m2, "chatd_http_request_duration_seconds_sum{$me}"), '>', val($m1, "chatd_http_request_duration_seconds_sum{$me}"),
    'and its _sum grew');
check_histograms($m2, 'after the requests');

# One client straight to each instance: both files are counted.
sub on {
    my ($u, $n) = @_;
    my $c = Chatd::WsClient->start("ws://127.0.0.1:$ports[$n - 1]" . $s->ws_connect_path($u->{id}, token => $u->{token}));
    ok($c->sync_point, "$u->{name} connected to instance $n");
    return $c;
}
my $a1 = on($alice, 1);
my $b2 = on($bob, 2);
my $m3 = scrape('two WebSockets open');
is(val($m3, 'chatd_ws_connections') - val($m2, 'chatd_ws_connections'), 2, 'ws_connections counts one on each instance');
$a1->send({type => 'message', client_id => 'm1', content => 'hello', receiver_id => $bob->{id}});
my $ack = $a1->next_frame(sub { ($_->{client_id} // '') eq 'm1' }) // {};
is($ack->{type}, 'ack', 'a message over the WebSocket is acknowledged');
ok($b2->next_frame(sub { $_->{type} eq 'message' && $_->{id} eq ($ack->{id} // '') }), 'and delivered on the other instance');
my $m4 = scrape('after a WebSocket message');
# in: 2 pings + the message; out: 2 pongs, the ack, the delivery (and presence frames).
cmp_ok(val($m4, 'chatd_ws_frames_received_total') - val($m2, 'chatd_ws_frames_received_total'), '>=', 3,
    'frames_received_total counts the client frames');
cmp_ok(val($m4, 'chatd_ws_frames_sent_total') - val($m2, 'chatd_ws_frames_sent_total'), '>=', 4,
    'frames_sent_total counts the pongs, the ack and the delivery');
ok(Chatd::WsClient::wait_until(sub { val(scrape('online users'), 'chatd_online_users') >= 2 }, 30),
    'chatd_online_users shows both users online');
$_->close for $a1, $b2;
ok(Chatd::WsClient::wait_until(sub { val(scrape('closed'), 'chatd_ws_connections') == val($m2, 'chatd_ws_connections') }, 30),
    'ws_connections drops back when both close');

# Another client address: nginx refuses it (the location allows METRICS_ALLOW only).
my $other = Mojo::UserAgent->new(socket_options => {LocalAddr => '127.0.0.2'}, request_timeout => 10);
my $res = $other->get($s->url('/metrics'))->res;
is($res->code, 403, '/metrics from 127.0.0.2 is 403');
is(($res->json // {})->{detail}, 'Forbidden', 'with a JSON detail');
is($other->get($s->url('/health'))->res->code, 200, 'while the rest of the API answers 127.0.0.2');

Chatd::Test::done();

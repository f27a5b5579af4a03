package Chatd::WsClient;

# WebSocket clients for the wsd tests: several at once on the Mojo::IOLoop singleton, each
# collecting the frames it receives, with bounded waits (no sleeps).
#
#   my $u = Chatd::WsClient::register($s, 'alice');          # {id, token, refresh, auth}
#   my $res = Chatd::WsClient::api($s, $u, POST => '/api/v1/messages', json => {...});
#   my $c = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($u->{id}, token => $u->{token})));
#   my $c = Chatd::WsClient->connect_user($s, $u, 'alice');   # the same, plus "alice connected"
#   $c->send({type => 'ping'});
#   my $f = $c->next_frame(sub { $_->{type} eq 'pong' }, 5);   # first matching frame, or undef
#   $c->close;
#
# Frames are kept in $c->frames (decoded JSON, arrival order). A connection that the server
# closes records close_code and close_reason.

use strict;
use warnings;

use Digest::SHA ();
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json);
use Mojo::UserAgent;
use Mojo::Util ();
use Test::More ();
use Time::HiRes ();

my $UA = Mojo::UserAgent->new(connect_timeout => 5, inactivity_timeout => 60, request_timeout => 10);
my $N  = 0;

# The shared Mojo::UserAgent (for non-blocking REST calls next to the WebSockets).
sub ua { $UA }

# Registers a user through REST: {id, token (access), refresh, auth (Authorization header)}.
sub register {
    my ($s, $name) = @_;
    $name .= '_' . $$ . '_' . ++$N unless $name =~ /_\d+$/;
    my $tx = $UA->post($s->url('/api/v1/auth/register'),
        json => {email => "$name\@example.com", username => $name, password => 'password123'});
    my $j = $tx->res->json;
    die "register $name: " . $tx->res->code . ' ' . $tx->res->body . "\n" unless $tx->res->code == 201;
    return {
        id      => $j->{user}{id},
        name    => $name,
        token   => $j->{access_token},
        refresh => $j->{refresh_token},
        auth    => {Authorization => "Bearer $j->{access_token}"},
    };
}

# An HS256 access token of user $sub signed with the stack's SECRET_KEY, as fcgi would issue
# one but without a login session (no sid) unless %claims says otherwise; exp in 600 s by default.
sub forge_access {
    my ($s, $sub, %claims) = @_;
    my $b64 = sub { my $b = Mojo::Util::b64_encode(shift, ''); $b =~ tr{+/}{-_}; $b =~ s/=+$//; $b };
    my $now = time;
    my $h = $b64->(Mojo::JSON::encode_json({alg => 'HS256', typ => 'JWT'}));
    my $p = $b64->(Mojo::JSON::encode_json({sub => $sub, type => 'access', aud => ['fastapi-users:auth'],
        iat => $now, exp => $now + 600, jti => Mojo::Util::md5_sum(rand), %claims}));
    return "$h.$p." . $b64->(Digest::SHA::hmac_sha256("$h.$p", $s->secret_key));
}

# The claims of a JWT (its payload, not checked).
sub claims_of {
    my $tok = shift // '';
    my $p = (split /\./, $tok)[1] // return {};
    $p =~ tr{-_}{+/};
    return eval { decode_json(Mojo::Util::b64_decode($p . '=' x (-length($p) % 4))) } // {};
}

# A REST call as user $u: api($s, $u, 'POST', '/api/v1/messages', json => {...}). Returns the
# Mojo::Message::Response (code, json).
sub api {
    my ($s, $u, $method, $path, @args) = @_;
    my $tx = $UA->build_tx($method => $s->url($path) => $u->{auth} => @args);
    return $UA->start($tx)->res;
}

# Runs the loop until $cond returns true (returns that) or $secs pass (returns undef).
sub wait_until {
    my ($cond, $secs) = @_;
    my $loop     = Mojo::IOLoop->singleton;
    my $deadline = Time::HiRes::time() + ($secs // 10);
    my $tick     = $loop->recurring(0.05 => sub { });    # one_tick returns at least this often
    my $v;
    until ($v = $cond->()) {
        last if Time::HiRes::time() > $deadline;
        $loop->one_tick;
    }
    $loop->remove($tick);
    return $v || undef;
}

# Opens a WebSocket to $url; waits until it is open or refused (at most 10 s). Options:
# headers => {...}, first => [messages sent as soon as the upgrade is done].
sub start {
    my ($class, $url, %o) = @_;
    my $self = bless {frames => [], closed => 0, url => $url}, $class;
    $UA->websocket($url => $o{headers} // {} => sub {
        my (undef, $tx) = @_;
        $self->{tx} = $tx;
        if (!$tx->is_websocket) {
            $self->{closed} = 1;
            $self->{status} = $tx->res->code;
            return;
        }
        $tx->on(text => sub {
            my $j = eval { decode_json($_[1]) };
            push @{$self->{frames}}, $j // {type => '(not json)', raw => $_[1]};
        });
        $tx->on(finish => sub {
            my (undef, $code, $reason) = @_;
            @$self{qw(closed close_code close_reason)} = (1, $code, $reason);
        });
        # Sent right after the 101, before the server could have finished authenticating.
        $tx->send(ref $_ ? {json => $_} : $_) for @{$o{first} // []};
    });
    wait_until(sub { $self->{tx} }, 10);
    return $self;
}

# A client of user $u on stack $s, authenticated: one assertion, "$title connected", true once
# a ping was answered. %q goes into the connect path (since => N).
#   sub ws { Chatd::WsClient->connect_user($s, @_) }     # then: my $c = ws($alice, 'alice');
sub connect_user {
    my ($class, $s, $u, $title, %q) = @_;
    my $c = $class->open_user($s, $u, %q);
    local $Test::Builder::Level = $Test::Builder::Level + 2;
    Test::More::ok($c->sync_point, "$title connected");
    return $c;
}

# A WebSocket of user $u (from register) on stack $s, with ?since= etc. from %q.
sub open_user {
    my ($class, $s, $u, %q) = @_;
    return $class->start($s->ws_url($s->ws_connect_path($u->{id}, token => $u->{token}, %q)));
}

sub frames       { $_[0]{frames} }
sub closed       { $_[0]{closed} }
sub close_code   { $_[0]{close_code} }
sub close_reason { $_[0]{close_reason} }
sub status       { $_[0]{status} }             # HTTP status of a refused upgrade
sub is_open      { $_[0]{tx} && $_[0]{tx}->is_websocket && !$_[0]{closed} }

sub send {
    my ($self, $msg) = @_;
    return unless $self->is_open;
    $self->{tx}->send(ref $msg ? {json => $msg} : $msg);
}

# Frames matching $pred (a sub on $_), in arrival order.
sub grep_frames {
    my ($self, $pred) = @_;
    return grep { local $_ = $_; $pred->() } @{$self->{frames}};
}

# The first frame matching $pred, removed from frames; waits up to $secs for it. undef if none.
sub next_frame {
    my ($self, $pred, $secs) = @_;
    my $found;
    wait_until(sub {
        for my $i (0 .. $#{$self->{frames}}) {
            local $_ = $self->{frames}[$i];
            next unless $pred->();
            $found = splice @{$self->{frames}}, $i, 1;
            return 1;
        }
        return $self->{closed};
    }, $secs // 10);
    return $found;
}

# Waits until the server closed the connection; true when it did.
sub wait_closed { my ($self, $secs) = @_; return wait_until(sub { $self->{closed} }, $secs // 10) }

# A ping answered with pong: everything sent before it was processed (the server answers in order).
sub sync_point {
    my ($self, $secs) = @_;
    $self->send({type => 'ping'});
    return $self->next_frame(sub { $_->{type} eq 'pong' }, $secs // 10);
}

sub close {
    my $self = shift;
    return unless $self->{tx};
    $self->{tx}->finish if $self->is_open;
    wait_until(sub { $self->{closed} }, 5);
}

1;

# forgot-password and request-verify-token (issue 8 item 7): rate-limited per IP and per
# address (429 with Retry-After), mail sent off the request path by the mailer process
# through mail_queue (delivered after the 202, retried with backoff, bounded attempts,
# kept across a mailer crash), a hanging SMTP server does not slow the 202 down, existing
# and unknown addresses answer in the same time, and an email change (PATCH /users/me and
# the superuser's PATCH /users/{id}) clears is_verified and mails the new address.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use IO::Socket::INET;
use List::Util qw(sum);
use Mojo::JSON qw(decode_json);
use Mojo::Util qw(b64_decode);
use Time::HiRes qw(time);

my $PW = 'correct horse 1';

sub claims_of {
    my (undef, $p) = split /\./, shift // '';
    $p //= '';
    $p =~ tr{-_}{+/};
    return eval { decode_json(b64_decode($p . '=' x (-length($p) % 4))) } // {};
}
sub token_of { my $m = shift // ''; return $m =~ /^Token: (\S+)\r$/m ? $1 : undef }
sub median { my @v = sort { $a <=> $b } @_; return @v ? ($v[$#v >> 1] + $v[@v >> 1]) / 2 : 0 }

# ---- limits, delivery, restarts ------------------------------------------------------------

my $s = Chatd::Test->new(env => {RATE_LIMIT_MAIL_PER_HOUR => 8, RATE_LIMIT_MAIL_ADDRESS_PER_HOUR => 3})->start;
my $t = $s->t;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

$t->post_ok($s->url('/auth/register'), json => {email => 'vic@example.com', username => 'vic', password => $PW})
  ->status_is(201, 'vic registers');
my $vic = $t->tx->res->json('/id');

# The mailer is a process of its own: queued mail survives its crash.
my $fcgi_log = $s->log_file('fcgi');
sub mailer_pid {
    my @pids = (Chatd::Test::_slurp($fcgi_log) // '') =~ /chat-fcgi\[(\d+)\] mailer: ready/g;
    return $pids[-1];
}
my $mpid = $s->wait_for(\&mailer_pid, 10, 'the mailer to start');
ok($mpid && kill(0, $mpid), 'restart: the mailer runs') or diag($s->log_tail('fcgi'));
$s->psql("INSERT INTO users (email, username, hashed_password) SELECT 'wendy\@example.com', 'wendy', hashed_password "
       . "FROM users WHERE id = '$vic'");
kill 'STOP', $mpid;
$s->new_t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'wendy@example.com'})
  ->status_is(202, 'restart: request-verify-token is 202 while the mailer is frozen');
is(sql(q{SELECT status FROM mail_queue q JOIN users u ON u.id = q.user_id WHERE u.username = 'wendy'}),
   'pending', 'restart: the mail waits in mail_queue');
kill 'KILL', $mpid;
kill 'CONT', $mpid;
my $new = $s->wait_for(sub { my $p = mailer_pid(); $p && $p != $mpid ? $p : undef }, 20, 'a new mailer');
ok($new, 'restart: the fcgi master replaced the killed mailer');
my @w = $s->mails_to('wendy@example.com');
is(scalar @w, 1, 'restart: the new mailer sent the queued mail');
like($w[0] // '', qr/^Subject: Verify your e-mail address\r$/m, 'restart: a verify mail');
is(claims_of(token_of($w[0]))->{email}, 'wendy@example.com', 'restart: its token names the address');

for my $i (1 .. 3) {
    $t->post_ok($s->url('/auth/forgot-password'), json => {email => 'vic@example.com'})
      ->status_is(202, "burst: forgot-password $i of 3 is 202");
}
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'vic@example.com'})
  ->status_is(429, 'burst: the 4th forgot-password for one address is 429')
  ->json_is('/detail' => 'Too Many Requests', 'burst: 429 detail');
my $ra = $t->tx->res->headers->header('Retry-After') // '';
ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 3600, 'burst: Retry-After within the hour') or diag("Retry-After '$ra'");
$t->post_ok($s->url('/auth/request-verify-token'), json => {email => 'VIC@Example.com'})
  ->status_is(429, 'burst: request-verify-token shares the budget of the address, whatever its case');
is(sql("SELECT count(*) FROM mail_queue WHERE user_id = '$vic'"), 3, 'burst: three mails queued, not more');
my @m = $s->mails_to('vic@example.com');
is(scalar @m, 3, 'burst: the mailer sent exactly three mails');
like($m[0] // '', qr/^Subject: Reset your password\r$/m, 'burst: they are reset mails');
is(claims_of(token_of($m[0]))->{sub}, $vic, 'burst: the reset token is for vic');
is(sql("SELECT string_agg(DISTINCT status || ':' || attempts, ',') FROM mail_queue WHERE user_id = '$vic'"),
   'sent:1', 'burst: each row is marked sent after one attempt');

# Unknown addresses spend the same budgets: two more requests reach the IP's 8 (wendy's
# request above was the first).
$t->post_ok($s->url('/auth/forgot-password'), json => {email => "nobody$_\@example.com"})
  ->status_is(202, "per IP: request $_ for an unknown address is 202") for 1 .. 2;
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'fresh@example.com'})
  ->status_is(429, 'per IP: the 9th request from one IP is 429, even for a fresh address');
$t->post_ok($s->url('/auth/forgot-password'), json => {email => 'bad'})
  ->status_is(422, 'per IP: a malformed address is still 422 (checked before the limit)');

# ---- an email change clears is_verified and mails the new address -------------------------

$t->post_ok($s->url('/auth/jwt/login'), form => {username => 'vic', password => $PW})->status_is(200, 'vic logs in');
my $tok = $t->tx->res->json('/access_token');
$s->psql("UPDATE users SET is_verified = true WHERE id = '$vic'");
$t->patch_ok($s->url('/users/me'), {Authorization => "Bearer $tok"}, json => {email => 'vic.new@example.com'})
  ->status_is(200, 'email change: 200')->json_is('/is_verified' => Mojo::JSON::false, 'email change: is_verified false');
@m = $s->mails_to('vic.new@example.com');
is(scalar @m, 1, 'email change: one verification mail to the new address');
my $vtok = token_of($m[0]);
is(claims_of($vtok)->{email}, 'vic.new@example.com', 'email change: the token is for the new address');
is(scalar($s->mails_to('vic@example.com')), 3, 'email change: nothing more to the old address');
$t->post_ok($s->url('/auth/verify'), json => {token => $vtok})->status_is(200, 'email change: the mailed token verifies')
  ->json_is('/is_verified' => Mojo::JSON::true, 'email change: verified again');

$s->psql("UPDATE users SET is_superuser = true WHERE id = '$vic'");
$t->post_ok($s->url('/auth/register'), json => {email => 'zed@example.com', username => 'zed', password => $PW})
  ->status_is(201, 'zed registers');
my $zed = $t->tx->res->json('/id');
$s->psql("UPDATE users SET is_verified = true WHERE id = '$zed'");
$t->patch_ok($s->url("/users/$zed"), {Authorization => "Bearer $tok"}, json => {email => 'zed2@example.com'})
  ->status_is(200, 'superuser email change: 200')
  ->json_is('/is_verified' => Mojo::JSON::false, 'superuser email change without is_verified: not verified');
is(scalar($s->mails_to('zed2@example.com')), 1, 'superuser email change: a verification mail to the new address');
$t->patch_ok($s->url("/users/$zed"), {Authorization => "Bearer $tok"}, json => {email => 'zed3@example.com', is_verified => \1})
  ->status_is(200, 'superuser email change with is_verified true: 200')
  ->json_is('/is_verified' => Mojo::JSON::true, 'superuser email change with is_verified true: verified');
is(scalar($s->mails_to('zed3@example.com')), 0, 'superuser email change with is_verified true: no mail');

# ---- a hanging SMTP server, and timing-neutral answers -------------------------------------

# A server that accepts connections and never greets: libcurl waits 10 s for the banner.
my $smtp_port = Chatd::Test::free_port();
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $smtp_port, Listen => 64, ReuseAddr => 1)
  or die "listen on $smtp_port: $!";
my $h = Chatd::Test->new(name => 'smtp', parts => 'redis fcgi nginx',
    env => {SMTP_URL => "smtp://127.0.0.1:$smtp_port"})->start;
my $ht = $h->new_t;
$ht->post_ok($h->url('/auth/register'), json => {email => 'amy@example.com', username => 'amy', password => $PW})
  ->status_is(201, 'smtp: amy registers');
my $t0 = time;
$ht->post_ok($h->url('/auth/forgot-password'), json => {email => 'amy@example.com'})
  ->status_is(202, 'smtp: forgot-password is 202 while SMTP hangs');
my $took = time - $t0;
cmp_ok($took, '<', 3, 'smtp: ... and answers at once (SMTP waits 10 s)') or diag("took $took s");
my $row = sub { my $v = $h->psql(q{SELECT status || ':' || attempts || ':' || coalesce(last_error, '') || ':' }
        . q{|| (next_at > now()) FROM mail_queue ORDER BY id LIMIT 1}); chomp $v; return $v };
ok($h->wait_for(sub { $row->() =~ /^pending:1:delivery failed:t(?:rue)?$/ }, 60, 'the first attempt to fail'),
   'smtp: the failed attempt leaves the mail pending, with a later next attempt') or diag($row->());
$h->psql(q{UPDATE mail_queue SET attempts = 4, next_at = now()});
ok($h->wait_for(sub { $row->() =~ /^failed:5:delivery failed:/ }, 60, 'the last attempt to fail'),
   'smtp: after 5 attempts the mail is marked failed') or diag($row->());

# 50 existing and 50 unknown addresses, interleaved: same work on the request path.
$h->psql(q{INSERT INTO users (email, username, hashed_password) }
       . q{SELECT 'known' || g || '@example.com', 'known' || g, hashed_password FROM users, }
       . q{generate_series(1, 50) g WHERE username = 'amy'});
my (%wall, %proc);
for my $i (1 .. 50) {
    for my $kind (qw(known unknown)) {
        my $addr = $kind eq 'known' ? "known$i\@example.com" : "stranger$i\@example.com";
        my $t1 = time;
        $ht->post_ok($h->url('/auth/forgot-password'), json => {email => $addr});
        push @{$wall{$kind}}, time - $t1;
        push @{$proc{$kind}}, $ht->tx->res->headers->header('X-Process-Time') // 0;
        $ht->status_is(202, "timing: $kind address $i is 202") unless $ht->tx->res->code == 202;
    }
}
my %med = map { ("wall_$_" => median(@{$wall{$_}}), "proc_$_" => median(@{$proc{$_}})) } qw(known unknown);
note(sprintf('timing: median X-Process-Time known %.3f ms, unknown %.3f ms; wall known %.3f ms, unknown %.3f ms',
    map { 1000 * $med{$_} } qw(proc_known proc_unknown wall_known wall_unknown)));
my $noise = sub { my ($a, $b) = @_; my $m = $a < $b ? $a : $b; return abs($a - $b) < (0.002 > $m / 2 ? 0.002 : $m / 2) };
ok($noise->($med{proc_known}, $med{proc_unknown}), 'timing: median X-Process-Time of known and unknown within noise')
  or diag(explain \%med);
ok($noise->($med{wall_known}, $med{wall_unknown}), 'timing: median wall time of known and unknown within noise')
  or diag(explain \%med);
is($h->psql(q{SELECT count(*) FROM mail_queue WHERE to_addr LIKE 'known%' AND status <> 'skipped'}) + 0, 50,
   'timing: 50 mails queued for the known');
is($h->psql(q{SELECT count(*) FROM mail_queue WHERE to_addr LIKE 'stranger%' AND status = 'skipped'}) + 0, 50,
   'timing: 50 skipped rows, no mail, for the unknown');

$_->finish for $s, $h;
close $hang;
Chatd::Test::done();

# Uploads (API.md "Uploads", issue 9), all through nginx: round trips of each allowed type,
# nginx's Range/ETag/304 on the X-Accel-Redirect path, type sniffing, size limits with
# nothing left on disk, client file names that never reach the disk, bad names on GET, the
# multipart corpus of t/data/multipart/, concurrent uploads, media_url checks in SQL.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Digest::SHA qw(sha256_hex);
use Mojo::Promise;

my $MAX = 200_000;
my $s   = Chatd::Test->new(env => {MAX_UPLOAD_SIZE => $MAX})->start;
my $t   = $s->t;
my $dir = $s->env('UPLOAD_DIR');
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

sub slurp_raw {
    open my $fh, '<:raw', shift or die $!;
    local $/;
    return scalar <$fh>;
}
my $data = "$FindBin::Bin/data";
my %sample = map { $_ => slurp_raw("$data/uploads/sample.$_") } qw(png jpg gif webp mp4);
my %evil   = map { $_ => slurp_raw("$data/uploads/evil.$_") } qw(svg html sh);

# Everything in UPLOAD_DIR, temp files included.
sub dir_files {
    opendir my $dh, $dir or die "$dir: $!";
    return sort grep { $_ ne '.' && $_ ne '..' } readdir $dh;
}

sub upload {
    my ($user, $bytes, %o) = @_;
    my $file = {content => $bytes, filename => $o{filename} // 'x.bin',
        'Content-Type' => $o{type} // 'application/octet-stream'};
    $t->post_ok($s->url('/api/v1/upload'), $user ? $user->{auth} : {}, form => {file => $file});
    return $t->tx->res;
}

my ($alice, $bob) = map { $s->register($_) } qw(alice bob);

# ---- 401 -------------------------------------------------------------------------------
upload(undef, $sample{png}, filename => 'a.png', type => 'image/png');
$t->status_is(401, 'upload without credentials is 401');
is_deeply([dir_files()], [], 'nothing stored for an unauthenticated upload');

# ---- round trips -----------------------------------------------------------------------
my %want = (png => 'image/png', jpg => 'image/jpeg', gif => 'image/gif', webp => 'image/webp',
    mp4 => 'video/mp4');
my %stored;
for my $ext (sort keys %want) {
    my $res = upload($alice, $sample{$ext}, filename => "photo.$ext", type => $want{$ext});
    $t->status_is(201, "$ext: upload is 201");
    my $j = $res->json // {};
    like($j->{filename}, qr/^[0-9a-f]{32}\.\Q$ext\E$/, "$ext: stored under a random 128-bit name with .$ext");
    is($j->{url}, "/api/v1/upload/$j->{filename}", "$ext: url names the file");
    is($j->{content_type}, $want{$ext}, "$ext: content_type is the sniffed type");
    is($j->{size}, length $sample{$ext}, "$ext: size is the file's");
    is(sql("select owner_id || ' ' || content_type || ' ' || size || ' ' || sha256 from uploads "
          . "where filename = '$j->{filename}'"),
        "$alice->{id} $want{$ext} " . length($sample{$ext}) . ' ' . sha256_hex($sample{$ext}),
        "$ext: row has owner, type, size and sha256");
    $stored{$ext} = $j;

    $t->get_ok($s->url($j->{url}))->status_is(200, "$ext: download is 200");
    my $h = $t->tx->res->headers;
    ok($t->tx->res->body eq $sample{$ext}, "$ext: bytes come back identical");
    is($h->content_type, $want{$ext}, "$ext: Content-Type from the row");
    is($h->header('X-Content-Type-Options'), 'nosniff', "$ext: nosniff");
    like($h->header('Content-Security-Policy') // '', qr/default-src 'none'/, "$ext: CSP default-src 'none'");
    is($h->header('Content-Disposition'), 'inline', "$ext: Content-Disposition inline");
    like($h->cache_control // '', qr/max-age=31536000.*immutable/, "$ext: long immutable Cache-Control");
    ok($h->etag && $h->last_modified, "$ext: ETag and Last-Modified");
    ok(!defined $h->header('X-Accel-Redirect'), "$ext: X-Accel-Redirect does not leak to the client");
}
my $png = $stored{png};

# ---- nginx's conditional and range answers ---------------------------------------------
$t->get_ok($s->url($png->{url}), {Range => 'bytes=0-9'})->status_is(206, 'Range request is 206');
is($t->tx->res->body, substr($sample{png}, 0, 10), 'Range: the first 10 bytes');
like($t->tx->res->headers->content_range // '', qr{^bytes 0-9/\d+$}, 'Range: Content-Range');
$t->get_ok($s->url($png->{url}));
my ($etag, $lm) = ($t->tx->res->headers->etag, $t->tx->res->headers->last_modified);
$t->get_ok($s->url($png->{url}), {'If-None-Match' => $etag})->status_is(304, 'If-None-Match → 304');
$t->get_ok($s->url($png->{url}), {'If-Modified-Since' => $lm})->status_is(304, 'If-Modified-Since → 304');
$t->head_ok($s->url($png->{url}))->status_is(200, 'HEAD is 200');
is($t->tx->res->headers->content_length, length $sample{png}, 'HEAD: Content-Length of the file');

# ---- type sniffing ---------------------------------------------------------------------
my $allowed = 'image/jpeg, image/png, image/gif, image/webp, video/mp4, video/webm';
my @before = dir_files();
my $rows   = sql('select count(*) from uploads');
for my $kind (sort keys %evil) {
    upload($alice, $evil{$kind}, filename => "cute.png", type => 'image/png');
    $t->status_is(400, "$kind declared image/png is 400")
      ->json_is('/detail', "File type not allowed. Allowed types: $allowed", "$kind: the spec's detail");
}
is_deeply([dir_files()], \@before, 'nothing stored for refused types (temp files included)');
is(sql('select count(*) from uploads'), $rows, 'no row for refused types');

my $res = upload($alice, $sample{jpg}, filename => 'holiday.png', type => 'application/octet-stream');
$t->status_is(201, 'a JPEG declared octet-stream and named .png is accepted');
is($res->json->{content_type}, 'image/jpeg', 'it is stored as image/jpeg');
like($res->json->{filename}, qr/^[0-9a-f]{32}\.jpg$/, 'with a .jpg name');
$t->get_ok($s->url($res->json->{url}))->content_type_is('image/jpeg', 'and served as image/jpeg');

# ---- size limits -----------------------------------------------------------------------
my $jpeg_pad = sub { my $n = shift; substr($sample{jpg}, 0, -2) . ("\0" x ($n - length $sample{jpg})) . "\xff\xd9" };
$res = upload($alice, $jpeg_pad->($MAX), filename => 'max.jpg', type => 'image/jpeg');
$t->status_is(201, 'exactly MAX_UPLOAD_SIZE is 201');
is($res->json->{size}, $MAX, 'size is MAX_UPLOAD_SIZE');
@before = dir_files();
upload($alice, $jpeg_pad->($MAX + 1), filename => 'over.jpg', type => 'image/jpeg');
$t->status_is(413, 'one byte over MAX_UPLOAD_SIZE is 413')
  ->json_is('/detail', "File size exceeds maximum allowed size of $MAX bytes", '413: the spec detail');
is_deeply([dir_files()], \@before, '413: nothing left in UPLOAD_DIR (temp files included)');
upload($alice, $jpeg_pad->($MAX + 100_000), filename => 'far.jpg', type => 'image/jpeg');
$t->status_is(413, 'far over the limit: nginx refuses the body')
  ->json_is('/detail', "File size exceeds maximum allowed size of $MAX bytes", 'nginx 413: the same detail');
is_deeply([dir_files()], \@before, 'nginx 413: nothing left in UPLOAD_DIR');

upload($alice, '', filename => 'empty.jpg', type => 'image/jpeg');
$t->status_is(400, 'empty file is 400')->json_is('/detail', 'Empty file', 'empty file: detail');
$t->post_ok($s->url('/api/v1/upload'), $alice->{auth}, form => {other => 'x'})
  ->status_is(422, 'missing file field is 422')->json_is('/detail/0/loc', ['body', 'file'], '422 names the file field');
$t->post_ok($s->url('/api/v1/upload'), $alice->{auth}, json => {file => 'x'})
  ->status_is(422, 'a JSON body is 422 (no file field)');
is_deeply([dir_files()], \@before, 'nothing stored by empty or missing files');

# ---- client file names never reach the disk -------------------------------------------
for my $name ('../../x.png', 'a/b.png', "nul\0.png", 'y' x 300 . '.png', '.env', '..') {
    (my $title = $name) =~ s/\0/\\0/g;
    $title = substr($title, 0, 20) . '...' if length $title > 20;
    $res = upload($alice, $sample{png}, filename => $name, type => 'image/png');
    $t->status_is(201, "client filename '$title' is accepted");
    like($res->json->{filename} // '', qr/^[0-9a-f]{32}\.png$/, "'$title': the stored name is ours");
}
my @odd = grep { !/^[0-9a-f]{32}\.(?:png|jpg|gif|webp|mp4)$/ } dir_files();
is_deeply(\@odd, [], 'UPLOAD_DIR holds only random names');
ok(!-e "$dir/../x.png" && !-e "$dir/../../x.png" && !-e "$dir/a", 'nothing written outside UPLOAD_DIR');

# ---- GET of bad names ------------------------------------------------------------------
open my $fh, '>', "$dir/.env" or die;
print $fh "SECRET=1\n";
close $fh;
open $fh, '>', "$dir/.tmp-0123" or die;
close $fh;
for my $path ('/api/v1/upload/0123456789abcdef0123456789abcdef.png', '/api/v1/upload/.env',
    '/api/v1/upload/.tmp-0123', '/api/v1/upload/..%2f..%2fstack.env', '/api/v1/upload/%2e%2e',
    '/api/v1/upload/x%20y.png', "/__uploads/$png->{filename}", '/__uploads/.env',
    '/uploads/' . $png->{filename}, '/api/v1/upload/../../stack.env')
{
    $t->get_ok($s->url($path))->status_is(404, "GET $path is 404");
    unlike($t->tx->res->body, qr/SECRET|DATABASE_URL|\x89PNG/, "GET $path shows no file");
}
$t->get_ok($s->url('/api/v1/upload/a%00b'))->status_is(400, 'GET with %00 in the path: nginx refuses it (400)');
unlink "$dir/.env", "$dir/.tmp-0123";

# ---- the multipart corpus --------------------------------------------------------------
for my $f (sort glob "$data/multipart/*.mp") {
    my ($want, $name) = $f =~ m{/(\d{3})-([^/]+)\.mp$} or next;
    $t->post_ok($s->url('/api/v1/upload'),
        {%{$alice->{auth}}, 'Content-Type' => 'multipart/form-data; boundary="XyZ-bound"'}, slurp_raw($f))
      ->status_is($want, "corpus $name: $want");
    is($t->tx->res->json->{content_type}, 'image/jpeg', "corpus $name: the file part is the JPEG")
      if $want == 201;
}
$t->post_ok($s->url('/api/v1/upload'),
    {%{$alice->{auth}}, 'Content-Type' => 'multipart/form-data; charset=utf-8; BOUNDARY=XyZ-bound'},
    slurp_raw("$data/multipart/201-plain.mp"))->status_is(201, 'unquoted boundary after another parameter');
$t->post_ok($s->url('/api/v1/upload'), {%{$alice->{auth}}, 'Content-Type' => 'multipart/form-data'},
    slurp_raw("$data/multipart/201-plain.mp"))->status_is(422, 'multipart without a boundary is 422');
is_deeply([grep {/^\./} dir_files()], [], 'no temp file left by the corpus');

# ---- 8 concurrent uploads --------------------------------------------------------------
my $ua = $t->ua;
my @p = map {
    $ua->post_p($s->url('/api/v1/upload'), $bob->{auth},
        form => {file => {content => $sample{gif}, filename => "c$_.gif", 'Content-Type' => 'image/gif'}})
} 1 .. 8;
my @names;
Mojo::Promise->all(@p)->then(sub { @names = map { $_->[0]->res->code == 201 ? $_->[0]->res->json->{filename} : () } @_ })
  ->wait;
is(scalar @names, 8, '8 concurrent uploads all land');
my %uniq = map { $_ => 1 } @names;
is(scalar keys %uniq, 8, '8 concurrent uploads: distinct names');
is(sql("select count(*) from uploads where owner_id = '$bob->{id}'"), 8, '8 concurrent uploads: 8 rows');

# ---- media_url of messages (SQL) --------------------------------------------------------
my $mp4 = $stored{mp4};
sub media_ok {
    my ($url, $type) = map { defined $_ ? "'$_'" : 'NULL' } @_;
    return sql("select chatd_upload_media_ok($url, $type)");
}
is(media_ok($png->{url}, 'image'), 't', 'media_ok: an image upload as image');
is(media_ok($mp4->{url}, 'video'), 't', 'media_ok: a video upload as video');
is(media_ok($png->{url}, undef), 't', 'media_ok: no media_type claims nothing');
is(media_ok($png->{url}, 'video'), 'f', 'media_ok: an image upload claimed as video');
is(media_ok($mp4->{url}, 'image'), 'f', 'media_ok: a video upload claimed as image');
is(media_ok($png->{url}, 'audio'), 'f', 'media_ok: an unknown family');
is(media_ok('/api/v1/upload/0123456789abcdef0123456789abcdef.png', 'image'), 'f', 'media_ok: not an upload');
is(media_ok("https://evil.example$png->{url}", 'image'), 'f', 'media_ok: another host in front');
is(media_ok("$png->{url}?x=1", 'image'), 'f', 'media_ok: anything after the name');
is(media_ok("/x$png->{url}", 'image'), 'f', 'media_ok: anything before the path');
is(media_ok(undef, 'image'), 'f', 'media_ok: NULL url');

$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'pic', receiver_id => $bob->{id}, media_url => $png->{url}, media_type => 'image'})
  ->status_is(201, 'a message with an uploaded media_url is 201');
$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'pic', receiver_id => $bob->{id},
        media_url => '/api/v1/upload/0123456789abcdef0123456789abcdef.png', media_type => 'image'})
  ->status_is(422, 'a message with a media_url that is no upload is 422')
  ->json_is('/detail/0/msg', 'media_url must be a file uploaded to this server', 'media_url that is no upload: detail');

# media_type must be the family of the stored type (schema/0013), over REST and with the
# absolute form of the URL too.
$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'pic', receiver_id => $bob->{id}, media_url => $png->{url}, media_type => 'video'})
  ->status_is(422, 'an image upload sent as media_type video is 422')
  ->json_is('/detail/0/msg', 'media_type does not match the uploaded file', 'media_type mismatch: detail');
$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'clip', receiver_id => $bob->{id}, media_url => $mp4->{url}, media_type => 'image'})
  ->status_is(422, 'a video upload sent as media_type image is 422');
$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'clip', receiver_id => $bob->{id}, media_url => $s->url($mp4->{url}), media_type => 'video'})
  ->status_is(201, 'a video upload by its absolute URL as media_type video is 201');
$t->post_ok($s->url('/api/v1/messages'), $alice->{auth},
    json => {content => 'pic', receiver_id => $bob->{id}, media_url => $s->url($png->{url}), media_type => 'video'})
  ->status_is(422, 'an image upload by its absolute URL as media_type video is 422');
is(sql("select count(*) from messages where sender_id = '$alice->{id}' and content in ('pic', 'clip')"), 2,
    'media_type mismatches stored nothing');

# ---- the old version's upload test (a JPEG, expects 201 and a url) ----------------------
$t->post_ok($s->url('/api/v1/upload'), $alice->{auth},
    form => {file => {content => $sample{jpg}, filename => 'test.jpg', 'Content-Type' => 'image/jpeg'}})
  ->status_is(201, 'old version: JPEG upload is 201');
ok(exists $t->tx->res->json->{url}, 'old version: the answer has a url');

# ---- the per-user rate limit -------------------------------------------------------------
# One worker and the default MAX_UPLOAD_SIZE (10 MiB), for the memory check below too.
my $l = Chatd::Test->new(name => 'limited', fcgi_workers => 1, env => {RATE_LIMIT_UPLOADS_PER_MINUTE => 2})->start;
my $lt = $l->t;
my $carol = $l->register('carol');
my $dave  = $l->register('dave');
for my $i (1 .. 2) {
    $lt->post_ok($l->url('/api/v1/upload'), $carol->{auth},
        form => {file => {content => $sample{png}, filename => 'a.png'}})->status_is(201, "rate limit: upload $i is 201");
}
$lt->post_ok($l->url('/api/v1/upload'), $carol->{auth}, form => {file => {content => $sample{png}, filename => 'a.png'}})
  ->status_is(429, 'rate limit: the third upload in a minute is 429');
ok($lt->tx->res->headers->header('Retry-After'), 'rate limit: Retry-After');
$lt->post_ok($l->url('/api/v1/upload'), $dave->{auth}, form => {file => {content => $sample{png}, filename => 'a.png'}})
  ->status_is(201, 'rate limit: per user (another user still uploads)');

# ---- a worker never holds the file: its peak RSS barely moves during a 9 MiB upload --------
# Argon2 (register) leaves a worker's heap large enough to hide any growth: measure a fresh
# worker, forked after a graceful SIGTERM to the one that did the hashing.
sub vm_kb { my ($pid, $k) = @_; my $s = Chatd::Test::_slurp("/proc/$pid/status") // ''; return $s =~ /^Vm$k:\s+(\d+)/m ? $1 : undef }
my $erin   = $l->register('erin');
my $master = $l->pid('fcgi');
my ($old)  = Chatd::Test::children($master);
ok($old && kill('TERM', $old), 'memory: the worker that hashed passwords is told to stop');
my $worker;
ok($l->wait_for(sub { ($worker) = grep { $_ != $old && Chatd::Test::alive($_) } Chatd::Test::children($master); $worker },
    20, 'a fresh fcgi worker'), 'memory: the master forks a fresh worker');
$lt->post_ok($l->url('/api/v1/upload'), $erin->{auth}, form => {file => {content => $sample{png}, filename => 'a.png'}})
  ->status_is(201, 'memory: a warm-up upload (libmagic loaded)');
SKIP: {
    skip 'no worker pid in /proc', 3 unless $worker && defined vm_kb($worker, 'RSS');
    my $idle = vm_kb($worker, 'RSS');
    # "5" resets VmHWM to the current RSS.
    my $cr;
    my $reset = open($cr, '>', "/proc/$worker/clear_refs") && print($cr "5\n") && close($cr);
    skip "cannot reset the peak RSS: $!", 3 unless $reset && vm_kb($worker, 'HWM') - $idle < 64;
    $lt->post_ok($l->url('/api/v1/upload'), $erin->{auth},
        form => {file => {content => $jpeg_pad->(9 << 20), filename => 'big.jpg'}})->status_is(201, 'memory: a 9 MiB upload');
    my $grow = vm_kb($worker, 'HWM') - $idle;
    ok($grow < 2048, "memory: the worker's peak RSS grew by less than 2 MiB during it (+$grow KiB)")
      or diag("worker $worker: idle $idle KiB, peak " . vm_kb($worker, 'HWM') . ' KiB');
}

Chatd::Test::done();

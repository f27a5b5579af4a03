# Fault injection (issue 8, t/lib/Chatd/Faults.pm): UPLOAD_DIR fills up while the senders
# run. UPLOAD_DIR is a 2 MiB tmpfs mounted over the stack's own directory; during the fault a
# filler file takes most of it, uploads take the rest (201) until one no longer fits, a second
# filler takes the last bytes, and every later upload must be refused with 507
# {"detail":"Not enough storage space for the upload"} (not a 500, a crash or a 201 for a
# short file), leaving no temp or partial file in UPLOAD_DIR and no `uploads` row without its
# file. Messages do not touch UPLOAD_DIR: none may be lost. Once the fillers are deleted,
# uploads work again (201, the same bytes back).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;
use Digest::SHA qw(sha256_hex);
use File::Temp ();
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Time::HiRes ();

my $FULL   = 'Not enough storage space for the upload';
my $BIG    = 150 * 1024;    # several fit in what the first filler leaves, not all
my $MOUNTED;                # the tmpfs mount point while mounted

sub slurp_raw {
    open my $fh, '<:raw', shift or die $!;
    local $/;
    return scalar <$fh>;
}

sub try_mount {
    my ($dir, $uid, $gid, $mode) = @_;
    my $out = `mount -t tmpfs -o size=2m,mode=$mode,uid=$uid,gid=$gid chatd-diskfull '$dir' 2>&1`;
    return $? == 0 ? '' : ($out =~ s/\s+$//r || "mount exited $?");
}

# Unmounts (retrying while a worker or nginx may still hold a file open); lazily at last.
sub unmount {
    return unless $MOUNTED;
    for (1 .. 20) {
        last if system('umount', $MOUNTED) == 0;
        Time::HiRes::sleep(0.25);
    }
    system('umount', '-l', $MOUNTED) if system('mountpoint', '-q', $MOUNTED) == 0;
    undef $MOUNTED;
}

# Runs before Chatd::Test's END (compiled later): VAR_DIR is never removed with the tmpfs
# still mounted in it, whatever way the test ends.
END { local $?; unmount() }

# Without the right to mount, skip before any stack exists.
{
    my $probe = File::Temp::tempdir('diskfull-probe-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $err   = try_mount($probe, $>, (split " ", $))[0], '0755');
    plan skip_all => "cannot mount a tmpfs for UPLOAD_DIR (needs root): $err" if $err;
    system('umount', $probe) == 0 or die "umount $probe failed\n";
}

my $s = Chatd::Faults::allow(Chatd::Test->new->start)->allow_5xx(507);
my $dir = $s->env('UPLOAD_DIR');

# Mounted over the directory scripts/stack made, with its owner and mode, so chat-fcgi
# (which writes there) and nginx's workers (which send the files) keep their access.
my @st = stat $dir or die "$dir: $!";
my $err = try_mount($dir, $st[4], $st[5], sprintf('%04o', $st[2] & 07777));
is($err, '', "a 2 MiB tmpfs is mounted on UPLOAD_DIR") or BAIL_OUT("mount: $err");
$MOUNTED = $dir;

my $up  = $s->register('uploader');
my $png = slurp_raw("$FindBin::Bin/data/uploads/sample.png");

# A PNG (libmagic reads the header) of $len bytes, different each time.
my $n = 0;
sub png_of {
    my $len = shift;
    my $pad = join '', map { chr(($_ * 7 + ++$n) % 256) } 1 .. 256;
    my $b   = $png . ("$n:" . $pad) x (1 + int($len / 256));
    return substr($b, 0, $len);
}

sub dir_files {
    opendir my $dh, $dir or die "$dir: $!";
    return sort grep { $_ ne '.' && $_ ne '..' } readdir $dh;
}

sub avail { my $v = (split ' ', (`df -B1 --output=avail '$dir'`)[1] // '')[0]; return $v // 0 }

# One upload from the fault's child process: what came back, and UPLOAD_DIR right after.
sub upload_record {
    my ($ua, $phase, $bytes) = @_;
    my $tx = $ua->post($s->url('/api/v1/upload') => $up->{auth} =>
          form => {file => {content => $bytes, filename => 'x.png', 'Content-Type' => 'image/png'}});
    my $res = $tx->res;
    return {phase => $phase, code => $res->code // 0, type => $res->headers->content_type // '',
        body => $res->body, len => length $bytes, sha => sha256_hex($bytes), files => [dir_files()]};
}

# Fills a file until the filesystem refuses (ENOSPC), or up to $max bytes.
sub fill {
    my ($name, $max) = @_;
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!";
    my $chunk = "\0" x 4096;
    my $done  = 0;
    while (!defined $max || $done < $max) {
        my $w = syswrite($fh, $chunk) or last;
        $done += $w;
    }
    close $fh;
    return $done;
}

my $log = $s->var_dir . '/diskfull-fault.json';
Chatd::Faults::run($s, 'disk-full-uploads', sub {
    my $ua = Mojo::UserAgent->new(request_timeout => 30, inactivity_timeout => 30);
    my @r;
    fill('filler-1', avail() - 4 * $BIG - 64 * 1024);
    # Uploads fill the rest until one does not fit.
    for (1 .. 12) {
        push @r, upload_record($ua, 'filling', png_of($BIG));
        last if $r[-1]{code} != 201;
        Time::HiRes::sleep(0.2);
    }
    fill('filler-2');    # the last bytes: now even a small file cannot be written
    for my $len (($BIG, 4096, 100) x 2) {
        push @r, upload_record($ua, 'full', png_of($len));
        Time::HiRes::sleep(0.3);
    }
    unlink "$dir/filler-1", "$dir/filler-2";
    push @r, upload_record($ua, 'freed', png_of($BIG)) for 1 .. 2;
    open my $fh, '>', $log or die "$log: $!";
    print $fh encode_json(\@r);
    close $fh;
});

my $r = eval { decode_json(slurp_raw($log)) } // [];
my @filling = grep { $_->{phase} eq 'filling' } @$r;
my @full    = ((grep { $_->{code} != 201 } @filling), grep { $_->{phase} eq 'full' } @$r);
my @freed   = grep { $_->{phase} eq 'freed' } @$r;
my @ok      = grep { $_->{code} == 201 } @$r;

cmp_ok(scalar(grep { $_->{code} == 201 } @filling), '>=', 2, 'uploads were stored until the disk was nearly full')
  or diag(encode_json([map { "$_->{code} $_->{body}" } @filling]));
is(scalar @full, 7, 'the upload that no longer fits and six on a full disk were tried');
for my $x (@full) {
    my $what = "full disk, $x->{len} bytes";
    is($x->{code}, 507, "$what: 507 Insufficient Storage") or diag($x->{body});
    like($x->{type}, qr{^application/json}, "$what: a JSON answer");
    is_deeply(eval { decode_json($x->{body}) }, {detail => $FULL}, "$what: detail says the storage is full");
    is_deeply([grep { /^\.tmp-/ } @{$x->{files}}], [], "$what: no temp file left in UPLOAD_DIR");
}
is(scalar @freed, 2, 'two uploads after the fillers were deleted');
is($_->{code}, 201, "space freed: upload is 201 again") or diag($_->{body}) for @freed;

# Out of inodes rather than bytes: the temp file cannot even be created (open: ENOSPC).
sub inodes_used { return (split ' ', (`df --output=iused '$dir'`)[1] // '')[0] // 0 }
sub upload_now {
    my $t = $s->t;
    $t->post_ok($s->url('/api/v1/upload'), $up->{auth},
        form => {file => {content => shift, filename => 'x.png', 'Content-Type' => 'image/png'}});
    return $t;
}
is(system('mount', '-o', 'remount,nr_inodes=' . inodes_used(), $dir), 0, 'UPLOAD_DIR has no inode left');
upload_now(png_of(4096))->status_is(507, 'no inode left: 507')
  ->json_is('/detail' => $FULL, 'no inode left: detail says the storage is full');
is(system('mount', '-o', 'remount,nr_inodes=1000', $dir), 0, 'inodes given back');
my $bytes = png_of(4096);
my $again = upload_now($bytes)->status_is(201, 'inodes back: upload is 201 again')->tx->res;
push @ok, {body => $again->body, len => length $bytes, sha => sha256_hex($bytes)};

# Every 201 (before, and after, the disk was full) is whole: its row, its file, its bytes.
my $t = $s->t;
for my $x (@ok) {
    my $j = eval { decode_json($x->{body}) } // {};
    is($j->{size}, $x->{len}, "$j->{filename}: size is what was sent");
    $t->get_ok($s->url($j->{url} // '/api/v1/upload/none'))->status_is(200, "$j->{filename}: downloadable");
    is(sha256_hex($t->tx->res->body), $x->{sha}, "$j->{filename}: the same bytes come back");
}

# No file without its row, no row without its file, nothing else left behind.
my @rows  = grep { length } split /\n/, $s->psql("SELECT filename || ' ' || size FROM uploads ORDER BY 1");
my %rowsz = map { split / / } @rows;
my @files = dir_files();
is_deeply(\@files, [sort keys %rowsz], 'UPLOAD_DIR holds exactly the files of the uploads rows (no temp, partial or filler file)');
is(-s "$dir/$_", $rowsz{$_}, "$_: the file has the row's size") for grep { -e "$dir/$_" } sort keys %rowsz;
is(scalar @rows, scalar @ok, 'one row per 201, none for a refused upload');

unmount();
Chatd::Test::done();

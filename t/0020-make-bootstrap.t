# The first `make test` and `make run` on a machine without the -dev packages (issue 12,
# defect 1): bootstrap installs them, and the build of the same invocation must see them.
# The Makefile used to run `pkg-config --cflags` while it was parsed, before bootstrap, and
# failed on `libpq-fe.h: No such file or directory`. Here, in a copy of the tree, a fake
# pkg-config fails until a marker file exists, and a fake scripts/bootstrap creates the
# marker (as installing libpq-dev would make the real one answer). scripts/test-run and
# scripts/stack are replaced by stubs: only the build is under test.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $root = Chatd::Test::root();
my $tmp  = tempdir('chatd-t0020-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $copy = "$tmp/tree";
my $mark = "$tmp/installed";

# The flavour that is already built, so that only what the fake install changes is rebuilt.
my $san = ($ENV{SANITIZE} // '') eq '1' && -d "$root/build/san" ? 1 : 0;

sub sh {
    my ($cmd, %o) = @_;
    my $r = Chatd::Test::run_cmd(['sh', '-c', $cmd], merge => 1, timeout => $o{timeout} // 120, %o);
    return $r;
}

sub write_exe {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
    chmod 0755, $path or die "$path: $!";
}

# The checkout (tracked and new files) plus the existing objects, mtimes kept.
my $files = -e "$root/.git"
  ? q{git ls-files -co --exclude-standard -z | tar --null -T - -cf -}
  : q{tar --exclude=./var --exclude=./bin --exclude=./build -cf - .};
my $r = sh(qq{mkdir -p '$copy' && cd '$root' && $files | tar -C '$copy' -xf - && }
      . qq{if [ -d build ]; then tar -cf - build | tar -C '$copy' -xf -; fi});
is($r->{exit}, 0, 'a copy of the tree') or diag(Chatd::Test::describe($r));

my $real_pc = `sh -c "command -v pkg-config"`;
chomp $real_pc;
ok($real_pc, 'the real pkg-config is installed');
mkdir "$tmp/fakebin" or die;
write_exe("$tmp/fakebin/pkg-config", <<"EOF");
#!/bin/sh
# Not installed until scripts/bootstrap ran.
[ -e '$mark' ] || { echo "pkg-config: libpq not found" >&2; exit 1; }
exec '$real_pc' "\$@"
EOF
write_exe("$copy/scripts/bootstrap", "#!/bin/sh\necho 'fake bootstrap: installing'\ntouch '$mark'\n");
write_exe("$copy/scripts/test-run",  "#!/bin/sh\necho 'fake test-run reached'\n");
write_exe("$copy/scripts/stack",     "#!/bin/sh\necho \"fake stack \$*\"\n");

$r = sh("'$tmp/fakebin/pkg-config' --cflags libpq");
isnt($r->{exit}, 0, 'before bootstrap the fake pkg-config fails, as on a bare machine');

# A recompile of the one file that needs libpq's include directory, and every relink.
sub make_in_copy {
    my $target = shift;
    unlink $mark;
    utime undef, undef, "$copy/shared/db.c";
    my %env = (PATH => "$tmp/fakebin:$ENV{PATH}", SANITIZE => $san ? 1 : undef,
        MAKEFLAGS => undef, MAKELEVEL => undef, MFLAGS => undef, MAKEOVERRIDES => undef);
    return Chatd::Test::run_cmd(['make', '-C', $copy, '-j2', $target], env => \%env, merge => 1,
        timeout => 900);
}

for my $case (['test', qr/^fake test-run reached$/m], ['run', qr/^fake stack run$/m]) {
    my ($target, $reached) = @$case;
    $r = make_in_copy($target);
    is($r->{exit}, 0, "the first `make $target` builds in the invocation that ran bootstrap")
      or diag(Chatd::Test::describe($r));
    like($r->{out}, qr/fake bootstrap: installing/, "make $target ran bootstrap");
    like($r->{out}, qr/-c -o \S*shared\/db\.o shared\/db\.c/, "make $target recompiled shared/db.c");
    like($r->{out}, $reached, "make $target went on after the build");
    ok(-x "$copy/bin/chat-fcgi" && -x "$copy/bin/chat-wsd", "make $target linked both programs");
}

done_testing();

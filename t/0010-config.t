# Start-up configuration (STYLE.md §5): both programs refuse example or missing secrets when
# DEBUG is false, naming the key; --print-config masks secrets; and every key it prints is
# documented in .env.example and README.md (like pgbouncer's etc/optscan.sh).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $root   = Chatd::Test::root();
my $good1  = Chatd::Test::random_hex();
my $good2  = Chatd::Test::random_hex();
my $google = 'gcs-' . Chatd::Test::random_hex(8);
my $dbpw   = 'dbpw' . Chatd::Test::random_hex(6);
my $rdpw   = 'rdpw' . Chatd::Test::random_hex(6);

sub print_config {
    my ($prog, %env) = @_;
    return Chatd::Test::run_cmd(["$root/bin/$prog", '--print-config'],
        clean_env => 1, env => {ENV_FILE => '/dev/null', %env}, timeout => 20, cwd => $root);
}

sub slurp {
    my $f = shift;
    open my $fh, '<', $f or return undef;
    local $/;
    return scalar <$fh>;
}

my $example = slurp("$root/.env.example");
my $readme  = slurp("$root/README.md");
# README.<part>.md files are folded into README.md at merge; their keys count as documented.
$readme .= join '', map { slurp($_) // '' } glob("$root/README.*.md") if defined $readme;
ok(defined $example, '.env.example exists');
ok(defined $readme,  'README.md exists');

my %keys_of;
for my $prog (qw(chat-fcgi chat-wsd)) {
    ok(-x "$root/bin/$prog", "$prog: bin/$prog is built") or next;

    my $r = print_config($prog, DEBUG => 'false', SECRET_KEY => 'change-me-to-a-long-random-secret',
        REFRESH_SECRET_KEY => $good2);
    isnt($r->{exit}, 0, "$prog: example SECRET_KEY with DEBUG=false exits non-zero");
    ok(!$r->{signal} && !$r->{timed_out}, "$prog: example SECRET_KEY refusal is a clean exit")
      or diag(Chatd::Test::describe($r));
    like($r->{out} . $r->{err}, qr/(?<!REFRESH_)SECRET_KEY/, "$prog: example SECRET_KEY: message names SECRET_KEY");
    unlike($r->{out}, qr/^DATABASE_URL=/m, "$prog: nothing is printed as config when refusing");

    $r = print_config($prog, DEBUG => 'false');
    isnt($r->{exit}, 0, "$prog: no secrets with DEBUG=false exits non-zero");
    like($r->{out} . $r->{err}, qr/(?<!REFRESH_)SECRET_KEY/, "$prog: missing secrets: message names SECRET_KEY");

    $r = print_config($prog, DEBUG => 'false', SECRET_KEY => $good1, REFRESH_SECRET_KEY => $good2,
        ACCESS_TOKEN_EXPIRE_MINUTES => 'abc');
    isnt($r->{exit}, 0, "$prog: ACCESS_TOKEN_EXPIRE_MINUTES=abc exits non-zero");
    like($r->{out} . $r->{err}, qr/ACCESS_TOKEN_EXPIRE_MINUTES/, "$prog: bad integer: message names the key");

    $r = print_config($prog, DEBUG => 'false', SECRET_KEY => $good1, REFRESH_SECRET_KEY => $good2,
        CORS_ORIGINS_STR => '["http://a.example"]');
    isnt($r->{exit}, 0, "$prog: bracketed CORS_ORIGINS_STR exits non-zero");
    like($r->{out} . $r->{err}, qr/CORS_ORIGINS_STR/, "$prog: bad list: message names CORS_ORIGINS_STR");

    $r = print_config($prog,
        DEBUG                => 'false',
        SECRET_KEY           => $good1,
        REFRESH_SECRET_KEY   => $good2,
        GOOGLE_CLIENT_SECRET => $google,
        DATABASE_URL         => "postgresql://chatd:$dbpw\@127.0.0.1:1/nowhere",
        REDIS_URL            => "redis://:$rdpw\@127.0.0.1:1/0",
    );
    is($r->{exit}, 0, "$prog: good secrets with DEBUG=false: --print-config exits 0")
      or diag(Chatd::Test::describe($r));
    my %kv = map { /^([A-Z][A-Z0-9_]*)=(.*)$/ ? ($1 => $2) : () } split /\n/, $r->{out};
    ok(keys %kv >= 10, "$prog: --print-config prints KEY=value lines") or diag($r->{out});
    ok(exists $kv{SECRET_KEY} && exists $kv{REFRESH_SECRET_KEY}, "$prog: the secrets are listed");
    ok(length($kv{SECRET_KEY} // ''), "$prog: SECRET_KEY shows a mask, not an empty value");
    ok(index($r->{out} . $r->{err}, $good1) < 0, "$prog: SECRET_KEY value is not printed")
      or diag(grep { index($_, $good1) >= 0 } split /\n/, $r->{out} . $r->{err});
    ok(index($r->{out} . $r->{err}, $good2) < 0, "$prog: REFRESH_SECRET_KEY value is not printed")
      or diag(grep { index($_, $good2) >= 0 } split /\n/, $r->{out} . $r->{err});
    ok(index($r->{out} . $r->{err}, $google) < 0, "$prog: GOOGLE_CLIENT_SECRET value is not printed")
      or diag(grep { index($_, $google) >= 0 } split /\n/, $r->{out} . $r->{err});
    ok(index($r->{out} . $r->{err}, $dbpw) < 0, "$prog: the password in DATABASE_URL is not printed")
      or diag(grep { index($_, $dbpw) >= 0 } split /\n/, $r->{out} . $r->{err});
    ok(index($r->{out} . $r->{err}, $rdpw) < 0, "$prog: the password in REDIS_URL is not printed")
      or diag(grep { index($_, $rdpw) >= 0 } split /\n/, $r->{out} . $r->{err});
    is($kv{DEBUG}, 'false', "$prog: DEBUG=false is shown");
    $keys_of{$prog} = [sort keys %kv];

    $r = print_config($prog, DEBUG => 'true', DATABASE_URL => 'postgresql+asyncpg://u@127.0.0.1:1/x');
    is($r->{exit}, 0, "$prog: DEBUG=true without secrets is allowed") or diag(Chatd::Test::describe($r));
    like($r->{out}, qr{^DATABASE_URL=postgresql://u\@127\.0\.0\.1:1/x$}m,
        "$prog: postgresql+asyncpg:// is shown as postgresql://");

    SKIP: {
        skip '.env.example is missing', 2 unless defined $example;
        $r = Chatd::Test::run_cmd(["$root/bin/$prog", '--print-config'],
            clean_env => 1, env => {ENV_FILE => "$root/.env.example", DEBUG => 'true'}, timeout => 20, cwd => $root);
        is($r->{exit}, 0, "$prog: .env.example parses (with DEBUG=true)") or diag(Chatd::Test::describe($r));
        $r = Chatd::Test::run_cmd(["$root/bin/$prog", '--print-config'],
            clean_env => 1, env => {ENV_FILE => "$root/.env.example", DEBUG => 'false'}, timeout => 20, cwd => $root);
        isnt($r->{exit}, 0, "$prog: .env.example as is refuses to start with DEBUG=false");
    }
}

SKIP: {
    skip 'a program did not print its config', 1 unless $keys_of{'chat-fcgi'} && $keys_of{'chat-wsd'};
    is_deeply($keys_of{'chat-wsd'}, $keys_of{'chat-fcgi'}, 'both programs share one config table');
}

my @keys = @{$keys_of{'chat-fcgi'} // $keys_of{'chat-wsd'} // []};
ok(@keys, 'config keys collected for the documentation check');
my (@not_example, @not_readme);
for my $k (@keys) {
    push @not_example, $k unless defined $example && $example =~ /^[ \t]*#?[ \t]*(?:export[ \t]+)?\Q$k\E[ \t]*=/m;
    push @not_readme,  $k unless defined $readme && $readme =~ /\b\Q$k\E\b/;
}
is("@not_example", '', 'every --print-config key is in .env.example (as KEY= or #KEY=)');
is("@not_readme",  '', 'every --print-config key is in README.md');

done_testing;

# Issue 8 item 11: a database created at the first schema version, with data in it, upgrades
# to the current one (the data is there, the SQL functions are the current ones: 0007
# re-creates chatd_user_search, which 0003 had been edited to change); scripts/migrate records
# a checksum per migration (rows of databases migrated before checksums existed get one once)
# and refuses to run when an applied migration's file changed, naming the file.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use Digest::SHA qw(sha256_hex);
use lib "$FindBin::Bin/lib";
use Chatd::Test;

plan skip_all => 'CHATD_TEST_PG_URL is not set (run through make test)' unless $ENV{CHATD_TEST_PG_URL};

my $root    = Chatd::Test::root();
my $migrate = "$root/scripts/migrate";
my @files   = sort glob "$root/schema/[0-9][0-9][0-9][0-9]_*.sql";
my $n       = @files;
my $tmp     = tempdir(DIR => $ENV{CHATD_TEST_TMP} || undef, CLEANUP => 1);

my @dbs;
END { local $?; Chatd::Test::drop_db($_) for @dbs }

sub fresh_db {
    my $name = Chatd::Test::db_name(shift);
    push @dbs, $name;
    return Chatd::Test::create_db($name, 'template0');
}
sub q1 { my ($url, $sql) = @_; my $v = Chatd::Test::psql_at($url, $sql); chomp $v; return $v }
sub migrate {
    my ($url, $dir) = @_;
    return Chatd::Test::run_cmd([$migrate], clean_env => 1,
        env => {DATABASE_URL => $url, SCHEMA_DIR => $dir}, timeout => 120);
}
sub schema_copy {
    my ($name, @which) = @_;
    my $dir = "$tmp/$name";
    mkdir $dir or die "mkdir $dir: $!";
    copy($_, $dir) or die "copy $_: $!" for @which;
    return $dir;
}
sub sum_of { open my $fh, '<:raw', shift or die $!; local $/; return sha256_hex(scalar <$fh>) }

# ---- the first version, with data, as the old migrate left it ------------------------------

my $url = fresh_db('up');
my $r   = migrate($url, schema_copy('first', $files[0]));
is($r->{exit}, 0, 'migrate the first schema version only') or diag(Chatd::Test::describe($r));
is(q1($url, 'SELECT count(*) FROM schema_migrations'), 1, 'one version recorded');
# Databases migrated before checksums existed have no such column.
q1($url, 'ALTER TABLE schema_migrations DROP COLUMN checksum');
my $seed = Chatd::Test::psql_run($url, q{
    INSERT INTO users (id, email, hashed_password, username, first_name, last_name)
    VALUES ('00000000-0000-4000-8000-0000000000a1', 'ann@example.com', 'x', 'annika', 'Ann', 'Berg'),
           ('00000000-0000-4000-8000-0000000000a2', 'bo@example.com', 'x', 'bo_z', 'Bo', 'Zed');
    INSERT INTO messages (content, sender_id, receiver_id)
    SELECT 'old ' || i, '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000a2'
    FROM generate_series(1, 5) i;});
is($seed->{exit}, 0, 'users and messages inserted at the first version') or diag(Chatd::Test::describe($seed));

# ---- upgrade -----------------------------------------------------------------------------

$r = migrate($url, "$root/schema");
is($r->{exit}, 0, 'migrate to the current version') or diag(Chatd::Test::describe($r));
like($r->{out}, qr/^migrations: @{[$n - 1]} applied$/m, 'every later migration applied');
is(q1($url, 'SELECT count(*) FROM users'), 2, 'the users are still there');
is(q1($url, q{SELECT string_agg(content, ',' ORDER BY seq) FROM messages}), 'old 1,old 2,old 3,old 4,old 5',
    'the messages are still there, in order');
my @names = map { s{.*/}{}r =~ s/\.sql$//r } @files;
is(q1($url, q{SELECT string_agg(version || '=' || checksum, ',' ORDER BY version) FROM schema_migrations}),
    join(',', map { $names[$_] . '=' . sum_of($files[$_]) } 0 .. $#files),
    'every version has the checksum of its file (the old row got one once)');

my $src = q1($url, q{SELECT prosrc FROM pg_proc WHERE proname = 'chatd_user_search'});
unlike($src, qr/1114111/, 'chatd_user_search is the current one: no chr(1114111) bound');
like($src, qr/chatd_prefix_upper/, 'chatd_user_search bounds prefixes with chatd_prefix_upper');
my $found = q1($url, q{SELECT chatd_user_search('00000000-0000-4000-8000-0000000000a2', false, 'ANN', 20)::text});
like($found, qr/"total"\s*:\s*1/, 'a user inserted at the first version is found by prefix');
like($found, qr/annika/, 'the search returns that user');
$found = q1($url, q{SELECT chatd_user_search('00000000-0000-4000-8000-0000000000a1', false, 'bo_', 20)::text});
like($found, qr/bo_z/, 'a prefix ending in a wildcard character is matched literally');

# The bound: the least string above every string with the prefix (byte order).
is(q1($url, q{SELECT chatd_prefix_upper('ab')}), 'ac', 'chatd_prefix_upper: last character incremented');
is(q1($url, q{SELECT chatd_prefix_upper('a' || chr(55295)) = 'a' || chr(57344)}), 't',
    'chatd_prefix_upper: U+D7FF steps over the surrogates');
is(q1($url, q{SELECT chatd_prefix_upper('a' || chr(1114111))}), 'b', 'chatd_prefix_upper: U+10FFFF carries');
is(q1($url, q{SELECT coalesce(chatd_prefix_upper(chr(1114111)), 'none')}), 'none',
    'chatd_prefix_upper: no bound above U+10FFFF');
is(q1($url, q{SELECT count(*) FROM (VALUES ('ab'), ('abz'), ('ab' || chr(1114111)), ('ac'), ('aa')) v(s)
              WHERE s ~>=~ 'ab' AND s ~<~ chatd_prefix_upper('ab')}), 3,
    'the range [p, chatd_prefix_upper(p)) holds exactly the strings starting with p');

$r = migrate($url, "$root/schema");
is($r->{exit}, 0, 'a second run exits 0') or diag(Chatd::Test::describe($r));
like($r->{out}, qr/^migrations: 0 applied$/m, 'a second run applies nothing');

# ---- an applied migration edited ---------------------------------------------------------

my $edited = schema_copy('edited', @files);
(my $first = $files[0]) =~ s{.*/}{};
open my $fh, '>>', "$edited/$first" or die $!;
print $fh "\n-- edited after it ran\n";
close $fh;
open $fh, '>', "$edited/9990_new.sql" or die $!;
print $fh "CREATE TABLE edited_probe (id int);\n";
close $fh;
$r = migrate($url, $edited);
isnt($r->{exit}, 0, 'an edited applied migration: migrate exits non-zero');
like($r->{err}, qr/\Q$first\E changed after it was applied/, 'the message names the edited file')
  or diag(Chatd::Test::describe($r));
is(q1($url, q{SELECT count(*) FROM pg_class WHERE relname = 'edited_probe'}), 0,
    'nothing was applied after the refusal');
is(q1($url, q{SELECT count(*) FROM schema_migrations WHERE version = '9990_new'}), 0,
    'the new migration was not recorded');
is(q1($url, q{SELECT checksum FROM schema_migrations WHERE version = '} . ($first =~ s/\.sql$//r) . q{'}),
    sum_of($files[0]), 'the recorded checksum is unchanged');

done_testing;

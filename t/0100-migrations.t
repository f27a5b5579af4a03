# scripts/migrate on empty databases: applies every schema/NNNN_*.sql once, a second run is a
# no-op, concurrent runs serialise, postgresql+asyncpg:// URLs work, and the tables, columns
# and indexes SCHEMA.md names exist.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

plan skip_all => 'CHATD_TEST_PG_URL is not set (run through make test)' unless $ENV{CHATD_TEST_PG_URL};

my $root    = Chatd::Test::root();
my $migrate = "$root/scripts/migrate";
my @files   = sort map { s{.*/}{}r =~ s/\.sql$//r } glob "$root/schema/[0-9][0-9][0-9][0-9]_*.sql";
ok(@files >= 1, 'schema/ has migrations') or diag("no schema/NNNN_*.sql under $root");
my $n = @files;

my @dbs;
END { local $?; Chatd::Test::drop_db($_) for @dbs }

sub fresh_db {
    my $suffix = shift;
    my $name   = Chatd::Test::db_name($suffix);
    push @dbs, $name;
    # TEMPLATE template0: really empty, whatever was installed into template1.
    return Chatd::Test::create_db($name, 'template0');
}

sub q1 { my ($url, $sql) = @_; my $v = Chatd::Test::psql_at($url, $sql); chomp $v; return $v }

sub migrate_cmd { my $url = shift; return ([$migrate], clean_env => 1, env => {DATABASE_URL => $url}, timeout => 120) }

# ---- apply twice --------------------------------------------------------------------

my $url = fresh_db('a');
my $r   = Chatd::Test::run_cmd(migrate_cmd($url));
is($r->{exit}, 0, 'first run exits 0') or diag(Chatd::Test::describe($r));
for my $f (@files) {
    like($r->{out}, qr/\bapplied \Q$f\E\b/, "first run reports applying $f");
}
like($r->{out}, qr/^migrations: $n applied$/m, "first run ends with 'migrations: $n applied'");
is(q1($url, 'SELECT count(*) FROM schema_migrations'), $n, "schema_migrations records $n versions");
is(q1($url, q{SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations}), join(',', @files),
    'schema_migrations versions are the file names, without .sql');

my $before = q1($url, q{SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) FROM schema_migrations});
my $tables = q1($url, q{SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace});
$r = Chatd::Test::run_cmd(migrate_cmd($url));
is($r->{exit}, 0, 'second run exits 0') or diag(Chatd::Test::describe($r));
like($r->{out}, qr/^migrations: 0 applied$/m, "second run reports 'migrations: 0 applied'");
unlike($r->{out}, qr/^applied /m, 'second run applies nothing');
is(q1($url, q{SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) FROM schema_migrations}),
    $before, 'second run leaves schema_migrations unchanged');
is(q1($url, q{SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace}), $tables,
    'second run creates no relation');

# ---- tables, columns, indexes of SCHEMA.md ---------------------------------------------

my %columns;
while (my $l = <DATA>) {
    next if $l =~ /^\s*(#|$)/;
    my ($table, @cols) = split ' ', $l;
    $columns{$table} = \@cols;
}
for my $table (sort keys %columns) {
    my $have = q1($url, qq{SELECT string_agg(column_name, ' ') FROM information_schema.columns
                           WHERE table_schema = 'public' AND table_name = '$table'});
    my %have = map { $_ => 1 } split ' ', $have;
    ok(%have, "table $table exists");
    my @missing = grep { !$have{$_} } @{$columns{$table}};
    is("@missing", '', "table $table has the columns of SCHEMA.md");
}

my @idx = split /\n/, q1($url, q{SELECT tablename || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public'});
sub has_index {
    my ($table, $title, @re) = @_;
    my @hits = grep { my $d = $_; /^\Q$table\E: / && !grep { $d !~ $_ } @re } @idx;
    ok(@hits, "index: $title") or diag("indexes on $table:\n" . join("\n", grep { /^\Q$table\E: / } @idx));
}
has_index('users', 'unique lower(email) on users', qr/UNIQUE INDEX/, qr/\(lower\(\(?email\)?(?:::text)?\)\)/);
has_index('users', 'unique lower(username) on users', qr/UNIQUE INDEX/, qr/\(lower\(\(?username\)?(?:::text)?\)\)/);
has_index('users', 'pg_trgm GIN index on users names', qr/USING gin/, qr/gin_trgm_ops/, qr/username/,
    qr/first_name/, qr/last_name/);
has_index('users', 'prefix index on lower(username)', qr/lower\(\(?username/, qr/text_pattern_ops/);
has_index('users', 'prefix index on lower(email)', qr/lower\(\(?email/, qr/text_pattern_ops/);
has_index('users', 'partial index on active users', qr/WHERE.*is_active/);
has_index('oauth_accounts', 'unique (oauth_name, account_id)', qr/UNIQUE INDEX/, qr/\(oauth_name, account_id\)/);
has_index('group_members', 'unique (group_id, user_id)', qr/UNIQUE INDEX/, qr/\(group_id, user_id\)/);
has_index('group_members', 'index on group_members (user_id)', qr/\(user_id\)/);
has_index('messages', 'unique messages.seq', qr/UNIQUE INDEX/, qr/\(seq\)/);
has_index('messages', 'messages (group_id, seq)', qr/\(group_id, seq\)/);
has_index('messages', 'unread messages per receiver', qr/receiver_id/, qr/WHERE.*is_read/);
has_index('messages', 'private conversation by least/greatest and seq', qr/LEAST/i, qr/GREATEST/i, qr/seq/);
has_index('contacts', 'unique (user_id, contact_id)', qr/UNIQUE INDEX/, qr/\(user_id, contact_id\)/);
has_index('uploads', 'unique uploads.filename', qr/UNIQUE INDEX/, qr/\(filename\)/);
is(q1($url, q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'}), 1, 'extension pg_trgm is installed');

# Behaviour of the constraints, not only their presence.
my $dup = Chatd::Test::psql_run($url, q{
    INSERT INTO users (email, hashed_password, username) VALUES ('Case@Example.com', 'x', 'casey');
    INSERT INTO users (email, hashed_password, username) VALUES ('case@example.COM', 'x', 'casey2');});
isnt($dup->{exit}, 0, 'emails differing only in case are refused');
like($dup->{err}, qr/duplicate key|unique/i, 'the refusal is a unique violation');
$dup = Chatd::Test::psql_run($url, q{
    INSERT INTO users (email, hashed_password, username) VALUES ('one@example.com', 'x', 'Sam');
    INSERT INTO users (email, hashed_password, username) VALUES ('two@example.com', 'x', 'sAM');});
isnt($dup->{exit}, 0, 'usernames differing only in case are refused');
my $both = Chatd::Test::psql_run($url, q{
    INSERT INTO users (id, email, hashed_password, username)
         VALUES ('00000000-0000-0000-0000-0000000000a1', 'a1@example.com', 'x', 'a1');
    INSERT INTO groups (id, name) VALUES ('00000000-0000-0000-0000-0000000000b1', 'g');
    INSERT INTO messages (content, sender_id, receiver_id, group_id)
         VALUES ('x', '00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000a1',
                 '00000000-0000-0000-0000-0000000000b1');});
isnt($both->{exit}, 0, 'a message with both receiver_id and group_id is refused');
my $neither = Chatd::Test::psql_run($url, q{
    INSERT INTO users (id, email, hashed_password, username)
         VALUES ('00000000-0000-0000-0000-0000000000a2', 'a2@example.com', 'x', 'a2');
    INSERT INTO messages (content, sender_id) VALUES ('x', '00000000-0000-0000-0000-0000000000a2');});
isnt($neither->{exit}, 0, 'a message with neither receiver_id nor group_id is refused');

# ---- concurrent runs -----------------------------------------------------------------

my $curl = fresh_db('c');
my @h    = map { Chatd::Test::spawn_cmd(migrate_cmd($curl)) } 1 .. 2;
my @res  = map { Chatd::Test::wait_cmd($_) } @h;
is($res[0]{exit}, 0, 'concurrent run 1 exits 0') or diag(Chatd::Test::describe($res[0]));
is($res[1]{exit}, 0, 'concurrent run 2 exits 0') or diag(Chatd::Test::describe($res[1]));
my $sum = 0;
$sum += $_ for map { $_->{out} =~ /^migrations: (\d+) applied$/m ? $1 : 0 } @res;
is($sum, $n, 'concurrent runs applied each migration once between them');
is(q1($curl, 'SELECT count(*) || \'/\' || count(DISTINCT version) FROM schema_migrations'), "$n/$n",
    'concurrent runs recorded each version once');

# ---- postgresql+asyncpg:// ------------------------------------------------------------

my $aurl = fresh_db('p');
(my $async = $aurl) =~ s{^postgres(?:ql)?://}{postgresql+asyncpg://};
$r = Chatd::Test::run_cmd(migrate_cmd($async));
is($r->{exit}, 0, 'postgresql+asyncpg:// URL: migrate exits 0') or diag(Chatd::Test::describe($r));
is(q1($aurl, 'SELECT count(*) FROM schema_migrations'), $n, 'postgresql+asyncpg:// URL: every migration applied');

done_testing;

__DATA__
# table             columns (SCHEMA.md; names are binding)
users               id email hashed_password username first_name last_name avatar_url bio is_active is_superuser is_verified is_online last_seen created_at updated_at
oauth_accounts      id user_id oauth_name access_token expires_at refresh_token account_id account_email
auth_sessions       id user_id refresh_jti created_at last_used_at revoked_at user_agent ip
groups              id name description avatar_url is_private creator_id created_at updated_at
group_members       id group_id user_id role joined_at
messages            id seq content sender_id receiver_id group_id media_url media_type is_read created_at edited_at deleted_at
message_reads       message_id user_id read_at
contacts            id user_id contact_id nickname created_at
uploads             id owner_id filename content_type size sha256 created_at
schema_migrations   version applied_at

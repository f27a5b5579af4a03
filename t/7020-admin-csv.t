# GET /api/v1/admin/{model}/export.csv (API.md "Admin"): text/csv, RFC 4180 quoting, a header
# row, the list's search/filters/sort, formula injection neutralised (a cell starting with
# = + - @ gets a leading '), streamed (chunked, no Content-Length) without a row limit, and the
# fcgi worker's peak memory stays flat while it sends tens of megabytes; errors before the
# first row are proper 4xx answers.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;
use Mojo::UserAgent;

my $s = Chatd::Test->new(env => {FCGI_WORKERS => 1})->start;
sub api { Chatd::WsClient::api($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $root = Chatd::WsClient::register($s, 'root');
my $eve  = Chatd::WsClient::register($s, 'eve');
sql("UPDATE users SET is_superuser = true WHERE id = '$root->{id}'");

my $FORMULA = q{=cmd|' /C calc'!A0};
my $res = api($root, PATCH => "/api/v1/admin/users/$eve->{id}", json => {first_name => $FORMULA,
    last_name => '+SUM(A1)', bio => qq{say "hi",\nthen -1}, avatar_url => '@evil'});
is($res->code, 200, 'eve gets hostile fields');

$res = api($root, GET => "/api/v1/admin/users/export.csv?search=$eve->{name}");
is($res->code, 200, 'export: 200');
like($res->headers->content_type, qr{^text/csv}, 'export: text/csv');
like($res->headers->header('Content-Disposition') // '', qr/attachment; filename="users\.csv"/,
    'export: an attachment named users.csv');
my @lines = split /\r\n/, $res->body;
is($lines[0], 'id,email,username,first_name,last_name,avatar_url,bio,is_active,is_superuser,'
    . 'is_verified,is_online,last_seen,created_at,updated_at', 'export: the header row');
my $row = join "\r\n", @lines[1 .. $#lines];
like($row, qr/^\Q$eve->{id}\E,/, 'export: the row of eve');
like($row, qr/,'=cmd\|' \/C calc'!A0,/, q{export: =cmd|' /C calc'!A0 comes back as '=cmd...});
like($row, qr/,'\+SUM\(A1\),/, q{export: + is prefixed with '});
like($row, qr/,'\@evil,/, q{export: @ is prefixed with '});
like($row, qr/,"say ""hi"",\nthen -1",/, 'export: quotes doubled, comma and line break quoted, inner - untouched');
is(scalar(() = $res->body =~ /\r\n/g), 2, 'export: the header and one row, CRLF-terminated');

$res = api($root, GET => '/api/v1/admin/users/export.csv?sort=-username&is_superuser=false');
my @names = map { (split /,/)[2] } grep {length} (split /\r\n/, $res->body)[1 .. 1];
is_deeply(\@names, [$eve->{name}], 'export: filters apply');
$res = api($root, GET => '/api/v1/admin/users/export.csv?sort=hashed_password');
is($res->code, 422, 'export: unknown sort: 422');
is_deeply($res->json->{detail}[0]{loc}, ['query', 'sort'], 'export: loc names sort');
$res = api($root, GET => '/api/v1/admin/users/export.csv?bogus=1');
is($res->code, 422, 'export: unknown filter: 422');
is(api($root, GET => '/api/v1/admin/nope/export.csv')->code, 404, 'export: unknown model: 404');
$res = api($eve, GET => '/api/v1/admin/users/export.csv');
is($res->code, 403, 'export: a plain user: 403');
is($res->json->{detail}, 'Superuser required', 'export: Superuser required');

# ---- no row limit, constant memory ---------------------------------------------------------
my $N = 60_000;
my $seed = Chatd::Test::psql_run($s->db_url, qq{
    INSERT INTO users (email, hashed_password, username, bio)
    SELECT 'bulk' || i || '\@example.com', 'x', 'bulk' || i, repeat(md5(i::text), 15)
    FROM generate_series(1, $N) i;}, timeout => 300);
is($seed->{exit}, 0, "seed $N users with 480-character bios") or diag(Chatd::Test::describe($seed));

my @workers = Chatd::Test::workers($s->pid('fcgi'));
is(scalar @workers, 1, 'one fcgi worker');
sub vm_kb { my ($pid, $k) = @_; my $st = Chatd::Test::_slurp("/proc/$pid/status") // ''; return $st =~ /^Vm$k:\s+(\d+)/m ? $1 : undef }
my $ua = Mojo::UserAgent->new(max_response_size => 0, inactivity_timeout => 120, request_timeout => 300);
SKIP: {
    my $w = $workers[0];
    skip 'no worker pid in /proc', 5 unless $w && defined vm_kb($w, 'RSS');
    $ua->get($s->url('/api/v1/admin/stats') => $root->{auth});    # warm the worker
    my $idle = vm_kb($w, 'RSS');
    my $cr;
    my $reset = open($cr, '>', "/proc/$w/clear_refs") && print($cr "5\n") && close($cr);
    skip "cannot reset the peak RSS: $!", 5 unless $reset;
    my $tx = $ua->build_tx(GET => $s->url('/api/v1/admin/users/export.csv?sort=username') => $root->{auth});
    # Mojo replaces Transfer-Encoding by Content-Length once a chunked body is read: look first.
    my %h;
    $tx->res->content->on(body => sub { my $hd = shift->headers;
        %h = (te => $hd->transfer_encoding // '', cl => $hd->content_length) unless %h });
    $res = $ua->start($tx)->res;
    is($res->code, 200, 'big export: 200');
    is($h{cl}, undef, 'big export: no Content-Length (streamed, not sized first)');
    like($h{te} // '', qr/chunked/, 'big export: chunked');
    my $lines = () = $res->body =~ /\r\n/g;
    is($lines, $N + 3, "big export: every row ($N + 2 + the header), no row limit");
    my $grow = vm_kb($w, 'HWM') - $idle;
    my $mb = length($res->body) >> 20;
    diag("big export: $mb MiB sent, the worker's peak RSS +$grow KiB");
    SKIP: {
        skip 'RSS bounds are for the plain build (ASan keeps freed memory in quarantine)', 1
          if -e Chatd::Test::root() . '/build/san/.stamp';
        ok($grow < 8192, "big export: $mb MiB sent, the worker's peak RSS grew by less than 8 MiB (+$grow KiB)");
    }
}

Chatd::Test::done();

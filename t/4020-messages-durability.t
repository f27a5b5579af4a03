# Issue 8 items 5 and 9, on the message path of issue 10 (schema/0015_seq_gate.sql): the
# sequencing gate can never make a send hang, and a statement that writes is never run twice.
# - Another session holds the gate exclusively (as chatd_stable_seq() does for microseconds):
#   POST /api/v1/messages answers 503 "Database busy" within DB_LOCK_TIMEOUT_MS, a WS `message`
#   an error "Database busy"; once released, both work, and no session keeps the gate.
# - The Postgres session of an fcgi worker dies under the INSERT: the INSERT is not retried on a
#   new connection: 503, no row, no gate left held; the next send is stored once, and every
#   INSERT ran with its in-flight marker held.
# - Every backend of the database is killed between requests: the next requests succeed, each
#   send stored exactly once (the dead idle connection is replaced before sending).
# - A bug in our SQL (an undefined column) answers 500 and is logged, not a 503.
use strict;
use warnings;
use Test::More;
use FindBin;
use Time::HiRes qw(time);
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::WsClient;

my $LOCK_MS = 1500;
my $s = Chatd::Test->new(env => {DB_LOCK_TIMEOUT_MS => $LOCK_MS})->allow_5xx(503, 500)->start;
my ($alice, $bob) = map { Chatd::WsClient::register($s, $_) } qw(alice bob);
sub api { Chatd::WsClient::api($s, @_) }
sub sql { my $v = $s->psql(shift); chomp $v; return $v }
sub rows_with { my $c = shift; return sql("SELECT count(*) FROM messages WHERE content = '$c'") }
sub post_msg {
    my ($content) = @_;
    my $t0  = time;
    my $res = api($alice, POST => '/api/v1/messages', json => {content => $content, receiver_id => $bob->{id}});
    return ($res, time - $t0);
}
# The gate, (7001, 15) in the two-int advisory key space, in any mode.
my $HELD = q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
             AND classid = 7001 AND objid = 15
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())};

# ---- the gate held elsewhere ---------------------------------------------------------------------
# Connected first: a connection's startup replay reads the stable position, which takes the gate.
my $ws = Chatd::WsClient->start($s->ws_url($s->ws_connect_path($alice->{id}, token => $alice->{token})));
ok($ws->sync_point, 'alice connected over WebSocket');
my $holder = Chatd::Test::spawn_cmd(
    ['psql', '-X', '-q', '-d', $s->db_url, '-c', 'SELECT pg_advisory_lock(7001, 15)', '-c', 'SELECT pg_sleep(120)'],
    env => {PGAPPNAME => 'chatd-test-holder'}, timeout => 150);
ok($s->wait_for(sub { sql($HELD) == 1 }, 30, 'the holder to take the gate'), 'another session holds the gate');

my ($res, $secs) = post_msg('while locked');
is($res->code, 503, 'POST while the gate is held elsewhere: 503, not a hang');
is($res->json('/detail'), 'Database busy', 'the detail says the database is busy');
cmp_ok($secs, '<', $LOCK_MS / 1000 + 8, "answered within the lock timeout (took ${secs}s)");
cmp_ok($secs, '>=', $LOCK_MS / 1000 - 0.2, 'after waiting for the gate, not before');
is(rows_with('while locked'), 0, 'nothing was stored');

$ws->send({type => 'message', content => 'ws while locked', receiver_id => $bob->{id}, client_id => 'w-1'});
my $f = $ws->next_frame(sub { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') eq 'w-1' }, 30) // {};
is($f->{type}, 'error', 'a WS message while the gate is held elsewhere: an error, not a hang');
is($f->{detail} // $f->{message}, 'Database busy', 'the WS error says the database is busy')
  or diag(explain $f);

sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chatd-test-holder'});
Chatd::Test::wait_cmd($holder);
ok($s->wait_for(sub { sql($HELD) == 0 }, 30, 'the gate to be released'), 'the holder is gone');

($res) = post_msg('after release');
is($res->code, 201, 'POST after the release: 201');
is(rows_with('after release'), 1, 'stored once');
$ws->send({type => 'message', content => 'ws after release', receiver_id => $bob->{id}, client_id => 'w-2'});
$f = $ws->next_frame(sub { $_->{type} =~ /^(ack|error)$/ && ($_->{client_id} // '') eq 'w-2' }, 30) // {};
is($f->{type}, 'ack', 'a WS message after the release is acknowledged');
is(rows_with('ws after release'), 1, 'stored once');
ok($s->wait_for(sub { sql($HELD) == 0 }, 10, 'the gate to be free'), 'no session keeps the gate after the sends');

# ---- the session dies under the INSERT, with the lock held ---------------------------------------
# A trigger kills its own backend on the first insert of 'kill-me' (the sequence is not rolled
# back with the insert) and records, for every insert, whether the inserting session held an
# in-flight marker (two-int key space, first key from 1130000000 on).
sql(q{CREATE SEQUENCE t_kill_once;
      CREATE TABLE t_probe (content text, locked boolean);
      CREATE FUNCTION t_probe() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
          INSERT INTO t_probe VALUES (NEW.content, EXISTS (SELECT 1 FROM pg_locks
              WHERE locktype = 'advisory' AND objsubid = 2 AND classid::bigint >= 1130000000
                AND granted AND pid = pg_backend_pid()));
          IF NEW.content = 'kill-me' AND nextval('t_kill_once') = 1 THEN
              PERFORM pg_terminate_backend(pg_backend_pid());
              PERFORM pg_sleep(5);
          END IF;
          RETURN NEW;
      END $$;
      CREATE TRIGGER t_probe BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION t_probe();});

($res) = post_msg('kill-me');
ok($res->code == 503 || $res->code == 201, 'the send whose session died: 503 or 201') or diag($res->code);
is(rows_with('kill-me'), $res->code == 201 ? 1 : 0, 'stored exactly once if acknowledged, else not at all');
is(sql(q{SELECT count(*) FROM t_probe WHERE NOT locked}), 0, 'no INSERT ever ran without its in-flight marker');
is($res->code, 503, 'the INSERT (not idempotent) was not retried on a new connection: 503');
is($res->json('/detail'), 'Database unavailable', '503 says the database is unavailable');
ok($s->wait_for(sub { sql($HELD) == 0 }, 10, 'the gate to be free'), 'the dead session left no gate behind');

($res) = post_msg('kill-me');
is($res->code, 201, 'the same send again: 201');
is(rows_with('kill-me'), 1, 'stored once');
is(sql(q{SELECT count(*) FROM t_probe WHERE NOT locked}), 0, 'with its marker');
sql('DROP TRIGGER t_probe ON messages');

# ---- every backend killed between requests -------------------------------------------------------
for my $round (1 .. 2) {
    my @pids = split /\n/, sql(q{SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                                  AND pid <> pg_backend_pid() AND backend_type = 'client backend'});
    my $in = join(',', @pids) || 0;
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ($in)");
    ok(@pids >= 1, "round $round: the programs' backends were terminated (" . scalar(@pids) . ')');
    ok($s->wait_for(sub { sql("SELECT count(*) FROM pg_stat_activity WHERE pid IN ($in)") == 0 }, 30,
        'the backends to exit'), "round $round: they are gone");
    # More sends than workers: every worker meets its dead connection.
    for my $i (1 .. 4) {
        my ($r) = post_msg("round $round/$i");
        is($r->code, 201, "round $round: send $i after the kill: 201");
        is(rows_with("round $round/$i"), 1, "round $round: send $i stored exactly once");
    }
    my $me = api($alice, GET => '/api/v1/users/me');
    is($me->code, 200, "round $round: a read after the kill: 200");
}

# ---- our own SQL bug is a 500, logged; not a 503 -------------------------------------------------
sql(q{CREATE OR REPLACE FUNCTION chatd_user_search(caller uuid, caller_super boolean, q text, lim int)
      RETURNS json LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT no_such_column FROM users LIMIT 1); END $$});
my $bug = api($alice, GET => '/api/v1/users/search?query=bob');
is($bug->code, 500, 'an undefined column in our SQL: 500, not 503');
is($bug->json('/detail'), 'Internal Server Error', 'with a generic detail');
like(Chatd::Test::_slurp($s->log_file('fcgi')) // '', qr/error .*db: s\d+: ERROR:\s+column "no_such_column" does not exist/,
    'the SQL error is logged at error level');

$ws->close;
Chatd::Test::done();

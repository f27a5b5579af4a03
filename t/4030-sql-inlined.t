# schema/0020_inline_read.sql: chatd_message_read() (every message a REST or WebSocket client
# receives) and chatd_session_ok() (every authenticated request) are inlined by the planner into
# their callers' plans, instead of being parsed and planned again on each call (fmgr_sql: a third
# of Postgres's CPU per POST /api/v1/messages before). A function with a sub-SELECT is never
# inlined: EXPLAIN VERBOSE then shows the call, inlined it shows the function's body.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;

my $s = Chatd::Test->new(parts => 'redis')->start;
sub sql { my $v = $s->psql(shift); chomp $v; return $v }

my $plan = sql(q{EXPLAIN (VERBOSE, COSTS OFF)
    SELECT chatd_message_read(m, s, s.id) FROM messages m JOIN users s ON s.id = m.sender_id});
like($plan, qr/json_build_object/, 'chatd_message_read() is inlined (its json_build_object is in the plan)')
  or diag($plan);
unlike($plan, qr/chatd_message_read\(/, 'no call of it is left') or diag($plan);

$plan = sql(q{EXPLAIN (VERBOSE, COSTS OFF)
    SELECT chatd_session_ok(u, '00000000-0000-4000-8000-000000000000'::uuid, 0) FROM users u});
like($plan, qr/chatd_session_live\(/, 'chatd_session_ok() is inlined (its body is in the plan)') or diag($plan);
unlike($plan, qr/chatd_session_ok\(/, 'no call of it is left') or diag($plan);

# The same answers as before: a group message's is_read per reader, a revoked session refused.
my ($alice, $bob) = map {
    sql(qq{INSERT INTO users (email, username, hashed_password) VALUES ('$_\@x.example', '$_', 'x') RETURNING id})
} qw(alice bob);
my $g = sql(q{INSERT INTO groups (name) VALUES ('g') RETURNING id});
my $m = sql(qq{INSERT INTO messages (sender_id, group_id, content) VALUES ('$alice', '$g', 'hi') RETURNING id});
sql(qq{INSERT INTO message_reads (message_id, user_id) VALUES ('$m', '$bob')});
my $read = sub { sql(qq{SELECT chatd_message_read(m, s, '$_[0]')->>'is_read' FROM messages m
                        JOIN users s ON s.id = m.sender_id WHERE m.id = '$m'}) };
is($read->($bob), 'true', 'a group message is read for the member who read it');
is($read->($alice), 'false', 'and unread for one who did not');
my $sid = sql(qq{INSERT INTO auth_sessions (user_id) VALUES ('$alice') RETURNING id});
my $ok = sub { sql(qq{SELECT chatd_session_ok(u, '$sid', 0) FROM users u WHERE id = '$alice'}) };
is($ok->(), 't', 'a live session is good');
sql(qq{UPDATE auth_sessions SET revoked_at = now() WHERE id = '$sid'});
is($ok->(), 'f', 'a revoked one is not');

Chatd::Test::done();

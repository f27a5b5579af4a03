# Fault injection (issue 8, t/lib/Chatd/Faults.pm): senders over REST and WebSocket keep going
# while PostgreSQL restarts, after a fast shutdown and after an immediate one (crash
# recovery). The run shares one Postgres across test files, so this stack has its own
# cluster (STACK_PARTS with pg), with fsync and synchronous_commit on as in production:
# every acknowledged message must survive, be in every participant's replay, once, in ack
# order.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use Chatd::Test;
use Chatd::Faults;

my $s = Chatd::Faults::allow(Chatd::Test->new(parts => 'pg redis fcgi wsd nginx', env => {PG_FAST => 0})->start);
my $data = $s->env('PG_DIR') . '/data';
my ($pg_ctl) = sort { $b cmp $a } glob '/usr/lib/postgresql/*/bin/pg_ctl';
ok($pg_ctl && -d $data, "the stack's own cluster in $data");

sub pg_ctl {
    my @cmd = ($pg_ctl, '-D', $data, '-w', '-t', 60, @_);
    @cmd = ('runuser', '-u', 'postgres', '--', @cmd) if $> == 0;
    my $r = Chatd::Test::run_cmd(\@cmd, cwd => '/');
    die Chatd::Test::describe($r) . "\n" if $r->{exit} != 0;
}

for my $mode (qw(fast immediate)) {
    Chatd::Faults::run($s, "postgres-restart-$mode", sub {
        pg_ctl('-m', $mode, 'stop');
        sleep 1;
        $s->start_part('pg') or die "postgres did not start again\n";
    }, expect_errors => 1);
}

Chatd::Test::done();

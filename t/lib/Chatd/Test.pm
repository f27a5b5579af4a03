package Chatd::Test;

# The integration-test harness (in the spirit of Test::Nginx and h2o's t/Util.pm).
#
#   use Test::More;
#   use Chatd::Test;
#   my $s = Chatd::Test->new(env => {MAX_BODY_SIZE => 2048})->start;
#   $s->t->get_ok($s->url('/health'))->status_is(200, 'health answers 200');
#   Chatd::Test::done();    # stack down + automatic checks + done_testing
#
# Each started stack gets its own database (CREATE DATABASE ... TEMPLATE chatd on the
# shared Postgres of CHATD_TEST_PG_URL), VAR_DIR, nginx port, Redis, chat-fcgi and chat-wsd,
# all run by scripts/stack. See the POD at the end for the whole API.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Mojo::IOLoop;
use Mojo::UserAgent;
use Mojo::Util ();
use POSIX qw(WNOHANG);
use Test::Mojo;
use Test::More ();
use Time::HiRes ();

our $VERSION = '0.1';

# Settings of both programs (shared/cfg.c) and of scripts/stack: removed from the inherited
# environment so a developer's shell never changes what a test sees.
our @CONFIG_KEYS = qw(
  DATABASE_URL REDIS_URL SECRET_KEY REFRESH_SECRET_KEY ACCESS_TOKEN_EXPIRE_MINUTES
  REFRESH_TOKEN_EXPIRE_DAYS CORS_ORIGINS_STR ALLOWED_EXTENSIONS_STR MAX_UPLOAD_SIZE MAX_BODY_SIZE
  UPLOAD_DIR DEBUG GOOGLE_CLIENT_ID GOOGLE_CLIENT_SECRET GOOGLE_REDIRECT_URI GOOGLE_AUTHORIZE_URL
  GOOGLE_TOKEN_URL GOOGLE_USERINFO_URL OAUTH_SUCCESS_REDIRECT SMTP_URL MAIL_FROM MAIL_OUTBOX_DIR
  PUBLIC_URL HTTP_PORT FCGI_WORKERS FCGI_SOCKET WSD_HOST WSD_PORT WSD_PORTS WSD_INSTANCES
  RATE_LIMIT_LOGIN_PER_MINUTE RATE_LIMIT_REGISTER_PER_HOUR RATE_LIMIT_MESSAGES_PER_10S LOG_LEVEL
  RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE RATE_LIMIT_MAIL_PER_HOUR RATE_LIMIT_MAIL_ADDRESS_PER_HOUR
  RATE_LIMIT_UPLOADS_PER_MINUTE
  ENV_FILE VAR_DIR STACK_PARTS REDIS_PORT
  RATE_LIMIT_GROUPS_PER_HOUR RATE_LIMIT_GROUP_MEMBERS_PER_HOUR FCGI_SOCKET_GROUP
  DB_LOCK_TIMEOUT_MS DB_STATEMENT_TIMEOUT_MS WSD_DB_QUEUE_MAX
);

# Markers of memory errors in the programs' logs (ASan/UBSan/LSan; valgrind with
# --error-markers=CHATD-VALGRIND-BEGIN,... when scripts/stack runs them under VALGRIND=1).
our $SANITIZER_RE = qr/AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime\ error:|
                       ERROR:\ \w+Sanitizer|CHATD-VALGRIND-BEGIN/x;
# A program that logs a child's death by one of these signals has crashed.
our $CRASH_RE = qr/\b(?:SIG(?:SEGV|ABRT|BUS|FPE|ILL)|signal\s+(?:4|6|7|8|11)\b)/;

our @LIVE;    # started stacks not yet finished
my (%PORT_LOCKS, %TITLES);
my $NSTACKS = 0;

# ---------------------------------------------------------------------------------------
# Class-level helpers (usable without a stack: t/0000, t/0010, t/0100, t/0400).

sub root {
    return $ENV{CHATD_ROOT} if $ENV{CHATD_ROOT};
    return abs_path(dirname(__FILE__) . '/../../..');
}

sub test_name {
    my $n = basename($0);
    $n =~ s/\.t$//;
    return $n;
}

# A random 64-hex secret.
sub random_hex {
    my $n = shift // 32;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $buf, $n) == $n or die "short read from /dev/urandom";
    return unpack 'H*', $buf;
}

# A free 127.0.0.1 port in 10000-19999 (below the ephemeral range; scripts/stack takes
# 20000-31999), reserved by a lock file in /tmp/chatd-ports/ until this process ends or
# release_port() is called. The locks are scripts/port-lock's, the same as scripts/stack's.
sub free_port {
    _port_lock();
    my $port = Chatd::PortLock::new_port($$, 10000, 20000)
      // die "Chatd::Test: no free port found in 10000-19999\n";
    $PORT_LOCKS{$port} = 1;
    return $port;
}

sub release_port {
    my $port = pop;
    delete $PORT_LOCKS{$port} or return;
    Chatd::PortLock::release($$, $port);
}

sub _port_lock { require(root() . '/scripts/port-lock') }

# Runs a command to completion. Options: env => {K => v, K2 => undef (removed)},
# clean_env => 1 (drop @CONFIG_KEYS first), timeout => seconds (default 120; the process
# group gets TERM then KILL), merge => 1 (stderr into out). stdin is /dev/null; output goes
# to files, never to a pipe, so daemons started by the command cannot hold us up.
# Returns {status, exit, signal, out, err, timed_out}; exit is -1 when killed by a signal.
sub run_cmd {
    my ($cmd, %o) = @_;
    return wait_cmd(spawn_cmd($cmd, %o));
}

sub spawn_cmd {
    my ($cmd, %o) = @_;
    my $dir = tempdir('chatd-cmd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my %env = %ENV;
    delete @env{@CONFIG_KEYS} if $o{clean_env};
    while (my ($k, $v) = each %{$o{env} // {}}) {
        if (defined $v) { $env{$k} = $v } else { delete $env{$k} }
    }
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        eval {
            setpgrp(0, 0);
            %ENV = %env;
            chdir $o{cwd} if $o{cwd};
            open STDIN,  '<', '/dev/null' or die;
            open STDOUT, '>', "$dir/out"  or die;
            if   ($o{merge}) { open STDERR, '>&', \*STDOUT or die }
            else             { open STDERR, '>', "$dir/err" or die }
            exec {$cmd->[0]} @$cmd;
        };
        print STDERR "exec @$cmd: $!\n";
        POSIX::_exit(127);
    }
    return {pid => $pid, dir => $dir, cmd => $cmd, timeout => $o{timeout} // 120};
}

sub wait_cmd {
    my $h = shift;
    my $deadline = Time::HiRes::time() + $h->{timeout};
    my ($status, $timed_out);
    while (1) {
        my $r = waitpid($h->{pid}, WNOHANG);
        if ($r == $h->{pid}) { $status = $?; last }
        if ($r < 0) { $status = -1; last }
        if (Time::HiRes::time() > $deadline) {
            $timed_out = 1;
            kill 'TERM', -$h->{pid};
            my $grace = Time::HiRes::time() + 5;
            while (waitpid($h->{pid}, WNOHANG) == 0) {
                if (Time::HiRes::time() > $grace) { kill 'KILL', -$h->{pid}; waitpid($h->{pid}, 0); last }
                Time::HiRes::sleep(0.05);
            }
            $status = $?;
            last;
        }
        Time::HiRes::sleep(0.02);
    }
    my %r = (status => $status, timed_out => $timed_out, cmd => "@{$h->{cmd}}");
    $r{signal} = $status & 127;
    $r{exit}   = $r{signal} ? -1 : $status >> 8;
    $r{exit}   = -1 if $timed_out;
    $r{out}    = _slurp("$h->{dir}/out") // '';
    $r{err}    = _slurp("$h->{dir}/err") // '';
    remove_tree($h->{dir});
    return \%r;
}

# A one-line description of a finished command for diag().
sub describe {
    my $r = shift;
    my $how = $r->{timed_out} ? 'timed out' : $r->{signal} ? "died of signal $r->{signal}" : "exited $r->{exit}";
    return "'$r->{cmd}' $how\n--- stdout\n$r->{out}--- stderr\n$r->{err}---";
}

sub _slurp {
    my $f = shift;
    open my $fh, '<:raw', $f or return undef;
    local $/;
    return scalar <$fh>;
}

# Polls $cond every 50 ms until it returns true (returns that value) or $timeout seconds
# pass (diag and returns undef). Tests wait for conditions, never sleep.
sub wait_for {
    my ($self, $cond, $timeout, $what) = @_;
    ($cond, $timeout, $what) = ($self, $cond, $timeout) if ref $self eq 'CODE';
    $timeout //= 10;
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
    Test::More::diag("timed out after ${timeout}s waiting for " . ($what // 'a condition'));
    return undef;
}

# --- Postgres ---------------------------------------------------------------------------

# Splits a libpq URL into (base without the database, database, query string).
sub _pg_split {
    my $url = shift;
    $url =~ m{^(postgres(?:ql)?(?:\+\w+)?://[^/?]*)(?:/([^?]*))?(\?.*)?$}
      or die "Chatd::Test: cannot parse Postgres URL '$url'\n";
    return ($1, $2 // '', $3 // '');
}

# $url with its database replaced by $db.
sub pg_url {
    my ($url, $db) = @_;
    my ($base, undef, $q) = _pg_split($url);
    return "$base/$db$q";
}

sub pg_server_url {
    return $ENV{CHATD_TEST_PG_URL};
}

# Runs SQL through psql; returns the run_cmd result (out: unaligned, tuples only).
sub psql_run {
    my ($url, $sql, %o) = @_;
    return run_cmd(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $url, '-c', $sql],
        timeout => $o{timeout} // 60, env => {PGCONNECT_TIMEOUT => 10});
}

# Like psql_run but dies with psql's message on failure; returns stdout.
sub psql_at {
    my ($url, $sql) = @_;
    my $r = psql_run($url, $sql);
    die "Chatd::Test: psql failed: " . describe($r) . "\n" if $r->{exit} != 0;
    return $r->{out};
}

# Creates database $name on CHATD_TEST_PG_URL's server (from TEMPLATE $tmpl when given);
# returns its URL.
sub create_db {
    my ($name, $tmpl) = @_;
    my $srv = pg_server_url() or die "Chatd::Test: CHATD_TEST_PG_URL is not set\n";
    my $sql = qq{CREATE DATABASE "$name"} . ($tmpl ? qq{ TEMPLATE "$tmpl"} : '');
    psql_at(pg_url($srv, 'postgres'), $sql);
    return pg_url($srv, $name);
}

sub drop_db {
    my $name = shift;
    my $srv = pg_server_url() or return;
    my $r = psql_run(pg_url($srv, 'postgres'), qq{DROP DATABASE IF EXISTS "$name" WITH (FORCE)});
    Test::More::diag("could not drop database $name: " . describe($r)) if $r->{exit} != 0;
}

# t_<test name>_<pid>[_<suffix>], a valid unquoted identifier of at most 63 bytes.
sub db_name {
    my $suffix = shift;
    (my $n = lc test_name()) =~ s/[^a-z0-9]+/_/g;
    my $tail = "_$$" . (defined $suffix ? "_$suffix" : '');
    return 't_' . substr($n, 0, 60 - length($tail) - 2) . $tail;
}

# --- processes ----------------------------------------------------------------------------

# Child pids of $pid (zombies included: a master that never reaps them is a bug).
sub children {
    my $ppid = pop;
    my @kids;
    opendir my $dh, '/proc' or die "/proc: $!";
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$p/stat") // next;
        my $rest = substr($stat, rindex($stat, ')') + 2);
        my (undef, $pp) = split ' ', $rest;
        push @kids, $p + 0 if $pp == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

# The command name of $pid ('' when gone): chat-fcgi's mailer names itself chat-mailer.
sub comm {
    my $pid = pop;
    my $stat = _slurp("/proc/$pid/stat") // return '';
    return $stat =~ /^\d+ \((.*)\) / ? $1 : '';
}

# The fcgi workers among the children of master $pid (the mailer is not one).
sub workers { my $ppid = pop; return grep { comm($_) ne 'chat-mailer' } children($ppid) }

# True when $pid exists and is not a zombie.
sub alive {
    my $pid = pop;
    my $stat = _slurp("/proc/$pid/stat") // return 0;
    my $state = (split ' ', substr($stat, rindex($stat, ')') + 2))[0];
    return $state ne 'Z';
}

# --- the OpenAPI contract (README "API documentation (OpenAPI)") -----------------------------

# Every transaction any Mojo::UserAgent of this process finishes against a started stack's
# nginx is checked against build/www/openapi.json (Chatd::Contract): a response the document
# does not describe (route, status, content type, a field) is a failing assertion at once.
# Requests to other ports (the FastCGI socket, chat-wsd directly, the fake Google) are not
# checked; neither are raw-socket clients (t/9000, t/0210's slow senders).
# CHATD_TEST_OPENAPI names another document (t/0330 checks that a wrong one fails a test).
sub contract_file { return $ENV{CHATD_TEST_OPENAPI} || root() . '/build/www/openapi.json' }

sub contract {
    require Chatd::Contract;
    my $f = contract_file();
    die "Chatd::Test: $f is missing: run make (scripts/openapi-build)\n" unless -f $f;
    return Chatd::Contract->load($f);
}

sub _contract_stack {
    my $url = shift;
    return undef unless ($url->host // '') =~ /^(?:127\.0\.0\.1|localhost)$/;
    my $port = $url->port // return undef;
    for my $s (@LIVE) {
        return $s if $s->{started} && !$s->{finished} && $s->{http_port} && $s->{http_port} == $port;
    }
    return undef;
}

sub _contract_check {
    my $tx = shift;
    my $req = $tx->req;
    my $s = _contract_stack($req->url) // return;
    my $res = $tx->res;
    return unless defined $res->code;
    my $method = $req->method;
    my $path = $req->url->path->to_string;
    $path = "/$path" unless $path =~ m{^/};
    my $h = $req->headers;
    my @p = contract()->check($method, $path, $res, allow_5xx => $s->{allow_5xx},
        preflight => $method eq 'OPTIONS' && $h->header('Access-Control-Request-Method'));
    $s->{contract_checked}++;
    return unless @p;
    $s->{contract_failed}++;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(0, unique_title("[$s->{name}] the answer to $method $path matches the OpenAPI document"));
    Test::More::diag("  $_") for @p;
    Test::More::diag("  requested at $tx->{chatd_where}") if $tx->{chatd_where};
    Test::More::diag('  body: ' . substr($res->body // '', 0, 600));
}

# For clients that bypass Mojo::UserAgent (raw sockets, t/9000): one assertion that the
# answer to $method $target conforms. $res: a Mojo::Message::Response, or {status, headers
# => {name => value}, body}.
sub contract_ok {
    my ($self, $method, $target, $res, $title) = @_;
    if (ref $res eq 'HASH') {
        require Mojo::Message::Response;
        my $m = Mojo::Message::Response->new->code($res->{status});
        $m->headers->header($_ => $res->{headers}{$_}) for keys %{$res->{headers} // {}};
        $m->body($res->{body}) if defined $res->{body};
        $res = $m;
    }
    (my $path = $target) =~ s/[?#].*//s;
    my @p = contract()->check($method, $path, $res, allow_5xx => $self->{allow_5xx});
    $self->{contract_checked}++;
    $self->{contract_failed}++ if @p;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(!@p, unique_title($title // "the answer to $method $path matches the OpenAPI document"))
      or Test::More::diag(join "\n", map {"  $_"} @p);
    return !@p;
}

{
    no warnings 'redefine';
    my $start = \&Mojo::UserAgent::start;
    *Mojo::UserAgent::start = sub {
        my ($ua, $tx) = @_;
        if (!$tx->{chatd_contract}++) {
            # Where the test asked, for the diagnostics (the check runs in the event loop).
            for (my $i = 0; my @c = caller($i); $i++) {
                next unless $c[1] =~ /\.t$/;
                $tx->{chatd_where} = "$c[1] line $c[2]";
                last;
            }
            $tx->once(finish => \&_contract_check);
        }
        goto &$start;
    };
}

# ---------------------------------------------------------------------------------------
# A stack.

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        env           => $o{env} // {},
        parts         => $o{parts} // 'redis fcgi wsd nginx',
        wsd_instances => $o{wsd_instances} // 1,
        fcgi_workers  => $o{fcgi_workers} // 2,
        name          => $o{name} // ($NSTACKS ? 'stack' . ($NSTACKS + 1) : 'stack'),
        var_dir       => $o{var_dir},    # only for check_logs() on an existing directory
        allow_5xx     => {},
        expect_dead   => {},
    }, $class;
    $NSTACKS++;
    return $self;
}

sub start {
    my $self = shift;
    Test::More::plan(skip_all => 'CHATD_TEST_PG_URL is not set: run through "make test" '
          . '(scripts/test-run), or start a Postgres (VAR_DIR=/tmp/pg STACK_PARTS=pg scripts/stack up) '
          . 'and export CHATD_TEST_PG_URL')
      unless pg_server_url();
    _install_signal_handlers();

    # scripts/stack accepts only [A-Za-z0-9._/+-] in VAR_DIR.
    (my $name = test_name() . "-$$-$self->{name}") =~ s{[^A-Za-z0-9.+-]+}{-}g;
    my $base = $ENV{CHATD_TEST_TMP} || File::Spec->tmpdir;
    $self->{var_dir} = "$base/" . ($ENV{CHATD_TEST_TMP} ? $name : "chatd-$name-" . random_hex(4));
    remove_tree($self->{var_dir});
    make_path($self->{var_dir}) or die "Chatd::Test: cannot create $self->{var_dir}: $!\n";
    $self->{var_dir} = abs_path($self->{var_dir});

    $self->{db}                 = db_name($self->{name} eq 'stack' ? undef : $self->{name});
    $self->{http_port}          = free_port();
    $self->{secret_key}         = random_hex();
    $self->{refresh_secret_key} = random_hex();
    push @LIVE, $self;
    $self->{started} = 1;

    my $tmpl = $ENV{CHATD_TEST_PG_TEMPLATE} // ((_pg_split(pg_server_url()))[1] || 'chatd');
    $self->{db_url} = eval { create_db($self->{db}, $tmpl) };
    if (!$self->{db_url}) {
        my $e = $@;
        $self->_abort("creating database $self->{db} from template $tmpl failed: $e");
    }

    $self->{stack_env} = {
        VAR_DIR            => $self->{var_dir},
        HTTP_PORT          => $self->{http_port},
        STACK_PARTS        => $self->{parts},
        DATABASE_URL       => $self->{db_url},
        WSD_INSTANCES      => $self->{wsd_instances},
        FCGI_WORKERS       => $self->{fcgi_workers},
        ENV_FILE           => '/dev/null',
        SECRET_KEY         => $self->{secret_key},
        REFRESH_SECRET_KEY => $self->{refresh_secret_key},
        DEBUG              => 'false',
        # Tests register and log in many users from 127.0.0.1; a rate-limit test sets these.
        RATE_LIMIT_LOGIN_PER_MINUTE  => 0,
        RATE_LIMIT_REGISTER_PER_HOUR => 0,
        RATE_LIMIT_MESSAGES_PER_10S  => 0,
        RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE => 0,
        RATE_LIMIT_MAIL_PER_HOUR            => 0,
        RATE_LIMIT_MAIL_ADDRESS_PER_HOUR    => 0,
        RATE_LIMIT_UPLOADS_PER_MINUTE => 0,
        RATE_LIMIT_GROUPS_PER_HOUR        => 0,
        RATE_LIMIT_GROUP_MEMBERS_PER_HOUR => 0,
        # DEBUG=false has no default origins; the tests speak from these (undef: none).
        CORS_ORIGINS_STR => 'http://localhost:3000,http://localhost:5173,http://localhost:8000,http://127.0.0.1:8000',
        %{$self->{env}},
    };
    my $r = $self->_stack('up');
    $self->_abort('scripts/stack up failed: ' . describe($r)) if $r->{exit} != 0;
    $self->{stack_vars} = $self->_read_stack_env
      // $self->_abort("scripts/stack up exited 0 but wrote no $self->{var_dir}/stack.env");
    for my $k (qw(HTTP_PORT REDIS_PORT REDIS_URL DATABASE_URL FCGI_SOCKET WSD_PORTS)) {
        next if defined $self->{stack_vars}{$k};
        next if $k =~ /^REDIS/ && $self->{parts} !~ /\bredis\b/;
        next if $k eq 'WSD_PORTS' && $self->{parts} !~ /\bwsd\b/;
        next if $k eq 'FCGI_SOCKET' && $self->{parts} !~ /\bfcgi\b/;
        $self->_abort("stack.env lacks $k");
    }
    return $self;
}

# Stops what was started, shows the logs and dies: the test cannot go on without its stack.
sub _abort {
    my ($self, $why) = @_;
    Test::More::diag("[$self->{name}] $why");
    $self->_stack('down') if $self->{stack_env};
    $self->_dump_logs;
    $self->_release(1);
    die "Chatd::Test: [$self->{name}] could not start the stack (VAR_DIR $self->{var_dir} kept)\n";
}

sub _stack {
    my ($self, @args) = @_;
    return run_cmd([root() . '/scripts/stack', @args],
        clean_env => 1, env => $self->{stack_env}, merge => 1, timeout => $ENV{CHATD_TEST_STACK_TIMEOUT} // 120);
}

sub _read_stack_env {
    my $self = shift;
    my $txt = _slurp("$self->{var_dir}/stack.env") // return undef;
    my %v;
    for (split /\n/, $txt) {
        next if /^\s*(#|$)/;
        s/^\s*export\s+//;
        my ($k, $val) = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/ or next;
        $val =~ s/^(["'])(.*)\1$/$2/;
        $v{$k} = $val;
    }
    return \%v;
}

# --- accessors ----------------------------------------------------------------------------

sub var_dir            { $_[0]{var_dir} }
sub http_port          { $_[0]{http_port} }
sub db_url             { $_[0]{db_url} }

# The test database as the cluster's superuser (scripts/stack's initdb user "postgres"): for
# what the programs' role may not do (LOAD 'auto_explain', superuser-only settings).
sub admin_db_url {
    my $self = shift;
    (my $u = $self->{db_url}) =~ s{^(postgres(?:ql)?(?:\+\w+)?://)(?:[^@/]*@)?}{$1postgres\@};
    return $u;
}
sub db                 { $_[0]{db} }
sub secret_key         { $_[0]{secret_key} }
sub refresh_secret_key { $_[0]{refresh_secret_key} }
sub name               { $_[0]{name} }

sub env {
    my ($self, $k) = @_;
    $self->{stack_vars} = $self->_read_stack_env // $self->{stack_vars};
    return $self->{stack_vars}{$k};
}

sub url    { my ($self, $path) = @_; return "http://127.0.0.1:$self->{http_port}" . ($path // '/') }
sub ws_url { my ($self, $path) = @_; return "ws://127.0.0.1:$self->{http_port}" . ($path // '/') }

# The WebSocket path of a user: /api/v1/ws/<id>[?token=...][&since=...].
sub ws_connect_path {
    my ($self, $user_id, %o) = @_;
    my $p = "/api/v1/ws/$user_id";
    my @q = map { "$_=" . Mojo::Util::url_escape($o{$_}) } grep { defined $o{$_} } qw(token since);
    return @q ? "$p?" . join('&', @q) : $p;
}

# --- HTTP and WebSocket clients -------------------------------------------------------

sub ua {
    return Mojo::UserAgent->new(
        max_redirects      => 0,
        request_timeout    => 10,
        connect_timeout    => 5,
        inactivity_timeout => 10,
        insecure           => 1,
    )->ioloop(Mojo::IOLoop->singleton);
}

# A fresh Test::Mojo (own cookie jar). Repeated titles get " [2]", " [3]"... so every
# assertion in a file keeps a unique title.
sub new_t {
    my $self = shift;
    my $t = Test::Mojo->new;
    $t->ua(ua());
    $t->handler(sub {
        my ($name, @args) = @_;
        $args[-1] = unique_title($args[-1]) if @args;
        return Test::More->can($name)->(@args);
    });
    return $t;
}

# The stack's default Test::Mojo.
sub t { my $self = shift; return $self->{t} //= $self->new_t }

# Starts t/lib/fake_google.pl on a free port for the given client (one assertion: it answers).
# Returns its base URL, a user agent and the process (spawn_cmd; stopped at exit if still up).
my @FAKES;
END { kill 'TERM', $_->{pid} for grep { $_->{pid} && !$_->{reaped} } @FAKES }
sub start_fake_google {
    my ($client_id, $secret) = @_;
    my $url  = 'http://127.0.0.1:' . free_port();
    my $fake = spawn_cmd(['perl', root() . '/t/lib/fake_google.pl', 'daemon', '-l', $url],
        env => {FAKE_GOOGLE_CLIENT_ID => $client_id, FAKE_GOOGLE_CLIENT_SECRET => $secret}, timeout => 5);
    push @FAKES, $fake;
    my $ua = ua();
    Test::More::ok(wait_for(sub { my $c = $ua->get("$url/_ping")->res->code; $c && $c == 200 },
        15, 'the fake provider'), 'the fake Google provider answers');
    return ($url, $ua, $fake);
}

# Registers $name through POST /api/v1/auth/register (one assertion) and returns
# {id, name, token, refresh_token, user, h => {Authorization => "Bearer ..."}, auth => same}.
# %extra goes into the body (email overrides the default <name>@example.com).
sub register {
    my ($self, $name, %extra) = @_;
    my $t = $self->t;
    $t->post_ok($self->url('/api/v1/auth/register'),
        json => {email => "$name\@example.com", username => $name, password => 'password123', %extra})
      ->status_is(201, "register $name");
    my $j = $t->tx->res->json // {};
    my $h = {Authorization => "Bearer " . ($j->{access_token} // '')};
    return {id => $j->{user}{id}, name => $name, token => $j->{access_token},
        refresh_token => $j->{refresh_token}, user => $j->{user}, h => $h, auth => $h};
}

# A Test::Mojo with a WebSocket open to $path (its websocket_ok is the first assertion).
sub ws {
    my ($self, $path, $headers) = @_;
    my $t = $self->new_t;
    $t->websocket_ok($self->ws_url($path), $headers // {});
    return $t;
}

sub unique_title {
    my $title = shift;
    return $title unless defined $title && length $title;
    my $n = ++$TITLES{$title};
    return $n == 1 ? $title : "$title [$n]";
}

# --- control ---------------------------------------------------------------------------

# A stopped part is exempt from the end-of-file liveness check until it is started again.
sub stop_part {
    my ($self, $part) = @_;
    $self->{expect_dead}{$part} = 1;
    return $self->_part(stop => $part);
}

sub start_part {
    my ($self, $part) = @_;
    delete $self->{expect_dead}{$part};
    return $self->_part(start => $part);
}

sub _part {
    my ($self, $verb, $part) = @_;
    my $r = $self->_stack($verb, $part);
    return 1 if $r->{exit} == 0;
    Test::More::diag("[$self->{name}] " . describe($r));
    return 0;
}

# The pid in the part's pid file (fcgi: the master; wsd: wsd-1), or undef.
sub pid {
    my ($self, $part) = @_;
    my $v = $self->{var_dir};
    my @files = $part eq 'nginx'
      ? (glob("$v/nginx/*.pid"), glob("$v/nginx/*/*.pid"), "$v/run/nginx.pid")
      : $part eq 'wsd' ? ("$v/run/wsd-1.pid")
      :                  ("$v/run/$part.pid");
    for my $f (@files) {
        my $p = _slurp($f) // next;
        return $1 + 0 if $p =~ /(\d+)/;
    }
    return undef;
}

sub psql { my ($self, $sql) = @_; return psql_at($self->{db_url}, $sql) }

# --- mail (fcgi/mailer.c sends queued mails after the request answered) --------------------

# Waits until the mailer has handled every mail queued so far (no row due in mail_queue);
# returns true, or false after $timeout (default 30) seconds.
sub mail_idle {
    my ($self, $timeout) = @_;
    return $self->wait_for(sub {
        ($self->psql(q{SELECT count(*) FROM mail_queue WHERE status = 'pending' AND next_at <= now()}) // 1) == 0
    }, $timeout // 30, 'the mailer to drain mail_queue');
}

# The outbox mails (MAIL_OUTBOX_DIR = VAR_DIR/mail) addressed to $to, oldest first, after
# the mailer has drained the queue.
sub mails_to {
    my ($self, $to) = @_;
    $self->mail_idle;
    my @m;
    for my $f (sort glob("$self->{var_dir}/mail/*.eml")) {
        my $txt = _slurp($f) // next;
        push @m, $txt if $txt =~ /^To: \Q$to\E\r$/m;
    }
    return @m;
}

sub log_file {
    my ($self, $name) = @_;
    my $f = "$self->{var_dir}/log/$name";
    return -e $f ? $f : "$f.log";
}

sub log_tail {
    my ($self, $name, $n) = @_;
    my $txt = _slurp($self->log_file($name)) // return '';
    my @l = split /\n/, $txt;
    $n //= 30;
    splice @l, 0, @l - $n if @l > $n;
    return join("\n", @l) . (@l ? "\n" : '');
}

# 5xx statuses the access-log check tolerates for this stack.
sub allow_5xx { my $self = shift; $self->{allow_5xx}{$_} = 1 for @_; return $self }

# nginx error-log lines (regexps) that the [alert]/[crit]/[emerg] check tolerates for this
# stack: what a fault test provokes on purpose.
sub allow_nginx_log { my $self = shift; push @{$self->{allow_nginx_log}}, @_; return $self }

# Parts (run/<name>.pid) the test stops or kills for good, exempt from the liveness check.
sub expect_dead { my $self = shift; $self->{expect_dead}{$_} = 1 for @_; return $self }

# --- teardown ---------------------------------------------------------------------------

# Stops the stack and appends the automatic checks as assertions.
sub finish {
    my $self = shift;
    return if !$self->{started} || $self->{finished}++;
    my $tb  = Test::More->builder;
    my $pre = "[$self->{name}]";
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my @dead;
    my @parts = map { basename($_) =~ s/\.pid$//r } glob "$self->{var_dir}/run/*.pid";
    push @parts, 'nginx' if $self->{parts} =~ /\bnginx\b/ && !grep { $_ eq 'nginx' } @parts;
    for my $part (@parts) {
        next if $self->{expect_dead}{$part} || $self->{expect_dead}{$part =~ s/-\d+$//r};
        my $pid = $self->pid($part) // next;
        push @dead, "$part ($pid)" unless alive($pid);
    }
    $tb->ok(!@dead, "$pre every stack process is still running at the end")
      or Test::More::diag("gone: @dead");

    my $r = $self->_stack('down');
    $tb->ok($r->{exit} == 0, "$pre scripts/stack down exits 0") or Test::More::diag(describe($r));

    $self->check_logs;
    $tb->ok(!$self->{contract_failed}, "$pre every answer through nginx matched the OpenAPI document ("
          . ($self->{contract_checked} // 0) . ' checked)');
    $self->_release;
}

# The automatic checks on the logs under VAR_DIR (also usable on a hand-made VAR_DIR).
sub check_logs {
    my $self = shift;
    my $tb   = Test::More->builder;
    my $pre  = "[$self->{name}]";
    my $log  = "$self->{var_dir}/log";
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my @prog = grep { -f } glob("$log/fcgi*.log"), glob("$log/wsd*.log");
    my @san  = _grep_files($SANITIZER_RE, @prog);
    $tb->ok(!@san, "$pre no sanitizer errors in the fcgi/wsd logs") or Test::More::diag(join "\n", @san);

    my @crash = _grep_files($CRASH_RE, @prog);
    $tb->ok(!@crash, "$pre no process crashed (SEGV/ABRT/BUS/FPE/ILL) per the fcgi/wsd logs")
      or Test::More::diag(join "\n", @crash);

    # Secrets and password hashes never reach a log line (issue 3).
    my @secret = grep { defined && length } $self->{secret_key}, $self->{refresh_secret_key};
    my $secret_re = @secret ? join('|', map { quotemeta } @secret, '$argon2id$') : quotemeta('$argon2id$');
    my @leak = _grep_files(qr/$secret_re/, grep { -f } glob("$log/*.log"));
    $tb->ok(!@leak, "$pre no secret key or password hash in any log") or Test::More::diag(join "\n", @leak);

    my $nginx = $self->{parts} =~ /\bnginx\b/;
    my @err = _grep_files(qr/\[(?:alert|crit|emerg)\]/, grep { -f } "$log/nginx-error.log");
    for my $re (@{$self->{allow_nginx_log} // []}) {
        @err = grep { $_ !~ $re } @err;
    }
    $tb->ok(!@err, "$pre no [alert]/[crit]/[emerg] in the nginx error log") or Test::More::diag(join "\n", @err);

    my $access = "$log/nginx-access.log";
    my (@bad, @unparsed);
    if (-f $access) {
        open my $fh, '<', $access or die "$access: $!";
        while (my $l = <$fh>) {
            next unless $l =~ /\S/;
            # nginx/nginx.conf.in's "chatd" format ('addr [time] status ...'), else combined.
            my ($st) = $l =~ /^\S+ \[[^\]]*\] (\d{3}) /;
            ($st) = $l =~ /"[A-Z]+ [^"]*" (\d{3})\b/ unless defined $st;
            ($st) = $l =~ /\bstatus[=:]"?(\d{3})\b/ unless defined $st;
            if (!defined $st) { push @unparsed, $l; next }
            push @bad, $l if $st >= 500 && !$self->{allow_5xx}{$st};
        }
    }
    elsif ($nginx) {
        push @unparsed, "(no $access)\n";
    }
    my $allowed = join(',', sort keys %{$self->{allow_5xx}});
    $tb->ok(!@bad && !@unparsed, "$pre no 5xx in the nginx access log" . ($allowed ? " but $allowed" : ''))
      or Test::More::diag(join '', @bad, @unparsed ? ("cannot find the status in:\n", @unparsed) : ());
}

sub _grep_files {
    my ($re, @files) = @_;
    my @hits;
    for my $f (@files) {
        open my $fh, '<', $f or next;
        while (<$fh>) { push @hits, basename($f) . ":$.: $_" if $_ =~ $re }
    }
    chomp @hits;
    return @hits;
}

sub _dump_logs {
    my $self = shift;
    for my $f (sort glob "$self->{var_dir}/log/*") {
        next unless -f $f;
        my $name = basename($f);
        Test::More::diag("---- $name (last 30 lines)\n" . $self->log_tail($name, 30));
    }
}

# Drops the database, frees the port, and removes VAR_DIR unless something failed.
sub _release {
    my ($self, $failed) = @_;
    return if $self->{released}++;
    $self->{finished} = 1;
    my $keep = $failed || !Test::More->builder->is_passing;
    if (!defined $self->{var_dir}) {
    }
    elsif ($keep) {
        $self->_dump_logs unless $failed;
        Test::More::diag("[$self->{name}] keeping $self->{var_dir}");
    }
    elsif ($ENV{CHATD_TEST_LEAVE}) {
        Test::More::diag("[$self->{name}] CHATD_TEST_LEAVE: keeping $self->{var_dir}");
    }
    else {
        remove_tree($self->{var_dir});
    }
    if ($self->{db_url} && $ENV{CHATD_TEST_LEAVE}) {
        Test::More::diag("[$self->{name}] CHATD_TEST_LEAVE: keeping database $self->{db_url}");
    }
    elsif ($self->{db_url}) {
        drop_db($self->{db});
    }
    release_port($self->{http_port}) if $self->{http_port};
    @LIVE = grep { defined && $_ != $self } @LIVE;
}

# Finishes every stack (appending the automatic checks), then done_testing.
# Call as Chatd::Test::done() or $s->done.
sub done {
    my @live = grep { $_->{started} && !$_->{finished} } @LIVE;    # a copy: finish edits @LIVE
    $_->finish for @live;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::done_testing();
}

my $handlers_installed;

sub _install_signal_handlers {
    return if $handlers_installed++;
    # Let END run (and stop the stacks) when prove is interrupted.
    $SIG{$_} = sub { print STDERR "# Chatd::Test: caught SIG$_[0], stopping stacks\n"; exit 130 }
      for qw(INT TERM HUP);
}

END {
    my $code = $?;
    my $forgot = 0;
    my @live = grep { $_->{started} && !$_->{finished} } @LIVE;
    for my $s (@live) {
        local $?;
        $forgot++;
        $s->{finished} = 1;
        $s->_stack('down') if $s->{stack_env};
        $s->_dump_logs if $s->{var_dir} && ($code != 0 || !Test::More->builder->is_passing);
        $s->_release(1);
    }
    for my $port (keys %PORT_LOCKS) { release_port($port) }
    if ($forgot && $code == 0) {
        print STDERR "# Chatd::Test: the test ended without Chatd::Test::done() (or \$s->finish);\n"
          . "# the automatic checks did not run, so this file fails.\n";
        $code = 255;
    }
    $? = $code;
}

1;

__END__

=head1 NAME

Chatd::Test - start a chatd stack for one test file and check it afterwards

=head1 SYNOPSIS

  use Test::More;
  use Chatd::Test;

  my $s = Chatd::Test->new(env => {DEBUG => 'true'}, fcgi_workers => 2)->start;
  $s->t->get_ok($s->url('/health'))->status_is(200, 'health is 200');
  my $ws = $s->ws($s->ws_connect_path($user_id, token => $tok));
  $ws->send_ok({json => {type => 'ping'}}, 'ping sent')->message_ok('pong received');
  ok($s->stop_part('redis'), 'redis stopped');
  ok($s->wait_for(sub { ... }, 10, 'health back to 200'), 'health recovers');
  Chatd::Test::done();

=head1 CONSTRUCTOR AND START

C<new(%opts)>: C<env> (extra environment for the programs; overrides the defaults below),
C<parts> ("redis fcgi wsd nginx"), C<wsd_instances> (1), C<fcgi_workers> (2), C<name>
(prefix of the automatic checks' titles; "stack", then "stack2", ...).

C<start> skips the whole file when CHATD_TEST_PG_URL is unset, creates the database
C<t_E<lt>testE<gt>_E<lt>pidE<gt>> from the template (CHATD_TEST_PG_TEMPLATE, else the database named in
CHATD_TEST_PG_URL), a VAR_DIR under CHATD_TEST_TMP (else a temporary directory), picks
HTTP_PORT, and runs C<scripts/stack up> with ENV_FILE=/dev/null, DEBUG=false, random
SECRET_KEY / REFRESH_SECRET_KEY (C<secret_key>, C<refresh_secret_key>) and the rate limits
disabled (0), CORS_ORIGINS_STR set to the development origins. Configuration keys inherited from the caller's environment are removed first.
On failure it prints the stack's output and the logs and dies.

=head1 METHODS

C<url($path)>, C<ws_url($path)>, C<ws_connect_path($user_id, token =E<gt> ..., since =E<gt> ...)>,
C<t> (the stack's Test::Mojo), C<new_t> (another one, own cookie jar), C<ws($path, \%headers)>,
C<env($key)> (from stack.env), C<var_dir>, C<db_url>, C<admin_db_url> (the same database as the
superuser C<postgres>: the programs' role C<chatd> is not one), C<http_port>, C<pid($part)>,
C<children($pid)>, C<alive($pid)>, C<stop_part($part)> / C<start_part($part)> (true on
exit 0), C<psql($sql)> (stdout; dies on error), C<wait_for($cond, $timeout, $what)>,
C<log_tail($name, $n)>, C<allow_5xx(@statuses)>, C<allow_nginx_log(@regexps)>,
C<expect_dead(@parts)>, C<finish>.

Class functions: C<free_port>, C<release_port>, C<run_cmd(\@cmd, %opts)>,
C<spawn_cmd>/C<wait_cmd>, C<describe($result)>, C<create_db>, C<drop_db>, C<db_name>,
C<pg_url>, C<psql_run>, C<psql_at>, C<random_hex>, C<root>, C<unique_title>.

=head1 AUTOMATIC CHECKS

C<Chatd::Test::done()> finishes every stack: "every stack process is still running", "stack
down exits 0", "no sanitizer errors", "no crash signal", "no [alert]/[crit]/[emerg]", "no 5xx
in the access log" (except C<allow_5xx>), then calls done_testing. When any test failed, the
tail of every log is printed and VAR_DIR is kept (always with CHATD_TEST_LEAVE=1). A file that
ends without C<done()> fails. The database is dropped at the end, except with
CHATD_TEST_LEAVE=1.

=cut

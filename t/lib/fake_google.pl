#!/usr/bin/env perl
# A fake Google OAuth2 provider for the t/11xx tests (a Mojolicious::Lite app, one process).
#
#   FAKE_GOOGLE_CLIENT_ID=id FAKE_GOOGLE_CLIENT_SECRET=secret \
#     perl t/lib/fake_google.pl daemon -l http://127.0.0.1:PORT
#
# The test registers profiles first (POST /_user with the userinfo JSON, keyed by "hint"),
# then follows the flow:
#   GET  /authorize?response_type=code&client_id=..&redirect_uri=R&state=S&login_hint=H
#        -> 302 R?code=<one-time code of profile H>&state=S
#   POST /token (form: code, client_id, client_secret, redirect_uri, grant_type)
#        -> {"access_token":"fake-at-...","expires_in":3600,"token_type":"Bearer"}
#   GET  /userinfo with Authorization: Bearer <access token> -> the profile
# GET /_stats tells how often /token and /userinfo were called, so a test can check that
# chatd did not call them (a bad state must be refused before the code is spent).
use Mojolicious::Lite -signatures;
use Mojo::Util qw(secure_compare);

my $CLIENT_ID     = $ENV{FAKE_GOOGLE_CLIENT_ID}     // 'fake-client-id';
my $CLIENT_SECRET = $ENV{FAKE_GOOGLE_CLIENT_SECRET} // 'fake-client-secret';

my (%profiles, %codes, %tokens, %stats);
my $serial = 0;

sub rand_tag { join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 24 }

app->log->level($ENV{FAKE_GOOGLE_LOG_LEVEL} // 'warn');

get '/_ping' => sub ($c) { $c->render(json => {ok => \1}) };

get '/_stats' => sub ($c) { $c->render(json => {%stats}) };

# Body: {"hint": "alice", "profile": {...userinfo...}, "token": {...extra token fields...}}
post '/_user' => sub ($c) {
    my $in = $c->req->json // {};
    return $c->render(status => 400, json => {error => 'hint and profile required'})
      unless defined $in->{hint} && ref $in->{profile} eq 'HASH';
    $profiles{$in->{hint}} = {profile => $in->{profile}, token => $in->{token} // {}};
    $c->render(json => {ok => \1});
};

get '/authorize' => sub ($c) {
    my $p = $c->req->query_params;
    my ($redirect, $state, $hint) = map { $p->param($_) } qw(redirect_uri state login_hint);
    return $c->render(status => 400, text => 'bad response_type')
      unless ($p->param('response_type') // '') eq 'code';
    return $c->render(status => 400, text => 'unknown client_id')
      unless ($p->param('client_id') // '') eq $CLIENT_ID;
    return $c->render(status => 400, text => 'bad scope')
      unless ($p->param('scope') // '') eq 'openid email profile';
    return $c->render(status => 400, text => 'redirect_uri and state required')
      unless defined $redirect && defined $state;
    return $c->render(status => 400, text => 'unknown login_hint')
      unless defined $hint && $profiles{$hint};
    my $code = 'fake-code-' . ++$serial . '-' . rand_tag();
    $codes{$code} = {hint => $hint, redirect_uri => $redirect};
    my $to = Mojo::URL->new($redirect);
    $to->query->merge(code => $code, state => $state);
    $c->redirect_to($to);
};

post '/token' => sub ($c) {
    $stats{token}++;
    my $p = $c->req->body_params;
    my $bad = sub ($what) { $c->render(status => 400, json => {error => $what}) };
    return $bad->('unsupported_grant_type') unless ($p->param('grant_type') // '') eq 'authorization_code';
    return $bad->('invalid_client')
      unless ($p->param('client_id') // '') eq $CLIENT_ID
      && secure_compare($p->param('client_secret') // '', $CLIENT_SECRET);
    my $code = $p->param('code') // '';
    my $grant = delete $codes{$code};    # a code works once
    return $bad->('invalid_grant') unless $grant;
    return $bad->('redirect_uri_mismatch') unless ($p->param('redirect_uri') // '') eq $grant->{redirect_uri};
    my $entry = $profiles{$grant->{hint}};
    my $at = 'fake-at-' . rand_tag();
    $tokens{$at} = $grant->{hint};
    $c->render(json => {access_token => $at, expires_in => 3600, token_type => 'Bearer',
                        scope => 'openid email profile', %{$entry->{token}}});
};

get '/userinfo' => sub ($c) {
    $stats{userinfo}++;
    my ($at) = ($c->req->headers->authorization // '') =~ /^Bearer (\S+)$/;
    my $hint = defined $at ? $tokens{$at} : undef;
    return $c->render(status => 401, json => {error => 'invalid_token'}) unless defined $hint;
    $c->render(json => $profiles{$hint}{profile});
};

app->start;

#!/usr/bin/env bash
# shellcheck shell=bash
# Sourced by chatd-migrate, chatd-ctl and chatd-nginx-include (installed under
# PREFIX/share/chatd/): reads an env file the way shared/cfg.c does, so the scripts
# see the values the programs will see.

# chatd_env_load FILE: exports each KEY=VALUE of FILE ('#' comments, "export ",
# optional matching quotes) unless the environment already sets KEY (the environment
# wins) or an earlier line did (cfg.c's setenv(..., 0) keeps the first). 1 when FILE is
# unreadable, 2 on a malformed line (named on stderr).
chatd_env_load() {
    local file=$1 line key val n=0
    [[ -r $file ]] || return 1
    local -A seen=()
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line=${line#"${line%%[![:space:]]*}"}
        line=${line%"${line##*[![:space:]]}"}
        [[ -z $line || $line == \#* ]] && continue
        [[ $line == "export "* ]] && line=${line#export }
        if [[ ! $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]]; then
            echo "$file:$n: expected KEY=VALUE" >&2
            return 2
        fi
        key=${BASH_REMATCH[1]}
        val=${BASH_REMATCH[2]}
        val=${val#"${val%%[![:space:]]*}"}
        if ((${#val} >= 2)) && [[ ${val:0:1} == [\"\'] && ${val: -1} == "${val:0:1}" ]]; then
            val=${val:1:${#val}-2}
        fi
        [[ -n ${seen[$key]:-} ]] && continue
        seen[$key]=1
        [[ -n ${!key+x} ]] && continue
        export "$key=$val"
    done <"$file"
    return 0
}

# chatd_env_file [FILE]: the env file to use: FILE, else $ENV_FILE, else
# SYSCONFDIR/chatd/chatd.env as written at install time.
chatd_env_file() {
    local f=${1:-${ENV_FILE:-${CHATD_SYSCONFDIR:-/etc}/chatd/chatd.env}}
    [[ $f == /* ]] || f=$PWD/$f
    echo "$f"
}

# Where the pieces are, from the directory of the sourcing script: an installed tree
# (PREFIX/bin + PREFIX/lib/chatd + PREFIX/share/chatd) or this repository (scripts/).
# shellcheck disable=SC2034 # the CHATD_* paths are for the scripts that source this file
chatd_paths() {
    local lib=$1 prefix
    lib=$(cd "$lib" && pwd)
    if [[ -r $lib/../../share/chatd/paths.sh ]]; then
        prefix=$(cd "$lib/../.." && pwd)
        CHATD_BIN=$prefix/bin
        CHATD_SHARE=$prefix/share/chatd
        CHATD_MIGRATE=$lib/migrate
        CHATD_SCHEMA_DIR=$CHATD_SHARE/schema
        CHATD_TEMPLATES=$CHATD_SHARE/nginx
        CHATD_STATIC_DIR=${CHATD_STATIC_DIR:-$CHATD_SHARE/static}
        # CHATD_SYSCONFDIR, CHATD_LOCALSTATEDIR, CHATD_RUNSTATEDIR of `make install`.
        # shellcheck source=/dev/null
        . "$CHATD_SHARE/paths.sh"
    else
        prefix=$(cd "$lib/.." && pwd)
        CHATD_BIN=$prefix/bin
        CHATD_SHARE=$prefix
        CHATD_MIGRATE=$lib/migrate
        CHATD_SCHEMA_DIR=$prefix/schema
        CHATD_TEMPLATES=$prefix/dist/nginx
        CHATD_STATIC_DIR=${CHATD_STATIC_DIR:-$prefix/nginx}
    fi
}
chatd_paths "$(dirname "${BASH_SOURCE[0]}")"

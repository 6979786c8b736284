#!/usr/bin/env bash
# A real Keystone for the tests of `--auth keystone`: PyPI's keystone in its
# own virtual environment ($KS_HOME), SQLite and key repositories in
# $KS_DATA, served by twistd on 127.0.0.1:$KS_PORT, with the test accounts
# of scripts/keystone_accounts.py (two projects, members, an admin, and the
# service user `csvc` that validates tokens).
#
# Idempotent: each step checks first; with everything in place the script
# takes a few seconds. Run as root (called by scripts/bootstrap.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

# The release tested here; bump it together with a test run.
KEYSTONE_REQ="${CSVC_KEYSTONE_REQ:-keystone==30.0.0}"
KS_HOME=/opt/csvc-keystone
KS_DATA=/var/lib/csvc-keystone
KS_LOG=/var/log/csvc-keystone.log
KS_PORT="${CSVC_KEYSTONE_PORT:-5000}"
KS_URL="http://127.0.0.1:$KS_PORT/v3/"
KS_CONF="$KS_HOME/keystone.conf"
KS_WAIT=90
# The bootstrap admin (user "admin", project "admin", Default domain).
KS_ADMIN_PASSWORD="${CSVC_KEYSTONE_ADMIN_PASSWORD:-csvc-keystone-admin}"
PYTHON="${PYTHON:-python3}"

log() { echo "keystone: $*" >&2; }

# (Python rather than curl: curl is not on every fresh machine.)
ks_answers() {
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5).read()' "$KS_URL" \
        >/dev/null 2>&1
}

ensure_ks_venv() {
    local stamp="$KS_HOME/.installed"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$KEYSTONE_REQ" ] && [ -x "$KS_HOME/bin/keystone-manage" ]; then
        log "virtual environment ok ($KEYSTONE_REQ)"
        return 0
    fi
    if [ ! -x "$KS_HOME/bin/python" ]; then
        log "creating virtual environment $KS_HOME"
        mkdir -p "$KS_HOME"
        "$PYTHON" -m venv "$KS_HOME"
    fi
    log "installing $KEYSTONE_REQ into $KS_HOME (log: $KS_HOME/pip.log)"
    # twisted[tls]: the WSGI server (its endpoints import service_identity).
    if ! "$KS_HOME/bin/pip" install -q "$KEYSTONE_REQ" 'twisted[tls]' >"$KS_HOME/pip.log" 2>&1; then
        tail -n 40 "$KS_HOME/pip.log" >&2
        log "pip install failed (full output: $KS_HOME/pip.log)"
        return 1
    fi
    echo "$KEYSTONE_REQ" >"$stamp"
    log "virtual environment ok ($KEYSTONE_REQ)"
}

# Write $2 to file $1 only when it differs (so nothing restarts needlessly).
write_if_changed() {
    local path="$1" content="$2"
    if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
        return 0
    fi
    printf '%s\n' "$content" >"$path"
}

ensure_ks_config() {
    mkdir -p "$KS_DATA"
    write_if_changed "$KS_CONF" "[DEFAULT]
log_file = $KS_DATA/keystone-server.log

[database]
connection = sqlite:///$KS_DATA/keystone.sqlite

[fernet_tokens]
key_repository = $KS_DATA/fernet-keys

[credential]
key_repository = $KS_DATA/credential-keys

[token]
expiration = 3600"
    # The WSGI entry point: oslo.config parses sys.argv on import, so the
    # program name alone is left there.
    write_if_changed "$KS_HOME/csvc_keystone_wsgi.py" "import os
import sys

sys.argv = [sys.argv[0]]
os.environ.setdefault('OS_KEYSTONE_CONFIG_FILES', '$KS_CONF')

from keystone.server import wsgi

application = wsgi.initialize_public_application()"
}

ks_manage() { "$KS_HOME/bin/keystone-manage" --config-file "$KS_CONF" "$@"; }

ensure_ks_database() {
    local synced="$KS_DATA/.db-synced"
    if [ ! -f "$synced" ] || [ "$(cat "$synced")" != "$KEYSTONE_REQ" ] || [ ! -f "$KS_DATA/keystone.sqlite" ]; then
        log "keystone-manage db_sync"
        ks_manage db_sync >>"$KS_DATA/manage.log" 2>&1
        echo "$KEYSTONE_REQ" >"$synced"
    fi
    if [ ! -f "$KS_DATA/fernet-keys/0" ]; then
        log "keystone-manage fernet_setup"
        ks_manage fernet_setup --keystone-user root --keystone-group root >>"$KS_DATA/manage.log" 2>&1
    fi
    if [ ! -f "$KS_DATA/credential-keys/0" ]; then
        log "keystone-manage credential_setup"
        ks_manage credential_setup --keystone-user root --keystone-group root >>"$KS_DATA/manage.log" 2>&1
    fi
    if [ ! -f "$KS_DATA/.bootstrapped" ]; then
        log "keystone-manage bootstrap"
        ks_manage bootstrap --bootstrap-password "$KS_ADMIN_PASSWORD" \
            --bootstrap-admin-url "$KS_URL" --bootstrap-public-url "$KS_URL" \
            --bootstrap-internal-url "$KS_URL" --bootstrap-region-id RegionOne >>"$KS_DATA/manage.log" 2>&1
        touch "$KS_DATA/.bootstrapped"
    fi
}

ensure_ks_server() {
    if ks_answers; then
        log "server ok ($KS_URL)"
        return 0
    fi
    log "starting the server on 127.0.0.1:$KS_PORT (log: $KS_LOG)"
    # Detached from this shell (own session, no inherited fds), so that make
    # and CI do not wait on it.
    (
        cd "$KS_HOME"
        PYTHONPATH="$KS_HOME" OS_KEYSTONE_CONFIG_FILES="$KS_CONF" setsid nohup \
            "$KS_HOME/bin/twistd" -n --pidfile= web \
            --listen "tcp:$KS_PORT:interface=127.0.0.1" --wsgi csvc_keystone_wsgi.application \
            >>"$KS_LOG" 2>&1 </dev/null &
    )
    local i
    for ((i = 0; i < KS_WAIT * 4; i++)); do
        if ks_answers; then
            log "server ok ($KS_URL, started in $((i / 4))s)"
            return 0
        fi
        sleep 0.25
    done
    log "Keystone did not answer within ${KS_WAIT}s; last log lines:"
    tail -n 30 "$KS_LOG" >&2 || true
    return 1
}

ensure_ks_accounts() {
    CSVC_KEYSTONE_URL="$KS_URL" CSVC_KEYSTONE_ADMIN_PASSWORD="$KS_ADMIN_PASSWORD" \
        "$KS_HOME/bin/python" "$REPO_ROOT/scripts/keystone_accounts.py"
    log "test accounts ok"
}

main() {
    ensure_ks_venv
    ensure_ks_config
    ensure_ks_database
    ensure_ks_server
    ensure_ks_accounts
}

main "$@"

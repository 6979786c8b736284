#!/usr/bin/env bash
# Bring a fresh Debian machine (running as root, no systemd) to the point
# where csvc can run and be tested: Debian packages, a running Docker engine,
# the locally built image csvc/busybox:latest and the virtual environment
# .venv with csvc installed in editable mode.
#
# Idempotent: every step checks first and does nothing when its component is
# already there, so a second run takes a few seconds.
#
# Optional components (off by default) are switched on by environment
# variables, each handled by its own ensure_* function below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

APT_PACKAGES=(docker.io docker-compose busybox-static postgresql chromium lxc iproute2 socat
              golang-github-docker-docker-dev linux-perf)
DOCKER_SOCK=/var/run/docker.sock
DOCKERD_LOG=/var/log/csvc-dockerd.log
DOCKERD_WAIT=60
IMAGE=csvc/busybox:latest
PYTHON="${PYTHON:-python3}"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.csvc-installed"

TMP_ROOTFS=
cleanup() { if [ -n "$TMP_ROOTFS" ]; then rm -rf "$TMP_ROOTFS"; fi; }
trap cleanup EXIT

log() { echo "bootstrap: $*" >&2; }

# Talk to the engine on the standard socket, whatever DOCKER_HOST says.
docker_cli() { DOCKER_HOST="unix://$DOCKER_SOCK" docker "$@"; }

# Install the given Debian packages that are not installed yet; run
# apt-get update only if something must be installed.
apt_install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        if [ "$(dpkg -s "$pkg" 2>/dev/null | sed -n 's/^Status: //p')" != "install ok installed" ]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q "${missing[@]}" >&2
}

ensure_apt() {
    apt_install_missing "${APT_PACKAGES[@]}"
    log "Debian packages ok"
}

docker_answers() { docker_cli info >/dev/null 2>&1; }

ensure_dockerd() {
    if docker_answers; then
        log "Docker engine ok"
        return 0
    fi
    local dockerd_bin
    dockerd_bin="$(command -v dockerd || true)"
    if [ -z "$dockerd_bin" ]; then
        log "dockerd not found (is docker.io installed?)"
        return 1
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # Detached from this shell: own session, no terminal, no inherited fds,
    # so that make and CI do not wait on it.
    setsid nohup "$dockerd_bin" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local i
    for ((i = 0; i < DOCKERD_WAIT; i++)); do
        if docker_answers; then
            log "Docker engine ok (started in ${i}s)"
            return 0
        fi
        sleep 1
    done
    log "dockerd did not answer within ${DOCKERD_WAIT}s; last log lines:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    return 1
}

ensure_image() {
    if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then
        log "image $IMAGE ok"
        return 0
    fi
    log "building image $IMAGE from /bin/busybox"
    local rootfs applet
    rootfs="$(mktemp -d)"
    TMP_ROOTFS="$rootfs"  # removed by the EXIT trap, however the script ends

    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/usr/bin" "$rootfs/sbin" "$rootfs/root"
    mkdir -p "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    chmod 0755 "$rootfs/bin/busybox"
    while read -r applet; do
        [ -n "$applet" ] || continue
        if [ ! -e "$rootfs/bin/$applet" ] && [ ! -L "$rootfs/bin/$applet" ]; then
            ln -s busybox "$rootfs/bin/$applet"
        fi
    done < <("$rootfs/bin/busybox" --list)

    cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    cat >"$rootfs/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost
EOF

    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . \
        | docker_cli import -c 'ENV PATH=/bin:/usr/bin:/sbin' - "$IMAGE" >/dev/null
    rm -rf "$rootfs"
    TMP_ROOTFS=
    log "image $IMAGE built"
}

venv_up_to_date() {
    [ -f "$STAMP" ] || return 1
    [ "$REPO_ROOT/setup.py" -nt "$STAMP" ] && return 1
    # -I: do not let the current directory (the repo root) satisfy the import.
    (cd / && "$VENV/bin/python" -I -c 'import csvc') >/dev/null 2>&1 || return 1
    return 0
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtual environment .venv"
        "$PYTHON" -m venv "$VENV"
    fi
    if venv_up_to_date; then
        log "virtual environment ok"
        return 0
    fi
    # editable_mode=compat puts the repo on sys.path, which Twisted's plugin
    # discovery (twisted/plugins/ in every sys.path entry) needs.
    log "installing csvc into .venv (pip install -e '.[test]')"
    # Full pip output goes to a log file; shown only if the install fails.
    if ! "$VENV/bin/pip" install -q -e '.[test]' --config-settings editable_mode=compat >"$VENV/.csvc-pip.log" 2>&1; then
        tail -n 40 "$VENV/.csvc-pip.log" >&2
        log "pip install failed (full output: .venv/.csvc-pip.log)"
        return 1
    fi
    touch "$STAMP"
    log "virtual environment ok"
}

# --- Optional components, off by default -----------------------------------
# Each is switched on by its own environment variable and does nothing
# otherwise. Add further ones here and call them from main.

# A PostgreSQL server of csvc's own for the scale-out store and its tests:
# a cluster in $PG_DATA on 127.0.0.1:$PG_PORT, owned by the postgres user,
# with role and database "csvc" (password "csvc"); its URL is
# postgresql://csvc:csvc@127.0.0.1:55432/csvc (the tests' default).
PG_PORT="${CSVC_PG_PORT:-55432}"
PG_DATA=/var/lib/csvc-postgres/data
PG_LOG=/var/log/csvc-postgres.log

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] || { log "PostgreSQL binaries not found"; return 1; }
    echo "$dir"
}

pg_as_postgres() { (cd / && runuser -u postgres -- "$@"); }

ensure_postgres() {
    local bin
    bin=$(pg_bin)
    if ! [ -f "$PG_DATA/PG_VERSION" ]; then
        log "creating PostgreSQL cluster in $PG_DATA"
        mkdir -p "$PG_DATA"
        chown -R postgres:postgres "$(dirname "$PG_DATA")"
        pg_as_postgres "$bin/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null
    fi
    if ! pg_as_postgres "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
        touch "$PG_LOG" && chown postgres:postgres "$PG_LOG"
        pg_as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
            -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    fi
    if ! pg_as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_roles WHERE rolname='csvc'" | grep -q 1; then
        pg_as_postgres "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres \
            -c "CREATE ROLE csvc LOGIN PASSWORD 'csvc' CREATEDB"
    fi
    if ! pg_as_postgres "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='csvc'" | grep -q 1; then
        pg_as_postgres "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE csvc OWNER csvc"
    fi
    log "PostgreSQL ok (127.0.0.1:$PG_PORT)"
}

# A real Keystone on 127.0.0.1:5000 for the tests of --auth keystone
# (scripts/keystone.sh: its own venv in /opt/csvc-keystone, SQLite, test
# accounts); CSVC_KEYSTONE=0 skips it.
ensure_keystone() {
    if [ "${CSVC_KEYSTONE:-1}" = "0" ]; then
        log "Keystone skipped (CSVC_KEYSTONE=0)"
        return 0
    fi
    bash "$REPO_ROOT/scripts/keystone.sh"
    log "Keystone ok"
}

main() {
    ensure_apt
    ensure_dockerd
    ensure_image
    ensure_venv
    ensure_postgres
    ensure_keystone
    log "done"
}

main "$@"

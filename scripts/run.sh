#!/usr/bin/env bash
# Start csvc with the embedded default: SQLite in the data dir, the API on
# 127.0.0.1:8780, agents on 127.0.0.1:8781 and one local agent instance.
# Creates (or upgrades) the database and prints an admin token for the
# project "demo" with an example request. Run `make run` rather than this
# script directly, so that scripts/bootstrap.sh sets up what is missing first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DATA="${CSVC_DATA_DIR:-./var}"
mkdir -p "$DATA"

.venv/bin/csvc-manage --data-dir "$DATA" db upgrade
TOKEN=$(.venv/bin/csvc-manage --data-dir "$DATA" token create --project demo --user demo --admin | tail -n 1)

cat <<EOF

csvc is starting with the embedded default (data dir: $DATA).

  Token:      $TOKEN
  Project id: demo

Create and run a container:

  curl -s -X POST -H "X-Auth-Token: $TOKEN" -H "X-Auth-Project-Id: demo" -H 'Content-Type: application/json' -d '{"image": "csvc/busybox", "command": ["sh", "-c", "echo hello from \$HOSTNAME"], "run": true}' http://127.0.0.1:8780/v1/containers

Then, with the uuid from the answer in place of UUID, read its logs:

  curl -s -H "X-Auth-Token: $TOKEN" -H "X-Auth-Project-Id: demo" http://127.0.0.1:8780/v1/containers/UUID/logs

and wait for it to exit (the answer has its exit code):

  curl -s -X POST -H "X-Auth-Token: $TOKEN" -H "X-Auth-Project-Id: demo" http://127.0.0.1:8780/v1/containers/UUID/wait

EOF

exec .venv/bin/twistd -n --pidfile= csvc --data-dir "$DATA"

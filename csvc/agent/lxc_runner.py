"""
One run of an LXC container, detached from the agent (``python -m
csvc.agent.lxc_runner LXCPATH NAME RUN``).

The runner daemonizes, runs the container's command with ``lxc-execute`` and
appends what the command writes to stdout and stderr, in the order it was
read, to the container's output file as Docker-style multiplexed frames
(``csvc.stdio.frames``): the agent reads that file as it would Docker's
attach stream or log.  Once both pipes are at their end and the process has
exited, the exit code is written (atomically) for the agent's ``inspect``.
The agent may restart meanwhile: the run and its output do not depend on it.

An interactive container's stdin is a UNIX socket next to the output file:
what a connection sends is written to the command's stdin (one connection at
a time, read only as fast as the command takes it), and the connection's end
closes the command's stdin, as Docker's ``StdinOnce``.

Only the standard library and the frame codec are imported here.
"""

import json
import os
import selectors
import socket
import subprocess
import sys
from datetime import datetime, timezone

from csvc.stdio.frames import encode_frame

#: The command runs in its working directory (created if missing, as Docker
#: does) with exactly the container's environment.
WRAPPER = 'mkdir -p "$1" && cd "$1" || exit 127; shift; exec "$@"'
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

META = "csvc.json"
OUTPUT = "csvc-output"
EXIT = "csvc-exit.json"
RUN = "csvc-run.json"
LXC_LOG = "csvc-lxc.log"
STDIN = "stdin"

READ_SIZE = 64 * 1024


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def write_json(path, value):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def command_line(lxcpath, name, meta):
    """
    The ``lxc-execute`` argv running the container's command.
    """
    environment = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": name}
    environment.update(meta.get("environment") or {})
    command = list(meta.get("entrypoint") or []) + list(meta.get("command") or [])
    if not command:
        command = ["sh"]
    env = [f"{k}={v}" for k, v in environment.items()]
    log = os.path.join(lxcpath, name, LXC_LOG)
    return [
        "lxc-execute", "-q", "-o", log, "-l", "ERROR", "-P", lxcpath, "-n", name, "--",
        "/bin/sh", "-c", WRAPPER, "csvc", meta.get("workdir") or "/",
        "env", "-i", *env, *command,
    ]


class StdinRelay:
    """
    The stdin socket of an interactive run, relayed to the command's stdin
    pipe without blocking the output loop.
    """

    def __init__(self, selector, path, pipe):
        self._selector = selector
        self._path = path
        self._pipe = pipe
        self._pending = b""
        self._client = None
        if os.path.exists(path):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(4)
        self._listener.setblocking(False)
        os.set_blocking(pipe.fileno(), False)
        selector.register(self._listener, selectors.EVENT_READ, self._accept)

    def _accept(self):
        connection, _ = self._listener.accept()
        if self._client is not None:
            connection.close()
            return
        connection.setblocking(False)
        self._client = connection
        self._selector.register(connection, selectors.EVENT_READ, self._read)

    def _read(self):
        try:
            data = self._client.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self._pending = data
        self._selector.unregister(self._client)
        self._selector.register(self._pipe, selectors.EVENT_WRITE, self._write)

    def _write(self):
        try:
            written = os.write(self._pipe.fileno(), self._pending)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self._pending = self._pending[written:]
        if not self._pending:
            self._selector.unregister(self._pipe)
            self._selector.register(self._client, selectors.EVENT_READ, self._read)

    def close(self):
        """
        The command's stdin ends; no further connection is taken.
        """
        for item in (self._client, self._pipe, self._listener):
            if item is None:
                continue
            try:
                self._selector.unregister(item)
            except (KeyError, ValueError):
                pass
            try:
                item.close()
            except OSError:
                pass
        self._client = self._pipe = self._listener = None
        if os.path.exists(self._path):
            os.unlink(self._path)


def run(lxcpath, name, run_number):
    directory = os.path.join(lxcpath, name)
    with open(os.path.join(directory, META)) as f:
        meta = json.load(f)
    write_json(os.path.join(directory, RUN), {"run": run_number, "pid": os.getpid()})
    out = os.open(os.path.join(directory, OUTPUT), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    interactive = bool(meta.get("interactive"))
    try:
        process = subprocess.Popen(
            command_line(lxcpath, name, meta),
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        os.write(out, encode_frame(2, f"lxc-execute: {exc}\n".encode()))
        code = 127
    else:
        selector = selectors.DefaultSelector()
        streams = {process.stdout.fileno(): 1, process.stderr.fileno(): 2}
        for pipe in (process.stdout, process.stderr):
            selector.register(pipe, selectors.EVENT_READ, None)
        stdin = StdinRelay(selector, os.path.join(directory, STDIN), process.stdin) if interactive else None
        while streams:
            for key, _ in selector.select():
                if key.data is not None:
                    key.data()
                    continue
                data = os.read(key.fd, READ_SIZE)
                if not data:
                    selector.unregister(key.fileobj)
                    del streams[key.fd]
                    continue
                os.write(out, encode_frame(streams[key.fd], data))
        if stdin is not None:
            stdin.close()
        code = process.wait()
        if code < 0:
            code = 128 - code
    os.close(out)
    write_json(os.path.join(directory, EXIT), {"run": run_number, "exit_code": code, "finished_at": now()})


def main(argv):
    lxcpath, name, run_number = argv[1], argv[2], int(argv[3])
    # Detach: the agent's Popen returns once the first child exits.
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    run(lxcpath, name, run_number)


if __name__ == "__main__":
    main(sys.argv)

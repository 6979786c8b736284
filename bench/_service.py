"""
Shared set-up for the benchmarks in bench/ (not a benchmark itself).

- ``Service``: the real control plane (``twistd -n csvc``) as a subprocess in
  its own process group, on free loopback ports, in a temporary data dir,
  with an admin token from ``csvc-manage`` (the approach of lifecycle.py,
  with extra options: ``--instances``, rate caps, a raised RLIMIT_NOFILE).
- ``WSClient``: a minimal blocking WebSocket client on a raw socket (RFC 6455
  handshake, unmasked server frames parsed from a 1 MiB receive buffer,
  masked client frames).  It is much cheaper per byte than websocket-client's
  ``recv_data`` loop, so the client is not the bottleneck on 2 cores.
- ``FrameParser``: the incremental frame parser it uses (also used by the
  multi-session client in ``_wsclient.py``).
- ``docker_hijack``: a raw attach socket on the Docker engine (what the SDK's
  ``attach_socket`` does: ``POST /containers/ID/attach`` with an Upgrade).
- ``parse_args``: a bench's options with ``--smoke`` (the bench at a tiny
  size, for tests/bench).
- small things: ``free_port``, ``percentile``, ``rss_kib``, ``progress``.
"""

import base64
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

PROJECT = "bench"
SERVICE_IMAGE = "csvc/busybox"
IMAGE = "csvc/busybox:latest"
#: Seconds the service may take to be ready, plus so many per local agent:
#: agents start in batches of 10 (csvc.providers.local), each a Python
#: process that takes seconds of CPU to register on a loaded 2-core machine.
READY_TIMEOUT = 60.0
READY_PER_INSTANCE = 3.0
STOP_TIMEOUT = 15.0
SUBPROTOCOL = "channel.csvc.v1"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")
DOCKER_SOCK = "/var/run/docker.sock"

#: As the agent creates containers (csvc/agent/docker_create.py).
LOG_CONFIG = {"Type": "local", "Config": {"max-size": "128m", "max-file": "8"}}


class BenchError(Exception):
    pass


#: Set to 1, every bench runs as with ``--smoke``.
SMOKE_ENV = "CSVC_BENCH_SMOKE"


def parse_args(parser, argv=None, **smoke):
    """
    ``parser.parse_args(argv)`` with one more option, ``--smoke`` (or
    ``CSVC_BENCH_SMOKE=1`` in the environment): the bench at a tiny size,
    ``smoke``'s values taking the place of the defaults (an option given on
    the command line still wins), so that it runs in seconds.  That is what
    tests/bench does to every bench, so that one that no longer works fails
    the tests; a smoke run's figures mean nothing.
    """
    parser.add_argument("--smoke", action="store_true",
                        help=f"a tiny run that only shows the bench works (also ${SMOKE_ENV}=1)")
    args = parser.parse_args(argv)
    unknown = sorted(set(smoke) - set(vars(args)))
    if unknown:
        raise ValueError(f"smoke sizes for options {parser.prog} does not have: {unknown}")
    if args.smoke or os.environ.get(SMOKE_ENV) == "1":
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
        args.smoke = True
        print(f"{parser.prog}: smoke run ({', '.join(f'{k}={v}' for k, v in smoke.items())}): "
              "its figures mean nothing", file=sys.stderr, flush=True)
    return args


def make_progress(name):
    def progress(msg):
        print(f"{name}: {msg}", file=sys.stderr, flush=True)

    return progress


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    """Linear-interpolation percentile (p in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rss_kib(pid):
    """VmRSS of a process, in KiB (from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def process_cpu_s(pid):
    """CPU seconds (user + system, every thread) a live process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_faults(pid):
    """Minor page faults a live process has taken (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def machine_busy_s():
    """CPU seconds the whole machine has spent working (all CPUs; idle,
    I/O wait and time stolen by the hypervisor left out), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    """CPU seconds of this process's children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_pids(pid):
    """The direct children of a process (from /proc/PID/task/*/children)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            continue
    return found


def raise_nofile(limit):
    """Raise this process's RLIMIT_NOFILE soft limit (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(limit, hard) if hard != resource.RLIM_INFINITY else limit
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- the service -------------------------------------------------------------


class Service:
    """
    ``twistd -n csvc`` in ``data_dir``.  ``instances`` local agents (0: none,
    then readiness is just the API answering); ``extra_args`` go to the csvc
    plugin (e.g. ``["--relay-rate", "1000000"]``); ``nofile`` sets the
    service's RLIMIT_NOFILE (soft and hard) before exec.
    """

    def __init__(self, data_dir, progress, instances=1, extra_args=(), nofile=None, project=PROJECT):
        self.data_dir = data_dir
        self.progress = progress
        self.instances = instances
        self.extra_args = list(extra_args)
        self.nofile = nofile
        self.project = project
        self.log_path = os.path.join(data_dir, "service.log")
        self.api_port = free_port()
        self.agents_port = free_port()
        while self.agents_port == self.api_port:
            self.agents_port = free_port()
        self.proc = None
        self.log_file = None
        self.token = None
        self.conn = None

    @property
    def pid(self):
        return self.proc.pid

    def create_token(self):
        manage = subprocess.run(
            [os.path.join(VENV_BIN, "csvc-manage"), "--data-dir", self.data_dir,
             "token", "create", "--project", self.project, "--admin"],
            cwd=REPO_ROOT, capture_output=True, text=True,
        )
        if manage.returncode != 0:
            raise BenchError(
                f"csvc-manage token create failed (exit {manage.returncode}):\n"
                f"{manage.stdout}{manage.stderr}"
            )
        lines = [l for l in manage.stdout.splitlines() if l.strip()]
        if not lines:
            raise BenchError(f"csvc-manage printed no token:\n{manage.stderr}")
        return lines[-1].strip()

    def start(self):
        self.token = self.create_token()
        self.log_file = open(self.log_path, "wb")
        cmd = [
            os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "csvc",
            "--data-dir", self.data_dir,
            "--api", f"tcp:{self.api_port}:interface=127.0.0.1",
            "--agents", f"tcp:{self.agents_port}:interface=127.0.0.1",
            "--instances", str(self.instances),
            *self.extra_args,
        ]
        nofile = self.nofile

        def preexec():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.progress(f"starting service: {' '.join(cmd)} (log: {self.log_path})")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec if nofile is not None else None,
        )
        self._wait_ready()

    def _connect(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=60)

    def auth_headers(self):
        return {"X-Auth-Token": self.token, "X-Auth-Project-Id": self.project}

    def request(self, method, path, body=None):
        headers = self.auth_headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self._connect()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self._connect()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, raw

    @property
    def ready_timeout(self):
        return READY_TIMEOUT + READY_PER_INSTANCE * self.instances

    def _wait_ready(self):
        started = time.monotonic()
        deadline = started + self.ready_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"service exited with {self.proc.returncode} before it was ready")
            try:
                status, raw = self.request("GET", "/v1/instances")
                last = f"{status} {raw[:500]!r}"
                if status == 200:
                    instances = json.loads(raw).get("instances", [])
                    active = sum(1 for i in instances if i.get("status") == "active")
                    if active >= self.instances:
                        self.progress(f"service ready on port {self.api_port} (pid {self.proc.pid}), "
                                      f"{active} instance(s) active after {time.monotonic() - started:.1f} s")
                        return
            except (OSError, http.client.HTTPException) as exc:
                last = repr(exc)
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
            time.sleep(0.2)
        raise BenchError(f"service not ready within {self.ready_timeout:.0f}s; last GET /v1/instances: {last}")

    # -- containers --------------------------------------------------------

    def create(self, spec):
        body = {"image": SERVICE_IMAGE}
        body.update(spec)
        status, raw = self.request("POST", "/v1/containers", body)
        if status not in (201, 202):
            raise BenchError(f"POST /v1/containers: {status} {raw[:2000]!r}")
        return json.loads(raw)["uuid"]

    def start_container(self, uuid):
        status, raw = self.request("POST", f"/v1/containers/{uuid}/start")
        if status not in (200, 202, 204):
            raise BenchError(f"POST /v1/containers/{uuid}/start: {status} {raw[:2000]!r}")

    def show(self, uuid):
        status, raw = self.request("GET", f"/v1/containers/{uuid}")
        if status != 200:
            raise BenchError(f"GET /v1/containers/{uuid}: {status} {raw[:2000]!r}")
        return json.loads(raw)

    def wait_status(self, uuid, statuses, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.show(uuid)
            if row.get("status") in statuses:
                return row
            time.sleep(0.1)
        raise BenchError(f"container {uuid} not in {statuses} within {timeout}s")

    def delete(self, uuid, force=True):
        status, raw = self.request("DELETE", f"/v1/containers/{uuid}" + ("?force=true" if force else ""))
        if status not in (204, 404):
            self.progress(f"DELETE /v1/containers/{uuid}: {status} {raw[:300]!r}")

    def attach_path(self, uuid, stdin=False, stdout=True, stderr=True, logs=False):
        q = "&".join(f"{k}={'true' if v else 'false'}" for k, v in
                     (("stdin", stdin), ("stdout", stdout), ("stderr", stderr), ("logs", logs)))
        return f"/v1/containers/{uuid}/attach?{q}"

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            pgid = self.proc.pid
            if self.proc.poll() is None:
                try:
                    os.killpg(pgid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.progress("service did not stop on SIGTERM; killing its process group")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                if sig == signal.SIGTERM:
                    time.sleep(1.0)
            if self.proc.poll() is None:
                self.proc.wait(5)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# -- WebSocket ---------------------------------------------------------------


class FrameParser:
    """
    Incremental parser of server-to-client frames (unmasked).  ``feed``
    returns a list of ``(opcode, payload)``; payloads of data frames are
    returned whole only when ``keep`` says so for their first byte, else as
    ``(first_byte, length)`` to spare copies (``payload`` is then an int
    pair).  Fragmented messages are not expected from autobahn (one frame
    per sendMessage); continuation frames are reported with opcode 0.
    """

    def __init__(self, keep_all=False):
        self._buf = bytearray()
        self.keep_all = keep_all

    def feed(self, data):
        buf = self._buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while True:
            if n - pos < 2:
                break
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if b1 & 0x80:
                head += 4  # masked (not from a server, but be lenient)
            if n - pos < head + length:
                break
            start = pos + head
            opcode = b0 & 0x0F
            if self.keep_all or opcode >= 8 or length == 0 or buf[start] not in (1, 2):
                out.append((opcode, bytes(buf[start:start + length])))
            else:
                out.append((opcode, (buf[start], length)))
            pos = start + length
        if pos:
            del buf[:pos]
        return out


def ws_frame(payload, opcode=2):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    if n:
        m = int.from_bytes(mask * ((n + 3) // 4), "big") >> (8 * ((-n) % 4))
        body = (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")
    else:
        body = b""
    return head + mask + body


def ws_handshake(sock, host, port, path, headers, subprotocol=SUBPROTOCOL):
    """Send the opening handshake; return the bytes read past the 101 head."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            raise BenchError(f"connection closed during the WebSocket handshake: {head[:500]!r}")
        head += data
    end = head.index(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise BenchError(f"WebSocket handshake refused: {head[:2000]!r}")
    return head[end + 4:]


class WSClient:
    """A blocking client of one attach session (channel subprotocol)."""

    RECV_SIZE = 64 * 1024

    def __init__(self, port, path, headers, host="127.0.0.1", timeout=120.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rest = ws_handshake(self.sock, host, port, path, headers)
        self.parser = FrameParser(keep_all=True)
        self._frames = []
        if rest:
            self._frames.extend(self.parser.feed(rest))

    def send_channel(self, channel, data):
        self.sock.sendall(ws_frame(bytes((channel,)) + data))

    def recv(self):
        """The next data message ``(channel, body)``; pings answered; None at close."""
        while True:
            while self._frames:
                opcode, payload = self._frames.pop(0)
                if opcode == 9:
                    self.sock.sendall(ws_frame(payload, opcode=10))
                    continue
                if opcode == 8:
                    return None
                if opcode in (1, 2, 0) and payload:
                    return payload[0], payload[1:]
            # Under glibc's mmap threshold (128 KiB): a read of 1 MiB was a
            # mmap before and a mremap and a munmap after each keystroke's
            # echo in this client (~70 us between the echo's arrival and its
            # parsing, in a syscall trace) that the direct client's 4 KiB
            # reads do not pay.
            data = self.sock.recv(self.RECV_SIZE)
            if not data:
                return None
            self._frames.extend(self.parser.feed(data))

    def close(self):
        try:
            self.sock.sendall(ws_frame(struct.pack("!H", 1000), opcode=8))
        except OSError:
            pass
        self.sock.close()


# -- the Docker engine directly ---------------------------------------------


def docker_hijack(engine_id, stdin=False, stdout=True, stderr=True, path=DOCKER_SOCK):
    """
    A raw attach socket on the engine (as the SDK's ``attach_socket``):
    ``POST /containers/ID/attach?stream=1&...`` upgraded; returns
    ``(socket, bytes already read past the head)``.  ``path``: the engine's
    API socket, or a ``Hops`` chain in front of it.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    query = f"stream=1&stdin={int(stdin)}&stdout={int(stdout)}&stderr={int(stderr)}"
    sock.sendall(
        (f"POST /containers/{engine_id}/attach?{query} HTTP/1.1\r\nHost: docker\r\n"
         "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n").encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            raise BenchError(f"engine closed the attach: {head!r}")
        head += data
    end = head.index(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0] + b" " and b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise BenchError(f"engine refused the attach: {head[:1000]!r}")
    return sock, head[end + 4:]


class Hops:
    """
    ``count`` copying processes in a chain in front of the engine's API
    socket (``with Hops("socat", 2, tmp) as hops: docker_hijack(...,
    path=hops.path)``): a relay of as many processes as csvc's (agent,
    control plane) that does nothing but copy, with the relay's 256 KiB
    reads.  ``kind`` "socat" copies in C (socat comes from
    scripts/bootstrap.sh); "twisted" in Python on Twisted, as the relay
    writes and with its process settings (bench/_twisted_hop.py): what the
    engine's attach costs through them is the floor such a relay meets on
    this machine, in C and on csvc's own stack.
    """

    BUFFER = 256 * 1024
    KINDS = ("socat", "twisted")

    def __init__(self, kind, count, directory):
        if kind not in self.KINDS:
            raise ValueError(f"hops of kind {kind!r}: one of {', '.join(self.KINDS)}")
        if kind == "socat" and shutil.which("socat") is None:
            raise BenchError("socat is not installed (scripts/bootstrap.sh installs it)")
        self.kind = kind
        self.count = count
        self.directory = directory
        self.path = DOCKER_SOCK
        self.procs = []

    @property
    def name(self):
        return f"{self.kind}_{self.count}_hop{'s' if self.count > 1 else ''}"

    def _command(self, listen):
        if self.kind == "socat":
            return ["socat", "-b", str(self.BUFFER), f"UNIX-LISTEN:{listen},fork", f"UNIX-CONNECT:{self.path}"]
        return [sys.executable, os.path.join(REPO_ROOT, "bench", "_twisted_hop.py"), listen, self.path,
                "--buffer", str(self.BUFFER)]

    def __enter__(self):
        for i in range(self.count):
            listen = os.path.join(self.directory, f"{self.kind}-chain{self.count}-{i + 1}.sock")
            self.procs.append(subprocess.Popen(
                self._command(listen),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            deadline = time.monotonic() + 10
            while not os.path.exists(listen):
                if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                    self.__exit__(None, None, None)
                    raise BenchError(f"{self.kind} did not listen on {listen}")
                time.sleep(0.01)
            self.path = listen
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(10)
        self.procs = []


# -- the client subprocess ---------------------------------------------------


class ClientProcess:
    """
    ``_wsclient.py`` as a subprocess: ``ready`` (its monotonic time) once
    every session is attached, ``result()`` its JSON at the end.
    """

    def __init__(self, service, paths, mode="drain", duration=None, sample=0.25, progress=None):
        # ``--token=T``: a token is url-safe base64, and one in 64 begins
        # with "-", which argparse takes for an option when it stands alone
        # (relay_throughput failed so twice in about 40 runs on 2026-11-27).
        cmd = [sys.executable, os.path.join(REPO_ROOT, "bench", "_wsclient.py"),
               "--port", str(service.api_port), f"--token={service.token}",
               f"--project={service.project}", "--mode", mode, "--sample", str(sample)]
        if duration is not None:
            cmd += ["--duration", str(duration)]
        cmd += list(paths)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.proc.kill()
            raise BenchError(f"WebSocket client failed to attach (printed {line!r})")
        self.ready = float(line.split()[1])

    @property
    def pid(self):
        return self.proc.pid

    def release(self):
        """For idle/stall clients: close the sessions."""
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def result(self, timeout=600):
        out, _ = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise BenchError(f"WebSocket client exited with {self.proc.returncode}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

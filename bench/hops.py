#!/usr/bin/env python
"""
What one keystroke costs at each Python step of the relay, in a hot loop on
this machine (no engine, no service): the figures echo_latency's analysis
in docs/benchmarks.md quotes.

    .venv/bin/python bench/hops.py [--n N] [--rtt-count C] [--smoke]

- ``autobahn_us``: autobahn parsing one masked 2-byte binary message and
  calling onMessage (what AttachProtocol no longer does for such frames);
- ``attach_frame_us``: the same message through AttachProtocol's own frame
  reader (csvc/relay/websocket.py);
- ``amp_output_us``, ``amp_input_us``: an Output / Input box received,
  dispatched to a responder that answers at once, and the answer written,
  as the services do it (csvc/fastpath/boxes.py's fast commands);
- ``call_output_us``: ``callRemote(Output)`` of 1 byte, box written, the
  same way;
- ``amp_generic``: those three through AMP's own dispatch and callRemote
  (csvc/fastpath/boxes.py's reader and writer only), for comparison;
- ``tcp_rtt_us``: p50/p99 of one byte back and forth between two
  processes over loopback TCP, 2 ms apart (the kernel's part of a hop).

baseline: the TCP round trip; ratio = (autobahn_us + amp_input_us +
amp_output_us) / tcp_rtt p50, the Python of a keystroke's hops against the
kernel's.
"""

import argparse
import json
import os
import socket
import time

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import amp

from _service import parse_args

from csvc.wire import commands
from csvc.fastpath.boxes import FastBoxes
from csvc.relay.websocket import attach_factory

UUID = "2182f85d-4727-49df-a19c-999da2414439"


def per_call(n, fn, rounds=5):
    """
    Microseconds per call: the best of ``rounds`` loops of ``n / rounds``
    calls (the others met the machine's neighbours or a collection).
    """
    each = max(1, n // rounds)
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(each):
            fn()
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return round(best / each * 1e6, 2)


def masked(payload, mask=b"\x01\x02\x03\x04"):
    return bytes((0x82, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Context:
    container_uuid, project_id, stdin, secure, allowed_origins, raw_only, idle_timeout = (
        "c", "p", True, False, (), False, None)

    def __init__(self):
        self.clock = Clock()

    def open_session(self, sink):
        return type("S", (), {"start": lambda s: None, "stop": lambda s: None, "pauseProducing": lambda s: None,
                              "resumeProducing": lambda s: None, "stopProducing": lambda s: None})()

    def write_stdin(self, data):
        return succeed(None)

    def opened(self, protocol):
        pass

    def closed(self, protocol):
        pass


def websocket(n):
    protocol = attach_factory(Context()).buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: channel.csvc.v1\r\n\r\n"
    )
    frame = masked(b"\x00a")
    ours = per_call(n, lambda: protocol.dataReceived(frame))
    # autobahn's own path: its _dataReceived, which AttachProtocol overrides.
    theirs = per_call(n, lambda: type(protocol).__mro__[1]._dataReceived(protocol, frame))
    return theirs, ours


class Server(FastBoxes, amp.AMP):
    @commands.Output.responder
    def output(self, uuid, seq, stream, data, cursor):
        return succeed({})

    @commands.Input.responder
    def input(self, uuid, data):
        return succeed({})


class FastServer(Server):
    fast_commands = commands.STREAM_COMMANDS


def boxes(n, fast):
    client = type("C", (FastBoxes, amp.AMP), {"fast_commands": commands.STREAM_COMMANDS if fast else ()})()
    transport = StringTransport()
    client.makeConnection(transport)
    client.callRemote(commands.Output, uuid=UUID, seq=5, stream=1, data=b"a", cursor="R|1|2")
    output = transport.value()
    transport.clear()
    client.callRemote(commands.Input, uuid=UUID, data=b"a")
    stdin = transport.value()
    transport.clear()
    server = FastServer() if fast else Server()
    server.makeConnection(StringTransport())
    out_us = per_call(n, lambda: server.dataReceived(output))
    in_us = per_call(n, lambda: server.dataReceived(stdin))
    call_us = per_call(n, lambda: client.callRemote(
        commands.Output, uuid=UUID, seq=5, stream=1, data=b"a", cursor="R|1|2"))
    return out_us, in_us, call_us


def tcp_rtt(count=2000):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:
        peer = socket.create_connection(listener.getsockname())
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = peer.recv(100)
            if not data:
                os._exit(0)
            peer.send(data)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        conn.send(b"x")
        conn.recv(100)
        times.append((time.perf_counter() - t0) * 1e6)
        time.sleep(0.002)
    conn.close()
    os.waitpid(pid, 0)
    times.sort()
    return {"p50_us": round(times[len(times) // 2], 1), "p99_us": round(times[int(len(times) * 0.99)], 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="calls per hot loop, in 5 rounds (the best is kept) [20000]")
    parser.add_argument("--rtt-count", type=int, default=2000, help="TCP round trips, 2 ms apart [2000]")
    args = parse_args(parser, argv, n=200, rtt_count=50)
    autobahn_us, attach_us = websocket(args.n)
    out_us, in_us, call_us = boxes(args.n, fast=True)
    generic = dict(zip(("amp_output_us", "amp_input_us", "call_output_us"), boxes(args.n, fast=False)))
    rtt = tcp_rtt(args.rtt_count)
    print(json.dumps({
        "bench": "hops",
        "n": args.n,
        "autobahn_us": autobahn_us,
        "attach_frame_us": attach_us,
        "amp_output_us": out_us,
        "amp_input_us": in_us,
        "call_output_us": call_us,
        "amp_generic": generic,
        "baseline": {"tcp_rtt": rtt},
        "ratio": round((autobahn_us + in_us + out_us) / rtt["p50_us"], 3),
    }), flush=True)


if __name__ == "__main__":
    main()

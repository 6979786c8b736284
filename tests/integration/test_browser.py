"""
The browser terminal in a real browser: Debian's headless Chromium, driven
through the Chrome DevTools Protocol over its WebSocket, attached to a TTY
busybox shell through the running service.
"""

import base64
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from urllib.parse import quote

import pytest
import requests
import websocket

#: Every wait in this module is bounded by this many seconds.
WAIT = 30

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1000,640",
    "--remote-debugging-port=0",
]

XTERM_TEXT = "(() => { const rows = document.querySelector('.xterm-rows'); return rows ? rows.innerText : ''; })()"
STATUS_TEXT = "(() => { const s = document.getElementById('status'); return s ? s.textContent : ''; })()"
ROW_COUNT = "document.querySelectorAll('.xterm-rows > div').length"
#: what ``stty size`` prints: a line of its own with rows and columns
STTY_SIZE = re.compile(r"^(\d+) (\d+) *$", re.M)


def wait_for(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class DevTools:
    """
    One page target of the browser, over the DevTools WebSocket: commands
    answered in order, events kept for inspection.
    """

    def __init__(self, url):
        # No Origin header: Chromium refuses DevTools clients from web origins.
        self._socket = websocket.create_connection(url, timeout=WAIT, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events = []

    def call(self, method, **params):
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = json.loads(self._socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append(message)
        raise AssertionError(f"{method}: no answer after {WAIT}s")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def messages(self):
        """
        What the page logged: console calls, browser log entries (CSP
        violations among them) and uncaught exceptions.
        """
        out = []
        for event in self.events:
            params = event["params"]
            if event["method"] == "Log.entryAdded":
                out.append(f"{params['entry']['level']}: {params['entry']['text']}")
            elif event["method"] == "Runtime.consoleAPICalled":
                out.append(f"console.{params['type']}: " + " ".join(str(a.get("value")) for a in params["args"]))
            elif event["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails']}")
        return out

    def close(self):
        self._socket.close()


class Chromium:
    def __init__(self, profile):
        self.profile = profile
        self.process = None

    def start(self):
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("Debian's chromium is not installed: run `make bootstrap` first")
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        active_port = os.path.join(self.profile, "DevToolsActivePort")

        def port():
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode}")
            try:
                with open(active_port) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                return None

        self.port = wait_for(port, "chromium's DevTools port")

    def page(self):
        def target():
            listed = requests.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json()
            pages = [t for t in listed if t["type"] == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        return DevTools(wait_for(target, "a page target"))

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def chromium(tmp_path):
    browser = Chromium(str(tmp_path / "chromium-profile"))
    try:
        browser.start()
        yield browser
    finally:
        browser.stop()


@pytest.fixture
def page(chromium):
    tab = chromium.page()
    try:
        for domain in ("Page", "Runtime", "Log"):
            tab.call(f"{domain}.enable")
        yield tab
    finally:
        tab.close()


def test_a_shell_in_the_browser_terminal(alpha, page, tmp_path):
    container = alpha.create(command=["sh"], tty=True, interactive=True, run=True)
    uuid = container["uuid"]
    token = alpha.session.headers["X-Auth-Token"]
    url = f"{alpha.base}/ui/containers/{uuid}#token={quote(token, safe='')}&project={quote(alpha.project, safe='')}"

    page.call("Page.navigate", url=url)

    def shown():
        return (page.evaluate(XTERM_TEXT) or "").replace("\xa0", " ")

    def trouble():
        return f"status {page.evaluate(STATUS_TEXT)!r}; terminal {shown()!r}; page said {page.messages()}"

    try:
        # busybox's root prompt
        wait_for(lambda: "# " in shown(), "the shell prompt")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {trouble()}") from None
    assert page.evaluate(STATUS_TEXT) == "connected"
    # The credentials do not stay in the address bar.
    assert "token" not in page.evaluate("location.href")

    # Click into the terminal, as a person would.
    box = page.evaluate(
        "(() => { const r = document.querySelector('.xterm-screen').getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_line(text):
        page.call("Input.insertText", text=text)
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
        page.call("Input.dispatchKeyEvent", type="rawKeyDown", **enter)
        page.call("Input.dispatchKeyEvent", type="keyUp", **enter)

    def tty_size(accept):
        """
        ``stty size`` in the shell until its answer is acceptable: the
        resize travels apart from stdin, so ask again while it is on its way.
        """
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            type_line("stty size")
            asked = time.monotonic()
            while time.monotonic() - asked < 2:
                answers = [tuple(map(int, m)) for m in STTY_SIZE.findall(shown())]
                if answers and accept(*answers[-1]):
                    return answers[-1]
                time.sleep(0.1)
        raise AssertionError(f"stty size never satisfied the check: {trouble()}")

    # The page told the TTY its size when it connected...
    rows = page.evaluate(ROW_COUNT)
    rows_before, cols_before = tty_size(lambda r, c: r == rows)
    assert cols_before > 40

    # ...and tells it again when the window changes.
    page.call("Emulation.setDeviceMetricsOverride", width=640, height=400, deviceScaleFactor=1, mobile=False)
    rows_after = wait_for(lambda: (lambda n: n if n < rows_before else None)(page.evaluate(ROW_COUNT)), "a refit")
    tty_size(lambda r, c: r == rows_after and c < cols_before)

    type_line("echo hello-$((6*7)); exit 5")

    try:
        wait_for(lambda: "hello-42" in shown(), "the command's output")
        wait_for(lambda: page.evaluate(STATUS_TEXT) == "exited with code 5", "the exit status")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {trouble()}") from None
    assert shown().count("hello-42") == 1
    finished = alpha.wait_status(uuid, ("exited",))
    assert finished["exit_code"] == 5

    # The page loaded under its Content-Security-Policy without violations.
    assert not [m for m in page.messages() if "Content Security Policy" in m], page.messages()

    shot = page.call("Page.captureScreenshot", format="png")["data"]
    png = base64.b64decode(shot)
    path = tmp_path / "terminal.png"
    path.write_bytes(png)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_a_wrong_token_is_shown_on_the_page(alpha, page):
    container = alpha.create(command=["sh"], tty=True, interactive=True, run=True)
    page.call("Page.navigate", url=f"{alpha.base}/ui/containers/{container['uuid']}#token=wrong&project=alpha")
    status = wait_for(
        lambda: (lambda s: s if s.startswith("not authorized") else None)(page.evaluate(STATUS_TEXT)),
        "the 401 on the page",
    )
    assert "401" in status


def raw_get(base, path):
    """
    GET ``path`` exactly as written (no client-side ``..`` folding): the status.
    """
    host, port = base.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        return int(conn.makefile("rb").readline().split()[1])


def test_the_page_and_its_files_are_served_and_nothing_else(control_plane):
    base = control_plane.base
    page = requests.get(f"{base}/ui/containers/some-id", timeout=WAIT)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "some-id" not in page.text
    for path, kind in [
        ("terminal.js", "text/javascript"),
        ("terminal.css", "text/css"),
        ("xterm/xterm.js", "text/javascript"),
        ("xterm/xterm.css", "text/css"),
        ("xterm/LICENSE.xterm", "text/plain"),
    ]:
        reply = requests.get(f"{base}/ui/static/{path}", timeout=WAIT)
        assert reply.status_code == 200, path
        assert reply.headers["Content-Type"].startswith(kind), path
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    for path in [
        "/ui/static/",
        "/ui/static/xterm/",
        "/ui/static/nothing.js",
        "/ui/static/../ui.py",
        "/ui/static/%2e%2e/ui.py",
        "/ui/static/..%2fui.py",
        "/ui/static/xterm/..%2f..%2fui.py",
        "/ui/static/xterm/%2e%2e/%2e%2e/native.py",
        "/ui/containers/",
    ]:
        assert raw_get(base, path) == 404, path

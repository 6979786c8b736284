// The browser terminal: attach to a container with xterm.js.
//
// Opened as /ui/containers/<id>#token=<token>&project=<project>.  The
// fragment never reaches the server; it is removed from the address bar at
// once.  The page asks the API for a one-time attach URL (with the token in
// headers), then speaks the channel.csvc.v1 WebSocket subprotocol: every
// binary message starts with a channel byte.
(function () {
  "use strict";

  var SUBPROTOCOL = "channel.csvc.v1";
  var STDIN = 0, STDOUT = 1, STDERR = 2, STATUS = 3, RESIZE = 4;

  var statusLine = document.getElementById("status");
  var encoder = new TextEncoder();

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = kind || "";
  }

  function containerId() {
    var segments = location.pathname.split("/");
    return decodeURIComponent(segments[segments.length - 1]);
  }

  function credentials() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (location.hash) {
      history.replaceState(null, "", location.pathname + location.search);
    }
    return { token: params.get("token"), project: params.get("project") };
  }

  function frame(channel, bytes) {
    var message = new Uint8Array(bytes.length + 1);
    message[0] = channel;
    message.set(bytes, 1);
    return message;
  }

  // Why an API call failed, from its JSON error body when it has one.
  function describeFailure(response) {
    var fallback = "HTTP " + response.status;
    return response.json().then(function (body) {
      var message = body && body.error && body.error.message;
      return message ? fallback + ": " + message : fallback;
    }, function () { return fallback; });
  }

  var ident = containerId();
  var auth = credentials();
  document.getElementById("container").textContent = ident;
  document.title = "csvc " + ident;

  var term = new Terminal({
    cursorBlink: true,
    fontFamily: "monospace",
    fontSize: 14,
    scrollback: 5000,
    theme: { background: "#1e1e1e", foreground: "#d4d4d4" },
  });
  var fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();

  var socket = null;
  var exited = false;

  function send(channel, bytes) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(frame(channel, bytes));
    }
  }

  function sendSize() {
    send(RESIZE, encoder.encode(JSON.stringify({ cols: term.cols, rows: term.rows })));
  }

  // Refit at most once a frame while the window is being resized; xterm
  // reports a change of cols/rows through onResize.
  var refitPending = false;
  window.addEventListener("resize", function () {
    if (refitPending) return;
    refitPending = true;
    requestAnimationFrame(function () {
      refitPending = false;
      fit.fit();
    });
  });
  term.onResize(sendSize);

  // A paste may be more than the relay takes in one message (1 MiB):
  // stdin goes in messages of at most 64 KiB.
  var STDIN_MESSAGE = 65536;
  function sendStdin(bytes) {
    for (var i = 0; i < bytes.length; i += STDIN_MESSAGE) {
      send(STDIN, bytes.subarray(i, i + STDIN_MESSAGE));
    }
  }

  term.onData(function (data) {
    if (!exited) sendStdin(encoder.encode(data));
  });
  term.onBinary(function (data) {
    var bytes = new Uint8Array(data.length);
    for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
    if (!exited) sendStdin(bytes);
  });

  function onStatus(bytes) {
    var status;
    try {
      status = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return;
    }
    if (status.error) {
      setStatus("error: " + status.error, "error");
    } else if ("exit_code" in status) {
      exited = true;
      term.options.disableStdin = true;
      var text = status.exit_code === null ? "ended" : "exited with code " + status.exit_code;
      if (status.reason) text += " (" + status.reason + ")";
      setStatus(text, "exited");
    }
  }

  function connect(url) {
    if (location.protocol === "https:") url = url.replace(/^ws:/, "wss:");
    setStatus("connecting");
    socket = new WebSocket(url, SUBPROTOCOL);
    socket.binaryType = "arraybuffer";
    socket.onopen = function () {
      if (socket.protocol !== SUBPROTOCOL) {
        setStatus("the server did not accept the " + SUBPROTOCOL + " subprotocol", "error");
        socket.close();
        return;
      }
      setStatus("connected");
      fit.fit();
      sendSize();
      term.focus();
    };
    socket.onmessage = function (event) {
      var bytes = new Uint8Array(event.data);
      if (bytes.length === 0) return;
      var body = bytes.subarray(1);
      switch (bytes[0]) {
        case STDOUT:
        case STDERR:
          term.write(body);
          break;
        case STATUS:
          onStatus(body);
          break;
      }
    };
    socket.onclose = function (event) {
      socket = null;
      if (exited) return;
      var text = "disconnected (WebSocket closed, code " + event.code;
      if (event.reason) text += ": " + event.reason;
      setStatus(text + ")", "error");
    };
  }

  if (!auth.token || !auth.project) {
    setStatus("no credentials: open this page as .../ui/containers/" + ident +
              "#token=TOKEN&project=PROJECT", "error");
    return;
  }

  var attachURL = new URL("../../v1/containers/" + encodeURIComponent(ident) + "/attach", location.href);
  attachURL.search = "stdin=true&stdout=true&stderr=true&logs=true";
  setStatus("requesting an attach URL");
  fetch(attachURL, {
    headers: { "X-Auth-Token": auth.token, "X-Auth-Project-Id": auth.project },
    cache: "no-store",
    credentials: "omit",
  }).then(function (response) {
    if (!response.ok) {
      return describeFailure(response).then(function (why) {
        var prefix = {
          401: "not authorized",
          403: "forbidden",
          404: "no such container",
          409: "cannot attach",
        }[response.status] || "attach failed";
        throw new Error(prefix + " (" + why + ")");
      });
    }
    return response.json();
  }).then(function (grant) {
    connect(grant.url);
  }).catch(function (error) {
    setStatus(error.message, "error");
  });
})();

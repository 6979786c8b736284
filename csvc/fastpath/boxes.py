"""
A faster reader and writer of AMP's wire format, for both ends of agent
links: the fast path's (``csvc.fastpath``), through AMP's private
internals.  With the switch off when a link is made, ``FastBoxes`` is
exactly ``csvc.wire.responders.SafeResponders`` on ``amp.AMP``: AMP's own
parser, writer and dispatch.

Reading: AMP parses boxes key by key and value by value through
``Int16StringReceiver`` and ``StatefulStringProtocol``: for an Output box
(seven keys) that is some fifteen method calls, each slicing the receive
buffer, and the buffer is concatenated again on every read.  Profiled at
130 MB/s of output through the relay, it was about a third of the reactor's
time.  ``FastBoxes.dataReceived`` reads boxes in one loop over the buffer
instead, keeps a box that is still arriving as pieces until its next value
can be complete (an Output box is up to 256 KiB: it is not joined again on
every read), and hands each box to ``ampBoxReceived`` exactly as AMP does.
Pieces of ``commands.Bytes`` values (keys with a dot) are handed over as
memoryviews of the receive buffer and joined once, by ``Bytes``.

Writing: ``sendBox`` sends a box's keys and values as they are, with
``csvc.fastpath.sockets.write_now``, instead of joining them into one string that
the transport then copies again; a fast call is written straight from its
arguments, after its keys' bytes made once per command, with no box in
between, and an answer that carries nothing is written as its bytes.

The wire format, its limits (keys up to 255 bytes; values up to 65,535 by
their 16-bit length) and what happens when a key is too long (the
connection is dropped, failing outstanding calls with ``TooLong``) are
AMP's own.  AMP does not bound a box: both paths here drop the link when
one passes ``BOX_MAX`` bytes or ``BOX_KEYS`` keys (``csvc.wire.windows``).

Dispatching and calling: the commands a protocol lists in
``fast_commands`` (the ones every output chunk and keystroke travels by)
skip AMP's generic machinery, which for each box builds a responder
closure, maps every argument's wire name to a Python name, and runs
several Deferreds and callbacks (``bench/hops.py``: 26-37 us to dispatch a
box, 56-69 us to call).  Their arguments are read and written from a
table made once per command, integers and text inline; answers, known
errors, optional arguments and missing ones behave as AMP's own, and
errors a responder does not declare as ``SafeResponders`` answers them
(``commands.InternalError``, the link kept).  Other commands go through
AMP's dispatch and ``SafeResponders``.

Only for protocols that never switch away from boxes (``StartTLS`` and
``ProtocolSwitchCommand`` hand the connection to something else mid-stream);
TLS on agent links wraps the whole connection instead.
"""

from struct import Struct

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.protocols.amp import MAX_KEY_LENGTH, MAX_VALUE_LENGTH, AmpBox, TooLong
from twisted.python.failure import Failure

from csvc.fastpath import SWITCH
from csvc.fastpath.sockets import write_now
from csvc.wire.commands import BOX_KEYS, BOX_MAX, INTERNAL_ERROR
from csvc.wire.responders import DESCRIPTION_MAX, SafeResponders, internal_error

_ASK = b"_ask"
_ANSWER = b"_answer"
_COMMAND = b"_command"
_ERROR = b"_error"
_ERROR_CODE = b"_error_code"
_ERROR_DESCRIPTION = b"_error_description"

_INT, _TEXT, _BYTES, _PIECES, _OTHER = range(5)


class _Compiled:
    """
    A command's arguments as ``(wire key, Python name, kind, Argument)``.
    """

    __slots__ = ("command", "args", "names", "heads", "command_head")

    def __init__(self, command):
        self.command = command
        self.args = tuple(
            (key, key.decode("ascii").replace("-", "_"), _kind(argument), argument)
            for key, argument in command.arguments
        )
        self.names = frozenset(name for _key, name, _kind, _argument in self.args)
        # What ``wire`` writes before each value: its key, with lengths.
        self.heads = tuple(_LENGTH.pack(len(key)) + key for key, _name, _kind, _argument in self.args)
        name = command.commandName
        self.command_head = _LENGTH.pack(len(_COMMAND)) + _COMMAND + _LENGTH.pack(len(name)) + name

    def _forgot(self, kw):
        forgotten = [n for _k, n, _kind, a in self.args if kw.get(n) is None and not a.optional]
        return _Forgot(f"forgot {', '.join(forgotten)} for {self.command.commandName}")

    def _check_names(self, kw):
        for name in kw:
            if name not in self.names:
                raise amp.InvalidSignature(f"{name} is not a valid argument")

    def decode(self, box, proto):
        kw = {}
        for key, name, kind, argument in self.args:
            if kind >= _PIECES:
                argument.fromBox(key, box, kw, proto)
                continue
            value = box.get(key)
            if value is None:
                if not argument.optional:
                    raise KeyError(key)
                kw[name] = None
            elif kind == _INT:
                kw[name] = int(value)
            elif kind == _TEXT:
                kw[name] = value.decode("utf-8")
            else:
                kw[name] = value
        return kw

    def encode(self, kw, proto):
        """
        The box of a call; ``_Forgot`` when a required argument is missing,
        ``InvalidSignature`` for one the command does not have (AMP's
        checks, in its order).
        """
        box = AmpBox()
        for key, name, kind, argument in self.args:
            value = kw.get(name)
            if value is None:
                if argument.optional:
                    continue
                raise self._forgot(kw)
            if kind == _INT:
                box[key] = b"%d" % value
            elif kind == _TEXT:
                box[key] = value.encode("utf-8")
            elif kind == _BYTES:
                box[key] = value
            else:
                argument.toBox(key, box, kw, proto)
        self._check_names(kw)
        return box

    def wire(self, kw, proto, tag):
        """
        The box of a call (asking with ``tag``, unless None) as the pieces
        ``sendBox`` would write for ``encode``'s box: the same bytes and
        errors, without building the box and reading it back.
        """
        pieces = []
        small = bytearray()
        for (key, name, kind, argument), head in zip(self.args, self.heads):
            value = kw.get(name)
            if value is None:
                if argument.optional:
                    continue
                raise self._forgot(kw)
            if kind == _INT:
                value = b"%d" % value
            elif kind == _TEXT:
                value = value.encode("utf-8")
            elif kind == _PIECES:
                for item in argument.pieces(key, value):
                    small = _put(pieces, small, *item)
                continue
            elif kind == _OTHER:
                box = AmpBox()
                argument.toBox(key, box, kw, proto)
                for item in box.items():
                    small = _put(pieces, small, *item)
                continue
            small = _put_value(pieces, small, head, key, value)
        self._check_names(kw)
        small += self.command_head
        if tag is not None:
            small += _ASK_HEAD
            small += _LENGTH.pack(len(tag))
            small += tag
        small += b"\0\0"
        pieces.append(small)
        return pieces


class _Forgot(amp.InvalidSignature):
    """
    A required argument is missing: AMP's ``callRemote`` answers that with a
    failed Deferred, not an exception.
    """


def _kind(argument):
    if type(argument) is amp.Integer:
        return _INT
    if type(argument) is amp.Unicode:
        return _TEXT
    if type(argument) is amp.String:
        # A keystroke's bytes (Input): as they are, both ways.
        return _BYTES
    if callable(getattr(argument, "pieces", None)):
        # ``commands.Bytes`` (Output's data): its keys and values, no box.
        return _PIECES
    return _OTHER

_LENGTH = Struct("!H")
_ASK_HEAD = _LENGTH.pack(len(_ASK)) + _ASK
_ANSWER_HEAD = _LENGTH.pack(len(_ANSWER)) + _ANSWER
#: Values at least this long go out as their own piece, not copied.
_OWN_PIECE = 4096


class FastBoxes(SafeResponders):
    """
    Mix in before ``amp.AMP``.  Fast if the switch was on when made.
    """

    log = Logger()

    #: Commands dispatched (when this side responds to them) and called
    #: without AMP's generic machinery.
    fast_commands = ()

    #: Received bytes not parsed yet (from the start of a key).
    _rx = b""
    #: Bytes received after ``_rx``, kept apart until there are enough.
    _more = None
    _more_len = 0
    #: ``_rx`` and ``_more`` together must reach this length before the
    #: next key or value can be parsed.
    _need = 0
    #: The box being parsed: its keys and values so far.
    _box = None
    #: Bytes of the box being parsed so far (keys and values with their
    #: lengths), and (AMP's parser) its keys: at most BOX_MAX and BOX_KEYS.
    _box_bytes = 0
    _box_keys = 0
    #: A box passed its bounds: the link is being dropped, nothing is read.
    _box_over = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._csvc_fast = SWITCH.on

    def dataReceived(self, data):
        if self._box_over:
            return
        if not self._csvc_fast:
            super().dataReceived(data)
            return
        if self._rx:
            if len(self._rx) + self._more_len + len(data) < self._need:
                # A large value still coming: keep the pieces, join once.
                if self._more is None:
                    self._more = []
                self._more.append(data)
                self._more_len += len(data)
                return
            if self._more:
                self._more.append(data)
                data = b"".join(self._more)
                self._more = None
                self._more_len = 0
            buf = self._rx + data
        else:
            buf = data
        n = len(buf)
        view = memoryview(buf)
        i = 0
        box = self._box
        if box is None:
            box = AmpBox()
        size = self._box_bytes
        receiver = self.boxReceiver
        while True:
            if i + 2 > n:
                need = i + 2
                break
            key_len = (buf[i] << 8) | buf[i + 1]
            if key_len == 0:
                i += 2
                fast = _fast_responders(type(receiver)).get(box.get(_COMMAND)) if _COMMAND in box else None
                if fast is None:
                    receiver.ampBoxReceived(box)
                else:
                    receiver._fastCommand(box, *fast)
                box = AmpBox()
                size = 0
                continue
            if key_len > MAX_KEY_LENGTH:
                self._rx = b""
                self._box = None
                self._keyLengthLimitExceeded = True
                self.transport.loseConnection()
                return
            key_end = i + 2 + key_len
            if key_end + 2 > n:
                need = key_end + 2
                break
            value_end = key_end + 2 + ((buf[key_end] << 8) | buf[key_end + 1])
            if value_end > n:
                need = value_end
                break
            key = buf[i + 2:key_end]
            # A piece of a ``commands.Bytes`` value: a view, joined there.
            box[key] = view[key_end + 2:value_end] if b"." in key else buf[key_end + 2:value_end]
            size += value_end - i
            if size > BOX_MAX or len(box) > BOX_KEYS:
                self._box_too_large(size, len(box))
                return
            i = value_end
        self._box_bytes = size
        self._box = box if box else None
        self._need = need - i
        self._rx = buf[i:] if i < n else b""

    # AMP's own parser (the fast path off) is bounded the same way: these
    # are its states' handlers (``StatefulStringProtocol``).

    def proto_key(self, string):
        if string:
            self._box_bytes += 2 + len(string)
        else:
            self._box_bytes = self._box_keys = 0
        return super().proto_key(string)

    def proto_value(self, string):
        state = super().proto_value(string)
        self._box_bytes += 2 + len(string)
        self._box_keys += 1
        if self._box_bytes > BOX_MAX or self._box_keys > BOX_KEYS:
            # Stop AMP's parser on what it was given, then drop the link.
            self.pauseProducing()
            self._box_too_large(self._box_bytes, self._box_keys)
        return state

    def _box_too_large(self, size, keys):
        """
        The box being parsed passed ``BOX_MAX`` bytes or ``BOX_KEYS`` keys:
        forget it and drop the link (its calls fail as for a lost link).
        """
        self._box_over = True
        self._rx = b""
        self._box = self._more = None
        self._more_len = 0
        transport = self.transport
        peer = transport.getPeer() if transport is not None else None
        self.log.error("dropping the link from {peer}: a box of {size} bytes and {keys} keys so far, more than "
                       "{most} bytes or {keys_most} keys", peer=str(peer), size=size, keys=keys, most=BOX_MAX,
                       keys_most=BOX_KEYS)
        (getattr(transport, "abortConnection", None) or transport.loseConnection)()

    def _direct(self):
        """
        Whether boxes are written straight to the transport: the link is
        not switched, lost or starting TLS (then AMP's own ``sendBox``
        answers for them, errors and all).
        """
        return not (self._locked or self.transport is None or self._startingTLSBuffer is not None)

    def sendBox(self, box):
        if not (self._csvc_fast and self._direct()):
            # Switched, lost or starting TLS: AMP's own way (and errors).
            super().sendBox(box)
            return
        pieces = []
        small = bytearray()
        for key, value in box.items():
            small = _put(pieces, small, key, value)
        small += b"\0\0"
        pieces.append(small)
        write_now(self.transport, pieces)

    # -- the fast commands ----------------------------------------------------

    def _fastCommand(self, box, compiled, responder):
        """
        A box of a fast command: as ``BoxDispatcher._commandReceived``.
        """
        try:
            result = responder(self, **compiled.decode(box, self))
        except Exception:
            result = fail()
        ask = box.get(_ASK)
        if isinstance(result, Deferred):
            result.addCallbacks(
                self._fastAnswer, self._fastError, callbackArgs=(compiled, ask), errbackArgs=(compiled, ask)
            )
        elif isinstance(result, Failure):
            self._fastError(result, compiled, ask)
        else:
            self._fastAnswer(result, compiled, ask)

    def _fastAnswer(self, result, compiled, ask):
        if ask is None:
            return
        if not compiled.command.response and self._direct():
            # An answer that says only "done" (Input's, Output's): its bytes.
            write_now(self.transport, [_ANSWER_HEAD + _LENGTH.pack(len(ask)) + ask + b"\0\0"])
            return
        try:
            answer = compiled.command.makeResponse(result, self) if compiled.command.response else AmpBox()
        except Exception:
            self._fastError(Failure(), compiled, ask)
            return
        answer[_ANSWER] = ask
        self._emitAnswer(answer, compiled.command.commandName, ask)

    def _fastError(self, failure, compiled, ask):
        command = compiled.command
        known = failure.check(*command.allErrors)
        if known is None:
            self._answerError(ask, command.commandName, *internal_error(failure, command.commandName, self.log))
            return
        if ask is None:
            self.log.info("{command} (no answer asked) failed: {why}", command=command.commandName.decode(),
                          why=failure.getErrorMessage())
            return
        code = command.allErrors[known]
        description = str(failure.value).encode("utf-8", "replace")
        self._answerError(ask, command.commandName, code, description, known in command.fatalErrors)

    # -- answers of the fast commands -------------------------------------------

    def _answerError(self, ask, name, code, description, fatal):
        if ask is None:
            return
        box = amp.QuitBox() if fatal else AmpBox()
        box[_ERROR] = ask
        box[_ERROR_CODE] = code
        box[_ERROR_DESCRIPTION] = description[:DESCRIPTION_MAX]
        self._emitAnswer(box, name, ask)

    def _emitAnswer(self, box, name, ask):
        """
        Send an answer; one that cannot be written (a value longer than AMP
        allows, a value that is not bytes) is answered with an
        ``InternalError`` instead.
        """
        try:
            self._safeEmit(box)
        except Exception:
            if _ERROR in box and box.get(_ERROR_CODE) == INTERNAL_ERROR:
                raise
            code, description, _fatal = internal_error(Failure(), name, self.log)
            self._answerError(ask, name, code, description, False)

    def callRemote(self, commandType, *a, **kw):
        compiled = _fast_calls(type(self)).get(commandType) if self._csvc_fast else None
        if compiled is None or a:
            return super().callRemote(commandType, *a, **kw)
        if self._failAllReason is not None:
            return fail(self._failAllReason)
        if not self._direct():
            try:
                box = compiled.encode(kw, self)
            except _Forgot:
                return fail()
            box[_COMMAND] = commandType.commandName
            tag = None
            if commandType.requiresAnswer:
                tag = box[_ASK] = self._nextTag()
            self.sendBox(box)
        else:
            tag = self._nextTag() if commandType.requiresAnswer else None
            try:
                pieces = compiled.wire(kw, self, tag)
            except _Forgot:
                return fail()
            write_now(self.transport, pieces)
        if tag is None:
            return None
        d = self._outstandingRequests[tag] = Deferred()
        d.addCallbacks(commandType.parseResponse, _remote_error, callbackArgs=(self,), errbackArgs=(commandType,))
        return d


def _put(pieces, small, key, value):
    """
    One key and value onto ``small`` (AMP's checks first, as ``sendBox``);
    a long value is a piece of its own, after ``small``.  Returns what to go
    on filling.
    """
    if type(key) is str:
        raise TypeError(f"Unicode key not allowed: {key!r}")
    if type(value) is str:
        raise TypeError(f"Unicode value for key {key!r} not allowed: {value!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise TooLong(True, True, key, None)
    return _put_value(pieces, small, _LENGTH.pack(len(key)) + key, key, value)


def _put_value(pieces, small, head, key, value):
    """
    ``head`` (a key with its length) and ``value`` onto ``small``: as
    ``_put``, for a key already checked and packed.
    """
    if type(value) is str:
        raise TypeError(f"Unicode value for key {key!r} not allowed: {value!r}")
    n = len(value)
    if n > MAX_VALUE_LENGTH:
        raise TooLong(False, True, value, key)
    small += head
    small += _LENGTH.pack(n)
    if n >= _OWN_PIECE:
        pieces.append(small)
        pieces.append(value)
        return bytearray()
    small += value
    return small


def _remote_error(failure, command):
    """
    As ``Command._doCommand``: an error the peer sent becomes the command's
    own exception (``UnknownRemoteError`` when it has none for the code).
    """
    failure.trap(amp.RemoteAmpError)
    error = failure.value
    return Failure(command.reverseErrors.get(error.errorCode, amp.UnknownRemoteError)(error.description))


_RESPONDERS = {}
_CALLS = {}


def _fast_responders(cls):
    """
    command name -> (compiled, responder function) for the fast commands
    ``cls`` responds to.
    """
    table = _RESPONDERS.get(cls)
    if table is None:
        table = _RESPONDERS[cls] = {}
        dispatch = getattr(cls, "_commandDispatch", {})
        for command in getattr(cls, "fast_commands", ()):
            entry = dispatch.get(command.commandName)
            if entry is not None and entry[0] is command:
                table[command.commandName] = (_Compiled(command), entry[1])
    return table


def _fast_calls(cls):
    table = _CALLS.get(cls)
    if table is None:
        table = _CALLS[cls] = {command: _Compiled(command) for command in getattr(cls, "fast_commands", ())}
    return table

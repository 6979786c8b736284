"""
The AMP argument types of the contract beyond AMP's own: ``JSON`` (a document
in one value) and ``Bytes`` (bytes over several values of one box).
``csvc.wire.commands`` re-exports every name here.
"""

import json

from twisted.protocols import amp

#: The most bytes one AMP value holds.
AMP_VALUE_MAX = 0xFFFF


class JSON(amp.Argument):
    """
    A JSON document in one AMP value (so at most 64 KiB encoded).
    """

    def toString(self, inObject):
        return json.dumps(inObject, separators=(",", ":")).encode("utf-8")

    def fromString(self, inString):
        return json.loads(inString.decode("utf-8"))


class Bytes(amp.Argument):
    """
    Bytes longer than one AMP value can hold: in pieces of at most 65,535
    bytes under the keys ``name.1``, ``name.2``... (``name.1`` always
    present, empty for empty bytes).  More than ``limit`` bytes is refused
    both ways.

    The keys with a dot are what ``csvc.fastpath.boxes`` hands over as
    memoryviews of the receive buffer, so that the pieces are copied once,
    here, into the value.
    """

    def __init__(self, limit, optional=False):
        super().__init__(optional)
        self.limit = limit
        self._max_pieces = max(1, -(-limit // AMP_VALUE_MAX))

    def toBox(self, name, strings, objects, proto):
        value = objects[name.decode("ascii")]
        if value is None and self.optional:
            return
        for key, piece in self.pieces(name, value):
            strings[key] = piece

    def pieces(self, name, value):
        """
        The keys and values ``value`` goes under (``csvc.fastpath.boxes`` writes
        them without a box).
        """
        if len(value) > self.limit:
            raise ValueError(f"{name.decode('ascii')}: {len(value)} bytes, more than {self.limit}")
        if len(value) <= AMP_VALUE_MAX:
            return ((name + b".1", value),)
        view = memoryview(value)
        return [(b"%s.%d" % (name, i), view[start:start + AMP_VALUE_MAX])
                for i, start in enumerate(range(0, len(value), AMP_VALUE_MAX), 1)]

    def fromBox(self, name, strings, objects, proto):
        key = name.decode("ascii")
        first = strings.get(name + b".1")
        if first is None:
            if self.optional:
                objects[key] = None
                return
            raise KeyError(name + b".1")
        second = strings.get(name + b".2")
        if second is None:
            objects[key] = bytes(first)
            return
        parts = [first, second]
        while True:
            part = strings.get(b"%s.%d" % (name, len(parts) + 1))
            if part is None:
                break
            parts.append(part)
            if len(parts) > self._max_pieces:
                break
        value = b"".join(parts)
        if len(value) > self.limit:
            raise ValueError(f"{key}: more than {self.limit} bytes")
        objects[key] = value

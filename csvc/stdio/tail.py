"""
Where the last N lines of an output begin, found by walking its chunks from
the newest back (sans-IO).
"""


class TailFinder:
    """
    Feed chunks newest first with ``feed(seq, data)``; it returns
    ``(seq, offset)``, the first byte of the last ``lines`` lines, once it has
    seen enough, else None.  If the chunks run out first, the output has
    fewer lines: start from the beginning.  A final newline does not start
    another line.
    """

    def __init__(self, lines):
        if lines < 1:
            raise ValueError("TailFinder needs at least one line")
        self._remaining = lines
        self._at_end = True

    def feed(self, seq, data):
        end = len(data)
        if self._at_end and end:
            self._at_end = False
            if data.endswith(b"\n"):
                end -= 1
        while True:
            newline = data.rfind(b"\n", 0, end)
            if newline < 0:
                return None
            self._remaining -= 1
            if self._remaining == 0:
                return seq, newline + 1
            end = newline

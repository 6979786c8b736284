"""
The sizes and windows of the contract's streams: how large an output chunk or
a stdin piece may be, and how many boxes of each stream may be unanswered.
``csvc.wire.commands`` re-exports every name here.
"""


#: Largest output chunk the agent sends in one Output box.
CHUNK_SIZE = 256 * 1024

#: Output boxes an agent may have unacknowledged per container.
OUTPUT_WINDOW = 8

#: Input boxes the control plane may have unanswered per container.
STDIN_WINDOW = 4

#: The most stdin bytes one Input or ExecInput carries (its ``data`` is one
#: AMP value): what a client sends is split into pieces of this size.
STDIN_PIECE = 32 * 1024


def stdin_pieces(data):
    """
    ``data`` (stdin from a client: a WebSocket message, a TCP read) as the
    list of its pieces of at most ``STDIN_PIECE`` bytes, in order; every
    path to a container's or an exec's stdin sends these, each within the
    stdin window.
    """
    if len(data) <= STDIN_PIECE:
        return [data]
    return [data[start:start + STDIN_PIECE] for start in range(0, len(data), STDIN_PIECE)]


#: ExecOutput boxes an agent may have unanswered per exec.
EXEC_WINDOW = OUTPUT_WINDOW

#: Unanswered DownloadChunk / UploadChunk boxes per transfer.
TRANSFER_WINDOW = 8

#: The most bytes of keys and values (with their lengths) one box may
#: hold, and the most keys: AMP bounds each value, not a box, so a peer
#: could make the other hold one without end.  Far above the contract's
#: largest (Register's seven values of at most 64 KiB each, 460 KiB; an
#: Output box: a chunk in ``Bytes`` pieces, 11 keys).  Past either, the
#: link is dropped (``csvc.fastpath.boxes.FastBoxes``, both paths).
BOX_MAX = 1024 * 1024
BOX_KEYS = 64

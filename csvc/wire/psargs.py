"""
``ps_args`` of a container's top: the engine runs ``ps`` with them on the
instance itself, so only what looks like ``ps`` options passes (``aux``,
``-ef``, ``-o pid,comm``, ``--sort=-pcpu``): a few words of letters, digits
and ``_,:%.+=-``, nothing that could be a path, a quote or a shell word.
"""

import re

#: Most words, and the longest word.
MAX_WORDS = 8
MAX_WORD = 64

_WORD = re.compile(r"-{0,2}[A-Za-z0-9][A-Za-z0-9_,:%.+=-]*")


class UnsafePsArgs(ValueError):
    """
    ``ps_args`` with something no ``ps`` option needs; the message says what.
    """


def check_ps_args(text):
    """
    The words of ``text`` (split on spaces, as the engine does), or
    ``UnsafePsArgs``.
    """
    if not text:
        return []
    if not isinstance(text, str):
        raise UnsafePsArgs("ps_args must be a string")
    words = text.split(" ")
    words = [w for w in words if w]
    if len(words) > MAX_WORDS:
        raise UnsafePsArgs(f"ps_args: {len(words)} words, at most {MAX_WORDS}")
    for word in words:
        if len(word) > MAX_WORD or not _WORD.fullmatch(word):
            raise UnsafePsArgs(
                f"ps_args: {word[:MAX_WORD]!r} is not a ps option (letters, digits and _,:%.+=- only, "
                f"at most {MAX_WORD} characters, such as aux, -ef or -o pid,comm)"
            )
    return words

"""A rule sandbox process: evaluates the CEL rules its parent sends, one at a time.

Run by path (`python -I rule_worker.py`), not imported: it loads nothing but the CEL
library, so that it starts fast and a parent can kill it at any moment. Each message,
either way, is a 4-byte big-endian length and a pickle: the parent sends
`(expression, context)`, the worker answers `("ok", result)` or `("raised", exception)`.
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import Any, BinaryIO

import cel

_HEADER = struct.Struct(">I")
MAX_PROGRAMS = 256


def read(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (length,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(length))  # noqa: S301 (our own parent process)


def write(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    programs: dict[str, Any] = {}
    write(sink, ("ready", None))
    while True:
        try:
            expression, context = read(source)
        except EOFError:
            return
        try:
            program = programs.get(expression)
            if program is None:
                if len(programs) >= MAX_PROGRAMS:
                    programs.clear()
                program = programs[expression] = cel.compile(expression)
            result = program.execute(context)
        except Exception as exc:
            answer: tuple[str, Any] = ("raised", _portable(exc))
        else:
            answer = ("ok", result if isinstance(result, bool) else None)
        write(sink, answer)


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives a pickle, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301
    except Exception:
        return RuntimeError(str(exc))
    return exc


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)

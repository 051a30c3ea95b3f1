"""Reading a pickle stream the way the scanner must: the frame buffering of the pure-Python
unpickler (which joblib uses), and the error for a stream the scanner cannot vouch for."""

from __future__ import annotations

import io


class _ScanError(Exception):
    """The stream is not something the scanner can vouch for."""


class _FramedReader:
    """Reads like ``pickle._Unframer`` (joblib's unpickler is the pure-Python one)."""

    def __init__(self, f: io.BytesIO, framed: bool) -> None:
        self.f, self.framed = f, framed
        self.frame: io.BytesIO | None = None

    def tell(self) -> int:
        return self.f.tell()

    def read(self, n: int = -1) -> bytes:
        if self.frame is not None:
            data = self.frame.read(n)
            if not data and n != 0:
                self.frame = None
                return self.f.read(n)
            if len(data) < n:
                raise _ScanError("pickle exhausted before end of frame")
            return data
        return self.f.read(n)

    def readline(self) -> bytes:
        if self.frame is not None:
            data = self.frame.readline()
            if not data:
                self.frame = None
                return self.f.readline()
            if data[-1:] != b"\n":
                raise _ScanError("pickle exhausted before end of frame")
            return data
        return self.f.readline()

    def load_frame(self, size: int) -> None:
        if not self.framed:
            return
        if self.frame is not None and self.frame.read() != b"":
            raise _ScanError("a new frame starts before the end of the current one")
        self.frame = io.BytesIO(self.f.read(size))

"""Content decoding for the upstream client (`gateway.http.client`): gzip and deflate,
the only encodings the gateway offers upstream, decoded in bounded pieces.

A gzip bomb inflates a 1,000-fold, so one network read must not become one huge
piece: each decoder gives out at most ``DECODED_PIECE`` bytes per call and keeps the
rest of its input for the next (`decode_pieces` walks a chain of them).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from gateway.http.upstream import UpstreamDecodingError

__all__ = ["DECODED_PIECE", "Decoder", "decode_pieces", "decoders_for"]

# Most bytes one decoded piece holds: decompression stops there and goes on with the
# rest of the input at the next piece.
DECODED_PIECE = 256 * 1024


class Decoder:
    """gzip or deflate, as httpx decodes them (deflate: zlib-wrapped, or raw), giving
    out at most ``DECODED_PIECE`` bytes per call."""

    __slots__ = ("_deflate_raw_fallback", "_obj")

    def __init__(self, encoding: str) -> None:
        self._deflate_raw_fallback = encoding == "deflate"
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        """Decoded bytes of ``data``; what did not fit waits in ``pending``."""
        try:
            if self._deflate_raw_fallback:
                self._deflate_raw_fallback = False
                try:
                    return self._obj.decompress(data, DECODED_PIECE)
                except zlib.error:
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._obj.decompress(data, DECODED_PIECE)
        except zlib.error as exc:
            raise UpstreamDecodingError(str(exc)) from None

    @property
    def pending(self) -> bytes:
        """Input not decoded yet (the output limit was reached): decode it next."""
        return self._obj.unconsumed_tail

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except zlib.error as exc:  # pragma: no cover  (flush rarely raises)
            raise UpstreamDecodingError(str(exc)) from None


def decode_pieces(decoders: list[Decoder], index: int, data: bytes) -> Iterator[bytes]:
    """``data`` through ``decoders[index:]``, in pieces of at most ``DECODED_PIECE``."""
    decoder = decoders[index]
    last = index + 1 == len(decoders)
    while True:
        piece = decoder.decode(data)
        if piece:
            if last:
                yield piece
            else:
                yield from decode_pieces(decoders, index + 1, piece)
        data = decoder.pending
        if not data:
            return


def decoders_for(headers: list[tuple[bytes, bytes]]) -> list[Decoder]:
    """Decoders for the response's content-encoding, outermost first."""
    decoders: list[Decoder] = []
    for name, value in headers:
        if name.lower() == b"content-encoding":
            for token in value.decode("latin-1").split(","):
                encoding = token.strip().lower()
                if encoding in ("gzip", "x-gzip"):
                    decoders.append(Decoder("gzip"))
                elif encoding == "deflate":
                    decoders.append(Decoder("deflate"))
                # identity, or an encoding not offered: passed on as it is (as httpx does)
    decoders.reverse()
    return decoders

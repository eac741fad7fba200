"""Joining a continuation to what was already delivered, one field at a time.

Sans-I/O and text only: a joiner is built at a seam from the text one field
(content, reasoning or refusal) of one choice had delivered, is fed the new
generation's fragments of that field in order, and returns the part of each that
is new.  Two rules:

``OverlapJoiner`` (a continuation from an assistant prefill)
    Providers may start the continuation by repeating the end of the prefill
    (a few characters, or the whitespace that the prefill had to drop).  The
    joiner removes the longest overlap of at most ``max_overlap`` characters:
    the longest suffix of the delivered text that the new text starts with.  It
    holds back new characters only while a longer overlap is still possible, so
    a seam costs at most ``max_overlap`` characters of delay, and none once the
    new text cannot be a repeat.  Exactly what this cannot tell apart:

    * new text that truly begins with a suffix of the delivered text ("ha" then
      "ha!") is taken for a repeat and that part is dropped: a character is
      lost rather than delivered twice;
    * a repeat longer than ``max_overlap``, or not exact (other case, other
      whitespace inside, a paraphrase), is delivered as new text;
    * whitespace the provider drops or inserts where the delivered text ends in
      a non-whitespace character ("Hello" + "world", "Hel" + " lo") looks like
      a word going on: it is delivered as sent;
    * whitespace the provider replaces by other whitespace ("\\n" delivered, " "
      sent) is delivered as sent.

``ReplayJoiner`` (a regeneration: the request sent again without a prefill)
    The new generation must reproduce the delivered text before it can add to
    it: characters equal to the delivered ones are dropped, the first one past
    them is new.  If the new text differs first (``diverged``), what happens is
    the caller's choice: ``keep_on_divergence`` returns everything the new
    generation sent so far (for reasoning: a fresh block of thought), otherwise
    the joiner returns nothing more and the caller ends the stream with an error.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_OVERLAP", "OverlapJoiner", "ReplayJoiner", "SeamJoiner"]

DEFAULT_MAX_OVERLAP = 32


class OverlapJoiner:
    """Removes a repeat of the delivered text's end from the start of the new text."""

    __slots__ = ("_held", "_tail", "overlap")

    def __init__(self, delivered: str, *, max_overlap: int = DEFAULT_MAX_OVERLAP) -> None:
        self._tail = delivered[max(len(delivered) - max_overlap, 0) :] if max_overlap > 0 else ""
        self._held = ""
        self.overlap: int | None = None if self._tail else 0
        """The number of repeated characters removed, once decided (None before)."""

    @property
    def held(self) -> str:
        """New characters held back while a repeat is still possible."""
        return self._held

    diverged = False

    def feed(self, text: str) -> str:
        """The part of ``text`` to deliver now."""
        if self.overlap is not None:
            return text
        held = self._held = self._held + text
        tail = self._tail
        size = len(held)
        # A longer overlap is still possible while a suffix longer than what is
        # held begins with everything held.
        for k in range(len(tail), size, -1):
            if tail.startswith(held, len(tail) - k):
                return ""
        return self._decide()

    def close(self) -> str:
        """The field ended: decide with what was sent and return the rest."""
        if self.overlap is not None:
            return ""
        return self._decide()

    def _decide(self) -> str:
        held, tail = self._held, self._tail
        best = 0
        for k in range(min(len(tail), len(held)), 0, -1):
            if held.startswith(tail[len(tail) - k :]):
                best = k
                break
        self.overlap = best
        self._held = ""
        return held[best:]


class ReplayJoiner:
    """Drops a regeneration's characters while they equal the delivered text."""

    __slots__ = ("_delivered", "_held", "_keep", "_pos", "diverged", "passed")

    def __init__(self, delivered: str, *, keep_on_divergence: bool = False) -> None:
        self._delivered = delivered
        self._keep = keep_on_divergence
        self._held: list[str] = []
        self._pos = 0
        self.passed = not delivered
        """True once the new text has gone past the delivered text."""
        self.diverged = False
        """True once the new text differed from the delivered text."""

    @property
    def held(self) -> str:
        """The reproduced characters, held back in case the new text diverges."""
        return "".join(self._held) if self._keep else ""

    def feed(self, text: str) -> str:
        """The part of ``text`` to deliver now."""
        if self.passed:
            return text
        if self.diverged:
            return text if self._keep else ""
        delivered, pos = self._delivered, self._pos
        same = _common_prefix(text, delivered, pos)
        if pos + same == len(delivered):
            self.passed = True
            self._held = []
            return text[same:]
        if same == len(text):
            self._pos = pos + same
            if self._keep:
                self._held.append(text)
            return ""
        self.diverged = True
        if not self._keep:
            return ""
        out = "".join(self._held) + text
        self._held = []
        return out

    def close(self) -> str:
        """The field ended.  Shorter than the delivered text is a divergence, unless
        it is kept: then it adds nothing and is dropped."""
        if not (self.passed or self.diverged):
            self._held = []
            if not self._keep:
                self.diverged = True
        return ""


def _common_prefix(text: str, other: str, start: int) -> int:
    """How many characters ``text`` shares with ``other[start:]`` from the start."""
    n = min(len(text), len(other) - start)
    if other.startswith(text[:n], start):
        return n
    lo, hi = 0, n  # the answer is in [lo, hi): text[:lo] matches, text[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if other.startswith(text[:mid], start):
            lo = mid
        else:
            hi = mid
    return lo


SeamJoiner = OverlapJoiner | ReplayJoiner

"""Quantiles of a stream of non-negative numbers in bounded memory.

``QuantileSketch`` keeps the values themselves while there are few of them
(``exact_limit``), so small logs get the exact nearest-rank percentile, the same
one ``StreamMetrics`` uses.  Past that it keeps counts in logarithmic bins, the
DDSketch scheme: bin ``i`` holds the values in ``(g**(i-1), g**i]`` with
``g = (1 + a) / (1 - a)``, and a quantile is answered by the bin's midpoint
``2 * g**i / (g + 1)``, which is within a relative error ``a`` of every value
in the bin.  So the answer for rank ``k`` is within ``a`` (1 % by default) of
the true ``k``-th value, however many values went in.

Memory is bounded independently of the number of values: values are clamped to
``[MIN_VALUE, MAX_VALUE]`` (1 ns to about 31 years, in seconds), which at 1 %
is at most about 2,100 bins, each one dict entry; real latencies occupy a few
hundred.  Values at or below ``MIN_VALUE`` count as zero.
"""

from __future__ import annotations

import math

__all__ = ["MAX_VALUE", "MIN_VALUE", "QuantileSketch"]

MIN_VALUE = 1e-9
MAX_VALUE = 1e9


class QuantileSketch:
    """Nearest-rank quantiles: exact up to ``exact_limit`` values, then within
    ``relative_error`` of the true value (both bounds hold for merged sketches)."""

    __slots__ = ("_bins", "_exact", "_exact_limit", "_gamma", "_log_gamma", "_zeros", "count")

    def __init__(self, relative_error: float = 0.01, exact_limit: int = 1024) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must be in (0, 1): {relative_error!r}")
        self._gamma = (1.0 + relative_error) / (1.0 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._exact_limit = exact_limit
        self._exact: list[float] | None = []
        self._bins: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        """How many values went in."""

    @property
    def exact(self) -> bool:
        """True while quantiles are exact (every value is still kept)."""
        return self._exact is not None

    def add(self, value: float) -> None:
        """Count one value (negative values count as zero, NaN is ignored)."""
        if value != value:  # NaN
            return
        self.count += 1
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) > self._exact_limit:
                self._exact = None
                for v in exact:
                    self._bin(v)
            return
        self._bin(value)

    def _bin(self, value: float) -> None:
        if value <= MIN_VALUE:
            self._zeros += 1
            return
        if value > MAX_VALUE:
            value = MAX_VALUE
        i = math.ceil(math.log(value) / self._log_gamma)
        bins = self._bins
        bins[i] = bins.get(i, 0) + 1

    def merge(self, other: QuantileSketch) -> None:
        """Add every value counted by ``other`` (made with the same relative error)."""
        if other._gamma != self._gamma:
            raise ValueError("cannot merge sketches with different relative errors")
        if other._exact is not None:
            for v in other._exact:
                self.add(v)
            return
        if self._exact is not None:
            exact, self._exact = self._exact, None
            for v in exact:
                self._bin(v)
        self.count += other.count
        self._zeros += other._zeros
        bins = self._bins
        for i, n in other._bins.items():
            bins[i] = bins.get(i, 0) + n

    def quantile(self, q: float) -> float | None:
        """The value of nearest rank ``round(q * (count - 1))``; None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1]: {q!r}")
        if self.count == 0:
            return None
        rank = round(q * (self.count - 1))
        if self._exact is not None:
            self._exact.sort()
            return self._exact[rank]
        if rank < self._zeros:
            return 0.0
        seen = self._zeros
        gamma = self._gamma
        for i in sorted(self._bins):
            seen += self._bins[i]
            if rank < seen:
                return min(2.0 * gamma**i / (gamma + 1.0), MAX_VALUE)
        raise AssertionError("unreachable: the bins hold every counted value")  # pragma: no cover

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        mode = "exact" if self._exact is not None else f"{len(self._bins)} bins"
        return f"QuantileSketch(count={self.count}, {mode})"

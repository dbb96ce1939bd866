"""Fixed log-spaced histograms of durations, for percentiles over several kept days (periods.py).

Bucket b holds durations in [10^(b/20), 10^((b+1)/20)) seconds, bucket 0 everything below 10^(1/20)
(1.12 s): twenty buckets a decade, each 12.2 % wider than the one before. Histograms of days add up
exactly; a percentile read from one lies in the bucket of its rank, so it is off by at most that
bucket's width: 12.2 % of the value (1.12 s below 1.12 s); each of the two ranks percentile_cont
interpolates between is placed inside its own bucket, so the result is off by at most the wider one.
"""

import json
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

PER_DECADE = 20
SIZE = 200  # buckets: up to 10^10 s; anything longer counts in the last one
Histogram = list[int]  # SIZE counts, one per bucket


def bucket(seconds: float) -> int:
    """The bucket of a duration (PostgreSQL: BUCKET_SQL, the same formula)."""
    return min(SIZE - 1, math.floor(PER_DECADE * math.log10(max(seconds, 1.0))))


# The same as `bucket`, in PostgreSQL's SQL, of the seconds expression %(expressions)s.
BUCKET_SQL = f"LEAST({SIZE - 1}, floor({PER_DECADE} * log(GREATEST(%(expressions)s, 1.0)))::int)"


def bounds(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else 10 ** (index / PER_DECADE)
    return low, 10 ** ((index + 1) / PER_DECADE)


def of(values: Iterable[float]) -> Counter:
    return Counter(bucket(value) for value in values)


def dumps(histogram: "Histogram | Mapping[int, int]") -> str:
    """Compact text for a row: [first bucket, its count, the next bucket's, ..., the last bucket's]."""
    counts = histogram if isinstance(histogram, list) else merged(None, histogram)
    used = [index for index, count in enumerate(counts) if count]
    if not used:
        return ""
    return json.dumps([used[0], *counts[used[0]:used[-1] + 1]], separators=(",", ":"))


def merged(histogram: "Histogram | Mapping[int, int] | None",
           more: "Histogram | Mapping[int, int] | None") -> Histogram:
    """`histogram` (a Histogram is added to in place) plus `more`."""
    if not isinstance(histogram, list):
        histogram = merged([0] * SIZE, histogram) if histogram else [0] * SIZE
    if isinstance(more, list):
        histogram[:] = map(operator.add, histogram, more)
    elif more:
        for index, count in more.items():
            histogram[index] += count
    return histogram


def summed(texts: Iterable[str]) -> Histogram:
    """The sum of rows' texts (`dumps`), read in one json.loads for them all: a year of an agent's
    days adds up in about a millisecond."""
    total = [0] * SIZE
    for first, *counts in json.loads("[" + ",".join(text for text in texts if text) + "]"):
        end = first + len(counts)
        total[first:end] = map(operator.add, total[first:end], counts)
    return total


def percentiles(histogram: "Histogram | Mapping[int, int]", fractions: Sequence[float]) -> list[float | None]:
    """percentile_cont of each fraction read from the histogram: the two ranks it lies between, each
    placed linearly inside its bucket, then interpolated between as percentile_cont does."""
    pairs = enumerate(histogram) if isinstance(histogram, list) else histogram.items()
    items = sorted((index, count) for index, count in pairs if count)
    total = sum(count for _, count in items)
    if not total:
        return [None] * len(fractions)

    def ranked(rank: int) -> float:
        seen = 0
        for index, count in items:
            if rank < seen + count:
                low, high = bounds(index)
                return low + (high - low) * (rank - seen + 0.5) / count
            seen += count
        raise AssertionError(rank)

    result = []
    for fraction in fractions:
        position = fraction * (total - 1)
        low = int(position)
        below = ranked(low)
        result.append(below + (ranked(min(low + 1, total - 1)) - below) * (position - low))
    return result

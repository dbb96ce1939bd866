"""Fixed log-spaced histograms of durations, for percentiles over several kept days (periods.py).

Bucket b holds durations in [10^(b/20), 10^((b+1)/20)) seconds, bucket 0 everything below 10^(1/20)
(1.12 s): twenty buckets a decade, each 12.2 % wider than the one before. Histograms of days add up
exactly; a percentile read from one lies in the bucket of its rank, so it is off by at most that
bucket's width: 12.2 % of the value (1.12 s below 1.12 s); each of the two ranks percentile_cont
interpolates between is placed inside its own bucket, so the result is off by at most the wider one.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

PER_DECADE = 20


def bucket(seconds: float) -> int:
    """The bucket of a duration (PostgreSQL: BUCKET_SQL, the same formula)."""
    return math.floor(PER_DECADE * math.log10(max(seconds, 1.0)))


# The same as `bucket`, in PostgreSQL's SQL, of the seconds expression %(expressions)s.
BUCKET_SQL = f"floor({PER_DECADE} * log(GREATEST(%(expressions)s, 1.0)))::int"


def bounds(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else 10 ** (index / PER_DECADE)
    return low, 10 ** ((index + 1) / PER_DECADE)


def of(values: Iterable[float]) -> Counter:
    return Counter(bucket(value) for value in values)


def dumps(histogram: Mapping[int, int]) -> str:
    """Compact text for a row: [bucket, count, bucket, count, ...] in bucket order."""
    return json.dumps([number for item in sorted(histogram.items()) if item[1] for number in item],
                      separators=(",", ":"))


def loads(text: str) -> Counter:
    numbers = json.loads(text) if text else []
    return Counter(dict(zip(numbers[::2], numbers[1::2])))


def percentiles(histogram: Mapping[int, int], fractions: Sequence[float]) -> list[float | None]:
    """percentile_cont of each fraction read from the histogram: the two ranks it lies between, each
    placed linearly inside its bucket, then interpolated between as percentile_cont does."""
    items = sorted((index, count) for index, count in histogram.items() if count)
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

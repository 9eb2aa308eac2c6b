"""The one timing helper the benchmarks share (hand-written; not part of the library)."""
import statistics
import time


def median_time(fn, repeats: int = 5, warmup: bool = False) -> tuple[float, object]:
    "Median wall-clock seconds of `repeats` calls of fn(), and the last call's result."
    if warmup:
        fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result

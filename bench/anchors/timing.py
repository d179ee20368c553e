"""The one timing loop of the anchor scripts (torch_models.py, onnx_runtimes.py)."""
import math
import time


def rate(step, items, min_time, min_iterations, max_first=math.inf):
    """items per second of step(), after warm-up (two calls; one when a call is slow), over at
    least min_time seconds and min_iterations calls. A first call slower than max_first seconds
    (e.g. bf16 emulated on a CPU without it) ends the measurement: its own rate is returned with
    a note."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    if first > max_first:
        return items / first, f"one call only, it took {first:.1f} s"
    if first < 1.0:
        step()
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and count >= min_iterations:
            return items * count / elapsed, None

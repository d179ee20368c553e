#!/usr/bin/python3
"""OpenCV-Python anchor for onnxforge-data-bench (run with /usr/bin/python3, python3-opencv).

The same work as onnxforge's loader, the way a Python pipeline does it at its best settings:
  first epoch   decode (cv2.imread) + BGR->RGB + resize (INTER_AREA) into a uint8 array,
                with a thread pool of 1 and 2 workers (OpenCV's own threading off, which is
                faster for many small images; both settings are tried, the faster one counts);
  later epochs  per-sample augmentation (flip, rotation, shift, zoom: one cv2.warpAffine;
                brightness, contrast) + scaling to [0, 1] + NCHW float32 batches, thread pool.
Prints "RESULT <name> threads=<t> <images/s> <CPU us per image>" lines that data_loading.sh
pairs with ours (CPU time: all threads of the process, the best run's for decoding).
"""
import argparse
import glob
import os
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np


def list_files(root):
    files = []
    for cls in sorted(os.listdir(root)):
        for ext in ("jpg", "jpeg", "png", "bmp"):
            files += glob.glob(os.path.join(root, cls, "**", "*." + ext), recursive=True)
    return sorted(files)


def decode_all(files, size, threads):
    out = np.empty((len(files), size, size, 3), np.uint8)

    def work(i):
        im = cv2.imread(files[i], cv2.IMREAD_COLOR)
        interp = cv2.INTER_AREA if im.shape[0] >= size and im.shape[1] >= size else cv2.INTER_LINEAR
        im = cv2.resize(im, (size, size), interpolation=interp)
        out[i] = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(len(files)), chunksize=16))
    return out


def augment(img, rng):
    h, w = img.shape[:2]
    angle = rng.uniform(-10, 10)
    zoom = rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, zoom)
    if rng.random() < 0.5:  # horizontal flip folded into the affine map
        m[:, 0] = -m[:, 0]
        m[:, 2] += m[:, 0] * -(w - 1)
    m[0, 2] += rng.uniform(-0.1, 0.1) * w
    m[1, 2] += rng.uniform(-0.1, 0.1) * h
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x = out.astype(np.float32)
    b = rng.uniform(0.8, 1.2)
    c = rng.uniform(0.8, 1.2)
    mean = x.mean(axis=(0, 1)) * b
    x = np.clip((x * b - mean) * c + mean, 0, 255) * (1.0 / 255.0)
    return x.transpose(2, 0, 1)


def cached_epochs(cache, threads, epochs, batch, seed=0):
    n = len(cache)
    rngs = {}

    def work(args):
        epoch, idx, dst, k = args
        rng = np.random.default_rng([seed, epoch + 1, idx])
        dst[k] = augment(cache[idx], rng)

    images = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for epoch in range(-1, epochs):  # epoch -1 warms up
            order = np.random.default_rng([seed, 1001 + epoch]).permutation(n)
            if epoch == 0:
                start = time.perf_counter()
                cpu_start = time.process_time()
            for b in range(0, n, batch):
                idx = order[b:b + batch]
                x = np.empty((len(idx), 3) + cache.shape[1:3], np.float32)
                y = np.asarray(idx % 2, np.float32)
                list(pool.map(work, [(epoch, int(i), x, k) for k, i in enumerate(idx)]))
                if epoch >= 0:
                    images += len(idx)
    del rngs, y
    cpu_us = (time.process_time() - cpu_start) / images * 1e6
    return images / (time.perf_counter() - start), cpu_us


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    files = list_files(args.dir)
    cache = None
    for threads in (1, 2):
        best = 0.0
        best_cpu = 1e30
        for cv_threads in (1, 0):  # 1: OpenCV single-threaded inside each worker, 0: its default
            cv2.setNumThreads(cv_threads if cv_threads else cv2.getNumberOfCPUs())
            for _ in range(args.repeat):
                t = time.perf_counter()
                c = time.process_time()
                cache = decode_all(files, args.size, threads)
                best = max(best, len(files) / (time.perf_counter() - t))
                best_cpu = min(best_cpu, (time.process_time() - c) / len(files) * 1e6)
        print(f"RESULT decode threads={threads} {best:.0f} {best_cpu:.0f}")
    cv2.setNumThreads(1)
    for threads in (1, 2):
        rate, cpu_us = cached_epochs(cache, threads, args.epochs, args.batch)
        print(f"RESULT cached threads={threads} {rate:.0f} {cpu_us:.0f}")


if __name__ == "__main__":
    main()

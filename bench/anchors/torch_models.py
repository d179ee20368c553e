#!/usr/bin/python3
"""PyTorch and OpenCV-DNN anchors for onnxforge-bench (issue 3), at their best settings.

Times the same networks as bench/onnxforge_bench.cpp in Debian's python3-torch (oneDNN inside for
convolutions, OpenBLAS for Linear/matmul) and, for VGG16, OpenCV's DNN module on an ONNX export of
the same network. Every PyTorch workload is tried in each layout it supports (contiguous NCHW,
channels_last, mkldnn tensors for inference) and the fastest is reported, with its setting.

Prints one JSON object per line: {"name", "images_per_second" | "flops_per_second", "setting",
"all": {setting: rate}}. Run through bench/anchors/compare.sh, which sets the environment
(OPENBLAS_CORETYPE, threads) and prints the side-by-side table.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn as nn


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def baseline():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(16 * 94 * 94, 64), nn.ReLU(), nn.Linear(64, 1))


def vgg16_features():
    layers, channels = [], 3
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU(inplace=True)]
            channels = filters
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def rate(step, items, min_time):
    """items per second of step(), after two warm-up calls, over at least min_time seconds."""
    step()
    step()
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and count >= 3:
            return items * count / elapsed


def best(name, results, key="images_per_second"):
    setting = max(results, key=results.get)
    print(json.dumps({"name": name, key: results[setting], "setting": setting, "all": results}),
          flush=True)


def bench_train(min_time):
    results = {}
    torch.manual_seed(0)
    images = torch.rand(32, 3, 100, 100)
    labels = (torch.arange(32) % 2).float().reshape(32, 1)
    for layout in ["contiguous", "channels_last"]:
        model = baseline()
        x = images
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = images.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        loss_fn = nn.BCEWithLogitsLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), labels)
            loss.backward()
            optimizer.step()

        results[layout] = rate(step, 32, min_time)
        log(f"  baseline train step, {layout}: {results[layout]:.1f} images/s")
    best("BM_BaselineTrainStep", results)


def inference_rates(make_model, batches, min_time, label):
    results = {}
    for batch in batches:
        images = torch.rand(batch, 3, 100, 100)
        for layout in ["contiguous", "channels_last", "mkldnn"]:
            model = make_model().eval()
            x = images
            if layout == "channels_last":
                model = model.to(memory_format=torch.channels_last)
                x = images.contiguous(memory_format=torch.channels_last)
            elif layout == "mkldnn":
                try:
                    from torch.utils import mkldnn as mkldnn_utils
                    model = mkldnn_utils.to_mkldnn(model)
                    x = images.to_mkldnn()
                except Exception as e:  # a layer without an mkldnn version
                    log(f"  {label} {layout}: unavailable ({e})")
                    continue
            with torch.no_grad():
                try:
                    r = rate(lambda: model(x), batch, min_time)
                except Exception as e:
                    log(f"  {label} batch {batch} {layout}: failed ({e})")
                    continue
            key = f"{layout}, batch {batch}"
            results[key] = r
            log(f"  {label}, {key}: {r:.1f} images/s")
    return results


def bench_opencv_vgg16(min_time):
    import cv2
    import numpy as np
    cv2.setNumThreads(torch.get_num_threads())
    model = vgg16_features().eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16_features.onnx")
        torch.onnx.export(model, torch.rand(1, 3, 100, 100), path, opset_version=11,
                          input_names=["image"], output_names=["features"],
                          do_constant_folding=True)
        net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    images = np.random.rand(32, 3, 100, 100).astype(np.float32)

    def step():
        net.setInput(images)
        net.forward()

    r = rate(step, 32, min_time)
    log(f"  OpenCV DNN VGG16 features, batch 32: {r:.1f} images/s")
    print(json.dumps({"name": "OpenCV_Vgg16Features", "images_per_second": r,
                      "setting": f"cv2 {cv2.__version__}, {cv2.getNumThreads()} threads"}),
          flush=True)


def bench_matmul(min_time):
    results = {}
    n = 2048
    for dtype in [torch.float32, torch.bfloat16]:
        a = torch.rand(n, n).to(dtype)
        b = torch.rand(n, n).to(dtype)
        r = rate(lambda: torch.mm(a, b), 2 * n ** 3, min_time)
        results[str(dtype).replace("torch.", "")] = r
        log(f"  matmul 2048^3 {dtype}: {r / 1e9:.1f} GFLOP/s")
    print(json.dumps({"name": "BM_MatmulPeak/fp32", "flops_per_second": results["float32"],
                      "setting": "torch.mm (BLAS: OpenBLAS)"}), flush=True)
    print(json.dumps({"name": "BM_MatmulPeak/bf16", "flops_per_second": results["bfloat16"],
                      "setting": "torch.mm bf16 (oneDNN or ATen)"}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--skip-opencv", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn "
        f"{torch.backends.mkldnn.is_available()}, OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', '(auto)')}")
    log(torch.__config__.show())
    bench_matmul(args.min_time)
    bench_train(args.min_time)
    best("BM_BaselineInfer", inference_rates(baseline, [32, 256], args.min_time, "baseline"))
    best("BM_Vgg16Features/fp32",
         inference_rates(vgg16_features, [32], args.min_time, "VGG16 features"))
    if not args.skip_opencv:
        try:
            bench_opencv_vgg16(args.min_time)
        except Exception as e:
            log(f"  OpenCV DNN: failed ({e})")


if __name__ == "__main__":
    main()

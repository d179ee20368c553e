#!/usr/bin/env python3
"""PyTorch-CUDA anchors for `onnxforge bench --backend cudnn` (issue 9), run by scripts/gpu-check.sh.

Times, on the GPU, the workloads gpu-check.sh times with onnxforge, defined the same way:
  baseline_train  baseline CNN (3x100x100), forward + BCE-with-logits backward + Adam step
  vgg16_infer     VGG16 feature extractor (13 convs, 5 pools, 3x100x100), forward + copy of the
                  output to the host (as `onnxforge bench` fetches it)
  vgg16_head      frozen VGG16 features + Flatten, Dense 256 ReLU, Dropout 0.5, Dense 1 (the
                  transfer head), trained with BCE-with-logits and Adam; no feature cache
Inputs live on the GPU (fed once), as in `onnxforge bench`.

Each workload runs in every setting below and all are reported; "fp32" disables TF32 (the cudnn
backend computes f32 with FMA kernels only), "tf32" is PyTorch's default for cuDNN convolutions
(torch.backends.cudnn.allow_tf32 = True), each in contiguous NCHW and channels_last memory,
with torch.backends.cudnn.benchmark = True. Prints one JSON object per workload and batch:
{"name", "batch", "best_fp32", "best_tf32", "setting_fp32", "setting_tf32", "all": {...}}.

Debian's python3-torch has no CUDA: gpu-check.sh looks for an interpreter whose torch has CUDA
and says so when there is none.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn

# The same layers as the CPU anchors (and graph/models.cpp): one definition of each network.
from torch_models import baseline, log, vgg16_features


def head():
    return nn.Sequential(nn.Flatten(), nn.Linear(512 * 3 * 3, 256), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(256, 1))


def rate(step, images, seconds):
    """images per second of step() after warm-up, synchronised around every call."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while True:
        step()
        torch.cuda.synchronize()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and count >= 5:
            return images * count / elapsed


def workload(name, batch, layout):
    device = torch.device("cuda")
    torch.manual_seed(0)
    images = torch.rand(batch, 3, 100, 100, device=device)
    labels = (torch.arange(batch, device=device) % 2).float().reshape(batch, 1)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = images.contiguous(memory_format=fmt)
    loss_fn = nn.BCEWithLogitsLoss()
    if name == "baseline_train":
        model = baseline().to(device, memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), labels).backward()
            opt.step()
        return step
    features = vgg16_features().to(device, memory_format=fmt)
    if name == "vgg16_infer":
        features.eval()

        def step():
            with torch.no_grad():
                features(x).cpu()
        return step
    features.eval()
    for p in features.parameters():
        p.requires_grad_(False)
    top = head().to(device)
    opt = torch.optim.Adam(top.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(top(features(x)), labels).backward()
        opt.step()
    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--workloads", default="baseline_train,vgg16_infer,vgg16_head")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        log("torch_cuda.py: this torch has no usable CUDA device")
        sys.exit(2)
    torch.backends.cudnn.benchmark = True
    log(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}")
    for name in args.workloads.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            results = {}
            for precision in ["fp32", "tf32"]:
                tf32 = precision == "tf32"
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                for layout in ["contiguous", "channels_last"]:
                    setting = f"{precision}, {layout}"
                    try:
                        results[setting] = rate(workload(name, batch, layout), batch,
                                                args.seconds)
                    except RuntimeError as e:  # e.g. out of memory
                        log(f"{name} batch {batch} {setting}: {e}")
                    torch.cuda.empty_cache()
                    if setting in results:
                        log(f"{name} batch {batch} {setting}: {results[setting]:.1f} images/s")
            row = {"name": name, "batch": batch, "all": results}
            for precision in ["fp32", "tf32"]:
                mine = {k: v for k, v in results.items() if k.startswith(precision)}
                if mine:
                    best = max(mine, key=mine.get)
                    row[f"best_{precision}"] = mine[best]
                    row[f"setting_{precision}"] = best
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

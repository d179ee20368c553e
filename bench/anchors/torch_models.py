#!/usr/bin/python3
"""PyTorch and OpenCV-DNN anchors for onnxforge-bench (issues 3 and 16), at their best settings.

Times the same networks as bench/onnxforge_bench.cpp in Debian's python3-torch 1.13 (oneDNN inside
for convolutions, OpenBLAS for Linear/matmul), each in every setting it supports, and prints one
JSON object per setting and line:

  {"workload", "anchor", "setting", "dtype", "images_per_second" | "flops_per_second"}
  or the same with "error" instead of a rate (a setting that failed or was refused).

Workloads (batch 32, 3x100x100 images):
  baseline_infer   baseline CNN, inference           (contiguous, channels_last, mkldnn tensors
  vgg16_infer      VGG16 features, inference          in fp32; contiguous and channels_last under
                                                      bf16 autocast)
  baseline_train   baseline CNN: forward + backward + Adam on BCEWithLogits
  improved_train   improved CNN (graph/models.cpp `improved`), the same step
  vgg16_train      VGG16 features + global average pool + Linear 1, the same step
                   (training: contiguous and channels_last, each in fp32 and bf16 autocast)
  matmul_fp32|bf16 torch.mm 2048^3                                                  (FLOP/s)
  OpenCV DNN on torch's ONNX export of the inference networks, with --onnx-dir.

Other modes, used by bench/anchors/compare.sh:
  --export DIR   writes DIR/baseline.onnx and DIR/vgg16_features.onnx (batch 32, opset 13)
  --flops        prints {"workload", "forward_flops_per_image", "flops_per_image"}: 2 x the
                 multiply-adds of every Conv2d and Linear, forward; training counts 3x forward
  --rss-step W --setting S   runs 2 steps of training workload W in setting S and exits (a
                 separate process, whose peak RSS compare.sh reads)

Run through compare.sh, which sets the environment (OPENBLAS_CORETYPE, threads, OpenMP policy).
torch_cuda.py imports its networks (baseline, vgg16_features) and log from here.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn

from timing import rate

BATCH = 32


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


# ---- the networks: the same layers as graph/models.cpp --------------------------------------

def baseline():
    """Logits; graph/models.cpp ends with a Sigmoid, which training folds into the loss."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(16 * 94 * 94, 64), nn.ReLU(), nn.Linear(64, 1))


def baseline_with_sigmoid():
    return nn.Sequential(baseline(), nn.Sigmoid())


def improved():
    """graph/models.cpp `improved`: four 'same' 3x3 convolutions without bias (32, 64, 128, 128
    filters), each with batch norm (Keras epsilon 1e-3, momentum 0.99 = PyTorch 0.01) and ReLU,
    2x2 max pooling after the first three; global average pool, dropout 0.3, Dense 64 ReLU,
    Dense 1 (logits)."""
    layers, channels = [], 3
    for block, filters in enumerate([32, 64, 128, 128]):
        layers += [nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                   nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01), nn.ReLU()]
        if block < 3:
            layers.append(nn.MaxPool2d(2))
        channels = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Dropout(0.3), nn.Flatten(),
               nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1)]
    return nn.Sequential(*layers)


def vgg16_features():
    layers, channels = [], 3
    for filters, convs in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(convs):
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU(inplace=True)]
            channels = filters
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def vgg16_train_model():
    """BM_Vgg16TrainStep's network: VGG16 features, global average pool, Dense 1 (logits)."""
    return nn.Sequential(vgg16_features(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(512, 1))


INFER = {"baseline_infer": baseline_with_sigmoid, "vgg16_infer": vgg16_features}
TRAIN = {"baseline_train": baseline, "improved_train": improved, "vgg16_train": vgg16_train_model}
ONNX_FILES = {"baseline_infer": "baseline.onnx", "vgg16_infer": "vgg16_features.onnx"}


# ---- timing ----------------------------------------------------------------------------------


def measure(workload, anchor, setting, dtype, run, key="images_per_second"):
    """Runs `run()` -> (rate, note) and prints the record; a failure is a record, never a crash."""
    record = {"workload": workload, "anchor": anchor, "setting": setting, "dtype": dtype}
    try:
        value, note = run()
        record[key] = value
        if note:
            record["note"] = note
        shown = f"{value / 1e9:.1f} GFLOP/s" if key == "flops_per_second" else f"{value:.1f} images/s"
        log(f"  {workload}, {anchor}, {setting}: {shown}" + (f" ({note})" if note else ""))
    except Exception as e:  # an unsupported layout / dtype: report it, keep going
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        log(f"  {workload}, {anchor}, {setting}: failed ({record['error']})")
    emit(record)


def autocast(enabled):
    if enabled:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def prepare(make_model, layout, images):
    model = make_model()
    x = images
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = images.contiguous(memory_format=torch.channels_last)
    return model, x


# (layout, bf16 autocast) pairs; inference also tries mkldnn tensors in fp32.
TRAIN_SETTINGS = [("contiguous", False), ("channels_last", False),
                  ("contiguous", True), ("channels_last", True)]
INFER_SETTINGS = [("contiguous", False), ("channels_last", False), ("mkldnn", False),
                  ("contiguous", True), ("channels_last", True)]


def setting_name(layout, bf16):
    return f"{layout}, {'bf16 autocast' if bf16 else 'fp32'}"


def parse_setting(text):
    layout, precision = [p.strip() for p in text.split(",")]
    return layout, precision == "bf16 autocast"


def train_step_fn(workload, layout, bf16):
    torch.manual_seed(0)
    images = torch.rand(BATCH, 3, 100, 100)
    labels = (torch.arange(BATCH) % 2).float().reshape(BATCH, 1)
    model, x = prepare(TRAIN[workload], layout, images)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        optimizer.step()

    return step


def bench_train(workload, args):
    for layout, bf16 in TRAIN_SETTINGS:
        def run():
            step = train_step_fn(workload, layout, bf16)
            return rate(step, BATCH, args.min_time, args.min_iterations, args.max_first)
        measure(workload, "PyTorch", setting_name(layout, bf16), "bf16" if bf16 else "fp32", run)


def bench_infer(workload, args):
    images = torch.rand(BATCH, 3, 100, 100)
    for layout, bf16 in INFER_SETTINGS:
        def run():
            if layout == "mkldnn":
                from torch.utils import mkldnn as mkldnn_utils
                model = mkldnn_utils.to_mkldnn(INFER[workload]().eval())
                x = images.to_mkldnn()
            else:
                model, x = prepare(INFER[workload], layout, images)
                model.eval()

            def step():
                with torch.no_grad(), autocast(bf16):
                    model(x)

            return rate(step, BATCH, args.min_time, args.min_iterations, args.max_first)
        measure(workload, "PyTorch", setting_name(layout, bf16), "bf16" if bf16 else "fp32", run)


def bench_opencv(workload, args):
    path = os.path.join(args.onnx_dir, ONNX_FILES[workload])

    def run():
        import cv2
        import numpy as np
        cv2.setNumThreads(args.threads)
        net = cv2.dnn.readNetFromONNX(path)
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        images = np.random.rand(BATCH, 3, 100, 100).astype(np.float32)

        def step():
            net.setInput(images)
            net.forward()

        return rate(step, BATCH, args.min_time, args.min_iterations, args.max_first)
    try:
        import cv2
        version = cv2.__version__
    except ImportError:
        version = "(python3-opencv missing)"
    measure(workload, "OpenCV DNN", f"cv2 {version}, {args.threads} threads, torch's ONNX export",
            "fp32", run)


def bench_matmul(dtype_name, args):
    n = 2048
    dtype = torch.float32 if dtype_name == "fp32" else torch.bfloat16

    def run():
        a = torch.rand(n, n).to(dtype)
        b = torch.rand(n, n).to(dtype)
        return rate(lambda: torch.mm(a, b), 2 * n ** 3, args.min_time, args.min_iterations,
                    args.max_first)
    setting = "torch.mm (BLAS: OpenBLAS)" if dtype_name == "fp32" else "torch.mm bf16"
    measure(f"matmul_{dtype_name}", "PyTorch", setting, dtype_name, run, key="flops_per_second")


# ---- --export, --flops, --rss-step -----------------------------------------------------------

def export(directory):
    os.makedirs(directory, exist_ok=True)
    for workload, name in ONNX_FILES.items():
        path = os.path.join(directory, name)
        model = INFER[workload]().eval()
        torch.onnx.export(model, torch.rand(BATCH, 3, 100, 100), path, opset_version=13,
                          input_names=["image"], output_names=["output"],
                          do_constant_folding=True)
        log(f"  exported {path} (torch {torch.__version__}, opset 13, batch {BATCH})")


def forward_flops(model):
    """2 x multiply-adds of every Conv2d and Linear for one 3x100x100 image."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
            total += 2 * per_output * output.numel()
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features * output.shape[0]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 100, 100))
    for h in handles:
        h.remove()
    return total


def print_flops():
    for workload, make in list(INFER.items()) + list(TRAIN.items()):
        forward = forward_flops(make())
        factor = 3 if workload in TRAIN else 1
        emit({"workload": workload, "forward_flops_per_image": forward,
              "flops_per_image": factor * forward})


def rss_step(workload, setting):
    layout, bf16 = parse_setting(setting)
    step = train_step_fn(workload, layout, bf16)
    step()
    step()
    import resource
    emit({"workload": workload, "setting": setting,
          "self_max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--min-iterations", type=int, default=3)
    parser.add_argument("--max-first", type=float, default=30.0,
                        help="seconds: a slower first call is reported alone (emulated bf16)")
    parser.add_argument("--workloads", default="matmul_fp32,matmul_bf16," + ",".join(
        list(INFER) + list(TRAIN)))
    parser.add_argument("--onnx-dir", help="also time OpenCV DNN on the ONNX files here")
    parser.add_argument("--export", metavar="DIR")
    parser.add_argument("--flops", action="store_true")
    parser.add_argument("--rss-step", metavar="WORKLOAD", choices=list(TRAIN))
    parser.add_argument("--setting", default="contiguous, fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.export:
        return export(args.export)
    if args.flops:
        return print_flops()
    if args.rss_step:
        return rss_step(args.rss_step, args.setting)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn "
        f"{torch.backends.mkldnn.is_available()}, OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', '(auto)')}, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    emit({"info": "PyTorch", "version": torch.__version__})
    for workload in args.workloads.split(","):
        if workload.startswith("matmul_"):
            bench_matmul(workload[len("matmul_"):], args)
        elif workload in TRAIN:
            bench_train(workload, args)
        elif workload in INFER:
            bench_infer(workload, args)
            if args.onnx_dir:
                bench_opencv(workload, args)
        else:
            parser.error(f"unknown workload {workload}")


if __name__ == "__main__":
    main()

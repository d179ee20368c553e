"""ONNX Runtime and OpenVINO anchors (issue 16) on the ONNX files onnxforge runs.

Runs in the venv that bench/anchors/venv.sh makes (pip's onnxruntime, openvino, numpy), on torch's
export of the inference networks (torch_models.py --export DIR): DIR/baseline.onnx and
DIR/vgg16_features.onnx, batch 32. Prints one JSON object per setting and line, as
torch_models.py does: {"workload", "anchor", "setting", "dtype", "images_per_second" | "error"}.

Settings:
  ONNX Runtime  CPUExecutionProvider, intra_op_num_threads=N, inter_op 1, ORT_ENABLE_ALL,
                ORT_SEQUENTIAL; intra-op threads spinning and not (session.intra_op.allow_spinning)
  OpenVINO      CPU, INFERENCE_NUM_THREADS=N; INFERENCE_PRECISION_HINT f32 and bf16;
                PERFORMANCE_HINT LATENCY (one synchronous request) and THROUGHPUT (its optimal
                number of requests in flight, AsyncInferQueue); the precision the compiled model
                reports is part of the setting (a CPU without bf16 runs f32 whatever the hint)

  <venv>/bin/python onnx_runtimes.py --onnx-dir DIR [--threads N] [--min-time S]
"""
import argparse
import json
import os
import sys

import numpy as np

from timing import rate

BATCH = 32
FILES = {"baseline_infer": "baseline.onnx", "vgg16_infer": "vgg16_features.onnx"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


def measure(workload, anchor, setting, dtype, run):
    record = {"workload": workload, "anchor": anchor, "setting": setting, "dtype": dtype}
    try:
        value, actual_setting = run()
        record["images_per_second"] = value
        record["setting"] = actual_setting or setting
        log(f"  {workload}, {anchor}, {record['setting']}: {value:.1f} images/s")
    except Exception as e:  # report it, keep going
        text = str(e).strip().splitlines()
        record["error"] = f"{type(e).__name__}: {text[0] if text else ''}"[:300]
        log(f"  {workload}, {anchor}, {setting}: failed ({record['error']})")
    emit(record)


def images():
    return np.random.default_rng(0).random((BATCH, 3, 100, 100), dtype=np.float32)


def bench_ort(workload, path, args):
    import onnxruntime as ort
    x = images()
    for spinning in ["1", "0"]:
        def run():
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return rate(lambda: session.run(None, {name: x}), BATCH, args.min_time,
                        args.min_iterations)[0], None
        measure(workload, f"ONNX Runtime {ort.__version__}",
                f"{args.threads} threads, ORT_ENABLE_ALL, sequential, spinning {spinning}",
                "fp32", run)


def bench_openvino(workload, path, args):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    x = images()
    for precision in ["f32", "bf16"]:
        for hint in ["LATENCY", "THROUGHPUT"]:
            def run():
                compiled = core.compile_model(model, "CPU", {
                    "INFERENCE_NUM_THREADS": args.threads,
                    "INFERENCE_PRECISION_HINT": precision,
                    "PERFORMANCE_HINT": hint,
                })
                actual = compiled.get_property("INFERENCE_PRECISION_HINT")
                actual = actual.get_type_name() if hasattr(actual, "get_type_name") else actual
                streams = compiled.get_property("NUM_STREAMS")
                if hint == "LATENCY":
                    request = compiled.create_infer_request()
                    value = rate(lambda: request.infer({0: x}), BATCH, args.min_time,
                                 args.min_iterations)[0]
                    requests = 1
                else:
                    requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
                    queue = ov.AsyncInferQueue(compiled, requests)

                    def step():
                        for _ in range(requests):
                            queue.start_async({0: x})
                        queue.wait_all()

                    value = rate(step, BATCH * requests, args.min_time, args.min_iterations)[0]
                setting = (f"{args.threads} threads, precision hint {precision} (ran {actual}), "
                           f"{hint}, {streams} streams, {requests} requests")
                return value, setting
            measure(workload, f"OpenVINO {ov.get_version().split('-')[0]}",
                    f"{args.threads} threads, precision hint {precision}, {hint}",
                    "bf16" if precision == "bf16" else "fp32", run)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--onnx-dir", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--min-iterations", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(FILES))
    args = parser.parse_args()
    for workload in args.workloads.split(","):
        path = os.path.join(args.onnx_dir, FILES[workload])
        for bench, anchor in [(bench_ort, "ONNX Runtime"), (bench_openvino, "OpenVINO")]:
            try:
                bench(workload, path, args)
            except Exception as e:  # the package itself failed to import or load the file
                emit({"workload": workload, "anchor": anchor, "setting": "-", "dtype": "fp32",
                      "error": f"{type(e).__name__}: {str(e).strip()[:300]}"})
                log(f"  {workload}, {anchor}: failed ({e})")


if __name__ == "__main__":
    main()

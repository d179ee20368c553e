#!/usr/bin/python3
"""The table of bench/anchors/compare.sh, from the raw results it left in --out DIR.

  compare_report.py --out DIR [--policies "active passive"] [--min-time S] [--threads N]

Reads DIR/bench-<policy>.json (onnxforge-bench), DIR/cli-<policy>-<model>-<dtype>.json|.log
(`onnxforge bench FILE.onnx`), DIR/torch-<policy>.jsonl (torch_models.py), DIR/runtimes.jsonl
(onnx_runtimes.py), DIR/rss.jsonl (peak_rss.py), DIR/flops.jsonl, and prints markdown on stdout.
"""
import argparse
import glob
import json
import os
import platform

DTYPES = ["fp32", "bf16", "auto"]  # the onnxforge columns; a dtype no variant has shows "n/a"

# workload key, label, onnxforge-bench network, ONNX file (inference: onnxforge runs the file),
# target factor, which anchors the target is against.
ROWS = [
    ("baseline_infer", "baseline CNN inference", "BM_BaselineInfer", "baseline", 1.2,
     "best anchor"),
    ("vgg16_infer", "VGG16 features inference", "BM_Vgg16Features", "vgg16_features", 1.1,
     "best anchor"),
    ("baseline_train", "baseline CNN training step", "BM_BaselineTrainStep", None, 2.5,
     "PyTorch's best"),
    ("improved_train", "improved CNN training step", "BM_ImprovedTrainStep", None, 1.5,
     "PyTorch's best"),
    ("vgg16_train", "VGG16 features fwd+bwd step", "BM_Vgg16TrainStep", None, 1.2,
     "PyTorch bf16 autocast"),
]


def target_filter(reference):
    if reference == "PyTorch's best":
        return lambda a: a["anchor"].startswith("PyTorch")
    if reference == "PyTorch bf16 autocast":
        return lambda a: a["anchor"].startswith("PyTorch") and "bf16 autocast" in a["setting"]
    return lambda a: True


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    records = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return records


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def last_line(path):
    if not os.path.exists(path):
        return "(no output)"
    lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    return lines[-1] if lines else "(no output)"


def cpu_info():
    model, flags = platform.processor() or "unknown", set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model in ("unknown", "x86_64", ""):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return model, flags


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--policies", default="active passive")
    parser.add_argument("--min-time", default="?")
    parser.add_argument("--threads", default="?")
    args = parser.parse_args()
    out, policies = args.out, args.policies.split()

    # ---- onnxforge-bench: best per benchmark over the policies ------------------------------
    bench, bench_all, bench_errors, labels = {}, [], {}, {}
    for policy in policies:
        path = f"{out}/bench-{policy}.json"
        if not os.path.exists(path):
            continue
        try:
            benchmarks = json.load(open(path))["benchmarks"]
        except (json.JSONDecodeError, KeyError):
            continue
        for b in benchmarks:
            # "BM_X/fp32/min_time:5.000/real_time" -> "BM_X/fp32"
            name = "/".join(p for p in b["name"].split("/")
                            if not p.startswith("min_time") and p != "real_time")
            if b.get("error_occurred"):
                bench_errors[name] = b.get("error_message", "skipped")
                continue
            rate = b.get("items_per_second")
            bench_all.append((name, policy, rate))
            if b.get("label"):
                labels[name] = b["label"]
            if rate and (name not in bench or rate > bench[name][0]):
                bench[name] = (rate, policy)

    # ---- onnxforge bench FILE.onnx: best per (model, dtype) over the policies ----------------
    cli, cli_all, cli_errors = {}, [], {}
    for policy in policies:
        for path in glob.glob(f"{out}/cli-{policy}-*.log"):
            stem = os.path.basename(path)[len(f"cli-{policy}-"):-len(".log")]
            model, dtype = stem.rsplit("-", 1)
            result = path[:-len(".log")] + ".json"
            if os.path.exists(result):
                rate = json.load(open(result))["throughput_images_per_s"]
                cli_all.append((model, dtype, policy, rate))
                if (model, dtype) not in cli or rate > cli[(model, dtype)][0]:
                    cli[(model, dtype)] = (rate, policy)
            else:
                cli_errors[(model, dtype)] = last_line(path)

    # ---- anchors: every setting, best over the policies --------------------------------------
    anchors = {}  # workload -> {(anchor, setting): record}
    versions = {}
    sources = [(f"{out}/torch-{p}.jsonl", f"OMP_WAIT_POLICY={p}") for p in policies]
    sources.append((f"{out}/runtimes.jsonl", None))
    for path, policy in sources:
        for r in read_jsonl(path):
            if "info" in r:
                versions[r["info"]] = r.get("version")
                continue
            if "workload" not in r:
                continue
            slot = anchors.setdefault(r["workload"], {}).setdefault(
                (r["anchor"], r["setting"]),
                {"anchor": r["anchor"], "setting": r["setting"], "policies": {}})
            value = r.get("images_per_second") or r.get("flops_per_second")
            slot["policies"][policy or "-"] = value if value else r.get("error", "no result")
            if r.get("note"):
                slot["note"] = r["note"]
    for slots in anchors.values():
        for a in slots.values():
            rates = {p: v for p, v in a["policies"].items() if isinstance(v, (int, float))}
            a["value"] = max(rates.values(), default=None)
            a["best_policy"] = max(rates, key=rates.get) if rates else None
    flops = {r["workload"]: r for r in read_jsonl(f"{out}/flops.jsonl")}
    rss = read_jsonl(f"{out}/rss.jsonl")

    peak = {d: bench.get(f"BM_MatmulPeak/{d}", (None,))[0] for d in ["fp32", "bf16"]}
    peak["auto"] = max([v for v in peak.values() if v], default=None)

    # ---- the table ---------------------------------------------------------------------------
    notes = []
    print("| workload (batch 32) | onnxforge fp32 | bf16 | auto | best anchor (setting) | "
          "ratio | target | onnxforge GFLOP/s fp32 / bf16 / auto | of same-dtype matmul |")
    print("| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |")
    for key, label, network, onnx_model, factor, reference in ROWS:
        values, source = {}, "onnxforge-bench (built-in model)"
        if onnx_model:
            refused = cli_errors.get((onnx_model, "fp32"))
            if (onnx_model, "fp32") in cli:
                source = f"`onnxforge bench {onnx_model}.onnx` (torch's export)"
                for d in DTYPES:
                    if (onnx_model, d) in cli:
                        values[d] = cli[(onnx_model, d)][0]
                    elif (onnx_model, d) in cli_errors:
                        notes.append(f"{label}, onnxforge {d} on {onnx_model}.onnx: "
                                     f"{cli_errors[(onnx_model, d)]}")
            else:
                source = (f"**built-in model: the importer refused torch's {onnx_model}.onnx** "
                          f"({refused})")
        if not values:
            for d in DTYPES:
                name = f"{network}/{d}"
                if name in bench:
                    values[d] = bench[name][0]
                elif name in bench_errors:
                    notes.append(f"{label}, {name}: skipped: {bench_errors[name]}")
        if onnx_model is None or not source.startswith("`"):
            notes.append(f"{label}: onnxforge numbers from {source}")
        settings = anchors.get(key, {})
        ran = [a for a in settings.values() if a.get("value")]
        best = max(ran, key=lambda a: a["value"], default=None)
        ours = max(values.values(), default=None)
        ratio = f"{ours / best['value']:.2f}x" if ours and best else "n/a"
        if best:
            policy = best["best_policy"]
            best_text = (f"{fmt(best['value'])} ({best['anchor']}, {best['setting']}"
                         + (f", {policy})" if policy != "-" else ")"))
        else:
            best_text = "n/a (no anchor ran)"
        refs = [a for a in ran if target_filter(reference)(a)]
        ref = max(refs, key=lambda a: a["value"], default=None)
        if ours and ref:
            r = ours / ref["value"]
            verdict = "met" if r >= factor else "**not met**"
            extra = "" if ref is best else f" ({fmt(ref['value'])}, {ref['setting']})"
            target = f">= {factor}x {reference}{extra}: {r:.2f}x, {verdict}"
        else:
            target = f">= {factor}x {reference}: n/a"
        f = flops.get(key, {}).get("flops_per_image")
        gflops = [values.get(d) and f and values[d] * f / 1e9 for d in DTYPES]
        fractions = [g and peak[d] and f"{g * 1e9 / peak[d]:.0%}" for g, d in zip(gflops, DTYPES)]
        shown = label
        if onnx_model:
            shown += (" (onnxforge: torch's ONNX export)" if source.startswith("`") else
                      " (onnxforge: **built-in model, its importer refused torch's export**)")
        print(f"| {shown} | " + " | ".join(fmt(values.get(d)) for d in DTYPES) +
              f" | {best_text} | {ratio} | {target} | " +
              " / ".join(fmt(g) for g in gflops) + " | " +
              " / ".join(x or "n/a" for x in fractions) + " |")

    # Peak RSS of the VGG16 training step (MiB, lower is better).
    ours_rss = {r["setting"]: r for r in rss if r["side"] == "onnxforge" and r["rc"] == 0
                and f"BM_Vgg16TrainStep/{r['setting']}" not in bench_errors}
    theirs_rss = [r for r in rss if r["side"] != "onnxforge" and r["rc"] == 0]
    if rss:
        mib = {d: ours_rss[d]["max_rss_kib"] / 1024 if d in ours_rss else None for d in DTYPES}
        best_rss = min(theirs_rss, key=lambda r: r["max_rss_kib"], default=None)
        ours_min = min([v for v in mib.values() if v], default=None)
        ratio = (f"{ours_min / (best_rss['max_rss_kib'] / 1024):.2f}x" if ours_min and best_rss
                 else "n/a")
        best_text = (f"{fmt(best_rss['max_rss_kib'] / 1024, 0)} (PyTorch, {best_rss['setting']})"
                     if best_rss else "n/a")
        print("| VGG16 training step, peak RSS (MiB, lower is better) | " +
              " | ".join(fmt(mib[d], 0) for d in DTYPES) +
              f" | {best_text} | {ratio} | - | - | - |")
        for r in rss:
            if r["rc"] != 0:
                notes.append(f"peak RSS {r['side']} {r['setting']}: exited with {r['rc']}")

    # ---- below the table ---------------------------------------------------------------------
    model, flags = cpu_info()
    isa = ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                    for f in ["avx2", "avx512f", "avx512_bf16", "amx_bf16"])
    read = lambda name: open(f"{out}/{name}").read().strip() if os.path.exists(f"{out}/{name}") \
        else "?"
    print()
    print(f"Ratio: onnxforge's best dtype / the best anchor setting (images/s; for RSS, onnxforge's "
          f"lowest / PyTorch's lowest). GFLOP/s: 2 x multiply-adds of every convolution and dense "
          f"layer per image, forward (training: 3x forward), times images/s; of same-dtype matmul: "
          f"that over BM_MatmulPeak/fp32 or /bf16 of the same run (auto: over the higher of the two).")
    print()
    print(f"- CPU: {model}, {os.cpu_count()} cores; {isa}")
    print(f"- run: {read('start-date')} to {read('end-date')}, load average {read('start-load')} "
          f"at the start, {read('end-load')} at the end; {args.threads} threads, min time "
          f"{args.min_time} s, OMP_WAIT_POLICY {' / '.join(policies)} (each side keeps its best); "
          f"onnxforge commit {read('commit')}")
    print(f"- PyTorch {versions.get('PyTorch', '?')} (Debian python3-torch); ONNX Runtime and "
          f"OpenVINO from pip in the venv of bench/anchors/venv.sh (versions in the anchor names)")
    peaks = [f"{d} {fmt(peak[d] and peak[d] / 1e9)} GFLOP/s ({labels.get(f'BM_MatmulPeak/{d}', '')})"
             for d in ["fp32", "bf16"]]
    if f"BM_MatmulPeak/bf16" in bench_errors:
        peaks[1] = f"bf16 skipped ({bench_errors['BM_MatmulPeak/bf16']})"
    print(f"- onnxforge BM_MatmulPeak 2048^3: {', '.join(peaks)}")
    for w in ["matmul_fp32", "matmul_bf16"]:
        for a in anchors.get(w, {}).values():
            print(f"- {a['anchor']} {a['setting']}: "
                  + (f"{a['value'] / 1e9:.1f} GFLOP/s" if a.get("value") else a.get("error", "?")))
    for key, r in flops.items():
        print(f"- FLOPs per image, {key}: {r['flops_per_image'] / 1e9:.3f} GFLOP "
              f"(forward {r['forward_flops_per_image'] / 1e9:.3f})")
    if not any(name.endswith("/auto") for name, _, _ in bench_all) and \
            not any(n.endswith("/auto") for n in bench_errors):
        notes.append("auto: onnxforge-bench has no BM_*/auto benchmark (kPrecisions in "
                     "bench/onnxforge_bench.cpp has no auto line), hence n/a")
    if os.path.exists(f"{out}/venv-error"):
        notes.append(read("venv-error"))
    for (model_name, dtype), error in sorted(cli_errors.items()):
        if dtype == "fp32":
            notes.append(f"onnxforge importer on {model_name}.onnx: {error}")
    for (model_name, dtype), (rate, policy) in sorted(cli.items()):
        if dtype == "fp32":
            notes.append(f"onnxforge importer on {model_name}.onnx: imported and ran")
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"- {n}")

    print("\nEvery setting (images/s; per OpenMP wait policy where it applies):")
    for key, label, network, onnx_model, _, _ in ROWS:
        print(f"- {label}:")
        if onnx_model:
            for m, d, policy, rate in sorted(cli_all):
                if m == onnx_model:
                    print(f"  - onnxforge {onnx_model}.onnx {d}, {policy}: {fmt(rate)}")
        for name, policy, rate in sorted(bench_all):
            if name.startswith(network + "/"):
                print(f"  - onnxforge-bench {name}, {policy}: {fmt(rate)}")
        for (anchor, setting), a in anchors.get(key, {}).items():
            per_policy = ", ".join(
                ("" if p == "-" else f"{p}: ") + (fmt(v) if isinstance(v, (int, float)) else v)
                for p, v in a["policies"].items())
            note = f" ({a['note']})" if a.get("note") else ""
            print(f"  - {anchor}, {setting}: {per_policy}{note}")
    for r in rss:
        print(f"- peak RSS {r['side']} {r['setting']}: {r['max_rss_kib'] / 1024:,.0f} MiB "
              f"(rc {r['rc']}, {r['wall_s']:.1f} s)")

if __name__ == "__main__":
    main()

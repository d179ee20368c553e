"""The scaling model of docs/DISTRIBUTED.md from the measurements of mpi_scaling.sh.

    python3 mpi_scaling_model.py COMPUTE.txt ALLREDUCE.txt [ALPHA_US]

COMPUTE.txt: `onnxforge-mpi-bench compute` lines; ALLREDUCE.txt: `... allreduce` lines, each with
a trailing transport name. Prints the measured table, then predicted efficiencies:

- per step, weak scaling (32 images per node): E(N) = T_c / (T_c + T_ar(N)), with a ring
  allreduce T_ar(N) = 2 (N-1)/N * bytes / bandwidth + 2 (N-1) * alpha, nothing overlapped (the
  allreduce starts after the backend's single backward call);
- the transfer model without the feature cache (frozen VGG16 run every step, augmentation):
  T_c = 32 * (backbone seconds per image) + head step, gradient of the head only;
- the whole cached transfer job (training set of 11,135 images, val 1,279, test 27,167, 15
  epochs of batch 32 per node): extraction split N ways, one allgather of the features, then
  the head's steps.
"""
import sys

compute, extract = {}, None
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "compute":
        compute[f[1]] = (float(f[2]), int(f[4]))
    elif f[0] == "extract":
        extract = float(f[2])
measured = {}
for line in open(sys.argv[2]):
    f = line.split()
    measured[(f[1], f[-1])] = float(f[2])
alpha = (float(sys.argv[3]) if len(sys.argv) > 3 else 25.0) * 1e-6
nodes = [2, 4, 8, 16, 32, 64]
links = (10, 25, 100)


def ring(n, nbytes, gbit):
    return 2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * alpha


print("per step at 32 images per node (compute measured here, 2 threads)")
print(f"{'model':30} {'params':>10} {'grad MB':>8} {'compute ms':>10} {'shm ms':>8} "
      f"{'tcp-lo ms':>9} {'MB/s of compute':>15}")
rows = dict(compute)
if extract and "transfer_head" in compute:
    t, p = compute["transfer_head"]
    rows["transfer_uncached"] = (32 * extract + t, p)
for m, (t, p) in rows.items():
    shm = measured.get((m, "shm"), measured.get(("transfer_head", "shm")) if m ==
                       "transfer_uncached" else float("nan"))
    tcp = measured.get((m, "tcp-loopback"), measured.get(("transfer_head", "tcp-loopback")) if
                       m == "transfer_uncached" else float("nan"))
    print(f"{m:30} {p:>10} {p*4/1e6:>8.2f} {t*1e3:>10.1f} {shm*1e3:>8.2f} {tcp*1e3:>9.2f} "
          f"{p*4/1e6/t:>15.2f}")

print(f"\npredicted per-step efficiency T_c / (T_c + T_ar), ring allreduce, alpha {alpha*1e6:.0f} us")
print(f"{'model':30} {'Gbit/s':>6} " + " ".join(f"{n:>6}" for n in nodes))
for m, (t, p) in rows.items():
    for gbit in links:
        print(f"{m:30} {gbit:>6} " +
              " ".join(f"{t / (t + ring(n, p * 4, gbit)):>6.3f}" for n in nodes))

if extract and "transfer_head" in compute:
    t, p = compute["transfer_head"]
    train, val, test, epochs = 11135, 1279, 27167, 15
    images = train + val + test
    feature_floats = 512 * 3 * 3
    one = images * extract + epochs * train / 32 * t
    print(f"\nwhole cached transfer job: extraction {images} images x {extract*1e3:.0f} ms = "
          f"{images*extract:.0f} s, head {epochs} epochs x {train/32:.0f} steps x {t*1e3:.0f} ms = "
          f"{epochs*train/32*t:.0f} s; one node {one:.0f} s")
    print(f"{'':30} {'Gbit/s':>6} " + " ".join(f"{n:>6}" for n in nodes))
    for gbit in links:
        effs = []
        for n in nodes:
            gather = (n - 1) / n * images * feature_floats * 4 / (gbit * 1e9 / 8)
            steps = epochs * train / (32 * n)  # continuous: no images dropped
            total = images * extract / n + gather + steps * (t + ring(n, p * 4, gbit))
            effs.append(one / (n * total))
        print(f"{'transfer job (cached)':30} {gbit:>6} " + " ".join(f"{e:>6.3f}" for e in effs))

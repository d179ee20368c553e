#!/usr/bin/python3
"""PyTorch anchor for issue 5 item 8: one full training epoch of the baseline CNN, data loading
included, the way a PyTorch user writes it (run with Debian's /usr/bin/python3 + python3-torch,
python3-torchvision; bench/anchors/train_epoch.sh sets OPENBLAS_CORETYPE and runs both sides).

The same model as onnxforge's baseline (Conv 16@3x3 ReLU, MaxPool 2x2/1, Conv 16@3x3 ReLU,
MaxPool 2x2/1, Flatten, Linear 64 ReLU, Linear 1; 9,050,961 parameters), Adam lr 1e-3,
BCEWithLogitsLoss, batch 32, shuffle, drop_last=True, on the same image folder through the usual
torchvision.datasets.ImageFolder + DataLoader (PIL decode + ToTensor: RGB scaled to [0, 1], NCHW):
every epoch decodes every JPEG again. PyTorch's default initialisation (not Glorot): init does
not change the time.

Variants (the best one is the anchor): DataLoader num_workers (0: decode in the training process;
N: N worker processes decode while the main process trains) x memory format (contiguous NCHW or
channels_last for the model and each batch). torch.set_num_threads(--threads) (default: cores).

Prints, per variant, one line
    RESULT variant=<name> epoch_s=<s> images=<n> images_per_second=<r> val_s=<s> val_accuracy=<a>
where epoch_s is the training loop alone (first batch fetched to last optimizer step; the
DataLoader's worker start-up is inside it) and images = batches x 32. With --val FOLDER, the
model is then scored on that folder (outside epoch_s, as onnxforge's images_per_second excludes
its validation pass too). With --save DIR, the state_dict is saved there at the end.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader

VARIANTS = {
    "workers0-contiguous": (0, False),
    "workers0-channels_last": (0, True),
    "workers2-contiguous": (2, False),
    "workers2-channels_last": (2, True),
    "workers1-channels_last": (1, True),
}


def baseline():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Conv2d(16, 16, 3), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(16 * 94 * 94, 64), nn.ReLU(), nn.Linear(64, 1))


def loader(folder, workers, shuffle, drop_last, batch, seed):
    dataset = torchvision.datasets.ImageFolder(folder, transform=torchvision.transforms.ToTensor())
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch, shuffle=shuffle, drop_last=drop_last,
                      num_workers=workers, generator=generator,
                      persistent_workers=False, pin_memory=False)


def run_variant(name, args):
    workers, channels_last = VARIANTS[name]
    torch.manual_seed(args.seed)
    model = baseline()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    train = loader(args.train, workers, True, True, args.batch, args.seed)

    model.train()
    images = correct = 0
    loss_sum = 0.0
    start = time.perf_counter()
    for x, y in train:
        x = x.contiguous(memory_format=fmt)
        y = y.float().unsqueeze(1)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        n = x.shape[0]
        loss_sum += loss.item() * n
        correct += ((logits.detach() >= 0) == (y >= 0.5)).sum().item()
        images += n
    epoch_s = time.perf_counter() - start

    val_s, val_accuracy = 0.0, float("nan")
    if args.val:
        model.eval()
        val = loader(args.val, workers, False, False, args.batch, args.seed)
        hits = total = 0
        start = time.perf_counter()
        with torch.no_grad():
            for x, y in val:
                logits = model(x.contiguous(memory_format=fmt))
                hits += ((logits.squeeze(1) >= 0) == (y >= 1)).sum().item()
                total += x.shape[0]
        val_s = time.perf_counter() - start
        val_accuracy = hits / max(total, 1)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.save, f"{name}.pt"))
    print(f"RESULT variant={name} epoch_s={epoch_s:.3f} images={images} "
          f"images_per_second={images / epoch_s:.2f} val_s={val_s:.3f} "
          f"val_accuracy={val_accuracy:.4f} train_loss={loss_sum / max(images, 1):.4f} "
          f"train_accuracy={correct / max(images, 1):.4f}", flush=True)
    return images / epoch_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", help="training image folder (one subfolder per class)")
    parser.add_argument("--val", default="", help="validation folder scored after the epoch")
    parser.add_argument("--variants", default="workers0-channels_last,workers2-channels_last,"
                        "workers2-contiguous",
                        help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--save", default="", help="folder for the trained state_dict")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"threads {torch.get_num_threads()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}", file=sys.stderr)
    rates = {}
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"unknown variant {name}; known: {', '.join(VARIANTS)}")
        rates[name] = run_variant(name, args)
    if len(rates) > 1:
        best = max(rates, key=rates.get)
        print(f"BEST variant={best} images_per_second={rates[best]:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden values for tests/trainers/golden_test.cpp: the baseline CNN (at 3x16x16) trained for
five Adam steps on fixed data by PyTorch, the framework users compare onnxforge with.

Parameters and data are closed-form functions of their index (both sides compute them the same
way), so nothing but the resulting losses is committed. Run it with Debian's python3-torch:
    /usr/bin/python3 tests/trainers/golden/make_baseline_adam.py > tests/trainers/golden/baseline_adam.json
"""
import json
import math

import torch

torch.manual_seed(0)
torch.set_num_threads(1)
torch.backends.mkldnn.enabled = False  # plain f64 reference arithmetic, below

BATCH, C, H, W = 8, 3, 16, 16
STEPS = 5
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-7
LABELS = [1, 0, 1, 1, 0, 0, 1, 0]


def closed_form(count, j, scale):
    """Parameter j's values: scale * sin(0.7 i + 1.3 j + 0.5), rounded to f32."""
    return torch.tensor([scale * math.sin(0.7 * i + 1.3 * j + 0.5) for i in range(count)],
                        dtype=torch.float32)


def image_values():
    n = BATCH * C * H * W
    return torch.tensor([math.sin(0.37 * i) * math.cos(0.011 * i) for i in range(n)],
                        dtype=torch.float32).reshape(BATCH, C, H, W)


class Baseline(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3)
        self.conv2 = torch.nn.Conv2d(16, 16, 3)
        flat = 16 * (H - 6) * (W - 6)
        self.dense1 = torch.nn.Linear(flat, 64)
        self.dense2 = torch.nn.Linear(64, 1)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2, stride=1)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2, stride=1)
        x = torch.relu(self.dense1(torch.flatten(x, 1)))
        return self.dense2(x)  # logits; the model's Sigmoid is folded into the loss


def main():
    model = Baseline()
    # Canonical order (onnxforge's initializers): kernel then bias, layer by layer.
    params = [model.conv1.weight, model.conv1.bias, model.conv2.weight, model.conv2.bias,
              model.dense1.weight, model.dense1.bias, model.dense2.weight, model.dense2.bias]
    fan_in = [27, 27, 144, 144, model.dense1.in_features, model.dense1.in_features, 64, 64]
    with torch.no_grad():
        for j, p in enumerate(params):
            scale = (1.0 if j % 2 == 0 else 0.1) / math.sqrt(fan_in[j])
            p.copy_(closed_form(p.numel(), j, scale).reshape(p.shape))
    model = model.double()  # the reference: f64 arithmetic from the f32 starting point
    x = image_values().double()
    y = torch.tensor(LABELS, dtype=torch.float64).reshape(BATCH, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        losses.append(torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).item())
    print(json.dumps({
        "what": "baseline CNN at 3x16x16, BCE with logits, Adam; loss before each step, then after",
        "made_by": f"tests/trainers/golden/make_baseline_adam.py, torch {torch.__version__}, float64",
        "batch": BATCH, "input": [C, H, W], "labels": LABELS, "steps": STEPS,
        "adam": {"lr": LR, "beta1": BETA1, "beta2": BETA2, "epsilon": EPS},
        "losses": losses,
    }, indent=1))


if __name__ == "__main__":
    main()

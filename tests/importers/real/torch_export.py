#!/usr/bin/python3
"""torch.onnx exports of torchvision vgg16 / resnet18 / mobilenet_v2 (random weights, eval mode).

Run by make_corpus.py with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision
0.14); it only writes .onnx files plus a JSON list describing them on stdout's last line.
Expected outputs are computed afterwards by make_corpus.py with ONNX Runtime.

Usage: /usr/bin/python3 torch_export.py OUT_DIR {small|full}
  small: width-reduced models built through torchvision's own classes (module paths
         features.N / classifier.N, conv1 / bn1 / layer1.0.conv1 / ... / fc), opsets 11, 13, 17,
         dynamic and fixed batch, with and without do_constant_folding, and (resnet18,
         mobilenet_v2) training=TrainingMode.PRESERVE, which keeps BatchNormalization nodes.
  full:  the real torchvision vgg16 / resnet18 / mobilenet_v2 (random weights), opset 13.
"""
import json
import os
import sys

import torch
import torchvision
from torch import nn
from torchvision.models import resnet, vgg
from torchvision.ops.misc import Conv2dNormActivation

torch.set_num_threads(1)

SEED = 1234


def randomize_bn(model, gen):
    # Random running statistics and affine parameters so that batch norm is not the identity.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


class SmallResNet(resnet.ResNet):
    """torchvision's ResNet with narrower stages: same attributes (conv1, bn1, relu, maxpool,
    layer1..4, avgpool, fc), same _make_layer and forward."""

    def __init__(self, widths=(8, 16, 24, 32), layers=(2, 1, 1, 1), num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(resnet.BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(resnet.BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(resnet.BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(resnet.BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def small_vgg16():
    # VGG16's cfg "D" at 1/32 width; torchvision's VGG keeps avgpool = AdaptiveAvgPool2d(7x7), so
    # the input is 224x224 (7x7 after the five pools) and the classifier is narrowed to match.
    cfg = [c if c == "M" else c // 32 for c in vgg.cfgs["D"]]
    model = vgg.VGG(vgg.make_layers(cfg, batch_norm=False), num_classes=10, init_weights=True)
    model.classifier = nn.Sequential(
        nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(32, 10))
    return model, (3, 224, 224), "features.30"


def small_resnet18():
    return SmallResNet(), (3, 32, 32), "avgpool"


def small_mobilenet_v2():
    # torchvision.models.mobilenet_v2(width_mult=0.25) with one block per stage and the final
    # 1x1 conv (features.N, fixed at 1280 channels in torchvision) narrowed to 128.
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2], [6, 64, 1, 2], [6, 96, 1, 1],
               [6, 160, 1, 2], [6, 320, 1, 1]]
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10,
                                            inverted_residual_setting=setting)
    last = len(model.features) - 1
    in_ch = model.features[last][0].in_channels
    model.features[last] = Conv2dNormActivation(in_ch, 128, kernel_size=1,
                                                norm_layer=nn.BatchNorm2d,
                                                activation_layer=nn.ReLU6)
    model.classifier[1] = nn.Linear(128, 10)
    # The global pooling is functional (nn.functional.adaptive_avg_pool2d in forward).
    return model, (3, 32, 32), "adaptive_avg_pool2d (functional, in MobileNetV2.forward)"


def full(name):
    model = getattr(torchvision.models, name)(weights=None)
    pool = {"vgg16": "features.30", "resnet18": "avgpool",
            "mobilenet_v2": "adaptive_avg_pool2d (functional, in MobileNetV2.forward)"}[name]
    return model, (3, 224, 224), pool


def export(model, chw, path, opset, dynamic, fold, preserve=False):
    model.eval()
    x = torch.zeros((1,) + tuple(chw))
    kwargs = {}
    if preserve:
        # training=PRESERVE on an eval-mode model: what users pass to keep the graph trainable;
        # torch.onnx then does not fold BatchNorm into Conv, so BatchNormalization nodes stay.
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"],
                      opset_version=opset, do_constant_folding=fold, **kwargs)


def main():
    out_dir, kind = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    if kind == "small":
        makers = {"vgg16": small_vgg16, "resnet18": small_resnet18,
                  "mobilenet_v2": small_mobilenet_v2}
        variants = [(11, True, True), (13, True, True), (17, True, True), (13, False, True),
                    (13, True, False), (13, True, True, "preserve")]
    else:
        makers = {n: (lambda n=n: full(n)) for n in ("vgg16", "resnet18", "mobilenet_v2")}
        variants = [(13, True, True)]
    for name, make in makers.items():
        if kind == "small" and name == "vgg16":  # no BatchNorm in VGG16: PRESERVE changes nothing
            these = [v for v in variants if len(v) == 3]
        else:
            these = variants
        gen = torch.Generator().manual_seed(SEED)
        torch.manual_seed(SEED)
        model, chw, pool = make()
        randomize_bn(model, gen)
        for opset, dynamic, fold, *extra in these:
            preserve = "preserve" in extra
            stem = (f"torch_{name}_op{opset}_{'dyn' if dynamic else 'b1'}" + ("" if fold else "_nofold")
                    + ("_preserve" if preserve else ""))
            path = os.path.join(out_dir, stem + ".onnx")
            export(model, chw, path, opset, dynamic, fold, preserve)
            entries.append({
                "file": stem + ".onnx", "model": f"torchvision {name}",
                "exporter": "torch.onnx", "exporter_version": f"torch {torch.__version__}",
                "framework": f"torchvision {torchvision.__version__}", "opset": opset,
                "input_chw": list(chw), "dynamic_batch": dynamic, "constant_folding": fold,
                "training_mode": "PRESERVE" if preserve else "EVAL",
                "last_pool_layer": pool, "preprocessing": "imagenet", "layout": "NCHW",
                "parameters": sum(p.numel() for p in model.parameters()),
                "width_reduced": kind == "small"})
            print(path, file=sys.stderr)
    print(json.dumps(entries))


if __name__ == "__main__":
    main()

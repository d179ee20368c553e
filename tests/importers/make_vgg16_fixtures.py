#!/usr/bin/python3
"""Writes VGG16 ONNX fixtures with random weights, shaped like the models users have.

  zoo:   the ONNX model zoo's vgg16-7 (opset 7): input `data` 1x3x224x224, Conv/Relu/MaxPool,
         Flatten, Gemm (transB=1), Relu, Dropout, ... output `vgg0_dense2_fwd` [1,1000].
         The last pooling node is `vgg0_pool4`.
  keras: a tf2onnx export of tf.keras.applications.VGG16 (opset 13): NHWC input `input_1`
         [unk__0,224,224,3], a Transpose to NCHW, Keras layer names (block1_conv1 ...
         block5_pool), a Transpose back to NHWC, a Shape -> Gather -> Unsqueeze -> Concat ->
         Reshape flatten, MatMul + Add dense layers and a Softmax. The last pooling node is
         `vgg16/block5_pool/MaxPool`.

Usage: /usr/bin/python3 make_vgg16_fixtures.py OUT_DIR [--width W] [--seed S] [--forms zoo,keras]
       [--size 224] [--classes 1000]
Writes OUT_DIR/vgg16_zoo.onnx and OUT_DIR/vgg16_keras.onnx. --width scales every channel and
unit count (a width-reduced variant for quick numeric checks); 1.0 is the real 138,357,544
parameter network. Needs Debian's python3-onnx (and numpy).
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


def scaled(n, width):
    return max(1, int(round(n * width)))


def tensor(rng, name, shape, fan_in):
    # He-uniform-like scale keeps activations finite through 16 layers.
    bound = np.float32(np.sqrt(6.0 / fan_in))
    values = rng.random(shape, dtype=np.float32)
    values *= 2 * bound  # in place: the full-size fully connected weights are 400 MB
    values -= bound
    return numpy_helper.from_array(values, name)


def zoo(width, rng, size=224, classes=1000):
    nodes, inits = [], []
    x = "data"
    channels = 3
    conv_i = relu_i = 0
    for block, (filters, convs) in enumerate(BLOCKS):
        filters = scaled(filters, width)
        for _ in range(convs):
            w, b = f"vgg0_conv{conv_i}_weight", f"vgg0_conv{conv_i}_bias"
            inits.append(tensor(rng, w, (filters, channels, 3, 3), channels * 9))
            inits.append(numpy_helper.from_array(np.zeros(filters, np.float32), b))
            y = f"vgg0_conv{conv_i}_fwd"
            nodes.append(helper.make_node("Conv", [x, w, b], [y], name=y, kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1]))
            r = f"vgg0_relu{relu_i}_fwd"
            nodes.append(helper.make_node("Relu", [y], [r], name=r))
            x, channels = r, filters
            conv_i += 1
            relu_i += 1
        p = f"vgg0_pool{block}_fwd"
        nodes.append(helper.make_node("MaxPool", [x], [p], name=f"vgg0_pool{block}",
                                      kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2]))
        x = p
    nodes.append(helper.make_node("Flatten", [x], ["flatten_60"], name="flatten_60", axis=1))
    x = "flatten_60"
    features = channels * (size // 32) ** 2
    units = [scaled(4096, width), scaled(4096, width), classes]
    for i, u in enumerate(units):
        w, b = f"vgg0_dense{i}_weight", f"vgg0_dense{i}_bias"
        inits.append(tensor(rng, w, (u, features), features))
        inits.append(numpy_helper.from_array(np.zeros(u, np.float32), b))
        y = f"vgg0_dense{i}_fwd"
        nodes.append(helper.make_node("Gemm", [x, w, b], [y], name=y, alpha=1.0, beta=1.0,
                                      transA=0, transB=1))
        x, features = y, u
        if i < 2:
            r = f"vgg0_dense{i}_relu_fwd"
            nodes.append(helper.make_node("Relu", [x], [r], name=r))
            d = f"vgg0_dropout{i}_fwd"
            nodes.append(helper.make_node("Dropout", [r], [d], name=d, ratio=0.5))
            x = d
    # IR version 3, as in the zoo file: every initializer is also listed as a graph input.
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, size, size])]
    inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "vgg16", inputs,
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, producer_name="fixture (vgg16-7 layout)",
                              opset_imports=[helper.make_opsetid("", 7)])
    model.ir_version = 3
    return model


def keras(width, rng, size=224, classes=1000):
    nodes, inits = [], []
    nodes.append(helper.make_node("Transpose", ["input_1"], ["input_1_nchw"],
                                  name="Transpose__6", perm=[0, 3, 1, 2]))
    x = "input_1_nchw"
    channels = 3
    for block, (filters, convs) in enumerate(BLOCKS):
        filters = scaled(filters, width)
        for c in range(convs):
            layer = f"block{block + 1}_conv{c + 1}"
            w = f"vgg16/{layer}/Conv2D/ReadVariableOp:0"
            b = f"vgg16/{layer}/BiasAdd/ReadVariableOp:0"
            inits.append(tensor(rng, w, (filters, channels, 3, 3), channels * 9))
            inits.append(numpy_helper.from_array(np.zeros(filters, np.float32), b))
            y = f"vgg16/{layer}/BiasAdd:0"
            nodes.append(helper.make_node("Conv", [x, w, b], [y], name=f"vgg16/{layer}/BiasAdd",
                                          kernel_shape=[3, 3], strides=[1, 1], dilations=[1, 1],
                                          group=1, auto_pad="SAME_UPPER"))
            r = f"vgg16/{layer}/Relu:0"
            nodes.append(helper.make_node("Relu", [y], [r], name=f"vgg16/{layer}/Relu"))
            x, channels = r, filters
        p = f"vgg16/block{block + 1}_pool/MaxPool:0"
        nodes.append(helper.make_node("MaxPool", [x], [p], name=f"vgg16/block{block + 1}_pool/MaxPool",
                                      kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"))
        x = p
    nodes.append(helper.make_node("Transpose", [x], ["vgg16/block5_pool/MaxPool__nhwc:0"],
                                  name="Transpose__28", perm=[0, 2, 3, 1]))
    x = "vgg16/block5_pool/MaxPool__nhwc:0"
    # flatten: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))
    inits.append(numpy_helper.from_array(np.array(0, np.int64), "const_zero"))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "const_axes"))
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "const_minus_one"))
    nodes += [
        helper.make_node("Shape", [x], ["vgg16/flatten/Shape:0"], name="vgg16/flatten/Shape"),
        helper.make_node("Gather", ["vgg16/flatten/Shape:0", "const_zero"], ["vgg16/flatten/strided_slice:0"],
                         name="vgg16/flatten/strided_slice", axis=0),
        helper.make_node("Unsqueeze", ["vgg16/flatten/strided_slice:0", "const_axes"],
                         ["vgg16/flatten/Unsqueeze:0"], name="vgg16/flatten/Unsqueeze"),
        helper.make_node("Concat", ["vgg16/flatten/Unsqueeze:0", "const_minus_one"],
                         ["vgg16/flatten/Reshape/shape:0"], name="vgg16/flatten/Reshape/shape", axis=0),
        helper.make_node("Reshape", [x, "vgg16/flatten/Reshape/shape:0"], ["vgg16/flatten/Reshape:0"],
                         name="vgg16/flatten/Reshape"),
    ]
    x = "vgg16/flatten/Reshape:0"
    features = channels * (size // 32) ** 2
    layers = [("fc1", scaled(4096, width), "Relu"), ("fc2", scaled(4096, width), "Relu"),
              ("predictions", classes, "Softmax")]
    for name, units, activation in layers:
        w = f"vgg16/{name}/MatMul/ReadVariableOp:0"
        b = f"vgg16/{name}/BiasAdd/ReadVariableOp:0"
        inits.append(tensor(rng, w, (features, units), features))
        inits.append(numpy_helper.from_array(np.zeros(units, np.float32), b))
        nodes.append(helper.make_node("MatMul", [x, w], [f"vgg16/{name}/MatMul:0"], name=f"vgg16/{name}/MatMul"))
        nodes.append(helper.make_node("Add", [f"vgg16/{name}/MatMul:0", b], [f"vgg16/{name}/BiasAdd:0"],
                                      name=f"vgg16/{name}/BiasAdd"))
        out = "predictions" if activation == "Softmax" else f"vgg16/{name}/{activation}:0"
        extra = {"axis": -1} if activation == "Softmax" else {}
        nodes.append(helper.make_node(activation, [f"vgg16/{name}/BiasAdd:0"], [out],
                                      name=f"vgg16/{name}/{activation}", **extra))
        x, features = out, units
    graph = helper.make_graph(
        nodes, "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", size, size, 3])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["unk__0", classes])], inits)
    model = helper.make_model(graph, producer_name="tf2onnx", producer_version="1.9.3",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forms", default="zoo,keras")
    parser.add_argument("--size", type=int, default=224, help="input height and width (>= 32)")
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for form in args.forms.split(","):
        model = {"zoo": zoo, "keras": keras}[form](args.width, rng, args.size, args.classes)
        if args.width < 1.0:
            onnx.checker.check_model(model)  # the full model is checked by the importer
        path = os.path.join(args.out_dir, f"vgg16_{form}.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        print(path)


if __name__ == "__main__":
    main()

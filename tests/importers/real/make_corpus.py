#!/root/.cache/onnxforge-corpus/venv/bin/python
"""Makes the real-exporter ONNX corpus that tests/importers/real_models_test.cpp runs.

Every file is written by the real tool, as users get it:
  keras_*   tf2onnx 1.17 from Keras 3 models (tensorflow-cpu 2.21), opsets 13 and 17;
  torch_*   torch.onnx (Debian's torch 1.13 / torchvision 0.14, via torch_export.py),
            opsets 11 / 13 / 17, dynamic or fixed batch, with or without constant folding;
  onnxsim_* onnx-simplifier 0.8.1's output for some of those;
  zoo_*     the ONNX model zoo's vgg16-7 layout (opset 7), from ../make_vgg16_fixtures.py.
Weights are random with fixed seeds (batch-norm statistics randomized too, so that no BN is the
identity). For each file the expected output on a seeded input is computed by ONNX Runtime and
stored as ONNX TensorProto files data/inputs/<shape>.pb (one per input shape, shared) and
data/<stem>/output_0.pb; manifest.json
describes every file (see README.md).

Usage (from anywhere; writes next to this script unless --out is given):
  /root/.cache/onnxforge-corpus/venv/bin/python make_corpus.py            # committed corpus
  /root/.cache/onnxforge-corpus/venv/bin/python make_corpus.py --full     # full-size, into
      ~/.cache/onnxforge-corpus/full/ (not committed; ONNXFORGE_REAL_MODELS_DIR points there)
  --only keras,torch,zoo,onnxsim   makes only those groups (the manifest is rewritten from
      the files present, so the others must already be there)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PYTHON = "/usr/bin/python3"
SEED = 1234
POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}


# ---- Keras / tf2onnx ---------------------------------------------------------------------------

def keras_env():
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    return tf, keras


def randomize_keras_bn(model, rng):
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            c = gamma.shape[0]
            layer.set_weights([
                (rng.random(c) * 0.5 + 0.75).astype(np.float32),
                (rng.standard_normal(c) * 0.1).astype(np.float32),
                (rng.standard_normal(c) * 0.1).astype(np.float32),
                (rng.random(c) * 0.5 + 0.75).astype(np.float32)])


def keras_vgg16_small(keras, size=64, width=16, units=64, classes=10):
    """keras.applications.VGG16's layers (same names and order) at 1/width of its conv widths,
    with its own top (flatten, fc1, fc2, predictions) narrowed to `units`. At 64x64 block5_pool
    is 2x2, so that tf2onnx keeps its Transpose back to NHWC and a shape chain before the
    flatten Reshape (at 1x1 both fold away)."""
    from keras import layers
    blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    img = layers.Input(shape=(size, size, 3))
    x = img
    for b, (filters, convs) in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(filters // width, (3, 3), activation="relu", padding="same",
                              name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(units, activation="relu", name="fc1")(x)
    x = layers.Dense(units, activation="relu", name="fc2")(x)
    x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(img, x, name="vgg16")


def resnet_head(keras, features, units=32, classes=10):
    """avg_pool as keras.applications.ResNet50 has it, then a Dense head whose
    BatchNormalization after Dense cannot be folded into a Conv (tf2onnx writes Mul/Add)."""
    from keras import layers
    x = layers.GlobalAveragePooling2D(name="avg_pool")(features.output)
    x = layers.Dense(units, name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(features.input, x, name="resnet50")


def keras_resnet50_small(keras, size=32):
    """keras.applications' own ResNet() builder and residual_block_v1 (layer names conv1_conv,
    conv1_bn, conv2_block1_0_conv, ..., conv5_block1_out) with 1 or 2 blocks per stage and
    narrow stages; conv1_conv keeps its 64 filters (fixed in the builder)."""
    from keras.src.applications import resnet

    def stack_fn(x):
        x = resnet.stack_residual_blocks_v1(x, 4, 2, stride1=1, name="conv2")
        x = resnet.stack_residual_blocks_v1(x, 8, 1, name="conv3")
        x = resnet.stack_residual_blocks_v1(x, 8, 1, name="conv4")
        return resnet.stack_residual_blocks_v1(x, 16, 1, name="conv5")

    features = resnet.ResNet(stack_fn, False, True, include_top=False, weights=None,
                             input_shape=(size, size, 3), name="resnet50")
    return resnet_head(keras, features)


def keras_mobilenet_v2_small(keras, size=32, alpha=0.25, last=128, classes=10):
    """keras.applications.MobileNetV2's layers (Conv1, bn_Conv1, expanded_conv_*,
    block_1_expand ... block_16_project_BN, Conv_1, Conv_1_bn, out_relu,
    global_average_pooling2d, predictions) built with keras' own _inverted_res_block, at
    alpha 0.25 (0.35, the smallest with imagenet weights, makes a 1.1 MB file); only Conv_1 is
    narrowed from its fixed 1280 channels to `last`. The real alpha=0.35 model is in --full."""
    from keras import layers
    from keras.src.applications import mobilenet_v2 as m
    img = layers.Input(shape=(size, size, 3))
    x = layers.Conv2D(m._make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2),
                      padding="same", use_bias=False, name="Conv1")(img)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
           (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
           (160, 1, 6), (160, 1, 6), (320, 1, 6)]
    for block_id, (filters, stride, expansion) in enumerate(cfg):
        x = m._inverted_res_block(x, filters=filters, alpha=alpha, stride=stride,
                                  expansion=expansion, block_id=block_id)
    x = layers.Conv2D(last, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(img, x, name=f"mobilenetv2_{alpha:0.2f}_{size}")


def keras_full(keras, name):
    """The real keras.applications models (random weights)."""
    apps = keras.applications
    if name == "vgg16":
        base = apps.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3))
        from keras import layers
        x = layers.Flatten(name="flatten")(base.output)
        x = layers.Dense(256, activation="relu", name="fc1")(x)
        x = layers.Dense(256, activation="relu", name="fc2")(x)
        x = layers.Dense(10, activation="softmax", name="predictions")(x)
        return keras.Model(base.input, x, name="vgg16"), "block5_pool"
    if name == "resnet50":
        base = apps.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
        return resnet_head(keras, base), "avg_pool"
    if name == "mobilenet_v2":
        return (apps.MobileNetV2(alpha=1.0, weights=None, input_shape=(96, 96, 3), classes=1000),
                "global_average_pooling2d")
    if name == "mobilenet_v2_035":
        return (apps.MobileNetV2(alpha=0.35, weights=None, input_shape=(48, 48, 3), classes=10),
                "global_average_pooling2d")
    raise ValueError(name)


KERAS_PREPROCESSING = {"vgg16": "caffe", "resnet50": "caffe", "mobilenet_v2": "tf",
                       "mobilenet_v2_035": "tf"}


def make_keras(models_dir, full):
    tf, keras = keras_env()
    import tf2onnx
    entries = []
    if full:
        names = ["vgg16", "resnet50", "mobilenet_v2", "mobilenet_v2_035"]
        opsets = [13, 17]
    else:
        names = ["vgg16", "resnet50", "mobilenet_v2"]
        opsets = [13, 17]
    for name in names:
        keras.utils.set_random_seed(SEED)
        if full:
            model, pool = keras_full(keras, name)
        else:
            model, pool = {
                "vgg16": (lambda: (keras_vgg16_small(keras), "block5_pool")),
                "resnet50": (lambda: (keras_resnet50_small(keras), "avg_pool")),
                "mobilenet_v2": (lambda: (keras_mobilenet_v2_small(keras),
                                          "global_average_pooling2d")),
            }[name]()
        randomize_keras_bn(model, np.random.default_rng(SEED))
        input_name = model.inputs[0].name
        hwc = [int(d) for d in model.inputs[0].shape[1:]]
        spec = [tf.TensorSpec([None] + hwc, tf.float32, name=input_name)]
        for opset in opsets:
            stem = f"keras_{name}_op{opset}"
            path = os.path.join(models_dir, stem + ".onnx")
            tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, output_path=path)
            entries.append({
                "file": stem + ".onnx", "model": f"keras.applications {name}",
                "exporter": "tf2onnx", "exporter_version": f"tf2onnx {tf2onnx.__version__}",
                "framework": f"keras {keras.__version__}, tensorflow {tf.__version__}",
                "opset": opset, "dynamic_batch": True, "constant_folding": True,
                "last_pool_layer": pool, "preprocessing": KERAS_PREPROCESSING[name],
                "layout": "NHWC", "parameters": int(model.count_params()),
                "width_reduced": not full})
            print(path, file=sys.stderr)
    return entries


# ---- torch.onnx (a separate interpreter) ----------------------------------------------------------

def make_torch(models_dir, full):
    script = os.path.join(HERE, "torch_export.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([TORCH_PYTHON, script, models_dir, "full" if full else "small"],
                         check=True, stdout=subprocess.PIPE, env=env, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---- the model zoo's vgg16-7 layout ------------------------------------------------------------

def make_zoo(models_dir):
    script = os.path.join(HERE, "..", "make_vgg16_fixtures.py")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, script, tmp, "--forms", "zoo", "--width", "0.03125",
                        "--size", "32", "--classes", "10", "--seed", str(SEED)], check=True,
                       stdout=subprocess.DEVNULL)
        os.replace(os.path.join(tmp, "vgg16_zoo.onnx"), os.path.join(models_dir, "zoo_vgg16_7.onnx"))
    return [{"file": "zoo_vgg16_7.onnx", "model": "ONNX model zoo vgg16-7 layout (recreated)",
             "exporter": "make_vgg16_fixtures.py (zoo form)",
             "exporter_version": f"onnx {onnx.__version__} helper", "opset": 7,
             "dynamic_batch": False, "constant_folding": True, "last_pool_layer": "vgg0_pool4",
             "preprocessing": "imagenet", "layout": "NCHW", "width_reduced": True}]


# ---- onnx-simplifier ---------------------------------------------------------------------------

SIMPLIFY = ["keras_resnet50_op13", "keras_vgg16_op17", "torch_resnet18_op13_dyn_nofold",
            "torch_mobilenet_v2_op11_dyn", "torch_vgg16_op13_b1"]


def make_onnxsim(models_dir, entries):
    import onnxsim
    out = []
    by_stem = {e["file"][:-5]: e for e in entries}
    for stem in SIMPLIFY:
        if stem not in by_stem:
            continue
        model = onnx.load(os.path.join(models_dir, stem + ".onnx"))
        simplified, ok = onnxsim.simplify(model)
        assert ok, stem
        name = f"onnxsim_{stem}.onnx"
        onnx.save(simplified, os.path.join(models_dir, name))
        e = dict(by_stem[stem])
        e.update({"file": name, "simplified_from": stem + ".onnx",
                  "exporter": e["exporter"] + " + onnxsim",
                  "exporter_version": e["exporter_version"] + f", onnxsim {onnxsim.__version__}",
                  "opset": next(o.version for o in simplified.opset_import if o.domain in ("", "ai.onnx"))})
        out.append(e)
        print(name, file=sys.stderr)
    return out


# ---- expected outputs and the manifest ---------------------------------------------------------

def dims_of(value_info):
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else -1)
    return dims


def pool_node(model, layer):
    pools = [n for n in model.graph.node if n.op_type in POOL_OPS]
    for n in reversed(pools):
        if f"/{layer}/" in n.name or n.name.startswith(f"{layer}/") or n.name == layer:
            return n.name, n.op_type
    # a functional pooling (torchvision mobilenet_v2) or a renamed node: the last pooling node
    return (pools[-1].name, pools[-1].op_type) if pools else ("", "")


def finish(out_dir, models_dir, data_dir, entries):
    import onnxruntime as ort
    out = []
    for e in entries:
        path = os.path.join(models_dir, e["file"])
        model = onnx.load(path)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        assert len(inputs) == 1 and len(model.graph.output) == 1, e["file"]
        shape = dims_of(inputs[0])
        # Batch 2 for dynamic-batch files, except the 224x224 ones (1, to keep the folder small).
        per_image = int(np.prod(shape[1:]))
        batch = shape[0] if shape[0] != -1 else (2 if per_image <= 100000 else 1)
        test_shape = [batch] + shape[1:]
        stem = e["file"][:-5]
        # One input per shape, shared by the files taking it, seeded by the shape.
        shape_name = "x".join(map(str, test_shape))
        rng = np.random.default_rng([SEED] + test_shape)
        x = rng.uniform(-1.0, 1.0, size=test_shape).astype(np.float32)
        input_rel = f"data/inputs/{shape_name}.pb"
        os.makedirs(os.path.join(data_dir, "inputs"), exist_ok=True)
        with open(os.path.join(out_dir, input_rel), "wb") as f:
            f.write(numpy_helper.from_array(x, "x_" + shape_name).SerializeToString())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {inputs[0].name: x})
        d = os.path.join(data_dir, stem)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "output_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(y, model.graph.output[0].name).SerializeToString())
        node, op = pool_node(model, e["last_pool_layer"])
        e = dict(e)
        e.pop("input_chw", None)
        e.update({
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "ir_version": model.ir_version,
            "input": {"name": inputs[0].name, "shape": shape},
            "output": {"name": model.graph.output[0].name, "shape": dims_of(model.graph.output[0])},
            "dynamic_batch": shape[0] == -1,
            "last_pool_node": node, "last_pool_op": op,
            "test_input": input_rel, "test_input_shape": test_shape,
            "expected_output": f"data/{stem}/output_0.pb",
            "expected_output_shape": list(y.shape),
            "bytes": os.path.getsize(path)})
        out.append(e)
        print(f"{e['file']}: {e['bytes']} bytes, output {list(y.shape)}", file=sys.stderr)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="full-size models into --out (default ~/.cache/onnxforge-corpus/full)")
    parser.add_argument("--out", help="output folder (default: this folder, or the cache with --full)")
    parser.add_argument("--only", default="keras,torch,zoo,onnxsim")
    args = parser.parse_args()
    out = args.out or (os.path.expanduser("~/.cache/onnxforge-corpus/full") if args.full else HERE)
    models_dir, data_dir = os.path.join(out, "models"), os.path.join(out, "data")
    os.makedirs(models_dir, exist_ok=True)
    groups = args.only.split(",")
    manifest_path = os.path.join(out, "manifest.json")
    old = []
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = json.load(f)["models"]
    entries = []
    if "keras" in groups:
        entries += make_keras(models_dir, args.full)
    if "torch" in groups:
        entries += make_torch(models_dir, args.full)
    if "zoo" in groups and not args.full:
        entries += make_zoo(models_dir)
    base = entries + [e for e in old if not e["file"].startswith("onnxsim_")]
    if "onnxsim" in groups and not args.full:
        sims = make_onnxsim(models_dir, base)
        entries += sims
    made = {e["file"] for e in entries}
    keep = [e for e in old if e["file"] not in made and os.path.exists(os.path.join(models_dir, e["file"]))]
    final = finish(out, models_dir, data_dir, entries) + keep
    final.sort(key=lambda e: e["file"])
    with open(manifest_path, "w") as f:
        json.dump({"format": 1, "seed": SEED,
                   "tolerance": "|a - b| <= 1e-4 * max(1, |b|) per element",
                   "models": final}, f, indent=1)
        f.write("\n")
    print(manifest_path, file=sys.stderr)


if __name__ == "__main__":
    main()

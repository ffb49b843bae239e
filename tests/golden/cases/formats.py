"""File formats: legacy V0/V1 nets and weights files, run through a real Caffe.

Kinds of case here:

* ``net``      — a legacy (V0 or V1) prototxt run for numbers: real Caffe
  upgrades it on load, so equal outputs prove our upgrade builds the same net.
* ``upgrade``  — Caffe's upgraded NetParameter itself: the generator builds the
  net and saves it; the saved file carries each layer's LayerParameter as
  Caffe's upgrader (and Net::Init) left it. ``@DIR@`` in a prototxt stands for
  a scratch folder holding the LMDB / mean file / HDF5 list the data layers open.
* ``weights``  — weights files written by real Caffe (current format, V1 and V0
  layouts built here with Caffe's own caffe_pb2, legacy 4-d blob dims, HDF5)
  and read by it, or written by caffe_compat (committed next to the fixtures)
  and read by real Caffe. Each fixture holds the file's bytes (``file``), the
  parameters Caffe holds after loading it and the outputs for a fixed input.

Python 3.9 + numpy only (lmdb and h5py are imported inside generate(), which
only the generator runs).
"""

import os
import shutil
import tempfile

import numpy as np

from ._spec import labels, net_case, randn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data", "formats")

# ----------------------------------------------------------------- V0 / V1 nets
V0_NUMBERS = """
name: "v0_numbers"
input: "data"
input_dim: 2 input_dim: 4 input_dim: 7 input_dim: 7
input: "label"
input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1
force_backward: true
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 group: 2
          blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: MAX kernelsize: 3 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "pool2" type: "pool" pool: AVE kernelsize: 2 stride: 1 pad: 1 }
         bottom: "conv1" top: "pool2" }
layers { layer { name: "fc" type: "innerproduct" num_output: 3 biasterm: false } bottom: "pool1" top: "fc" }
layers { layer { name: "loss" type: "softmax_loss" } bottom: "fc" bottom: "label" top: "loss" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""

V1_NUMBERS = """
name: "v1_numbers"
input: "data"
input_shape { dim: 2 dim: 3 dim: 6 dim: 6 }
input: "label"
input_shape { dim: 2 }
force_backward: true
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" param: "shared_w"
         inner_product_param { num_output: 5 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip1" bottom: "label" top: "loss" loss_weight: 2 }
layers { name: "acc" type: ACCURACY bottom: "ip1" bottom: "label" top: "acc"
         include { phase: TEST } }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" exclude { phase: TEST } }
"""

# ------------------------------------------------------------------ upgrades
UPGRADE_V0 = """
name: "v0_upgrade"
layers { layer { name: "data" type: "images" source: "@DIR@/images.txt" batchsize: 2
                 new_height: 6 new_width: 6 shuffle_images: true rand_skip: 1
                 scale: 0.5 meanfile: "@DIR@/mean.binaryproto" cropsize: 4 mirror: true }
         top: "data" top: "label" }
layers { layer { name: "hdata" type: "hdf5_data" source: "@DIR@/h5list.txt" batchsize: 2 }
         top: "hdata" top: "hlabel" }
layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 1 group: 1 biasterm: true
                 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.1 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" num_output: 7 } bottom: "conv1" top: "conv1" }
layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "conv1" top: "pad2" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "pad2" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0002 beta: 0.6 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "sig" type: "sigmoid" } bottom: "norm1" top: "sig" }
layers { layer { name: "tanh" type: "tanh" } bottom: "norm1" top: "tanh" }
layers { layer { name: "bnll" type: "bnll" } bottom: "norm1" top: "bnll" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 }
         bottom: "sig" bottom: "tanh" bottom: "bnll" top: "cat" }
layers { layer { name: "flat" type: "flatten" } bottom: "cat" top: "flat" }
layers { layer { name: "fc" type: "innerproduct" num_output: 3 biasterm: false
                 weight_filler { type: "xavier" } } bottom: "flat" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "fc" top: "fc" }
layers { layer { name: "loss" type: "softmax_loss" } bottom: "fc" bottom: "label" top: "loss" }
layers { layer { name: "acc" type: "accuracy" } bottom: "fc" bottom: "label" top: "acc" }
"""

UPGRADE_V1 = """
name: "v1_upgrade"
layers { name: "data" type: DATA top: "data" top: "label"
         data_param { source: "@DIR@/lmdb" backend: LMDB batch_size: 2
                      scale: 0.25 mean_file: "@DIR@/mean.binaryproto" crop_size: 4 mirror: true }
         include { phase: TRAIN } }
layers { name: "data" type: DATA top: "data" top: "label"
         data_param { source: "@DIR@/lmdb" backend: LMDB batch_size: 2 crop_size: 4 }
         transform_param { scale: 2 }
         include { phase: TEST } }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 param: "cw" param: "cb"
         blob_share_mode: PERMISSIVE
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: true
                             weight_filler { type: "msra" } } }
layers { name: "conv2" type: CONVOLUTION bottom: "data" top: "conv2" param: "cw" param: "cb"
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layers { name: "sum" type: ELTWISE bottom: "conv1" bottom: "conv2" top: "sum"
         eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layers { name: "relu" type: RELU bottom: "sum" top: "sum" relu_param { negative_slope: 0.2 } }
layers { name: "pool" type: POOLING bottom: "sum" top: "pool"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "deconv" type: DECONVOLUTION bottom: "pool" top: "deconv"
         convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
layers { name: "slice" type: SLICE bottom: "deconv" top: "s1" top: "s2"
         slice_param { axis: 1 slice_point: 1 } }
layers { name: "pow" type: POWER bottom: "s1" top: "pow" power_param { power: 2 scale: 0.5 shift: 1 } }
layers { name: "exp" type: EXP bottom: "s2" top: "exp" exp_param { base: 2 } }
layers { name: "abs" type: ABSVAL bottom: "pow" top: "abs" }
layers { name: "thr" type: THRESHOLD bottom: "exp" top: "thr" threshold_param { threshold: 0.5 } }
layers { name: "mvn" type: MVN bottom: "abs" top: "mvn" mvn_param { across_channels: true } }
layers { name: "cat" type: CONCAT bottom: "mvn" bottom: "thr" top: "cat" concat_param { axis: 1 } }
layers { name: "lrn" type: LRN bottom: "cat" top: "lrn"
         lrn_param { local_size: 1 norm_region: WITHIN_CHANNEL } }
layers { name: "drop" type: DROPOUT bottom: "lrn" top: "lrn" dropout_param { dropout_ratio: 0.1 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "lrn" top: "ip" blobs_lr: 3 blobs_lr: 4
         inner_product_param { num_output: 3 } }
layers { name: "tanh" type: TANH bottom: "ip" top: "tanh" }
layers { name: "sig" type: SIGMOID bottom: "ip" top: "sig" }
layers { name: "soft" type: SOFTMAX bottom: "ip" top: "soft" softmax_param { axis: 1 } }
layers { name: "argmax" type: ARGMAX bottom: "soft" top: "argmax" argmax_param { top_k: 2 } }
layers { name: "dummy" type: DUMMY_DATA top: "target"
         dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 0.5 } } }
layers { name: "eloss" type: EUCLIDEAN_LOSS bottom: "tanh" bottom: "target" top: "eloss" loss_weight: 0.5 }
layers { name: "sloss" type: SIGMOID_CROSS_ENTROPY_LOSS bottom: "sig" bottom: "target" top: "sloss" }
layers { name: "hloss" type: HINGE_LOSS bottom: "ip" bottom: "label" top: "hloss"
         hinge_loss_param { norm: L2 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss"
         loss_param { ignore_label: 2 normalize: false } }
layers { name: "acc" type: ACCURACY bottom: "ip" bottom: "label" top: "acc"
         accuracy_param { top_k: 2 } include { phase: TEST } }
layers { name: "bnll" type: BNLL bottom: "ip" top: "bnll_in" }
layers { name: "silence" type: SILENCE bottom: "argmax" bottom: "bnll_in" exclude { phase: TRAIN } }
"""

INPUT_DIM = """
name: "input_dim"
input: "a"
input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5
input: "b"
input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1
layer { name: "ip" type: "InnerProduct" bottom: "a" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "b" top: "loss" }
"""

INPUT_SHAPE = """
name: "input_shape"
input: "a"
input_shape { dim: 2 dim: 6 }
input: "b"
input_shape { dim: 2 }
layer { name: "ip" type: "InnerProduct" bottom: "a" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "ip2" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "b" top: "loss" }
"""

BATCHNORM = """
name: "batchnorm_params"
layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 1 }
        batch_norm_param { use_global_stats: true } }
"""


def _legacy_file(name):
    with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "data", "legacy", name)) as f:
        return f.read()


def upgrade_case(name, prototxt, phase="TEST", note=""):
    return {"kind": "upgrade", "name": name, "prototxt": prototxt.strip() + "\n",
            "phase": phase, "note": note}


# ------------------------------------------------------------------- weights
def weights_net(slash=True):
    """The current-format net every weights case loads into (both sides)."""
    conv = "conv1/3x3" if slash else "conv1"
    return """
name: "weights_net"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "%s" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1" inner_product_param { num_output: 6 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 bias_term: false } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
""" % conv


def weights_case(name, layout, slash=True, file=None, note=""):
    return {"kind": "weights", "name": name, "layout": layout, "slash": slash, "file": file,
            "prototxt": weights_net(slash).strip() + "\n", "note": note}


# Files caffe_compat wrote (tests/test_weights_io.py makes them again and
# checks they have not changed); real Caffe reads them here.
OURS_CAFFEMODEL = "written_by_caffe_compat.caffemodel"
OURS_HDF5 = "written_by_caffe_compat.caffemodel.h5"

CASES = [
    net_case("v0_padding_conv_pool_ip_loss", V0_NUMBERS, inputs={"label": labels(2, 1, 1, 1, classes=3)},
             note="V0 net: padding layer folded into conv, grouped conv, MAX/AVE pool, IP without bias"),
    net_case("v1_train", V1_NUMBERS, inputs={"label": labels(2, classes=5)},
             note="V1 net, TRAIN: include/exclude rules, loss_weight, input_shape"),
    net_case("v1_test", V1_NUMBERS, phase="TEST", inputs={"label": labels(2, classes=5)}, grad=False,
             note="V1 net, TEST: the Accuracy layer is included, the Softmax excluded (forward "
                  "only: generate.py cannot give a 0-d output a top diff)"),
    upgrade_case("v0_all_fields", UPGRADE_V0, note="V0 → current, incl. a field the type does not take"),
    upgrade_case("v1_all_types_test", UPGRADE_V1, note="V1 → current + data transform fields, TEST"),
    upgrade_case("v1_all_types_train", UPGRADE_V1, phase="TRAIN"),
    upgrade_case("v0_numbers_net", V0_NUMBERS),
    upgrade_case("v0_lenet_file", _legacy_file("v0_lenet.prototxt"),
                 note="tests/data/legacy/v0_lenet.prototxt"),
    upgrade_case("input_dim", INPUT_DIM, note="input + input_dim → Input layer named input"),
    upgrade_case("input_shape", INPUT_SHAPE, note="input + input_shape → Input layer, with splits"),
    upgrade_case("batchnorm_param_specs", BATCHNORM, note="three BatchNorm param specs → multipliers 0"),
    weights_case("caffe_written_current", "current", note="net.save() of real Caffe"),
    weights_case("caffe_written_v1", "v1", note="V1 layers { type: ENUM blobs } weights file"),
    weights_case("caffe_written_v0", "v0", note="V0 layers { layer { blobs } } weights file"),
    weights_case("caffe_written_legacy_dims", "legacy4d",
                 note="current layers, blobs with num/channels/height/width (IP weight 1x1xNxK)"),
    weights_case("caffe_written_double", "double", note="blobs stored as double_data"),
    weights_case("caffe_written_hdf5", "hdf5", slash=False, note="net.save_hdf5() of real Caffe"),
    weights_case("caffe_reads_ours", "ours", file=OURS_CAFFEMODEL,
                 note="Net.save() of caffe_compat, loaded by real Caffe"),
    weights_case("caffe_reads_ours_hdf5", "ours", slash=False, file=OURS_HDF5,
                 note="Net.save_hdf5() of caffe_compat, loaded by real Caffe"),
]


# ----------------------------------------------------------------- generator
def _make_sources(tmp):
    """An LMDB of 4 Datums (3x6x6), a mean file, an HDF5 list and an image list."""
    import h5py
    import lmdb
    from caffe.proto import caffe_pb2

    rng = np.random.RandomState(7)
    env = lmdb.open(os.path.join(tmp, "lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        for i in range(4):
            d = caffe_pb2.Datum(channels=3, height=6, width=6, label=i % 3,
                                data=rng.randint(0, 256, 108).astype(np.uint8).tobytes())
            txn.put(b"%08d" % i, d.SerializeToString())
    env.close()
    mean = caffe_pb2.BlobProto(num=1, channels=3, height=6, width=6)
    mean.data.extend(rng.uniform(0, 255, 108).astype(np.float32))
    with open(os.path.join(tmp, "mean.binaryproto"), "wb") as f:
        f.write(mean.SerializeToString())
    with h5py.File(os.path.join(tmp, "d.h5"), "w") as f:
        f["hdata"] = rng.randn(4, 3, 6, 6).astype(np.float32)
        f["hlabel"] = np.arange(4, dtype=np.float32) % 3
    with open(os.path.join(tmp, "h5list.txt"), "w") as f:
        f.write(os.path.join(tmp, "d.h5") + "\n")
    from PIL import Image

    with open(os.path.join(tmp, "images.txt"), "w") as f:
        for i in range(3):
            name = os.path.join(tmp, "img%d.png" % i)
            Image.fromarray(rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)).save(name)
            f.write("%s %d\n" % (name, i))


def _saved_layers(caffe, net, tmp):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    path = os.path.join(tmp, "saved.caffemodel")
    net.save(path)
    saved = caffe_pb2.NetParameter()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    for layer in saved.layer:
        del layer.blobs[:]
    return text_format.MessageToString(saved).replace(tmp, "@DIR@")


def _generate_upgrade(case, caffe):
    tmp = tempfile.mkdtemp()
    try:
        _make_sources(tmp)
        path = os.path.join(tmp, "net.prototxt")
        with open(path, "w") as f:
            f.write(case["prototxt"].replace("@DIR@", tmp))
        net = caffe.Net(path, caffe.TEST if case["phase"] == "TEST" else caffe.TRAIN)
        meta = dict(case)
        meta["upgraded"] = _saved_layers(caffe, net, tmp)
        meta["layer_names"] = list(net._layer_names)
        meta["layer_types"] = [layer.type for layer in net.layers]
        meta["blob_shapes"] = {k: list(v.data.shape) for k, v in net.blobs.items()}
    finally:
        shutil.rmtree(tmp)
    return meta, {}


def _blob(pb, values, legacy=False, double=False):
    """A BlobProto in Caffe's own caffe_pb2, N-d or legacy 4-d (dims aligned right)."""
    b = pb.BlobProto()
    if legacy:
        dims = (1,) * (4 - values.ndim) + values.shape
        b.num, b.channels, b.height, b.width = dims
    else:
        b.shape.dim.extend(values.shape)
    (b.double_data if double else b.data).extend(values.reshape(-1).tolist())
    return b


def _write_layout(layout, params, path):
    """A weights file for ``weights_net`` in one of the historical layouts."""
    from caffe.proto import caffe_pb2 as pb

    net = pb.NetParameter(name="weights_net")
    V1 = pb.V1LayerParameter
    v1_types = {"Convolution": V1.CONVOLUTION, "InnerProduct": V1.INNER_PRODUCT}
    v0_types = {"Convolution": "conv", "InnerProduct": "innerproduct"}
    for lname, (ltype, arrays) in params.items():
        if layout == "v1":
            layer = net.layers.add(name=lname, type=v1_types[ltype])
            layer.blobs_lr.extend([1.0] * len(arrays))
            layer.blobs.extend(_blob(pb, a, legacy=True) for a in arrays)
        elif layout == "v0":
            conn = net.layers.add()
            conn.layer.name, conn.layer.type = lname, v0_types[ltype]
            conn.layer.blobs.extend(_blob(pb, a, legacy=True) for a in arrays)
        else:
            layer = net.layer.add(name=lname, type=ltype)
            layer.blobs.extend(_blob(pb, a, legacy=layout == "legacy4d", double=layout == "double")
                               for a in arrays)
    # A layer the target net lacks is skipped by name.
    extra = net.layer.add(name="not_in_net", type="InnerProduct") if layout not in ("v0", "v1") \
        else None
    if extra is not None:
        extra.blobs.extend([_blob(pb, np.ones((2, 2), np.float32))])
    with open(path, "wb") as f:
        f.write(net.SerializeToString())


def _generate_weights(case, caffe, rng):
    tmp = tempfile.mkdtemp()
    try:
        proto = os.path.join(tmp, "net.prototxt")
        with open(proto, "w") as f:
            f.write(case["prototxt"])
        net = caffe.Net(proto, caffe.TEST)
        layout = case["layout"]
        if layout == "ours":
            wpath = os.path.join(DATA, case["file"])
        else:
            types = {n: layer.type for n, layer in zip(net._layer_names, net.layers)}
            params = {}
            for lname, blobs in net.params.items():
                arrays = [(rng.randn(*b.data.shape) * 0.5).astype(np.float32) for b in blobs]
                params[lname] = (types[lname], arrays)
                for b, a in zip(blobs, arrays):
                    b.data[...] = a
            wpath = os.path.join(tmp, "w.caffemodel" + (".h5" if layout == "hdf5" else ""))
            if layout == "current":
                net.save(wpath)
            elif layout == "hdf5":
                net.save_hdf5(wpath)
            else:
                _write_layout(layout, params, wpath)
            net = caffe.Net(proto, caffe.TEST)  # fresh: every value must come from the file
        net.copy_from(wpath)
        arrays = {}
        with open(wpath, "rb") as f:
            arrays["weights_file"] = np.frombuffer(f.read(), dtype=np.uint8).copy()
        for lname, blobs in net.params.items():
            for i, b in enumerate(blobs):
                arrays["param/%s/%d" % (lname, i)] = b.data.copy()
        x = randn(2, 3, 5, 5)(rng)
        net.blobs["data"].data[...] = x
        net.forward()
        arrays["input/data"] = x
        for name, blob in net.blobs.items():
            arrays["blob/%s" % name] = blob.data.copy()
    finally:
        shutil.rmtree(tmp)
    meta = {k: case[k] for k in ("kind", "name", "layout", "slash", "file", "prototxt", "note")}
    meta["tol"] = 1e-5
    return meta, arrays


def generate(case, caffe, rng):
    if case["kind"] == "upgrade":
        return _generate_upgrade(case, caffe)
    return _generate_weights(case, caffe, rng)

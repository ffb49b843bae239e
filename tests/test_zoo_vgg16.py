"""VGG-16 (``examples/model_zoo/vgg_ilsvrc_16_layers``): the committed files are what
``make_prototxts.py`` writes, and the deploy net has the layer names and parameter shapes of
the published ``VGG_ILSVRC_16_layers_deploy.prototxt``, so that model's .caffemodel loads.
(bench/bench_big.py runs it against real Caffe, OpenCV dnn and ONNX Runtime.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import caffe_compat as caffe

ZOO = Path(__file__).resolve().parent.parent / "examples" / "model_zoo"
FILES = ["vgg_ilsvrc_16_layers/deploy.prototxt", "vgg_ilsvrc_16_layers/train_val.prototxt"]
# (name, weight shape) of the published deploy net's learnable layers.
CONVS = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
         ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv4_1", 256, 512),
         ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512),
         ("conv5_3", 512, 512)]
PARAMS = [(n, (o, i, 3, 3)) for n, i, o in CONVS] + [
    ("fc6", (4096, 25088)), ("fc7", (4096, 4096)), ("fc8", (1000, 4096))]


@pytest.mark.parametrize("rel", FILES)
def test_committed_file_is_what_the_generator_writes(rel):
    spec = importlib.util.spec_from_file_location("make_prototxts", ZOO / "make_prototxts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ZOO / rel).read_text() == module.FILES[rel]()


def test_deploy_has_the_published_layers_and_shapes():
    net = caffe.Net(str(ZOO / FILES[0]), caffe.TEST)
    want = []
    for b, n in enumerate((2, 2, 3, 3, 3), 1):
        for i in range(1, n + 1):
            want += [f"conv{b}_{i}", f"relu{b}_{i}"]
        want.append(f"pool{b}")
    want += ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"]
    assert list(net._layer_names) == ["data"] + want
    assert [(k, v[0].data.shape) for k, v in net.params.items()] == PARAMS
    assert all(v[1].data.shape == (s[0],) for (k, v), (_, s) in zip(net.params.items(), PARAMS))
    assert net.blobs["pool5"].data.shape == (10, 512, 7, 7) and net.outputs == ["prob"]


def test_train_val_builds_with_losses_in_train_and_accuracy_in_test():
    from caffe_compat.netparam import filter_net
    from caffe_compat.proto import caffe_pb2
    from caffe_compat.proto.files import read_text

    param = read_text(ZOO / FILES[1], caffe_pb2.NetParameter())
    for phase, extra in ((caffe_pb2.TRAIN, {"loss"}),
                         (caffe_pb2.TEST, {"loss", "accuracy", "accuracy_top5"})):
        param.state.phase = phase
        names = [layer.name for layer in filter_net(param).layer]
        assert extra <= set(names) and names[0] == "data" and names.count("data") == 1

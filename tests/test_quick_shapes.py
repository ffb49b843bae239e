"""Shape inference without meta tensors (``Layer.quick_top_shapes``).

The formula a layer gives must agree with its forward run on meta tensors,
for every layer of every golden net and example net, and must raise the same
error for bottoms forward rejects. A fresh process building LeNet must not
touch meta tensors at all (the first meta operation imports torch's dynamo,
about 1.5 s).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import caffe_compat as caffe
from caffe_compat.errors import CaffeCompatError

from golden_harness import build_net, fixtures, load
from layer_util import build_layer, with_input_layer

ROOT = Path(__file__).resolve().parents[1]
COVERED: Counter[str] = Counter()


def _check_net(net: "caffe.Net") -> None:
    for node in net._nodes:
        if node.is_input:
            continue
        shapes = [net._blob_list[b].shape for b in node.bottom_ids]
        quick = node.layer.quick_top_shapes(shapes)
        if quick is None:
            continue
        COVERED[node.type] += 1
        assert quick == node.layer.meta_top_shapes(shapes), f"{node.type} {node.name} for {shapes}"


@pytest.mark.parametrize("path", fixtures("net"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_nets(path):
    fx = load(path)
    try:
        net = build_net(fx)
    except Exception as exc:  # a fixture of an error, or a net needing its data files
        pytest.skip(f"not buildable here: {exc}")
    _check_net(net)


def test_common_layers_are_covered():
    for path in fixtures("net"):
        try:
            _check_net(build_net(load(path)))
        except CaffeCompatError:
            pass
    want = {"ReLU", "Sigmoid", "TanH", "Dropout", "PReLU", "InnerProduct", "Convolution",
            "Deconvolution", "Pooling", "Concat", "Eltwise", "Softmax", "SoftmaxWithLoss",
            "Accuracy", "LRN", "BatchNorm", "Scale", "Bias", "Split"}
    assert want <= set(COVERED), sorted(want - set(COVERED))


BAD = [
    ('type: "InnerProduct" inner_product_param { num_output: 3 }', [(2, 4)], [(2, 5)]),
    ('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }', [(1, 2, 5, 5)],
     [(1, 3, 5, 5)]),
    ('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }', [(1, 2, 5, 5)],
     [(1, 2, 2, 2)]),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [(1, 2, 4, 4)], [(1, 2, 4)]),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 1 round_mode: FLOOR }',
     [(1, 1, 4, 4)], [(1, 1, 2, 4)]),
    ('type: "Concat"', [(2, 3, 4), (2, 5, 4)], [(2, 3, 4), (3, 5, 4)]),
    ('type: "Concat"', [(2, 3, 4), (2, 5, 4)], [(2, 3, 4), (2, 5)]),
    ('type: "SoftmaxWithLoss"', [(4, 3), (4,)], [(4, 3), (5,)]),
    ('type: "SoftmaxWithLoss"', [(4, 3), (4,)], [(4, 3), (4, 2)]),
    ('type: "Accuracy"', [(4, 3), (4,)], [(4, 3), (3,)]),
    ('type: "Scale"', [(2, 3, 4)], [(2, 4, 4)]),
    ('type: "Scale" scale_param { bias_term: true }', [(2, 3, 4), (3,)], [(2, 3, 4), (4,)]),
    ('type: "Bias"', [(2, 3, 4), (3, 4)], [(2, 3, 4), (3, 5)]),
]


@pytest.mark.parametrize("text,good,bad", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_same_error_as_forward(text, good, bad):
    layer = build_layer(f'name: "l" {text}', good)
    with pytest.raises(CaffeCompatError) as meta:
        layer.meta_top_shapes(bad)
    with pytest.raises(CaffeCompatError) as quick:
        layer.top_shapes(bad)
    assert type(quick.value) is type(meta.value) and str(quick.value) == str(meta.value)


@pytest.mark.parametrize("text,shapes", [
    ('type: "Eltwise"', [(2, 3), (2, 4)]),
    ('type: "BatchNorm"', [(2, 4, 3)]),
    ('type: "LRN"', [(2, 4, 3)]),
    ('type: "PReLU"', [(2, 4, 3)]),
])
def test_meta_forward_decides_what_the_formula_does_not_know(text, shapes):
    good = [(2, 3, 5, 5)] * len(shapes)
    layer = build_layer(f'name: "l" {text}', good)
    assert layer.quick_top_shapes(shapes) is None
    with pytest.raises(CaffeCompatError):
        layer.top_shapes(shapes)


def test_building_lenet_runs_no_meta_operation(tmp_path):
    path = with_input_layer(ROOT / "examples" / "nets" / "lenet_train_test.prototxt",
                            tmp_path / "lenet.prototxt", (64, 1, 28, 28))
    code = f"""
import sys
import caffe_compat as caffe
net = caffe.Net({str(path)!r}, caffe.TRAIN)
assert net.blobs['ip2'].data.shape == (64, 10), net.blobs['ip2'].data.shape
print('torch._dynamo' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

"""caffe.draw and ``caffe-compat draw`` against real pycaffe's DOT output, and graph structure."""

from __future__ import annotations

import shutil

import pytest
from google.protobuf import text_format

import caffe_compat as caffe
from caffe_compat import cli, draw
from caffe_compat.errors import UnsupportedError
from caffe_compat.proto import caffe_pb2
from golden_harness import fixtures, load

DRAW = [load(p) for p in fixtures("draw", groups=("io",))]
PHASES = {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST, None: None}

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 3 }
        include { phase: TEST } }
"""


def _net(text: str = NET) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.mark.parametrize("fx", DRAW, ids=[fx.path.stem for fx in DRAW])
def test_dot_source_matches_pycaffe(fx):
    m = fx.meta
    graph = draw.get_pydot_graph(_net(m["prototxt"]), m["rankdir"], label_edges=m["label_edges"],
                                 phase=PHASES[m["phase"]], display_lrm=m["display_lrm"])
    assert graph.to_string() == m["dot"]


def _structure(graph):
    nodes = {n.get_name(): n for n in graph.get_nodes()}
    edges = [(e.get_source(), e.get_destination(), e.get("label")) for e in graph.get_edges()]
    return nodes, edges


def test_graph_nodes_and_edges():
    nodes, edges = _structure(draw.get_pydot_graph(_net(), "LR"))
    conv = '"conv\\n(Convolution)\\nkernel size: 3\\nstride: 2\\npad: 1"'
    relu = '"relu\\n(ReLU)"'
    pool = '"pool\\n(Pooling AVE)\\nkernel size: 2\\nstride: 1\\npad: 0"'
    ip = '"ip\\n(InnerProduct)"'
    assert set(nodes) == {'"data\\n(Input)"', conv, relu, pool, ip, "data", "conv", "pool", "ip"}
    assert nodes[relu].get("fillcolor") == "#90EE90"       # in-place neuron layer
    assert nodes[conv].get("fillcolor") == "#FF5050"
    assert nodes[pool].get("fillcolor") == "#FF9900"
    assert nodes["pool"].get("shape") == "octagon"          # consumed blob
    assert nodes["ip"].get("shape") is None                 # output blob: unstyled, as pycaffe
    assert ("data", conv, '""') in edges and (conv, "conv", "4") in edges
    assert ("conv", relu, '""') in edges and (relu, "conv", '""') in edges
    assert (ip, "ip", "3") in edges and len(edges) == 9


def test_phase_filter_and_labels():
    nodes, edges = _structure(draw.get_pydot_graph(_net(), "TB", label_edges=False, phase=caffe.TRAIN))
    assert '"ip (InnerProduct)"' not in nodes
    assert '"conv (Convolution) kernel size: 3 stride: 2 pad: 1"' in nodes
    assert all(label == '""' for _, _, label in edges)
    nodes, _ = _structure(draw.get_pydot_graph(_net(), "TB", phase=caffe.TEST))
    assert '"ip (InnerProduct)"' in nodes


def test_include_and_exclude_is_an_error():
    net = _net(NET + 'layer { name: "x" type: "ReLU" bottom: "ip" top: "ip" '
                     'include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(ValueError, match="layer x has both include and exclude"):
        draw.get_pydot_graph(net, "LR", phase=caffe.TRAIN)


def test_lr_mult_label():
    net = _net('layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b" param { lr_mult: 0.5 } '
               'param { lr_mult: 0 } }')
    assert "lr mult: 0.5, 0.0" in draw.get_layer_label(net.layer[0], "LR", display_lrm=True)
    assert draw.get_layer_lr_mult(net.layer[0]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="ReLU"):
        draw.get_layer_lr_mult(caffe_pb2.LayerParameter(type="ReLU"))


def test_raw_output_is_the_dot_source(tmp_path):
    out = tmp_path / "net.raw"
    draw.draw_net_to_file(_net(), str(out), "TB", caffe.TEST)
    assert out.read_text() == draw.get_pydot_graph(_net(), "TB", phase=caffe.TEST).to_string()


def test_png_without_graphviz_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UnsupportedError, match="Graphviz"):
        draw.draw_net_to_file(_net(), str(tmp_path / "net.png"))
    draw.draw_net_to_file(_net(), str(tmp_path / "net.dot"))  # the source, without Graphviz
    assert (tmp_path / "net.dot").read_text().startswith("digraph small {")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed here")
def test_png_with_graphviz(tmp_path):
    draw.draw_net_to_file(_net(), str(tmp_path / "net.png"))
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ======================================================================= CLI
def test_cli_draw_raw(tmp_path, capsys):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    out = tmp_path / "graph.raw"
    assert cli.main(["draw", str(proto), str(out), "--rankdir", "BT", "--phase", "test"]) == 0
    assert "Drawing net to" in capsys.readouterr().out
    assert out.read_text() == draw.get_pydot_graph(_net(), "BT", phase=caffe.TEST).to_string()


def test_cli_draw_png_without_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    assert cli.main(["draw", str(proto), str(tmp_path / "g.png")]) == 1
    assert "Graphviz" in capsys.readouterr().err


def test_cli_draw_upgrades_v1_nets(tmp_path):
    pytest.importorskip("caffe_compat.proto.legacy", reason="V1 upgrade (helper H) not available yet")
    proto = tmp_path / "v1.prototxt"
    proto.write_text('name: "old" layers { name: "r" type: RELU bottom: "a" top: "b" }')
    out = tmp_path / "g.raw"
    assert cli.main(["draw", str(proto), str(out)]) == 0
    assert '"r\\n(ReLU)"' in out.read_text()

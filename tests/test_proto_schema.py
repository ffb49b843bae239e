"""Our caffe.proto covers upstream BVLC caffe.proto: every message, field name,
number, type, label, default and nested enum value.

The upstream facts come from a real Caffe build's descriptor
(``golden/extract_proto_fields.py`` → ``golden/data/formats/caffe_proto_fields.json``);
the same ``describe`` function reads our generated module here. A mismatch
means a .prototxt or .caffemodel would be read differently from Caffe.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from caffe_compat.proto import caffe_pb2
from golden.extract_proto_fields import OUT, describe

UPSTREAM = json.loads(open(OUT).read())
OURS = describe(caffe_pb2)
MESSAGES = sorted(UPSTREAM["messages"])

# Our additions; numbers chosen far from upstream's so they can never collide.
ALLOWED_EXTRA_FIELDS = {
    ("HingeLossParameter", "margin"): 10001,
    ("LayerParameter", "smooth_l1_loss_param"): 8266712,
    # Fork fields (layers/forks): at the fork's number, or 10000 + it where that collides.
    ("LayerParameter", "roi_pooling_param"): 8266711,
    ("LayerParameter", "annotated_data_param"): 200,
    ("LayerParameter", "multibox_loss_param"): 201,
    ("LayerParameter", "permute_param"): 202,
    ("LayerParameter", "prior_box_param"): 203,
    ("LayerParameter", "detection_output_param"): 204,
    ("LayerParameter", "detection_evaluate_param"): 205,
    ("LayerParameter", "norm_param"): 206,
    ("LayerParameter", "video_data_param"): 207,
    ("LayerParameter", "upsample_param"): 149,
    ("LayerParameter", "interp_param"): 10143,
    ("PoolingParameter", "ceil_mode"): 10013,
    ("BatchNormParameter", "scale_filler"): 5,
    ("BatchNormParameter", "bias_filler"): 6,
    ("BatchNormParameter", "scale_bias"): 7,
    ("BatchNormParameter", "use_weight_bias"): 10005,
    ("BatchNormParameter", "bias_term"): 10006,
    ("BatchNormParameter", "filler"): 10007,
}
ALLOWED_EXTRA_MESSAGES = {"SmoothL1LossParameter"}
ALLOWED_EXTRA_MESSAGES |= {  # forks: Fast R-CNN, SSD, Upsample, Interp
    "ROIPoolingParameter", "LabelMapItem", "LabelMap", "Sampler", "SampleConstraint", "BatchSampler",
    "NormalizedBBox", "Annotation", "AnnotationGroup", "AnnotatedDatum", "AnnotatedDataParameter",
    "ResizeParameter", "DetectionEvaluateParameter", "NonMaximumSuppressionParameter",
    "SaveOutputParameter", "DetectionOutputParameter", "MultiBoxLossParameter", "NormalizeParameter",
    "PermuteParameter", "PriorBoxParameter", "VideoDataParameter", "UpsampleParameter",
    "InterpParameter",
}


def _same(upstream: dict, ours: dict) -> bool:
    if upstream.keys() != ours.keys():
        return False
    for key, value in upstream.items():
        if key == "default" and upstream["type"] in ("float", "double"):
            # Both sides hold the float32 value of the same literal.
            if np.float32(value) != np.float32(ours[key]):
                return False
        elif ours[key] != value:
            return False
    return True


@pytest.mark.parametrize("name", MESSAGES)
def test_message_matches_upstream(name):
    assert name in OURS["messages"], f"message {name} is missing from our caffe.proto"
    up, ours = UPSTREAM["messages"][name], OURS["messages"][name]
    problems = []
    for field, facts in up["fields"].items():
        if field not in ours["fields"]:
            problems.append(f"{name}.{field} missing (upstream: {facts})")
        elif not _same(facts, ours["fields"][field]):
            problems.append(f"{name}.{field}: upstream {facts}, ours {ours['fields'][field]}")
    for enum, values in up["enums"].items():
        if ours["enums"].get(enum) != values:
            problems.append(f"{name}.{enum}: upstream {values}, ours {ours['enums'].get(enum)}")
    assert not problems, "\n".join(problems)


def test_top_level_enums_match():
    assert OURS["enums"] == UPSTREAM["enums"]


def test_only_allowed_extensions():
    extra_messages = set(OURS["messages"]) - set(UPSTREAM["messages"])
    assert extra_messages <= ALLOWED_EXTRA_MESSAGES, extra_messages - ALLOWED_EXTRA_MESSAGES
    extra_fields = {
        (m, f): facts["number"]
        for m, msg in OURS["messages"].items() if m in UPSTREAM["messages"]
        for f, facts in msg["fields"].items() if f not in UPSTREAM["messages"][m]["fields"]
    }
    assert extra_fields == ALLOWED_EXTRA_FIELDS
    extra_enum_values = {
        (m, e): set(values) - set(UPSTREAM["messages"][m]["enums"].get(e, {}))
        for m, msg in OURS["messages"].items() if m in UPSTREAM["messages"]
        for e, values in msg["enums"].items()
    }
    assert not any(extra_enum_values.values()), extra_enum_values


def test_facts_file_is_complete():
    """The JSON itself holds what the issue names (guards a truncated extract)."""
    for name in ("NetParameter", "LayerParameter", "V1LayerParameter", "V0LayerParameter",
                 "SolverParameter", "SolverState", "BlobProto", "BlobProtoVector", "Datum",
                 "NetState", "NetStateRule", "FillerParameter", "ClipParameter", "ParamSpec"):
        assert name in UPSTREAM["messages"]
    assert UPSTREAM["messages"]["LayerParameter"]["fields"]["clip_param"]["number"] == 148
    assert len(UPSTREAM["messages"]) >= 60
    assert "ReverseParameter" not in UPSTREAM["messages"]  # a fork's, not upstream's

"""Write the facts of upstream BVLC caffe.proto as JSON, read from a real build.

Runs under the Python that has pycaffe (like generate.py):

    GLOG_minloglevel=2 /path/to/caffe-venv/bin/python tests/golden/extract_proto_fields.py

and writes ``data/formats/caffe_proto_fields.json``: for every message its
fields (name → number, type, label, default, packed, type_name) and nested
enums, plus the top-level enums. Facts only: no comments, no text of the
.proto file.

The pip-installable build (kendryte-caffe) is BVLC's caffe.proto plus a few
additions of its fork and without upstream's newest message (ClipParameter);
both are corrected here so that the JSON describes upstream.

Python 3.9 + the build's protobuf; never imports torch or caffe_compat.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "formats", "caffe_proto_fields.json")

# Messages and fields that the fork added to BVLC's schema.
FORK_MESSAGES = {"ReverseParameter", "CtcLossParameter", "ContinuationIndicatorParameter",
                 "PermuteParameter", "LabelsequenceAccuracyParameter"}
FORK_FIELDS = {
    "LayerParameter": {"ctc_loss_param", "continuation_indicator_param", "permute_param",
                       "labelsequence_accuracy_param", "reverse_param"},
    "V1LayerParameter": {"reverse_param"},
    "V0LayerParameter": {"axis"},
}
FORK_ENUM_VALUES = {("V1LayerParameter", "LayerType"): {"REVERSE"}}

# Upstream's ClipParameter (added to BVLC master in 2019, after the fork).
CLIP = {
    "fields": {
        "min": {"number": 1, "type": "float", "label": "required"},
        "max": {"number": 2, "type": "float", "label": "required"},
    },
    "enums": {},
}
CLIP_FIELD = {"number": 148, "type": "message", "label": "optional",
              "type_name": "caffe.ClipParameter"}


def _label(f, FD):
    if hasattr(f, "label"):
        return {FD.LABEL_OPTIONAL: "optional", FD.LABEL_REQUIRED: "required",
                FD.LABEL_REPEATED: "repeated"}[f.label]
    return "repeated" if f.is_repeated else "required" if f.is_required else "optional"


def describe(module):
    from google.protobuf.descriptor import FieldDescriptor as FD

    types = {getattr(FD, n): n[len("TYPE_"):].lower() for n in dir(FD) if n.startswith("TYPE_")}
    out = {"messages": {}, "enums": {}}

    def message(d, prefix):
        name = prefix + d.name
        fields = {}
        for f in d.fields:
            entry = {"number": f.number, "type": types[f.type], "label": _label(f, FD)}
            if f.message_type is not None:
                entry["type_name"] = f.message_type.full_name
            if f.enum_type is not None:
                entry["type_name"] = f.enum_type.full_name
            if f.has_default_value:
                value = f.default_value
                if f.enum_type is not None:
                    value = f.enum_type.values_by_number[value].name
                elif isinstance(value, bytes):
                    value = value.decode("utf-8")
                entry["default"] = value
            if f.GetOptions().HasField("packed"):
                entry["packed"] = f.GetOptions().packed
            fields[f.name] = entry
        enums = {e.name: {v.name: v.number for v in e.values} for e in d.enum_types}
        out["messages"][name] = {"fields": fields, "enums": enums}
        for nested in d.nested_types:
            message(nested, name + ".")

    for d in module.DESCRIPTOR.message_types_by_name.values():
        message(d, "")
    for e in module.DESCRIPTOR.enum_types_by_name.values():
        out["enums"][e.name] = {v.name: v.number for v in e.values}
    return out


def upstream(facts):
    msgs = facts["messages"]
    for name in FORK_MESSAGES:
        del msgs[name]
    for name, fields in FORK_FIELDS.items():
        for f in fields:
            del msgs[name]["fields"][f]
    for (name, enum), values in FORK_ENUM_VALUES.items():
        for v in values:
            del msgs[name]["enums"][enum][v]
    msgs["ClipParameter"] = CLIP
    msgs["LayerParameter"]["fields"]["clip_param"] = CLIP_FIELD
    return facts


def main():
    from caffe.proto import caffe_pb2

    facts = upstream(describe(caffe_pb2))
    facts["source"] = ("BVLC caffe.proto, read from the descriptor of kendryte-caffe's "
                       "caffe_pb2 less its fork additions, plus ClipParameter")
    with open(OUT, "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", os.path.relpath(OUT, HERE), "(%d messages)" % len(facts["messages"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

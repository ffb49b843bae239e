"""pycaffe's ``caffe.net_spec``: write nets in Python, get a NetParameter.

``L.Convolution(bottom, kernel_size=3, num_output=8)`` makes a layer
(a :class:`Function`) and returns its top (a :class:`Top`); assigning tops to
a :class:`NetSpec` names them, and ``to_proto()`` emits every layer needed to
compute them, in dependency order, with pycaffe's naming rules:

* a layer is named after its first top; a top assigned to the NetSpec takes
  that attribute name, any other top is auto-named ``<Type><k>`` (k counting
  per type in the order names are first needed); a layer with ``ntop=0``
  gets ``<Type><k>``;
* ``in_place=True`` makes the tops the bottoms' names;
* keyword arguments: names ending in ``param`` (``param=``, ``convolution_param=``,
  ...) go to that LayerParameter field; others go into the layer type's
  ``<type>_param`` message when it has such a field, else into the
  LayerParameter itself (``loss_weight=``, ``include=``, ``propagate_down=``);
* dicts become messages, lists of dicts repeated messages, a scalar given for a
  repeated field a one-element list.

The type → ``*_param`` field map comes from our caffe.proto exactly as pycaffe
derives it from its own (``ConvolutionParameter`` → ``convolution_param``);
types sharing another's message (Deconvolution uses ``convolution_param``)
take their parameters as ``convolution_param=dict(...)``, as in pycaffe.

Differences from Caffe (pycaffe): tuples are accepted where lists are; an empty
list assigns nothing (pycaffe raised IndexError); reading a top that the NetSpec
does not hold raises an error that is both AttributeError and KeyError (pycaffe:
KeyError only), so ``hasattr`` and ``copy`` work on NetSpecs.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from .proto import caffe_pb2

__all__ = ["layers", "params", "NetSpec", "to_proto", "Top", "Function", "param_name_dict",
           "assign_proto"]


def param_name_dict() -> dict[str, str]:
    """Layer type name → its ``*_param`` field prefix, from the message type names."""
    out: dict[str, str] = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                out[type_name[: -len("Parameter")]] = field.name[: -len("_param")]
    return out


def to_proto(*tops: "Top") -> caffe_pb2.NetParameter:
    """A NetParameter with every layer needed to compute ``tops`` (auto-named)."""
    layers: "OrderedDict[Function, caffe_pb2.LayerParameter]" = OrderedDict()
    autonames: Counter[str] = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


def _is_repeated(proto: Any, name: str) -> bool:
    field = proto.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise AttributeError(f"{proto.DESCRIPTOR.name} has no field {name!r}")
    if hasattr(field, "is_repeated"):  # protobuf >= 5
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED


def assign_proto(proto: Any, name: str, val: Any) -> None:
    """Assign a Python value to field ``name`` of ``proto`` (recursively).

    Lists fill repeated fields (lists of dicts add messages), dicts fill
    messages, anything else is assigned; a non-list given for a repeated field
    counts as a one-element list.
    """
    repeated = _is_repeated(proto, name)
    if isinstance(val, tuple):
        val = list(val)
    if repeated and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        if val and isinstance(val[0], dict):
            for item in val:
                sub = getattr(proto, name).add()
                for k, v in item.items():
                    assign_proto(sub, k, v)
        else:
            getattr(proto, name).extend(val)
    elif isinstance(val, dict):
        sub = getattr(proto, name)
        for k, v in val.items():
            assign_proto(sub, k, v)
    else:
        setattr(proto, name, val)


class Top:
    """One output blob of a layer (the ``n``-th top of ``fn``)."""

    def __init__(self, fn: "Function", n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)

    def __repr__(self) -> str:
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """A layer: its type, its bottoms (tops of other layers) and its parameters."""

    def __init__(self, type_name: str, inputs: tuple, params: dict[str, Any]) -> None:
        self.type_name = type_name
        for index, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(inp)})")
        self.inputs = inputs
        self.params = dict(params)
        # ntop and in_place steer the spec; they are not layer parameters.
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names: dict, autonames: Counter) -> str:
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        for k, v in self.params.items():
            if k.endswith("param"):  # param=, convolution_param=, ...: LayerParameter fields
                assign_proto(layer, k, v)
                continue
            try:
                assign_proto(getattr(layer, _param_names[self.type_name] + "_param"), k, v)
            except (AttributeError, KeyError):
                assign_proto(layer, k, v)
        layers[self] = layer

    def __repr__(self) -> str:
        return f"<Function {self.type_name} ({len(self.inputs)} bottom(s), {self.ntop} top(s))>"


class _NoSuchTop(AttributeError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NetSpec:
    """Named tops: ``n.conv1 = L.Convolution(n.data, ...)``; ``n.to_proto()``."""

    def __init__(self) -> None:
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.tops[name]
        except KeyError:
            raise _NoSuchTop(f"NetSpec has no top {name!r}; it has {list(self.tops)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.__getattr__(item)

    def __contains__(self, name: str) -> bool:
        return name in self.tops

    def to_proto(self) -> caffe_pb2.NetParameter:
        """A NetParameter with the layers producing every assigned top, named as assigned."""
        names = {v: k for k, v in self.tops.items()}
        autonames: Counter[str] = Counter()
        layers: "OrderedDict[Function, caffe_pb2.LayerParameter]" = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``layers.Convolution(...)`` → a function making a layer of type "Convolution"."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def layer_fn(*args: Top, **kwargs: Any):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        layer_fn.__name__ = name
        return layer_fn


class Parameters:
    """``params.Pooling.MAX`` → ``caffe_pb2.PoolingParameter.MAX``."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        class Param:
            def __getattr__(self, param_name: str) -> Any:
                if param_name.startswith("__"):
                    raise AttributeError(param_name)
                return getattr(getattr(caffe_pb2, name + "Parameter"), param_name)

        return Param()


_param_names = param_name_dict()
layers = Layers()
params = Parameters()

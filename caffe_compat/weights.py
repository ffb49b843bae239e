"""Weights on disk: ``.caffemodel`` (binary NetParameter) and Caffe's HDF5 form.

Reading parses every layer and blob header with protobuf (the ``caffe_raw`` view
of the format) but leaves each blob's packed values where they lie in the file's
bytes, which numpy then reads in place: loading a large model holds the file once
beside the net's weights (upb would copy every payload twice, once while parsing
and again when the field is read). Writing serializes the layer definitions with
``caffe_pb2`` and appends the blobs the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch
from google.protobuf import message as _message

from .blob import note_param_write
from .errors import WeightsError
from .proto import caffe_pb2, caffe_raw_pb2
from .atomic import write_hdf5
from .proto.files import PathLike, atomic_write_bytes, parse_binary
from .proto.tolerant import check_binary
from .proto.wire import fields

if TYPE_CHECKING:
    from .net import Net

__all__ = [
    "read_weights",
    "copy_weights_from",
    "save_caffemodel",
    "net_to_proto",
    "net_to_bytes",
    "save_hdf5",
    "load_hdf5",
    "raw_blob_to_array",
    "array_to_raw_blob",
    "is_hdf5_file",
    "blob_shape_matches",
]

_log = logging.getLogger("caffe_compat")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5_file(path: PathLike) -> bool:
    """Whether the file holds HDF5 (its signature sits at 0, 512, 1024, ...)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048, 4096):
                f.seek(offset)
                if f.read(8) == _HDF5_MAGIC:
                    return True
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WeightsError(f"{path}: is a directory, expected a weights file") from None
    return False


# ------------------------------------------------------------------ blobs
def _proto_shape(raw: caffe_raw_pb2.RawBlobProto) -> tuple[tuple[int, ...], bool]:
    """The stored shape and whether it is the legacy 4-d (num, c, h, w) form."""
    if raw.HasField("num") or raw.HasField("channels") or raw.HasField("height") \
            or raw.HasField("width"):
        return (raw.num, raw.channels, raw.height, raw.width), True
    return tuple(raw.shape.dim), False


def blob_shape_matches(target: Sequence[int], stored: Sequence[int], legacy: bool) -> bool:
    """Caffe's ``Blob::ShapeEquals``: legacy dims compare left-padded with 1s."""
    target = tuple(target)
    if not legacy:
        return target == tuple(stored)
    if len(target) > 4:
        return False
    return (1,) * (4 - len(target)) + target == tuple(stored)


def raw_blob_to_array(raw: caffe_raw_pb2.RawBlobProto, what: str = "blob",
                      diff: bool = False) -> np.ndarray:
    """The blob's values (float32; float64 stored values are converted)."""
    shape, _ = _proto_shape(raw)
    single, double = (raw.diff, raw.double_diff) if diff else (raw.data, raw.double_data)
    return _packed_values(single, double, shape, what)


def _packed_values(single: bytes | memoryview, double: bytes | memoryview, shape: tuple[int, ...],
                   what: str) -> np.ndarray:
    """A blob's packed float32 (or float64, converted) values read in place, in ``shape``."""
    count = int(np.prod(shape)) if shape else 1
    if len(double):
        values = np.frombuffer(double, dtype="<f8").astype(np.float32)
    else:
        values = np.frombuffer(single, dtype="<f4")
    if values.size != count:
        raise _Repack(what)
    return values.reshape(shape)


class _Repack(Exception):
    """A blob's values were not stored as one packed run; parse the slow way."""


def array_to_raw_blob(array: np.ndarray | torch.Tensor, diff: np.ndarray | torch.Tensor | None = None
                      ) -> caffe_raw_pb2.RawBlobProto:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    arr = np.ascontiguousarray(array, dtype="<f4")
    raw = caffe_raw_pb2.RawBlobProto(data=arr.tobytes())
    raw.shape.dim.extend(arr.shape)
    if diff is not None:
        if isinstance(diff, torch.Tensor):
            diff = diff.detach().cpu().numpy()
        raw.diff = np.ascontiguousarray(diff, dtype="<f4").tobytes()
    return raw


def assign_values(target: torch.Tensor, values: np.ndarray) -> None:
    """Copy ``values`` into ``target`` in place (one copy; read-only arrays OK)."""
    values = np.asarray(values, dtype=np.float32).reshape(tuple(target.shape))
    with torch.no_grad():
        if target.device.type == "cpu":
            target.detach().numpy()[...] = values
            note_param_write(target)
        else:
            target.copy_(torch.from_numpy(np.array(values)))


# ----------------------------------------------------------------- reading
#: ``[(layer name, [(values, stored shape, legacy 4-d?)])]``
_Layers = list[tuple[str, list[tuple[np.ndarray, tuple[int, ...], bool]]]]


def _slow_read(data: bytes, path: str) -> _Layers:
    """Parse with the full schema: values stored unpacked (one tag per float)
    or split over several packed runs, which protobuf allows and the fast path
    cannot take as one buffer."""
    net = parse_binary(data, caffe_pb2.NetParameter(), path)
    layers: list[tuple[str, list[tuple[np.ndarray, tuple[int, ...], bool]]]] = []

    def conv(blob: caffe_pb2.BlobProto, name: str, j: int) -> tuple[np.ndarray, tuple[int, ...], bool]:
        raw = caffe_raw_pb2.RawBlobProto()
        if blob.HasField("shape"):
            raw.shape.dim.extend(blob.shape.dim)
        for f in ("num", "channels", "height", "width"):
            if blob.HasField(f):
                setattr(raw, f, getattr(blob, f))
        if len(blob.double_data):
            raw.double_data = np.asarray(blob.double_data, dtype="<f8").tobytes()
        else:
            raw.data = np.asarray(blob.data, dtype="<f4").tobytes()
        stored, legacy = _proto_shape(raw)
        try:
            return raw_blob_to_array(raw, path), stored, legacy
        except _Repack:
            held = len(blob.double_data) or len(blob.data)
            raise WeightsError(
                f'{path}: layer "{name}" blob {j}: the stored shape {list(stored)} needs '
                f"{int(np.prod(stored)) if stored else 1} values, the file holds {held}"
            ) from None

    for lp in net.layer:
        layers.append((lp.name, [conv(b, lp.name, j) for j, b in enumerate(lp.blobs)]))
    for v1 in net.layers:
        name = v1.name or v1.layer.name
        blobs = v1.blobs if len(v1.blobs) else v1.layer.blobs
        layers.append((name, [conv(b, name, j) for j, b in enumerate(blobs)]))
    return layers


# Field numbers of the raw view (caffe_raw.proto, the numbers of caffe.proto).
_NET_LAYER, _NET_V1 = 100, 2
_LAYER_BLOBS, _V1_BLOBS, _V1_V0, _V0_BLOBS = 7, 6, 1, 50
_BLOB_DATA, _BLOB_DIFF, _BLOB_DOUBLE, _BLOB_DOUBLE_DIFF = 5, 6, 8, 9


def _lean_blob(buf: memoryview, start: int, end: int, what: str
               ) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """A blob's values as a view of ``buf`` (float64 ones converted) and its stored shape;
    the rest of the blob (its shape) is parsed by protobuf."""
    header = bytearray()
    payload: dict[int, memoryview] = {}
    for number, wire, key, value, stop in fields(buf, start, end):
        if number in (_BLOB_DATA, _BLOB_DOUBLE):
            if wire != 2 or number in payload:
                raise _Repack(what)  # unpacked, or packed in several runs
            payload[number] = buf[value:stop]
        elif number not in (_BLOB_DIFF, _BLOB_DOUBLE_DIFF):  # weights only: diffs are skipped
            header += buf[key:stop]
    raw = caffe_raw_pb2.RawBlobProto.FromString(bytes(header))
    shape, legacy = _proto_shape(raw)
    values = _packed_values(payload.get(_BLOB_DATA, b""), payload.get(_BLOB_DOUBLE, b""), shape, what)
    return values, shape, legacy


def _lean_layer(buf: memoryview, start: int, end: int, message: Any, blobs_no: int, nested_no: int,
                what: str) -> tuple[str, list[tuple[np.ndarray, tuple[int, ...], bool]]]:
    """A layer's name (protobuf parses the layer without its blobs) and its blobs; a V1
    layer without blobs of its own takes those of the V0 layer nested in it."""
    rest = bytearray()
    spans: list[tuple[int, int]] = []
    nested: tuple[str, list[Any]] | None = None
    for number, wire, key, value, stop in fields(buf, start, end):
        if number == blobs_no and wire == 2:
            spans.append((value, stop))
        elif number == nested_no and wire == 2:
            nested = _lean_layer(buf, value, stop, caffe_raw_pb2.RawV0Layer, _V0_BLOBS, -1, what)
        else:
            rest += buf[key:stop]
    name = message.FromString(bytes(rest)).name
    if nested is not None:
        name = name or nested[0]
    where = f'{what}: layer {name}'
    blobs = [_lean_blob(buf, a, b, where) for a, b in spans]
    if not spans and nested is not None:
        blobs = nested[1]
    return name, blobs


def _lean_read(data: bytes, path: str) -> _Layers:
    """The layers of a NetParameter, each payload a view of ``data``."""
    buf = memoryview(data)
    layers: list[tuple[int, tuple[str, list[Any]]]] = []
    rest = bytearray()
    for number, wire, key, value, stop in fields(buf, 0, len(buf)):
        if number == _NET_LAYER and wire == 2:
            layers.append((0, _lean_layer(buf, value, stop, caffe_raw_pb2.RawLayer, _LAYER_BLOBS, -1,
                                          path)))
        elif number == _NET_V1 and wire == 2:
            layers.append((1, _lean_layer(buf, value, stop, caffe_raw_pb2.RawV1Layer, _V1_BLOBS,
                                          _V1_V0, path)))
        else:
            rest += buf[key:stop]
    caffe_raw_pb2.RawNet.FromString(bytes(rest))  # what is left parses, as the whole file would
    # Caffe reads ``layer`` before the V1 ``layers`` (the order the raw parse keeps).
    return [entry for kind in (0, 1) for k, entry in layers if k == kind]


def read_weights(path: PathLike) -> _Layers:
    """Layers of a .caffemodel: ``[(layer name, [(values, stored shape, legacy?)])]``.

    Current, V1 and V0 files are all read (Caffe upgrades them on load).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{p}: no such weights file") from None
    except IsADirectoryError:
        raise WeightsError(f"{p}: is a directory, expected a .caffemodel file") from None
    if not data:
        raise WeightsError(f"{p}: weights file is empty")
    check_binary(data, caffe_pb2.NetParameter.DESCRIPTOR, str(p))  # fork fields: warn (strict: raise)
    try:
        out = _lean_read(data, str(p))
        if out or not data:
            return out
    except _Repack:
        return _slow_read(data, str(p))
    except (ValueError, IndexError, _message.DecodeError):
        pass  # malformed: the full parse below says how
    try:
        raw = parse_binary(data, caffe_raw_pb2.RawNet(), str(p))
    except WeightsError:
        parse_binary(data, caffe_pb2.NetParameter(), str(p))  # the error, naming NetParameter
        raise
    entries: list[tuple[str, Sequence[caffe_raw_pb2.RawBlobProto]]] = []
    entries += [(lp.name, lp.blobs) for lp in raw.layer]
    for v1 in raw.layers:
        entries.append((v1.name or v1.layer.name, v1.blobs if len(v1.blobs) else v1.layer.blobs))
    if not entries and len(data) > 0:
        # Parsing succeeded but found no layer: most likely not a NetParameter.
        _check_really_a_net(data, str(p))
    out = []
    try:
        for name, blobs in entries:
            out.append((name, [(raw_blob_to_array(b, f"{p}: layer {name}"), *_proto_shape(b))
                               for b in blobs]))
    except _Repack:
        out = _slow_read(data, str(p))
    return out


def _check_really_a_net(data: bytes, path: str) -> None:
    net = parse_binary(data, caffe_pb2.NetParameter(), path)
    if not net.layer and not net.layers:
        raise WeightsError(f"{path}: holds no layers; is it a .caffemodel?")


def copy_weights_from(net: "Net", path: PathLike) -> None:
    """Caffe's ``CopyTrainedLayersFrom``: by layer name, shapes checked."""
    if is_hdf5_file(path):
        load_hdf5(net, path)
        return
    layers = read_weights(path)
    index = net._layer_index
    # Check every layer before copying any, so that a file that does not fit
    # leaves the net as it was (Caffe aborts the process instead).
    copies: list[tuple[torch.Tensor, np.ndarray]] = []
    for name, blobs in layers:
        li = index.get(name)
        if li is None:
            _log.debug("copy_from: ignoring source layer %s", name)
            continue
        layer = net._nodes[li].layer
        if len(layer.params) != len(blobs):
            raise WeightsError(
                f'{path}: incompatible number of blobs for {layer.where}: the file has '
                f"{len(blobs)}, the net expects {len(layer.params)}"
                + getattr(layer, "blob_count_hint", lambda n: "")(len(blobs))  # e.g. fork BatchNorm
            )
        for j, (values, stored, legacy) in enumerate(blobs):
            target = layer.params[j]
            if not blob_shape_matches(tuple(target.shape), stored, legacy):
                raise WeightsError(
                    f"{path}: {layer.where} blob {j}: shape mismatch: the file has "
                    f"{list(stored)}{' (legacy 4-d)' if legacy else ''}, the net expects "
                    f"{list(target.shape)}"
                )
            copies.append((target, values))
    for target, values in copies:
        assign_values(target, values)


# ----------------------------------------------------------------- writing
def _layer_param_for_save(net: "Net", li: int) -> caffe_pb2.LayerParameter:
    node = net._nodes[li]
    lp = caffe_pb2.LayerParameter()
    lp.CopyFrom(node.layer.layer_param)
    lp.ClearField("blobs")
    if node.layer.is_loss and not len(lp.loss_weight):
        lp.loss_weight.append(1.0)
    return lp


def net_to_bytes(net: "Net", write_diff: bool = False) -> bytes:
    """The serialized NetParameter of ``net`` with all its blobs."""
    head = caffe_pb2.NetParameter(name=net.name).SerializeToString()
    layers = caffe_raw_pb2.RawNetLayers()
    for li, node in enumerate(net._nodes):
        lp = _layer_param_for_save(net, li)
        blobs = caffe_raw_pb2.RawLayerBlobs()
        for blob in node.layer.blobs:
            blobs.blobs.append(array_to_raw_blob(blob.tensor, blob.diff_tensor if write_diff else None))
        layers.layer.append(lp.SerializeToString() + blobs.SerializeToString())
    return head + layers.SerializeToString()


def net_to_proto(net: "Net", write_diff: bool = False) -> caffe_pb2.NetParameter:
    return parse_binary(net_to_bytes(net, write_diff), caffe_pb2.NetParameter(), "<net>")


def save_caffemodel(net: "Net", path: PathLike, write_diff: bool = False, what: str = "") -> None:
    atomic_write_bytes(path, net_to_bytes(net, write_diff), what)


# -------------------------------------------------------------------- HDF5
def save_hdf5(net: "Net", path: PathLike, write_diff: bool = False, what: str = "") -> None:
    """Caffe's ``Net::ToHDF5``: ``/data/<layer>/<i>`` (and ``/diff/...``)."""

    def fill(f: Any) -> None:
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for li, node in enumerate(net._nodes):
            gdata = data.require_group(node.name)
            gdiff = diff.require_group(node.name) if diff is not None else None
            for j, pid in enumerate(node.param_ids):
                blob = node.layer.blobs[j]
                if net._param_owner[pid] == -1:  # shared: only the owner stores data
                    gdata.create_dataset(str(j), data=blob.tensor.detach().cpu().numpy())
                if gdiff is not None:  # Caffe writes diffs regardless of sharing
                    gdiff.create_dataset(str(j), data=blob.diff_tensor.detach().cpu().numpy())

    write_hdf5(path, fill, what)


def load_hdf5(net: "Net", path: PathLike) -> None:
    """Caffe's ``CopyTrainedLayersFromHDF5``."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot open as HDF5: {exc}") from None
    with f:
        if "data" not in f:
            raise WeightsError(f'{path}: HDF5 weights need a "data" group; found {list(f.keys())}')
        data = f["data"]
        names = _hdf5_layer_names(data)
        copies: list[tuple[torch.Tensor, np.ndarray]] = []  # all checked before any copy
        for name in names:
            li = net._layer_index.get(name)
            if li is None:
                continue
            node = net._nodes[li]
            group = data[name]
            stored = [k for k in group.keys() if isinstance(group[k], h5py.Dataset)]
            if len(stored) > len(node.layer.params):
                raise WeightsError(
                    f"{path}: incompatible number of blobs for {node.layer.where}: the file "
                    f"has {len(stored)}, the net expects {len(node.layer.params)}"
                )
            for j, target in enumerate(node.layer.params):
                key = str(j)
                if key not in group:
                    if net._param_owner[node.param_ids[j]] != -1:
                        continue  # shared with an earlier layer, stored there
                    raise WeightsError(
                        f"{path}: {node.layer.where} blob {j} missing from /data/{name}"
                    )
                values = np.asarray(group[key], dtype=np.float32)
                if tuple(values.shape) != tuple(target.shape):
                    raise WeightsError(
                        f"{path}: {node.layer.where} blob {j}: shape mismatch: the file has "
                        f"{list(values.shape)}, the net expects {list(target.shape)}"
                    )
                copies.append((target, values))
    for target, values in copies:
        assign_values(target, values)


def _hdf5_layer_names(group: "object") -> Iterable[str]:
    """Layer groups under /data; names with '/' are nested groups in HDF5."""
    import h5py

    out: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group):
            if any(isinstance(v, h5py.Dataset) for v in obj.values()) or not len(obj):
                out.append(name)

    group.visititems(visit)  # type: ignore[attr-defined]
    return out

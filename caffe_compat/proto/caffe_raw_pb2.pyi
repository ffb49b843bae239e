from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RawBlobShape(_message.Message):
    __slots__ = ("dim",)
    DIM_FIELD_NUMBER: _ClassVar[int]
    dim: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dim: _Optional[_Iterable[int]] = ...) -> None: ...

class RawBlobProto(_message.Message):
    __slots__ = ("shape", "data", "diff", "double_data", "double_diff", "num", "channels", "height", "width")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_DATA_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_DIFF_FIELD_NUMBER: _ClassVar[int]
    NUM_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    shape: RawBlobShape
    data: bytes
    diff: bytes
    double_data: bytes
    double_diff: bytes
    num: int
    channels: int
    height: int
    width: int
    def __init__(self, shape: _Optional[_Union[RawBlobShape, _Mapping]] = ..., data: _Optional[bytes] = ..., diff: _Optional[bytes] = ..., double_data: _Optional[bytes] = ..., double_diff: _Optional[bytes] = ..., num: _Optional[int] = ..., channels: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class RawBlobProtoVector(_message.Message):
    __slots__ = ("blobs",)
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    def __init__(self, blobs: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ...) -> None: ...

class RawLayer(_message.Message):
    __slots__ = ("name", "type", "blobs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    blobs: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., blobs: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ...) -> None: ...

class RawV0Layer(_message.Message):
    __slots__ = ("name", "type", "blobs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    blobs: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., blobs: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ...) -> None: ...

class RawV1Layer(_message.Message):
    __slots__ = ("layer", "name", "type", "blobs")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    layer: RawV0Layer
    name: str
    type: int
    blobs: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    def __init__(self, layer: _Optional[_Union[RawV0Layer, _Mapping]] = ..., name: _Optional[str] = ..., type: _Optional[int] = ..., blobs: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ...) -> None: ...

class RawNet(_message.Message):
    __slots__ = ("name", "layers", "layer")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    name: str
    layers: _containers.RepeatedCompositeFieldContainer[RawV1Layer]
    layer: _containers.RepeatedCompositeFieldContainer[RawLayer]
    def __init__(self, name: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[RawV1Layer, _Mapping]]] = ..., layer: _Optional[_Iterable[_Union[RawLayer, _Mapping]]] = ...) -> None: ...

class RawNetLayers(_message.Message):
    __slots__ = ("layer",)
    LAYER_FIELD_NUMBER: _ClassVar[int]
    layer: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, layer: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RawLayerBlobs(_message.Message):
    __slots__ = ("blobs",)
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    def __init__(self, blobs: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ...) -> None: ...

class RawSolverState(_message.Message):
    __slots__ = ("iter", "learned_net", "history", "current_step")
    ITER_FIELD_NUMBER: _ClassVar[int]
    LEARNED_NET_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    iter: int
    learned_net: str
    history: _containers.RepeatedCompositeFieldContainer[RawBlobProto]
    current_step: int
    def __init__(self, iter: _Optional[int] = ..., learned_net: _Optional[str] = ..., history: _Optional[_Iterable[_Union[RawBlobProto, _Mapping]]] = ..., current_step: _Optional[int] = ...) -> None: ...

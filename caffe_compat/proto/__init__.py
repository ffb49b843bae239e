"""Caffe's file formats: our ``caffe.proto``, its generated module, readers.

``caffe_compat.proto.caffe_pb2`` is the module pycaffe scripts import as
``caffe.proto.caffe_pb2``.
"""

from . import caffe_pb2

__all__ = ["caffe_pb2"]

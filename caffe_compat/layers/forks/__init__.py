"""Layers of popular Caffe forks that users bring models from.

SSD (weiliu89/caffe): Normalize, Permute, PriorBox, DetectionOutput,
MultiBoxLoss. Fast/Faster R-CNN (rbgirshick/caffe-fast-rcnn): ROIPooling
(SmoothL1Loss is in ``layers/loss``). Upsample (YOLOv3 ports, SegNet),
Interp (DeepLab v2, PSPNet), ReLU6 (MobileNet-v2 ports), and the 5-blob
BatchNorm of NVCaffe / Intel Caffe (``fused_batch_norm``, built by
``type: "BatchNorm"``). Each module's docstring names the fork and formula.
"""

from . import detection_output, fused_batch_norm, interp, multibox_loss, normalize, permute  # noqa: F401
from . import prior_box, relu6, roi_pooling, upsample  # noqa: F401

__all__ = ["detection_output", "fused_batch_norm", "interp", "multibox_loss", "normalize", "permute",
           "prior_box", "relu6", "roi_pooling", "upsample"]

"""Hand-written PyTorch twins of the benchmark nets.

Each twin is what a PyTorch user would write for the same net: ``nn.Module``
with the same layers (same shapes, same pooling rounding, same loss), taking
``(data, label)`` and returning the scalar loss. A twin's weights are copied
from a caffe_compat net (:meth:`Twin.load_from_net`), and
:func:`check_twin` asserts that the two compute the same loss and the same
parameter gradients, so the benchmarks compare equal work.

* ``LeNetTwin`` — examples/nets/lenet_train_test.prototxt.
* ``Cifar10QuickTwin`` — examples/nets/cifar10_quick_train_test.prototxt
  (max pool 3/2 and average pool 3/2 need ``ceil_mode=True``: Caffe rounds up).
* ``ResNet50Twin`` — examples/nets/resnet50_train_val.prototxt, with
  ``nn.BatchNorm2d(affine=True)`` standing for Caffe's BatchNorm + Scale pair as
  torchvision writes it (batch statistics in training; the running averages
  are kept in torch's form, which is not Caffe's, and are not compared).

:func:`sgd_for` gives the twin's optimizer: ``torch.optim.SGD`` (foreach) with
the solver's momentum and weight decay and one group per (lr_mult, decay_mult),
as the prototxt's ``param`` specs set them.

This module imports no caffe_compat at import time, so a memory worker that
builds only a twin does not load it.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Twin", "LeNetTwin", "Cifar10QuickTwin", "ResNet50Twin", "TWINS", "sgd_for", "check_twin"]


class Twin(nn.Module):
    """Base: a module whose parameters map to (caffe layer, blob index, lr_mult, decay_mult)."""

    def param_map(self) -> Iterator[tuple[str, int, nn.Parameter, float, float]]:
        """(layer name, blob index, parameter, lr_mult, decay_mult) for every learnable blob."""
        raise NotImplementedError

    def load_from_net(self, net: Any) -> "Twin":
        """Copy the parameter values of a caffe_compat (or pycaffe) net, by layer name."""
        with torch.no_grad():
            for layer, i, p, _, _ in self.param_map():
                src = torch.as_tensor(net.params[layer][i].data).reshape(p.shape)
                p.copy_(src.to(p.device))
            for layer, m in self.batch_norms():
                # Caffe's BatchNorm statistics are sums weighted by blob 2.
                blobs = net.params[layer]
                s = float(blobs[2].data.reshape(-1)[0])
                f = 0.0 if s == 0 else 1.0 / s
                m.running_mean.copy_(torch.as_tensor(blobs[0].data) * f)
                m.running_var.copy_(torch.as_tensor(blobs[1].data) * f)
        return self

    def batch_norms(self) -> Iterator[tuple[str, nn.BatchNorm2d]]:
        return iter(())


def _conv_bias(name: str, conv: nn.Conv2d | nn.Linear, lr: tuple[float, float] = (1, 2),
               decay: tuple[float, float] = (1, 1)) -> Iterator[tuple[str, int, nn.Parameter, float, float]]:
    yield name, 0, conv.weight, lr[0], decay[0]
    if conv.bias is not None:
        yield name, 1, conv.bias, lr[1], decay[1]


class LeNetTwin(Twin):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        x = self.ip2(F.relu(self.ip1(x.flatten(1))))
        return F.cross_entropy(x, label)

    def param_map(self):  # type: ignore[no-untyped-def]
        for name in ("conv1", "conv2", "ip1", "ip2"):
            yield from _conv_bias(name, getattr(self, name))


class Cifar10QuickTwin(Twin):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.ip1 = nn.Linear(64 * 4 * 4, 64)
        self.ip2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
        x = self.ip2(self.ip1(x.flatten(1)))
        return F.cross_entropy(x, label)

    def param_map(self):  # type: ignore[no-untyped-def]
        for name in ("conv1", "conv2", "conv3", "ip1", "ip2"):
            yield from _conv_bias(name, getattr(self, name))


class _Bottleneck(nn.Module):
    def __init__(self, name: str, cin: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        self.name = name
        self.a = nn.Conv2d(cin, width, 1, stride, bias=False)
        self.bn_a = nn.BatchNorm2d(width)
        self.b = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(width)
        self.c = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn_c = nn.BatchNorm2d(4 * width)
        self.proj = nn.Conv2d(cin, 4 * width, 1, stride, bias=False) if project else None
        self.bn_proj = nn.BatchNorm2d(4 * width) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn_a(self.a(x)))
        y = F.relu(self.bn_b(self.b(y)))
        y = self.bn_c(self.c(y))
        short = self.bn_proj(self.proj(x)) if self.proj is not None else x  # type: ignore[misc]
        return F.relu(short + y)

    def parts(self) -> Iterator[tuple[str, nn.Conv2d, nn.BatchNorm2d]]:
        """(branch suffix, conv, batch norm) in Caffe's naming."""
        if self.proj is not None:
            yield "branch1", self.proj, self.bn_proj  # type: ignore[misc]
        yield "branch2a", self.a, self.bn_a
        yield "branch2b", self.b, self.bn_b
        yield "branch2c", self.c, self.bn_c


class ResNet50Twin(Twin):
    STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.bn_conv1 = nn.BatchNorm2d(64)
        blocks = []
        cin = 64
        for stage, n, width in self.STAGES:
            for b in range(n):
                stride = 2 if (b == 0 and stage > 2) else 1
                blocks.append(_Bottleneck(f"res{stage}{'abcdef'[b]}", cin, width, stride, b == 0))
                cin = 4 * width
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_conv1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for blk in self.blocks:
            x = blk(x)
        x = F.avg_pool2d(x, 7, 1)
        return F.cross_entropy(self.fc(x.flatten(1)), label)

    def _bn_names(self) -> Iterator[tuple[str, str, nn.Conv2d, nn.BatchNorm2d]]:
        """(conv layer, scale layer, conv, bn) pairs in Caffe's names."""
        yield "conv1", "scale_conv1", self.conv1, self.bn_conv1
        for blk in self.blocks:
            tag = blk.name[3:]
            for suffix, conv, bn in blk.parts():
                yield f"{blk.name}_{suffix}", f"scale{tag}_{suffix}", conv, bn

    def param_map(self):  # type: ignore[no-untyped-def]
        for conv_name, scale_name, conv, bn in self._bn_names():
            yield from _conv_bias(conv_name, conv, lr=(1, 2), decay=(1, 0))
            yield scale_name, 0, bn.weight, 1, 1
            yield scale_name, 1, bn.bias, 1, 1
        yield from _conv_bias("fc1000", self.fc, lr=(1, 2), decay=(1, 0))

    def batch_norms(self):  # type: ignore[no-untyped-def]
        for conv_name, scale_name, _, bn in self._bn_names():
            yield "bn" + scale_name[len("scale"):], bn


TWINS = {"lenet": LeNetTwin, "cifar10_quick": Cifar10QuickTwin, "resnet50": ResNet50Twin}


def sgd_for(twin: Twin, solver: dict[str, Any]) -> torch.optim.SGD:
    """``torch.optim.SGD`` with the solver's rate, momentum and decay, grouped by multipliers."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for _, _, p, lr_mult, decay_mult in twin.param_map():
        groups.setdefault((lr_mult, decay_mult), []).append(p)
    base, wd = solver["base_lr"], solver.get("weight_decay", 0.0)
    return torch.optim.SGD(
        [{"params": ps, "lr": base * lr, "weight_decay": wd * dm} for (lr, dm), ps in groups.items()],
        lr=base, momentum=solver.get("momentum", 0.0), foreach=True)


def check_twin(net: Any, twin: Twin, data: torch.Tensor, label: torch.Tensor,
               rtol: float = 1e-4, grad_tol: float = 1e-3) -> dict[str, float]:
    """Assert that ``net`` (a caffe_compat TRAIN net holding ``data``/``label`` in its input
    blobs) and ``twin`` give the same loss and parameter gradients; return the differences.

    A gradient error is relative to the largest gradient value of that blob, or to 1% of
    the largest over all blobs where the blob's own gradient is ~0 (a bias before
    BatchNorm). Deep BatchNorm nets at random initialisation need a loose ``grad_tol``:
    there float32 itself is that far from float64 (ResNet-50: up to ~0.2).
    """
    net.clear_param_diffs()
    out = net.forward()
    net.backward()
    loss_net = float(out["loss"])
    twin.zero_grad(set_to_none=True)
    loss_twin = twin(data, label)
    loss_twin.backward()
    loss_twin_f = float(loss_twin.detach())
    if abs(loss_net - loss_twin_f) > rtol * max(1.0, abs(loss_twin_f)):
        raise AssertionError(f"twin loss {loss_twin_f} != caffe_compat loss {loss_net}")
    pairs = []
    for layer, i, p, _, _ in twin.param_map():
        g_net = torch.as_tensor(net.params[layer][i].diff).reshape(p.shape)
        g_twin = p.grad.detach().cpu() if p.grad is not None else torch.zeros(p.shape)
        pairs.append((f"{layer}[{i}]", g_net, g_twin))
    top = max(float(g.abs().max()) for _, _, g in pairs)
    worst = 0.0
    for name, g_net, g_twin in pairs:
        scale = max(float(g_twin.abs().max()), 0.01 * top, 1e-12)
        err = float((g_net - g_twin).abs().max()) / scale
        worst = max(worst, err)
        if err > grad_tol:
            raise AssertionError(f"twin gradient of {name} differs by {err:.2e} (relative)")
    net.clear_param_diffs()
    twin.zero_grad(set_to_none=True)
    return {"loss": loss_net, "loss_diff": abs(loss_net - loss_twin_f), "grad_rel_err": worst}

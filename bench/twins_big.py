"""Hand-written PyTorch twins of the model-zoo nets of ``bench_big.py``.

What a PyTorch user would write for the same nets, with torch's own modules
(``nn.Conv2d`` with ``groups``, ``nn.LocalResponseNorm``, ``ceil_mode=True``
pooling where Caffe rounds up, ``F.cross_entropy``), taking ``(data, label)``
and returning the weighted sum of the net's losses:

* ``AlexNetTwin`` — examples/model_zoo/bvlc_alexnet (``caffenet=True``: CaffeNet,
  pooling before LRN);
* ``GoogLeNetTwin`` — examples/model_zoo/bvlc_googlenet train_val, with both
  auxiliary classifiers (loss weight 0.3 each);
* ``VGG16Twin`` — examples/model_zoo/vgg_ilsvrc_16_layers train_val;
* ``twins.ResNet50Twin`` — examples/nets/resnet50_train_val.

Dropout is ``nn.Dropout`` (as in the prototxts); ``twin.eval()``-free checks turn
it off with :meth:`BigTwin.set_dropout` because two random masks never agree.
:func:`check_big_twin` asserts the same loss and parameter gradients as a
caffe_compat net before anything is timed (like ``twins.check_twin``, for nets
with several weighted losses, judging gradients against a float64 copy of the twin).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from twins import ResNet50Twin, Twin, _conv_bias

__all__ = ["BigTwin", "AlexNetTwin", "GoogLeNetTwin", "VGG16Twin", "BIG_TWINS", "check_big_twin"]

P = Iterator[tuple[str, int, nn.Parameter, float, float]]


class BigTwin(Twin):
    """A twin whose named convolutions / linears map 1:1 to Caffe layers (lr_mult 1/2, decay 1/0)."""

    layer_names: dict[str, str]  # caffe layer name -> attribute path

    def param_map(self) -> P:  # type: ignore[override]
        for caffe_name, attr in self.layer_names.items():
            yield from _conv_bias(caffe_name, self.get_submodule(attr), lr=(1, 2), decay=(1, 0))

    def set_dropout(self, on: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                p0 = m.__dict__.setdefault("_p0", m.p)  # the prototxt's ratio, kept on first call
                m.p = p0 if on else 0.0


def _max(x: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    return F.max_pool2d(x, k, s, p, ceil_mode=True)


class AlexNetTwin(BigTwin):
    def __init__(self, caffenet: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        self.caffenet = caffenet
        self.conv1 = nn.Conv2d(3, 96, 11, 4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.drop6, self.drop7 = nn.Dropout(0.5), nn.Dropout(0.5)
        self.layer_names = {n: n for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")}

    def _block(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(_max(x, 3, 2)) if self.caffenet else _max(self.norm(x), 3, 2)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = self._block(F.relu(self.conv1(x)))
        x = self._block(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = _max(F.relu(self.conv5(x)), 3, 2)
        x = self.drop6(F.relu(self.fc6(x.flatten(1))))
        x = self.drop7(F.relu(self.fc7(x)))
        return F.cross_entropy(self.fc8(x), label)


class VGG16Twin(BigTwin):
    BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.layer_names = {}
        cin = 3
        for b, (n, cout) in enumerate(self.BLOCKS, 1):
            for i in range(1, n + 1):
                self.layer_names[f"conv{b}_{i}"] = f"convs.{len(self.convs)}"
                self.convs.append(nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.drop6, self.drop7 = nn.Dropout(0.5), nn.Dropout(0.5)
        self.layer_names.update(fc6="fc6", fc7="fc7", fc8="fc8")

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        k = 0
        for n, _ in self.BLOCKS:
            for _ in range(n):
                x = F.relu(self.convs[k](x))
                k += 1
            x = F.max_pool2d(x, 2, 2)
        x = self.drop6(F.relu(self.fc6(x.flatten(1))))
        x = self.drop7(F.relu(self.fc7(x)))
        return F.cross_entropy(self.fc8(x), label)


# GoogLeNet's inception modules: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection.
INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class _Inception(nn.Module):
    def __init__(self, cin: int, n1: int, r3: int, n3: int, r5: int, n5: int, pp: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(cin, n1, 1)
        self.r3 = nn.Conv2d(cin, r3, 1)
        self.b3 = nn.Conv2d(r3, n3, 3, padding=1)
        self.r5 = nn.Conv2d(cin, r5, 1)
        self.b5 = nn.Conv2d(r5, n5, 5, padding=2)
        self.pp = nn.Conv2d(cin, pp, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.b1(x)),
                          F.relu(self.b3(F.relu(self.r3(x)))),
                          F.relu(self.b5(F.relu(self.r5(x)))),
                          F.relu(self.pp(F.max_pool2d(x, 3, 1, 1, ceil_mode=True)))], 1)


class _Aux(nn.Module):
    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 128, 1)
        self.fc = nn.Linear(128 * 4 * 4, 1024)
        self.classifier = nn.Linear(1024, num_classes)
        self.drop = nn.Dropout(0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(F.avg_pool2d(x, 5, 3, ceil_mode=True)))
        return self.classifier(self.drop(F.relu(self.fc(x.flatten(1)))))


class GoogLeNetTwin(BigTwin):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.conv2_reduce = nn.Conv2d(64, 64, 1)
        self.conv2 = nn.Conv2d(64, 192, 3, padding=1)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.inc = nn.ModuleDict({tag: _Inception(*v) for tag, v in INCEPTION.items()})
        self.aux1 = _Aux(512, num_classes)
        self.aux2 = _Aux(528, num_classes)
        self.classifier = nn.Linear(1024, num_classes)
        self.drop = nn.Dropout(0.4)
        names = {"conv1/7x7_s2": "conv1", "conv2/3x3_reduce": "conv2_reduce", "conv2/3x3": "conv2"}
        for tag in INCEPTION:
            for suffix, attr in (("1x1", "b1"), ("3x3_reduce", "r3"), ("3x3", "b3"), ("5x5_reduce", "r5"),
                                 ("5x5", "b5"), ("pool_proj", "pp")):
                names[f"inception_{tag}/{suffix}"] = f"inc.{tag}.{attr}"
        for i in (1, 2):
            for suffix in ("conv", "fc", "classifier"):
                names[f"loss{i}/{suffix}"] = f"aux{i}.{suffix}"
        names["loss3/classifier"] = "classifier"
        self.layer_names = names

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = self.norm(_max(F.relu(self.conv1(x)), 3, 2))
        x = F.relu(self.conv2(F.relu(self.conv2_reduce(x))))
        x = _max(self.norm(x), 3, 2)
        x = self.inc["3b"](self.inc["3a"](x))
        x = self.inc["4a"](_max(x, 3, 2))
        loss = 0.3 * F.cross_entropy(self.aux1(x), label)
        x = self.inc["4d"](self.inc["4c"](self.inc["4b"](x)))
        loss = loss + 0.3 * F.cross_entropy(self.aux2(x), label)
        x = self.inc["4e"](x)
        x = self.inc["5b"](self.inc["5a"](_max(x, 3, 2)))
        x = self.drop(F.avg_pool2d(x, 7, 1))
        return loss + F.cross_entropy(self.classifier(x.flatten(1)), label)


class ResNet50BigTwin(ResNet50Twin):
    """``twins.ResNet50Twin`` with the dropout switch of the other big twins (it has none)."""

    def set_dropout(self, on: bool) -> None:
        pass


BIG_TWINS: dict[str, Any] = {
    "alexnet": AlexNetTwin,
    "caffenet": lambda: AlexNetTwin(caffenet=True),
    "googlenet": GoogLeNetTwin,
    "vgg16": VGG16Twin,
    "resnet50": ResNet50BigTwin,
}


def check_big_twin(net: Any, twin: Any, data: torch.Tensor, label: torch.Tensor,
                   rtol: float = 1e-4, floor: float = 1e-3, factor: float = 4.0) -> dict[str, float]:
    """Assert that ``net`` (a caffe_compat TRAIN net without Dropout holding ``data``/``label``)
    and ``twin`` (dropout off) compute the same weighted loss and parameter gradients.

    Deep nets at random initialisation lose digits in float32 (GoogLeNet's first layer:
    3e-3 of its largest gradient; ResNet-50 with BatchNorm: ~0.2), so the gradients are
    judged against a float64 copy of the twin: caffe_compat's error may be at most
    ``factor`` times the float32 twin's own error, or ``floor``. Errors are relative to the
    largest float64 gradient value of each blob (or 1% of the largest over all blobs where
    a blob's own gradient is ~0).
    """
    import copy

    net.clear_param_diffs()
    out = net.forward()
    net.backward()
    weights = net.blob_loss_weights
    loss_net = sum(float(v) * float(weights.get(k, 0.0)) for k, v in out.items() if weights.get(k, 0.0))
    twin64 = copy.deepcopy(twin).double()
    for t, x in ((twin, data), (twin64, data.double())):
        t.zero_grad(set_to_none=True)
        loss = t(x, label)
        loss.backward()
        if t is twin:
            loss_t = float(loss.detach())
    if abs(loss_net - loss_t) > rtol * max(1.0, abs(loss_t)):
        raise AssertionError(f"twin loss {loss_t} != caffe_compat loss {loss_net}")
    rows = []
    for (layer, i, p, _, _), (_, _, p64, _, _) in zip(twin.param_map(), twin64.param_map()):
        g64 = p64.grad.detach() if p64.grad is not None else torch.zeros(p.shape, dtype=torch.float64)
        g_net = torch.as_tensor(net.params[layer][i].diff).reshape(p.shape).double()
        g_twin = p.grad.detach().double() if p.grad is not None else torch.zeros_like(g64)
        rows.append((f"{layer}[{i}]", g_net, g_twin, g64))
    if len(rows) != sum(len(v) for k, v in net.params.items() if not k.startswith("bn")):
        raise AssertionError("the twin does not cover every learnable blob of the net")
    top = max(float(g.abs().max()) for *_, g in rows)
    worst = worst_twin = 0.0
    for name, g_net, g_twin, g64 in rows:
        scale = max(float(g64.abs().max()), 0.01 * top, 1e-30)
        err = float((g_net - g64).abs().max()) / scale
        err_twin = float((g_twin - g64).abs().max()) / scale
        worst, worst_twin = max(worst, err), max(worst_twin, err_twin)
        if err > max(factor * err_twin, floor):
            raise AssertionError(f"gradient of {name}: caffe_compat is {err:.2e} from float64, the float32 "
                                 f"twin {err_twin:.2e} (relative)")
    net.clear_param_diffs()
    twin.zero_grad(set_to_none=True)
    return {"loss": loss_net, "loss_diff": abs(loss_net - loss_t), "grad_rel_err": worst,
            "twin_grad_rel_err": worst_twin}

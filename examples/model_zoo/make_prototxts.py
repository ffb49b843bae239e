"""Write the BVLC model zoo net definitions of this folder.

The five reference models of Caffe's ``models/`` folder — AlexNet, CaffeNet,
GoogLeNet, the R-CNN ILSVRC13 detector and the Flickr-style fine-tuned
CaffeNet — as deploy and train_val prototxts: the same layers, names, types,
parameters, fillers and data sources as the published files, written out from
compact descriptions of each net. Also VGG-16 (``VGG_ILSVRC_16_layers``, the
Oxford group's model-zoo net): its deploy net has the layer names and shapes of
the published deploy file (so that net's .caffemodel loads), and its train_val,
of which none was published, is ours (xavier fillers, mean pixel). ``tests/test_model_zoo.py`` checks that the
committed files are what this script writes.

    python examples/model_zoo/make_prototxts.py        # rewrite the files
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEAN_FILE = "data/ilsvrc12/imagenet_mean.binaryproto"
W2 = ("param { lr_mult: 1 decay_mult: 1 }", "param { lr_mult: 2 decay_mult: 0 }")


class Net:
    def __init__(self, name: str) -> None:
        self.lines = [f'name: "{name}"']

    def layer(self, name: str, type_: str, bottoms=(), tops=(), body=()) -> None:
        out = ["layer {", f'  name: "{name}"', f'  type: "{type_}"']
        out += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{t}"' for t in tops]
        out += ["  " + line for line in body]
        self.lines += out + ["}"]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def filler(kind: str, **values: float) -> str:
    inner = " ".join([f'type: "{kind}"'] + [f"{k}: {v:g}" for k, v in values.items()])
    return "{ " + inner + " }"


def conv(net: Net, name: str, bottom: str, num: int, k: int, s: int = 1, p: int = 0, g: int = 1,
         params=W2, w: str | None = None, b: str | None = None, top: str | None = None) -> None:
    fields = [f"num_output: {num}"] + ([f"pad: {p}"] if p else []) + [f"kernel_size: {k}"]
    fields += ([f"stride: {s}"] if s != 1 else []) + ([f"group: {g}"] if g != 1 else [])
    fields += ([f"weight_filler {w}"] if w else []) + ([f"bias_filler {b}"] if b else [])
    body = list(params) + ["convolution_param {"] + ["  " + f for f in fields] + ["}"]
    net.layer(name, "Convolution", [bottom], [top or name], body)


def fc(net: Net, name: str, bottom: str, num: int, params=W2, w: str | None = None,
       b: str | None = None) -> None:
    fields = [f"num_output: {num}"] + ([f"weight_filler {w}"] if w else [])
    fields += [f"bias_filler {b}"] if b else []
    net.layer(name, "InnerProduct", [bottom], [name],
              list(params) + ["inner_product_param {"] + ["  " + f for f in fields] + ["}"])


def relu(net: Net, name: str, blob: str) -> None:
    net.layer(name, "ReLU", [blob], [blob])


def pool(net: Net, name: str, bottom: str, kind: str, k: int, s: int, p: int = 0,
         top: str | None = None) -> None:
    fields = f"pool: {kind} kernel_size: {k} stride: {s}" + (f" pad: {p}" if p else "")
    net.layer(name, "Pooling", [bottom], [top or name], [f"pooling_param {{ {fields} }}"])


def lrn(net: Net, name: str, bottom: str) -> None:
    net.layer(name, "LRN", [bottom], [name], ["lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"])


def dropout(net: Net, name: str, blob: str, ratio: float) -> None:
    net.layer(name, "Dropout", [blob], [blob], [f"dropout_param {{ dropout_ratio: {ratio:g} }}"])


def deploy_input(net: Net, size: int) -> None:
    net.layer("data", "Input", tops=["data"],
              body=[f"input_param {{ shape: {{ dim: 10 dim: 3 dim: {size} dim: {size} }} }}"])


def lmdb_data(net: Net, crop: int, batch: tuple[int, int], mean: str = "file") -> None:
    for phase, mirror, source, bs in (("TRAIN", "true", "ilsvrc12_train_lmdb", batch[0]),
                                      ("TEST", "false", "ilsvrc12_val_lmdb", batch[1])):
        means = [f'  mean_file: "{MEAN_FILE}"'] if mean == "file" else \
            ["  mean_value: 104", "  mean_value: 117", "  mean_value: 123"]
        net.layer("data", "Data", tops=["data", "label"], body=[
            f"include {{ phase: {phase} }}", "transform_param {", f"  mirror: {mirror}",
            f"  crop_size: {crop}", *means, "}", "data_param {",
            f'  source: "examples/imagenet/{source}"', f"  batch_size: {bs}", "  backend: LMDB", "}"])


def image_data(net: Net) -> None:
    for phase, mirror, source in (("TRAIN", "true", "train.txt"), ("TEST", "false", "test.txt")):
        net.layer("data", "ImageData", tops=["data", "label"], body=[
            f"include {{ phase: {phase} }}", "transform_param {", f"  mirror: {mirror}",
            "  crop_size: 227", f'  mean_file: "{MEAN_FILE}"', "}", "image_data_param {",
            f'  source: "data/flickr_style/{source}"', "  batch_size: 50", "  new_height: 256",
            "  new_width: 256", "}"])


def accuracy(net: Net, name: str, bottom: str, top: str | None = None, k: int = 1) -> None:
    body = ["include { phase: TEST }"] + ([f"accuracy_param {{ top_k: {k} }}"] if k != 1 else [])
    net.layer(name, "Accuracy", [bottom, "label"], [top or name], body)


def softmax_loss(net: Net, name: str, bottom: str, top: str | None = None,
                 weight: float | None = None) -> None:
    net.layer(name, "SoftmaxWithLoss", [bottom, "label"], [top or name],
              [f"loss_weight: {weight:g}"] if weight is not None else [])


# ------------------------------------------------------------ AlexNet / CaffeNet
def alexnet_body(net: Net, caffenet: bool, train: bool, params=W2, last: str = "drop7") -> None:
    """conv1 ... fc7 + dropout. CaffeNet pools before normalizing; AlexNet after."""
    g = (lambda std, v: (filler("gaussian", std=std), filler("constant", value=v))) if train else \
        (lambda std, v: (None, None))
    one = 1 if caffenet else 0.1  # bias of conv2, conv4, conv5, fc6, fc7
    conv(net, "conv1", "data", 96, 11, s=4, params=params, w=g(0.01, 0)[0], b=g(0.01, 0)[1])
    relu(net, "relu1", "conv1")
    if caffenet:
        pool(net, "pool1", "conv1", "MAX", 3, 2)
        lrn(net, "norm1", "pool1")
        conv2_in = "norm1"
    else:
        lrn(net, "norm1", "conv1")
        pool(net, "pool1", "norm1", "MAX", 3, 2)
        conv2_in = "pool1"
    conv(net, "conv2", conv2_in, 256, 5, p=2, g=2, params=params, w=g(0.01, one)[0], b=g(0.01, one)[1])
    relu(net, "relu2", "conv2")
    if caffenet:
        pool(net, "pool2", "conv2", "MAX", 3, 2)
        lrn(net, "norm2", "pool2")
        conv3_in = "norm2"
    else:
        lrn(net, "norm2", "conv2")
        pool(net, "pool2", "norm2", "MAX", 3, 2)
        conv3_in = "pool2"
    conv(net, "conv3", conv3_in, 384, 3, p=1, params=params, w=g(0.01, 0)[0], b=g(0.01, 0)[1])
    relu(net, "relu3", "conv3")
    conv(net, "conv4", "conv3", 384, 3, p=1, g=2, params=params, w=g(0.01, one)[0], b=g(0.01, one)[1])
    relu(net, "relu4", "conv4")
    conv(net, "conv5", "conv4", 256, 3, p=1, g=2, params=params, w=g(0.01, one)[0], b=g(0.01, one)[1])
    relu(net, "relu5", "conv5")
    pool(net, "pool5", "conv5", "MAX", 3, 2)
    fc(net, "fc6", "pool5", 4096, params=params, w=g(0.005, one)[0], b=g(0.005, one)[1])
    relu(net, "relu6", "fc6")
    dropout(net, "drop6", "fc6", 0.5)
    fc(net, "fc7", "fc6", 4096, params=params, w=g(0.005, one)[0], b=g(0.005, one)[1])
    relu(net, "relu7", "fc7")
    dropout(net, "drop7", "fc7", 0.5)


def alexnet(train: bool) -> str:
    net = Net("AlexNet")
    lmdb_data(net, 227, (256, 50)) if train else deploy_input(net, 227)
    alexnet_body(net, caffenet=False, train=train)
    if train:
        fc(net, "fc8", "fc7", 1000, w=filler("gaussian", std=0.01), b=filler("constant", value=0))
        accuracy(net, "accuracy", "fc8")
        softmax_loss(net, "loss", "fc8")
    else:
        fc(net, "fc8", "fc7", 1000)
        net.layer("prob", "Softmax", ["fc8"], ["prob"])
    return net.text()


def caffenet(train: bool) -> str:
    net = Net("CaffeNet")
    if train:
        lmdb_data(net, 227, (256, 50))
        alexnet_body(net, caffenet=True, train=True)
        fc(net, "fc8", "fc7", 1000, w=filler("gaussian", std=0.01), b=filler("constant", value=0))
        accuracy(net, "accuracy", "fc8")
        softmax_loss(net, "loss", "fc8")
    else:
        deploy_input(net, 227)
        alexnet_body(net, caffenet=True, train=False, params=())
        fc(net, "fc8", "fc7", 1000, params=())
        net.layer("prob", "Softmax", ["fc8"], ["prob"])
    return net.text()


def rcnn_ilsvrc13() -> str:
    net = Net("R-CNN-ilsvrc13")
    deploy_input(net, 227)
    alexnet_body(net, caffenet=True, train=False, params=())
    fc(net, "fc-rcnn", "fc7", 200, params=())
    return net.text()


FLICKR_FC8 = ("param { lr_mult: 10 decay_mult: 1 }", "param { lr_mult: 20 decay_mult: 0 }")


def flickr_style(train: bool) -> str:
    net = Net("FlickrStyleCaffeNet")
    image_data(net) if train else deploy_input(net, 227)
    alexnet_body(net, caffenet=True, train=train)
    if train:
        fc(net, "fc8_flickr", "fc7", 20, params=FLICKR_FC8, w=filler("gaussian", std=0.01),
           b=filler("constant", value=0))
        softmax_loss(net, "loss", "fc8_flickr")
        accuracy(net, "accuracy", "fc8_flickr")
    else:
        fc(net, "fc8_flickr", "fc7", 20, params=FLICKR_FC8)
        net.layer("prob", "Softmax", ["fc8_flickr"], ["prob"])
    return net.text()


# -------------------------------------------------------------------- GoogLeNet
# Inception modules: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
XAVIER, B02, B0 = filler("xavier"), filler("constant", value=0.2), filler("constant", value=0)


def gconv(net: Net, name: str, bottom: str, num: int, k: int, s: int = 1, p: int = 0) -> None:
    conv(net, name, bottom, num, k, s=s, p=p, w=XAVIER, b=B02)


def inception(net: Net, tag: str, bottom: str) -> str:
    n1, r3, n3, r5, n5, pp = INCEPTION[tag]
    pre = f"inception_{tag}/"
    for name, num, k, p, src in (("1x1", n1, 1, 0, bottom), ("3x3_reduce", r3, 1, 0, bottom),
                                 ("3x3", n3, 3, 1, pre + "3x3_reduce"), ("5x5_reduce", r5, 1, 0, bottom),
                                 ("5x5", n5, 5, 2, pre + "5x5_reduce")):
        gconv(net, pre + name, src, num, k, p=p)
        relu(net, pre + "relu_" + name, pre + name)
    pool(net, pre + "pool", bottom, "MAX", 3, 1, p=1)
    gconv(net, pre + "pool_proj", pre + "pool", pp, 1)
    relu(net, pre + "relu_pool_proj", pre + "pool_proj")
    branches = [pre + x for x in ("1x1", "3x3", "5x5", "pool_proj")]
    net.layer(pre + "output", "Concat", branches, [pre + "output"])
    return pre + "output"


def aux_classifier(net: Net, tag: str, bottom: str) -> None:
    pool(net, f"{tag}/ave_pool", bottom, "AVE", 5, 3)
    gconv(net, f"{tag}/conv", f"{tag}/ave_pool", 128, 1)
    relu(net, f"{tag}/relu_conv", f"{tag}/conv")
    fc(net, f"{tag}/fc", f"{tag}/conv", 1024, w=XAVIER, b=B02)
    relu(net, f"{tag}/relu_fc", f"{tag}/fc")
    dropout(net, f"{tag}/drop_fc", f"{tag}/fc", 0.7)
    fc(net, f"{tag}/classifier", f"{tag}/fc", 1000, w=XAVIER, b=B0)
    softmax_loss(net, f"{tag}/loss", f"{tag}/classifier", f"{tag}/{tag}", weight=0.3)
    accuracy(net, f"{tag}/top-1", f"{tag}/classifier")
    accuracy(net, f"{tag}/top-5", f"{tag}/classifier", k=5)


def googlenet(train: bool) -> str:
    net = Net("GoogleNet")
    lmdb_data(net, 224, (32, 50), mean="values") if train else deploy_input(net, 224)
    gconv(net, "conv1/7x7_s2", "data", 64, 7, s=2, p=3)
    relu(net, "conv1/relu_7x7", "conv1/7x7_s2")
    pool(net, "pool1/3x3_s2", "conv1/7x7_s2", "MAX", 3, 2)
    lrn(net, "pool1/norm1", "pool1/3x3_s2")
    gconv(net, "conv2/3x3_reduce", "pool1/norm1", 64, 1)
    relu(net, "conv2/relu_3x3_reduce", "conv2/3x3_reduce")
    gconv(net, "conv2/3x3", "conv2/3x3_reduce", 192, 3, p=1)
    relu(net, "conv2/relu_3x3", "conv2/3x3")
    lrn(net, "conv2/norm2", "conv2/3x3")
    pool(net, "pool2/3x3_s2", "conv2/norm2", "MAX", 3, 2)
    out = inception(net, "3a", "pool2/3x3_s2")
    out = inception(net, "3b", out)
    pool(net, "pool3/3x3_s2", out, "MAX", 3, 2)
    out = "pool3/3x3_s2"
    for tag in ("4a", "4b", "4c", "4d", "4e"):
        out = inception(net, tag, out)
        if train and tag in ("4a", "4d"):
            aux_classifier(net, "loss1" if tag == "4a" else "loss2", out)
    pool(net, "pool4/3x3_s2", out, "MAX", 3, 2)
    out = inception(net, "5a", "pool4/3x3_s2")
    out = inception(net, "5b", out)
    pool(net, "pool5/7x7_s1", out, "AVE", 7, 1)
    dropout(net, "pool5/drop_7x7_s1", "pool5/7x7_s1", 0.4)
    fc(net, "loss3/classifier", "pool5/7x7_s1", 1000, w=XAVIER, b=B0)
    if train:
        softmax_loss(net, "loss3/loss3", "loss3/classifier", weight=1)
        accuracy(net, "loss3/top-1", "loss3/classifier")
        accuracy(net, "loss3/top-5", "loss3/classifier", k=5)
    else:
        net.layer("prob", "Softmax", ["loss3/classifier"], ["prob"])
    return net.text()


# ---------------------------------------------------------------------- VGG-16
# (blocks of 3x3 pad 1 convolutions, channels), each block followed by MAX pool 2/2.
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG_MEAN = ("mean_value: 103.939", "mean_value: 116.779", "mean_value: 123.68")


def vgg16(train: bool) -> str:
    """VGG_ILSVRC_16_layers (Simonyan & Zisserman, configuration D). The published deploy
    file names the layers conv1_1 ... conv5_3, pool1 ... pool5, fc6, fc7, fc8 and prob."""
    net = Net("VGG_ILSVRC_16_layers")
    if train:
        for phase, mirror, source, bs in (("TRAIN", "true", "ilsvrc12_train_lmdb", 64),
                                          ("TEST", "false", "ilsvrc12_val_lmdb", 50)):
            net.layer("data", "Data", tops=["data", "label"], body=[
                f"include {{ phase: {phase} }}", "transform_param {", f"  mirror: {mirror}",
                "  crop_size: 224", *("  " + m for m in VGG_MEAN), "}", "data_param {",
                f'  source: "examples/imagenet/{source}"', f"  batch_size: {bs}", "  backend: LMDB", "}"])
    else:
        deploy_input(net, 224)
    w, b = (filler("xavier"), filler("constant", value=0)) if train else (None, None)
    params = W2 if train else ()
    bottom = "data"
    for block, (n, num) in enumerate(VGG16, 1):
        for i in range(1, n + 1):
            name = f"conv{block}_{i}"
            conv(net, name, bottom, num, 3, p=1, params=params, w=w, b=b)
            relu(net, f"relu{block}_{i}", name)
            bottom = name
        pool(net, f"pool{block}", bottom, "MAX", 2, 2)
        bottom = f"pool{block}"
    for name, num in (("fc6", 4096), ("fc7", 4096)):
        fc(net, name, bottom, num, params=params, w=w, b=b)
        relu(net, "relu" + name[2:], name)
        dropout(net, "drop" + name[2:], name, 0.5)
        bottom = name
    fc(net, "fc8", bottom, 1000, params=params, w=w, b=b)
    if train:
        accuracy(net, "accuracy", "fc8")
        accuracy(net, "accuracy_top5", "fc8", "accuracy_top5", k=5)
        softmax_loss(net, "loss", "fc8")
    else:
        net.layer("prob", "Softmax", ["fc8"], ["prob"])
    return net.text()


FILES = {
    "bvlc_alexnet/deploy.prototxt": lambda: alexnet(False),
    "bvlc_alexnet/train_val.prototxt": lambda: alexnet(True),
    "bvlc_reference_caffenet/deploy.prototxt": lambda: caffenet(False),
    "bvlc_reference_caffenet/train_val.prototxt": lambda: caffenet(True),
    "bvlc_googlenet/deploy.prototxt": lambda: googlenet(False),
    "bvlc_googlenet/train_val.prototxt": lambda: googlenet(True),
    "bvlc_reference_rcnn_ilsvrc13/deploy.prototxt": rcnn_ilsvrc13,
    "finetune_flickr_style/deploy.prototxt": lambda: flickr_style(False),
    "finetune_flickr_style/train_val.prototxt": lambda: flickr_style(True),
    "vgg_ilsvrc_16_layers/deploy.prototxt": lambda: vgg16(False),
    "vgg_ilsvrc_16_layers/train_val.prototxt": lambda: vgg16(True),
}


def main() -> int:
    for rel, make in FILES.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        print("wrote", path.relative_to(HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Core smoke cases: the first layers and the net's wiring (splits, in-place)."""

from ._spec import input_layer, labels, net_case, away_from

CASES = [
    net_case(
        "ip_relu_softmaxloss_split",
        input_layer(("data", (4, 3, 2, 2)), ("label", (4,))) + """
name: "core" force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
""",
        inputs={"label": labels(4, classes=5)},
        note="split of an in-place blob, loss + a non-loss output with a top diff",
    ),
    net_case(
        "conv_pool_ceil",
        input_layer(("data", (2, 2, 7, 7))) + """
name: "core" force_backward: true
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 stride: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "apool" type: "Pooling" bottom: "conv" top: "apool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
""",
        inputs={"data": away_from(2, 2, 7, 7)},
    ),
    net_case(
        "pool_overhang_no_pad",
        input_layer(("data", (1, 2, 6, 6))) + """
name: "core" force_backward: true
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 3 } }
""",
        grad=False,
        note="CAFFE_FACTS: 6x6, k2, s3, p0 is 3x3 in Caffe (torch gives 2x2); "
             "Caffe's backward corrupts its heap here, so forward only",
    ),
]

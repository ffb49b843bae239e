"""Fork layers a real (pip) Caffe can run: Permute (the SSD fork's layer, also built into
the pip Caffe), and upstream's round_mode FLOOR pooling that the forks' ``ceil_mode:
false`` must reproduce (tests/test_forks.py replays these with ceil_mode)."""

from ._spec import away_from, input_layer, net_case

PERMUTE = 'layer { name: "perm" type: "Permute" bottom: "%s" top: "perm" permute_param { %s } }'


def permute_case(name, shape, orders, note=""):
    order = " ".join("order: %d" % o for o in orders)
    text = input_layer(("data", shape)) + '\nname: "forks" force_backward: true\n' + PERMUTE % ("data", order)
    return net_case(name, text, note=note)


CASES = [
    permute_case("permute_nchw_to_nhwc", (2, 3, 4, 5), (0, 2, 3, 1), "SSD's use: NCHW -> NHWC"),
    permute_case("permute_partial_order", (2, 3, 4, 5), (1,), "unlisted axes follow in order: 1 0 2 3"),
    permute_case("permute_identity", (2, 3, 4), (0, 1, 2), "identity order: shares the data"),
    permute_case("permute_3axes_reverse", (2, 3, 4), (2, 1, 0)),
    permute_case("permute_5axes", (1, 2, 3, 2, 2), (0, 3, 1, 4, 2)),
    net_case(
        "pool_floor_max_ave",
        input_layer(("data", (2, 2, 7, 9))) + """
name: "forks" force_backward: true
layer { name: "maxp" type: "Pooling" bottom: "data" top: "maxp"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR } }
layer { name: "avep" type: "Pooling" bottom: "data" top: "avep"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 round_mode: FLOOR } }
""",
        inputs={"data": away_from(2, 2, 7, 9)},
        note="round_mode FLOOR: 7x9, k3 s2 -> 3x4 (CEIL: 3x4 too); k2 s2 p1 -> 4x5 (CEIL: 5x6)",
    ),
    net_case(
        "pool_floor_mask",
        input_layer(("data", (1, 2, 6, 6))) + """
name: "forks" force_backward: true
layer { name: "maxp" type: "Pooling" bottom: "data" top: "maxp" top: "mask"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR } }
""",
        inputs={"data": away_from(1, 2, 6, 6)},
        note="6x6, k3 s2: FLOOR 2x2 where CEIL gives 3x3 (SegNet-style mask top)",
    ),
]

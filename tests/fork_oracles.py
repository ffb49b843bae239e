"""Loop-by-loop numpy references of the fork layers, written from the forks' C++.

No fork build is installable here, so the fork layers are checked against
these: each function follows its C++ source statement by statement (loops,
float32 storage, the fork's own quirks), independently of the vectorized
torch code in ``caffe_compat/layers/forks``. Sources: weiliu89/caffe (SSD:
prior_box_layer.cpp, normalize_layer.cpp, detection_output_layer.cpp,
multibox_loss_layer.cpp, util/bbox_util.cpp), rbgirshick/caffe-fast-rcnn
(roi_pooling_layer.cu), the YOLOv3 darknet2caffe and SegNet upsample layers,
DeepLab v2's util/interp.cpp, the MobileNet-v2 forks' relu6_layer.cpp.
"""

from __future__ import annotations

import math

import numpy as np

f32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)
FLT_MIN = float(np.finfo(np.float32).tiny)


# ------------------------------------------------------------------ PriorBox
def prior_box(lh, lw, ih, iw, min_sizes, max_sizes=(), ratios=(), flip=True, clip=False,
              variance=(0.1,), step=None, offset=0.5):
    ars = [1.0]
    for r in ratios:
        if all(abs(r - a) >= 1e-6 for a in ars):
            ars.append(r)
            if flip:
                ars.append(1.0 / r)
    num_priors = len(ars) * len(min_sizes) + len(max_sizes)
    if step is None:
        step_w, step_h = f32(f32(iw) / lw), f32(f32(ih) / lh)
    else:
        step_w = step_h = f32(step)
    dim = lh * lw * num_priors * 4
    top = np.zeros(2 * dim, dtype=np.float32)
    idx = 0
    for h in range(lh):
        for w in range(lw):
            cx = f32(f32(w + f32(offset)) * step_w)
            cy = f32(f32(h + f32(offset)) * step_h)
            for s, ms in enumerate(min_sizes):
                m = int(ms)

                def put(bw, bh):
                    nonlocal idx
                    bw, bh = float(f32(bw)), float(f32(bh))
                    for v in ((cx - bw / 2.0) / iw, (cy - bh / 2.0) / ih, (cx + bw / 2.0) / iw,
                              (cy + bh / 2.0) / ih):
                        top[idx] = v
                        idx += 1

                put(m, m)
                if max_sizes:
                    side = math.sqrt(m * int(max_sizes[s]))
                    put(side, side)
                for ar in ars:
                    if abs(ar - 1.0) < 1e-6:
                        continue
                    put(m * math.sqrt(f32(ar)), m / math.sqrt(f32(ar)))
    if clip:
        top[:dim] = np.minimum(np.maximum(top[:dim], 0.0), 1.0)
    for d in range(dim):
        top[dim + d] = variance[0] if len(variance) == 1 else variance[d % 4]
    return top.reshape(1, 2, dim)


# ----------------------------------------------------------------- Normalize
def normalize(x, scale, across_spatial=True, channel_shared=True, eps=1e-10, top_diff=None):
    """Forward (and, with top_diff, the fork's hand-written backward)."""
    n, c = x.shape[:2]
    sp = int(np.prod(x.shape[2:])) if x.ndim > 2 else 1
    xs = x.reshape(n, c, sp).astype(np.float64)
    top = np.zeros_like(xs)
    norms = []
    for i in range(n):
        if across_spatial:
            norm = math.sqrt((xs[i] ** 2).sum() + eps)
            t = xs[i] / norm
        else:
            norm = np.sqrt((xs[i] ** 2).sum(axis=0) + eps)
            t = xs[i] / norm[None, :]
        norms.append(norm)
        top[i] = t * (scale if channel_shared else np.asarray(scale)[:, None])
    if top_diff is None:
        return top.reshape(x.shape)
    g = top_diff.reshape(n, c, sp).astype(np.float64)
    bottom = np.zeros_like(xs)
    for i in range(n):
        if across_spatial:
            a = (xs[i] * g[i]).sum()
            d = (g[i] - xs[i] * a / norms[i] ** 2) / norms[i]
        else:
            a = (xs[i] * g[i]).sum(axis=0)
            d = (g[i] - xs[i] * a[None] / norms[i][None] ** 2) / norms[i][None]
        bottom[i] = d * (scale if channel_shared else np.asarray(scale)[:, None])
    return top.reshape(x.shape), bottom.reshape(x.shape)


# --------------------------------------------------------------- box helpers
def bbox_size(b):
    if b[2] < b[0] or b[3] < b[1]:
        return 0.0
    return float(f32(f32(b[2] - b[0]) * f32(b[3] - b[1])))


def jaccard(a, b):
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    iw = f32(min(a[2], b[2]) - max(a[0], b[0]))
    ih = f32(min(a[3], b[3]) - max(a[1], b[1]))
    if iw > 0 and ih > 0:
        inter = f32(iw * ih)
        return float(f32(inter / f32(f32(bbox_size(a)) + f32(bbox_size(b)) - inter)))
    return 0.0


def decode(prior, var, loc, code, in_target):
    v = [1.0] * 4 if in_target else var
    if code == 1:  # CORNER
        return [f32(prior[k] + v[k] * loc[k]) for k in range(4)]
    pw, ph = f32(prior[2] - prior[0]), f32(prior[3] - prior[1])
    if code == 2:  # CENTER_SIZE
        pcx, pcy = f32((prior[0] + prior[2]) / 2.0), f32((prior[1] + prior[3]) / 2.0)
        cx = f32(v[0] * loc[0] * pw + pcx)
        cy = f32(v[1] * loc[1] * ph + pcy)
        w = f32(math.exp(v[2] * loc[2]) * pw)
        h = f32(math.exp(v[3] * loc[3]) * ph)
        return [f32(cx - w / 2.0), f32(cy - h / 2.0), f32(cx + w / 2.0), f32(cy + h / 2.0)]
    size = [pw, ph, pw, ph]
    return [f32(prior[k] + v[k] * loc[k] * size[k]) for k in range(4)]


def encode(prior, var, gt, code, in_target):
    v = [1.0] * 4 if in_target else var
    if code == 1:
        return [f32((gt[k] - prior[k]) / v[k]) for k in range(4)]
    pw, ph = f32(prior[2] - prior[0]), f32(prior[3] - prior[1])
    if code == 2:
        pcx, pcy = (prior[0] + prior[2]) / 2.0, (prior[1] + prior[3]) / 2.0
        gw, gh = gt[2] - gt[0], gt[3] - gt[1]
        gcx, gcy = (gt[0] + gt[2]) / 2.0, (gt[1] + gt[3]) / 2.0
        return [f32((gcx - pcx) / pw / v[0]), f32((gcy - pcy) / ph / v[1]),
                f32(math.log(gw / pw) / v[2]), f32(math.log(gh / ph) / v[3])]
    size = [pw, ph, pw, ph]
    return [f32((gt[k] - prior[k]) / size[k] / v[k]) for k in range(4)]


def nms_fast(boxes, scores, score_thr, nms_thr, eta, top_k):
    order = sorted([(s, i) for i, s in enumerate(scores) if s > score_thr], key=lambda p: -p[0])
    if top_k > -1:
        order = order[:top_k]
    thr = nms_thr
    kept = []
    for _, i in order:
        keep = True
        for k in kept:
            if keep:
                keep = jaccard(boxes[i], boxes[k]) <= thr
            else:
                break
        if keep:
            kept.append(i)
            if eta < 1 and thr > 0.5:
                thr *= eta
    return kept


# ------------------------------------------------------------ DetectionOutput
def detection_output(loc, conf, prior, num_classes, share_location=True, background=0,
                     nms_threshold=0.3, top_k=-1, eta=1.0, code=1, var_in_target=False,
                     keep_top_k=-1, conf_threshold=-FLT_MAX):
    n = loc.shape[0]
    num_p = prior.shape[2] // 4
    lc = 1 if share_location else num_classes
    pr = prior.reshape(-1)
    priors = [pr[4 * i:4 * i + 4] for i in range(num_p)]
    vars_ = [pr[4 * (num_p + i):4 * (num_p + i) + 4] for i in range(num_p)]
    loc = loc.reshape(n, -1)
    conf = conf.reshape(n, -1)
    rows = []
    for i in range(n):
        decoded = {}
        for c in range(lc):
            label = -1 if share_location else c
            if label == background:
                continue
            decoded[label] = [decode(priors[p], vars_[p], loc[i, (p * lc + c) * 4:(p * lc + c) * 4 + 4],
                                     code, var_in_target) for p in range(num_p)]
        indices = {}
        num_det = 0
        for c in range(num_classes):
            if c == background:
                continue
            scores = [conf[i, p * num_classes + c] for p in range(num_p)]
            boxes = decoded[-1 if share_location else c]
            indices[c] = nms_fast(boxes, scores, conf_threshold, nms_threshold, eta, top_k)
            num_det += len(indices[c])
        if keep_top_k > -1 and num_det > keep_top_k:
            pairs = [(conf[i, j * num_classes + c], c, j) for c in sorted(indices) for j in indices[c]]
            pairs = sorted(pairs, key=lambda t: -t[0])[:keep_top_k]
            indices = {}
            for _, c, j in pairs:
                indices.setdefault(c, []).append(j)
        for c in sorted(indices):
            boxes = decoded[-1 if share_location else c]
            for j in indices[c]:
                rows.append([i, c, conf[i, j * num_classes + c], *boxes[j]])
    if not rows:
        out = -np.ones((n, 7), np.float32)
        out[:, 0] = np.arange(n)
        return out[None, None]
    return np.asarray(rows, np.float32)[None, None]


# -------------------------------------------------------------- ROIPooling
def roi_pooling(x, rois, ph, pw, scale, top_diff=None):
    n, c, h, w = x.shape
    r = rois.shape[0]
    top = np.zeros((r, c, ph, pw), np.float32)
    arg = -np.ones((r, c, ph, pw), np.int64)

    def rnd(v):
        return int(math.floor(v + 0.5)) if v > 0 else int(math.ceil(v - 0.5))

    for k in range(r):
        b = int(rois[k, 0])
        sw, sh = rnd(f32(rois[k, 1] * f32(scale))), rnd(f32(rois[k, 2] * f32(scale)))
        ew, eh = rnd(f32(rois[k, 3] * f32(scale))), rnd(f32(rois[k, 4] * f32(scale)))
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = f32(f32(rh) / f32(ph)), f32(f32(rw) / f32(pw))
        for ch in range(c):
            for i in range(ph):
                for j in range(pw):
                    hs = min(max(int(math.floor(f32(i * bh))) + sh, 0), h)
                    he = min(max(int(math.ceil(f32((i + 1) * bh))) + sh, 0), h)
                    ws = min(max(int(math.floor(f32(j * bw))) + sw, 0), w)
                    we = min(max(int(math.ceil(f32((j + 1) * bw))) + sw, 0), w)
                    empty = he <= hs or we <= ws
                    best, bi = (0.0 if empty else -FLT_MAX), -1
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[b, ch, yy, xx] > best:
                                best, bi = x[b, ch, yy, xx], yy * w + xx
                    top[k, ch, i, j], arg[k, ch, i, j] = best, bi
    if top_diff is None:
        return top
    diff = np.zeros_like(x, dtype=np.float64)
    for k in range(r):
        b = int(rois[k, 0])
        for ch in range(c):
            for i in range(ph):
                for j in range(pw):
                    if arg[k, ch, i, j] >= 0:
                        yy, xx = divmod(int(arg[k, ch, i, j]), w)
                        diff[b, ch, yy, xx] += top_diff[k, ch, i, j]
    return top, diff


# ---------------------------------------------------------------- Upsample
def upsample_nearest(x, s):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h * s, w * s), np.float32)
    for yy in range(h * s):
        for xx in range(w * s):
            out[:, :, yy, xx] = x[:, :, yy // s, xx // s]
    return out


def unpool(x, mask, oh, ow, top_diff=None):
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh * ow), np.float32)
    for i in range(n):
        for ch in range(c):
            for k in range(h * w):
                out[i, ch, int(mask[i, ch].reshape(-1)[k])] = x[i, ch].reshape(-1)[k]
    if top_diff is None:
        return out.reshape(n, c, oh, ow)
    diff = np.zeros_like(x)
    for i in range(n):
        for ch in range(c):
            for k in range(h * w):
                diff[i, ch].reshape(-1)[k] = top_diff[i, ch].reshape(-1)[int(mask[i, ch].reshape(-1)[k])]
    return out.reshape(n, c, oh, ow), diff


# ------------------------------------------------------------------ Interp
def interp(x, h2, w2, pad_beg=0, pad_end=0):
    n, c, h, w = x.shape
    h1, w1 = h + pad_beg + pad_end, w + pad_beg + pad_end
    x = x[:, :, -pad_beg:-pad_beg + h1, -pad_beg:-pad_beg + w1]
    if (h1, w1) == (h2, w2):
        return x.copy()
    out = np.zeros((n, c, h2, w2), np.float32)
    rh = f32(f32(h1 - 1) / f32(h2 - 1)) if h2 > 1 else f32(0)
    rw = f32(f32(w1 - 1) / f32(w2 - 1)) if w2 > 1 else f32(0)
    for i in range(h2):
        hr = f32(rh * f32(i))
        y = int(hr)
        yp = 1 if y < h1 - 1 else 0
        l1 = f32(hr - f32(y))
        l0 = f32(1 - l1)
        for j in range(w2):
            wr = f32(rw * f32(j))
            xx = int(wr)
            xp = 1 if xx < w1 - 1 else 0
            m1 = f32(wr - f32(xx))
            m0 = f32(1 - m1)
            out[:, :, i, j] = l0 * (m0 * x[:, :, y, xx] + m1 * x[:, :, y, xx + xp]) + \
                l1 * (m0 * x[:, :, y + yp, xx] + m1 * x[:, :, y + yp, xx + xp])
    return out


# --------------------------------------------------------------- MultiBoxLoss
def match_bbox(gts, preds, label, bipartite, thr, ignore_cross):
    num_pred = len(preds)
    idx, ovl = [-1] * num_pred, [0.0] * num_pred
    gt_ids = [g for g in range(len(gts)) if label == -1 or gts[g][1] == label]
    if not gt_ids:
        return idx, ovl
    overlaps = {}
    for i in range(num_pred):
        if ignore_cross and any(v < 0 or v > 1 for v in preds[i]):
            idx[i] = -2
            continue
        for j in range(len(gt_ids)):
            o = jaccard(preds[i], gts[gt_ids[j]][0])
            if o > 1e-6:
                ovl[i] = max(ovl[i], o)
                overlaps.setdefault(i, {})[j] = o
    pool = list(range(len(gt_ids)))
    while pool:
        best = (-1, -1, -1.0)
        for i in sorted(overlaps):
            if idx[i] != -1:
                continue
            for j in pool:
                if j in overlaps[i] and overlaps[i][j] > best[2]:
                    best = (i, j, overlaps[i][j])
        if best[0] == -1:
            break
        idx[best[0]], ovl[best[0]] = gt_ids[best[1]], best[2]
        pool.remove(best[1])
    if not bipartite:
        for i in sorted(overlaps):
            if idx[i] != -1:
                continue
            bj, bo = -1, -1.0
            for j in range(len(gt_ids)):
                if j in overlaps[i] and overlaps[i][j] >= thr and overlaps[i][j] > bo:
                    bj, bo = j, overlaps[i][j]
            if bj != -1:
                idx[i], ovl[i] = gt_ids[bj], bo
    return idx, ovl


def softmax_loss_row(row, label):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return -math.log(max(e[label] / sum(e), FLT_MIN)), [v / sum(e) for v in e]


def multibox_loss(loc, conf, prior, gt, num_classes, share_location=True, bipartite=False,
                  overlap_threshold=0.5, use_prior_for_matching=True, background=0, use_difficult=True,
                  mining="MAX_NEGATIVE", neg_pos_ratio=3.0, neg_overlap=0.5, code=1, var_in_target=False,
                  loc_weight=1.0, smooth_l1=True, softmax=True, normalization="VALID", sample_size=64,
                  ignore_cross=False, agnostic=False):
    """(loss, d loss/d loc, d loss/d conf), as the fork's forward and backward compute them."""
    n = loc.shape[0]
    num_p = prior.shape[2] // 4
    lc = 1 if share_location else num_classes
    pr = prior.reshape(-1)
    priors = [pr[4 * i:4 * i + 4] for i in range(num_p)]
    vars_ = [pr[4 * (num_p + i):4 * (num_p + i) + 4] for i in range(num_p)]
    loc = loc.reshape(n, num_p, lc, 4).astype(np.float32)
    conf = conf.reshape(n, num_p, num_classes).astype(np.float32)
    gts = {}
    for row in gt.reshape(-1, 8):
        if int(row[0]) == -1:
            continue
        assert int(row[1]) != background
        if not use_difficult and bool(row[7]):
            continue
        gts.setdefault(int(row[0]), []).append((row[3:7], int(row[1])))
    all_idx, all_ovl = [], []
    for i in range(n):
        idx_m, ovl_m = {}, {}
        if i in gts:
            if use_prior_for_matching:
                t_idx, t_ovl = match_bbox(gts[i], priors, -1, bipartite, overlap_threshold, ignore_cross)
                if share_location:
                    idx_m[-1], ovl_m[-1] = t_idx, t_ovl
                else:
                    for c in range(lc):
                        if c == background:
                            continue
                        idx_m[c] = [g if g > -1 and gts[i][g][1] == c else -1 for g in t_idx]
                        ovl_m[c] = list(t_ovl)
            else:
                for c in range(lc):
                    label = -1 if share_location else c
                    if not share_location and label == background:
                        continue
                    boxes = [decode(priors[p], vars_[p], loc[i, p, c], code, var_in_target)
                             for p in range(num_p)]
                    idx_m[label], ovl_m[label] = match_bbox(gts[i], boxes, label, bipartite,
                                                            overlap_threshold, ignore_cross)
        all_idx.append(dict(sorted(idx_m.items())))
        all_ovl.append(dict(sorted(ovl_m.items())))
    num_matches = sum(1 for d in all_idx for v in d.values() for g in v if g > -1)

    def label_of(i, g):
        return background + 1 if agnostic else gts[i][g][1]

    def loc_pair(i, label, j):
        g = all_idx[i][label][j]
        t = encode(priors[j], vars_[j], gts[i][g][0], code, var_in_target)
        p = list(loc[i, j, 0 if share_location else label])
        if var_in_target:
            p = [p[k] / vars_[j][k] for k in range(4)]
            t = [t[k] / vars_[j][k] for k in range(4)]
        return p, t

    def l1(d):
        return 0.5 * d * d if (abs(d) < 1 or not smooth_l1) else abs(d) - 0.5

    negs = [[] for _ in range(n)]
    if mining != "NONE":
        for i in range(n):
            labels = [background] * num_p
            for v in all_idx[i].values():
                for j, g in enumerate(v):
                    if g > -1 and labels[j] == background:
                        labels[j] = gts[i][g][1]
            loss = []
            for j in range(num_p):
                if softmax:
                    loss.append(softmax_loss_row(conf[i, j], labels[j])[0])
                else:
                    s = 0.0
                    for c in range(num_classes):
                        x, t = float(conf[i, j, c]), (1 if c == labels[j] else 0)
                        s -= x * (t - (x >= 0)) - math.log(1 + math.exp(x - 2 * x * (x >= 0)))
                    loss.append(s)
            if mining == "HARD_EXAMPLE":
                for label, v in all_idx[i].items():
                    for j, g in enumerate(v):
                        if g > -1:
                            p, t = loc_pair(i, label, j)
                            loss[j] += sum(l1(p[k] - t[k]) for k in range(4))
            for label, v in all_idx[i].items():
                if mining == "MAX_NEGATIVE":
                    cand = [j for j in range(num_p) if v[j] == -1 and all_ovl[i][label][j] < neg_overlap]
                    num_sel = min(int(f32(sum(1 for g in v if g > -1)) * f32(neg_pos_ratio)), len(cand))
                else:
                    cand = list(range(num_p))
                    num_sel = min(sample_size, len(cand))
                sel = set(sorted(cand, key=lambda j: -loss[j])[:num_sel])
                for j in range(num_p):
                    if v[j] > -1:
                        if mining == "HARD_EXAMPLE" and j not in sel:
                            v[j] = -1
                            num_matches -= 1
                    elif v[j] == -1 and j in sel:
                        negs[i].append(j)
    norm = {"FULL": n * num_p, "VALID": num_matches, "BATCH_SIZE": n, "NONE": 1}[normalization]
    norm = max(1.0, float(norm))
    dloc = np.zeros_like(loc, dtype=np.float64)
    dconf = np.zeros_like(conf, dtype=np.float64)
    total = 0.0
    if num_matches >= 1:
        lsum = 0.0
        for i in range(n):
            for label, v in all_idx[i].items():
                for j, g in enumerate(v):
                    if g <= -1:
                        continue
                    p, t = loc_pair(i, label, j)
                    for k in range(4):
                        d = p[k] - t[k]
                        lsum += l1(d)
                        gd = d if (abs(d) < 1 or not smooth_l1) else float(np.sign(d))
                        if var_in_target:
                            gd /= vars_[j][k]
                        dloc[i, j, 0 if share_location else label, k] += gd * loc_weight / norm
        total += loc_weight * lsum / norm
    rows = []  # (image, prior, label)
    if mining == "NONE":
        for i in range(n):
            labels = [background] * num_p
            for v in all_idx[i].values():
                for j, g in enumerate(v):
                    if g > -1:
                        labels[j] = label_of(i, g)
            rows += [(i, j, labels[j]) for j in range(num_p)]
    else:
        for i in range(n):
            for v in all_idx[i].values():
                rows += [(i, j, label_of(i, g)) for j, g in enumerate(v) if g > -1]
            rows += [(i, j, background) for j in negs[i]]
    csum = 0.0
    for i, j, label in rows:
        if softmax:
            val, prob = softmax_loss_row(conf[i, j], label)
            csum += val
            for c in range(num_classes):
                dconf[i, j, c] += (prob[c] - (c == label)) / norm
        else:
            for c in range(num_classes):
                x = float(conf[i, j, c])
                t = 1.0 if c == label else 0.0
                csum -= x * (t - (x >= 0)) - math.log(1 + math.exp(x - 2 * x * (x >= 0)))
                dconf[i, j, c] += (1 / (1 + math.exp(-x)) - t) / norm
    total += csum / norm
    return total, dloc.reshape(n, -1), dconf.reshape(n, -1)

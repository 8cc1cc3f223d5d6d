"""Train the small learned change model (geo/detect/change_mlp.npz) on shared LEVIR-CD only.

Deterministic (fixed seeds, fixed pixel samples). Trains one model on every
LEVIR-CD group in ../shared/data and one per leave-one-group-out fold, so the
benchmark can score each image with a model that never saw its group (the crop
test_7_0256_0512 lies inside full_1024/test_7: both are group ``test_7``).

    python benchmarks/train_change_mlp.py            # writes geo/detect/change_mlp.npz
    python benchmarks/train_change_mlp.py --check    # CV scores only, writes nothing
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.benchmark import group_of, list_triplets, read_image, read_label  # noqa: E402
from geo.detect.learned import FEATURE_NAMES, MlpModel, pair_features  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
LEVIR = [DATA / "levir_cd" / "full_1024", DATA / "levir_cd" / "crops_256"]
OUT = ROOT / "geo" / "detect" / "change_mlp.npz"
HIDDEN = (48, 24)
EPOCHS = 16
BATCH = 2048
LR = 3e-3
PX_PER_MP = 150_000
"""Pixels sampled per megapixel of image."""
SMOOTH_M = 1.0


def load_groups() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Features and labels per group; a crop inside a full image already loaded is skipped."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    full_groups: set[str] = set()
    for folder in LEVIR:
        for a_p, b_p, l_p in list_triplets(folder):
            g = group_of(a_p.name)
            if folder.name == "crops_256" and g in full_groups:
                continue
            if folder.name == "full_1024":
                full_groups.add(g)
            a = read_image(a_p, res_m=0.5)
            b = read_image(b_p, res_m=0.5)
            # no per-pair radiometric normalisation: iMAD no-change pixels are unreliable when
            # most of a tile changes (LEVIR test_2: CV F1 0.07 with it, 0.71 without)
            f = pair_features(a, b)
            groups.setdefault(g, []).append((f, read_label(l_p)))
    return groups


def sample(groups: dict[str, list[tuple[np.ndarray, np.ndarray]]], names: list[str],
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for g in names:
        for f, lab in groups[g]:
            n = lab.size
            k = min(n, int(PX_PER_MP * n / 1e6))
            idx = rng.choice(n, k, replace=False)
            xs.append(f.reshape(f.shape[0], -1)[:, idx].T)
            ys.append(lab.ravel()[idx])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def train_mlp(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                                                np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    xs = (x - mean) / std
    sizes = [x.shape[1], *HIDDEN, 1]
    ws = [rng.normal(0, np.sqrt(2 / sizes[i]), (sizes[i], sizes[i + 1])).astype(np.float32)
          for i in range(len(sizes) - 1)]
    bs = [np.zeros(sizes[i + 1], np.float32) for i in range(len(sizes) - 1)]
    params = ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    pos = max(float(y.mean()), 1e-3)
    w_pos, w_neg = 0.5 / pos, 0.5 / (1 - pos)
    step = 0
    n = len(xs)
    for epoch in range(EPOCHS):
        order = rng.permutation(n)
        lr = LR * (0.5 ** (epoch // 4))
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            xb, yb = xs[idx], y[idx]
            acts = [xb]
            h = xb
            for w, b in zip(ws[:-1], bs[:-1], strict=True):
                h = np.maximum(h @ w + b, 0)
                acts.append(h)
            z = (h @ ws[-1] + bs[-1]).ravel()
            p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
            wt = np.where(yb > 0.5, w_pos, w_neg)
            g = ((p - yb) * wt / len(idx))[:, None].astype(np.float32)
            gw = [np.zeros_like(w) for w in ws]
            gb = [np.zeros_like(b) for b in bs]
            for li in range(len(ws) - 1, -1, -1):
                gw[li] = acts[li].T @ g
                gb[li] = g.sum(0)
                if li > 0:
                    g = (g @ ws[li].T) * (acts[li] > 0)
            grads = gw + gb
            step += 1
            for i, (p_, g_) in enumerate(zip(params, grads, strict=True)):
                m[i] = 0.9 * m[i] + 0.1 * g_
                v[i] = 0.999 * v[i] + 0.001 * g_ * g_
                mh = m[i] / (1 - 0.9**step)
                vh = v[i] / (1 - 0.999**step)
                p_ -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return ws, bs, mean.astype(np.float32), std.astype(np.float32)


def prob_map(model: MlpModel, f: np.ndarray) -> np.ndarray:
    p = model.predict(f.reshape(f.shape[0], -1).T).reshape(f.shape[1:])
    return ndimage.gaussian_filter(p, SMOOTH_M / 0.5)


def best_threshold(model: MlpModel, groups: dict, names: list[str]) -> float:
    ts = np.linspace(0.2, 0.9, 29)
    tp = np.zeros(ts.size)
    fp = np.zeros(ts.size)
    fn = np.zeros(ts.size)
    for g in names:
        for f, lab in groups[g]:
            p = prob_map(model, f)
            for i, t in enumerate(ts):
                pr = p > t
                tp[i] += (pr & lab).sum()
                fp[i] += (pr & ~lab).sum()
                fn[i] += (~pr & lab).sum()
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(ts[int(np.argmax(f1))])


def fit(groups: dict, names: list[str], seed: int = 0) -> MlpModel:
    x, y = sample(groups, names, seed)
    ws, bs, mean, std = train_mlp(x, y, seed)
    model = MlpModel(mean=mean, std=std, weights=tuple(ws), biases=tuple(bs), threshold=0.5,
                     smooth_m=SMOOTH_M, trained_on=tuple(sorted(names)))
    t = best_threshold(model, groups, names)
    return MlpModel(mean=mean, std=std, weights=tuple(ws), biases=tuple(bs), threshold=t,
                    smooth_m=SMOOTH_M, trained_on=tuple(sorted(names)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="print CV scores, write nothing")
    args = ap.parse_args()
    t0 = time.time()
    groups = load_groups()
    names = sorted(groups)
    print(f"groups: {names}; {len(FEATURE_NAMES)} features; load {time.time() - t0:.0f}s",
          file=sys.stderr)
    arrays: dict[str, np.ndarray] = {}
    tot = np.zeros(3)
    for g in names:
        model = fit(groups, [n for n in names if n != g])
        arrays.update(model.to_arrays(f"fold:{g}"))
        fold = np.zeros(3)
        for f, lab in groups[g]:
            pr = prob_map(model, f) > model.threshold
            fold += ((pr & lab).sum(), (pr & ~lab).sum(), (~pr & lab).sum())
        tot += fold
        ff1 = 2 * fold[0] / max(2 * fold[0] + fold[1] + fold[2], 1)
        print(f"fold {g}: threshold {model.threshold:.3f} F1 {ff1:.3f} fp {fold[1]:.0f}",
              file=sys.stderr)
    f1 = 2 * tot[0] / max(2 * tot[0] + tot[1] + tot[2], 1)
    print(f"CV pixel F1 (no cleanup, groups held out): {f1:.3f}", file=sys.stderr)
    if args.check:
        return
    arrays.update(fit(groups, names).to_arrays("all"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".npz")
    os.close(fd)
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f}s",
          file=sys.stderr)


if __name__ == "__main__":
    main()

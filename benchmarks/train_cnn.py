"""Train the compact Siamese U-Net (geo/detect/cnn.py) on ../shared/data alone, on the CPU (PyTorch).

Needs the ``train`` extra (``pip install 'factorywatch[train]'``). Seeded: the same
command gives the same weights and scores on the same machine and torch build.

Sources, all resampled to the model's 0.5 m GSD (geo.detect.cnn.GSD_M):
change pairs: levir (LEVIR-CD crops + test_7, 0.5 m), whu (WHU-CD, GSD unstated: 0.5 m
assumed, as the benchmark does), dsifn (unstated: 0.5 m assumed), egy (EGY-BCD, unstated:
0.5 m assumed), sztaki (SZTAKI Szada, 1.5 m, upsampled 3x);
building masks: spacenet (SpaceNet 1 Rio RGB, 0.5 m), opencities (Open Cities Accra, 2 cm,
downsampled 25x), xbd (xBD Joplin pre-disaster image, 0.45 m, with its polygons).
Sentinel-2 / Landsat (10-30 m) are not used: a 0.5 m building model cannot learn from them.

Augmentation: flips, 90-degree rotations, scale 0.75-1.33, per-date gain/offset/gamma
jitter, up to 2 px misregistration of the second date.

Thresholds: after training, each head's probability threshold is chosen on the fold's own
training sources (CAL_CROPS seeded windows per source; best mean per-source F1 for change,
IoU for buildings), never on the left-out set; stored as <name>/thresholds.

    python benchmarks/train_cnn.py --leave-out levir,spacenet   # one fold
    python benchmarks/train_cnn.py --all                                     # every fold + shipped
    python benchmarks/train_cnn.py --calibrate    # only re-choose the thresholds, then pack
Writes benchmarks/out/cnn/<name>.npz and <name>.json; --all also writes geo/detect/cnn.npz.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _paths import shared_data  # noqa: E402

from geo.benchmark import group_of, list_triplets, read_image, read_label  # noqa: E402
from geo.detect.cnn import GSD_M, LAYERS, WIDTHS, CnnModel, forward, resample, tiled  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "cnn"
SHIPPED = ROOT / "geo" / "detect" / "cnn.npz"
CROP = 96
BATCH = 8
"""Change pairs and building images per step (each)."""
LR = 2e-3
FOLDS = {"loo-levir-spacenet": ("levir", "spacenet"), "loo-whu-opencities": ("whu", "opencities"),
         "loo-dsifn": ("dsifn",), "all": ()}
"""Shipped model and three leave-out folds. Each scored set with a target (change: levir,
whu, dsifn; buildings: spacenet, opencities) is left out of exactly one fold, and each fold
leaves out at most one change set and one building set: leave-one-dataset-out per head (the
change head never sees the change set it is scored on, the building head never sees the
building set)."""

Sample = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]
"""(A uint8 (3,H,W), B uint8 or None, label bool (H,W), valid bool (H,W)) at GSD_M."""


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _to_gsd(img: np.ndarray, lab: np.ndarray, res_m: float) -> tuple[np.ndarray, np.ndarray]:
    f = res_m / GSD_M
    im = resample(img.astype(np.float32), f)
    lb = resample(lab[None].astype(np.float32), f)[0] > 0.5
    return _u8(im), lb


def load_change(name: str, folder: Path, res_m: float, skip_groups: set[str]) -> list[Sample]:
    out: list[Sample] = []
    for a_p, b_p, l_p in list_triplets(folder):
        if group_of(a_p.name) in skip_groups and "crops" in folder.name:
            continue
        a, b = read_image(a_p).data[:3], read_image(b_p).data[:3]
        lab = read_label(l_p) if name != "sztaki" else _sztaki_label(l_p)
        a8, lb = _to_gsd(a, lab, res_m)
        b8, _ = _to_gsd(b, lab, res_m)
        out.append((a8, b8, lb, np.ones(lb.shape, bool)))
    return out


def _sztaki_label(p: Path) -> np.ndarray:
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p) as src:
            return np.asarray(src.read(1) >= 128)


def load_buildings(name: str) -> list[Sample]:
    data = shared_data()  # at use, so that importing this module needs no data
    out: list[Sample] = []
    if name == "spacenet":
        rio = data / "spacenet" / "sn1_rio"
        for p in sorted((rio / "3band").glob("*.tif")):
            a8, lb = _to_gsd(read_image(p).data[:3], read_label(rio / "building_mask" / p.name), 0.5)
            out.append((a8, None, lb, np.ones(lb.shape, bool)))
    elif name == "opencities":
        oc = data / "open_cities_ai"
        for p in sorted((oc / "images").glob("*.tif")):
            ga = read_image(p)
            a8, lb = _to_gsd(ga.data[:3], read_label(oc / "masks" / f"{p.stem}_mask.tif"), 0.02)
            out.append((a8, None, lb, np.ones(lb.shape, bool)))
    elif name == "xbd":
        out.append(_xbd())
    return out


def _xbd() -> Sample:
    data = shared_data()  # at use, so that importing this module needs no data
    from rasterio.features import rasterize
    from shapely import wkt

    img = data / "xbd" / "images" / "joplin-tornado_00000000_pre_disaster.png"
    lab_p = data / "xbd" / "labels" / "joplin-tornado_00000000_pre_disaster.json"
    polys = [wkt.loads(f["wkt"]) for f in json.loads(lab_p.read_text())["features"]["xy"]]
    ga = read_image(img)
    lab = rasterize([(p, 1) for p in polys], out_shape=ga.grid.shape).astype(bool)
    a8, lb = _to_gsd(ga.data[:3], lab, 0.45)
    return a8, None, lb, np.ones(lb.shape, bool)


def load_all() -> dict[str, list[Sample]]:
    data = shared_data()  # at use, so that importing this module needs no data
    levir = [data / "levir_cd" / "full_1024", data / "levir_cd" / "crops_256"]
    full = {group_of(p[0].name) for p in list_triplets(levir[0])}
    src: dict[str, list[Sample]] = {
        "levir": load_change("levir", levir[0], 0.5, set()) + load_change("levir", levir[1], 0.5,
                                                                            full),
        "whu": load_change("whu", data / "whu_cd", 0.5, set()),
        "dsifn": load_change("dsifn", data / "dsifn_cd", 0.5, set()),
        "egy": load_change("egy", data / "train_cd" / "egy_bcd", 0.5, set()),
        "sztaki": load_change("sztaki", data / "train_cd" / "sztaki_airchange", 1.5, set()),
    }
    for n in ("spacenet", "opencities", "xbd"):
        src[n] = load_buildings(n)
    return src


# ------------------------------------------------------------ augmentation


def _crop(s: Sample, rng: np.random.Generator, torch_mod: object) -> tuple[np.ndarray, ...]:
    """One augmented CROP x CROP sample: a (3,C,C), b (3,C,C) or None, label, valid (float32)."""
    import torch
    import torch.nn.functional as F

    a, b, lab, val = s
    scale = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
    win = round(CROP * scale)
    h, w = lab.shape
    y0 = int(rng.integers(0, max(h - win, 0) + 1))
    x0 = int(rng.integers(0, max(w - win, 0) + 1))

    def cut(x: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
        out = np.zeros((x.shape[0], win, win), np.float32)
        ys = slice(max(y0 + dy, 0), min(y0 + dy + win, h))
        xs = slice(max(x0 + dx, 0), min(x0 + dx + win, w))
        part = x[:, ys, xs].astype(np.float32)
        oy, ox = ys.start - (y0 + dy), xs.start - (x0 + dx)
        out[:, oy:oy + part.shape[1], ox:ox + part.shape[2]] = part
        return out

    ims = [cut(a) / 255.0]
    if b is not None:
        dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
        ims.append(cut(b, dy, dx) / 255.0)
    lv = cut(np.stack([lab, val]).astype(np.float32))
    t = torch.from_numpy(np.concatenate([*ims, lv]))[None]
    if win != CROP:
        t = F.interpolate(t, size=(CROP, CROP), mode="bilinear", align_corners=False)
    arr = t[0].numpy()
    k = int(rng.integers(0, 4))
    arr = np.rot90(arr, k, axes=(1, 2))
    if rng.random() < 0.5:
        arr = arr[:, :, ::-1]
    arr = np.ascontiguousarray(arr)
    outs = []
    for i in range(len(ims)):
        x = arr[3 * i:3 * i + 3]
        gain = rng.uniform(0.75, 1.3) * rng.uniform(0.9, 1.1, 3)
        off = rng.uniform(-0.06, 0.06) + rng.uniform(-0.02, 0.02, 3)
        gamma = float(np.exp(rng.uniform(-0.25, 0.25)))
        x = np.clip(x, 0, 1) ** gamma * gain[:, None, None] + off[:, None, None]
        outs.append(x.astype(np.float32))
    lab_c = (arr[-2] > 0.5).astype(np.float32)
    val_c = (arr[-1] > 0.99).astype(np.float32)
    return (*outs, lab_c, val_c)


def _batch(pool: list[list[Sample]], rng: np.random.Generator) -> list[np.ndarray]:
    items = []
    for _ in range(BATCH):
        ds = pool[int(rng.integers(0, len(pool)))]
        sizes = np.array([s[2].size for s in ds], float)
        s = ds[int(rng.choice(len(ds), p=sizes / sizes.sum()))]
        items.append(_crop(s, rng, None))
    return [np.stack([it[i] for it in items]) for i in range(len(items[0]))]


# ------------------------------------------------------------ model


def build_model():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleDict({n: nn.Conv2d(i, o, k, padding=k // 2)
                                        for n, i, o, k in LAYERS})

        def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
            feats = []
            for lvl in range(4):
                if lvl:
                    x = torch.nn.functional.max_pool2d(x, 2)
                x = torch.relu(self.convs[f"e{lvl + 1}a"](x))
                x = torch.relu(self.convs[f"e{lvl + 1}b"](x))
                feats.append(x)
            return feats

        def decode(self, feats: list[torch.Tensor], head: str) -> torch.Tensor:
            x = feats[3]
            for lvl in (3, 2, 1):
                up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
                x = torch.relu(self.convs[f"{head}{lvl}"](torch.cat([up, feats[lvl - 1]], 1)))
            return self.convs[f"{head}o"](x)[:, 0]

        def forward(self, a: torch.Tensor, b: torch.Tensor | None = None, *,
                    buildings: bool = True) -> tuple[torch.Tensor, ...]:
            fa = self.encode(a)
            if b is None:
                return (self.decode(fa, "b"),)
            fb = self.encode(b)
            diff = [torch.abs(p - q) for p, q in zip(fa, fb, strict=True)]
            if not buildings:
                return (self.decode(diff, "c"),)
            return self.decode(diff, "c"), self.decode(fa, "b"), self.decode(fb, "b")

    return Net()


def _loss(logit, target, valid):  # type: ignore[no-untyped-def]
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, target, reduction="none")
    bce = (bce * valid).sum() / valid.sum().clamp(min=1)
    p = torch.sigmoid(logit) * valid
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + (target * valid).sum() + 1)
    return bce + dice


def train(src: dict[str, list[Sample]], leave_out: tuple[str, ...], steps: int, seed: int):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # 2 threads spin-wait 10x slower on the shared 2-core machine
    rng = np.random.default_rng(seed)
    change = [v for k, v in src.items() if k not in leave_out and v[0][1] is not None]
    bld = [v for k, v in src.items() if k not in leave_out and v[0][1] is None]
    net = build_model()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    c0 = time.process_time()
    t_data = 0.0
    for step in range(steps):
        td = time.time()
        a, b, lab, val = (torch.from_numpy(x) for x in _batch(change, rng))
        ba, blab, bval = (torch.from_numpy(x) for x in _batch(bld, rng))
        t_data += time.time() - td
        (chg,) = net(a, b, buildings=False)
        (bl,) = net(ba)
        loss = _loss(chg, lab, val) + _loss(bl, blab, bval)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:5d} loss {loss.item():.3f} ({time.time() - t0:.0f} s, data {t_data:.0f} s)",
                  file=sys.stderr, flush=True)
    print(f"cpu {time.process_time() - c0:.0f} s", file=sys.stderr)
    return net, time.time() - t0


def export(net, name: str, trained_on: list[str]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The weights as stored: float16 (half the file; inference runs in float32, and the
    probabilities move by under 1e-3), so the thresholds are chosen on these very weights."""
    out: dict[str, np.ndarray] = {}
    for layer, *_ in LAYERS:
        conv = net.convs[layer]
        out[f"{name}/{layer}.w"] = conv.weight.detach().numpy().astype(np.float16)
        out[f"{name}/{layer}.b"] = conv.bias.detach().numpy().astype(np.float16)
    out[f"{name}/trained_on"] = np.array(trained_on)
    return out


# ------------------------------------------------------------ thresholds (training data only)

CAL_CROP = 256
CAL_CROPS = 12
"""Calibration windows per training source (CAL_CROP px, at fixed seeded positions)."""
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _windows(ds: list[Sample], rng: np.random.Generator) -> list[Sample]:
    out = []
    for _ in range(CAL_CROPS):
        sizes = np.array([s[2].size for s in ds], float)
        a, b, lab, val = ds[int(rng.choice(len(ds), p=sizes / sizes.sum()))]
        h, w = lab.shape
        c = min(CAL_CROP, h, w)
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        cut = (slice(y0, y0 + c), slice(x0, x0 + c))
        out.append((a[:, cut[0], cut[1]], None if b is None else b[:, cut[0], cut[1]],
                    lab[cut], val[cut]))
    return out


def pick_threshold(mean: np.ndarray) -> int:
    """Index into THRESHOLDS of the best mean score; among near-ties (within 0.005 of the
    best) the one closest to 0.5, so that a flat curve keeps the neutral threshold."""
    ok = np.flatnonzero(mean >= mean.max() - 0.005)
    return int(ok[np.argmin(np.abs(THRESHOLDS[ok] - 0.5))])


def calibrate(arrays: dict[str, np.ndarray], name: str, src: dict[str, list[Sample]],
              trained_on: list[str]) -> tuple[float, float]:
    """Thresholds of the change and building heads from the model's own training sources.

    For each head, the threshold of THRESHOLDS with the best mean over training sources of
    the per-source F1 (change) or IoU (buildings), pixels pooled within a source: every
    source counts once, as every left-out dataset does in the table. Held-out data is never
    looked at.
    """
    model = CnnModel(name=name, trained_on=tuple(trained_on), weights={
        layer: (arrays[f"{name}/{layer}.w"].astype(np.float32),
                arrays[f"{name}/{layer}.b"].astype(np.float32)) for layer, *_ in LAYERS})
    rng = np.random.default_rng(12345)
    scores: dict[str, list[np.ndarray]] = {"change": [], "building": []}
    for ds_name in trained_on:
        ds = src[ds_name]
        head = "building" if ds[0][1] is None else "change"
        tp = np.zeros(len(THRESHOLDS))
        fp, fn = tp.copy(), tp.copy()
        for a, b, lab, val in _windows(ds, rng):
            ims = [a.astype(np.float32) / 255.0] + ([] if b is None else
                                                    [b.astype(np.float32) / 255.0])
            prob = tiled(lambda t: forward(model, *t, buildings=False), ims)[0][val]
            y = lab[val]
            for i, t in enumerate(THRESHOLDS):
                pred = prob > t
                tp[i] += np.sum(pred & y)
                fp[i] += np.sum(pred & ~y)
                fn[i] += np.sum(~pred & y)
        denom = 2 * tp + fp + fn if head == "change" else tp + fp + fn
        scores[head].append(np.where(denom > 0, (2 if head == "change" else 1) * tp /
                                     np.maximum(denom, 1), 0.0))
    picked = []
    for head in ("change", "building"):
        mean = np.mean(scores[head], axis=0)
        i = pick_threshold(mean)
        picked.append(float(THRESHOLDS[i]))
        print(f"{name}: {head} threshold {THRESHOLDS[i]:.2f} (training-source mean "
              f"{'F1' if head == 'change' else 'IoU'} {mean[i]:.3f}; at 0.50: "
              f"{mean[int(np.argmin(np.abs(THRESHOLDS - 0.5)))]:.3f})", file=sys.stderr)
    arrays[f"{name}/thresholds"] = np.array(picked, np.float64)
    return picked[0], picked[1]


def run_fold(src: dict[str, list[Sample]], name: str, leave_out: tuple[str, ...], steps: int,
             seed: int, out: Path = OUT) -> dict[str, np.ndarray]:
    net, secs = train(src, leave_out, steps, seed)
    trained_on = [k for k in src if k not in leave_out]
    arrays = export(net, name, trained_on)
    calibrate(arrays, name, src, trained_on)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{name}.npz", models=np.array([name]), **arrays)
    meta = {"name": name, "leave_out": list(leave_out), "trained_on": trained_on,
            "steps": steps, "seed": seed, "crop_px": CROP, "batch": BATCH, "gsd_m": GSD_M,
            "widths": list(WIDTHS), "train_seconds": round(secs, 1),
            "thresholds": {"change": float(arrays[f"{name}/thresholds"][0]),
                           "building": float(arrays[f"{name}/thresholds"][1])},
            "n_weights": int(sum(v.size for k, v in arrays.items() if k.endswith((".w", ".b"))))}
    (out / f"{name}.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta), file=sys.stderr)
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--leave-out", default="", help="comma-separated sources, e.g. levir,spacenet")
    ap.add_argument("--all", action="store_true", help="every fold in FOLDS + the shipped model")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the per-fold files")
    ap.add_argument("--pack", action="store_true",
                    help="only pack benchmarks/out/cnn/<fold>.npz into geo/detect/cnn.npz")
    ap.add_argument("--calibrate", action="store_true",
                    help="only (re)choose the thresholds of the trained folds in --out, then pack")
    args = ap.parse_args()
    args.pack = args.pack or args.calibrate
    folds = FOLDS if (args.all or args.pack) else {
        "loo-" + "-".join(args.leave_out.split(",")) if args.leave_out else "all":
        tuple(s for s in args.leave_out.split(",") if s)}
    arrays: dict[str, np.ndarray] = {}
    src = None if args.pack and not args.calibrate else load_all()
    for name, lo in folds.items():
        if args.pack:
            with np.load(args.out / f"{name}.npz") as z:
                fold = {k: z[k] for k in z.files if k != "models"}
            if args.calibrate:
                assert src is not None
                calibrate(fold, name, src, [str(s) for s in fold[f"{name}/trained_on"]])
                np.savez_compressed(args.out / f"{name}.npz", models=np.array([name]), **fold)
                meta_p = args.out / f"{name}.json"
                meta = json.loads(meta_p.read_text())
                meta["thresholds"] = {"change": float(fold[f"{name}/thresholds"][0]),
                                      "building": float(fold[f"{name}/thresholds"][1])}
                meta_p.write_text(json.dumps(meta, indent=2))
            arrays.update(fold)
            continue
        assert src is not None
        arrays.update(run_fold(src, name, lo, args.steps, args.seed, args.out))
    if args.all or args.pack:
        np.savez_compressed(SHIPPED, models=np.array(list(folds)), **arrays)
        print(f"wrote {SHIPPED} ({SHIPPED.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()

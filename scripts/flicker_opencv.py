#!/usr/bin/env python3
"""Warping error of a translated clip, judged by OpenCV's Farnebäck flow (issue 17).

A third opinion beside `eval-video`'s two flows: the same definition as
`cyclegan_video::FlickerMeter` (Lai et al. 2018, channels averaged, values in [0, 1]), with the
flow from OpenCV instead of ours, so neither of our flows judges itself.

    python3 scripts/flicker_opencv.py INPUT.mp4 OUTPUT.mp4 [OUTPUT2.mp4 ...]

For each output: flow from input frame t to input frame t-1 (and back), the forward-backward
occlusion rule `|f + b|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5` plus "lands inside the frame", the
previous output warped along the flow (bilinear, border repeated), and
`mean over pairs of sum_M (O_t - warp(O_t-1))^2 / (3 |M|)`, leaving out pairs across a shot
change (the median pixel of the warped input off by more than 0.1; `--no-cut-rule` keeps them).
Prints the warping error, the share of pixels scored (within shots, and over all pairs), the
shot changes found and the error over all pixels of all pairs. Needs `opencv-python-headless` and `numpy`
(e.g. `python3 -m venv v && v/bin/pip install opencv-python-headless numpy`); the test suite
does not use it.
"""

import argparse
import sys

import cv2
import numpy as np


def frames(path):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        sys.exit(f"cannot open {path}")
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield bgr


def gray(bgr):
    # Rec. 601 luma like ours (cv2 uses the same weights), in [0, 255] as uint8 for Farnebäck.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def farneback(a, b, args):
    """Flow f with a(x) ~ b(x + f(x))."""
    return cv2.calcOpticalFlowFarneback(
        a,
        b,
        None,
        pyr_scale=0.5,
        levels=args.levels,
        winsize=args.winsize,
        iterations=args.iterations,
        poly_n=args.poly_n,
        poly_sigma=args.poly_sigma,
        flags=0,
    )


def sample(img, flow):
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        img,
        gx + flow[..., 0],
        gy + flow[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def consistent(f, b):
    """The forward-backward rule of `flow::consistent`."""
    h, w = f.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    sx, sy = gx + f[..., 0], gy + f[..., 1]
    inside = (sx >= -0.5) & (sy >= -0.5) & (sx <= w - 0.5) & (sy <= h - 0.5)
    bb = sample(b, f)
    d = (f[..., 0] + bb[..., 0]) ** 2 + (f[..., 1] + bb[..., 1]) ** 2
    mag = (f**2).sum(-1) + (bb**2).sum(-1)
    return inside & (d <= 0.01 * mag + 0.5)


def is_shot_change(i_bgr, prev_bgr, f):
    """The cut rule of `flicker::is_shot_change`: the median pixel of the warped input is off by
    more than 0.1 (mean absolute RGB difference in [0, 1])."""
    e = np.abs(i_bgr.astype(np.float32) - sample(prev_bgr.astype(np.float32), f)).mean(-1)
    return float(np.median(e)) / 255.0 > 0.1


def measure(inp, out, args):
    sums = {"masked": 0.0, "all": 0.0, "share": 0.0, "pairs": 0, "cuts": 0, "scored_pairs": 0}
    prev = None
    for i_bgr, o_bgr in zip(frames(inp), frames(out)):
        h, w = o_bgr.shape[:2]
        if i_bgr.shape[:2] != (h, w):
            i_bgr = cv2.resize(i_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        g, o = gray(i_bgr), o_bgr.astype(np.float32) / 255.0
        if prev is not None:
            pg, po, pi = prev
            f = farneback(g, pg, args)
            se = ((o - sample(po, f)) ** 2).mean(-1)
            sums["all"] += float(se.mean())
            sums["pairs"] += 1
            if args.cut_rule and is_shot_change(i_bgr, pi, f):
                sums["cuts"] += 1
            else:
                m = consistent(f, farneback(pg, g, args))
                if m.any():
                    sums["masked"] += float(se[m].mean())
                    sums["scored_pairs"] += 1
                sums["share"] += float(m.mean())
        prev = (g, o, i_bgr)
    within = max(sums["pairs"] - sums["cuts"], 1)
    return (
        sums["masked"] / max(sums["scored_pairs"], 1),
        sums["share"] / within,
        sums["cuts"],
        sums["all"] / max(sums["pairs"], 1),
        sums["pairs"],
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("outputs", nargs="+")
    # OpenCV's documented example settings, with more levels for large motion.
    ap.add_argument("--levels", type=int, default=5)
    ap.add_argument("--winsize", type=int, default=15)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--poly-n", dest="poly_n", type=int, default=5)
    ap.add_argument("--poly-sigma", dest="poly_sigma", type=float, default=1.2)
    ap.add_argument(
        "--no-cut-rule",
        dest="cut_rule",
        action="store_false",
        help="score pairs across shot changes too (the figure before the cut rule)",
    )
    args = ap.parse_args()
    print(
        "| output | warping error (OpenCV Farnebäck) | pixels scored (of all pairs) "
        "| shot changes | all pixels | pairs |"
    )
    print("|---|---|---|---|---|---|")
    for out in args.outputs:
        e, share, cuts, e_all, pairs = measure(args.input, out, args)
        all_share = share * (pairs - cuts) / max(pairs, 1)
        print(
            f"| {out} | {e:.6f} | {100 * share:.1f}% ({100 * all_share:.1f}%) | {cuts} "
            f"| {e_all:.6f} | {pairs} |"
        )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Translate a video frame by frame with PyTorch and OpenCV, the way a user of the PyTorch
CycleGAN does it without this tool, and time it: the reference for
`cyclegan bench --workload video480p|video480p-temporal|video1080p|video1080p-temporal`.

The pipeline: cv2.VideoCapture decodes each frame, the reference's ResNet-9 generator
(torch_reference.py, N(0, 0.02) weights, batches of 4 frames as `cyclegan translate`) translates
it, and cv2.VideoWriter encodes it (mp4v). With --temporal, each output is blended 0.6 / 0.4
with the previous output warped along OpenCV's Farneback flow of the input frames (what
`--temporal on` does, with OpenCV's flow instead of ours). The clip is generated first: the
same panning colour waves as the Rust workload, `--frames` frames.

  python3 scripts/torch_video_bench.py --width 854 --height 480 --frames 12 [--temporal]

Needs torch, numpy and opencv-python-headless. Prints one JSON line: seconds per frame over the
whole job, and the network's and the smoothing's shares.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def panning_frame(w, h, i):
    """Frame i: smooth colour waves panning 4 px a frame (RGB, uint8)."""
    x = np.arange(w, dtype=np.float32)[None, :] + 4.0 * i
    y = np.arange(h, dtype=np.float32)[:, None]

    def wave(a, b, c):
        return ((np.sin(x * a) + np.cos(y * b) + np.sin(x * c + y * a)) * 40 + 128).astype(np.uint8)

    return np.stack([wave(0.031, 0.023, 0.011), wave(0.017, 0.037, 0.013),
                     wave(0.027, 0.019, 0.007)], axis=-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--temporal", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reference", default="/work/shared/reference")
    a = p.parse_args()

    sys.path.insert(0, a.reference)
    import cv2
    import torch
    import torch_reference as ref

    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    torch.manual_seed(0)
    g = ref.init_normal(ref.ResnetGenerator(64, 9)).eval()

    tmp = tempfile.mkdtemp(prefix="torch-video-bench-")
    clip, out_path = os.path.join(tmp, "clip.mp4"), os.path.join(tmp, "out.mp4")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 30, (a.width, a.height))
    for i in range(a.frames):
        writer.write(cv2.cvtColor(panning_frame(a.width, a.height, i), cv2.COLOR_RGB2BGR))
    writer.release()
    with torch.no_grad():  # warm-up, as the Rust workload's
        g(torch.zeros(1, 3, (a.height + 3) // 4 * 4, (a.width + 3) // 4 * 4))

    start = time.perf_counter()
    network = smoothing = 0.0
    cap = cv2.VideoCapture(clip)
    out = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), 30, (a.width, a.height))
    prev_in = prev_out = None
    done = 0
    while True:
        batch = []
        while len(batch) < a.batch:
            ok, bgr = cap.read()
            if not ok:
                break
            batch.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not batch:
            break
        t = time.perf_counter()
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1
        ph, pw = (-a.height) % 4, (-a.width) % 4
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        with torch.no_grad():
            y = g(x)[:, :, :a.height, :a.width]
        outs = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        network += time.perf_counter() - t
        for frame_in, frame_out in zip(batch, outs):
            if a.temporal:
                t = time.perf_counter()
                gray = cv2.cvtColor(frame_in, cv2.COLOR_RGB2GRAY)
                if prev_in is not None:
                    # Flow from this frame to the previous one: where each pixel came from.
                    flow = cv2.calcOpticalFlowFarneback(gray, prev_in, None, 0.5, 5, 15, 3, 5, 1.2, 0)
                    gx, gy = np.meshgrid(np.arange(a.width, dtype=np.float32),
                                         np.arange(a.height, dtype=np.float32))
                    warped = cv2.remap(prev_out, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
                    frame_out = cv2.addWeighted(frame_out, 0.4, warped, 0.6, 0)
                prev_in, prev_out = gray, frame_out
                smoothing += time.perf_counter() - t
            out.write(cv2.cvtColor(frame_out, cv2.COLOR_RGB2BGR))
            done += 1
    cap.release()
    out.release()
    elapsed = time.perf_counter() - start
    for f in (clip, out_path):
        os.remove(f)
    os.rmdir(tmp)
    print(json.dumps({"impl": "pytorch+opencv", "torch": torch.__version__, "opencv": cv2.__version__,
                      "threads": a.threads, "width": a.width, "height": a.height, "frames": done,
                      "temporal": a.temporal, "frame_s": elapsed / done, "fps": done / elapsed,
                      "network_s": network / done, "smoothing_s": smoothing / done}))


if __name__ == "__main__":
    main()

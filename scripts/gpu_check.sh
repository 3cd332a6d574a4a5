#!/usr/bin/env bash
# One-shot GPU check, run on the GPU machine from the repository root after `scripts/gpu_pack.sh`
# here (that script says what to carry). In one call, within about 6 minutes:
#   1. the device: nvidia-smi, and the Vulkan loader unpacked from .gl/;
#   2. parity: the PyTorch fixtures (tests/data) on --device vulkan (and tch, when built in);
#   3. end to end on each: `cyclegan demo`, a run trained on the GPU, resumed on the CPU and
#      back on the GPU, then `translate` of a folder and of a video on the GPU;
#   4. timings interleaved with the PyTorch reference on the same GPU: the CycleGAN iteration
#      at 256 px / ResNet-9, batch 1 and 4 (PyTorch also under bf16 autocast), inference at
#      256x256 and 1920x1080, ours also with --precision bf16 (PRECISIONS), each with its peak GPU memory (nvidia-smi, sampled every 50 ms,
#      above the idle level, for both); a second round and the wgpu backend while time is left.
#      Round 1 runs before step 3, so that its figures come back even when shader compilation
#      and autotuning eat the budget (BUDGET_S; ROUNDS, CONVS, TORCH_PRECISIONS select more).
# Prints one JSON summary on stdout; logs and every raw result go to $OUT (default /tmp/gpu-check).
set -u
OUT=${OUT:-/tmp/gpu-check}
BUDGET_S=${BUDGET_S:-330}
mkdir -p "$OUT"
START=$(date +%s)
LOG=$OUT/log.txt
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
elapsed() { echo $(($(date +%s) - START)); }
log() { echo "[$(elapsed) s] $*" | tee -a "$LOG" >&2; }
time_left() { [ "$(elapsed)" -lt "$BUDGET_S" ]; }
# Record one JSON object (stdin) with extra fields (python dict literal in $1).
record() { python3 -c "import json,sys
for l in sys.stdin:
    l = l.strip()
    if l.startswith('{'):
        d = json.loads(l); d.update($1); print(json.dumps(d))" >>"$RESULTS"; }

# 1. The device and the Vulkan loader.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# The NVIDIA driver's Vulkan ICD: where this image mounts it, else the loader's own search.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
        export VK_DRIVER_FILES=$icd
        break
    fi
done
log "Vulkan ICD: ${VK_DRIVER_FILES:-none found}"
ls /usr/local/nvidia/share/vulkan/icd.d /etc/vulkan/icd.d /usr/share/vulkan/icd.d >>"$LOG" 2>&1
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p /tmp/xdg && chmod 700 /tmp/xdg
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" >&2
BIN=/tmp/gpu-bin
mkdir -p $BIN
for f in .gpu/*.xz; do xz -dc "$f" >"$BIN/$(basename "$f" .xz)"; done
chmod +x $BIN/*
CG=$BIN/cyclegan
REF=.gpu
PY=${PYTHON:-python3}
FEATURES=$(cat .gpu/features 2>/dev/null)
# A build with the `tch` feature links libtorch: use the machine's PyTorch libraries.
if [[ ,$FEATURES, == *,tch,* ]]; then
    TORCH_LIB=$($PY -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    GPU_BACKENDS="vulkan tch"
else
    GPU_BACKENDS="vulkan"
fi
log "features: $FEATURES; backends timed: $GPU_BACKENDS"
idle_mib=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)

# Run "$@" while sampling GPU memory; sets PEAK_MIB (above idle) and returns the command's status.
with_peak() {
    local samples=/tmp/gpu-mem.$$
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$samples" &
    local sampler=$!
    "$@"
    local rc=$?
    kill $sampler 2>/dev/null
    wait $sampler 2>/dev/null
    PEAK_MIB=$(($(sort -n "$samples" | tail -1) - idle_mib))
    return $rc
}

# 2. Parity on each GPU backend.
for backend in $GPU_BACKENDS; do
    log "parity on $backend"
    t0=$(elapsed)
    # TF32 off: libtorch, like PyTorch, convolves in TF32 on Ampere and later by default, which
    # rounds to 10-bit mantissas (the fixtures are float32).
    NVIDIA_TF32_OVERRIDE=0 CYCLEGAN_TEST_DEVICE=$backend timeout 150 $BIN/parity --test-threads 1 --nocapture \
        >"$OUT/parity_$backend.txt" 2>&1
    parity_rc=$?
    grep -E "test result|iteration|after two|panicked" "$OUT/parity_$backend.txt" >&2
    echo "{\"check\": \"parity_$backend\", \"ok\": $([ $parity_rc = 0 ] && echo true || echo false), \"seconds\": $(($(elapsed) - t0))}" | record "{}"
done

# 3. End to end on each GPU backend, resumed on the CPU and back.
e2e() {
    local d=/tmp/e2e-$DEV
    rm -rf $d
    $CG demo --out $d/demo --iters 20 --size 32 --device $DEV || return 1
    local net="--ngf 8 --blocks 2 --ndf 8 --load-size 36 --crop-size 32 --sample-every 1000"
    $CG train $d/demo/data --out $d/run $net --max-iters 10 --device $DEV || return 2
    $CG train --resume $d/run --max-iters 20 --device cpu || return 3
    $CG train --resume $d/run --max-iters 30 --device $DEV || return 4
    $CG translate --model $d/run --device $DEV $d/demo/data/testA $d/translated -q || return 5
    $CG translate --model $d/run --device $DEV .gpu/clip.mp4 $d/clip.mp4 -q || return 6
    echo "translated: $(ls $d/translated | wc -l) images, clip $(stat -c %s $d/clip.mp4) bytes"
    echo "loss records: $(wc -l <$d/run/losses.jsonl)"
}
# Once per call, after the first round of timings (each backend at most 150 s).
run_end_to_end() {
    [ -z "${E2E_DONE:-}" ] || return 0
    E2E_DONE=1
    for DEV in ${E2E_DEVICES:-$GPU_BACKENDS}; do
        log "end to end on $DEV (demo, train, resume on cpu, resume on $DEV, translate)"
        t0=$(elapsed)
        timeout 150 bash -c "$(declare -f e2e); CG=$CG DEV=$DEV e2e" >"$OUT/e2e_$DEV.txt" 2>&1
        e2e_rc=$?
        tail -3 "$OUT/e2e_$DEV.txt" >&2
        echo "{\"check\": \"end_to_end_$DEV\", \"ok\": $([ $e2e_rc = 0 ] && echo true || echo false), \"rc\": $e2e_rc, \"seconds\": $(($(elapsed) - t0))}" | record "{}"
    done
}

# 4. Timings, interleaved.
ours() { # device workload batch [conv [precision]]
    local conv=${4:-auto} precision=${5:-f32}
    log "ours $1 $2 batch $3 conv $conv precision $precision"
    with_peak timeout 120 $CG bench --device "$1" --workload "$2" --batch "$3" --conv "$conv" \
        --precision "$precision" --warmup 3 --iters 10 --json >/tmp/ours.json 2>>"$LOG"
    record "{'impl': 'cyclegan', 'conv': '$conv', 'round': $ROUND, 'peak_gpu_mib': $PEAK_MIB}" </tmp/ours.json
}
theirs() { # precision mode args...
    local precision=$1
    shift
    log "pytorch $precision $*"
    with_peak timeout 120 $PY scripts/torch_gpu_bench.py --reference $REF --warmup 3 --iters 10 \
        --precision "$precision" "$@" >/tmp/theirs.json 2>>"$LOG"
    record "{'round': $ROUND, 'peak_gpu_sampled_mib': $PEAK_MIB}" </tmp/theirs.json
}
# CONVS: the convolution kernels to time in training (`cyclegan bench --conv`), `auto` being
# what `train` uses on that device. PRECISIONS: ours in mixed precision too (`--precision`).
for ROUND in $(seq 1 "${ROUNDS:-2}"); do
    [ "$ROUND" = 1 ] || run_end_to_end
    time_left || break
    for batch in 1 4; do
        for backend in $GPU_BACKENDS; do
            for conv in ${CONVS:-auto}; do ours $backend train256 $batch $conv; done
            for p in ${PRECISIONS:-bf16}; do ours $backend train256 $batch auto $p; done
        done
        for p in ${TORCH_PRECISIONS:-f32 bf16}; do theirs $p train --size 256 --blocks 9 --batch $batch; done
    done
    for backend in $GPU_BACKENDS; do ours $backend infer256 1; done
    theirs f32 infer --height 256 --width 256
    for backend in $GPU_BACKENDS; do
        ours $backend infer1080p 1
        for p in ${PRECISIONS:-bf16}; do ours $backend infer1080p 1 auto $p; done
    done
    for p in ${TORCH_PRECISIONS:-f32 bf16}; do theirs $p infer --height 1080 --width 1920; done
    if [ "$ROUND" = 1 ] && time_left; then
        ours wgpu train256 1
        for backend in $GPU_BACKENDS; do ours $backend fastcut256 1; done
    fi
done

run_end_to_end

# The summary: checks, then each workload's median of rounds and the ratio to PyTorch f32.
python3 - "$RESULTS" "$OUT/gpu.txt" <<'EOF' | tee "$OUT/summary.json"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
checks = {r["check"]: r["ok"] for r in rows if "check" in r}
groups = {}
for r in rows:
    if "workload" not in r:
        continue
    impl = r.get("impl", "cyclegan")
    tag = "/".join([r.get("device", ""), r.get("conv", "auto"), r.get("precision", "f32")]) if impl == "cyclegan" else r.get("precision", "f32")
    key = (r["workload"], r.get("batch", 1), impl, tag)
    groups.setdefault(key, []).append(r)
timings = []
for (w, b, impl, tag), rs in sorted(groups.items()):
    med = statistics.median(r["median_s"] for r in rs)
    peak = max(r.get("peak_gpu_mib") if impl == "cyclegan" else r.get("peak_gpu_sampled_mib") or 0 for r in rs)
    timings.append({"workload": w, "batch": b, "impl": impl, "backend": tag, "rounds": len(rs),
                    "median_s": round(med, 5), "per_s": round(b / med, 2), "peak_gpu_mib": peak})
base = {(t["workload"], t["batch"]): t["median_s"] for t in timings if t["impl"] == "pytorch" and t["backend"] == "f32"}
for t in timings:
    ref = base.get((t["workload"], t["batch"]))
    t["ratio_to_pytorch_f32"] = round(t["median_s"] / ref, 2) if ref else None
print(json.dumps({"gpu": open(sys.argv[2]).read().strip(), "checks": checks, "timings": timings}, indent=1))
EOF
log "done"

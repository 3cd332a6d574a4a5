#!/usr/bin/env bash
# Time our workloads and PyTorch's side by side, interleaved (ours, torch, ours, torch, ...) so
# that load from other processes hits both alike, and print each round's figures and the ratio
# ours/pytorch, then the median of the per-round ratios.
#
#   scripts/bench_vs_pytorch.sh [ROUNDS] [WORKLOADS...]
#   ROUNDS defaults to 3; WORKLOADS default to: train128 train256 infer256 infer480p
#   (also cut128 fastcut128 cut256 fastcut256: CUT/FastCUT against scripts/torch_cut_bench.py)
#   Environment: THREADS (2), ITERS (5), WARMUP (2), CYCLEGAN (the binary), PYTHON (python3: one
#                with torch),
#                REFERENCE (folder of torch_reference.py), CONV (auto): our convolution kernels,
#                `cyclegan bench --conv` (auto|burn|gemm|winograd|winograd2), e.g. CONV=burn to
#                time burn's own convolution.
set -euo pipefail

rounds=${1:-3}
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(train128 train256 infer256 infer480p)
threads=${THREADS:-2}
iters=${ITERS:-5}
warmup=${WARMUP:-2}
conv=${CONV:-auto}
here=$(cd "$(dirname "$0")" && pwd)
bin=${CYCLEGAN:-${CARGO_TARGET_DIR:-$here/../target}/release/cyclegan}
reference=${REFERENCE:-/work/shared/reference}
py=${PYTHON:-python3}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release, or set CYCLEGAN)" >&2; exit 1; }

ours() {
    "$bin" bench --json --workload "$1" --threads "$threads" --iters "$iters" --warmup "$warmup" \
        --conv "$conv" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["median_s"], r["peak_rss_mib"])'
}

# Run a command; print its standard output, then its peak RSS in MiB (the high-water mark of
# the process and its children, as `bench --json` reports ours) on a last line.
with_peak() {
    python3 -c 'import resource, subprocess, sys
out = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True, check=True).stdout
print(out.strip())
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)' "$@"
}

torch() {
    local out
    case $1 in
    cut128 | fastcut128 | cut256 | fastcut256)
        local size=${1#*cut} blocks=6
        [ "$size" = 256 ] && blocks=9
        out=$(with_peak "$py" -W ignore "$here/torch_cut_bench.py" --model "${1%[0-9][0-9][0-9]}" --size "$size" \
            --blocks "$blocks" --threads "$threads" --iters "$iters" --warmup "$warmup" \
            --reference "$reference") ;;
    train128) out=$(with_peak "$py" -W ignore "$reference/torch_reference.py" bench --size 128 --blocks 6 \
        --threads "$threads" --iters "$iters" --warmup "$warmup") ;;
    train256) out=$(with_peak "$py" -W ignore "$reference/torch_reference.py" bench --size 256 --blocks 9 \
        --threads "$threads" --iters "$iters" --warmup "$warmup") ;;
    infer256) out=$(with_peak "$py" -W ignore "$here/torch_infer_bench.py" --height 256 --width 256 \
        --threads "$threads" --iters "$iters" --warmup "$warmup" --reference "$reference") ;;
    infer480p) out=$(with_peak "$py" -W ignore "$here/torch_infer_bench.py" --height 480 --width 856 \
        --threads "$threads" --iters "$iters" --warmup "$warmup" --reference "$reference") ;;
    *) echo "no PyTorch counterpart for $1" >&2; exit 1 ;;
    esac
    # "seconds MiB": the JSON report's median, then with_peak's last line.
    echo "$out" | python3 -c 'import json,sys; lines=sys.stdin.read().strip().splitlines(); print(json.loads("\n".join(lines[:-1]))["iter_s_median"], lines[-1])'
}

echo "# $(date -u +%FT%TZ) threads=$threads iters=$iters warmup=$warmup conv=$conv rounds=$rounds load=$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %5s %10s %10s %8s %9s %9s\n' workload round ours_s torch_s ratio ours_MiB torch_MiB
for w in "${workloads[@]}"; do
    ratios=()
    for r in $(seq 1 "$rounds"); do
        read -r o mem < <(ours "$w")
        read -r t tmem < <(torch "$w")
        ratio=$(python3 -c "print(f'{$o/$t:.3f}')")
        ratios+=("$ratio")
        printf '%-10s %5d %10.4f %10.4f %8s %9.0f %9.0f\n' "$w" "$r" "$o" "$t" "$ratio" "$mem" "$tmem"
    done
    python3 -c "import statistics,sys; print(f'{sys.argv[1]:<10} median ratio ours/pytorch: {statistics.median(map(float, sys.argv[2:])):.3f}')" "$w" "${ratios[@]}"
done

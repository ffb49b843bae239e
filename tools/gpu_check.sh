#!/usr/bin/env bash
# One prepared run of every check that needs a CUDA GPU, for a machine that has
# one and a python3 with a CUDA torch (e.g. the project's lent H200 machine):
#
#   tools/gpu_check.sh [OUT_DIR]        # logs and JSON go to OUT_DIR (default $OUT or ./gpu_check_out)
#
# 1. the CUDA test variant (pytest -m cuda: CPU vs CUDA agreement per layer,
#    SyncedMemory semantics of Blob on a real device, training on CUDA);
# 2. bench/bench_net.py --device cuda --accel (LeNet, CIFAR10-quick, ResNet-50 b64
#    against hand-written PyTorch eager, peak GPU memory, accelerate() options);
# 3. bench/bench_overhead.py --device cuda (per-layer Python overhead).
#
# Each step has its own time limit so that the whole run ends in about 9
# minutes; a failing step does not stop the next. Packages the machine lacks
# (lmdb, pydot) travel as wheels in .whl/: `make gpu-wheels` fetches them where
# there is network (git-ignored; name .whl in what the call carries); they are
# installed first when that folder exists. Without them, the test modules that
# import lmdb fail to collect and the rest still run.
set -u
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} | tee "$OUT_DIR/machine.txt"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT_DIR/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - start))s"
}

step cuda_tests 240 $PY -m pytest -m cuda tests -q --maxfail=20 --continue-on-collection-errors -p no:cacheprovider -n 4
step bench_net_cuda 240 $PY bench/bench_net.py --device cuda --accel --rounds 9 \
    --json "$OUT_DIR/bench_net_cuda.json"
step bench_overhead_cuda 60 $PY bench/bench_overhead.py --device cuda

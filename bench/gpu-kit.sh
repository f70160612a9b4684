#!/usr/bin/env bash
# Packs what bench/gpu.sh needs on a GPU machine that has no Node.js and no network (a lent device machine gets a
# copy of the working tree and nothing else), in .gpukit/ (ignored by git):
#   node.xz          this machine's node binary
#   runtime.tar.xz   dist/ and the files of node_modules that a run of bench/gpu-bench.js opens
# and in .gl/ the Vulkan loader's Debian package (libvulkan1), which Dawn (the `webgpu` package) needs to find the
# GPU; device images lack it.
# The file list comes from running bench/gpu-bench.js here under strace (wasm standing in for the GPU backend, and
# a webgpu attempt, which loads the WebGPU backend and Dawn's addon before it finds no adapter): what a run opens,
# nothing else (the whole node_modules is 0.9 GB; this is about 10 MB before compression).
#
#   bench/gpu-kit.sh          # needs strace, xz; builds dist/ first
#
# Verified here in a bare copy of the tracked files plus .gpukit only (PATH without node, no node_modules):
# `bench/gpu.sh --quick --backends wasm` ran the raw conv, ResNet-18/50 inference and `convspec train` from the kit.
#
# Then on the device, one command:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig;
#   icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $icd ] && export VK_DRIVER_FILES=$icd;
#   mkdir -p /tmp/kit && xz -dc .gpukit/node.xz > /tmp/kit/node && chmod +x /tmp/kit/node && export PATH=/tmp/kit:$PATH &&
#   tar -xJf .gpukit/runtime.tar.xz && bench/gpu.sh --quick > $OUT/gpu-results.json
# with carry [".gpukit", ".gl"], timeout_s about 500; bench/gpu-results.json is that file, shown by the next
# `npm run bench -- --render-only`. (A run of this kit on the CPU took under a minute here.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in strace xz tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "gpu-kit: $tool is needed (apt-get install -y $tool)" >&2; exit 1; }
done

npm run build >&2
mkdir -p .gpukit
trace="$(mktemp)"
trap 'rm -f "$trace" .gpukit/files.txt' EXIT

echo "gpu-kit: tracing a run of bench/gpu-bench.js (wasm, then webgpu) for the files it opens" >&2
strace -f -qq -e trace=openat,open -o "$trace" node bench/gpu-bench.js --backends wasm,webgpu --quick --python /bin/false >/dev/null
# successful opens of files under node_modules (failed ones end in "= -1 ENOENT …"), as paths relative to here
grep -v ' = -1 ' "$trace" | grep -o "\"$PWD/node_modules/[^\"]*\"" | tr -d '"' | sed "s#^$PWD/##" | sort -u |
  while read -r file; do [ -f "$file" ] && echo "$file"; done >.gpukit/files.txt
# and every .wasm file of the packages a run opened: tfjs's wasm backend locates all its variants (require.resolve,
# which stats without opening) before it reads the one this machine runs
sed -E 's#^(node_modules/(@[^/]+/)?[^/]+)/.*#\1#' .gpukit/files.txt | sort -u | while read -r package; do
  find "$package" -name '*.wasm' -type f
done >>.gpukit/files.txt
# and each such package's main entry, which code may locate with require.resolve without loading it (chevrotain's:
# src/parser/chevrotain.ts finds the single-file build beside it)
sed -E 's#^node_modules/((@[^/]+/)?[^/]+)/.*#\1#' .gpukit/files.txt | grep -v '^dist/' | sort -u |
  node -e "const path = require('node:path'); for (const name of require('node:fs').readFileSync(0, 'utf8').split('\n').filter(Boolean)) { try { console.log(path.relative(process.cwd(), require.resolve(name, { paths: [process.cwd()] }))); } catch {} }" >>.gpukit/files.txt
find dist -type f ! -name '*.map' ! -name '*.d.ts' >>.gpukit/files.txt
sort -u -o .gpukit/files.txt .gpukit/files.txt
echo "gpu-kit: $(wc -l <.gpukit/files.txt) files" >&2

tar -cf - -T .gpukit/files.txt | xz -T0 -6 >.gpukit/runtime.tar.xz.tmp
mv .gpukit/runtime.tar.xz.tmp .gpukit/runtime.tar.xz
xz -T0 -6 -c "$(command -v node)" >.gpukit/node.xz.tmp
mv .gpukit/node.xz.tmp .gpukit/node.xz

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/gpu-kit-apt/partial
  apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-kit-apt)
  if apt-get "${apt_options[@]}" update >/dev/null 2>&1 && (cd .gl && apt-get "${apt_options[@]}" download libvulkan1 >/dev/null 2>&1); then
    echo "gpu-kit: .gl/$(cd .gl && ls libvulkan1_*.deb)" >&2
  else
    echo "gpu-kit: could not download libvulkan1 into .gl/ (apt-get): without it Dawn finds no GPU on the device" >&2
  fi
fi
ls -la .gpukit .gl >&2
echo "gpu-kit: carry .gpukit and .gl (about $(du -sm .gpukit .gl | awk '{s += $1} END {print s}') MB; the working tree adds $(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1) MB, of 64 MiB)" >&2

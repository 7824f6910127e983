#!/usr/bin/env bash
# Packs the installed MAX for a Python 3.12 GPU machine that has torch and transformers
# but no MAX and no network, in parts small enough to send one at a time.
#
#   tests/gpu_bundle.sh OUTDIR [PART_MB]
#
# Writes OUTDIR/max-site.tar.xz.part-aa, -ab, ... (a site-packages folder: max, its
# libraries and Mojo's standard library, pydantic). On the GPU machine:
#
#   mkdir -p /tmp/site && cat max-site.tar.xz.part-* | xz -d | tar -x -C /tmp/site
#   PYTHONPATH=/tmp/site:$PWD python3 tests/gpu_check.py
#
# Left out to save space: the `mojo` CLI (a stub stands in; MAX's graph compiler does not
# need it, but importing max compiles one small Mojo module with it, so that module's
# compiled form is copied from this machine) and the multi-GPU (NVSHMEM, NIXL) libraries.
set -euo pipefail
out=${1:?usage: gpu_bundle.sh OUTDIR [PART_MB]}
part_mb=${2:-60}
version=$(python3 -c "import importlib.metadata as m; print(m.version('max'))")
mojo_version=$(python3 -c "import importlib.metadata as m; print(m.version('mojo-compiler'))")
site_packages=$(python3 -c "import max.driver, pathlib; print(pathlib.Path(max.driver.__file__).parents[2])")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

platforms=()
for p in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$work/wheels" \
  "max==$version" "max-core==$version" "max-mojo-libs==$version" \
  "mojo-compiler==$mojo_version" "mojo-compiler-mojo-libs==$mojo_version" \
  msgspec taskgroup exceptiongroup pydantic pydantic-core annotated-types typing-inspection
python3 -m pip install -q --no-deps --no-compile --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --target "$work/site" "$work"/wheels/*.whl

site=$work/site
rm -rf "$site/modular/bin/mojo" "$site/modular/lib/nixl"
printf '#!/bin/sh\necho "mojo CLI not shipped in this bundle" >&2\nexit 1\n' > "$site/modular/bin/mojo"
chmod +x "$site/modular/bin/mojo"
python3 -c "import max.nn"  # compiles that module here if it is not yet
mkdir -p "$site/max/_kv_cache_ops/__mojocache__"
cp "$site_packages"/max/_kv_cache_ops/__mojocache__/*.so "$site/max/_kv_cache_ops/__mojocache__/"

mkdir -p "$out"
tar -C "$site" -cf - . | xz -T0 -6 | split -b "${part_mb}M" - "$out/max-site.tar.xz.part-"
ls -la "$out"

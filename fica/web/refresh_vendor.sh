#!/usr/bin/env bash
# Re-fetch the built browser libraries the live viewer uses into fica/web/vendor/ with `npm pack` (the Space
# cannot run npm, so these files are committed). Only the files the page loads are kept, with their licences:
#   three/        three.js: the module build (three.module.min.js imports three.core.min.js), OrbitControls
#                 (mouse orbit) and postprocessing/Pass.js (Spark imports its FullScreenQuad); MIT.
#   spark/        Spark's minified ES module (its sort worker and wasm are inlined in it); MIT.
#   face_mesh/    @mediapipe/face_mesh: the loader, the SIMD wasm build with its glue, the packed model and the
#                 graph (every browser with WebGL 2 has wasm SIMD, so the non-SIMD build is left out); Apache-2.0.
set -euo pipefail
THREE_VERSION=0.180.0   # Spark 2.2.0's peer dependency is three >= 0.180
SPARK_VERSION=2.2.0
FACE_MESH_VERSION=0.4.1633559619  # 0.4.1657299874 aborts at start: mediapipe issue #3504
here="$(cd "$(dirname "$0")" && pwd)"
vendor="$here/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "three@$THREE_VERSION" "@sparkjsdev/spark@$SPARK_VERSION" "@mediapipe/face_mesh@$FACE_MESH_VERSION" >/dev/null
for tgz in *.tgz; do mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"; done
rm -rf "$vendor" && mkdir -p "$vendor/three" "$vendor/spark" "$vendor/face_mesh"
t="three-$THREE_VERSION/package"
cp "$t/build/three.module.min.js" "$t/build/three.core.min.js" "$t/LICENSE" "$vendor/three/"
cp "$t/examples/jsm/controls/OrbitControls.js" "$t/examples/jsm/postprocessing/Pass.js" "$vendor/three/"
s="sparkjsdev-spark-$SPARK_VERSION/package"
cp "$s/dist/spark.module.min.js" "$s/LICENSE" "$vendor/spark/"
f="mediapipe-face_mesh-$FACE_MESH_VERSION/package"
cp "$f/face_mesh.js" "$f/face_mesh.binarypb" "$f/face_mesh_solution_packed_assets_loader.js" \
   "$f/face_mesh_solution_packed_assets.data" "$f/face_mesh_solution_simd_wasm_bin.js" \
   "$f/face_mesh_solution_simd_wasm_bin.wasm" "$f/package.json" "$vendor/face_mesh/"
chmod 644 "$vendor"/*/*
echo "three $THREE_VERSION, spark $SPARK_VERSION, face_mesh $FACE_MESH_VERSION -> $vendor"

#!/usr/bin/env bash
# Fetch the official TensorRT Python *bindings* wheels (no native libraries) and build a stub of the
# native libraries they link against, so tests can import them and read the real API surface of each
# TensorRT version without a GPU. The stub's factories return NULL: never call them.
# Idempotent and quick (~4 MB, skipped when present). Usage: scripts/fetch_trt_bindings.sh [DEST]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.cache/trt-bindings}"
WHEELS="tensorrt-bindings==8.6.1 tensorrt-cu12-bindings==10.13.3.9 tensorrt-cu12-bindings==10.16.1.11 tensorrt-cu13-bindings==11.4.0.106"
mkdir -p "$DEST/wheels" "$DEST/lib"

for spec in $WHEELS; do
  name="${spec%%==*}"; version="${spec##*==}"; target="$DEST/${name//-/_}-$version"
  [ -f "$target/tensorrt_bindings/__init__.py" ] && continue
  if ! python -m pip download -q --no-deps --only-binary :all: -d "$DEST/wheels" "$spec"; then
    echo "fetch_trt_bindings: could not download $spec (offline?); the API-surface tests will skip" >&2
    continue
  fi
  wheel=$(ls "$DEST/wheels/${name//-/_}-$version-"*.whl | head -n 1)
  rm -rf "$target.tmp" && python -m zipfile -e "$wheel" "$target.tmp" && mv "$target.tmp" "$target"
done

# The undefined TensorRT symbols of the extension modules (`nm -D --undefined-only`), defined as no-ops.
# 8.6 also links the UFF/Caffe parsers (C++ symbols, written here by their mangled names).
stub="$DEST/lib/trt_stub.c"
cat > "$stub" <<'C'
void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
void *getBuilderPluginRegistry(int capability) { return 0; }
int initLibNvInferPlugins(void *logger, const char *ns) { return 0; }
void *_ZN11nvuffparser15createUffParserEv(void) { return 0; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void) {}
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return 0; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
C
for major in 8 10 11; do
  for lib in libnvinfer libnvinfer_plugin libnvonnxparser libnvparsers; do
    so="$DEST/lib/$lib.so.$major"
    [ -f "$so" ] || gcc -shared -fPIC -Wl,-soname,"$lib.so.$major" -o "$so" "$stub"
  done
done
echo "fetch_trt_bindings: $(ls -d "$DEST"/tensorrt*_bindings-* 2>/dev/null | wc -l) bindings in $DEST"

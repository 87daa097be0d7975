#!/bin/bash
# Install what building and testing the engine needs on Debian 12 (run as root).
# Every package is a Debian package by name (see DESIGN.md "Dependencies").
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libcjson-dev libpcre2-dev python3
      libvulkan-dev mesa-vulkan-drivers glslc glslang-tools spirv-tools vulkan-tools vulkan-validationlayers
      ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd clinfo libclblast-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

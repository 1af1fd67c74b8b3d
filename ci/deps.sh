#!/usr/bin/env bash
# ci/deps.sh - install the Debian packages rdmakit needs, only those that are missing.
#
# Usage: ci/deps.sh [build|lab|all]   (default: all)
#   build  cgo toolchain inputs: libfabric, rdma-core (libibverbs, librdmacm), pkg-config, tools
#   lab    what the SoftRoCE VM needs on the host: qemu-system-x86, busybox-static, xz-utils
# Runs apt-get as root (or through sudo when not root). Prints nothing when all is present.
set -euo pipefail

build_pkgs="libfabric-dev libfabric-bin libibverbs-dev librdmacm-dev rdma-core ibverbs-utils
  ibverbs-providers rdmacm-utils perftest pkg-config gcc iproute2"
lab_pkgs="qemu-system-x86 busybox-static xz-utils cpio iproute2"

case ${1:-all} in
  build) want=$build_pkgs ;;
  lab)   want=$lab_pkgs ;;
  all)   want="$build_pkgs $lab_pkgs" ;;
  *) echo "usage: $0 [build|lab|all]" >&2; exit 2 ;;
esac

missing=()
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "ci/deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "ci/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/bin/sh
# Installs the Debian packages xkeep's build, tests, benchmarks and demo use,
# when any is missing. Idempotent, and quiet when everything is there.
set -eu

packages="clang llvm libbpf-dev linux-libc-dev gcc libc6-dev make iproute2 ethtool
keepalived qemu-system-x86 busybox-static kmod cpio"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
# keepalived is a test peer only: never let its package start a daemon here.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
if command -v systemctl >/dev/null 2>&1; then
	$sudo systemctl disable --now keepalived >/dev/null 2>&1 || true
fi

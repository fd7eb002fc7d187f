#!/usr/bin/env bash
# Installs the host tools the image build and boot test need (Debian 12), idempotently:
# mkosi 24 and qemu-system-x86 from bookworm-backports, plus zstd, curl, ovmf, kmod (depmod) and cpio.
# The backports source is added only when no configured source already names it.
set -euo pipefail

need=()
command -v mkosi >/dev/null && mkosi --version | grep -q '^mkosi 2[4-9]' || need+=(mkosi)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v zstd >/dev/null || need+=(zstd)
command -v curl >/dev/null || need+=(curl)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -e /usr/share/OVMF/OVMF_CODE.fd ] || need+=(ovmf)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mcopy >/dev/null || need+=(mtools)
# mkosi runs depmod for the image's kernel modules; a minimal host may lack kmod.
command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] || need+=(kmod)
# The initrd mkosi makes for the kernel modules is a cpio archive.
command -v cpio >/dev/null || need+=(cpio)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: need root to install: ${need[*]}" >&2
    exit 1
fi
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# mkosi and qemu from backports (bookworm's mkosi 14 cannot build here: notes in docs/image.md);
# the rest from bookworm. mkosi pulls systemd 254 (systemd-repart) from backports as well.
apt-get install -y -qq --no-install-recommends -t bookworm-backports mkosi qemu-system-x86 \
    systemd systemd-container
apt-get install -y -qq --no-install-recommends zstd curl ovmf bubblewrap mtools dosfstools \
    debian-archive-keyring apt dpkg-dev erofs-utils cryptsetup-bin kmod cpio

#!/usr/bin/env bash
# Build the mininova tiny guest image: examples/images/out/tiny.qcow2
#
# Offline apart from Debian packages (apt-get download / install).  No root
# mounts, no loop devices: the boot partition is a FAT image filled with mtools,
# made bootable with syslinux (mtools installer) and placed behind an MBR.
#
#   examples/images/build-tiny-image.sh           # build (re-uses out/cache)
#   examples/images/build-tiny-image.sh --force   # rebuild even if up to date
#
# The guest runs Dropbear (Debian's dropbear-bin, dynamically linked) as its SSH
# server; the shared libraries it needs are found with readelf (NEEDED entries,
# recursively) in the .debs of SSH_PKGS.  They are not in the initramfs but in
# /ssh/ on the boot partition, which /init mounts read-only and runs them from
# (the initramfs has symlinks into it): syslinux reads the initramfs through
# the BIOS, slow under TCG, and an initramfs twice the size took seconds
# longer; the kernel's virtio driver reads /ssh/ in no time.  The qcow2 is
# compressed, so the uncompressed files cost little space.
#
# Environment:
#   KERNEL_FLAVOUR  Debian kernel flavour, default "amd64" (has ahci for q35
#                   SATA CD-ROMs); "cloud-amd64" is smaller but lacks ahci.
#   OUT_DIR         output directory (default examples/images/out)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${OUT_DIR:-$HERE/out}"
CACHE="$OUT_DIR/cache"
WORK="$OUT_DIR/build"
IMAGE="$OUT_DIR/tiny.qcow2"
KERNEL_FLAVOUR="${KERNEL_FLAVOUR:-amd64}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { echo "build-tiny-image: $*"; }
die() { echo "build-tiny-image: ERROR: $*" >&2; exit 1; }

# Kernel modules wanted in the initramfs (dependencies are added automatically).
MODULES=(
    virtio_pci virtio_blk virtio_net virtio_scsi virtio_console
    libata ata_piix ahci scsi_mod sd_mod sr_mod cdrom
    isofs vfat nls_cp437 nls_ascii nls_utf8
    button evdev
)

# Debian packages holding Dropbear and every shared library it needs (the build
# fails, naming the library, if one is missing here).
SSH_PKGS=(dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10)
# Dropbear programs: path in dropbear-bin -> path of its symlink in the initramfs
# (the file itself goes to /ssh/ on the boot partition).
SSH_BINS=(usr/sbin/dropbear:sbin/dropbear usr/bin/dropbearkey:bin/dropbearkey)

# --- build tools --------------------------------------------------------------
TOOLS_PKGS=(mtools dosfstools syslinux syslinux-common fdisk cpio qemu-utils binutils)
need_install=()
for p in "${TOOLS_PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || need_install+=("$p")
done
if [ "${#need_install[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${need_install[*]}); install them as root"
    log "installing build tools: ${need_install[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -y -q -o DPkg::Lock::Timeout=600 install --no-install-recommends "${need_install[@]}" >/dev/null; then
        apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null
        apt-get -y -q -o DPkg::Lock::Timeout=600 install --no-install-recommends "${need_install[@]}" >/dev/null
    fi
fi
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$MBR_BIN" ] || die "$MBR_BIN missing (syslinux-common)"

# --- Debian packages: kernel + busybox + dropbear -------------------------------
mkdir -p "$CACHE"
download() {  # download PKG -> prints path of the .deb in the cache
    local pkg="$1" deb
    deb="$(ls "$CACHE/${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        (cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1) || {
            apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1 || true
            (cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1)
        } || die "apt-get download $pkg failed"
        deb="$(ls "$CACHE/${pkg}"_*.deb | head -n1)"
    fi
    echo "$deb"
}

resolve_kernel() {
    apt-cache depends "linux-image-$KERNEL_FLAVOUR" 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}
KPKG="$(resolve_kernel)"
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ]; then
    apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1 || true
    KPKG="$(resolve_kernel)"
fi
if [ -z "$KPKG" ]; then
    # apt lists not there yet, or an older cache: fall back to what we have
    KPKG="$(ls "$CACHE" 2>/dev/null | sed -n "s/^\(linux-image-[0-9][^_]*-$KERNEL_FLAVOUR\)_.*\.deb$/\1/p" | tail -n1)"
fi
[ -n "$KPKG" ] || die "cannot resolve the linux-image-$KERNEL_FLAVOUR kernel package (run apt-get update)"
KDEB="$(download "$KPKG")"
BBDEB="$(download busybox-static)"
SSH_DEBS=()
for p in "${SSH_PKGS[@]}"; do SSH_DEBS+=("$(download "$p")"); done

# Inputs of the image: the .debs, every file under tiny/ and this script.
STAMP="$( { sha256sum "$KDEB" "$BBDEB" "${SSH_DEBS[@]}" "$0"
            (cd "$HERE" && find tiny -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
          } | sed 's/  .*\// /' | sha256sum | cut -c1-16)"
if [ "$FORCE" = 0 ] && [ -f "$IMAGE" ] && [ "$(cat "$OUT_DIR/tiny.stamp" 2>/dev/null)" = "$STAMP" ]; then
    log "up to date: $IMAGE"
    exit 0
fi

rm -rf "$WORK"
mkdir -p "$WORK/kernel" "$WORK/bb" "$WORK/ssh" "$WORK/root"
log "extracting $(basename "$KDEB")"
dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$BBDEB" "$WORK/bb"
for d in "${SSH_DEBS[@]}"; do dpkg-deb -x "$d" "$WORK/ssh"; done
KVER="$(ls "$WORK/kernel/lib/modules" | head -n1)"
VMLINUZ="$WORK/kernel/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no vmlinuz in $KDEB"
MODDIR="$WORK/kernel/lib/modules/$KVER"

# --- initramfs ----------------------------------------------------------------
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,etc/dropbear,proc,sys,dev,tmp,run,root,mnt/config,mnt/boot,lib/modules}
cp "$WORK/bb/bin/busybox" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
install -m 0755 "$HERE/tiny/init" "$R/init"
install -m 0755 "$HERE/tiny/udhcpc.script" "$R/etc/udhcpc.script"
echo "tiny" >"$R/etc/hostname"
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"
echo "/bin/sh" >"$R/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$R/etc/nsswitch.conf"
install -m 0644 "$HERE/tiny/profile" "$R/etc/profile"
chmod 0700 "$R/root"

# Dropbear and exactly the shared libraries it needs (NEEDED, recursively),
# into S (-> /ssh/ on the boot partition, mounted at /mnt/boot in the guest):
# S/<program>, S/lib/<soname>.  The initramfs gets symlinks: /sbin/dropbear,
# /bin/dropbearkey, the ELF interpreter and /lib/x86_64-linux-gnu (a library
# directory ld.so searches by default) -> /mnt/boot/ssh/...
SSH_TREE="$WORK/ssh"
S="$WORK/sshfiles"
SSH_MNT=/mnt/boot/ssh
mkdir -p "$S/lib" "$R/lib"
ln -s "$SSH_MNT/lib" "$R/lib/x86_64-linux-gnu"
in_tree() {  # in_tree PATH: PATH inside the extracted .debs, symlinks resolved there
    local p="$SSH_TREE/$1" t n=0
    while [ -L "$p" ] && [ "$n" -lt 20 ]; do
        t="$(readlink "$p")"
        case "$t" in /*) p="$SSH_TREE$t" ;; *) p="$(dirname "$p")/$t" ;; esac
        n=$((n + 1))
    done
    [ -f "$p" ] && echo "$p"
}
declare -A LIBSEEN=()
add_needed() {  # add_needed ELF: copy the libraries ELF needs into $S/lib
    local elf="$1" lib d src
    for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
        [ -n "${LIBSEEN[$lib]:-}" ] && continue
        LIBSEEN[$lib]=1
        src=""
        for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib usr/lib; do
            src="$(in_tree "$d/$lib")" && break
        done
        [ -n "$src" ] || die "$lib (needed by $(basename "$elf")) is in none of: ${SSH_PKGS[*]}"
        install -m 0755 "$src" "$S/lib/$lib"
        add_needed "$S/lib/$lib"
    done
}
for b in "${SSH_BINS[@]}"; do
    src="$(in_tree "${b%%:*}")" || die "${b%%:*} not in dropbear-bin"
    prog="$(basename "$src")"
    install -m 0755 "$src" "$S/$prog"
    ln -s "$SSH_MNT/$prog" "$R/${b#*:}"
    add_needed "$S/$prog"
    interp="$(readelf -l "$src" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')"
    if [ -n "$interp" ] && [ ! -L "$R$interp" ] && [ "$(dirname "$interp")" != /lib/x86_64-linux-gnu ]; then
        [ -f "$S/lib/$(basename "$interp")" ] || die "no $interp for ${b%%:*}"
        mkdir -p "$R$(dirname "$interp")"
        ln -s "$SSH_MNT/lib/$(basename "$interp")" "$R$interp"
    fi
done
log "dropbear $(dpkg-deb -f "${SSH_DEBS[0]}" Version) + libraries: ${!LIBSEEN[*]} ($(du -sk "$S" | cut -f1) KiB in /ssh/)"

# Module dependency resolution from each .ko's modinfo "depends=" (no depmod
# needed); writes the load order, dependencies first.
declare -A MODPATH=() SEEN=()
while IFS= read -r f; do
    n="$(basename "$f")"; n="${n%%.ko*}"; MODPATH["${n//-/_}"]="$f"
done < <(find "$MODDIR" -name '*.ko*')
ORDER=()
add_module() {
    local m="${1//-/_}" f deps d
    [ -n "${SEEN[$m]:-}" ] && return 0
    SEEN[$m]=1
    f="${MODPATH[$m]:-}"
    if [ -z "$f" ]; then
        # built into this kernel (or absent): nothing to load
        grep -qw "$m" "$MODDIR/modules.builtin" 2>/dev/null || log "note: module $m not found (built in?)"
        return 0
    fi
    deps="$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n1)"
    for d in ${deps//,/ }; do add_module "$d"; done
    ORDER+=("$m")
    case "$f" in
        *.ko) cp "$f" "$R/lib/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$f" >"$R/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$R/lib/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$f" >"$R/lib/modules/$m.ko" ;;
    esac
}
for m in "${MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" >"$R/etc/modules.order"
log "kernel $KVER, ${#ORDER[@]} modules: ${ORDER[*]}"

(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -9 >"$WORK/initrd.gz"

# --- boot partition (FAT) + MBR disk ---------------------------------------------
cat >"$WORK/syslinux.cfg" <<'EOF'
DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=tty0 console=ttyS0,115200n8 panic=10 mitigations=off
EOF

PART_START=2048                                   # sectors (1 MiB)
need_kib=$(( ( $(stat -c %s "$VMLINUZ") + $(stat -c %s "$WORK/initrd.gz") ) / 1024 + $(du -sk "$S" | cut -f1) ))
PART_MIB=$(( need_kib / 1024 + 4 ))               # + room for FAT, ldlinux
[ "$PART_MIB" -ge 16 ] || PART_MIB=16
PART_SECTORS=$(( PART_MIB * 2048 ))
FAT="$WORK/part.img"
DISK="$WORK/disk.img"

rm -f "$FAT" "$DISK"
truncate -s "${PART_MIB}M" "$FAT"
mkfs.fat -F 16 -h "$PART_START" -n TINYBOOT "$FAT" >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$FAT" "$VMLINUZ" ::/vmlinuz
mcopy -i "$FAT" "$WORK/initrd.gz" ::/initrd.gz
mmd -i "$FAT" ::/ssh ::/ssh/lib
for f in "$S"/*; do [ -f "$f" ] && mcopy -i "$FAT" "$f" "::/ssh/$(basename "$f")"; done
for f in "$S"/lib/*; do mcopy -i "$FAT" "$f" "::/ssh/lib/$(basename "$f")"; done
mcopy -i "$FAT" "$WORK/syslinux.cfg" ::/syslinux.cfg
syslinux --install --offset 0 "$FAT"

truncate -s $(( (PART_START + PART_SECTORS) * 512 )) "$DISK"
printf 'label: dos\nstart=%d, size=%d, type=6, bootable\n' "$PART_START" "$PART_SECTORS" \
    | sfdisk --quiet "$DISK"
dd if="$FAT" of="$DISK" bs=512 seek="$PART_START" conv=notrunc,sparse status=none
dd if="$MBR_BIN" of="$DISK" bs=440 count=1 conv=notrunc status=none

qemu-img convert -q -c -f raw -O qcow2 "$DISK" "$IMAGE.tmp"
mv -f "$IMAGE.tmp" "$IMAGE"
echo "$STAMP" >"$OUT_DIR/tiny.stamp"
rm -rf "$WORK"
log "built $IMAGE ($(du -h "$IMAGE" | cut -f1) on disk, virtual $(( (PART_START + PART_SECTORS) / 2048 )) MiB, kernel $KVER)"

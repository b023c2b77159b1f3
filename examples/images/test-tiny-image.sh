#!/usr/bin/env bash
# Boot examples/images/out/tiny.qcow2 under libvirt (TCG) and check it:
#   1. identity lines from a config-2 ISO appear on the serial log,
#   2. `virsh reboot` reboots it, `virsh shutdown` (ACPI power button) powers it off,
#   3. user_data "poweroff-after-boot" makes it power itself off.
# Needs a running libvirtd (scripts/host-setup.sh).  Cleans up its domains.
#
#   examples/images/test-tiny-image.sh [--memory MIB] [--machine pc|q35] [--network NAME]
# (default: 128 MiB, pc, user-mode networking; Debian kernels need >= 96 MiB)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${IMAGE:-$HERE/out/tiny.qcow2}"
URI="${LIBVIRT_URI:-qemu:///system}"
MEM=128
MACHINE=pc
NETWORK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --memory) MEM="$2"; shift 2 ;;
        --machine) MACHINE="$2"; shift 2 ;;
        --network) NETWORK="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -f "$IMAGE" ] || { echo "no $IMAGE: run build-tiny-image.sh first" >&2; exit 1; }
CDBUS=ide; [ "$MACHINE" = q35 ] && CDBUS=sata
NIC="<interface type='user'><model type='virtio'/></interface>"
[ -n "$NETWORK" ] && NIC="<interface type='network'><source network='$NETWORK'/><model type='virtio'/></interface>"

T="$(mktemp -d /var/tmp/tiny-test.XXXXXX)"
chmod 0755 "$T"
DOMAINS=()
cleanup() {
    for d in "${DOMAINS[@]}"; do
        virsh -c "$URI" destroy "$d" >/dev/null 2>&1 || true
        virsh -c "$URI" undefine "$d" >/dev/null 2>&1 || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ssh-keygen may not be installed: any base64 blob shaped like an RSA key will do.
KEY_B64="$( { printf '\000\000\000\007ssh-rsa\000\000\000\003\001\000\001\000\000\000\101\000'; printf 'mininova-tiny-image-test-key-%036d' 0; } | base64 -w0)"
EXPECT_FP="$(echo "$KEY_B64" | base64 -d | md5sum | cut -c1-32 | sed 's/../&:/g; s/:$//')"

fail=0
check() {  # check LOG REGEX DESCRIPTION  (the serial log has CRLF line ends)
    if tr -d '\r' <"$1" | grep -Eq "$2"; then echo "  ok: $3"; else echo "  FAIL: $3"; fail=1; fi
}

wait_for() {  # wait_for LOG REGEX TIMEOUT -> seconds taken, or fails
    local t0=$SECONDS
    while ! tr -d '\r' <"$1" 2>/dev/null | grep -Eq "$2"; do
        [ $((SECONDS - t0)) -ge "$3" ] && return 1
        sleep 0.5
    done
    echo $((SECONDS - t0))
}

wait_for_count() {  # wait_for_count LOG REGEX N TIMEOUT
    local t0=$SECONDS
    while [ "$(tr -d '\r' <"$1" 2>/dev/null | grep -Ec "$2")" -lt "$3" ]; do
        [ $((SECONDS - t0)) -ge "$4" ] && return 1
        sleep 0.5
    done
}

dom_state() { virsh -c "$URI" domstate "$1" 2>/dev/null | head -n1; }

wait_shutoff() {  # wait_shutoff NAME TIMEOUT (transient domains vanish)
    local t0=$SECONDS st
    while :; do
        st="$(dom_state "$1")"
        case "$st" in ""|"shut off") return 0 ;; esac
        [ $((SECONDS - t0)) -ge "$2" ] && return 1
        sleep 0.5
    done
}

boot() {  # boot NAME USERDATA -> starts a transient domain, serial log $T/NAME.log
    local name="$1" ud="$2" uuid
    uuid="$(cat /proc/sys/kernel/random/uuid)"
    mkdir -p "$T/$name-cd/openstack/latest"
    printf '{"uuid": "%s", "name": "%s", "hostname": "%s", "launch_index": 0, "availability_zone": "nova", "public_keys": {"testkey": "ssh-rsa %s test@host\\n"}, "meta": {}}\n' \
        "$uuid" "$name" "$name.novalocal" "$KEY_B64" >"$T/$name-cd/openstack/latest/meta_data.json"
    printf '%s\n' "$ud" >"$T/$name-cd/openstack/latest/user_data"
    genisoimage -quiet -V config-2 -J -R -o "$T/$name.iso" "$T/$name-cd"
    qemu-img create -q -f qcow2 -F qcow2 -b "$IMAGE" "$T/$name.qcow2"
    : >"$T/$name.log"
    cat >"$T/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  <memory unit='MiB'>$MEM</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='$MACHINE'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$T/$name.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$T/$name.iso'/>
      <target dev='hdc' bus='$CDBUS'/>
      <readonly/>
    </disk>
    $NIC
    <serial type='file'><source path='$T/$name.log'/><target port='0'/></serial>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='vga'/></video>
  </devices>
</domain>
EOF
    DOMAINS+=("$name")
    virsh -c "$URI" create "$T/$name.xml" >/dev/null
}

echo "[$(date +%T)] == boot + identity lines (${MEM} MiB, machine $MACHINE, network ${NETWORK:-user}, TCG)"
N="tinytest-$$-a"
boot "$N" ""
if secs="$(wait_for "$T/$N.log" '^boot done' 120)"; then
    echo "  booted to 'boot done' in ~${secs}s after virsh create"
else
    echo "  FAIL: no 'boot done' within 120s"; fail=1
fi
check "$T/$N.log" '^mininova tiny guest' "banner"
check "$T/$N.log" "^hostname=$N\.novalocal\$" "hostname line"
check "$T/$N.log" '^uuid=[0-9a-f-]{36}$' "uuid line"
check "$T/$N.log" "^ssh_key_fingerprint=$EXPECT_FP\$" "fingerprint line ($EXPECT_FP)"
check "$T/$N.log" '^ip=' "ip line"
grep -E '^(mininova|hostname=|uuid=|ssh_key|ip=|boot done|power)' "$T/$N.log" | tr -d '\r' | sed 's/^/    | /' || true

echo "[$(date +%T)] == virsh reboot (ACPI power button + libvirt restart)"
virsh -c "$URI" reboot "$N" >/dev/null
if wait_for_count "$T/$N.log" '^boot done' 2 120 >/dev/null; then
    echo "  ok: booted a second time after virsh reboot"
else
    echo "  FAIL: no second boot after virsh reboot"; fail=1
fi

echo "[$(date +%T)] == virsh shutdown (ACPI power button)"
virsh -c "$URI" shutdown "$N" >/dev/null
if wait_shutoff "$N" 60; then echo "  ok: powered off after virsh shutdown"; else echo "  FAIL: still $(dom_state "$N")"; fail=1; fi
check "$T/$N.log" '^power button pressed' "guest saw the power button"

echo "[$(date +%T)] == poweroff-after-boot"
N="tinytest-$$-b"
boot "$N" "poweroff-after-boot"
if wait_shutoff "$N" 120; then echo "  ok: powered itself off"; else echo "  FAIL: still $(dom_state "$N")"; fail=1; fi
check "$T/$N.log" '^powering off' "'powering off' printed"
grep -E '^(hostname=|powering off)' "$T/$N.log" | tr -d '\r' | sed 's/^/    | /' || true

if [ "$fail" = 0 ]; then echo "tiny image: all checks passed"; else echo "tiny image: FAILED"; exit 1; fi

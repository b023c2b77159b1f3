#!/usr/bin/env bash
# Boot the tiny guest image with plain QEMU (TCG, no libvirt) and check its SSH
# server:
#   - a config-2 ISO laid out like mininova's (openstack/{2012-08-10,latest}/
#     meta_data.json, network_data.json, vendor_data.json) holding two ed25519
#     public keys made here;
#   - the console shows the identity lines and "sshd: listening on 22";
#   - `ssh -i <second key> root@127.0.0.1 'cat /etc/hostname; echo ok'` prints
#     the hostname and ok (so all keys were installed, not only the first);
#   - a key that is not on the config drive is refused, and the server offers
#     public-key authentication only.
# Needs qemu-system-x86_64, qemu-img, ssh, ssh-keygen and genisoimage (or
# mkisofs / xorriso).  Uses the image read-only (a qcow2 overlay in a temp dir).
#
#   examples/images/check-ssh.sh
# Environment: IMAGE (default examples/images/out/tiny.qcow2), PORT (host port
# forwarded to the guest's 22; default: a free one), NAME (hostname, vm1),
# MEM (MiB, 128), TIMEOUT (seconds to wait for the boot, 120), KEEP=1 keeps
# the temp dir (serial log, keys).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${IMAGE:-$HERE/out/tiny.qcow2}"
NAME="${NAME:-vm1}"
MEM="${MEM:-128}"
TIMEOUT="${TIMEOUT:-120}"

die() { echo "check-ssh: ERROR: $*" >&2; exit 2; }
for t in qemu-system-x86_64 qemu-img ssh ssh-keygen; do
    command -v "$t" >/dev/null || die "$t not found"
done
MKISO=""
for t in genisoimage mkisofs; do command -v "$t" >/dev/null && { MKISO="$t"; break; }; done
[ -n "$MKISO" ] || { command -v xorriso >/dev/null && MKISO="xorriso -as mkisofs"; }
[ -n "$MKISO" ] || die "genisoimage, mkisofs or xorriso needed for the config drive"
[ -f "$IMAGE" ] || die "no $IMAGE: run build-tiny-image.sh first"
IMAGE="$(cd "$(dirname "$IMAGE")" && pwd)/$(basename "$IMAGE")"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${PORT:-}" ]; then
    for _ in $(seq 50); do
        PORT=$((20000 + RANDOM % 20000))
        port_free "$PORT" && break
    done
fi
port_free "$PORT" || die "port $PORT is in use"

T="$(mktemp -d /tmp/tiny-ssh-check.XXXXXX)"
QPID=""
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; fail=1; }

# --- keys and config drive ----------------------------------------------------
for k in first good wrong; do
    ssh-keygen -q -t ed25519 -N '' -C "check-ssh-$k" -f "$T/$k"
done
UUID="$(cat /proc/sys/kernel/random/uuid)"
FIRST_PUB="$(cat "$T/first.pub")"
GOOD_PUB="$(cat "$T/good.pub")"
EXPECT_FP="$(echo "$FIRST_PUB" | awk '{print $2}' | base64 -d | md5sum | cut -c1-32 | sed 's/../&:/g; s/:$//')"
for v in 2012-08-10 latest; do
    d="$T/cd/openstack/$v"
    mkdir -p "$d"
    # the layout and formatting (json.dumps(indent=1)) of mininova's config drive
    cat >"$d/meta_data.json" <<EOF
{
 "uuid": "$UUID",
 "name": "$NAME",
 "hostname": "$NAME",
 "launch_index": 0,
 "availability_zone": "nova",
 "project_id": "0123456789abcdef0123456789abcdef",
 "meta": {},
 "public_keys": {
  "first": "$FIRST_PUB\n",
  "good": "$GOOD_PUB\n"
 },
 "keys": [
  {
   "name": "first",
   "type": "ssh",
   "data": "$FIRST_PUB\n"
  },
  {
   "name": "good",
   "type": "ssh",
   "data": "$GOOD_PUB\n"
  }
 ],
 "devices": []
}
EOF
    cat >"$d/network_data.json" <<EOF
{
 "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56", "mtu": 1500, "vif_id": "$UUID"}],
 "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": "tap0", "network_id": "default"}],
 "services": []
}
EOF
    printf '{}' >"$d/vendor_data.json"
done
$MKISO -quiet -V config-2 -J -R -o "$T/config.iso" "$T/cd" 2>/dev/null
qemu-img create -q -f qcow2 -F qcow2 -b "$IMAGE" "$T/disk.qcow2"

# --- boot -------------------------------------------------------------------------
LOG="$T/console.log"
: >"$LOG"
echo "[$(date +%T)] booting $(basename "$IMAGE") (TCG, ${MEM} MiB, ssh on 127.0.0.1:$PORT)"
qemu-system-x86_64 -machine pc,accel=tcg -m "$MEM" -smp 1 \
    -display none -vga std -serial "file:$LOG" -monitor none \
    -drive "file=$T/disk.qcow2,if=virtio,format=qcow2" \
    -drive "file=$T/config.iso,if=ide,index=0,media=cdrom,format=raw,readonly=on" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:22" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 \
    </dev/null >"$T/qemu.out" 2>&1 &
QPID=$!

t0=$SECONDS
until tr -d '\r' <"$LOG" | grep '^boot done' >/dev/null; do
    kill -0 "$QPID" 2>/dev/null || { cat "$T/qemu.out" >&2; die "qemu exited"; }
    [ $((SECONDS - t0)) -ge "$TIMEOUT" ] && break
    sleep 0.5
done
if tr -d '\r' <"$LOG" | grep '^boot done' >/dev/null; then
    ok "'boot done' ~$((SECONDS - t0))s after starting qemu"
else
    bad "no 'boot done' within ${TIMEOUT}s"
fi
sleep 1      # "ip=" can come from udhcpc's background retries
tr -d '\r' <"$LOG" >"$T/console.txt"
clog() { cat "$T/console.txt"; }
clog | grep -E '^(mininova|hostname=|uuid=|ssh_key|ip=|sshd|boot done|config drive)' | sed 's/^/    | /' || true
grep -qx "hostname=$NAME" "$T/console.txt" && ok "hostname line" || bad "hostname line"
grep -qx "uuid=$UUID" "$T/console.txt" && ok "uuid line" || bad "uuid line"
grep -qx "ssh_key_fingerprint=$EXPECT_FP" "$T/console.txt" && ok "fingerprint line (first key)" || bad "fingerprint line"
grep -q '^ip=' "$T/console.txt" && ok "ip line" || bad "ip line"
grep -qx 'sshd: listening on 22' "$T/console.txt" && ok "sshd line" || bad "sshd line"

# --- ssh ----------------------------------------------------------------------
SSH=(ssh -F /dev/null -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=20)
run_ssh() {  # run_ssh KEY CMD -> stdout; stderr in $T/ssh.err; a few tries
    local i rc=0
    for i in 1 2 3; do
        rc=0
        "${SSH[@]}" -o LogLevel=ERROR -i "$1" root@127.0.0.1 "$2" 2>"$T/ssh.err" && return 0 || rc=$?
        grep -q 'Permission denied' "$T/ssh.err" && return "$rc"
        sleep 2
    done
    return "$rc"
}

CMD='cat /etc/hostname; echo ok'
echo "[$(date +%T)] ssh -i good -p $PORT -o StrictHostKeyChecking=no root@127.0.0.1 '$CMD'"
t1=$SECONDS
if out="$(run_ssh "$T/good" "$CMD")"; then
    echo "$out" | sed 's/^/    | /'
    if [ "$out" = "$NAME"$'\n'"ok" ]; then ok "hostname and ok (in $((SECONDS - t1))s)"; else bad "unexpected output"; fi
else
    sed 's/^/    ! /' "$T/ssh.err"; bad "ssh with the good key failed"
fi
if out="$(run_ssh "$T/first" 'uname -a; id -u; stat -c "%a %n" /root/.ssh /root/.ssh/authorized_keys; wc -l </root/.ssh/authorized_keys')"; then
    echo "$out" | sed 's/^/    | /'
    echo "$out" | grep -q '^Linux ' && ok "uname -a (first key works too)" || bad "uname -a"
    echo "$out" | grep -qx '700 /root/.ssh' && echo "$out" | grep -qx '600 /root/.ssh/authorized_keys' \
        && ok "modes 0700/0600" || bad "modes of /root/.ssh"
    [ "$(echo "$out" | tail -n1 | tr -d ' ')" = 2 ] && ok "both keys in authorized_keys" || bad "authorized_keys count"
else
    sed 's/^/    ! /' "$T/ssh.err"; bad "ssh with the first key failed"
fi

echo "[$(date +%T)] ssh -i wrong (a key not on the config drive)"
if "${SSH[@]}" -o LogLevel=DEBUG1 -i "$T/wrong" root@127.0.0.1 'echo logged-in' >"$T/wrong.out" 2>"$T/wrong.err"; then
    bad "the wrong key was accepted"
else
    grep -m1 'Permission denied' "$T/wrong.err" | sed 's/^/    ! /' || true
    grep -q 'Permission denied (publickey)' "$T/wrong.err" && ok "wrong key refused" || bad "wrong key: unexpected error"
fi
methods="$(tr -d '\r' <"$T/wrong.err" | sed -n 's/.*Authentications that can continue: //p' | head -n1)"
[ "$methods" = publickey ] && ok "server offers only: $methods" || bad "server offers: ${methods:-?}"

if [ "$fail" = 0 ]; then echo "check-ssh: all checks passed"; else echo "check-ssh: FAILED"; exit 1; fi

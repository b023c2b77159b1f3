#!/usr/bin/env bash
# Prepare a host for mininova: install the virtualization packages and make
# sure libvirtd/virtlogd are running, even where no init system starts them.
# Also installs Debian's PostgreSQL server binaries (/usr/lib/postgresql/<ver>/bin)
# for the PostgreSQL store tests, which start their own throwaway server: a system
# cluster that the package install starts is stopped again (nothing depends on it).
#
# Idempotent and safe to re-run.
#
#   scripts/host-setup.sh            # host packages + libvirt daemons + default network
#   scripts/host-setup.sh --browser  # also chromium and nodejs/npm (web UI tests)
#
# Environment:
#   LIBVIRT_URI          libvirt URI to check (default qemu:///system)
#   HOST_SETUP_NO_APT=1  skip the package step (only start daemons / network)
set -euo pipefail

URI="${LIBVIRT_URI:-qemu:///system}"
WANT_BROWSER=0
for arg in "$@"; do
    case "$arg" in
        --browser) WANT_BROWSER=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "host-setup: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log()  { echo "host-setup: $*"; }
warn() { echo "host-setup: WARNING: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "host-setup: must run as root" >&2
    exit 1
fi

PACKAGES=(
    libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
    qemu-system-x86 qemu-utils libvirt-dev pkg-config
    dnsmasq-base iproute2 iptables nftables busybox-static cpio mtools genisoimage
    postgresql
)
if [ "$WANT_BROWSER" = 1 ]; then
    PACKAGES+=(chromium)
    # A Node.js that ships its own npm (e.g. NodeSource's) conflicts with Debian's npm package.
    command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
    command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- packages -------------------------------------------------------------

missing_packages() {
    local p st
    for p in "${PACKAGES[@]}"; do
        st="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
        [ "$st" = installed ] || echo "$p"
    done
}

lists_fresh() {
    # Fresh = some Packages index younger than one day.
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]
}

apt_retry() {
    # apt-get honours DPkg::Lock::Timeout for the dpkg lock; the lists lock
    # (apt-get update) may still be busy, so retry a while on any failure.
    local i
    for i in $(seq 1 30); do
        if apt-get "${APT_OPTS[@]}" "$@"; then
            return 0
        fi
        log "apt-get $1 failed (lock busy?), retrying in 20s ($i/30)"
        sleep 20
    done
    return 1
}

online_pg_clusters() {
    # "<version> <name>" of each running Debian cluster (pg_lsclusters from postgresql-common)
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" { print $1, $2 }' || true
}

PG_ONLINE_BEFORE="$(online_pg_clusters)"
if [ "${HOST_SETUP_NO_APT:-0}" != 1 ]; then
    mapfile -t MISSING < <(missing_packages)
    if [ "${#MISSING[@]}" -gt 0 ]; then
        log "installing: ${MISSING[*]}"
        if ! lists_fresh; then
            apt_retry update >/dev/null
        fi
        if ! apt_retry install --no-install-recommends "${MISSING[@]}" >/dev/null; then
            echo "host-setup: apt-get install failed" >&2
            exit 1
        fi
    else
        log "packages already installed"
    fi
fi

# --- PostgreSQL: binaries only ------------------------------------------------
# The package's postinst creates and starts a "main" cluster where an init script runs.
# Tests start their own server as the postgres user, so stop any cluster that was not
# running before this script ran (a cluster the admin runs on purpose is left alone).
while read -r pg_ver pg_name; do
    [ -n "${pg_ver:-}" ] || continue
    if ! grep -qxF "$pg_ver $pg_name" <<<"$PG_ONLINE_BEFORE"; then
        log "stopping PostgreSQL cluster $pg_ver/$pg_name started by the package install"
        pg_ctlcluster "$pg_ver" "$pg_name" stop >/dev/null 2>&1 \
            || warn "could not stop PostgreSQL cluster $pg_ver/$pg_name"
    fi
done < <(online_pg_clusters)
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    warn "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (PostgreSQL tests will skip)"
    PG_BIN=""
fi

# --- /dev/kvm -------------------------------------------------------------------
# Without udev, /dev/kvm stays root-only; QEMU runs as libvirt-qemu and libvirt then
# re-probes QEMU on every call (slow starts). The driver still decides KVM vs TCG itself.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm 2>/dev/null && chmod 0660 /dev/kvm 2>/dev/null \
        || warn "could not make /dev/kvm group-accessible"
fi

# --- libvirt daemons --------------------------------------------------------

virsh_ok() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

if virsh_ok; then
    log "libvirtd already answering on $URI"
else
    mkdir -p /run/libvirt /var/run/libvirt /var/log/libvirt /var/lib/libvirt
    if ! pgrep -x virtlogd >/dev/null 2>&1; then
        log "starting virtlogd"
        virtlogd -d || warn "virtlogd failed to start"
    fi
    if ! pgrep -x libvirtd >/dev/null 2>&1; then
        # a stale pid file from a dead daemon would stop a new one
        if [ -f /run/libvirtd.pid ] && ! kill -0 "$(cat /run/libvirtd.pid 2>/dev/null)" 2>/dev/null; then
            rm -f /run/libvirtd.pid
        fi
        log "starting libvirtd"
        libvirtd -d || warn "libvirtd failed to start"
    fi
    deadline=$((SECONDS + 60))
    until virsh_ok; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "host-setup: libvirtd did not answer on $URI within 60s" >&2
            [ -f /var/log/libvirt/libvirtd.log ] && tail -n 20 /var/log/libvirt/libvirtd.log >&2
            exit 1
        fi
        sleep 1
    done
    log "libvirtd is up"
fi

# --- default NAT network -----------------------------------------------------

NET_STATE="unavailable"
if ! virsh -c "$URI" net-info default >/dev/null 2>&1; then
    if [ -f /usr/share/libvirt/networks/default.xml ]; then
        virsh -c "$URI" net-define /usr/share/libvirt/networks/default.xml >/dev/null 2>&1 \
            || warn "could not define libvirt network 'default'"
    else
        warn "/usr/share/libvirt/networks/default.xml missing (libvirt-daemon-config-network?)"
    fi
fi
if virsh -c "$URI" net-info default >/dev/null 2>&1; then
    virsh -c "$URI" net-autostart default >/dev/null 2>&1 || true
    net_info="$(virsh -c "$URI" net-info default 2>/dev/null || true)"
    if grep -Eq '^Active:[[:space:]]+yes' <<<"$net_info"; then
        NET_STATE="active"
    elif err="$(virsh -c "$URI" net-start default 2>&1)"; then
        NET_STATE="active"
        log "started libvirt network 'default'"
    else
        NET_STATE="inactive"
        warn "could not start libvirt network 'default' (guests fall back to user-mode networking): $(echo "$err" | tr '\n' ' ' | cut -c1-300)"
    fi
fi

# --- summary -----------------------------------------------------------------

LV_VER="$(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p; s/^Using library: //p' | paste -sd ';' -)"
echo "host-setup: OK: libvirt ($URI) ${LV_VER:-version unknown}; default network: $NET_STATE; postgresql: ${PG_BIN:-missing}$([ "$WANT_BROWSER" = 1 ] && echo "; browser: $(command -v chromium >/dev/null && echo chromium) node $(node --version 2>/dev/null || echo missing)")"

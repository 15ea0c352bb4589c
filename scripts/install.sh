#!/usr/bin/env bash
# Install everything hactl needs on Debian 12: system packages (as root), a venv in .venv,
# and hactl itself in editable mode with its dev extras. Idempotent: re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-pip make iproute2 haproxy keepalived socat curl psmisc
  mariadb-server galera-4 rsync rabbitmq-server nftables faketime
  stunnel4  # Galera's rsync SST is encrypted through it once the servers have TLS (internal_tls)
  keystone  # Debian's Keystone (uwsgi): the lab's identity service, state keystone
  stress-ng  # stress-ng: benchmarks/soak.py loads the machine
  nats-server)  # Debian 12's 2.9.10: the bus tier runs on it too (scripts/test.sh)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "hactl install: missing Debian packages: ${missing[*]}" >&2
    echo "  run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "hactl install: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # On a box with systemd, Debian starts these daemons in the root namespace on install.
  # hactl runs its own, per node; stop the distribution's copies that this install started.
  if [[ -d /run/systemd/system ]]; then
    for svc in haproxy keepalived mariadb rabbitmq-server nats-server keystone; do
      pkg=$svc; [[ $svc == mariadb ]] && pkg=mariadb-server
      if printf '%s\n' "${missing[@]}" | grep -qx "$pkg"; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e '.[dev,server]'
echo "hactl install: ready ($(.venv/bin/hactl version))"

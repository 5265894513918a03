#!/usr/bin/env bash
# Install carehub as a system service on Raspberry Pi OS or Debian 12, as root, from a clone of this
# repository. Run it again to upgrade or repair: every step leaves alone what is already right.
#
#   sudo scripts/install.sh [--start] [--prefix DIR] [--root DIR] [--no-apt] [--no-venv]
#
#   1. apt: python3-venv, bluez, mosquitto-clients (and python3-lgpio on a Pi) when missing
#   2. PREFIX/.venv (PREFIX = /opt/carehub): carehub and every dependency at the version pinned in
#      constraints.txt (the lock), installed again only when the source or the lock changed
#   3. /etc/systemd/system/carehub.service, /etc/sysusers.d/carehub.conf,
#      /etc/tmpfiles.d/carehub.conf, /etc/udev/rules.d/99-carehub.rules
#   4. systemd-sysusers (user carehub; groups gpio, dialout, bluetooth), systemd-tmpfiles --create
#      (/etc/carehub, /var/lib/carehub), udev rules reloaded and applied to the GPIO chips
#   5. no /etc/carehub/hub.toml: `carehub provision` writes it (an existing one is kept)
#   6. systemctl daemon-reload and enable; start (restart, after an upgrade) only with --start
#
# --root DIR installs into DIR instead of / (tests, images): no apt; sysusers, tmpfiles and
#            `systemctl enable` act on DIR's files only; no daemon-reload, udevadm or start.
# --prefix DIR puts the venv in DIR instead of /opt/carehub (the installed unit is rewritten to match).
# --no-apt   skips step 1; --no-venv skips step 2 and prints the pip command it would have run.
set -euo pipefail
umask 022 # /opt is read by the service user; the few private files get their modes explicitly

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT=""
PREFIX=/opt/carehub
START=0
APT=1
VENV=1

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --start) START=1 ;;
        --no-apt) APT=0 ;;
        --no-venv) VENV=0 ;;
        --root) ROOT="${2:?--root needs a directory}"; shift ;;
        --root=*) ROOT="${1#*=}" ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || die "run as root (sudo $0): it creates a system user and files under /etc"
case "$PREFIX" in
    /*) ;;
    *) die "--prefix must be an absolute path, got '$PREFIX'" ;;
esac
case "$PREFIX" in *[!A-Za-z0-9/._-]*) die "--prefix may hold only letters, digits and / . _ -" ;; esac
if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != / ] || ROOT=""
fi
if [ -n "$ROOT" ] && [ "$START" = 1 ]; then die "--start cannot be used with --root"; fi

# The OS's Python, whatever PATH says (a pyenv or conda python3 may live under /root or /home,
# which the unit hides with ProtectHome=): apt keeps it patched, and the venv points at it.
PYTHON=/usr/bin/python3
DEST="$ROOT$PREFIX"
VENV_DIR="$DEST/.venv"

# --- 1. apt -------------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_install() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    say "apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}
if [ -z "$ROOT" ] && [ "$APT" = 1 ]; then
    # python3-venv: the venv (with pip); bluez: bluetoothd, which the BLE driver talks to over
    # D-Bus; mosquitto-clients: mosquitto_sub/_pub, to check the central's broker on a site visit.
    apt_install python3-venv bluez mosquitto-clients
    # gpiozero's lgpio pin factory needs the lgpio binding built against the OS's liblgpio: only
    # Raspberry Pi OS packages it. The venv sees it through --system-site-packages (step 2).
    if grep -qa "Raspberry Pi" /proc/device-tree/model 2>/dev/null; then
        apt_install python3-lgpio || say "warning: python3-lgpio not installed: [gpio] factory = \"lgpio\" will not work"
    fi
fi

# --- 2. the venv, from the lock -----------------------------------------------------------------
# What pip builds from: a copy of the package's files, so nothing is written into the clone.
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md hub drivers hil | tar -C "$STAGE" -xf -
# --ignore-installed: every locked distribution goes into the venv, even one the OS has at the same
# version (--system-site-packages is there for python3-lgpio only), so an apt upgrade never changes
# what the hub runs on.
PIP=("$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-input
    --ignore-installed -c "$SRC/constraints.txt" "$STAGE")
if [ "$VENV" = 1 ]; then
    stamp="$VENV_DIR/carehub-install.sha256"
    want="$( (
        "$PYTHON" --version
        cat "$SRC/constraints.txt"
        cd "$STAGE" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1)"
    if [ -x "$VENV_DIR/bin/python" ] && ! "$VENV_DIR/bin/python" -c "" 2>/dev/null; then
        say "the venv's Python is gone (OS upgrade?): making the venv afresh"
        rm -rf "$VENV_DIR"
    fi
    if [ ! -x "$VENV_DIR/bin/python" ]; then
        mkdir -p "$DEST"
        [ -x "$PYTHON" ] || die "$PYTHON is missing: apt-get install python3-venv"
        "$PYTHON" -m venv --system-site-packages "$VENV_DIR"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing carehub into $PREFIX/.venv from constraints.txt"
        rm -f "$stamp"
        "${PIP[@]}"
        echo "$want" >"$stamp"
    else
        say "$PREFIX/.venv is up to date"
    fi
else
    mkdir -p "$DEST"
    say "skipped (--no-venv): ${PIP[*]}"
fi
install -m 0644 "$SRC/README.md" "$SRC/constraints.txt" "$DEST/"
mkdir -p "$DEST/examples"
install -m 0644 "$SRC"/config/examples/*.toml "$DEST/examples/"

# --- 3. systemd, sysusers, tmpfiles and udev files ----------------------------------------------
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/sysusers.d" "$ROOT/etc/tmpfiles.d" "$ROOT/etc/udev/rules.d"
sed "s#/opt/carehub#$PREFIX#g" "$SRC/systemd/carehub.service" >"$STAGE/carehub.service"
install -m 0644 "$STAGE/carehub.service" "$ROOT/etc/systemd/system/carehub.service"
install -m 0644 "$SRC/systemd/carehub.sysusers" "$ROOT/etc/sysusers.d/carehub.conf"
install -m 0644 "$SRC/systemd/carehub.tmpfiles" "$ROOT/etc/tmpfiles.d/carehub.conf"
install -m 0644 "$SRC/systemd/99-carehub.rules" "$ROOT/etc/udev/rules.d/99-carehub.rules"

# --- 4. user, groups, directories, device permissions -------------------------------------------
# A bare file name is looked up in the (root's) sysusers.d / tmpfiles.d directories: ours only.
systemd-sysusers ${ROOT:+--root="$ROOT"} carehub.conf
systemd-tmpfiles ${ROOT:+--root="$ROOT"} --create carehub.conf
if [ -z "$ROOT" ]; then
    if udevadm control --reload; then
        udevadm trigger --subsystem-match=gpio --action=change || true
    else
        say "warning: udevd did not answer; the gpio rule applies from the next boot"
    fi
fi

# --- 5. the config --------------------------------------------------------------------------------
# Not written here: `carehub provision` writes it with this hub's id, resident and credentials (and
# refuses to overwrite one). The examples are in $PREFIX/examples.
CONFIG="$ROOT/etc/carehub/hub.toml"
if [ -e "$CONFIG" ]; then
    say "keeping /etc/carehub/hub.toml"
else
    say "no /etc/carehub/hub.toml yet: $PREFIX/.venv/bin/carehub provision writes it (examples in $PREFIX/examples)"
fi

# --- 6. the service -------------------------------------------------------------------------------
if [ -n "$ROOT" ]; then
    systemctl --root="$ROOT" --quiet enable carehub.service
    say "installed into $ROOT"
    exit 0
fi
systemctl daemon-reload
systemctl --quiet enable carehub.service
if [ "$START" = 1 ]; then
    systemctl restart carehub.service
    say "carehub started: journalctl -u carehub -f"
else
    say "enabled, not started. Next: $PREFIX/.venv/bin/carehub provision; $PREFIX/.venv/bin/carehub check-config /etc/carehub/hub.toml; systemctl start carehub"
    if systemctl --quiet is-active carehub.service; then
        say "carehub is running the previous install until: systemctl restart carehub"
    fi
fi

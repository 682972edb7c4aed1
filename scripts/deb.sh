#!/usr/bin/env bash
# Builds the hepstack Debian package with dpkg-deb (no extra cargo tool to build first).
#
#   scripts/deb.sh [BINARY] [OUT_DIR]
#
# BINARY defaults to a fresh `cargo build --release` of hepstack; OUT_DIR to target/debian
# (under CARGO_TARGET_DIR when set). Prints the path of the .deb. The package installs
# /usr/bin/hepstack, the systemd unit (user hepstack, data in /var/lib/hepstack), the default
# configuration /etc/hepstack/hepstack.toml (a conffile: upgrades keep local edits) and
# creates the user and a first admin password (/etc/hepstack/hepstack.env, 0600) in postinst.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
binary="${1:-}"
out="${2:-$target/debian}"
if [ -z "$binary" ]; then
  cargo build --release --locked -p hepstack >&2
  binary="$target/release/hepstack"
fi
version="$(cargo metadata --no-deps --format-version 1 | jq -r '.packages[] | select(.name == "hepstack") | .version')"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$binary" "$stage/usr/bin/hepstack"
install -D -m 0644 packaging/deb/hepstack.service "$stage/lib/systemd/system/hepstack.service"
install -D -m 0644 packaging/deb/hepstack.toml "$stage/etc/hepstack/hepstack.toml"
install -D -m 0644 README.md "$stage/usr/share/doc/hepstack/README.md"
install -D -m 0644 CHANGELOG.md "$stage/usr/share/doc/hepstack/changelog"
install -D -m 0644 docs/upgrade.md "$stage/usr/share/doc/hepstack/upgrade.md"
install -d "$stage/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
echo /etc/hepstack/hepstack.toml >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: hepstack
Version: $version
Architecture: $arch
Maintainer: hepstack developers
Depends: libc6, adduser
Recommends: libpcap0.8
Section: net
Priority: optional
Installed-Size: $(du -sk "$stage" | cut -f1)
Description: VoIP/RTC capture and troubleshooting: HEP collector, store, search and call flows
 One binary doing the job of the HOMER 7 stack: HEP collector, embedded store (or PostgreSQL
 in the HOMER layout), search and call-flow UI, KPIs for Prometheus, capture agent and relay.
CONTROL
mkdir -p "$out"
deb="$out/hepstack_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
echo "$deb"

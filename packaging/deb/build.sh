#!/usr/bin/env bash
# Builds valetkey_<version>_<arch>.deb from already-built binaries, with
# dpkg-deb (no cargo-deb needed).
#
#   packaging/deb/build.sh [--profile release|debug] [--out DIR] [--fast] [--version V]
#
# --fast compresses with gzip -1 instead of xz (for tests); --version sets
# the package version (default: the binaries' own; the system stage builds
# a newer one to test an upgrade).
#
# Needs the four binaries in $CARGO_TARGET_DIR/<profile>/ (build them with
# `cargo build --release --workspace --bins`). The package holds the
# four binaries (debug info stripped), the systemd user units, the desktop and
# autostart entries, the icon, man pages and bash/zsh/fish completions
# generated from the CLI's own definition, and the license. Depends are
# computed by dpkg-shlibdeps, plus a Secret Service.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
profile=release
out="$repo/target/deb"
compress=(-Zxz -z6)
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    --version) version=$2; shift 2 ;;
    *) echo "usage: $0 [--profile release|debug] [--out DIR] [--fast] [--version V]" >&2; exit 2 ;;
  esac
done
bin="${CARGO_TARGET_DIR:-$repo/target}/$profile"
for b in valetkey valetkeyd valetkey-tray valetkey-window; do
  [ -x "$bin/$b" ] || { echo "build.sh: $bin/$b is missing; run \`cargo build --workspace --bins${profile/debug/}\` ${profile/release/--release} first" >&2; exit 1; }
done
[ -n "$version" ] || version=$("$bin/valetkey" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"

install -d "$root/usr/bin"
for b in valetkey valetkeyd valetkey-tray valetkey-window; do
  install -m 755 "$bin/$b" "$root/usr/bin/$b"
  strip --strip-debug "$root/usr/bin/$b"
done
install -D -m 644 packaging/systemd/valetkeyd.service "$root/usr/lib/systemd/user/valetkeyd.service"
install -D -m 644 packaging/systemd/valetkeyd.socket "$root/usr/lib/systemd/user/valetkeyd.socket"
install -D -m 644 packaging/desktop/valetkey-tray.desktop "$root/usr/share/applications/valetkey-tray.desktop"
install -D -m 644 packaging/desktop/valetkey-tray-autostart.desktop "$root/etc/xdg/autostart/valetkey-tray.desktop"
install -D -m 644 src-ui/icons/icon.png "$root/usr/share/icons/hicolor/128x128/apps/valetkey.png"

"$bin/valetkey" generate man --out "$stage/man"
"$bin/valetkeyd" --generate-man "$stage/man"
install -d "$root/usr/share/man/man1"
for m in "$stage"/man/*.1; do gzip -9n < "$m" > "$root/usr/share/man/man1/$(basename "$m").gz"; done
"$bin/valetkey" generate completions --out "$stage/comp"
install -D -m 644 "$stage/comp/valetkey.bash" "$root/usr/share/bash-completion/completions/valetkey"
install -D -m 644 "$stage/comp/_valetkey" "$root/usr/share/zsh/vendor-completions/_valetkey"
install -D -m 644 "$stage/comp/valetkey.fish" "$root/usr/share/fish/vendor_completions.d/valetkey.fish"

doc="$root/usr/share/doc/valetkey"
install -d "$doc"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: valetkey"
  echo
  echo "Files: *"
  echo "Copyright: The Valet Key authors"
  echo "License: Apache-2.0"
  echo " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0."
} > "$doc/copyright"
install -m 644 README.md "$doc/README.md"
install -m 644 LICENSE "$doc/LICENSE"

# Shared-library dependencies, as Debian's own tooling computes them.
mkdir -p "$stage/debian"
printf 'Source: valetkey\n\nPackage: valetkey\nArchitecture: any\n' > "$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O --ignore-missing-info -e root/usr/bin/valetkey -e root/usr/bin/valetkeyd -e root/usr/bin/valetkey-tray -e root/usr/bin/valetkey-window 2>/dev/null | sed -n 's/^shlibs:Depends=//p')

install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: valetkey
Version: $version
Architecture: $arch
Maintainer: Valet Key developers <valetkey@example.invalid>
Section: utils
Priority: optional
Depends: $shlibs, gnome-keyring | keepassxc | kwalletmanager, dbus-user-session | dbus-x11, bubblewrap
Suggests: libsecret-tools
Installed-Size: $(du -sk "$root" | cut -f1)
Homepage: https://example.invalid/valetkey
Description: credential broker for local AI agents
 valetkeyd keeps OAuth refresh tokens in the Secret Service keychain and
 hands each local AI agent a short-lived, down-scoped access token over a
 Unix socket, after the user consents in the tray app. Includes the
 valetkey CLI, the valetkey-tray app and systemd user units.
CONTROL
echo /etc/xdg/autostart/valetkey-tray.desktop > "$root/DEBIAN/conffiles"
# The maintainer scripts (packaging/deb/maint): socket activation for every
# user, and the units of users logged in now started, restarted on upgrade
# and stopped on removal, each user's manager reached with users.sh.
for s in postinst prerm postrm; do
  awk -v users=packaging/deb/maint/users.sh '
    /^#USERS#$/ { while ((getline l < users) > 0) print l; next } { print }' \
    "packaging/deb/maint/$s" > "$root/DEBIAN/$s"
  chmod 755 "$root/DEBIAN/$s"
done

mkdir -p "$out"
deb="$out/valetkey_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"

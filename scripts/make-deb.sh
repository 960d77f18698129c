#!/usr/bin/env bash
# Writes dist/provisioning-agent_<version>_<arch>.deb from a built agent and plugins (`make deb`):
#   scripts/make-deb.sh BUILD_DIR PLUGINS_DIR
# The Swift runtime the binary and the Swift plugins need is shipped in
# /usr/lib/provisioning-agent/swift and named by their RUNPATH; everything else they link
# is a Debian package, found with dpkg -S and put in Depends.
# DEB_VERSION overrides the version (the upgrade test builds a later one); DEB_COMPRESSION
# is dpkg-deb's -Z (xz by default); DEB_DIR is where it is written (dist by default).
set -euo pipefail
build=${1:?usage: make-deb.sh BUILD_DIR PLUGINS_DIR}
plugins=${2:?usage: make-deb.sh BUILD_DIR PLUGINS_DIR}
version=${DEB_VERSION:-$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/provisioning-agent/ProvisioningAgent.swift)}
arch=$(dpkg --print-architecture)
name=provisioning-agent
libdir=/usr/lib/$name
stage=$(mktemp -d "${TMPDIR:-/tmp}/$name-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
umask 022

for p in memory flatfile mysql ldap native; do
  [ -f "$plugins/$p.so" ] || { echo "make-deb: $plugins/$p.so is missing (make plugins builds it; mysql, ldap and native need make deps)" >&2; exit 1; }
done
[ -x "$build/$name" ] || { echo "make-deb: $build/$name is missing" >&2; exit 1; }

install -D -m0755 "$build/$name" "$root/usr/bin/$name"
for p in memory flatfile mysql ldap native; do install -D -m0644 "$plugins/$p.so" "$root$libdir/plugins/$p.so"; done
install -D -m0644 include/scim_connector.h "$root/usr/include/scim_connector.h"
install -D -m0640 packaging/agent.yaml "$root/etc/$name/agent.yaml"
install -D -m0644 packaging/$name.service "$root/lib/systemd/system/$name.service"
install -D -m0644 README.md "$root/usr/share/doc/$name/README.md"
install -D -m0644 packaging/copyright "$root/usr/share/doc/$name/copyright"

# The Swift runtime libraries, found from what the binary and plugins load.
elves=("$root/usr/bin/$name" "$root$libdir"/plugins/*.so)
swiftlibs=$(ldd "${elves[@]}" | awk '$3 ~ /\/swift\// { print $3 }' | sort -u)
mkdir -p "$root$libdir/swift"
for lib in $swiftlibs; do install -m0644 "$(readlink -f "$lib")" "$root$libdir/swift/$(basename "$lib")"; done
# Debug information out (symbols stay, for backtraces); the runtime found where it is shipped.
for f in "${elves[@]}" "$root$libdir"/swift/*.so; do
  strip --strip-debug "$f"
  if readelf -d "$f" | grep -q 'NEEDED.*libswift'; then patchelf --set-rpath "$libdir/swift" "$f"; fi
done

# Depends: the Debian packages of the other libraries they link directly (NEEDED).
depends=$(for f in "${elves[@]}" "$root$libdir"/swift/*.so; do
    needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    for n in $needed; do [ -e "$root$libdir/swift/$n" ] || ldd "$f" | awk -v n="$n" '$1 == n && $3 ~ /^\// { print $3 }'; done
  done | sort -u | while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || echo "make-deb: no package holds $lib" >&2; done \
  | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')

mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: provisioning-agent developers <provisioning-agent@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser, ${depends}
Section: admin
Priority: optional
Homepage: https://github.com/provisioning-agent/provisioning-agent
Description: on-premises SCIM provisioning agent with connector plugins
 Identity providers (Okta, Microsoft Entra ID, any SCIM client) provision users
 and groups with SCIM 2.0 or Okta's SCIM 1.1; the agent routes each operation to
 a connector plugin (flat file, MySQL/MariaDB, LDAP, or one you write in C or
 Swift) or to a remote SCIM server. Runs as the provisioning-agent.service unit.
CONTROL
echo "/etc/$name/agent.yaml" > "$root/DEBIAN/conffiles"
install -m0755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"

mkdir -p "${DEB_DIR:-dist}"
out=${DEB_DIR:-dist}/${name}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$out" >/dev/null
echo "$out"

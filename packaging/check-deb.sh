#!/bin/sh
# Checks a built virc .deb: control fields, maintainer scripts, conffile, and
# every file the package promises. Usage: packaging/check-deb.sh FILE.deb
set -eu

deb=$1
fail() {
    echo "check-deb: $*" >&2
    exit 1
}
info=$(dpkg-deb --info "$deb")
for field in "Package: virc" "Section: net" "Depends: adduser" "Maintainer: "; do
    echo "$info" | grep -q "$field" || fail "control field missing: $field"
done
for script in postinst postrm conffiles; do
    echo "$info" | grep -q " $script" || fail "control archive lacks $script"
done
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for path in \
    ./usr/bin/virc-daemon ./usr/bin/virc \
    ./usr/lib/systemd/system/virc.service \
    ./etc/virc/virc.toml \
    ./usr/share/man/man1/virc.1.gz ./usr/share/man/man1/virc-daemon.1.gz \
    ./usr/share/man/man1/virc-bot.1.gz \
    ./usr/share/bash-completion/completions/virc \
    ./usr/share/zsh/vendor-completions/_virc \
    ./usr/share/fish/vendor_completions.d/virc.fish \
    ./usr/share/doc/virc/copyright ./usr/share/doc/virc/README.md \
    ./usr/share/doc/virc/credentials.toml.example \
    ./usr/share/doc/virc/data/demo/LICENSE ./usr/share/doc/virc/data/demo/LICENSE.cryptofeed; do
    echo "$contents" | grep -qx "$path" || fail "missing from the package: $path"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$tmp"
grep -qx "/etc/virc/virc.toml" "$tmp/conffiles" || fail "/etc/virc/virc.toml is not a conffile"
grep -q "adduser --system" "$tmp/postinst" || fail "postinst creates no system user"
grep -q "purge)" "$tmp/postrm" || fail "postrm has no purge branch"
grep -q "systemctl" "$tmp/postinst" || fail "postinst does not enable the unit"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/bin/virc-daemon ./etc/virc/virc.toml
"$tmp/usr/bin/virc-daemon" --config "$tmp/etc/virc/virc.toml" --check-config >/dev/null ||
    fail "the packaged config does not pass --check-config"
echo "check-deb: $deb ok"

#!/bin/sh
# Builds the virc .deb: release binaries, man pages and completions generated
# from the clap definitions, then cargo-deb. Needs cargo-deb
# (`cargo install cargo-deb`). Prints the path of the package.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked -p virc-daemon -p virc-cli
out=target/packaging
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
./target/release/virc-daemon --man >"$out/man/virc-daemon.1"
./target/release/virc man >"$out/man/virc.1"
for cmd in bot order balances fills exchanges events status ticker stats candles book products record rule; do
    ./target/release/virc man "$cmd" >"$out/man/virc-$cmd.1"
done
./target/release/virc completions bash >"$out/completions/virc.bash"
./target/release/virc completions zsh >"$out/completions/_virc"
./target/release/virc completions fish >"$out/completions/virc.fish"
deb=$(cargo deb -p virc-daemon --no-build --output target/debian/)
echo "$deb" | tail -n 1

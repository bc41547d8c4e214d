#!/usr/bin/env bash
# What building burrowd and running the tests need on a fresh Debian machine, installed
# with apt-get --no-install-recommends when missing: protoc for the relay fleet's etcd
# client, and the real clients and servers the tests drive (curl, openssl, tmux,
# tinyproxy, microsocks, chromium and chromium-driver for the browser tests, procps for
# ps/kill, openssh-client for the SSH gateway's tests, etcd for the fleet's).
# The agent (`cargo run --release -p burrow`) needs none of it.
set -euo pipefail

need=()
for tool in curl tmux tinyproxy microsocks chromium openssl; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
# The browser tests drive Chromium over WebDriver through Debian's chromedriver.
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# The SSH gateway's tests drive the real OpenSSH client (ssh, ssh-keygen).
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# The tests signal processes with /bin/kill; `kill` is a shell builtin, so look for `ps`.
command -v ps >/dev/null 2>&1 || need+=(procps)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The relay fleet's tests run a real etcd; etcd-client's build script runs protoc, which
# needs the well-known .proto files too.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
# Without recommends, Chromium comes with no font at all.
[[ " ${need[*]} " == *" chromium"* ]] && need+=(fonts-liberation)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

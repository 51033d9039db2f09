#!/usr/bin/env bash
# Installs what kiln needs to build and run, from Debian 12 packages, when
# it is missing. With --test, also what the test suite needs.
set -euo pipefail

packages=(build-essential cmake pkg-config libhdf5-dev libyaml-dev libopenblas-openmp-dev
          zlib1g-dev libssl-dev libsqlite3-dev libjansson-dev libarchive-dev libmicrohttpd-dev
          libyajl-dev dataset-fashion-mnist)
if [[ "${1:-}" == "--test" ]]; then
  # hdf5-tools: h5dump for file checks; python3-venv: the interop venv;
  # sqlite3: tests tamper with the workspace database; curl: the server's
  # protocol tests; wrk: the serving benchmark.
  packages+=(hdf5-tools python3-venv python3-pip time sqlite3 curl wrk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

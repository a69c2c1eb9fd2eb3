#!/usr/bin/env bash
# Installs the Debian packages hangscope's tests (and its container image) use:
#   tcpdump   live capture through a pipe, and the lab's recorder
#   tshark    the differential tests' second opinion
#   tcptrace  a peer in the benchmark
#   python3-uvicorn, python3-fastapi   the lab's real server (the incident's stack)
#   libpcap-dev, iproute2, iptables    in-process capture build, namespaces and a "middlebox" for the lab
#   chromium  headless browser for the HTML report's tests (driven by playwright-core)
#   tmux      a real terminal for the dashboard's tests (send-keys, capture-pane)
# Only what is missing is installed. Without root it prints what is missing and exits 0:
# tests that need a missing tool skip with a reason (or fail under CI=true).
set -euo pipefail
pkgs=(tcpdump tshark tcptrace python3-uvicorn python3-fastapi libpcap-dev iproute2 iptables procps chromium tmux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-system-deps: missing ${missing[*]} (need root and apt-get to install them); tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${missing[*]}" >&2
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

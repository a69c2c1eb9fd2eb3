#!/usr/bin/env bash
# Installs the Debian packages hangscope uses. One list, two modes:
#
#   install-system-deps.sh             everything the tests use (test/run.sh, CI)
#   install-system-deps.sh --runtime   only what hangscope needs to run (the container image, Dockerfile)
#   ... --list                         print the mode's packages, one per line, and install nothing
#
# Run time (the image holds these, and CI checks the same ones):
#   tcpdump      live capture through a pipe (watch's default source), and the lab's recorder
#   libpcap0.8   the capture library (tcpdump's, and the optional in-process binding's)
#   bpftrace     `watch --attribute`: which process sent each FIN/RST (kernel tracepoints)
#   iproute2     ss (the attribution fallback), ip (the lab's network namespaces)
# Tests only:
#   tshark       the differential tests' second opinion
#   tcptrace     a peer in the benchmark
#   python3-uvicorn, python3-fastapi   the lab's real server (the incident's stack)
#   libpcap-dev, iptables, procps      in-process capture build, a "middlebox" for the lab, ps
#   chromium     headless browser for the HTML report's tests (driven by playwright-core)
#   tmux         a real terminal for the dashboard's tests (send-keys, capture-pane)
# Only what is missing is installed. Without root it prints what is missing and exits 0:
# tests that need a missing tool skip with a reason (or fail under CI=true).
set -euo pipefail
runtime=(tcpdump libpcap0.8 bpftrace iproute2)
test_only=(tshark tcptrace python3-uvicorn python3-fastapi libpcap-dev iptables procps chromium tmux)

mode=full
list=0
for arg in "$@"; do
  case "$arg" in
    --runtime) mode=runtime ;;
    --list) list=1 ;;
    *) echo "install-system-deps: unknown option $arg (use --runtime, --list)" >&2; exit 2 ;;
  esac
done
pkgs=("${runtime[@]}")
if [ "$mode" = full ]; then pkgs+=("${test_only[@]}"); fi
if [ "$list" = 1 ]; then printf '%s\n' "${pkgs[@]}"; exit 0; fi

# promtool into .cache/promtool (test/daemon/grafana.test.ts looks there). `apt-get download` needs no root,
# but it needs the package lists: when they do not know the package, they are updated first (root only).
fetch_promtool() {
  local dest tmp
  dest="$(cd "$(dirname "$0")/.." && pwd)/.cache/promtool"
  if [ -x "$dest" ] || command -v promtool >/dev/null; then return 0; fi
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "install-system-deps: no promtool (no apt-get): the Grafana query check will skip" >&2
    return 0
  fi
  if ! apt-cache show prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then apt-get -o DPkg::Lock::Timeout=600 update -qq || true; fi
  tmp="$(mktemp -d)"
  if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x) && [ -x "$tmp/x/usr/bin/promtool" ]; then
    mkdir -p "$(dirname "$dest")"
    cp "$tmp/x/usr/bin/promtool" "$dest"
    echo "install-system-deps: promtool taken from Debian's prometheus package into .cache/promtool" >&2
  else
    echo "install-system-deps: could not download Debian's prometheus package: no promtool, the Grafana query check will skip" >&2
  fi
  rm -rf "$tmp"
}
# Run last, whichever way the script ends (the exits below included).
if [ "$mode" = full ]; then trap fetch_promtool EXIT; fi

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

#!/usr/bin/env bash
# Install the Debian TTS engines that build minicosy's offline corpus (docs/paper_vs_code.md §3)
# and sox. mbrola lives in `contrib` and its voices in `non-free`, which a default
# Debian sources list does not enable, so we add a sources file of our own that
# points at the same mirror and suite as the machine's main entry.
set -euo pipefail

PKGS="flite festival festvox-kallpc16k festvox-rablpc16k festvox-us-slt-hts espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-de5 mbrola-fr1 rhvoice rhvoice-english libttspico-utils sox libsndfile1 wordnet-base mbrola-de1 mbrola-de2 mbrola-de4 mbrola-de6 mbrola-nl2 mbrola-ro1 mbrola-pl1 mbrola-sw2 festvox-don mbrola-af1 mbrola-de3 mbrola-fr4 mbrola-gr2 mbrola-hu1 mbrola-sw1"

missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "[install_debian] all Debian packages present"
  exit 0
fi
echo "[install_debian] missing:$missing"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# Find the machine's mirror and suite (deb822 first, then the classic one-line format).
uri=""; suite=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  suite=$(awk '/^Suites:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
  line=$(grep -E '^deb +(\[[^]]*\] +)?(https?|file)://' /etc/apt/sources.list | grep -v security | head -n1 || true)
  uri=$(echo "$line" | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}')
  suite=$(echo "$line" | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $2}')
fi
if [ -z "$suite" ]; then suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}"); fi
if [ -z "$uri" ]; then uri="http://deb.debian.org/debian"; fi

if grep -q ubuntu /etc/os-release 2>/dev/null; then
  # Ubuntu ships mbrola and its voices in `multiverse`.
  $SUDO add-apt-repository -y multiverse >/dev/null 2>&1 || true
elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # deb822: copy the first stanza's URIs/Suites/Signed-By so apt sees no conflicting keyring.
  signed=$(awk '/^Signed-By:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  suites=$(awk '/^Suites:/{$1=""; print; exit}' /etc/apt/sources.list.d/debian.sources)
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites:$suites"
    echo "Components: contrib non-free"
    if [ -n "$signed" ]; then echo "Signed-By: $signed"; fi
  } | $SUDO tee /etc/apt/sources.list.d/minicosy-contrib-nonfree.sources >/dev/null
else
  echo "deb $uri $suite contrib non-free" | $SUDO tee /etc/apt/sources.list.d/minicosy-contrib-nonfree.list >/dev/null
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
echo "[install_debian] done"

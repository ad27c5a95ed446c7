#!/usr/bin/env bash
# Debian's CJK fonts. pdfium maps the glyphs of a Chinese PDF whose fonts are not embedded (GBK-encoded
# pages, ../shared/pdfs/zh-fhit-gene-pcr-figures-garbled.pdf) through a system CJK font: without one,
# those pages come out as ciphered Latin letters ("!\"#$ % &") instead of Chinese.
# A failed install warns and does not stop the set-up: everything else works without the font.
set -uo pipefail
if find /usr/share/fonts /usr/local/share/fonts -iname '*cjk*' -print -quit 2>/dev/null | grep -q .; then exit 0; fi
HINT="Chinese PDFs without embedded fonts will read as garbage. Install a CJK font: sudo apt-get install fonts-noto-cjk"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "No CJK font is installed. $HINT" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && apt-get install -y -qq fonts-noto-cjk >/dev/null; then
  echo "installed fonts-noto-cjk"
else
  echo "Could not install fonts-noto-cjk. $HINT" >&2
fi
exit 0

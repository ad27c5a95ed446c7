#!/usr/bin/env bash
# Debian's CJK fonts. pdfium maps the glyphs of a Chinese PDF whose fonts are not embedded (GBK-encoded
# pages, ../shared/pdfs/zh-fhit-gene-pcr-figures-garbled.pdf) through a system CJK font: without one,
# those pages come out as ciphered Latin letters ("!\"#$ % &") instead of Chinese.
set -euo pipefail
if fc-list :lang=zh 2>/dev/null | grep -q .; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "No CJK font is installed: Chinese PDFs without embedded fonts will read as garbage. Install one with: sudo apt-get install fonts-noto-cjk" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq fonts-noto-cjk >/dev/null
echo "installed fonts-noto-cjk"

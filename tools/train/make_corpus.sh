#!/bin/sh
# Build the demo model's training corpus from English prose shipped in Debian packages.
# Usage: sh tools/train/make_corpus.sh [OUTDIR]   (default: demo_corpus/, git-ignored)
# Needs root (apt-get install) and python3 (stdlib only).  Writes OUTDIR/corpus.txt
# (documents joined with "<|endoftext|>", ordered by the SHA-256 of their text, so the file
# depends only on the package versions) and OUTDIR/sources.txt (package, version, documents,
# bytes).  See docs/DEMO_MODEL.md for the packages' licenses.
set -eu
OUT=${1:-demo_corpus}
PKGS="fortunes fortunes-min debian-reference-en debian-handbook debian-faq developers-reference
      manpages groff-base man-db python3.11-doc jargon-text base-files"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
mkdir -p "$OUT"
: > "$OUT/versions.txt"
for p in $PKGS; do
    dpkg-query -W -f='${Package} ${Version}\n' "$p" >> "$OUT/versions.txt"
done

# Man pages of the 'manpages' package (sections 1-7), rendered as plain text, one file each.
MAN="$OUT/man"
rm -rf "$MAN"; mkdir -p "$MAN"
dpkg -L manpages | grep -E '^/usr/share/man/man[1-7]/.*\.gz$' | sort | while read -r f; do
    # skip .so redirections (pages that only include another page)
    if zcat "$f" | head -n 3 | grep -q '^\.so '; then continue; fi
    MANWIDTH=80 MAN_KEEP_FORMATTING= man --no-hyphenation --no-justification -E UTF-8 -l "$f" \
        2>/dev/null | col -bx > "$MAN/$(basename "$f" .gz).txt" || true
done

python3 "$(dirname "$0")/corpus_build.py" "$OUT"

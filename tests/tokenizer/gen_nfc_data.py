#!/usr/bin/env python3
"""Generate runtime/tokenizer_nfc_data.c: the Unicode tables NFC needs.

GPT-NeoX's tokenizer.json normalizes with NFC, so the C tokenizer carries its own small NFC
(no ICU dependency). The tables come from Python's unicodedata (the Unicode version is written
into the output); Unicode's normalization stability policy means a newer version only adds
characters, it never changes the ones already there.

Usage: python3 tests/tokenizer/gen_nfc_data.py > runtime/tokenizer_nfc_data.c
"""
import sys
import unicodedata as ud

MAX_CP = 0x110000


def is_hangul_syllable(cp):
    return 0xAC00 <= cp <= 0xD7A3


def canonical_decomposition(cp):
    """One level of canonical decomposition, or None (compatibility mappings are skipped)."""
    d = ud.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def main():
    ccc_ranges = []  # (first, last, class), runs of equal nonzero class
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = ud.combining(chr(cp))
        if c == 0:
            continue
        if ccc_ranges and ccc_ranges[-1][1] == cp - 1 and ccc_ranges[-1][2] == c:
            ccc_ranges[-1][1] = cp
        else:
            ccc_ranges.append([cp, cp, c])

    decomp = []  # (cp, first, second or 0)
    comp = []    # (first, second, composite) for primary composites only
    for cp in range(MAX_CP):
        if 0xD800 <= cp <= 0xDFFF or is_hangul_syllable(cp):
            continue
        d = canonical_decomposition(cp)
        if d is None:
            continue
        assert len(d) in (1, 2), hex(cp)
        decomp.append((cp, d[0], d[1] if len(d) == 2 else 0))
        # A pair recomposes unless the character is a composition exclusion; NFC of the pair
        # tells us which without carrying the exclusion list.
        if len(d) == 2 and ud.normalize("NFC", chr(d[0]) + chr(d[1])) == chr(cp):
            comp.append((d[0], d[1], cp))
    comp.sort()

    out = sys.stdout
    out.write("/*\n * tokenizer_nfc_data.c — Unicode %s tables for NFC (generated; do not edit).\n"
              % ud.unidata_version)
    out.write(" *\n * Regenerate with: python3 tests/tokenizer/gen_nfc_data.py > runtime/tokenizer_nfc_data.c\n")
    out.write(" * Hangul syllables are not listed: they are decomposed and composed arithmetically.\n */\n")
    out.write('#include "tokenizer.h"\n\n')
    out.write('const char sisa_nfc_unicode_version[] = "%s";\n\n' % ud.unidata_version)

    out.write("const sisa_nfc_ccc_range sisa_nfc_ccc[] = {\n")
    for a, b, c in ccc_ranges:
        out.write("    {0x%04X, 0x%04X, %d},\n" % (a, b, c))
    out.write("};\nconst size_t sisa_nfc_ccc_count = sizeof sisa_nfc_ccc / sizeof sisa_nfc_ccc[0];\n\n")

    out.write("const sisa_nfc_decomp sisa_nfc_decomps[] = {\n")
    for cp, a, b in decomp:
        out.write("    {0x%04X, 0x%04X, 0x%04X},\n" % (cp, a, b))
    out.write("};\nconst size_t sisa_nfc_decomp_count = sizeof sisa_nfc_decomps / sizeof sisa_nfc_decomps[0];\n\n")

    out.write("const sisa_nfc_comp sisa_nfc_comps[] = {\n")
    for a, b, cp in comp:
        out.write("    {0x%04X, 0x%04X, 0x%04X},\n" % (a, b, cp))
    out.write("};\nconst size_t sisa_nfc_comp_count = sizeof sisa_nfc_comps / sizeof sisa_nfc_comps[0];\n")


if __name__ == "__main__":
    main()

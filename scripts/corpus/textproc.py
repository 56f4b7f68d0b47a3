"""Text cleaning, sentence splitting and the corpus rules (filter, dedup, cap, dev split).

Pure functions on strings, so that tests/corpus (build_corpus.sh --self-test) can check them
without the network. Every choice here must be deterministic: no set or dict order reaches an
output file without a sort, and the "random" choices are hashes of the text.
"""
import hashlib
import re
import unicodedata

# ANSI escape sequences (fortune files colour their attributions: "\x1b[33m -- Debian\x1b[m"):
# CSI sequences ESC [ params intermediates final, and the two-byte ESC X forms.
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Backspace overstrike ("_\bx" underlines x in old man-page style text): drop the char and the \b.
OVERSTRIKE_RE = re.compile(r".\x08")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SPACE_RE = re.compile(r"\s+")
# Scripts written without spaces between words: a line break inside them is not a space.
CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_GAP_RE = re.compile(f"(?<=[{CJK}]) (?=[{CJK}])")
# A sentence ends at . ! ? … followed by space and something that does not look like the
# continuation of an abbreviation ("e.g. the", "z. B. die", "v1.2 is"): not a lowercase letter
# or digit. CJK full stops end a sentence with no space after them.
SENT_END_RE = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+(?=[^\sa-z0-9])")
CJK_END_RE = re.compile(r"(?<=[。！？])(?![。！？”」』）])")


def clean(text):
    """NFC, without ANSI escapes and control characters, whitespace collapsed to one space."""
    text = ANSI_RE.sub("", text)
    text = OVERSTRIKE_RE.sub("", text)
    text = CONTROL_RE.sub(" ", text)
    text = unicodedata.normalize("NFC", text)
    text = SPACE_RE.sub(" ", text).strip()
    return CJK_GAP_RE.sub("", text)


def sentences(paragraph):
    """Splits one cleaned paragraph into sentences (cleaned again, empty ones dropped)."""
    out = []
    for part in SENT_END_RE.split(paragraph):
        for s in CJK_END_RE.split(part):
            s = s.strip()
            if s:
                out.append(s)
    return out


def keep_sentence(s, min_chars=20, max_chars=400):
    """The sentence filter: 20-400 characters (code points), mostly letters.

    "Mostly letters" (at least half of the non-space characters) drops ASCII art, tables,
    command lines and version lists, which the fortune files and the manuals are full of.
    """
    if not (min_chars <= len(s) <= max_chars):
        return False
    if "\t" in s:
        return False
    visible = [c for c in s if not c.isspace()]
    letters = sum(1 for c in visible if c.isalpha())
    return letters * 2 >= len(visible)


def text_hash(*parts):
    """A stable 64-bit integer from strings (sha1; Python's hash() is salted per process)."""
    h = hashlib.sha1("\t".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big")


def is_dev(lang, sentence, dev_percent=2.0):
    """The dev split: a fixed hash of the line, so a sentence lands on the same side every build
    and whatever else changes in the corpus."""
    return text_hash("dev", lang, sentence) % 10000 < int(round(dev_percent * 100))


def dedup(items):
    """items: iterable of (lang, sentence). Returns {lang: sorted list of unique sentences},
    without any sentence seen under two language tags (untranslated English in a translation,
    a proverb quoted in two collections): its language is not known, so it trains nothing."""
    langs_of = {}
    for lang, s in items:
        langs_of.setdefault(s, set()).add(lang)
    by_lang = {}
    for s, langs in langs_of.items():
        if len(langs) == 1:
            by_lang.setdefault(next(iter(langs)), []).append(s)
    return {lang: sorted(v) for lang, v in by_lang.items()}


def cap_bytes(sents, cap):
    """Keeps a hash-ordered sample of sentences of at most `cap` bytes (UTF-8, with the newline)
    so that big languages (da, it have >10 MB of descriptions) do not drown the small ones. The
    hash order mixes the sources instead of keeping the first files' text. Returns it sorted."""
    if cap <= 0:
        return sorted(sents)
    kept, total = [], 0
    for s in sorted(sents, key=lambda s: (text_hash("cap", s), s)):
        n = len(s.encode("utf-8")) + 1
        if total + n > cap:
            continue
        kept.append(s)
        total += n
    return sorted(kept)


def build_corpus(items, held=frozenset(), min_lines=200, cap=3_000_000, dev_percent=2.0):
    """The corpus rules in order: drop held-out text (the evaluation tasks'), exact dedup, drop
    text under two tags, drop languages under min_lines, cap each language, split train/dev.
    items: iterable of (lang, sentence), already cleaned and filtered.
    Returns (train, dev, dropped): train/dev are lists of (lang, sentence) in a fixed
    pseudo-random order (by hash: languages interleaved, as MLM training wants); dropped maps
    each dropped language to its line count."""
    by_lang = dedup((l, s) for l, s in items if s not in held)
    train, dev, dropped = [], [], {}
    for lang in sorted(by_lang):
        sents = by_lang[lang]
        if len(sents) < min_lines:
            dropped[lang] = len(sents)
            continue
        for s in cap_bytes(sents, cap):
            (dev if is_dev(lang, s, dev_percent) else train).append((lang, s))
    order = lambda ls: (text_hash("order", ls[0], ls[1]), ls)
    return sorted(train, key=order), sorted(dev, key=order), dropped

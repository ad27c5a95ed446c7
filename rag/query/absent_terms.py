"""Key terms of a question that no indexed document mentions: the subject it asks about is not there.

"What is the outlook for Febrile Seizures?" over pages that never write "febrile", or
"底特律圣保罗座堂在哪里？" over articles that never name 底特律, has passages about seizures or
cathedrals that score like an answer. The absent word gives it away, whatever the corpus is about:
this check uses no list of names, only the corpus's own text and how common a word is in the language.

A question term counts when it is
- an English word of three letters or more that is not everyday English (a word used fewer than
  10 times per million words, Zipf < 4 by `wordfreq`: "febrile", "thanatophoric", not "outlook");
  everyday words are left alone because a user's question may word things as its papers do not;
- a Chinese proper noun (jieba's part-of-speech tags for person, place, organisation and other
  names: 底特律, 廖立), since Chinese questions paraphrase their papers' ordinary words far more
  (级联 for 瀑布, 铁路沿线 for 沿线) and names they cannot.
It is absent when no document contains it: a Chinese one as a substring (or shifted by a character:
jieba guesses where a name starts), an English one as the start of a word, its last letters free
(mutation / mutations / mutational).

Terms are judged only in a script the corpus is written in (`language_share` of its letters): an
English question about Chinese papers words in English what they write in Chinese, so its absent
English words prove nothing.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from rag.knowledge import language
from rag.lang import HAN, HAN_RE
from rag.query.answer_type import ANSWER_TYPE_WORDS
from rag.terms.lexical import STOPWORDS

_HAN_RUN = re.compile(f"[{HAN}]+")
_LATIN_WORD = re.compile(r"(?<![a-z0-9])[a-z][a-z'-]*[a-z](?![a-z0-9])")  # not a piece of "33re's"
# The same words in text as written ("DNA", "Insulin"), to count a text's scripts.
_ANY_CASE_WORD = re.compile(_LATIN_WORD.pattern, re.IGNORECASE)
MIN_LATIN = 3
# English words may end differently in the papers (plural, -al, -ic): this many letters at most are
# left free, and at least _MIN_STEM must match.
_FREE_ENDING = 4
_MIN_STEM = 5
# Words as `writes_en` finds them: letters starting where no letter or digit comes before.
_WORD_START = re.compile(r"(?<![a-z0-9])[a-z]+")
# The parts of a question word between hyphens and apostrophes ("heparin-induced"); letters glued to
# digits ("150mmHg", "HbA1c", "CYP2D6") are no part: their pieces would match unrelated words.
_WHOLE_PART = re.compile(r"(?<![a-z0-9])[a-z]+(?![a-z0-9])")
_POSTINGS_MAX = 64  # a word's documents are kept when at most this many write it
_SEEN_MAX = 50_000  # English words whose presence is remembered (a few MB at most)


@functools.cache
def _proper_noun_tags() -> frozenset[str]:
    return frozenset(language("zh").get("proper_noun_tags", ()))


@functools.cache
def _posseg():
    import jieba.posseg

    from rag.terms.lexical import _jieba

    _jieba()  # the shared tokenizer's dictionary is loaded quietly first
    return jieba.posseg


def zipf(word: str, lang: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


def load_word_frequencies() -> None:
    """Read wordfreq's English and Chinese lists now (0.2 and 0.15 s on first use, with its own
    jieba dictionary for Chinese) rather than inside the first question that needs them."""
    from wordfreq import get_frequency_dict

    from rag.terms.lexical import _jieba

    _jieba()  # sets jieba's log level first: wordfreq's Chinese tokenizer would log to stderr
    for word, lang in (("aspirin", "en"), ("肝素", "zh")):
        get_frequency_dict(lang, "best")  # the list, as zipf_frequency asks: a word seen before skips it
        zipf(word, lang)  # and the tokenizer (wordfreq's jieba dictionary for Chinese)


def corpus_scripts(text: str, language_share: float = 0.3) -> frozenset[str]:
    """The scripts ("zh", "en") a corpus is written in: those with at least `language_share` of its
    Han characters and Latin words. Terms of a question are judged only in these. `text` may be as
    written or as read (lower-cased, accents folded): both count alike, so a paper's scripts do not
    depend on which rule reads them."""
    han = len(HAN_RE.findall(text))
    words = len(_ANY_CASE_WORD.findall(fold_latin(text)))
    total = han + words or 1
    return frozenset(s for s, n in (("zh", han), ("en", words)) if n / total >= language_share)


class CorpusMentions:
    """Which words the indexed documents write, read once per index."""

    def __init__(self, texts: Iterable[str], language_share: float = 0.3, common_zipf: float = 4.0) -> None:
        # Accents folded before lower-casing ("İnsulin"), on the corpus as on the questions.
        parts = [fold_latin(unicodedata.normalize("NFKC", t)).lower() for t in texts]
        self.text = "\n".join(parts)
        # Where each document starts in `text`, to count the documents that write a word.
        self._starts = list(itertools.accumulate((len(t) + 1 for t in parts[:-1]), initial=0))
        del parts
        self.scripts = corpus_scripts(self.text, language_share)
        self.common_zipf = common_zipf
        self._en_seen: dict[str, bool] = {}
        self._counts: tuple[list[str], list[int], list[tuple[int, ...] | None]] | None = None
        self._df_seen: dict[tuple[str, int], int] = {}  # stems counted by a search of the text

    def absent(self, question: str) -> list[str]:
        """The question's key terms that no document mentions, in the order asked (each once)."""
        text = fold_latin(unicodedata.normalize("NFKC", question))
        found: dict[str, None] = {}
        if "zh" in self.scripts:
            tags = _proper_noun_tags()
            lowered = text.lower()
            for run in _HAN_RUN.finditer(text):
                start = run.start()
                for word, flag in _posseg().lcut(run.group(), HMM=False):
                    end = start + len(word)
                    if flag in tags and len(word) >= 2 and not self._mentions_zh(lowered, start, end):
                        found.setdefault(word)
                    start = end
        if "en" in self.scripts:
            for word in _LATIN_WORD.findall(text.lower()):
                if len(word) < MIN_LATIN or word in STOPWORDS or self._mentions_en(word):
                    continue
                if zipf(word, "en") < self.common_zipf:
                    found.setdefault(word)
        return list(found)

    def _mentions_zh(self, question: str, start: int, end: int) -> bool:
        """Whether the corpus writes question[start:end], or it shifted by one character: where a
        name starts and ends in a question is jieba's guess (尼高·高华以什么 cut as 高 / 华以), so the
        corpus writing 高华, or 斯纳1 (塞斯纳170 for a question's 赛斯纳170), counts."""
        spans = ((start, end), (start - 1, end - 1), (start + 1, end + 1))
        return any(lo >= 0 and hi <= len(question) and question[lo:hi] in self.text for lo, hi in spans)

    def _mentions_en(self, word: str) -> bool:
        # Remembered: `absent` and `written_key_terms` ask about the same words.
        seen = self._en_seen.get(word)
        if seen is None:
            if len(self._en_seen) >= _SEEN_MAX:
                self._en_seen.clear()
            if word.isalpha() and word.isascii():
                # As `writes_en` reads it: some corpus word starts with the stem.
                lo, hi = self._stem_range(_stem(word))
                seen = hi > lo
            else:  # hyphens or apostrophes: no single word of the list
                seen = writes_en(word, self.text)
            self._en_seen[word] = seen
        return seen

    def _stem_range(self, stem: str) -> tuple[int, int]:
        """The rows of the word list (`_document_counts`) whose words start with `stem`."""
        vocab = self._document_counts()[0]
        lo = hi = bisect.bisect_left(vocab, stem)
        while hi < len(vocab) and vocab[hi].startswith(stem):
            hi += 1
        return lo, hi

    def written_key_terms(self, question: str, max_share: float = 0.05) -> list[str]:
        """The question's rare English words (as `absent` judges rarity) that some documents write but
        at most `max_share` of them (and at least one): the words the papers quoted in an answer
        must write too (`rag.abstain.rules.UncoveredTerms`). A word that many documents write is
        how the corpus words its topic ("prognosis", "medications", "therapies" on health pages):
        a paper that words it otherwise can still answer. The words that ask for a kind of answer
        ("what fraction", "prevalence") are left out, and hyphenated words are judged by their
        parts ("heparin-induced": heparin, induced), accents and curly apostrophes folded."""
        if "en" not in self.scripts:
            return []
        text = ANSWER_TYPE_WORDS.sub(" ", fold_latin(unicodedata.normalize("NFKC", question)).lower())
        limit = max(1, int(max_share * len(self._starts)))
        found: dict[str, None] = {}
        for word in _WHOLE_PART.findall(text):
            if len(word) < MIN_LATIN or word in STOPWORDS or zipf(word, "en") >= self.common_zipf:
                continue
            if self._mentions_en(word) and self._documents_writing(word, limit) <= limit:
                found.setdefault(word)
        return list(found)

    def _documents_writing(self, word: str, limit: int) -> int:
        """How many documents write a word starting as `word` does (its stem, as `writes_en` reads
        it), as far as comparing it with `limit` needs. One word alone past the limit, or all the
        stem's words together within it, settle it from the counts; else (questionnaire and
        questionnaires, one paper may write both) the documents of the words are joined, or, for
        words too common to keep theirs, the text is searched once per stem."""
        _, counts, postings = self._document_counts()
        stem = _stem(word)
        lo, hi = self._stem_range(stem)
        shared = counts[lo:hi]
        if max(shared, default=0) > limit:
            return max(shared)
        if sum(shared) <= limit:
            return sum(shared)
        if all(postings[i] is not None for i in range(lo, hi)):
            return len(set().union(*(postings[i] for i in range(lo, hi))))
        key = (stem, limit)
        seen = self._df_seen.get(key)  # read once: another question may clear the cache meanwhile
        if seen is None:
            docs: set[int] = set()
            for match in _stem_pattern(word).finditer(self.text):
                docs.add(bisect.bisect_right(self._starts, match.start()))
                if len(docs) > limit:
                    break
            if len(self._df_seen) >= _SEEN_MAX:
                self._df_seen.clear()
            seen = self._df_seen[key] = len(docs)
        return seen

    def _document_counts(self) -> tuple[list[str], list[int], list[tuple[int, ...] | None]]:
        """The corpus's English words, sorted, how many documents write each, and which (for words at
        most `_POSTINGS_MAX` documents write; None for the others); made on first use in one pass over
        the text (a search of the whole text per question word cost 19 ms p50 on MedQuAD's pages)."""
        if self._counts is None:
            docs_of: dict[str, list[int]] = {}
            counts: Counter[str] = Counter()
            ends = [*self._starts[1:], len(self.text) + 1]
            for doc, (start, end) in enumerate(zip(self._starts, ends, strict=True)):
                for w in set(_WORD_START.findall(self.text[start : end - 1])):
                    counts[w] += 1
                    kept = docs_of.setdefault(w, [])
                    if len(kept) <= _POSTINGS_MAX:
                        kept.append(doc)
            vocab = sorted(counts)
            postings = [tuple(docs_of[w]) if counts[w] <= _POSTINGS_MAX else None for w in vocab]
            self._counts = (vocab, [counts[w] for w in vocab], postings)
        return self._counts


# Latin letters with accents (Sjögren, Ménière) as their base letters, curly apostrophes as straight.
_FOLD = str.maketrans(
    {
        **{
            c: unicodedata.normalize("NFKD", c)[0]
            for c in map(chr, range(0xC0, 0x250))
            if unicodedata.normalize("NFKD", c)[0].isascii()
        },
        # Letters NFKD does not decompose, each one letter still (æ, œ, ß would need two).
        **dict(zip("øØłŁđĐı", "oOlLdDi", strict=True)),
        "\u2019": "'",
        "\u2018": "'",
    }
)


def fold_latin(text: str) -> str:
    """`text` (NFKC already: ligatures such as "ĳ" expanded) with accented Latin letters as their base
    letters and curly apostrophes straight; the length is kept, so offsets still hold."""
    return text.translate(_FOLD)


def _stem(word: str) -> str:
    """What of an English word must match: all but its last `_FREE_ENDING` letters, `_MIN_STEM` at least."""
    return word[: max(_MIN_STEM, len(word) - _FREE_ENDING)]


def _stem_pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(_stem(word))}")


def writes_en(word: str, text: str) -> bool:
    """Whether lower-cased `text` writes the English `word`, its last letters free (mutation /
    mutations / mutational)."""
    return _stem_pattern(word).search(text) is not None

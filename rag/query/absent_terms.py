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

import functools
import re
import unicodedata
from collections.abc import Iterable

from rag.knowledge import language
from rag.lang import HAN, HAN_RE
from rag.query.answer_type import ANSWER_TYPE_WORDS
from rag.terms.lexical import STOPWORDS

_HAN_RUN = re.compile(f"[{HAN}]+")
_LATIN_WORD = re.compile(r"(?<![a-z0-9])[a-z][a-z'-]*[a-z](?![a-z0-9])")  # not a piece of "33re's"
_MIN_LATIN = 3
# English words may end differently in the papers (plural, -al, -ic): this many letters at most are
# left free, and at least _MIN_STEM must match.
_FREE_ENDING = 4
_MIN_STEM = 5
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


def _zipf(word: str, lang: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


def corpus_scripts(text: str, language_share: float = 0.3) -> frozenset[str]:
    """The scripts ("zh", "en") a corpus is written in: those with at least `language_share` of its
    Han characters and Latin words. Terms of a question are judged only in these."""
    han = len(HAN_RE.findall(text))
    words = len(_LATIN_WORD.findall(text))
    total = han + words or 1
    return frozenset(s for s, n in (("zh", han), ("en", words)) if n / total >= language_share)


class CorpusMentions:
    """Which words the indexed documents write, read once per index."""

    def __init__(self, texts: Iterable[str], language_share: float = 0.3, common_zipf: float = 4.0) -> None:
        self.text = unicodedata.normalize("NFKC", "\n".join(texts)).lower()
        self.scripts = corpus_scripts(self.text, language_share)
        self.common_zipf = common_zipf
        self._en_seen: dict[str, bool] = {}

    def absent(self, question: str) -> list[str]:
        """The question's key terms that no document mentions, in the order asked (each once)."""
        text = unicodedata.normalize("NFKC", question)
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
                if len(word) < _MIN_LATIN or word in STOPWORDS or self._mentions_en(word):
                    continue
                if _zipf(word, "en") < self.common_zipf:
                    found.setdefault(word)
        return list(found)

    def _mentions_zh(self, question: str, start: int, end: int) -> bool:
        """Whether the corpus writes question[start:end], or it shifted by one character: where a
        name starts and ends in a question is jieba's guess (尼高·高华以什么 cut as 高 / 华以), so the
        corpus writing 高华, or 斯纳1 (塞斯纳170 for a question's 赛斯纳170), counts."""
        spans = ((start, end), (start - 1, end - 1), (start + 1, end + 1))
        return any(lo >= 0 and hi <= len(question) and question[lo:hi] in self.text for lo, hi in spans)

    def _mentions_en(self, word: str) -> bool:
        # A search of the whole corpus text per word; `absent` and `written_key_terms` ask the same.
        if word not in self._en_seen:
            if len(self._en_seen) >= _SEEN_MAX:
                self._en_seen.clear()
            self._en_seen[word] = writes_en(word, self.text)
        return self._en_seen[word]

    def written_key_terms(self, question: str) -> list[str]:
        """The question's English key terms (as `absent` judges them) that the corpus does write, less
        the words that say what kind of answer is wanted ("what fraction", "prevalence"): the terms
        the papers quoted in an answer must write too (`rag.abstain.rules.UncoveredTerms`)."""
        if "en" not in self.scripts:
            return []
        text = unicodedata.normalize("NFKC", question).lower()
        text = ANSWER_TYPE_WORDS.sub(" ", text)
        found: dict[str, None] = {}
        for word in _LATIN_WORD.findall(text):
            if len(word) < _MIN_LATIN or word in STOPWORDS or not self._mentions_en(word):
                continue
            if _zipf(word, "en") < self.common_zipf:
                found.setdefault(word)
        return list(found)


def writes_en(word: str, text: str) -> bool:
    """Whether lower-cased `text` writes the English `word`, its last letters free (mutation /
    mutations / mutational)."""
    stem = word[: max(_MIN_STEM, len(word) - _FREE_ENDING)]
    return re.search(rf"(?<![a-z0-9]){re.escape(stem)}", text) is not None

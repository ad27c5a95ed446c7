"""Names in a question that no indexed paper mentions: a drug, trial or score the papers never name.

Similarity cannot tell "What did the Caravaggio trial show about apixaban?" from a question the papers
answer: the sentences about anticoagulants in cancer score as high as for any answerable question.
What gives it away is the name. Three tests, all cheap and all about the question's own words:

- a Chinese word that jieba's general dictionary does not know (jieba found it as an unknown word:
  typically a transliterated name such as 阿哌沙班) and that uses a character appearing nowhere in
  the papers. Ordinary words ("携带", "哪种") are in the dictionary, and a name the papers use is
  made of characters they contain, so neither triggers it;
- in a Chinese question, a capitalised Latin word ("Khorana", "Caravaggio") that the papers never
  write. All-capital acronyms are left alone: the papers may spell out what "DOAC" abbreviates;
- in a question in either language, a drug name the papers never write, in Chinese or in English
  (rag.drug_names: drug names share their endings across the two languages, so an English one is
  looked for among the papers' Chinese names by sound).

English questions do not get the second test: their Latin words are compared with Chinese papers
that often name a drug in Chinese alone (everolimus is 依维莫司 throughout its paper), so an absent
English word that is not a drug name proves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.drug_names import DrugNames
from rag.lexical import _jieba

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")  # "Khorana"; not "DOAC", not "mTOR"
_WORD = re.compile(r"[a-z]+")
_COMMON_WORD = 100  # jieba frequency above which a word is ordinary Chinese (普通, 轻松), not a name


def common_word(word: str) -> bool:
    """Whether jieba's dictionary counts `word` as ordinary Chinese (普通, 轻松), not part of a name."""
    return _jieba().FREQ.get(word, 0) >= _COMMON_WORD


class UnknownNames:
    """Built once from the indexed documents' text; `find` is then a few set lookups per question."""

    def __init__(self, texts: Iterable[str], drugs: DrugNames | None = None) -> None:
        """`drugs`: the papers' drug names when already read (the retriever reads them too)."""
        self._chars: set[str] = set()
        self._words: set[str] = set()
        texts = list(texts)
        for text in texts:
            self._chars.update(_HAN.findall(text))
            self._words.update(_WORD.findall(text.lower()))
        self._drugs = drugs if drugs is not None else DrugNames(texts)

    def find(self, question: str, lang: str) -> list[str]:
        """The question's names that the papers never mention, in question order (empty: none)."""
        found = []
        jieba = _jieba()
        for run in _HAN_RUN.findall(question):
            for word in jieba.lcut(run, HMM=True):
                unknown_to_dictionary = jieba.FREQ.get(word, 0) == 0
                if unknown_to_dictionary and any(c not in self._chars for c in word):
                    found.append(word)
        if lang == "zh":
            found += [w for w in _NAME.findall(question) if w.lower() not in self._words]
        found += self._drugs.find_zh(question, common_word) + self._drugs.find_en(question, self._words)
        return list(dict.fromkeys(found))

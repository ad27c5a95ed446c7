"""Names in a question that no indexed paper mentions: a drug, trial or score the papers never name.

Similarity cannot tell "What did the Caravaggio trial show about apixaban?" from a question the papers
answer: the sentences about anticoagulants in cancer score as high as for any answerable question.
What gives it away is the name. Four tests, all cheap and all about the question's own words:

- a Chinese word that jieba's general dictionary does not know (jieba found it as an unknown word:
  typically a transliterated name such as 阿哌沙班) and that uses a character appearing nowhere in
  the papers and is not everyday Chinese, unless it reads as grammar words alone (这篇: a
  pronoun and a measure word, `grammar_tags` in rag/data/lang/zh.json). Ordinary words ("携带",
  "哪种") are in the dictionary, a question's own everyday characters (哪类, 做骨扫描) are not
  sounds of a name, and a name the papers use is made of characters they contain, so none of
  them triggers it;
- in a Chinese question, a capitalised Latin word ("Khorana", "Caravaggio") that the papers never
  write. All-capital acronyms are left alone: the papers may spell out what "DOAC" abbreviates;
- in a question in either language, a drug name the papers never write, in Chinese or in English
  (rag.terms.drug_names: drug names share their endings across the two languages, so an English one is
  looked for among the papers' Chinese names by sound);
- a Chinese disease name the papers never write: a word of jieba's dictionary, three characters or
  more, ending in 癌, 瘤, 炎, 症 or 病 (中耳炎, 硬化症, 白血病). Disease names are fixed terms, so a
  paper about a disease writes its name. A variant of a name the papers use is left alone: 血栓症
  when they write 血栓栓塞症. So are words for a kind of illness (并发症, 传染病, 实体肿瘤, 血栓性疾病)
  and words for a treatment against one (抗肿瘤).

The Chinese tests run only over papers written in Chinese (`corpus_scripts`): a Chinese question about
English papers writes in Chinese (卡穆祖, 下腔静脉) what they write in English, so its words being
absent proves nothing there.

English questions do not get the second test: their Latin words are compared with Chinese papers
that often name a drug in Chinese alone (everolimus is 依维莫司 throughout its paper), so an absent
English word that is not a drug name proves nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from rag.knowledge import domain_blocks, language
from rag.lang import HAN, HAN_RE
from rag.query.absent_terms import _posseg, corpus_scripts
from rag.terms.drug_names import DrugNames
from rag.terms.lexical import _jieba

HAN_RUN = re.compile(f"[{HAN}]+")
_NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")  # "Khorana"; not "DOAC", not "mTOR"
_WORD = re.compile(r"[a-z]+")
# A character jieba counts this often as a word of its own is everyday Chinese (哪 12138, 做 50331), not
# a sound in a transliterated name (哌 37, 奥 2062, 诺 1442).
_EVERYDAY_CHAR = 10_000
_COMMON_WORD = 100  # jieba frequency above which a word is ordinary Chinese (普通, 轻松), not a name
# How disease names end (癌瘤炎症病), and the words with such an ending that name a kind of illness,
# not one: a question may use them for what a paper words otherwise ("依维莫司有哪些并发症" of a paper
# that writes 不良反应). Kinds however qualified end in a kind ending (常见疾病, 血栓性疾病, jieba:
# 性疾病, 实体肿瘤), and a treatment against one starts with a treatment prefix (抗肿瘤). Two-character
# words (疾病, 发病, 肿瘤, 炎症) are left alone for the same reason. From rag/data/domain/medical.json.
_DISEASES = [names for _, names in domain_blocks("disease_names")]
_DISEASE_ENDINGS = frozenset(c for d in _DISEASES for c in d["endings"])
_DISEASE_CLASSES = frozenset(w for d in _DISEASES for w in d["classes"])
_KIND_ENDINGS = tuple(w for d in _DISEASES for w in d["kind_endings"])
_TREATMENT_PREFIXES = tuple(w for d in _DISEASES for w in d["treatment_prefixes"])
_VARIANT_GAP = 2  # 血栓症 is a variant of 血栓栓塞症: the same stem, the ending at most this far after it


def common_word(word: str) -> bool:
    """Whether jieba's dictionary counts `word` as ordinary Chinese (普通, 轻松), not part of a name."""
    return _jieba().FREQ.get(word, 0) >= _COMMON_WORD


class UnknownNames:
    """Built once from the indexed documents' text; `find` is then a few set lookups per question,
    and a search of the text for a disease name the question uses (a few ms for 5 MB of text)."""

    def __init__(
        self, texts: Iterable[str], drugs: DrugNames | None = None, language_share: float = 0.3
    ) -> None:
        """`drugs`: the papers' drug names when already read (the retriever reads them too);
        `language_share`: the share of the papers' text from which they are written in Chinese."""
        self._chars: set[str] = set()
        self._words: set[str] = set()
        texts = list(texts)
        for text in texts:
            self._chars.update(HAN_RE.findall(text))
            self._words.update(_WORD.findall(text.lower()))
        # The papers' text without spaces ("该 疾 病"), searched for the disease names of a question.
        self._text = "\n".join(re.sub(r"[ \t]+", "", text) for text in texts)
        self._drugs = drugs if drugs is not None else DrugNames(texts)
        # Counted on the text with its spaces: squashed, English words would glue into one.
        self._chinese = "zh" in corpus_scripts("\n".join(texts), language_share)

    def find(self, question: str, lang: str) -> list[str]:
        """The question's names that the papers never mention, in question order (empty: none)."""
        found: list[str] = []
        jieba = _jieba()
        for run in HAN_RUN.findall(question) if self._chinese else ():
            for word in jieba.lcut(run, HMM=True):
                unknown_to_dictionary = jieba.FREQ.get(word, 0) == 0
                if unknown_to_dictionary and any(self._foreign_char(c) for c in word) and not grammar(word):
                    found.append(word)
                elif not unknown_to_dictionary and self._unknown_disease(word):
                    found.append(word)
        if lang == "zh":
            found += [w for w in _NAME.findall(question) if w.lower() not in self._words]
        if self._chinese:
            found += self._drugs.find_zh(question, common_word)
        found += self._drugs.find_en(question, self._words)
        return list(dict.fromkeys(found))

    def _foreign_char(self, char: str) -> bool:
        """Whether a character appears nowhere in the papers and is not everyday Chinese: questions
        use 哪, 做 and 打 (哪类细胞, 做骨扫描), which statements never do."""
        return char not in self._chars and _jieba().FREQ.get(char, 0) < _EVERYDAY_CHAR

    def _unknown_disease(self, word: str) -> bool:
        """Whether a dictionary word is a disease name that the papers do not write."""
        return disease_name(word) and not writes_disease(word, self._text)


@functools.cache
def _grammar_tags() -> tuple[str, ...]:
    return tuple(language("zh").get("grammar_tags", ()))


@functools.lru_cache(maxsize=4096)
def grammar(word: str) -> bool:
    """Whether a word jieba joined from unknown pieces reads as pronouns, measure words and numerals
    alone (tags starting as `grammar_tags` do: r, rz, q, mq): 这篇 is 这 + 篇, "this [paper]", and a
    corpus that never writes 篇 does not make it a name. The tagger reads a transliterated name as a
    noun (阿哌沙班: nz). Words it tags otherwise (这例: 这 + 例, a verb to it) are still checked."""
    tags = _grammar_tags()
    pieces = _posseg().lcut(word, HMM=True)
    return bool(tags) and bool(pieces) and all(flag.startswith(tags) for _, flag in pieces)


def disease_name(word: str) -> bool:
    """Whether a word of jieba's dictionary names one disease (中耳炎, 胰腺癌), not a kind of illness
    (并发症, 实体肿瘤, 血栓性疾病) or a treatment against one (抗肿瘤)."""
    return (
        len(word) >= 3
        and word[-1] in _DISEASE_ENDINGS
        and word not in _DISEASE_CLASSES
        and not word.endswith(_KIND_ENDINGS)
        and not word.startswith(_TREATMENT_PREFIXES)
    )


def writes_disease(word: str, text: str) -> bool:
    """Whether `text` (spaces removed) writes a disease name as it is or with up to _VARIANT_GAP
    characters before its ending (血栓症 / 血栓栓塞症)."""
    if word in text:
        return True
    variant = f"{re.escape(word[:-1])}[^\\W\\d_]{{1,{_VARIANT_GAP}}}{word[-1]}"
    return re.search(variant, text) is not None

"""Drug names a question uses that the papers never write, found by the names' shared endings.

Drug names are built from stems (WHO INN): every -tinib is a kinase inhibitor, every -mab an
antibody. Chinese keeps the stem as a fixed ending and transliterates the rest: osimertinib is
奥希 + 替尼, everolimus 依维 + 莫司 (rag/data/drug_stems.json lists the endings). That gives two
tests that need no dictionary:

- Chinese question: a drug ending whose preceding character never comes before that ending in the
  papers (帕唑帕尼 when the papers have 阿帕替尼 but no 帕尼) names a drug the papers do not
  mention; for an ending of two characters or more, so do the two characters before it when both
  belong to the name (帕博利珠单抗 beside the papers' 贝伐珠单抗). An ending after a common word
  (普通肝素, 使用单抗) is a class, not a name, and is left alone.
- English question: a word with a drug ending that the papers never write in English is looked for
  in Chinese by sound: the papers' names with the matching Chinese ending are compared with it
  syllable by syllable (pinyin onsets against English onsets, `sounds_alike`). rivaroxaban finds
  利伐沙班; osimertinib finds no 奥希替尼 and is reported.

Both tests only ever report a name; one they miss leaves the question to the evidence threshold.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from pypinyin import Style, lazy_pinyin

from rag.knowledge import drug_stems, language
from rag.lang import HAN
from rag.terms.lexical import ZH_STOPWORDS, _jieba

_PREFIX_CHARS = 4  # a transliterated name before its ending is rarely longer
_MIN_EN_WORD = 7  # "April" ends in -pril; drug names are longer
# heparin (he + parin) is the ending itself: 肝素, a word translated, not a transliterated name
_MIN_HEAD = 3


@dataclass(frozen=True)
class Stem:
    en: tuple[str, ...]
    zh: tuple[str, ...]
    zh_other: tuple[str, ...] = ()


@cache
def stems() -> tuple[Stem, ...]:
    return tuple(Stem(s["en"], s["zh"], s.get("zh_other", ())) for s in drug_stems()["stems"])


# Sound classes (rag/data/lang/en.json for English spellings, zh.json for pinyin initials): two onsets
# match when their classes meet. Transliteration swaps within a class (v -> 伐 fa, r -> 利 li, x -> 沙 sha)
# but seldom across.
_EN_CLASSES = language("en")["sound_classes"]
_EN_DIGRAPHS = tuple(spelling for spelling in _EN_CLASSES if len(spelling) > 1)  # th, ch, ph, ...
_PINYIN_CLASSES = language("zh")["pinyin_classes"]
# Which English first vowels a vowel-initial Chinese syllable can stand for (奥 ao = o, 依 yi = e/i).
_ZH_VOWELS = language("zh")["pinyin_vowels"]
_HAN_TAIL = re.compile(f"[{HAN}]+$")


@cache
def _ENDINGS() -> re.Pattern[str]:  # noqa: N802 - a compiled constant, built on first use
    """Every Chinese drug ending, longest first, found at every position (替尼 and its 尼 both)."""
    endings = {e for s in stems() for e in (*s.zh, *s.zh_other)}
    return re.compile("(?=(" + "|".join(sorted(endings, key=len, reverse=True)) + "))")


_EN_SYLLABLE = re.compile(r"([^aeiouy]*)([aeiouy]+)")
# A pinyin syllable's initial (every one has a sound class; zh, ch, sh tried before z, c, s) and final.
_INITIALS = "|".join(i for i in _PINYIN_CLASSES if len(i) > 1)
_LETTERS = "".join(i for i in _PINYIN_CLASSES if len(i) == 1)
_PINYIN = re.compile(f"^({_INITIALS}|[{_LETTERS}])?(.*)$")


@dataclass(frozen=True)
class _Onset:
    classes: str  # consonant sound classes; empty for a vowel
    vowels: str  # for a vowel onset: the English first vowels it can stand for


def _en_onsets(word: str) -> list[_Onset]:
    onsets = []
    for i, (cluster, vowel) in enumerate(_EN_SYLLABLE.findall(word)):
        if not cluster:
            onsets.append(_Onset("", vowel[0].replace("y", "i")))
            continue
        classes = set()
        for digraph in _EN_DIGRAPHS:
            if digraph in cluster:
                classes.update(_EN_CLASSES[digraph])
        for j, c in enumerate(cluster):
            if c in "cg":  # soft before e/i/y (cetuximab 西, gefitinib 吉), hard otherwise
                soft = j == len(cluster) - 1 and vowel[0] in "eiy"
                classes.update("KS" if soft and c == "g" else "S" if soft else "K")
            elif c == "x" and i > 0:  # "dexa": ks
                classes.update("KS")
            elif c in _EN_CLASSES:
                classes.update(_EN_CLASSES[c])
        onsets.append(_Onset("".join(sorted(classes)), ""))
    return onsets


@cache  # the papers' names are compared with every English drug name asked about
def _zh_onsets(name: str) -> tuple[_Onset, ...]:
    onsets = []
    for syllable in lazy_pinyin(name, style=Style.NORMAL, errors="ignore"):
        if syllable.startswith("y"):  # yi, you, ya: a vowel in transliteration
            final = syllable[1:]
            onsets.append(_Onset("", _ZH_VOWELS.get(final, final[:1])))
            continue
        initial, final = _PINYIN.match(syllable).groups()
        if not initial:
            onsets.append(_Onset("", _ZH_VOWELS.get(final, final[:1])))
        elif syllable == "wu":  # 乌 stands for u- as often as for v-
            onsets.append(_Onset(_PINYIN_CLASSES["w"], "u"))
        else:
            onsets.append(_Onset(_PINYIN_CLASSES[initial], ""))
    return tuple(onsets)


def _same(a: _Onset, b: _Onset) -> bool:
    if set(a.classes) & set(b.classes):
        return True
    return bool(a.vowels) and bool(b.vowels) and a.vowels[0] in b.vowels


def sounds_alike(english: str, chinese: str) -> bool:
    """Does a Chinese name part sound like the start of an English one?

    The first syllables must match, and the second Chinese syllable must match the second or the
    third English one: transliteration drops syllables (deno-sumab -> 地舒单抗, osimer-tinib ->
    奥希替尼), so later ones are not compared."""
    en, zh = _en_onsets(english.lower()), _zh_onsets(chinese)
    if not en or not zh or not _same(en[0], zh[0]):
        return False
    return len(zh) == 1 or len(en) == 1 or any(_same(e, zh[1]) for e in en[1:3])


def _ends_ordinary_word(text: str, common_word: Callable[[str], bool]) -> bool:
    """Whether the last word of `text` (jieba) is an ordinary word: the name starts after it."""
    words = _jieba().lcut(text, HMM=True)
    return bool(words) and common_word(words[-1])


def zh_drug_endings(
    question: str, common_word: Callable[[str], bool] = lambda word: False
) -> Iterator[tuple[re.Match[str], str]]:
    """Drug endings in a Chinese question after one or two characters of a name, as (match, ending):
    group 1 holds those characters. An ending that makes an ordinary word or a class with them
    (轻松, 普通肝素) is left out, and so is one that starts a word after a function word (患者在肝素抗凝:
    heparin itself, 肝素, not a name ending in it; a name never starts with 在, 和 or 对)."""
    starts = _word_starts(question)
    for stem in stems():
        for ending in sorted(stem.zh, key=len, reverse=True):
            for m in re.finditer(f"([{HAN}]{{1,2}}){ending}", question):
                before = m.group(1)
                if common_word(before[-1] + ending) or (len(before) == 2 and common_word(before)):
                    continue
                if starts.get(m.end(1)) in ZH_STOPWORDS:
                    continue
                yield m, ending


def _word_starts(text: str) -> dict[int, str]:
    """Where each of jieba's words in `text` starts -> the word before it. The whole text is segmented:
    a cut prefix segments differently (和来那度胺 is 和/来/那度/胺, yet 和来那 alone is 和/来/那)."""
    starts, pos, previous = {}, 0, None
    for word in _jieba().lcut(text, HMM=True):
        if previous is not None:
            starts[pos] = previous
        pos += len(word)
        previous = word
    return starts


class DrugNames:
    """Built once from the papers' text, in one pass; questions are then checked against what it kept
    (the characters before each drug ending), never against the text itself, so a large index costs
    one scan at the first question, not one per question."""

    def __init__(self, texts: Iterable[str] | str) -> None:
        self._prefixes: dict[str, set[str]] = defaultdict(set)  # ending -> the papers' names before it
        self._counts: Counter[str] = Counter()  # name (one guess of its start + ending) -> occurrences
        self._seen: set[str] = set()  # endings and translated names (紫杉醇) the papers use
        for text in [texts] if isinstance(texts, str) else texts:
            for m in _ENDINGS().finditer(text):
                ending = m.group(1)
                self._seen.add(ending)
                run = _HAN_TAIL.search(text, max(0, m.start() - _PREFIX_CHARS), m.start())
                if run:  # where the name starts is unknown: keep every start
                    for k in range(len(run.group())):
                        self._prefixes[ending].add(run.group()[k:])
                        self._counts[run.group()[k:] + ending] += 1

    def find_zh(self, question: str, common_word: Callable[[str], bool] = lambda word: False) -> list[str]:
        """Chinese drug names of the question the papers never write; `common_word` tells an ordinary
        word (轻松, 普通) from part of a name."""
        names = []
        for m, ending in zh_drug_endings(question, common_word):
            before = m.group(1)
            known = self._prefixes.get(ending, ())
            # Names of one stem often share the character before the ending (贝伐珠单抗 and
            # 帕博利珠单抗 both have 珠), so two characters are compared when both belong to
            # the name: when the first one does not end an ordinary word (接受, 予, 和).
            two = (
                len(ending) > 1
                and len(before) == 2
                and before not in known
                and not _ends_ordinary_word(question[: m.start(1) + 1], common_word)
            )
            if before[-1] not in known or two:
                names.append(before + ending)
        return list(dict.fromkeys(names))

    def find_en(self, question: str, english_words: Container[str] = frozenset()) -> list[str]:
        """English drug names of the question that no Chinese name of the papers sounds like, leaving
        out `english_words` (the papers' own English words: a name they write is known)."""
        names = []
        for word, stem in self.en_drug_words(question):
            if word in english_words:
                continue
            if any(other in self._seen for other in stem.zh_other):
                continue  # the papers may name it by meaning (紫杉醇): sound cannot settle it
            if not self.chinese_names(word):
                names.append(word)
        return list(dict.fromkeys(names))

    def en_drug_words(self, question: str) -> list[tuple[str, Stem]]:
        """The question's English words with a drug ending (lower-cased), each with its stem."""
        words = []
        for word in re.findall(r"[a-z]+", question.lower()):
            stem = self._stem_of(word)[0] if len(word) >= _MIN_EN_WORD else None
            if stem is not None:
                words.append((word, stem))
        return words

    def written_forms(self, word: str, stem: Stem) -> tuple[str, ...]:
        """How a text may name an English drug name: the word itself, the papers' Chinese names that
        sound like it, and the translated names of its class the papers use (paclitaxel: 紫杉醇)."""
        return (word, *self.chinese_names(word), *(z for z in stem.zh_other if z in self._seen))

    def chinese_names(self, word: str) -> list[str]:
        """The papers' Chinese names that sound like an English drug name (everolimus -> 依维莫司),
        most frequent first: where a name starts is a guess (了来那度胺 is 来那度胺 after 了), and the
        true start recurs while the characters before it vary."""
        stem, ending = self._stem_of(word.lower())
        if stem is None:
            return []
        head = word.lower()[: -len(ending)]
        names = {p + zh for zh in stem.zh for p in self._prefixes.get(zh, ()) if sounds_alike(head, p)}
        return sorted(names, key=lambda n: (-self._counts[n], -len(n), n))

    @staticmethod
    def _stem_of(word: str) -> tuple[Stem | None, str]:
        best: tuple[Stem | None, str] = (None, "")
        for stem in stems():
            for ending in stem.en:
                if (
                    word.endswith(ending)
                    and len(word) - len(ending) >= _MIN_HEAD
                    and len(ending) > len(best[1])
                ):
                    best = (stem, ending)
        return best

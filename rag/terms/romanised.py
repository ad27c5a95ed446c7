"""Chinese personal names written in pinyin in an English question, and their Chinese spellings in the
corpus: "What is Zhao Peng's occupation?" over Chinese articles that write 赵鹏.

Neither encoder links the two (the lexicon maps "Zhao" to whatever Chinese word is near), so an
English question about a Chinese person finds the person's article only by luck, and a question about
someone no article mentions has nothing to give it away. A name is read the way English texts write
Chinese names: a surname (`pinyin_surnames` in rag/data/lang/zh.json) followed by a given name of one
or two syllables, both capitalised ("Ye Qiaobo", "Zhuge Liang", "Li Wan-hua"). Only that shape counts:
a lone capitalised word that happens to spell pinyin ("China" = chi + na, "Muse" = mu + se) is mostly
not Chinese. Many Korean, Cantonese and Wade-Giles names do not parse ("Yang Bang-ean", "Lau
Kwok-fan"), but some do ("Han Ji-min" 韩智敏, "Chang Ai-ling" 张爱玲), and their letters do not spell
the characters' pinyin readings. Those systems hyphenate the given name, and Hanyu pinyin does not
(though English texts sometimes do: "Li Wan-hua"). So a hyphenated name is searched for but never
taken as proof of absence (`testable`): a hyphenated pinyin name of a person no document names is
not refused, the price of not refusing 张爱玲 asked as "Chang Ai-ling".

Its Chinese spellings are found by sound: any run of characters, one per syllable, each having that
syllable among its readings (pypinyin's dictionary, every reading, tones dropped), so polyphonic
surnames (曾 zeng, 单 shan) and homophones are all tried. The match is a regular expression of character
classes over the corpus text: no index is built, and a corpus without the name costs one scan.
Names are read surname first: trying the reversed order as well ("Peng Zhao" for 赵鹏) found common
words for absent people (Li Liao: 理疗) and lost a correct refusal on cmrc2018_en (eval/README.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from rag.knowledge import language

_MAX_GIVEN = 2  # syllables of a given name ("Qiaobo"); three-syllable given names are rare
# A capitalised word, or two joined by a hyphen ("Wan-hua"); a possessive "'s" is not part of it.
# The hyphen as typed, and as word processors write it (U+2010, U+2011 non-breaking).
HYPHENS = "-\u2010\u2011"
_WORD = re.compile(rf"\b[A-Z][a-z]+(?:[{HYPHENS}][A-Za-z][a-z]*)?\b")
_NO_HYPHENS = str.maketrans("", "", HYPHENS)
_VOWELS = frozenset("aeiouv")
_SEEN_MAX = 10_000  # names whose spellings are remembered per index


@dataclass(frozen=True)
class RomanisedName:
    """A name as the question writes it, with its syllables (surname's first)."""

    text: str  # "Zhao Peng"
    start: int  # character offsets in the question
    end: int
    syllables: tuple[tuple[str, ...], ...]  # every way the letters divide: ("zhao", "peng")

    @property
    def latin_forms(self) -> tuple[str, ...]:
        """How an English text may write it, lower-cased: "zhao peng", "peng zhao", "zhaopeng"."""
        surname, given = self.text.lower().split(" ", 1)
        given = given.translate(_NO_HYPHENS)
        return (f"{surname} {given}", f"{given} {surname}", f"{surname}{given}")

    @property
    def words(self) -> tuple[str, ...]:
        """Its words, lower-cased, a hyphenated given name as two: "Li Wan-hua" -> li, wan, hua."""
        return tuple(re.split(f"[{HYPHENS}\\s]+", self.text.lower()))

    @property
    def testable(self) -> bool:
        """Whether the corpus not writing the name proves the person absent: not for a hyphenated
        given name (Wade-Giles, Korean, Cantonese: "Chang Ai-ling" is 张爱玲, whose pinyin is Zhang)."""
        return not any(h in self.text for h in HYPHENS)


def _toneless(reading: str) -> str:
    """A pinyin reading without its tone marks (ü becomes u, as English texts write it: Lü -> Lu)."""
    return "".join(c for c in unicodedata.normalize("NFD", reading) if not unicodedata.combining(c))


@cache
def _readings() -> dict[str, str]:
    """syllable -> every character that has it among its readings (one string, for a character class)."""
    from pypinyin.constants import PINYIN_DICT

    chars: dict[str, list[str]] = defaultdict(list)
    for code, readings in PINYIN_DICT.items():
        # Private-use code points (70 of them) and 〇, a numeral in dates (二〇一六), spell no name.
        if unicodedata.category(chr(code)) == "Co" or code == 0x3007:
            continue
        for syllable in dict.fromkeys(_toneless(r) for r in readings.split(",")):
            if syllable.isascii() and syllable.isalpha() and _VOWELS & set(syllable):
                chars[syllable].append(chr(code))
    return {s: "".join(c) for s, c in chars.items()}


@cache
def _surnames() -> frozenset[str]:
    return frozenset(s.lower() for s in language("zh").get("pinyin_surnames", ()))


@lru_cache(maxsize=20_000)  # bounded: it sees every capitalised word of every English question
def splits(word: str, most: int = _MAX_GIVEN, first: bool = True) -> tuple[tuple[str, ...], ...]:
    """Every way a lower-case word divides into at most `most` pinyin syllables. Pinyin writes an
    apostrophe before a syllable starting with a, o or e inside a word (Xi'an), so none starts one
    after the first: "liang" is liang, not li + ang."""
    if not word:
        return ((),)
    if most == 0 or (not first and word[0] in "aoe"):
        return ()
    syllables = _readings()
    found = []
    for cut in range(1, min(6, len(word)) + 1):
        head = word[:cut]
        if head in syllables:
            found += [(head, *rest) for rest in splits(word[cut:], most - 1, False)]
    return tuple(found)


def romanised_words(question: str, taken: Sequence[RomanisedName] = ()) -> list[RomanisedName]:
    """Other capitalised words of the question that divide into two to four pinyin syllables: places
    and things English writes in pinyin ("Gushi Railway Station", "Laitan Town"), outside the names
    in `taken`. The first word of a sentence is left out (it is capitalised anyway). Many English,
    Japanese and other words divide so too ("Mushi", "Panda"): the caller keeps only those that are
    not everyday English, and uses them to search, never to refuse."""
    words = []
    for m in _WORD.finditer(question):
        before = question[: m.start()].rstrip()
        if not before or before[-1] in ".?!" or any(n.start <= m.start() < n.end for n in taken):
            continue
        cuts = tuple(c for c in splits(m.group().lower().translate(_NO_HYPHENS), 4) if len(c) >= 2)
        if cuts:
            words.append(RomanisedName(m.group(), m.start(), m.end(), cuts))
    return words


@lru_cache(maxsize=256)  # the analyser reads a question's names for the search and for the refusal
def romanised_names(question: str) -> tuple[RomanisedName, ...]:
    """The Chinese personal names the question writes in pinyin, in the order written."""
    surnames = _surnames()
    if not surnames:
        return ()
    words = list(_WORD.finditer(question))
    names = []
    for first, second in zip(words, words[1:], strict=False):
        surname = first.group().lower()
        if surname not in surnames or question[first.end() : second.start()] != " ":
            continue
        given = second.group().lower().translate(_NO_HYPHENS)
        # A surname is one syllable when it can be (Zhao, not Zha + o); else a compound (Zhuge, Sima).
        surname_cuts = splits(surname, 1) or splits(surname, 2)
        given_cuts = splits(given)
        if not surname_cuts or not given_cuts:
            continue
        syllables = tuple((*s, *g) for s in surname_cuts for g in given_cuts)
        text = question[first.start() : second.end()]
        names.append(RomanisedName(text, first.start(), second.end(), syllables))
    return tuple(names)


class ChineseSpellings:
    """Finds a romanised name's Chinese spellings in a corpus text (as `CorpusMentions.text` holds it:
    NFKC, lower-cased), most written first; remembered per name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._chars: frozenset[str] | None = None
        self._seen: dict[str, tuple[str, ...]] = {}
        self._written: dict[str, bool] = {}  # `writes`, remembered: each answer scans the whole text

    def spellings(self, name: RomanisedName) -> tuple[str, ...]:
        known = self._seen.get(name.text)
        if known is None:
            patterns = [p for p in map(self._pattern, name.syllables) if p]
            counts = Counter(re.findall("|".join(patterns), self.text)) if patterns else Counter()
            known = tuple(spelling for spelling, _ in counts.most_common())
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[name.text] = known
        return known

    def _pattern(self, syllables: tuple[str, ...]) -> str:
        """Character classes of the corpus's characters with each reading ("" if one has none). Only
        the characters the corpus has: a class of a syllable's 100-odd characters scans about 40 times
        slower (10 ms instead of 0.25 over CMRC's 81,000 characters)."""
        if self._chars is None:
            self._chars = frozenset(self.text)
        readings = _readings()
        classes = ["".join(re.escape(c) for c in readings[s] if c in self._chars) for s in syllables]
        return "" if not all(classes) else "(?:" + "".join(f"[{c}]" for c in classes) + ")"

    def writes(self, name: RomanisedName) -> bool:
        """Whether the corpus may name the person: in Chinese characters, or in Latin letters, where
        the surname alone as a word counts (English papers write authors "Wang L" or "L. Wang")."""
        known = self._written.get(name.text)
        if known is None:
            surname = name.text.split(" ", 1)[0].lower()
            known = bool(
                self.spellings(name)
                or any(form in self.text for form in name.latin_forms)
                or re.search(rf"(?<![a-z]){surname}(?![a-z])", self.text)
            )
            if len(self._written) >= _SEEN_MAX:
                self._written.clear()
            self._written[name.text] = known
        return known

    def absent(self, question: str, untested: Callable[[str], bool] = lambda name: False) -> Iterator[str]:
        """The romanised names of the question the corpus writes in neither script, leaving out the
        hyphenated ones (`RomanisedName.testable`) and those `untested` says are no test (everyday
        English as a whole: `QueryAnalyser.absent_names`)."""
        for name in romanised_names(question):
            if name.testable and not untested(name.text) and not self.writes(name):
                yield name.text

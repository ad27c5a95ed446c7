"""A bilingual term glossary mined from the corpus itself: `组织因子(tissue factor, TF)` gives 组织因子 <->
tissue factor / TF; `venous thromboembolism (VTE)` in an English abstract links VTE's long form to the
Chinese term defined for VTE elsewhere. No hand-written medical dictionary is involved.

English matching works on "keys" (lower-cased letters and digits of whole words), so the glued long forms
that PDF extraction leaves behind ("partialresponse") still match "partial response" in a question.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rag.knowledge import language
from rag.lang import HAN, HAN_RE
from rag.terms.lexical import EN_STOPWORDS, _jieba
from rag.types import Document

GLOSSARY_VERSION = 1
# Grammatical words and verbs that introduce a term ("包含深静脉血栓", "采取多学科综合治疗"); the
# Chinese term starts after the last one. Matched as jieba words, so 对照组 is not cut at 对. jieba often
# glues a preposition to the word before it ("作用于", "存在", "参与", "组在"): a word with such an
# ending also ends the text before a term. Modifiers (的, 地, 之): see `choose_zh_term`. All from
# rag/data/lang/zh.json.
_BOUNDARIES = language("zh")["term_boundaries"]
_STOP_WORDS = frozenset(_BOUNDARIES["words"])
_STOP_ENDINGS = tuple(_BOUNDARIES["endings"])
_MODIFIERS = frozenset(_BOUNDARIES["modifiers"])
_STOP_CHARS = frozenset(w for w in _STOP_WORDS if len(w) == 1)
# Length limits of a Chinese term taken on the strength of its left boundary alone: after a stop word
# ("作用于哺乳动物雷帕霉素靶蛋白"), or after punctuation, where a longer run often includes the subject of
# the sentence ("肿瘤相关性静脉血栓栓塞"). Longer terms must recur in the paper.
_MAX_ZH_AFTER_STOP = 12
_MAX_ZH = 10
_MAX_ZH_ATTESTED = 12
_MAX_RUN = 16
_ABBR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-/]{0,11}(?: \d[\d\-]*)?$")
_LONG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9’'\- ]{2,80}$")
_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")  # "PD-1" stays one word, so PD does not match it
_MATCH_CACHE = 20_000  # texts whose matches are kept (about the sentences of a few hundred papers)
_PAREN_RE = re.compile(r"\(([^()\n]{1,120})\)")
# Short abbreviations that are also English words or too ambiguous lower-cased ("OS", "PE", "all")
# match only in their defined case.
_CASE_SENSITIVE_MAX = 2


@dataclass(frozen=True)
class Term:
    """One mined definition: Chinese term, English long form and/or abbreviation ("" when absent)."""

    zh: str
    en: str
    abbr: str
    docs: tuple[str, ...] = ()

    def gloss(self) -> str:
        if self.en and self.abbr:
            return f"{self.en} ({self.abbr})"
        return self.en or self.abbr


@dataclass(frozen=True)
class Match:
    """A glossary term found in a text: text[start:end] is the surface form."""

    start: int
    end: int
    zh: str  # the Chinese term it stands for ("" for an English-only definition)
    terms: tuple[Term, ...]


def _raw_key(text: str) -> str:
    """Letters and digits, lower-cased."""
    return re.sub(r"[^A-Za-z0-9]", "", text).lower()


def _key(text: str) -> str:
    """Letters and digits, lower-cased; a plural "s" is folded ("CTCs", "events") so either form matches."""
    key = _raw_key(text)
    stripped = text.rstrip()
    if key.endswith("s") and (len(key) > 5 or (len(stripped) > 1 and stripped[-2].isupper())):
        key = key[:-1]
    return key


def _case_sensitive(abbr: str) -> bool:
    return len(re.sub(r"[^A-Za-z0-9]", "", abbr)) <= _CASE_SENSITIVE_MAX or abbr.lower() in EN_STOPWORDS


def is_abbreviation(text: str) -> bool:
    """Whether `text` looks like an abbreviation: "TF", "mTOR", "CTCs", "CYFRA 21-1", "E2"; not "n=79"."""
    return bool(_ABBR_RE.match(text)) and abbreviation_capitals(text)


def abbreviation_capitals(text: str) -> bool:
    """Whether `text` is capitalised as an abbreviation is: two capitals, or one and a digit."""
    upper = sum(c.isupper() for c in text)
    return upper >= 2 or (upper == 1 and any(c.isdigit() for c in text))


def long_form_matches(abbr: str, long: str) -> bool:
    """Schwartz & Hearst (2003): the abbreviation's letters occur in order in the long form, the first
    one at the start of a word. Works on glued forms ("mammaliantargetofrapamycin" for mTOR)."""
    chars = [c.lower() for c in abbr if c.isalnum()]
    if abbr.endswith("s") and len(chars) > 2 and abbr[-2].isupper():
        chars = chars[:-1]  # "SREs", "CTCs": the plural s need not appear
    text = long.lower()
    pos = len(text) - 1
    for i in range(len(chars) - 1, -1, -1):
        while pos >= 0 and (text[pos] != chars[i] or (i == 0 and pos > 0 and text[pos - 1].isalnum())):
            pos -= 1
        if pos < 0:
            return False
        pos -= 1
    return True


def english_long_form(before: str, abbr: str) -> str | None:
    """The long form ending right before "(ABBR)" in English text, or None (Schwartz & Hearst)."""
    clause = re.split(r"[.;:()\[\]\n,]|[" + HAN + "]", before)[-1]
    words = clause.split()
    limit = min(len(abbr) + 5, 2 * len(abbr))
    words = words[-limit:]
    for i in range(len(words) - 1, -1, -1):  # shortest suffix of words that explains the abbreviation
        long = " ".join(words[i:])
        if _key(long) != _key(abbr) and long_form_matches(abbr, long):
            return long if len(_key(long)) > len(_key(abbr)) else None
    return None


class TermStats:
    """Occurrence counts of Chinese strings in a text and the variety of characters just left of them."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.text = "\n".join(texts)
        self._cache: dict[str, tuple[int, int]] = {}

    def stats(self, s: str) -> tuple[int, int]:
        """(occurrences, distinct left neighbours); punctuation, Latin and stop characters count as one."""
        if s not in self._cache:
            lefts = set()
            count = 0
            for m in re.finditer(re.escape(s), self.text):
                count += 1
                c = self.text[m.start() - 1] if m.start() else "#"
                lefts.add(c if HAN_RE.match(c) and c not in _STOP_CHARS else "#")
            self._cache[s] = (count, len(lefts))
        return self._cache[s]

    def count(self, s: str) -> int:
        return self.stats(s)[0]

    def attested(self, s: str) -> bool:
        """Recurs after different left contexts: a unit of its own, not a fragment of a longer phrase."""
        count, lefts = self.stats(s)
        return count >= 2 and lefts >= 2


def _run_before(text: str, pos: int) -> str | None:
    """The CJK run ending at text[pos] (one space allowed before the parenthesis), or None.

    A single hyphen between CJK characters joins ("上皮–间质转化"). A run glued to digits
    ("细胞角蛋白 19 片段") is a cut-off term and is rejected; a short run after a Latin word joins it
    ("POEMS综合征", "Trousseau’s 综合征", "M 蛋白").
    """
    end = pos - 1 if pos > 0 and text[pos - 1] == " " else pos
    i = end
    while i > 0 and end - i < _MAX_RUN:
        c = text[i - 1]
        if HAN_RE.match(c) or (c in "-–" and i - 2 >= 0 and HAN_RE.match(text[i - 2]) and i < end):
            i -= 1
        else:
            break
    if end - i < 1:
        return None
    run = text[i:end]
    j = i - 1 if i > 0 and text[i - 1] == " " else i
    if j > 0 and text[j - 1].isalnum():
        m = re.search(r"[A-Za-z][A-Za-z’']*$", text[max(0, j - 30) : j])
        if m and len(run) <= 3 and not text[j - 1].isdigit():
            return text[j - len(m.group()) : end]
        if len(run) <= 3:
            return None
    return run


def choose_zh_term(run: str, stats: TermStats) -> str | None:
    """The Chinese term at the end of `run` ("和肺栓塞" -> 肺栓塞), or None when unsure.

    1. Cut after the last stop word (jieba words); a cut at 的 leaves the modifier's scope unclear, so
       the definition is skipped ("肿瘤浸润的淋巴细胞(TIL)").
    2. Keep the rest if it has 2-12 characters after a stop word, 2-10 after punctuation; otherwise
       take its longest suffix that recurs as a unit ("肿瘤相关性静脉血栓栓塞" -> 静脉血栓栓塞).
    3. Extend back over a stop word when the term never occurs without that extension
       ("淋巴细胞比率" -> 中性粒细胞与淋巴细胞比率).
    """
    if not HAN_RE.search(run[-1]):
        return None
    latin = re.match(r"[A-Za-z][A-Za-z’']* ?", run)
    if latin:  # "POEMS综合征": the Latin word and the short CJK run are one term
        return run
    words = _jieba().lcut(run)
    starts = [0]
    for w in words[:-1]:
        starts.append(starts[-1] + len(w))
    cut, cut_word = 0, ""
    for i, w in enumerate(words[:-1]):
        if w in _STOP_WORDS or w.endswith(_STOP_ENDINGS):
            cut, cut_word = starts[i + 1], w
    if cut_word in _MODIFIERS:
        return None
    rest = run[cut:]
    limit = _MAX_ZH_AFTER_STOP if cut_word else _MAX_ZH
    zh: str | None = rest if 2 <= len(rest) <= limit else None
    if zh is None:
        zh = next(
            (
                run[s:]
                for s in starts
                if s >= cut and 3 <= len(run[s:]) <= _MAX_ZH and stats.attested(run[s:])
            ),
            None,
        )
    if zh and stats.count(zh) >= 2:
        for i, s in enumerate(starts):
            longer = run[s:]
            if s >= cut or len(longer) > _MAX_ZH_ATTESTED or words[i] in _STOP_WORDS:
                continue
            if (i == 0 or words[i - 1] in _STOP_WORDS) and stats.count(longer) == stats.count(zh):
                zh = longer
                break
    return zh


def _parse_parenthesis(content: str) -> tuple[str, str] | None:
    """(long form, abbreviation) stated in a parenthesis after a Chinese term, or None."""
    content = content.strip()
    if HAN_RE.search(content):
        return None
    if is_abbreviation(content):
        return "", content
    head, sep, tail = content.rpartition(",")
    if not sep:
        head, sep, tail = content.rpartition(";")
    if sep:
        # PDF extraction glues words; camel case at least can be split back ("EasternCooperative").
        long = re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", " ", " ".join(head.split()))
        abbr = tail.strip()
        if _LONG_RE.match(long) and is_abbreviation(abbr) and long_form_matches(abbr, long):
            return long, abbr
        return None
    if _LONG_RE.match(content) and re.search(r"[a-z]{3}", content) and not re.search(r"\d", content):
        return " ".join(content.split()), ""
    return None


def _mine(doc: Document) -> tuple[list[Term], list[tuple[str, Term]]]:
    """Definitions, and Chinese definitions whose term could not be delimited, with their CJK run:
    another paper defining the same abbreviation may settle them ("均表达血管内皮生长因子(VEGF)").

    Recurrence is judged within the paper (papers repeat their own terms), which keeps mining linear
    in the corpus size; agreement across papers is resolved when the definitions are merged."""
    stats = TermStats([doc.text])
    found, pending = [], []
    for m in _PAREN_RE.finditer(doc.text):
        before = doc.text[max(0, m.start() - 200) : m.start()]
        run = _run_before(doc.text, m.start())
        if run:
            parsed = _parse_parenthesis(m.group(1))
            zh = choose_zh_term(run, stats) if parsed else None
            if parsed and zh:
                found.append(Term(zh, parsed[0], parsed[1], (doc.doc_id,)))
            elif parsed:
                pending.append((run, Term("", parsed[0], parsed[1], (doc.doc_id,))))
        elif re.search(r"[A-Za-z]$", before.rstrip()) and is_abbreviation(m.group(1).strip()):
            abbr = m.group(1).strip()
            long = english_long_form(before, abbr)
            if long:
                found.append(Term("", long, abbr, (doc.doc_id,)))
    return found, pending


def _merge(raw: list[Term], pending: Iterable[tuple[str, Term]] = ()) -> list[Term]:
    """Link English definitions to Chinese terms through shared abbreviations, prefer the shortest
    Chinese form that several definitions agree on, and drop entries that a fuller one covers."""
    zh_by_abbr: dict[str, set[str]] = defaultdict(set)
    en_by_zh: dict[str, set[str]] = defaultdict(set)
    for t in raw:
        if t.zh and t.abbr:
            zh_by_abbr[t.abbr].add(t.zh)
        if t.zh and t.en:
            en_by_zh[t.zh].add(_key(t.en))

    def same_sense(zh: str, en: str) -> bool:
        # One abbreviation can name different things in different papers (PR: partial response,
        # progesterone receptor); long forms that start alike are taken to agree.
        return not en or not en_by_zh[zh] or any(k[:4] == _key(en)[:4] for k in en_by_zh[zh])

    for run, t in pending:  # a term another paper defines for the same abbreviation ends the run
        known = [z for z in zh_by_abbr.get(t.abbr, ()) if run.endswith(z) and same_sense(z, t.en)]
        if known:
            raw = [*raw, Term(max(known, key=len), t.en, t.abbr, t.docs)]
    # "跨膜糖蛋白组织因子(TF)" and "组织因子(tissue factor, TF)": TF is 组织因子
    rename = {}
    for forms in zh_by_abbr.values():
        for long in forms:
            shorter = [f for f in forms if f != long and long.endswith(f) and len(f) >= 2]
            if shorter:
                rename[long] = min(shorter, key=len)
    linked = []
    for t in raw:
        zh = rename.get(t.zh, t.zh)
        if t.zh:
            linked.append(Term(zh, t.en, t.abbr, t.docs))
        elif senses := [z for z in zh_by_abbr.get(t.abbr, ()) if same_sense(z, t.en)]:
            linked.extend(Term(rename.get(z, z), t.en, t.abbr, t.docs) for z in senses)
        else:
            linked.append(t)
    # One entry per (zh, long form key, abbreviation); prefer the spelling with spaces.
    merged: dict[tuple[str, str, str], Term] = {}
    for t in linked:
        k = (t.zh, _key(t.en), t.abbr)
        old = merged.get(k)
        if old is None:
            merged[k] = t
        else:
            en = max((old.en, t.en), key=lambda e: e.count(" "))
            merged[k] = Term(t.zh, en, t.abbr, tuple(sorted(set(old.docs) | set(t.docs))))
    full = {k: t for k, t in merged.items() if t.en and t.abbr}
    extra_docs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    out = []
    for t in merged.values():
        covering = [
            k
            for k, f in full.items()
            if f.zh == t.zh and ((not t.en and f.abbr == t.abbr) or (not t.abbr and k[1] == _key(t.en)))
        ]
        if covering:  # keep the fuller entry, with this one's sources
            extra_docs[covering[0]].update(t.docs)
        else:
            out.append(t)
    out = [
        Term(t.zh, t.en, t.abbr, tuple(sorted(set(t.docs) | extra_docs[(t.zh, _key(t.en), t.abbr)])))
        for t in out
    ]
    return sorted(out, key=lambda t: (t.zh == "", t.zh, t.abbr, t.en))


def longest_first(found: list[Match]) -> list[Match]:
    """The matches kept, longest first without overlaps (the same span may hold several terms), in
    text order."""
    found = sorted(found, key=lambda m: (-(m.end - m.start), m.start))
    taken: list[Match] = []
    for m in found:
        if all(m.end <= t.start or m.start >= t.end or (m.start, m.end) == (t.start, t.end) for t in taken):
            taken.append(m)
    return sorted(taken, key=lambda m: (m.start, m.zh))


class Glossary:
    """Chinese <-> English terms with lookups in both directions."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = tuple(terms)
        self._by_zh: dict[str, list[Term]] = defaultdict(list)
        self._by_key: dict[str, list[Term]] = defaultdict(list)  # English long form / abbreviation keys
        for t in self.terms:
            if t.zh:
                self._by_zh[t.zh].append(t)
            for form in (t.en, t.abbr):
                if form:
                    self._by_key[_key(form)].append(t)
        self._max_words = max((len(_WORD_RE.findall(t.en or t.abbr)) for t in self.terms), default=1)
        self._max_zh = max((len(z) for z in self._by_zh), default=0)
        # What a window must start with to be worth looking up: a text of a few hundred characters has
        # thousands of windows and almost none begins a term. The lengths of the Chinese terms by their
        # first two characters, and every prefix of an English key (and of a key with the plural "s"
        # that `_key` folds) so that a window of words stops growing once no key begins with it.
        # (The prefixes are as many as the keys' characters: a few thousand for a few hundred terms.)
        lengths: dict[str, set[int]] = defaultdict(set)
        for zh in self._by_zh:
            lengths[zh[:2]].add(len(zh))
        self._zh_lengths = {head: tuple(sorted(n)) for head, n in lengths.items()}
        self._key_prefixes = {
            k[:i] for key in self._by_key for k in (key, key + "s") for i in range(1, len(k) + 1)
        }
        # Answers match the same corpus sentences again and again (scoring, glosses, twins).
        self._matches: dict[str, tuple[Match, ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def build(cls, documents: Iterable[Document]) -> Glossary:
        found, pending = [], []
        for doc in documents:
            terms, unsure = _mine(doc)
            found += terms
            pending += unsure
        return cls(_merge(found, pending))

    def to_json(self) -> str:
        rows = [{"zh": t.zh, "en": t.en, "abbr": t.abbr, "docs": list(t.docs)} for t in self.terms]
        return json.dumps({"version": GLOSSARY_VERSION, "terms": rows}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Glossary:
        data = json.loads(text)
        if data.get("version") != GLOSSARY_VERSION:
            raise ValueError(
                f"glossary version {data.get('version')!r} is not {GLOSSARY_VERSION}; rebuild the index."
            )
        try:
            return cls([Term(r["zh"], r["en"], r["abbr"], tuple(r.get("docs", ()))) for r in data["terms"]])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"glossary JSON lacks the key {exc}; rebuild the index.") from None

    def gloss(self, zh: str) -> str:
        """The best English gloss of a Chinese term: long form with abbreviation when one entry has both."""
        terms = self._by_zh.get(zh, [])
        if not terms:
            return ""
        return self._best(terms).gloss()

    @staticmethod
    def _best(terms: list[Term]) -> Term:
        # Long form and abbreviation together, spaced rather than glued, widely used, then the shortest.
        return max(
            terms, key=lambda t: (bool(t.en and t.abbr), bool(t.en), " " in t.en, len(t.docs), -len(t.en))
        )

    def matches(self, text: str) -> list[Match]:
        """Terms in `text`, longest first without overlaps, returned in text order.

        Chinese terms match as substrings; long forms and abbreviations match whole words,
        case-insensitively except for short abbreviations ("OS", "PE").
        """
        cached = self._matches.get(text)
        if cached is None:
            cached = tuple(self._find(text))
            with self._lock:  # questions are answered in several threads at once
                if len(self._matches) >= _MATCH_CACHE:
                    self._matches.pop(next(iter(self._matches)))  # oldest first
                self._matches[text] = cached
        return list(cached)

    def _find(self, text: str) -> list[Match]:
        found: list[Match] = []
        for i in range(len(text) - 1):  # windows, not one scan per term: cost does not grow with the glossary
            for n in self._zh_lengths.get(text[i : i + 2], ()):
                if i + n <= len(text) and (terms := self._by_zh.get(text[i : i + n])):
                    found.append(Match(i, i + n, text[i : i + n], tuple(terms)))
        words = list(_WORD_RE.finditer(text))
        for i, first in enumerate(words):
            raw = ""
            for last in words[i : i + self._max_words]:
                raw += _raw_key(last.group())
                if raw not in self._key_prefixes:
                    break  # no key begins with these words: neither will a longer window
                surface = text[first.start() : last.end()]
                terms = [t for t in self._by_key.get(_key(surface), []) if self._names(t, surface)]
                for zh in dict.fromkeys(t.zh for t in terms):
                    found.append(Match(first.start(), last.end(), zh, tuple(terms)))
        return longest_first(found)

    @staticmethod
    def _names(term: Term, surface: str) -> bool:
        """Whether `surface` is the term's long form or (in the right case) its abbreviation."""
        if term.en and _key(term.en) == _key(surface):
            return True
        if not term.abbr or _key(term.abbr) != _key(surface):
            return False
        return surface == term.abbr if _case_sensitive(term.abbr) else True

    def zh_terms_for(self, english_text: str) -> list[str]:
        """Chinese terms whose long form or abbreviation appears in the text, in text order."""
        latin = [m for m in self.matches(english_text) if not HAN_RE.search(english_text[m.start : m.end])]
        return list(dict.fromkeys(m.zh for m in latin if m.zh))

    def en_terms_for(self, chinese_text: str) -> list[tuple[str, str]]:
        """(Chinese term, English gloss) for the Chinese terms occurring in the text, in text order."""
        zh = [m.zh for m in self.matches(chinese_text) if chinese_text[m.start : m.end] == m.zh]
        return [(z, self.gloss(z)) for z in dict.fromkeys(zh) if self.gloss(z)]

    def expand_query(self, question: str, lang: str) -> str:
        """The question plus the other language's names for its terms (for BM25 and dense search).

        English question: + Chinese terms (+ abbreviations, which the Chinese body text uses bare).
        Chinese question: + abbreviations and long forms (+ Chinese terms for bare abbreviations).
        """
        if lang not in ("zh", "en"):
            raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}.")
        extra: list[str] = []
        for m in self.matches(question):
            if question[m.start : m.end] != m.zh:  # an English name: add the Chinese term
                extra.extend([m.zh] if m.zh else [])
                extra.extend(t.abbr for t in m.terms if t.abbr and t.zh == m.zh)
                continue
            best = self._best(self._by_zh[m.zh])
            extra.extend(dict.fromkeys(t.abbr for t in self._by_zh[m.zh] if t.abbr))
            if lang == "zh" and best.en:
                extra.append(best.en)
        low = question.lower()
        extra = [e for e in dict.fromkeys(extra) if e.lower() not in low]
        return " ".join([question, *extra]) if extra else question

"""The drugs, diseases and acronyms a question names, and whether an answer's quotes name them too.

A question may name something the papers do mention and ask what they never say: "POEMS综合征患者
使用硼替佐米的疗效如何？" of a case report that lists 硼替佐米 among the treatments but gives no
result for it. Its best sentences are about the topic (来那度胺 for POEMS), score as high as any answer,
and name neither the drug nor anything about it. The name gives it away: an answer whose quotes never
name a drug or disease the question asks about answers another question. `rag.query.unknown_names` refuses
names the papers never write; this module finds the names they do write, so the answerer can refuse a
choice of quotes that leaves one out.

A quote also names what its paper is about: a paper on everolimus reports "口腔溃疡为主要不良反应"
without naming the drug again. What a paper is about is what its title and abstract name.

Names are found as `rag.query.unknown_names` finds them: Chinese drug names by their endings
(`rag.terms.drug_names`), English ones by their endings too, and Chinese disease names (jieba dictionary
words ending in 癌, 瘤, 炎, 症 or 病). A quote names an English drug when it writes the word, one of the
papers' Chinese names that sounds like it, or a translated name of its class that the papers use.

Genes, markers and other acronyms (KRAS, NSE, CYFRA 21-1) are names too, in questions of either
language: "血清 NSE 诊断肺癌骨转移的敏感度" is not answered by the sentence giving CYFRA 21-1's. Only
acronyms the papers write are checked, since a Chinese paper may write LMWH as 低分子肝素 alone; a
quote names one by writing it or what the glossary says it stands for (神经元特异性烯醇酸酶).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass

from rag.ingest.chunking import ABSTRACT_LABELS, find_sections
from rag.ingest.sentences import points_back, previous_start
from rag.knowledge import domain_blocks
from rag.query.unknown_names import HAN_RUN, common_word, disease_name, writes_disease
from rag.terms.drug_names import DrugNames, zh_drug_endings
from rag.terms.glossary import Glossary, abbreviation_capitals
from rag.terms.lexical import _jieba
from rag.types import Document, Quote

_SPACES = re.compile(r"\s+")


# A gene, marker or acronym: two capitals (KRAS, NSE, mTOR) or a capital and a digit (G12C, ROS-1),
# with the numbers a marker name may carry (rag/data/domain/medical.json): a number after a space when
# a hyphen follows it (CYFRA 21-1).
_NUMBER_SUFFIX = "|".join(s for _, a in domain_blocks("acronyms") for s in a["number_suffixes"])
_ACRONYM = re.compile(rf"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:{_NUMBER_SUFFIX})?(?![A-Za-z0-9])")


@dataclass(frozen=True)
class Name:
    text: str  # as the question writes it
    forms: tuple[str, ...]  # a quote holding any of these names it (English forms are lower-case)
    disease: bool = False  # a disease name also counts in a variant form (血栓症 / 血栓栓塞症)
    acronym: bool = False  # forms are matched as written, as whole words (MET is not in METROS)

    def named_in(self, text: str) -> bool:
        flat = _SPACES.sub("", text)  # extracted text spaces Chinese out ("依 维 莫 司")
        if self.disease:
            return writes_disease(self.text, flat)
        if self.acronym:
            # Judged on the text as written: squashing its spaces would glue "SITA HLN" into one word.
            return any(_writes_acronym(_squash(form), text) for form in self.forms)
        lower = text.lower()
        return any(form in flat or form in lower for form in self.forms)


def _squash(text: str) -> str:
    """Spaces and hyphens removed: "CYFRA 21-1", "CYFRA21-1" and "ROS-1" / "ROS1" are one name."""
    return re.sub(r"[\s\-–]", "", text)


def _writes_acronym(form: str, text: str) -> bool:
    """Whether `text` writes squashed `form` as a whole word, with or without the spaces and hyphens
    inside it ("CYFRA 21-1" / "CYFRA21-1", "ROS-1" / "ROS1")."""
    # Not an acronym: what one stands for, from the glossary (神经元特异性烯醇酸酶, a long form).
    if not abbreviation_capitals(form):
        return form.lower() in _SPACES.sub("", text).lower()
    inner = r"[\s\-–]?".join(map(re.escape, form))
    return re.search(rf"(?<![A-Za-z]){inner}(?![A-Za-z])", text) is not None


def paper_acronyms(texts: Iterable[str]) -> frozenset[str]:
    """The gene, marker and acronym names the papers write (squashed, as written)."""
    return frozenset(_squash(t) for text in texts for t in _acronyms_in(text))


# Words capitalised like acronyms that are not names: Roman numerals (Elizabeth II, Block III).
_NOT_ACRONYM = re.compile(
    "|".join(f"(?:{p})" for _, a in domain_blocks("acronyms") for p in a.get("not_acronyms", ())) or "(?!)"
)


def _acronyms_in(text: str) -> list[str]:
    return [
        m.group()
        for m in _ACRONYM.finditer(text)
        if abbreviation_capitals(m.group()) and not _NOT_ACRONYM.fullmatch(m.group())
    ]


def question_names(
    question: str,
    drugs: DrugNames,
    is_common: Callable[[str], bool] = common_word,
    acronyms: Container[str] = frozenset(),
    glossary: Glossary | None = None,
) -> list[Name]:
    """The drug and disease names of a question, in the order found (each once), then the gene,
    marker and acronym names of it that the papers write (`acronyms`, from `paper_acronyms`; the
    glossary adds what one stands for: NSE = 神经元特异性烯醇酸酶)."""
    names: dict[str, Name] = {}
    for m, ending in zh_drug_endings(question, is_common):
        # Where the name starts is unknown (使用硼替佐米): the last character before the ending is
        # part of it, and with the ending it is distinctive enough (替佐米, 维莫司).
        core = m.group(1)[-1] + ending
        names.setdefault(core, Name(m.group(1) + ending, (core,)))
    for word, stem in drugs.en_drug_words(question):
        names.setdefault(word, Name(word, drugs.written_forms(word, stem)))
    jieba = _jieba()
    for run in HAN_RUN.findall(question):
        for word in jieba.lcut(run, HMM=True):
            if jieba.FREQ.get(word, 0) > 0 and disease_name(word):
                names.setdefault(word, Name(word, (word,), disease=True))
    # An acronym the papers never write proves nothing (they may write LMWH as 低分子肝素 only), so
    # only those they write are checked.
    written = [w for w in _acronyms_in(question) if _squash(w) in acronyms]
    if written:
        defined = glossary.matches(question) if glossary is not None else []
        for word in written:
            if word.lower() in names:
                continue
            forms = [word]
            for m in defined:
                if question[m.start : m.end] == word:
                    forms += [m.zh, *(x for t in m.terms for x in (t.en, t.abbr))]
            names[word.lower()] = Name(word, tuple(dict.fromkeys(f for f in forms if f)), acronym=True)
    return list(names.values())


def unquoted(
    names: Iterable[Name], quotes: Iterable[Quote], documents: Mapping[str, Document], in_place: bool = False
) -> list[str]:
    """The names that no quote names, neither itself nor by its paper's title and abstract; `in_place`:
    nor, for a quote that points back ("该研究共入组41例…"), by the sentence before it on its line
    ("一项前瞻性实验研究发现小剂量来那度胺联合地塞米松…")."""
    texts = []
    for q in quotes:
        texts.append(q.text)
        if q.doc_id in documents:
            doc = documents[q.doc_id]
            texts.append(_about(doc))
            if in_place and points_back(q.text) and q.matches(doc.text):
                texts.append(doc.text[previous_start(doc.text, q.start) : q.start])
    return [n.text for n in names if not any(n.named_in(t) for t in texts)]


def _about(doc: Document) -> str:
    return _title_and_abstract(doc.title, doc.text, doc.lang)


@functools.lru_cache(maxsize=256)  # per document: every answer from it asks again
def _title_and_abstract(title: str, text: str, lang: str) -> str:
    sections = find_sections(text, lang)
    abstracts = [text[s.start : s.end] for s in sections if s.path and s.path[0] in ABSTRACT_LABELS]
    return "\n".join([title, *abstracts])

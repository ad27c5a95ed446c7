"""Heading patterns of Chinese and English papers, shared by the normaliser and the chunker.

`parse_heading` is stateless: it says whether one normalised line looks like a heading. The chunker
then accepts numbered headings only in sequence, which rejects table rows such as `159 KRAS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.knowledge import domain_blocks
from rag.lang import HAN

_CN_NUM = "一二三四五六七八九十"
# Title of a numbered heading: starts with a letter or CJK, short, and no sentence punctuation.
_TITLE = rf"(?P<title>[A-Za-z{HAN}][^，。,;；:：!?！？]{{0,38}})"
_NUMBERED = re.compile(rf"^(?P<num>\d{{1,2}}(?:\.\d{{1,2}}){{0,3}})(?:\.\s*|\s+){_TITLE}$")
_CN_TOP = re.compile(rf"^(?P<num>[{_CN_NUM}]{{1,3}})[、.]\s*{_TITLE}$")
_CN_SUB = re.compile(rf"^[(（](?P<num>[{_CN_NUM}]{{1,3}})[)）]\s*{_TITLE}$")
_MARKDOWN = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>\S.{0,78})$")


def _labels(kind: str) -> str:
    """The section labels of `kind` in every language (rag/data/domain/papers.json), as one alternation."""
    return "|".join(label for _, sections in domain_blocks("sections") for label in sections.get(kind, ()))


# Labels are regex pieces ("Key\s?words", "Conclusions?"), except abstract labels: headings say them
# as written, so `ABSTRACT_LABELS` holds what `parse_heading` returns for an abstract.
ABSTRACT_LABELS = tuple(label for _, sections in domain_blocks("sections") for label in sections["abstract"])
ABSTRACT_LABELS_BY_LANG = {lang: tuple(sections["abstract"]) for lang, sections in domain_blocks("sections")}
# Names of the sections a paper leaves untitled (text before its first heading) and of a paper with no
# headings, by language.
UNTITLED = {lang: sections["untitled"] for lang, sections in domain_blocks("sections")}
WHOLE = {lang: sections["whole"] for lang, sections in domain_blocks("sections")}
_ABSTRACT = re.compile(rf"^[\[【]?(?P<title>{'|'.join(map(re.escape, ABSTRACT_LABELS))})[\]】]?\s*[:：]?$")
_KEYWORDS = re.compile(rf"^[\[【]?(?P<title>{_labels('keywords')})[\]】]?\s*[:：]?$")
_NAMED = re.compile(rf"^(?P<title>{_labels('named')})$", re.I)
# The labels of a structured abstract ("OBJECTIVE", "Results:"), on their own line or running into
# the text: after a colon or full stop in any case ("Results. Participants…"), or in capitals before
# a capitalised word ("OBJECTIVE To determine…"). Longer labels come first in the data.
_STRUCTURED_LABELS = _labels("structured")
_STRUCTURED = re.compile(rf"^(?P<title>(?i:{_STRUCTURED_LABELS}))\s*[:：.]?$") if _STRUCTURED_LABELS else None

# Run-in headings in the raw PDF text: "１．１　一般资料　２０１３年…" and "［摘要］　目的：…".
_RUN_IN_NUMBERED = re.compile(
    r"^(?P<head>[\s\u3000]*[0-9０-９]{1,2}(?:[.．][0-9０-９]{1,2})+\u3000+[^\u3000]{2,30}?)\u3000+(?P<rest>\S.*)$"
)
_RUN_IN_LABEL = re.compile(
    rf"^[\s\u3000]*(?P<head>[［【\[](?:{_labels('run_in_bracketed')})[］】\]]|(?:{_labels('run_in_colon')})\s*[:：])"
    r"[\s\u3000]*(?P<rest>\S.*)$",
    re.I,
)

# Where a label opens a part of a structured abstract: a line's start, or after a sentence's end
# ("…thrombosis. DESIGN Randomised trial."), as PubMed prints an abstract in one paragraph.
_STRUCTURED_AT = (
    re.compile(
        rf"(?:^[\s\u3000]*|(?<=[.!?。])\s+)(?P<head>(?i:{_STRUCTURED_LABELS}))"
        r"(?P<mark>\s*[:：.]\s*(?=\S)|\s+(?=[A-Z][a-z]|\d))"
    )
    if _STRUCTURED_LABELS
    else None
)


def _split_structured(line: str) -> list[str]:
    """A line cut before and after each structured-abstract label in it (the label without its mark)."""
    pieces, pos = [], 0
    for m in _STRUCTURED_AT.finditer(line) if _STRUCTURED_AT else ():
        if m.start() < pos or not (m["mark"].strip() or m["head"].isupper()):
            continue  # a capitalised word is a label only in capitals ("Setting up…" is not)
        if before := line[pos : m.start("head")].strip():
            pieces.append(before)
        pieces.append(m["head"])
        pos = m.end()
    return [*pieces, line[pos:]] if pieces else [line]


@dataclass(frozen=True)
class Heading:
    kind: str  # "numbered", "cn", "abstract", "keywords", "structured", "named", "markdown"
    level: int
    number: tuple[int, ...]  # empty unless kind == "numbered" or "cn"
    label: str  # canonical section label, e.g. "2.3 ALK 基因突变与 VTE 的研究"


def split_run_in_heading(raw_line: str) -> list[str]:
    """Split a raw line whose heading runs into body text into [heading, body] (for a structured
    abstract in one paragraph: [text, label, text, label, text])."""
    m = _RUN_IN_NUMBERED.match(raw_line)
    if m:
        return [m["head"], m["rest"]]
    m = _RUN_IN_LABEL.match(raw_line)
    if m:
        # keep the heading without its colon so it stands alone as a heading line
        return [m["head"].rstrip(":：").strip(), m["rest"]]
    return _split_structured(raw_line)


def _cn_value(num: str) -> int:
    """一..九十九 to int (enough for section numbers)."""
    digits = {c: i + 1 for i, c in enumerate(_CN_NUM)}
    if num == "十":
        return 10
    if num.startswith("十"):
        return 10 + digits[num[1]]
    if "十" in num:
        tens, _, ones = num.partition("十")
        return digits[tens] * 10 + (digits[ones] if ones else 0)
    return digits[num]


def _plausible_title(title: str) -> bool:
    """Reject table rows that look like numbered headings ("3 PR >7 >7 5 10 1级口腔溃疡")."""
    if re.search(r"[<>=%±~]", title):
        return False
    chars = [c for c in title if not c.isspace()]
    return sum(c.isdigit() for c in chars) <= 0.3 * len(chars)


def parse_heading(line: str) -> Heading | None:
    """Return the heading a normalised line states, or None."""
    line = line.strip()
    if not line or len(line) > 60:
        return None
    if (m := _NUMBERED.match(line)) and _plausible_title(m["title"]):
        number = tuple(int(p) for p in m["num"].split("."))
        return Heading("numbered", len(number), number, f"{m['num']} {m['title'].strip()}")
    if m := _ABSTRACT.match(line):
        return Heading("abstract", 1, (), m["title"])
    if m := _KEYWORDS.match(line):
        return Heading("keywords", 2, (), m["title"])
    if m := _CN_TOP.match(line):
        return Heading("cn", 1, (_cn_value(m["num"]),), f"{m['num']}、{m['title'].strip()}")
    if m := _CN_SUB.match(line):
        return Heading("cn", 2, (_cn_value(m["num"]),), f"（{m['num']}）{m['title'].strip()}")
    if m := _MARKDOWN.match(line):
        return Heading("markdown", len(m["hashes"]), (), m["title"].strip())
    # On its own line a label is capitalised: a lower-case "patients" is a word cut off a table cell.
    if _STRUCTURED and (m := _STRUCTURED.match(line)) and m["title"][0].isupper():
        # level 2: a part of the abstract when one is open (the chunker decides, rag/ingest/chunking.py)
        return Heading("structured", 2, (), m["title"])
    if m := _NAMED.match(line):
        return Heading("named", 1, (), m["title"])
    return None


def is_heading_line(line: str) -> bool:
    return parse_heading(line) is not None

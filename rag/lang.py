"""Language of a question or passage: "zh" or "en"."""

from __future__ import annotations

import re

from rag.knowledge import language

# The Han characters, as a character-class body: CJK Unified Ideographs, Extension A and the
# compatibility ideographs. The one definition every module uses (`f"[{HAN}]"`).
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN_RE = re.compile(f"[{HAN}]")
_WORD = re.compile(r"[A-Za-z]+")
# Function words (rag/data/lang/en.json) show an English sentence even when it names Chinese terms ("What is 特鲁索综合征?").
_EN_FUNCTION = frozenset(language("en")["function_words"])


def detect_lang(text: str) -> str:
    """The language of a passage, by its share of Han characters against English words: a Chinese
    chunk that quotes an English title is still Chinese."""
    cjk = len(HAN_RE.findall(text))
    if cjk == 0:
        return "en"
    return "zh" if cjk >= len(_WORD.findall(text)) else "en"


def question_lang(text: str) -> str:
    """The language of a question: an English one may name Chinese terms ("What is 特鲁索综合征?"),
    so a short text with two English function words is English whatever its Han share."""
    if HAN_RE.search(text) and len(text) < 300:
        words = [w.lower() for w in _WORD.findall(text)]
        if sum(w in _EN_FUNCTION for w in words) >= 2:
            return "en"
    return detect_lang(text)

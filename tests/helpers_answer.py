"""The extractive answerer without a pipeline: a question analysed from its text alone, the refusal
rules of the quotes stage, and an embedder (or none) instead of retrieval's signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rag.abstain.rules import QUOTES, first_refusal, refusal_rules
from rag.answer.compose import Scorer, compose_answer
from rag.query.analysis import analyse_text
from rag.query.names import Name
from rag.settings import AnswerSettings, RefusalSettings, ScoringSettings, Settings
from rag.terms.glossary import Glossary
from rag.types import Answer, Document, Hit


def compose(
    question: str,
    lang: str,
    hits: Sequence[Hit],
    documents: Mapping[str, Document],
    *,
    settings: AnswerSettings,
    glossary: Glossary | None = None,
    embedder=None,
    names: Sequence[Name] = (),
    refusal: RefusalSettings | None = None,
    scoring: ScoringSettings | None = None,
) -> Answer:
    scoring = scoring or ScoringSettings()
    query = analyse_text(question, lang, glossary, scoring.glossary_weight, tuple(names))
    tree = Settings(answer=settings, refusal=refusal or RefusalSettings(), scoring=scoring)
    rules = refusal_rules(tree, documents, evidence=lambda q, h: 1.0)
    return compose_answer(
        query,
        hits,
        documents,
        settings=settings,
        scorer=Scorer(glossary, embedder, None, scoring),
        judge=lambda draft: first_refusal(rules, QUOTES, query, hits, draft),
        analyse_part=lambda text: analyse_text(
            text, glossary=glossary, glossary_weight=scoring.glossary_weight
        ),
    )

"""The question-answering pipeline: load an index, retrieve, answer with verified quotes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.index import Index
from rag.lang import detect_lang
from rag.retrieval import MODES, RetrievalSettings, Retriever
from rag.types import Answer, Chunk, Document, Hit, Quote

if TYPE_CHECKING:
    from rag.embedding import Embedder

__all__ = ["MODES", "Pipeline", "QuestionError"]

MAX_QUESTION_CHARS = 1000


class QuestionError(ValueError):
    """The question cannot be asked as given; the message says how to fix it."""


def check_question(question: str) -> str:
    question = (question or "").strip()
    if not question:
        raise QuestionError("Ask a question: the text is empty. / 请输入问题。")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(question)} characters long; keep it under {MAX_QUESTION_CHARS} "
            f"(ask about one thing at a time). / 问题过长（{len(question)} 字），请控制在 {MAX_QUESTION_CHARS} 字以内。"
        )
    return question


def embedder_for(manifest_model_id: str, model: str | None) -> Embedder:
    """The embedder to query an index with: the one named, else the one the index was built with."""
    from rag.embedding import SentenceTransformerEmbedder
    from rag.models import DEFAULT_MODEL

    if model is None:
        model = DEFAULT_MODEL if manifest_model_id.startswith(DEFAULT_MODEL) else manifest_model_id
    return SentenceTransformerEmbedder(model)


class Pipeline:
    def __init__(self, index: Index, embedder: Embedder, retrieval: RetrievalSettings | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.retriever = Retriever(index, embedder, retrieval)

    @classmethod
    def load(
        cls, index_dir: str | Path, model: str | None = None, embedder: Embedder | None = None
    ) -> Pipeline:
        """Open an index; the model is loaded lazily, on the first question."""
        from rag.index_store import read_manifest

        if embedder is None:
            embedder = embedder_for(read_manifest(Path(index_dir))["model_id"], model)
        return cls(Index.load(index_dir, embedder), embedder)

    def reload(self) -> None:
        """Re-open the index folder after it was rebuilt (e.g. after an upload)."""
        self.index = Index.load(self.index.index_dir, self.embedder)
        self.retriever = Retriever(self.index, self.embedder, self.retriever.settings)

    @property
    def documents(self) -> dict[str, Document]:
        return self.index.documents

    @property
    def chunks(self) -> list[Chunk]:
        return self.index.chunks

    def status(self) -> dict:
        m = self.index.manifest
        return {
            "index_dir": str(self.index.index_dir),
            "model": m["model_id"],
            "documents": len(self.index.documents),
            "chunks": len(self.index.chunks),
            "built_at": m.get("built_at", ""),
        }

    def retrieve(self, question: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        return self.retriever.search(check_question(question), k, mode)

    def ask(self, question: str, k: int = 5, mode: str = "hybrid") -> Answer:
        question = check_question(question)
        lang = detect_lang(question)
        hits = self.retriever.search(question, k, mode)
        if not hits:
            return Answer(
                question,
                lang,
                True,
                "The documents do not answer this." if lang == "en" else "文档中未找到答案。",
            )
        best = hits[0].chunk
        quote = Quote(1, best.doc_id, best.title, best.section, best.start, best.end, best.text)
        return Answer(question, lang, False, f"「{best.text}」[1]", (quote,), tuple(hits))

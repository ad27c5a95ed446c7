"""The index's derived stores beyond chunk vectors: sentence units and their vectors, the cross-lingual
(USE) vectors, the mined glossary and the induced lexicon. Built after the chunks, reused by text.

Sentence-level vectors let a short question match the one sentence that answers it, which a
400-character chunk vector blurs; the same sentences embedded in place (section name and the sentence
before, `rag.ingest.sentences.context_text`) help the answerer pick the sentence that answers; the cross-lingual
vectors rank Chinese passages for English questions.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.indexing import store
from rag.indexing.vectors import VectorIndex
from rag.ingest.sentences import chunk_sentences, context_text
from rag.terms.glossary import Glossary
from rag.terms.lexicon import EN_VECTORS_FILE, EN_VOCAB_FILE, VECTORS_FILE, VOCAB_FILE, Lexicon
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from rag.encode.embedding import Embedder
    from rag.indexing.checkpoint import EmbedCheckpoint

MIN_SENTENCE_CHARS = 8  # shorter fragments ("1.1 一般资料", "[25]。") carry no fact
EMBED_BATCH = 32
SENTENCES = "sentences.npy"  # int64 rows: chunk position, start, end (offsets into the document)
SENTENCE_EMBEDDINGS = "sentence_embeddings.npy"
CONTEXT_EMBEDDINGS = "context_embeddings.npy"  # e5, one row per sentence, embedded in place
# The manifest's "sentence_context": which texts `context_text` makes (1, written as true: the section's
# name even when a placeholder; 2: the "(Text)" of a text without sections replaced by the document's
# title). Vectors of another version are not reused; an index of another version is rebuilt by
# `rag index` (its in-place vectors only).
CONTEXT_VERSION = 2
# e5 *query* vectors of the papers' titles, one row per title in `paper_titles` order: the answerer
# compares sentences with the title asked as a question (rag.answer.signals), and stored, no question
# pays an e5 call for a title (an older index: the first question meeting a paper did). The manifest's
# "title_vectors".
TITLE_EMBEDDINGS = "title_embeddings.npy"
TITLE_VERSION = 1
XL_EMBEDDINGS = "xl_embeddings.npy"  # cross-lingual encoder, one row per chunk
XL_SENTENCE_EMBEDDINGS = "xl_sentence_embeddings.npy"
XL_FAISS = "xl_faiss.index"
# The manifest's "english_lexicon": the English words of the English passages, for Chinese questions
# (rag.terms.lexicon; 2: as written, "diabetes", where 1 held BM25's "diabete"). An index without it,
# or with another version, gains it from the next `rag index`, which embeds nothing else.
EN_LEXICON_VERSION = 2
GLOSSARY = "glossary.json"


class PhaseTimer:
    """Seconds per named step of a build (BuildReport.phases), so a slow build says where time went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class Extras:
    sentences: np.ndarray  # (n_sentences, 3) int64
    sentence_texts: list[str]
    sentence_vectors: np.ndarray  # e5 passage vectors of the sentences
    glossary: Glossary
    crosslingual_id: str | None = None  # None: the index has no cross-lingual vectors
    xl_vectors: np.ndarray | None = None
    xl_sentence_vectors: np.ndarray | None = None
    xl_index: VectorIndex | None = None
    lexicon: Lexicon | None = None  # Chinese words, induced for English questions
    english_lexicon: Lexicon | None = None  # English words, induced for Chinese questions
    context_vectors: np.ndarray | None = None  # None: an index built before they were added
    title_vectors: np.ndarray | None = None  # rows in `paper_titles` order; None: an older index
    title_rows: dict[str, int] | None = None  # title -> its row of title_vectors

    def stored_titles(self, titles: Sequence[str]) -> dict[str, np.ndarray]:
        """The e5 query vectors the index holds for these paper titles (those it has)."""
        if self.title_vectors is None or self.title_rows is None:
            return {}
        return {t: np.asarray(self.title_vectors[self.title_rows[t]]) for t in titles if t in self.title_rows}

    def chunk_sentence_ranges(self, n_chunks: int) -> np.ndarray:
        """(n_chunks, 2): the rows of `sentences` that belong to each chunk (rows are grouped by chunk)."""
        owners = self.sentences[:, 0]
        starts = np.searchsorted(owners, np.arange(n_chunks), side="left")
        ends = np.searchsorted(owners, np.arange(n_chunks), side="right")
        return np.stack([starts, ends], axis=1)


def sentence_units(chunks: list[Chunk], documents: dict[str, Document]) -> tuple[np.ndarray, list[str]]:
    """Sentences of every chunk, in chunk order; a chunk with no real sentence is one unit itself."""
    rows: list[tuple[int, int, int]] = []
    texts: list[str] = []
    for pos, chunk in enumerate(chunks):
        text = documents[chunk.doc_id].text
        spans = [
            (s, e) for s, e in chunk_sentences(text, chunk.start, chunk.end) if e - s >= MIN_SENTENCE_CHARS
        ]
        for s, e in spans or [(chunk.start, chunk.end)]:
            rows.append((pos, s, e))
            texts.append(text[s:e])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3), texts


def paper_titles(chunks: Sequence[Chunk]) -> list[str]:
    """The distinct titles of the chunks' papers, in chunk order: the rows of TITLE_EMBEDDINGS."""
    return list(dict.fromkeys(c.title for c in chunks))


def title_rows(titles: list[str]) -> dict[str, int]:
    """Each title's row of TITLE_EMBEDDINGS, for titles in `paper_titles` order."""
    return {t: i for i, t in enumerate(titles)}


def embed_titles(
    titles: list[str], embedder: Embedder, cache: Mapping[str, np.ndarray], path: Path | None = None
) -> tuple[np.ndarray, int]:
    """e5 query vectors of the titles, those in `cache` reused; returns them and how many were
    embedded. One short text per paper, so not through the checkpoint: a resumed build embeds its
    titles again."""
    out = store.new_npy(path, len(titles), embedder.dim)
    todo = [t for t in titles if t not in cache]
    fresh: dict[str, np.ndarray] = {}
    for i in range(0, len(todo), EMBED_BATCH):
        batch = todo[i : i + EMBED_BATCH]
        fresh.update(zip(batch, _checked(embedder, batch, embedder.embed_queries(batch)), strict=True))
    for i, title in enumerate(titles):
        out[i] = fresh[title] if title in fresh else cache[title]
    return out, len(todo)


def context_texts(sentences: np.ndarray, chunks: list[Chunk], documents: dict[str, Document]) -> list[str]:
    """Each sentence unit as `context_text` reads it in place (rows as `sentence_units` makes them)."""
    docs = [documents[chunks[c].doc_id] for c, _, _ in sentences]
    return [
        context_text(doc.text, chunks[c].section, int(s), int(e), doc.title)
        for doc, (c, s, e) in zip(docs, sentences, strict=True)
    ]


def length_order(texts: list[str], embedder: Embedder) -> list[int]:
    """Positions of texts, longest first, so a batch pads its texts to similar lengths.

    Lengths are the embedder's token counts when it can tell them (`token_lengths`), else characters:
    a Chinese character is about one token and an English one about a quarter, so sorting a bilingual
    corpus by characters still mixes lengths.
    """
    lengths = getattr(embedder, "token_lengths", None)
    keys = lengths(texts) if lengths is not None else None
    if keys is None or len(keys) != len(texts):
        keys = [len(t) for t in texts]
    return sorted(range(len(texts)), key=lambda i: -keys[i])


def embed_batches(
    texts: list[str],
    embedder: Embedder,
    progress: bool,
    desc: str = "Embedding",
    checkpoint: EmbedCheckpoint | None = None,
    out: np.ndarray | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """Embed passages in batches (a progress bar with an ETA when asked), checking what the embedder
    returns. With a `checkpoint`, vectors a killed build already made are taken from it and each new
    batch is kept in it, so this build, if killed too, is not redone either. The vectors go into `out`
    (e.g. a file-backed array from `store.new_npy`), texts[j] into row rows[j] (default: row j), else
    into a new array.

    Batches are cut from the texts sorted by length (see `length_order`): cut in document order, each
    short sentence was padded to the longest of its neighbours, 61,618 tokens for the bundled
    sentences' 22,124 against 27,030 sorted. Rows come back in the order of `texts`.
    """
    from tqdm import tqdm

    out = np.empty((len(texts), embedder.dim), dtype=np.float32) if out is None else out
    dest = range(len(texts)) if rows is None else rows
    done = checkpoint.lookup(embedder.model_id, texts, embedder.dim) if checkpoint is not None else {}
    for i, vec in done.items():
        out[dest[i]] = vec
    todo = [i for i in range(len(texts)) if i not in done]
    order = [todo[j] for j in length_order([texts[i] for i in todo], embedder)]
    try:
        with tqdm(total=len(todo), desc=desc, unit="text", disable=not progress or not todo) as bar:
            for i in range(0, len(order), EMBED_BATCH):
                picked = order[i : i + EMBED_BATCH]
                batch = [texts[j] for j in picked]
                vectors = _checked(embedder, batch, embedder.embed_passages(batch))
                out[[dest[j] for j in picked]] = vectors
                if checkpoint is not None:
                    checkpoint.add(embedder.model_id, batch, vectors)
                bar.update(len(batch))
    finally:
        if checkpoint is not None:
            checkpoint.flush()  # also when stopped (Ctrl-C, a cancelled upload): the next run resumes
    return out


def _checked(embedder: Embedder, batch: list[str], vectors) -> np.ndarray:
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.shape != (len(batch), embedder.dim):
        raise ValueError(
            f"Embedder {embedder.model_id} returned shape {vecs.shape} for {len(batch)} passages; "
            f"expected ({len(batch)}, {embedder.dim})."
        )
    if not np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3):
        raise ValueError(
            f"Embedder {embedder.model_id} returned vectors that are not L2-normalised; normalise them."
        )
    return vecs


def embed_cached(
    texts: list[str],
    embedder: Embedder,
    cache: Mapping[str, np.ndarray],
    progress: bool,
    desc: str,
    checkpoint: EmbedCheckpoint | None = None,
    path: Path | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for texts, embedding only those not in `cache`, each distinct text once; returns them
    and how many were embedded (or taken from the checkpoint of a killed build).

    With `path` the rows are written into that .npy file as they are made (`store.new_npy`), so a build
    holds no corpus-sized array in memory. Held in memory, each vector was there about three times
    over (the embedded rows, the checkpoint's copy, the stacked result): most of a build's peak
    (bench/README.md, "Build memory")."""
    out = store.new_npy(path, len(texts), embedder.dim)
    first: dict[str, int] = {}  # a text not in the cache -> the row it is embedded into
    for i, text in enumerate(texts):
        if text not in cache:
            first.setdefault(text, i)
    embed_batches(list(first), embedder, progress, desc, checkpoint, out=out, rows=list(first.values()))
    for i, text in enumerate(texts):
        if text in first:
            if first[text] != i:  # a repeated text: copied from where it was embedded
                out[i] = out[first[text]]
        else:
            out[i] = cache[text]
    return out, len(first)


def previous_caches(
    index_dir: Path,
    manifest: dict,
    documents: dict[str, Document],
    chunks: list[Chunk],
    chunk_texts: list[str],
) -> dict[str, dict[str, np.ndarray]]:
    """Text -> vector maps from an existing index (its documents and chunks already read), so unchanged
    sentences are not embedded again. The vectors are read-only rows of the mapped files (nothing
    is written into them: the new index stacks copies)."""
    names = ("sentences", "contexts", "titles", "xl", "xl_sentences", "lexicon", "lexicon_en")
    caches: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
    try:
        rows = np.load(index_dir / SENTENCES, allow_pickle=False)
        texts = [documents[chunks[c].doc_id].text[s:e] for c, s, e in rows]
        caches["sentences"] = dict(zip(texts, store.load_npy(index_dir / SENTENCE_EMBEDDINGS), strict=True))
        if manifest.get("sentence_context") == CONTEXT_VERSION:  # True == 1: an older version
            caches["contexts"] = dict(
                zip(
                    context_texts(rows, chunks, documents),
                    store.load_npy(index_dir / CONTEXT_EMBEDDINGS),
                    strict=True,
                )
            )
        if manifest.get("crosslingual_model_id"):
            caches["xl"] = dict(zip(chunk_texts, store.load_npy(index_dir / XL_EMBEDDINGS), strict=True))
            caches["xl_sentences"] = dict(
                zip(texts, store.load_npy(index_dir / XL_SENTENCE_EMBEDDINGS), strict=True)
            )
            old = Lexicon.load(index_dir)
            caches["lexicon"] = dict(zip(old.vocab, old.vectors, strict=True))
            if manifest.get("english_lexicon"):  # any version: a word's vector is the word's
                old = Lexicon.load(index_dir, "en")
                caches["lexicon_en"] = dict(zip(old.vocab, old.vectors, strict=True))
    except (OSError, ValueError, EOFError, KeyError, IndexError, store.IndexLoadError):
        pass  # an older or damaged index: everything is embedded again
    if manifest.get("title_vectors") == TITLE_VERSION:
        try:  # apart: a damaged title file costs its titles, not the sentence and cross-lingual vectors
            caches["titles"] = dict(
                zip(paper_titles(chunks), store.load_npy(index_dir / TITLE_EMBEDDINGS), strict=True)
            )
        except (OSError, ValueError, EOFError, store.IndexLoadError):
            pass
    return caches


def build_extras(
    chunks: list[Chunk],
    passages: list[str],
    documents: dict[str, Document],
    embedder: Embedder,
    crosslingual: Embedder | None,
    caches: dict[str, dict[str, np.ndarray]],
    progress: bool,
    timer: PhaseTimer | None = None,
    checkpoint: EmbedCheckpoint | None = None,
    folder: Path | None = None,
) -> tuple[Extras, int]:
    """Compute every derived store; returns them and the number of texts embedded. Every embedding
    but the papers' titles (`embed_titles`) goes through `checkpoint` when given (see
    `embed_batches`). With `folder` (the new index's build folder) the vector stores are written there
    as they are made (`embed_cached`), and `write_extras` into the same folder only flushes them."""
    timer = timer or PhaseTimer()

    def at(name: str) -> Path | None:
        return None if folder is None else folder / name

    with timer("sentence units"):
        sentences, texts = sentence_units(chunks, documents)
    with timer("embed sentences"):
        vectors, n = embed_cached(
            texts,
            embedder,
            caches.get("sentences", {}),
            progress,
            "Embedding sentences",
            checkpoint,
            at(SENTENCE_EMBEDDINGS),
        )
    with timer("embed sentences in place"):
        contexts, n_ctx = embed_cached(
            context_texts(sentences, chunks, documents),
            embedder,
            caches.get("contexts", {}),
            progress,
            "Embedding sentences in place",
            checkpoint,
            at(CONTEXT_EMBEDDINGS),
        )
        n += n_ctx
    with timer("embed titles"):
        titles = paper_titles(chunks)
        title_vectors, n_titles = embed_titles(
            titles, embedder, caches.get("titles", {}), at(TITLE_EMBEDDINGS)
        )
        n += n_titles
    with timer("glossary"):
        extras = Extras(
            sentences,
            texts,
            vectors,
            Glossary.build(documents.values()),
            context_vectors=contexts,
            title_vectors=title_vectors,
            title_rows=title_rows(titles),
        )
    if crosslingual is not None:
        extras.crosslingual_id = crosslingual.model_id
        with timer("cross-lingual chunks"):
            extras.xl_vectors, n1 = embed_cached(
                passages,
                crosslingual,
                caches.get("xl", {}),
                progress,
                "Cross-lingual",
                checkpoint,
                at(XL_EMBEDDINGS),
            )
        with timer("cross-lingual sentences"):
            extras.xl_sentence_vectors, n2 = embed_cached(
                texts,
                crosslingual,
                caches.get("xl_sentences", {}),
                progress,
                "Cross-lingual sentences",
                checkpoint,
                at(XL_SENTENCE_EMBEDDINGS),
            )
        with timer("lexicon"):

            def lexicon(script: str, cache: str) -> Lexicon:
                return Lexicon.build(
                    [c.text for c in chunks if c.lang == script],
                    crosslingual,
                    cache=caches.get(cache),
                    embed=lambda words: embed_batches(words, crosslingual, False, "Lexicon", checkpoint),
                    script=script,
                )

            extras.lexicon = lexicon("zh", "lexicon")  # for English questions
            extras.english_lexicon = lexicon("en", "lexicon_en")  # for Chinese ones
        n += n1 + n2
    return extras, n


def write_extras(build_dir: Path, extras: Extras, faiss_kind: str) -> None:
    store.write_npy(build_dir / SENTENCES, extras.sentences)
    store.write_npy(build_dir / SENTENCE_EMBEDDINGS, extras.sentence_vectors)
    if extras.context_vectors is not None:
        store.write_npy(build_dir / CONTEXT_EMBEDDINGS, extras.context_vectors)
    if extras.title_vectors is not None:
        store.write_npy(build_dir / TITLE_EMBEDDINGS, extras.title_vectors)
    (build_dir / GLOSSARY).write_text(extras.glossary.to_json(), encoding="utf-8")
    if extras.crosslingual_id is not None:
        store.write_npy(build_dir / XL_EMBEDDINGS, extras.xl_vectors)
        store.write_npy(build_dir / XL_SENTENCE_EMBEDDINGS, extras.xl_sentence_vectors)
        VectorIndex.write(extras.xl_vectors, faiss_kind, build_dir / XL_FAISS)
        extras.lexicon.save(build_dir)
        extras.english_lexicon.save(build_dir, "en")


def read_extras(
    index_dir: Path, manifest: dict, chunks: list[Chunk], documents: dict[str, Document]
) -> Extras:
    """Load the derived stores; a missing or damaged file raises an error that says to rebuild."""
    docs_dir = manifest.get("docs_dir")
    names = [SENTENCES, SENTENCE_EMBEDDINGS, GLOSSARY]
    if manifest.get("sentence_context"):
        names.append(CONTEXT_EMBEDDINGS)
    if manifest.get("title_vectors") == TITLE_VERSION:
        names.append(TITLE_EMBEDDINGS)
    if manifest.get("crosslingual_model_id"):
        names += [XL_EMBEDDINGS, XL_SENTENCE_EMBEDDINGS, XL_FAISS, VOCAB_FILE, VECTORS_FILE]
        if manifest.get("english_lexicon") == EN_LEXICON_VERSION:
            names += [EN_VOCAB_FILE, EN_VECTORS_FILE]
    for name in names:
        if not (index_dir / name).exists():
            raise store.missing_file(index_dir, name, docs_dir)
    try:
        sentences = np.load(index_dir / SENTENCES, allow_pickle=False)
        texts = [documents[chunks[c].doc_id].text[s:e] for c, s, e in sentences]
        extras = Extras(
            sentences,
            texts,
            store.load_npy(index_dir / SENTENCE_EMBEDDINGS),  # mapped: see index_store.MMAP
            Glossary.from_json((index_dir / GLOSSARY).read_text(encoding="utf-8")),
        )
        if manifest.get("sentence_context"):
            extras.context_vectors = store.load_npy(index_dir / CONTEXT_EMBEDDINGS)
        if manifest.get("title_vectors") == TITLE_VERSION:
            extras.title_vectors = store.load_npy(index_dir / TITLE_EMBEDDINGS)
            extras.title_rows = title_rows(paper_titles(chunks))
        if manifest.get("crosslingual_model_id"):
            extras.crosslingual_id = manifest["crosslingual_model_id"]
            extras.xl_vectors = store.load_npy(index_dir / XL_EMBEDDINGS)
            extras.xl_sentence_vectors = store.load_npy(index_dir / XL_SENTENCE_EMBEDDINGS)
            extras.xl_index = VectorIndex.load(index_dir / XL_FAISS, mapped=store.MMAP)
            extras.lexicon = Lexicon.load(index_dir)
            if manifest.get("english_lexicon") == EN_LEXICON_VERSION:
                extras.english_lexicon = Lexicon.load(index_dir, "en")
    except (OSError, ValueError, EOFError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise store.corrupt(index_dir, f"sentence or cross-lingual files: {exc}", docs_dir) from exc
    n_sent = len(sentences)
    shapes_ok = (
        extras.sentence_vectors.shape[0] == n_sent
        and (extras.context_vectors is None or extras.context_vectors.shape == extras.sentence_vectors.shape)
        and (
            extras.title_vectors is None
            or extras.title_vectors.shape == (len(extras.title_rows), extras.sentence_vectors.shape[1])
        )
    ) and (
        extras.xl_vectors is None
        or (extras.xl_vectors.shape[0] == len(chunks) and extras.xl_sentence_vectors.shape[0] == n_sent)
    )
    if not shapes_ok or (
        n_sent and (sentences[:, 0].max() >= len(chunks) or np.any(np.diff(sentences[:, 0]) < 0))
    ):
        raise store.corrupt(index_dir, "sentence or cross-lingual files do not match the chunks", docs_dir)
    return extras

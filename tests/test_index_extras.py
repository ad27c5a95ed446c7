"""Sentence units, cross-lingual vectors, glossary and lexicon stored with the index."""

from __future__ import annotations

import numpy as np
import pytest

from rag.indexing.extras import MIN_SENTENCE_CHARS, sentence_units
from rag.indexing.index import Index, ModelMismatchError, build_index
from rag.terms.lexicon import Lexicon

from .conftest import FakeEmbedder
from .helpers_index import RecordingEmbedder, write_corpus


@pytest.fixture
def docs(tmp_path):
    return write_corpus(tmp_path / "docs")


def xl() -> RecordingEmbedder:
    return RecordingEmbedder(dim=32, model_id="fake-xl-32")


def test_sentence_units_are_exact_spans_grouped_by_chunk(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False)
    index = Index.load(tmp_path / "ix")
    rows, texts = index.extras.sentences, index.sentence_texts
    assert len(rows) == len(texts) == len(index.sentence_vectors) >= len(index.chunks)
    assert np.all(np.diff(rows[:, 0]) >= 0)
    for (c, s, e), text in zip(rows, texts, strict=True):
        chunk = index.chunks[c]
        assert chunk.start <= s < e <= chunk.end
        assert index.documents[chunk.doc_id].text[s:e] == text
    ranges = index.extras.chunk_sentence_ranges(len(index.chunks))
    assert all(hi > lo for lo, hi in ranges)  # every chunk has at least one unit


def test_chunk_without_a_real_sentence_is_its_own_unit():
    from rag.types import Chunk, Document

    doc = Document("d", "t", "p", "短句。", "x")
    chunk = Chunk("d:0-3", "d", "t", "s", 0, 3, "短句。")
    rows, texts = sentence_units([chunk], {"d": doc})
    assert len("短句。") < MIN_SENTENCE_CHARS and texts == ["短句。"] and rows.tolist() == [[0, 0, 3]]


def test_crosslingual_vectors_glossary_and_lexicon_round_trip(docs, tmp_path):
    encoder = xl()
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=encoder)
    index = Index.load(tmp_path / "ix", crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    ex = index.extras
    assert ex.crosslingual_id == "fake-xl-32"
    assert ex.xl_vectors.shape == (len(index.chunks), 32)
    assert ex.xl_sentence_vectors.shape == (len(index.sentence_texts), 32)
    assert ex.xl_index.ntotal == len(index.chunks)
    assert len(ex.lexicon) > 0 and all("\u4e00" <= w[0] <= "\u9fff" for w in ex.lexicon.vocab)
    # The English words of the English passages as written, for Chinese questions: one form per
    # BM25 word ("tumour" and "tumours" are one; "lenalidomide" is in a Chinese paper).
    vocab = ex.english_lexicon.vocab
    assert {"angiosarcoma", "everolimus", "tumour", "patient", "months"} <= set(vocab)
    assert "tumours" not in vocab and "month" not in vocab and "lenalidomide" not in vocab
    assert all(w.isascii() and len(w) >= 3 for w in vocab)
    assert ex.english_lexicon.vectors.shape == (len(ex.english_lexicon), 32)
    assert index.manifest["english_lexicon"] == 2
    assert index.glossary is not None


def test_an_index_without_the_english_lexicon_loads_and_rag_index_adds_only_it(docs, tmp_path):
    import json

    ix = tmp_path / "ix"
    build_index(docs, ix, FakeEmbedder(), progress=False, crosslingual=xl())
    words = Index.load(ix).extras.english_lexicon.vocab
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    del manifest["english_lexicon"]  # as an index from before the English words
    (ix / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for name in ("lexicon_en.json", "lexicon_en.npy"):
        (ix / name).unlink()
    assert Index.load(ix).extras.english_lexicon is None
    e5, encoder = RecordingEmbedder(), xl()
    report = build_index(docs, ix, e5, progress=False, crosslingual=encoder)
    assert report.unchanged and e5.sentences == e5.passages == encoder.passages == []
    assert sorted(encoder.sentences) == sorted(words)  # the English words, and nothing else
    assert Index.load(ix).extras.english_lexicon.vocab == words
    # An index of the first version (BM25's forms) gains the current one, reusing the words it has.
    manifest["english_lexicon"] = 1
    (ix / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert Index.load(ix).extras.english_lexicon is None
    encoder = xl()
    build_index(docs, ix, RecordingEmbedder(), progress=False, crosslingual=encoder)
    assert encoder.sentences == [] and Index.load(ix).extras.english_lexicon.vocab == words


def test_unchanged_reindex_embeds_no_sentence_or_crosslingual_text(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    e5, encoder = RecordingEmbedder(), xl()
    report = build_index(docs, tmp_path / "ix", e5, progress=False, crosslingual=encoder)
    assert report.n_embedded == 0 and report.n_embedded_sentences == 0
    assert e5.sentences == e5.passages == encoder.sentences == encoder.passages == []
    assert report.unchanged and not (report.added or report.updated or report.removed)


def test_changed_document_reembeds_only_its_sentences(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    (docs / "poems-mixed.txt").write_text(
        (docs / "poems-mixed.txt").read_text(encoding="utf-8") + "\n新增一句关于疗效评估的内容。\n",
        encoding="utf-8",
    )
    e5, encoder = RecordingEmbedder(), xl()
    report = build_index(docs, tmp_path / "ix", e5, progress=False, crosslingual=encoder)
    assert report.updated == ["poems-mixed"]
    changed = (docs / "poems-mixed.txt").read_text(encoding="utf-8")
    # Its new sentence, and that sentence read in place ("section: sentence before + sentence").
    alone = [t for t in e5.sentences if t in changed]
    in_place = [t for t in e5.sentences if t not in changed]
    assert alone and len(in_place) == len(alone)
    assert all(t.split(": ", 1)[1] in changed and t.endswith(alone[-1]) for t in in_place[-1:])
    assert all(t in changed for t in encoder.sentences)  # cross-lingual: only its new sentences and words


def test_other_crosslingual_model_is_refused(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=xl())
    with pytest.raises(ModelMismatchError, match="cross-lingual vectors from fake-xl-32"):
        Index.load(tmp_path / "ix", crosslingual=FakeEmbedder(dim=32, model_id="other-xl"))


def test_missing_sentence_file_says_rebuild(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False)
    (tmp_path / "ix" / "sentences.npy").unlink()
    with pytest.raises(Exception, match="sentences.npy"):
        Index.load(tmp_path / "ix")


def test_lexicon_translates_through_the_encoder():
    class Toy:
        """Maps a few words to fixed directions so translation is predictable."""

        model_id, dim = "toy", 3
        table = {
            "血栓": [1, 0, 0],
            "肝素": [0, 1, 0],
            "肺癌": [0, 0, 1],
            "thrombosis": [1, 0, 0],
            "heparin": [0, 1, 0.1],
        }

        def embed_passages(self, texts):
            return self.embed_queries(texts)

        def embed_queries(self, texts):
            rows = np.array([self.table.get(t, [0.3, 0.3, 0.3]) for t in texts], dtype=np.float32)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    lex = Lexicon.build(["血栓和肝素。肺癌。"], Toy())
    assert set(lex.vocab) == {"血栓", "肝素", "肺癌"}
    assert lex.translate("Is heparin used for thrombosis?", Toy(), threshold=0.9)[:2] == ["血栓", "肝素"]
    assert Lexicon.phrases("What is the first-line drug?") == ["first-line", "drug", "first-line drug"]


def test_rebuild_keeps_the_index_settings(docs, tmp_path):
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False)
    (tmp_path / "ix" / "settings.json").write_text('{"answer": {"min_score": 0.42}}', encoding="utf-8")
    (docs / "extra.txt").write_text("新的文献。讨论血栓。", encoding="utf-8")
    report = build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False)
    assert report.added == ["extra"]
    assert (tmp_path / "ix" / "settings.json").read_text(
        encoding="utf-8"
    ) == '{"answer": {"min_score": 0.42}}'


def test_context_text_reads_a_sentence_in_place():
    from rag.ingest.sentences import context_text

    text = "1.1 一般资料\n收治5例患者。年龄37~85岁,中位年龄61岁。\n另起一段的句子。"
    second = text.index("年龄")
    assert context_text(text, "1 方法 > 1.1 一般资料", second, text.index("\n", second)) == (
        "1.1 一般资料: 收治5例患者。年龄37~85岁,中位年龄61岁。"
    )
    # The first sentence of a line has nothing before it: a line break separates paragraphs.
    third = text.index("另起")
    assert context_text(text, "1.1 一般资料", third, len(text)) == "1.1 一般资料: 另起一段的句子。"
    assert context_text(text, "", third, len(text)) == "另起一段的句子。"
    # A placeholder is no name the text writes: the document's title says what it is about.
    for placeholder in ("(Text)", "(正文)"):
        assert context_text(text, placeholder, third, len(text), "依维莫司") == "依维莫司: 另起一段的句子。"
    # The untitled front of a paper with headings keeps its name.
    assert context_text(text, "(引言)", third, len(text), "依维莫司") == "(引言): 另起一段的句子。"
    assert context_text(text, "(Text)", third, len(text)) == "另起一段的句子。"  # no title either


def test_sentences_are_stored_in_place_too(docs, tmp_path):
    from rag.ingest.sentences import context_text

    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False)
    index = Index.load(tmp_path / "ix")
    assert index.context_vectors.shape == index.sentence_vectors.shape
    for (c, s, e), text in zip(index.extras.sentences, index.context_texts, strict=True):
        chunk = index.chunks[c]
        doc = index.documents[chunk.doc_id]
        assert text == context_text(doc.text, chunk.section, s, e, doc.title)
    np.testing.assert_allclose(index.context_vectors, FakeEmbedder().embed_passages(index.context_texts))


def test_an_index_without_in_place_vectors_loads_and_a_rebuild_adds_them(docs, tmp_path):
    import json

    from rag.pipeline import Pipeline

    ix = tmp_path / "ix"
    build_index(docs, ix, FakeEmbedder(), progress=False)
    # What an index built by the previous release looks like.
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    del manifest["sentence_context"]
    (ix / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (ix / "context_embeddings.npy").unlink()
    index = Index.load(ix)
    assert index.context_vectors is None
    answer = Pipeline(index, FakeEmbedder()).ask("静脉血栓栓塞的危险因素有哪些？")
    assert answer.quotes or answer.abstained
    assert any("rebuild it with `rag index`" in note for note in answer.notes)
    e5 = RecordingEmbedder()
    report = build_index(docs, ix, e5, progress=False)
    assert report.unchanged and not report.added and not report.updated
    again = Index.load(ix)
    assert again.context_vectors is not None
    assert not any("in-place" in n for n in Pipeline(again, FakeEmbedder()).ask("静脉血栓栓塞是什么？").notes)
    # Only the in-place texts were embedded: the sentences' own vectors were reused.
    assert set(e5.sentences) == set(again.context_texts)


def test_paper_titles_are_embedded_as_questions_at_build_time_and_reused(docs, tmp_path):
    import json

    from rag.indexing.extras import paper_titles
    from rag.pipeline import Pipeline

    class Queries(RecordingEmbedder):
        def __init__(self):
            super().__init__()
            self.queries: list[str] = []

        def embed_queries(self, texts):
            self.queries += list(texts)
            return super().embed_queries(texts)

    ix = tmp_path / "ix"
    e5 = Queries()
    build_index(docs, ix, e5, progress=False)
    index = Index.load(ix)
    titles = paper_titles(index.chunks)
    assert e5.queries == titles and len(titles) == len(index.documents)  # one query per paper
    stored = index.extras.stored_titles(titles)
    np.testing.assert_allclose(np.stack([stored[t] for t in titles]), FakeEmbedder().embed_queries(titles))
    assert index.manifest["title_vectors"] == 1
    # A paper's text changed (its title not): nothing is embedded as a query again.
    zh = docs / "vte-zh.txt"
    zh.write_text(zh.read_text(encoding="utf-8") + "\n新增的一句话，讨论抗凝治疗的疗程。\n", encoding="utf-8")
    e5 = Queries()
    build_index(docs, ix, e5, progress=False)
    assert e5.queries == []
    # Its title changed and another paper removed: the new title alone is embedded, the rows follow.
    text = zh.read_text(encoding="utf-8")
    zh.write_text("肿瘤相关静脉血栓栓塞的新标题\n" + text, encoding="utf-8")
    (docs / "poems-mixed.txt").unlink()
    e5 = Queries()
    build_index(docs, ix, e5, progress=False)
    index = Index.load(ix)
    titles = paper_titles(index.chunks)
    assert len(titles) == 2 and e5.queries == [index.documents["vte-zh"].title]
    stored = index.extras.stored_titles(titles)
    np.testing.assert_allclose(np.stack([stored[t] for t in titles]), FakeEmbedder().embed_queries(titles))
    # An index built before title vectors: it loads and answers (titles embedded as met), and
    # `rag index` adds them without embedding anything else.
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    del manifest["title_vectors"]
    (ix / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (ix / "title_embeddings.npy").unlink()
    old = Index.load(ix)
    assert old.extras.title_vectors is None and old.extras.stored_titles(titles) == {}
    answer = Pipeline(old, FakeEmbedder()).ask("静脉血栓栓塞的危险因素有哪些？")
    assert answer.quotes or answer.abstained
    e5 = Queries()
    report = build_index(docs, ix, e5, progress=False)
    assert report.unchanged and not report.added and not report.updated
    assert sorted(e5.queries) == sorted(titles) and not e5.passages and not e5.sentences
    assert Index.load(ix).extras.title_vectors.shape == (len(titles), 64)


def test_in_place_vectors_of_an_older_text_version_are_embedded_again(tmp_path):
    import json

    from rag.indexing.extras import CONTEXT_VERSION

    # A text with no headings: every sentence is in the "(Text)" placeholder section.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "asthma.txt").write_text(
        "Allergic asthma\n\nAsthma is a breathing disorder of the airways. Allergens trigger the attacks.\n",
        encoding="utf-8",
    )
    ix = tmp_path / "ix"
    build_index(docs, ix, FakeEmbedder(), progress=False)
    index = Index.load(ix)
    assert index.context_texts and all(t.startswith("Allergic asthma: ") for t in index.context_texts)
    # What an index of the first version says: its in-place vectors were embedded from other texts.
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sentence_context"] == CONTEXT_VERSION
    manifest["sentence_context"] = True
    (ix / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    e5 = RecordingEmbedder()
    report = build_index(docs, ix, e5, progress=False)
    assert report.unchanged and not report.added and not report.updated
    again = Index.load(ix)
    assert set(e5.sentences) == set(again.context_texts)  # the in-place texts, and nothing else
    assert again.manifest["sentence_context"] == CONTEXT_VERSION

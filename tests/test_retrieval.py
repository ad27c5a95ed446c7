from __future__ import annotations

import numpy as np
import pytest

from rag.pipeline import Pipeline, QuestionError
from rag.retrieve.fusion import rrf_fuse

from .conftest import FakeEmbedder


def test_rrf_fuse_against_hand_computed_scores():
    fused = rrf_fuse([["a", "b", "c"], ["c", "a"]], [1.0, 1.0], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61}
    assert [i for i, _ in fused] == sorted(expected, key=lambda i: -expected[i])
    assert dict(fused) == pytest.approx(expected)


def test_rrf_weights_and_empty_lists():
    assert rrf_fuse([["a"], []], [0.0, 1.0])[0] == ("a", 0.0)
    assert rrf_fuse([[], []], [1.0, 1.0]) == []


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_rank_the_relevant_chunk_first(fake_index, fake_embedder, mode):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    hits = p.retrieve("低分子肝素 抗凝治疗", k=3, mode=mode)
    assert hits and "低分子肝素" in hits[0].chunk.text
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_english_bm25_finds_the_english_document(fake_index, fake_embedder):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    hits = p.retrieve("partial response oral ulcers", k=2, mode="bm25")
    assert hits[0].chunk.doc_id == "en-angiosarcoma"


def test_bad_mode_and_k(fake_index, fake_embedder):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    with pytest.raises(ValueError, match="mode must be one of dense, bm25, hybrid"):
        p.retrieve("x", mode="fuzzy")
    with pytest.raises(ValueError, match="k must be at least 1"):
        p.retrieve("x", k=0)


@pytest.mark.parametrize(
    "question, message",
    [
        ("", "the text is empty"),
        ("   ", "the text is empty"),
        ("问" * 1001, "keep it under 1000"),
        ("？？？!!!", "Ask a question in words"),
        ("🤔 🙂", "请用文字提问"),
    ],
)
def test_empty_huge_or_wordless_question_gets_a_clear_error(fake_index, fake_embedder, question, message):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    with pytest.raises(QuestionError, match=message):
        p.ask(question)


def test_a_short_question_with_words_is_still_asked(fake_index, fake_embedder):
    p = Pipeline.load(fake_index, embedder=fake_embedder)
    assert p.ask("VTE?").question == "VTE?" and p.ask("肝素").question == "肝素"


def test_status_and_reload_see_new_documents(fake_index, fake_embedder, tiny_corpus):
    from rag.indexing.index import build_index

    p = Pipeline.load(fake_index, embedder=fake_embedder)
    assert p.status()["documents"] == 3
    (tiny_corpus / "new.txt").write_text("佐拉替尼是一种虚构的药物。", encoding="utf-8")
    build_index(tiny_corpus, fake_index, fake_embedder, progress=False)
    p.reload()
    assert p.status()["documents"] == 4
    assert p.retrieve("佐拉替尼", k=1, mode="bm25")[0].chunk.doc_id == "new"


@pytest.mark.slow
@pytest.mark.parametrize(
    "question", ["特鲁索综合征的首选治疗是什么？", "What is the first-line drug for Trousseau syndrome?"]
)
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_real_model_finds_low_molecular_weight_heparin(bundled_index, real_embedder, question, mode):
    p = Pipeline.load(bundled_index, embedder=real_embedder)
    hits = p.retrieve(question, k=5, mode=mode)
    top = [h for h in hits if "低分子肝素" in h.chunk.text or "low molecular weight heparin" in h.chunk.text]
    assert top, [h.chunk.text[:40] for h in hits]
    h = top[0]
    assert h.chunk.doc_id == "trousseau-syndrome-review"
    assert p.documents[h.chunk.doc_id].text[h.chunk.start : h.chunk.end] == h.chunk.text
    assert h.chunk.section in ("摘要", "Abstract", "6 治疗方式")


def test_standardise_within_groups_matches_numpy():
    import numpy as np

    from rag.retrieve.fusion import standardise

    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    groups = np.array(["en", "en", "zh", "zh", "zh"])
    out = standardise(scores, groups)
    for g in ("en", "zh"):
        m = groups == g
        np.testing.assert_allclose(out[m], (scores[m] - scores[m].mean()) / scores[m].std())
    assert standardise(np.array([0.5, 0.5])).tolist() == [0.0, 0.0]  # constant: no information


def test_best_sentence_signal_is_the_max_over_each_chunks_sentences(tiny_corpus, fake_embedder, tmp_path):
    import numpy as np

    from rag.indexing.index import Index, build_index
    from rag.retrieve.retriever import Retriever

    build_index(tiny_corpus, tmp_path / "ix", fake_embedder, progress=False)
    index = Index.load(tmp_path / "ix")
    retriever = Retriever(index, fake_embedder)
    q = fake_embedder.embed_queries(["低分子肝素"])[0]
    ids = np.arange(len(index.chunks))
    got = retriever._best_sentence(ids, index.sentence_vectors, q)
    rows = index.extras.sentences
    expected = [max(index.sentence_vectors[r] @ q for r in np.where(rows[:, 0] == i)[0]) for i in ids]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.fixture
def xl_index(tiny_corpus, tmp_path):
    from rag.indexing.index import build_index

    xl = FakeEmbedder(dim=32, model_id="fake-xl-32")
    build_index(tiny_corpus, tmp_path / "xl", FakeEmbedder(), progress=False, crosslingual=xl)
    return tmp_path / "xl"


def _analyser(index, retrieval=None):
    """A question analyser over `index` with these retrieval settings (its glossary: the index's)."""
    from rag.query.analysis import QueryAnalyser
    from rag.settings import RetrievalSettings, Settings

    settings = Settings(retrieval=retrieval or RetrievalSettings())
    return QueryAnalyser(index, FakeEmbedder(), settings, lambda: index.extras.glossary)


@pytest.mark.parametrize("fusion", ["zscore", "rrf"])
def test_hybrid_with_crosslingual_vectors(xl_index, fusion):
    from rag.indexing.index import Index
    from rag.retrieve.retriever import Retriever
    from rag.settings import RetrievalSettings

    index = Index.load(xl_index, crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    settings = RetrievalSettings(fusion=fusion)
    retriever = Retriever(index, FakeEmbedder(), settings)
    hits = retriever.search(_analyser(index, settings).analyse("抗凝治疗首选低分子肝素"), k=3)
    assert "低分子肝素" in hits[0].chunk.text
    assert len({h.chunk.id for h in hits}) == len(hits)


def test_hybrid_retrieval_needs_an_encoded_question(xl_index):
    from rag.indexing.index import Index
    from rag.retrieve.retriever import Retriever

    index = Index.load(xl_index, crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    plain = _analyser(index).analyse("抗凝治疗首选低分子肝素", encode=False)
    with pytest.raises(ValueError, match="encoded question"):
        Retriever(index, FakeEmbedder()).search(plain, k=3)
    assert Retriever(index, FakeEmbedder()).search(plain, k=3, mode="bm25")  # bm25 needs no encoding


def test_english_bm25_query_gets_glossary_and_lexicon_terms(xl_index):
    from rag.indexing.index import Index
    from rag.retrieve.retriever import Retriever
    from rag.settings import RetrievalSettings

    index = Index.load(xl_index, crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    settings = RetrievalSettings(glossary=True)
    retriever = Retriever(index, FakeEmbedder(), settings)
    question = "What is venous thromboembolism?"
    analysis = _analyser(index, settings).analyse(question)
    query = retriever.bm25_query(analysis)
    assert query.startswith(question)
    assert "静脉血栓栓塞" in query  # the tiny corpus defines 静脉血栓栓塞(venous thromboembolism, VTE)
    induced = analysis.induced
    assert induced and all(w in index.extras.lexicon.vocab for w in induced)
    assert query.endswith(" ".join(induced))
    assert _analyser(index, settings).analyse("什么是静脉血栓栓塞？").induced == ()


def test_bad_fusion_setting():
    from rag.settings import RetrievalSettings

    with pytest.raises(ValueError, match="fusion must be 'zscore' or 'rrf'"):
        RetrievalSettings(fusion="max")


def test_the_e5_query_takes_only_the_closest_induced_words(xl_index):
    from rag.indexing.index import Index
    from rag.settings import RetrievalSettings

    index = Index.load(xl_index, crosslingual=FakeEmbedder(dim=32, model_id="fake-xl-32"))
    question = "What is venous thromboembolism?"
    full = _analyser(index).analyse(question)
    assert len(full.induced) > 2
    capped = _analyser(index, RetrievalSettings(lexicon_dense_max=2)).analyse(question)
    assert capped.dense_query == " ".join([question, *full.induced[:2]])
    off = _analyser(index, RetrievalSettings(lexicon_dense=False)).analyse(question)
    assert off.dense_query == question and off.induced == full.induced


def test_a_phrase_seen_before_is_not_encoded_again_and_induces_the_same_words(xl_index):
    from rag.indexing.index import Index
    from rag.settings import RetrievalSettings

    class Counting(FakeEmbedder):
        def __init__(self):
            super().__init__(dim=32, model_id="fake-xl-32")
            self.texts: list[str] = []

        def embed_queries(self, texts):
            self.texts += list(texts)
            return super().embed_queries(texts)

    xl = Counting()
    index = Index.load(xl_index, crosslingual=xl)
    analyser = _analyser(index)
    first = analyser.analyse("What is venous thromboembolism?")
    assert xl.texts == [
        "What is venous thromboembolism?",
        "venous",
        "thromboembolism",
        "venous thromboembolism",
    ]
    xl.texts.clear()
    second = analyser.analyse("How is venous thromboembolism treated with heparin?")
    # Only the question and its new phrases are encoded; the words are those of an empty cache.
    assert xl.texts == [
        "How is venous thromboembolism treated with heparin?",
        "treated",
        "heparin",
        "thromboembolism treated",
        "treated heparin",
    ]
    fresh = _analyser(index).analyse("How is venous thromboembolism treated with heparin?")
    assert second.induced == fresh.induced and second.dense_query == fresh.dense_query
    assert first.induced == _analyser(index).analyse("What is venous thromboembolism?").induced
    # Bounded: the least recently used phrase leaves first; 0 keeps none.
    small = _analyser(index, RetrievalSettings(phrase_cache=2))
    small.analyse("What is venous thromboembolism?")
    assert len(small.phrases) == 2 and small.phrases.get(["venous"]) == {}
    none = _analyser(index, RetrievalSettings(phrase_cache=0))
    assert none.analyse("What is venous thromboembolism?").induced == first.induced and len(none.phrases) == 0


def test_the_phrase_cache_drops_the_least_recently_used_phrase():
    from rag.terms.lexicon import PhraseCache

    cache = PhraseCache(2)
    cache.put({"a": (("甲", 0.9),), "b": (("乙", 0.8),)})
    assert cache.get(["a", "z"]) == {"a": (("甲", 0.9),)}  # "a" is now the more recently used
    cache.put({"c": ()})
    assert set(cache.get(["a", "b", "c"])) == {"a", "c"} and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.get(["a"]) == {}


def test_the_lexicons_nearest_words_merge_to_its_translation():
    from rag.terms.lexicon import Lexicon

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lex = Lexicon([f"词{i}" for i in range(300)], vectors)
    phrases = vectors[[3, 7, 3]] + 0.05 * rng.normal(size=(3, 16)).astype(np.float32)
    phrases /= np.linalg.norm(phrases, axis=1, keepdims=True)
    sims = phrases @ vectors.T
    for threshold in (0.0, 0.5, 0.8):
        # The full sort it replaces: each phrase's two best words at or above the threshold.
        found: dict[str, float] = {}
        for row in sims:
            for j in np.argsort(-row)[:2]:
                if row[j] >= threshold:
                    found[lex.vocab[j]] = max(found.get(lex.vocab[j], 0.0), float(row[j]))
        expected = sorted(found, key=lambda w: -found[w])
        assert lex.translate_vectors(phrases, threshold) == expected
    nearest = lex.nearest(phrases)
    assert [w for w, _ in nearest[0]][0] == "词3" and len(nearest) == 3 and all(len(n) == 2 for n in nearest)
    assert Lexicon.merge(nearest, 2.0) == [] and lex.nearest(phrases[:0]) == []


def test_english_evidence_is_the_best_sentence_above_the_questions_mean_similarity(xl_pipeline):
    from rag.retrieve.retriever import Retriever
    from rag.settings import RetrievalSettings

    pipeline, _ = xl_pipeline
    r, ex = pipeline.retriever, pipeline.index.extras
    query = pipeline.analyse("What is venous thromboembolism treated with?")
    hits = r.search(query, k=3)
    qx = query.crosslingual
    rows = np.concatenate([np.arange(*r._ranges[pipeline.index.position(h.chunk.id)]) for h in hits])
    sims = ex.xl_sentence_vectors @ qx
    expected = np.clip(sims[rows].max() - sims.mean(), 0.0, 1.0)
    assert r.evidence(query, hits) == pytest.approx(expected, abs=1e-6)
    assert expected < sims[rows].max()  # the centring changed something
    # A Chinese question keeps e5's plain best-sentence similarity.
    zh = pipeline.analyse("抗凝治疗首选什么药物？")
    zh_hits = r.search(zh, k=3)
    zh_rows = np.concatenate([np.arange(*r._ranges[pipeline.index.position(h.chunk.id)]) for h in zh_hits])
    best = (ex.sentence_vectors[zh_rows] @ r.query_vector("抗凝治疗首选什么药物？")).max()
    assert r.evidence(zh, zh_hits) == pytest.approx(float(best), abs=1e-6)
    # A large index is represented by a spread-out sample of its sentences.
    few = Retriever(pipeline.index, pipeline.answer_embedder, RetrievalSettings(background_sentences=2))
    np.testing.assert_array_equal(few._background(), ex.xl_sentence_vectors[[0, len(sims) - 1]])


def test_an_english_drug_name_is_carried_into_chinese_by_its_sound(tmp_path):
    from rag.indexing.index import Index, build_index
    from rag.retrieve.retriever import Retriever
    from rag.settings import RetrievalSettings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "study.txt").write_text(
        "结果\n5例患者口服依维莫司治疗,不良反应主要为口腔溃疡。既往曾接受紫杉醇化疗。\n", encoding="utf-8"
    )
    xl = FakeEmbedder(dim=32, model_id="fake-xl-32")
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False, crosslingual=xl)
    index = Index.load(tmp_path / "index", crosslingual=xl)
    sent: list[list[str]] = []
    embed_queries = xl.embed_queries
    xl.embed_queries = lambda texts: sent.append(list(texts)) or embed_queries(texts)

    question = "What was the main adverse event of everolimus?"
    analysis = _analyser(index).analyse(question)
    assert analysis.induced[0] == "依维莫司"
    assert "依维莫司" in Retriever(index, FakeEmbedder()).bm25_query(analysis)
    # The name is not looked up in the lexicon, which would map it to whatever lies near.
    assert sent[-1][0] == question and not any("everolimus" in p for p in sent[-1][1:])
    # Switched off, the lexicon gets the name like any other word.
    _analyser(index, RetrievalSettings(drug_names=False)).analyse(question)
    assert any("everolimus" in p for p in sent[-1][1:])


class _Synonyms:
    """A cross-lingual encoder that maps 肉瘤 and angiosarcoma to one direction (dimension 0), the
    drug name 阿哌沙班 and everolimus to another (1: a wrong pairing, as the real encoder makes for a
    name it never saw), and any other text to a hashed vector with nothing on either, so what is
    induced is predictable."""

    model_id, dim = "fake-xl-32", 32
    table = {"肉瘤": 0, "angiosarcoma": 0, "阿哌沙班": 1, "everolimus": 1}

    def __init__(self):
        self.hashed = FakeEmbedder(dim=32, model_id="fake-xl-32")

    def embed_queries(self, texts):
        out = self.hashed.embed_queries(texts).copy()
        for row, text in zip(out, texts, strict=True):
            if text in self.table:
                row[:] = np.eye(32)[self.table[text]]
            else:
                row[:2] = 0.0
                row /= np.linalg.norm(row) or 1.0
        return out

    def embed_passages(self, texts):
        return self.embed_queries(texts)


def _folder(tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    return folder


def test_a_chinese_question_gets_the_english_words_of_a_partly_english_corpus(tmp_path):
    from rag.indexing.index import Index, build_index
    from rag.retrieve.retriever import Retriever
    from rag.settings import RetrievalSettings

    from .conftest import EN_DOC, ZH_DOC

    docs = _folder(tmp_path, "docs", {"zh.txt": ZH_DOC, "en.md": EN_DOC})
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=_Synonyms())
    index = Index.load(tmp_path / "ix", crosslingual=_Synonyms())
    lexicon = index.extras.english_lexicon
    assert "angiosarcoma" in lexicon.vocab and all(w.isascii() and w == w.lower() for w in lexicon.vocab)
    question = "血管肉瘤怎么治疗？"
    exact = RetrievalSettings(lexicon_threshold=0.99)  # hashed vectors of other words are not near
    analysis = _analyser(index, exact).analyse(question)
    assert analysis.induced == ("angiosarcoma",)  # 肉瘤 (jieba: 血管 / 肉瘤 / 治疗) -> angiosarcoma
    assert analysis.dense_query == f"{question} angiosarcoma"
    retriever = Retriever(index, FakeEmbedder())
    assert retriever.bm25_query(analysis).endswith(" angiosarcoma")
    # BM25 now reaches the English paper for the Chinese question; without the word it cannot.
    hits = index.search_bm25(retriever.bm25_query(analysis), 10)
    assert any(h.chunk.doc_id == "en" and "angiosarcoma" in h.chunk.text.lower() for h in hits)
    assert not any(h.chunk.doc_id == "en" for h in index.search_bm25(question, 10))
    off = _analyser(index, exact.with_(induce_english=False)).analyse(question)
    assert off.induced == () and off.dense_query == question
    # A drug name's words induce nothing: the lexicon never saw 阿哌沙班 and maps it to everolimus.
    drug = "肉瘤患者能用阿哌沙班吗？"
    named = _analyser(index, exact).analyse(drug)
    assert [n.text for n in named.names] == ["阿哌沙班"] and named.induced == ("angiosarcoma",)
    _, unguarded = _analyser(index, exact).crosslingual(drug, "zh", names=())
    assert "everolimus" in unguarded


def test_the_pieces_of_the_word_holding_a_drug_name_are_left_out():
    from rag.terms.lexicon import Lexicon

    # The name read by its ending (珠单抗) is shorter than the drug (阿替利珠单抗): jieba's words
    # holding it go, with their search-mode pieces.
    words = Lexicon.chinese_words("阿替利珠单抗治疗肺癌的疗效如何？", leave_out=["珠单抗"])
    assert not {"利珠", "单抗", "阿替利珠单抗"} & set(words) and {"治疗", "肺癌", "疗效"} <= set(words)
    # Characters NFKC lengthens (㎏ -> kg) before the name do not shift where it is.
    words = Lexicon.chinese_words("体重70㎏㎏的肉瘤患者能用阿哌沙班吗？", leave_out=["阿哌沙班"])
    assert "阿哌沙班" not in words and {"肉瘤", "患者"} <= set(words)


def test_a_chinese_question_over_chinese_papers_gets_no_english_words(tmp_path):
    """English abstracts in Chinese papers are not a reason: English is under `language_share`."""
    from rag.indexing.index import Index, build_index

    from .conftest import ZH_DOC

    abstract = "Abstract\nAngiosarcoma is a rare malignant tumour.\n"
    docs = _folder(tmp_path, "docs", {"zh.txt": ZH_DOC, "zh2.txt": abstract + ZH_DOC.replace("。", "！")})
    build_index(docs, tmp_path / "ix", FakeEmbedder(), progress=False, crosslingual=_Synonyms())
    index = Index.load(tmp_path / "ix", crosslingual=_Synonyms())
    analyser = _analyser(index)
    assert "en" not in analyser.mentions().scripts
    assert analyser.analyse("血管肉瘤怎么治疗？").induced == ()

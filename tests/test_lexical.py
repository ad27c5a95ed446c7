from __future__ import annotations

import pytest

from rag.terms.lexical import TOKENIZER_VERSION, BM25Index, tokenize

PASSAGES = [
    "非小细胞肺癌患者中，EGFR 突变与静脉血栓栓塞症（VTE）的关系尚存争议。",
    "ALK 基因重排的患者发生 VTE 的风险约为其他患者的 3 倍。",
    "Everolimus showed activity in patients with advanced angiosarcoma.",
    "Bone metastasis in lung cancer is associated with elevated blood markers such as ALP.",
    "来那度胺联合自体造血干细胞移植治疗 POEMS 综合征。",
]


def test_tokenize_chinese():
    tokens = tokenize("肿瘤相关静脉血栓栓塞症的发病率")
    assert {"肿瘤", "静脉", "血栓", "发病率"} <= set(tokens)
    assert "的" not in tokens


def test_tokenize_english_lowercases_and_drops_stopwords():
    tokens = tokenize("What is the incidence of VTE in EGFR-mutant patients?")
    assert tokens == ["incidence", "vte", "egfr", "mutant", "patient"]


def test_tokenize_mixed_text():
    tokens = tokenize("EGFR突变与VTE")
    assert tokens == ["egfr", "突变", "vte"]


def test_tokenize_keeps_decimals_and_alphanumerics():
    tokens = tokenize("HR 2.3 (95% CI 1.5-3.6); T790M, HER2")
    assert {"2.3", "1.5", "3.6", "t790m", "her2", "hr"} <= set(tokens)


def test_tokenize_full_width_query_matches_half_width_text():
    assert tokenize("ＥＧＦＲ") == tokenize("EGFR") == ["egfr"]


def test_tokenize_search_mode_yields_word_parts():
    # so a query for "突变" still matches a text that jieba segments as "基因突变"
    assert {"基因", "突变"} <= set(tokenize("ALK基因突变"))


@pytest.mark.parametrize("text", ["", "   ", "，。！？", "的 了 和 the of and", "\n\t"])
def test_tokenize_nothing_left(text):
    assert tokenize(text) == []


def test_tokenize_is_quiet(capfd):
    tokenize("静脉血栓")
    out, err = capfd.readouterr()
    assert out == "" and "prefix dict" not in err


def test_bm25_finds_chinese_chunk():
    index = BM25Index.build(PASSAGES)
    hits = index.search("EGFR突变和静脉血栓的关系", k=3)
    assert hits[0][0] == 0


def test_bm25_finds_english_chunk():
    index = BM25Index.build(PASSAGES)
    hits = index.search("everolimus angiosarcoma", k=3)
    assert [pos for pos, _ in hits] == [2]


def test_bm25_results_sorted_positive_and_limited():
    index = BM25Index.build(PASSAGES)
    hits = index.search("VTE 患者", k=2)
    assert len(hits) == 2
    assert all(score > 0 for _, score in hits)
    assert hits[0][1] >= hits[1][1]
    assert all(isinstance(pos, int) and isinstance(score, float) for pos, score in hits)


@pytest.mark.parametrize("query", ["", "，。", "the of", "zebrafish telomerase"])
def test_bm25_no_overlap_returns_empty(query):
    assert BM25Index.build(PASSAGES).search(query, k=5) == []


def test_bm25_search_tokens_matches_search():
    index = BM25Index.build(PASSAGES)
    assert index.search_tokens(tokenize("ALK 风险"), 5) == index.search("ALK 风险", 5)
    assert index.search("ALK", 0) == []


def test_bm25_save_load_round_trip(tmp_path):
    index = BM25Index.build(PASSAGES)
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert len(loaded) == len(PASSAGES)
    for query in ["EGFR突变", "bone metastasis ALP", "POEMS 综合征", "VTE"]:
        assert loaded.search(query, 5) == index.search(query, 5)
    # plain files only: JSON keeps Chinese readable, arrays are .npy
    vocab = (tmp_path / "bm25" / "vocab.index.json").read_text(encoding="utf-8")
    assert "突变" in vocab


def test_bm25_empty_corpus_round_trip(tmp_path):
    index = BM25Index.build(["，。", ""])
    assert index.search("anything", 3) == []
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert len(loaded) == 2 and loaded.search("anything", 3) == []


def test_bm25_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="rebuild the index"):
        BM25Index.load(tmp_path / "nothing")


def test_bm25_load_truncated_array(tmp_path):
    BM25Index.build(PASSAGES).save(tmp_path / "bm25")
    data = tmp_path / "bm25" / "data.csc.index.npy"
    data.write_bytes(data.read_bytes()[:20])
    with pytest.raises(ValueError, match="corrupt.*rebuild the index"):
        BM25Index.load(tmp_path / "bm25")


def test_bm25_load_other_tokenizer_version(tmp_path):
    import json

    BM25Index.build(PASSAGES).save(tmp_path / "bm25")
    meta_path = tmp_path / "bm25" / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["tokenizer_version"] = TOKENIZER_VERSION + 1
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer version"):
        BM25Index.load(tmp_path / "bm25")


def test_positions_with_reads_the_passages_holding_a_term():
    index = BM25Index.build(["华法林 口服 抗凝", "综合征 华法林 华法林", "其他 文本"])
    assert index.positions_with("华法林").tolist() == [0, 1]  # once per passage, however often
    assert index.positions_with("其他").tolist() == [2]
    assert index.positions_with("无此词").tolist() == []
    assert index.positions_with("").tolist() == []  # bm25s keeps "" in its vocabulary, past the matrix
    assert BM25Index.build(["", ""]).positions_with("华法林").tolist() == []


def test_bm25_from_term_ids_scores_as_bm25s_does_from_the_token_strings():
    """The index is built from term ids made as the passages are read (no list of every token's
    string); every query must score each passage as bm25s scores it from the strings themselves."""
    import bm25s

    corpus = [tokenize(p) for p in PASSAGES * 3] + [[]]
    reference = bm25s.BM25()
    reference.index(corpus, show_progress=False)
    ours = BM25Index.from_tokens(iter(corpus))  # any iterable: the build streams the passages
    assert len(ours) == len(corpus)
    for query in ("EGFR突变和静脉血栓的关系", "angiosarcoma everolimus", "VTE 风险", "POEMS"):
        tokens = tokenize(query)
        expected = reference.get_scores_from_ids(reference.get_tokens_ids(tokens))
        got = ours._retriever.get_scores_from_ids(ours._retriever.get_tokens_ids(tokens))
        assert got.any()
        assert got == pytest.approx(expected, abs=1e-6)
    assert list(ours.positions_with("vte")) == [0, 1, 5, 6, 10, 11]
    assert BM25Index.from_tokens(iter([[], []])).search("VTE") == []

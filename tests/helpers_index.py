"""Helpers for the index tests: an embedder that records what it embeds, and a tiny bilingual corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .conftest import FakeEmbedder


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, remembering every chunk passage and sentence it embedded; raises after `fail_after` calls.

    Chunk passages carry a "title | section" header line; sentences never contain a line break.
    """

    def __init__(self, dim: int = 64, model_id: str = "fake-hash-64", fail_after: int | None = None) -> None:
        super().__init__(dim=dim, model_id=model_id)
        self.passages: list[str] = []
        self.sentences: list[str] = []
        self.fail_after = fail_after
        self.passage_calls = 0

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and self.passage_calls >= self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        self.passage_calls += 1
        self.passages.extend(t for t in texts if "\n" in t)
        self.sentences.extend(t for t in texts if "\n" not in t)
        return super().embed_passages(texts)


ZH = """肿瘤相关静脉血栓栓塞症研究进展

摘要
静脉血栓栓塞症（VTE）是恶性肿瘤患者常见的并发症，也是肿瘤患者死亡的第二大原因。本文综述驱动基因与VTE的关系。

1 引言
非小细胞肺癌患者发生VTE的风险明显高于普通人群。驱动基因检测已成为肺癌诊疗的常规。

2 EGFR突变与VTE
多项研究显示，EGFR突变患者的VTE发生率与野生型患者相近。也有研究认为EGFR突变可降低血栓风险。

3 ALK重排与VTE
ALK重排患者发生VTE的风险约为其他患者的3倍，机制可能与组织因子表达升高有关。
"""

EN = """# Everolimus in advanced angiosarcoma

## Abstract
Angiosarcoma is a rare and aggressive vascular tumour. We report a patient treated with everolimus after failure of paclitaxel.

## Case report
A 67-year-old man presented with a scalp lesion. Biopsy confirmed angiosarcoma. After progression on paclitaxel he received everolimus 10 mg daily and the lesion shrank within two months.

## Discussion
The mTOR pathway is active in vascular tumours, which supports the use of everolimus.
"""

MIXED = """POEMS综合征的治疗

来那度胺（lenalidomide）联合地塞米松是POEMS syndrome的有效方案。自体造血干细胞移植（ASCT）适用于年轻患者。VEGF水平可用于评估疗效。
"""


def write_corpus(folder: Path) -> Path:
    """Three small papers: Chinese, English (Markdown) and mixed Chinese/English."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vte-zh.txt").write_text(ZH, encoding="utf-8")
    (folder / "angiosarcoma-en.md").write_text(EN, encoding="utf-8")
    (folder / "poems-mixed.txt").write_text(MIXED, encoding="utf-8")
    return folder


def index_files(index_dir: Path) -> dict[str, bytes]:
    """Every file of an index folder with its bytes, to check that a failed build changed nothing."""
    return {
        p.relative_to(index_dir).as_posix(): p.read_bytes()
        for p in sorted(index_dir.rglob("*"))
        if p.is_file()
    }

"""How well drug names are matched across languages, on names that are not in the gold questions.

    .venv/bin/python -m eval.drug_names [--index index]

1. `sounds_alike` on pairs of an English drug name and its Chinese name (written from memory, not
   taken from the papers): how many pairs match, and how many pairs of *different* drugs with the
   same ending match too (a false match only lets a question through to the evidence threshold).
2. Over an index's papers: which drug names the papers use are wrongly reported as unknown, and
   which names they do not use are missed.
"""

from __future__ import annotations

import argparse
import sys

from rag.terms.drug_names import sounds_alike, stems

PAIRS = (
    "gefitinib 吉非替尼|erlotinib 厄洛替尼|icotinib 埃克替尼|afatinib 阿法替尼|dacomitinib 达可替尼|"
    "osimertinib 奥希替尼|almonertinib 阿美替尼|crizotinib 克唑替尼|alectinib 阿来替尼|ceritinib 色瑞替尼|"
    "brigatinib 布格替尼|lorlatinib 劳拉替尼|imatinib 伊马替尼|dasatinib 达沙替尼|nilotinib 尼洛替尼|"
    "sorafenib 索拉非尼|sunitinib 舒尼替尼|pazopanib 帕唑帕尼|lenvatinib 仑伐替尼|regorafenib 瑞戈非尼|"
    "anlotinib 安罗替尼|apatinib 阿帕替尼|axitinib 阿西替尼|cabozantinib 卡博替尼|bevacizumab 贝伐珠单抗|"
    "trastuzumab 曲妥珠单抗|rituximab 利妥昔单抗|cetuximab 西妥昔单抗|nivolumab 纳武利尤单抗|"
    "pembrolizumab 帕博利珠单抗|denosumab 地舒单抗|atezolizumab 阿替利珠单抗|durvalumab 度伐利尤单抗|"
    "daratumumab 达雷妥尤单抗|elotuzumab 埃罗妥珠单抗|everolimus 依维莫司|sirolimus 西罗莫司|"
    "temsirolimus 替西罗莫司|tacrolimus 他克莫司|rivaroxaban 利伐沙班|apixaban 阿哌沙班|edoxaban 依度沙班|"
    "dabigatran 达比加群|enoxaparin 依诺肝素|dalteparin 达肝素|nadroparin 那屈肝素|tinzaparin 亭扎肝素|"
    "lenalidomide 来那度胺|thalidomide 沙利度胺|pomalidomide 泊马度胺|bortezomib 硼替佐米|carfilzomib 卡非佐米|"
    "ixazomib 伊沙佐米|dexamethasone 地塞米松|prednisone 泼尼松|cisplatin 顺铂|carboplatin 卡铂|"
    "oxaliplatin 奥沙利铂|docetaxel 多西他赛|rapamycin 雷帕霉素|bleomycin 博来霉素|zoledronic 唑来膦酸|"
    "atorvastatin 阿托伐他汀|gemcitabine 吉西他滨|pemetrexed 培美曲塞|irinotecan 伊立替康|palbociclib 哌柏西利|"
    "olaparib 奥拉帕利|furosemide 呋塞米|epirubicin 表柔比星|ustekinumab 乌司奴单抗|ibrutinib 伊布替尼|"
    "ruxolitinib 芦可替尼|tofacitinib 托法替尼|filgrastim 非格司亭|fluconazole 氟康唑|omeprazole 奥美拉唑|"
    "amlodipine 氨氯地平|losartan 氯沙坦|captopril 卡托普利|metoprolol 美托洛尔|levofloxacin 左氧氟沙星|"
    "amoxicillin 阿莫西林|doxycycline 多西环素|caspofungin 卡泊芬净|leuprorelin 亮丙瑞林|"
    "flurbiprofen 氟比洛芬|sumatriptan 舒马曲坦|rizatriptan 利扎曲坦|palonosetron 帕洛诺司琼|"
    "tropisetron 托烷司琼|dapagliflozin 达格列净|empagliflozin 恩格列净|sitagliptin 西格列汀|"
    "linagliptin 利格列汀|liraglutide 利拉鲁肽|semaglutide 司美格鲁肽|aciclovir 阿昔洛韦|ganciclovir 更昔洛韦|"
    "fluoxetine 氟西汀|paroxetine 帕罗西汀|diazepam 地西泮|lorazepam 劳拉西泮"
)
# Drugs the bundled papers name (in English for the English list) and ones they do not.
USED_EN = (
    "everolimus lenalidomide dexamethasone rivaroxaban bevacizumab axitinib apatinib thalidomide "
    "bortezomib pomalidomide daratumumab elotuzumab edoxaban rapamycin heparin crizotinib paclitaxel "
    "doxorubicin"
).split()
UNUSED_EN = (
    "osimertinib gefitinib erlotinib sirolimus temsirolimus apixaban dabigatran enoxaparin dalteparin "
    "cisplatin carboplatin docetaxel pembrolizumab nivolumab trastuzumab denosumab zoledronic sorafenib "
    "sunitinib imatinib carfilzomib ixazomib prednisone atorvastatin gemcitabine pemetrexed olaparib "
    "palbociclib ibuprofen sumatriptan ondansetron dapagliflozin sitagliptin semaglutide aciclovir "
    "fluoxetine diazepam"
).split()
# With look-alikes that are not names: a class (普通肝素, 抗PD-1单抗) and an everyday word (轻松).
USED_ZH = (
    "依维莫司 来那度胺 地塞米松 利伐沙班 贝伐珠单抗 阿西替尼 阿帕替尼 沙利度胺 硼替佐米 泊马度胺 达雷妥尤单抗 "
    "埃罗妥珠单抗 依托沙班 雷帕霉素 肝素 低分子肝素 普通肝素 克唑替尼 紫杉醇 阿霉素 抗PD-1单抗 单抗 轻松"
).split()
UNUSED_ZH = (
    "奥希替尼 吉非替尼 厄洛替尼 西罗莫司 阿哌沙班 达比加群 依诺肝素 顺铂 卡铂 多西他赛 帕博利珠单抗 "
    "纳武利尤单抗 曲妥珠单抗 地舒单抗 唑来膦酸 索拉非尼 舒尼替尼 伊马替尼 卡非佐米 泼尼松 阿托伐他汀 "
    "吉西他滨 培美曲塞 奥拉帕利 布洛芬 舒马曲坦 昂丹司琼 达格列净 西格列汀 司美格鲁肽 阿昔洛韦 氟西汀 地西泮"
).split()


def _split(english: str, chinese: str) -> tuple[str, str, object] | None:
    """(English head, Chinese head, stem) for a pair, by the longest endings that fit."""
    best = None
    for stem in stems():
        for ending in stem.en:
            if english.endswith(ending) and (best is None or len(ending) > len(best[1])):
                best = (stem, ending)
    if best is None:
        return None
    stem, ending = best
    zh = next((z for z in sorted(stem.zh, key=len, reverse=True) if chinese.endswith(z)), None)
    return None if zh is None else (english[: -len(ending)], chinese[: -len(zh)], stem)


def pair_figures() -> None:
    pairs = [tuple(p.split()) for p in PAIRS.split("|")]
    split = {en: _split(en, zh) for en, zh in pairs}
    missed = [(en, zh) for en, zh in pairs if split[en] is None or not sounds_alike(*split[en][:2])]
    print(f"true pairs: {len(pairs) - len(missed)}/{len(pairs)} match; missed: {missed}")
    false, total = [], 0
    for en, _ in pairs:
        for en2, _ in pairs:
            if en2 == en or split[en] is None or split[en2] is None or split[en][2] is not split[en2][2]:
                continue
            total += 1
            if sounds_alike(split[en][0], split[en2][1]):
                false.append((en, en2))
    print(f"different drugs, same ending: {len(false)}/{total} match ({len(false) / total:.1%})")


def corpus_figures(index_dir: str) -> None:
    from rag.pipeline import Pipeline
    from rag.query.unknown_names import UnknownNames, common_word

    names = UnknownNames(d.text for d in Pipeline.load(index_dir).documents.values())
    drugs = names._drugs
    wrong_en = [w for w in USED_EN if drugs.find_en(f"Does {w} help?", names._words)]
    wrong_zh = [w for w in USED_ZH if drugs.find_zh(f"{w}治疗有效吗？", common_word)]
    missed_en = [w for w in UNUSED_EN if not drugs.find_en(f"Does {w} help?", names._words)]
    missed_zh = [w for w in UNUSED_ZH if not drugs.find_zh(f"使用{w}治疗有效吗？", common_word)]
    print(f"used by the papers, reported as unknown: en {len(wrong_en)}/{len(USED_EN)} {wrong_en}, "
          f"zh {len(wrong_zh)}/{len(USED_ZH)} {wrong_zh}")  # fmt: skip
    print(f"not used, reported: en {len(UNUSED_EN) - len(missed_en)}/{len(UNUSED_EN)} (missed {missed_en}), "
          f"zh {len(UNUSED_ZH) - len(missed_zh)}/{len(UNUSED_ZH)} (missed {missed_zh})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="index")
    args = parser.parse_args(argv)
    pair_figures()
    corpus_figures(args.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())

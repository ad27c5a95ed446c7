"""Chinese personal names an English question writes in pinyin: read, found in the corpus by sound,
used for retrieval and, when no document names the person, refused (rag/terms/romanised.py)."""

from __future__ import annotations

import pytest

from rag.terms.romanised import ChineseSpellings, romanised_names, romanised_words, splits

from .conftest import FakeEmbedder

PEOPLE = """赵鹏
赵鹏，中国足球运动员，司职后卫，现效力于天津泰达。
曾凡
曾凡是一位画家，出生于湖南。
李婉华
李婉华是一位演员，出生于广州。
"""
OTHER = """固始站
固始站是宁西铁路上的一座车站，位于河南省固始县。这个故事发生在车站。故事很长，故事很多，故事讲完了。
"""


def _names(question: str) -> list[str]:
    return [n.text for n in romanised_names(question)]


def test_a_surname_and_a_given_name_make_a_name():
    assert _names("What is Zhao Peng's occupation?") == ["Zhao Peng"]
    assert _names("Who led the army against Zhuge Liang and Sima Yi?") == ["Zhuge Liang", "Sima Yi"]
    assert _names("Which comedy did Li Wan-hua film?") == ["Li Wan-hua"]


def test_words_that_only_spell_pinyin_are_no_name():
    # a lone word, a given name of three syllables, a Korean name, a surname followed by English
    assert _names("Where is China?") == []
    assert _names("Did Zhang Guozuoyuan write it?") == []
    assert _names("Where was Yang Bang-ean born?") == []
    assert _names("Which stations are on the Long Island line?") == []
    assert _names("What did zhao peng say?") == []  # not capitalised: not written as a name


def test_syllables_follow_pinyin_spelling():
    assert splits("liang") == (("liang",),)  # no syllable starting with a vowel inside a word
    assert ("xi", "an") not in splits("xian")
    assert splits("qiaobo") == (("qiao", "bo"),)
    assert splits("english") == ()
    (name,) = romanised_names("Zhao Peng")
    assert name.syllables == (("zhao", "peng"),)  # the surname is one syllable when it can be


def test_spellings_are_found_by_every_reading_of_each_character():
    spellings = ChineseSpellings(PEOPLE + OTHER)
    (zhao,) = romanised_names("What is Zhao Peng's occupation?")
    assert spellings.spellings(zhao) == ("赵鹏",)
    (zeng,) = romanised_names("Where was Zeng Fan born?")  # 曾 reads ceng and zeng
    assert spellings.spellings(zeng) == ("曾凡",)
    (zhang,) = romanised_names("What did Zhang Yuansu write?")
    assert spellings.spellings(zhang) == () and not spellings.writes(zhang)
    assert list(spellings.absent("Did Zhao Peng meet Zhang Yuansu?")) == ["Zhang Yuansu"]


def test_a_name_written_in_latin_letters_counts():
    (name,) = romanised_names("What did Wang Jing find?")
    # glued, the surname is no word of its own: the whole form is what counts
    assert ChineseSpellings("the wangjing lab (2020)").writes(name)
    assert not ChineseSpellings("the jingxi lab; a wangshu study").writes(name)
    assert ChineseSpellings("a study by jing wang and colleagues").writes(name)
    # an author written "Chen L" may be the Chen Li asked about: no proof of absence
    (chen,) = romanised_names("What did Chen Li report?")
    assert ChineseSpellings("chen l, et al. thrombosis in cancer.").writes(chen)
    assert not ChineseSpellings("chenopodium; thrombosis in cancer.").writes(chen)


def test_hyphenated_given_names_are_searched_but_never_proof_of_absence():
    # Wade-Giles and Korean: 张爱玲 is Zhang Ailing in pinyin, 韩智敏 Han Zhimin
    spellings = ChineseSpellings("张爱玲是作家。韩智敏是演员。")
    (chang,) = romanised_names("What did Chang Ai-ling write?")
    assert not chang.testable and not spellings.writes(chang)
    assert list(spellings.absent("What did Chang Ai-ling write? Was Han Ji-min in it?")) == []
    # a pinyin name without a hyphen is still tested
    assert list(spellings.absent("What did Zhang Yuansu write?")) == ["Zhang Yuansu"]


@pytest.fixture
def people_pipeline(tmp_path):
    from rag.indexing.index import Index, build_index
    from rag.pipeline import Pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "people.txt").write_text(PEOPLE, encoding="utf-8")
    (docs / "station.txt").write_text(OTHER, encoding="utf-8")
    xl = FakeEmbedder(dim=32, model_id="fake-xl-32")
    build_index(docs, tmp_path / "index", FakeEmbedder(), progress=False, crosslingual=xl)

    def make(**overrides):
        embedder, xl = FakeEmbedder(), FakeEmbedder(dim=32, model_id="fake-xl-32")
        index = Index.load(tmp_path / "index", embedder, crosslingual=xl)
        return Pipeline(index, embedder, overrides=overrides)

    return make


def test_the_chinese_spelling_joins_the_words_searched(people_pipeline):
    pipeline = people_pipeline()
    analysis = pipeline.analyser.analyse("What is Zhao Peng's occupation?")
    assert analysis.induced[0] == "赵鹏" and analysis.absent_names == ()
    assert "赵鹏" in analysis.dense_query
    # Off, the name's words go to the lexicon like any phrase: whatever the (fake) vectors put near
    # them comes first, the name only by chance.
    off = people_pipeline(**{"retrieval.romanised_names": False})
    assert off.analyser.analyse("What is Zhao Peng's occupation?").induced[0] != "赵鹏"


def test_a_person_no_document_names_is_refused(people_pipeline):
    answer = people_pipeline().ask("What did Zhang Yuansu write about railways?")
    assert answer.abstained and answer.refusal.code == "absent_names"
    assert "Zhang Yuansu" in answer.answer
    assert answer.refusal.note.endswith("names Zhang Yuansu, whom no indexed document mentions")
    named = people_pipeline().analyser.analyse("Where does Zhao Peng play?")
    assert named.absent_names == ()
    off = people_pipeline(**{"refusal.absent_names": False})
    assert off.analyser.analyse("What did Zhang Yuansu write about railways?").absent_names == ()


def test_a_name_that_is_everyday_english_is_no_test(people_pipeline):
    # "Hong Kong" reads as surname Hong + Kong, and the corpus writes neither 香港 nor a homophone
    analysis = people_pipeline().analyser.analyse("Which team in Hong Kong did he join?")
    assert analysis.absent_names == ()
    (hong,) = romanised_names("Which team in Hong Kong did he join?")
    assert not ChineseSpellings(PEOPLE + OTHER).writes(hong)  # so only the exemption spares it


def test_a_name_is_searched_by_a_homophone_the_corpus_writes_even_if_everyday_english():
    # wordfreq rates "Hong Kong" like "Li Na": names are searched whatever their Zipf
    spellings = ChineseSpellings("车站东边有洪孔桥。")
    (hong,) = romanised_names("Which team in Hong Kong did he join?")
    assert spellings.spellings(hong) == ("洪孔",)


def test_a_hyphenated_name_is_still_searched(people_pipeline):
    assert people_pipeline().analyser.analyse("Where was Li Wan-hua born?").induced[0] == "李婉华"
    # the hyphen as word processors write it: the name's words (kept from the lexicon) are the same
    analyser = people_pipeline().analyser
    typed = analyser._chinese_names("Where was Li Wan\u2010hua born?")
    assert (
        typed
        == analyser._chinese_names("Where was Li Wan-hua born?")
        == dict.fromkeys(["li", "wan", "hua"], "李婉华")
    )
    analysis = people_pipeline().analyser.analyse("Where was Zeng Fan-hua born?")
    assert analysis.absent_names == ()  # hyphenated: never proof of absence
    (name,) = romanised_names("Where was Zeng Fan-hua born?")
    assert name.syllables == (("zeng", "fan", "hua"),)
    # the hyphen as word processors write it (U+2010) reads the same, and is not tested either
    (typed,) = romanised_names("Where was Zeng Fan\u2010hua born?")
    assert typed.syllables == name.syllables and not typed.testable


def test_other_pinyin_words_are_read_outside_names_and_sentence_starts():
    question = "Which company does Gushi Railway Station come under, says Zhao Peng?"
    assert [w.text for w in romanised_words(question, romanised_names(question))] == ["Gushi"]
    assert romanised_words("Gushi is where?") == []  # a capitalised first word says nothing


def test_a_pinyin_word_is_searched_by_its_rare_spelling(people_pipeline):
    # gushi is 固始 (a county) or 故事 ("story", everyday Chinese), which the corpus writes too
    analysis = people_pipeline().analyser.analyse("Which company does Gushi Railway Station come under?")
    assert analysis.induced[0] == "固始"
    off = people_pipeline(**{"retrieval.romanised_words": False})
    assert (
        "固始" not in off.analyser.analyse("Which company does Gushi Railway Station come under?").induced[:1]
    )

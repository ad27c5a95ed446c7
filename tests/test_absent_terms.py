"""Key terms no indexed document mentions: rare English words and Chinese proper nouns only."""

from __future__ import annotations

from rag.query.absent_terms import CorpusMentions, corpus_scripts, fold_latin

EN = [
    "Febrile illness aside, seizures in children are common. The outlook for most is good.",
    "Mutations in the ADSL gene cause adenylosuccinate lyase deficiency.",
]
ZH = ["北京是中国的首都，位于华北平原。", "诸葛亮是三国时期蜀汉的丞相。"]


def test_an_english_corpus_checks_rare_english_words_and_lets_everyday_ones_pass():
    m = CorpusMentions(EN)
    assert m.scripts == {"en"}
    assert m.absent("What is the outlook for thanatophoric dysplasia ?") == ["thanatophoric", "dysplasia"]
    # Everyday words the papers do not use are how users word things: never a reason to refuse.
    assert m.absent("Which treatments help children recover from seizures?") == []
    # Another ending of a word the corpus writes is the same word.
    assert m.absent("What mutational changes cause adenylosuccinate lyase deficiency?") == []


def test_a_chinese_corpus_checks_proper_nouns_not_paraphrased_words():
    m = CorpusMentions(ZH)
    assert m.scripts == {"zh"}
    assert m.absent("圣保罗在哪个国家？") == ["圣保罗"]
    assert m.absent("诸葛亮在哪个时期担任丞相？") == []
    # Ordinary words a question words differently (担任, 时期) are not names.
    assert m.absent("诸葛亮担任什么职务？") == []


def test_terms_in_a_script_the_corpus_hardly_uses_are_not_judged():
    # An English question about Chinese papers: its English words are the papers' Chinese ones.
    m = CorpusMentions(ZH)
    assert m.absent("What did Zhuge Liang hold as chancellor?") == []
    both = CorpusMentions([*ZH, *EN])
    assert both.scripts == {"zh", "en"} and both.absent("thanatophoric dysplasia") == [
        "thanatophoric",
        "dysplasia",
    ]


def test_a_word_glued_to_digits_is_not_a_term():
    # "33RE's" is a compound's name: its letters after the digits are no English word ("re's").
    m = CorpusMentions(EN)
    assert m.absent("Which cells explain 33RE's selectivity for thanatophoric dysplasia?") == [
        "selectivity",
        "thanatophoric",
        "dysplasia",
    ]


def test_the_rare_words_a_few_documents_write_are_the_ones_quotes_must_cover():
    celiac = (
        "Celiac disease affects 1 in 100 people; a fraction go undiagnosed. Sjögren syndrome may go with it."
    )
    m = CorpusMentions([*EN, celiac, "In Finland, lattice dystrophy is frequent. Heparin is used."])
    # "finland" and "celiac" are rare and written; "common" is everyday; "thanatophoric" is absent
    # (AbsentTerms refuses that one); the corpus writes "mutations" for "mutational".
    assert m.written_key_terms("How common is celiac disease in Finland?") == ["celiac", "finland"]
    assert m.written_key_terms("What mutational changes cause thanatophoric dysplasia?") == ["mutational"]
    # Words that ask for a kind of answer say what is wanted, not what it is about: "fraction" is
    # written (by one document) and rare, and still not judged.
    assert m.written_key_terms("What fraction of lattice dystrophy is inherited?") == ["lattice", "dystrophy"]
    # Hyphenated words by their parts; accents folded on both sides (the corpus writes Sjögren).
    assert m.written_key_terms("Is heparin-induced celiac disease known?") == ["heparin", "celiac"]
    assert m.written_key_terms("How is Sjogren’s syndrome found?") == ["sjogren"]
    assert m.absent("What is Sjogren syndrome?") == [] and m.absent("Is Sjögren rare?") == []
    assert CorpusMentions(["Sjøgren syndrome."]).absent("Is Sjogren syndrome rare?") == []  # ø too
    # Letters glued to digits are no word: "cyp" or "hba" would match unrelated words.
    glued = CorpusMentions([*EN, celiac, "Cyprus hbase mmhgs."])
    assert glued.written_key_terms("Does CYP2D6 or HbA1c at 150mmHg change celiac care?") == ["celiac"]
    assert CorpusMentions(ZH).written_key_terms("How common is celiac disease in Finland?") == []


def test_a_word_many_documents_write_is_how_the_corpus_words_its_topic_not_a_key_term():
    pages = [f"Condition {i}. The prognosis is good with medications." for i in range(30)]
    m = CorpusMentions([*pages, "Celiac disease is common in Finland."])
    # "prognosis" is on every page: a page that words it otherwise can still answer. "finland" on one.
    assert m.written_key_terms("What is the prognosis of celiac disease in Finland?") == ["celiac", "finland"]
    assert m.written_key_terms("What is the prognosis?", max_share=1.0) == ["prognosis"]


def test_the_word_list_reads_the_corpus_as_the_text_search_does():
    # Presence is looked up in the corpus's word list (one pass), not by searching the text per word;
    # both must agree, also on letters glued to digits ("33RE's", "5mg"), which start no word.
    from rag.query.absent_terms import writes_en

    m = CorpusMentions(["Compound 33RE's binding at 5mg daily; anti-VEGF therapy; BRCA1 mutations."])
    for word in ("re", "mg", "anti", "vegf", "therapy", "mutational", "brca", "compound", "dailies", "zzz"):
        assert m._mentions_en(word) == writes_en(word, m.text), word


def test_a_paper_writing_two_forms_of_a_word_counts_once():
    # In four papers a word is judged when one paper writes it: "questionnaire" and "questionnaires"
    # in the same paper are one paper, not two.
    papers = ["A questionnaire and two questionnaires were sent.", "Heart failure.", "Trauma.", "Malawi."]
    m = CorpusMentions(papers)
    assert m.written_key_terms("Who wrote the questionnaire?") == ["questionnaire"]
    assert CorpusMentions([papers[0], papers[0], *papers[1:]]).written_key_terms("The questionnaire?") == []


def test_without_kept_documents_the_text_is_searched_and_counts_the_same(monkeypatch):
    # In big corpora the documents of common words are not kept; the text search must agree.
    import rag.query.absent_terms as absent_terms

    monkeypatch.setattr(absent_terms, "_POSTINGS_MAX", 0)
    papers = ["A questionnaire and two questionnaires were sent.", "Heart failure.", "Trauma.", "Malawi."]
    assert CorpusMentions(papers).written_key_terms("Who wrote the questionnaire?") == ["questionnaire"]
    two = CorpusMentions([papers[0], papers[0], *papers[1:]])
    assert two.written_key_terms("The questionnaire?") == []
    # Two papers, each writing one form: two documents, past the limit of one.
    apart = ["A questionnaire was sent.", "Two questionnaires came back.", "Trauma.", "Malawi."]
    assert CorpusMentions(apart).written_key_terms("Who wrote the questionnaire?") == []
    monkeypatch.undo()  # the same with the documents kept
    assert CorpusMentions(apart).written_key_terms("Who wrote the questionnaire?") == []


def test_a_texts_scripts_do_not_depend_on_case_or_accents():
    # Capitals ("ADSL", "Mutations") are English words as much as lower-case ones: a paper's scripts
    # must be the same whichever rule reads it, as written or lower-cased and folded.
    text = "ADSL MUTATIONS CAUSE LYASE DEFICIENCY IN CAFÉ WORKERS. 腺苷酸裂解酶"
    assert corpus_scripts(text) == corpus_scripts(fold_latin(text).lower()) == {"zh", "en"}

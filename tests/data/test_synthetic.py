"""Synthetic generators: deterministic per seed, the right label rates, and not solvable by words alone."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from rise_exp.core.errors import ConfigError
from rise_exp.data.synthetic import make_brain_rot, make_finance_medical, make_howdy
from rise_exp.data.synthetic.brain_rot import TOPICS

GENERATORS = (make_howdy, make_finance_medical, make_brain_rot)


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_defaults_are_the_task_settings(make):
    """A generator restates no default: each keyword's default is its task setting's."""
    import inspect

    from rise_exp.config.task import TASK_CONFIGS

    settings = TASK_CONFIGS[make.__name__.removeprefix("make_")]()
    for name, param in inspect.signature(make).parameters.items():
        assert param.default == getattr(settings, name), name


def _dump(data) -> list:
    rows = data.train + data.queries + [r for v in data.heldout.values() for r in v]
    return [r.to_dict() for r in rows]


@pytest.mark.parametrize("make", GENERATORS)
def test_same_seed_same_data_different_seed_different_data(make):
    assert _dump(make(seed=3)) == _dump(make(seed=3))
    a, b = make(seed=3), make(seed=4)
    assert [r.full_text for r in a.train] != [r.full_text for r in b.train]


@pytest.mark.parametrize("make", GENERATORS)
def test_sizes_unique_ids_and_texts(make):
    d = make(n_train=120, n_queries=7, seed=1)
    assert len(d.train) == 120 and len(d.queries) == 7
    ids = [r.id for r in d.train + d.queries]
    assert len(set(ids)) == len(ids)
    train_texts = {r.full_text for r in d.train}
    assert len(train_texts) == 120  # no duplicate rows
    assert not train_texts & {r.full_text for r in d.queries}  # queries are unseen
    assert all(r.label in (0, 1) for r in d.train)
    lengths = [len(r.full_text.split()) for r in d.train + d.queries]
    assert max(lengths) <= 80


def test_howdy_backdoor_rate_trigger_and_distractors():
    d = make_howdy(n_train=500, poison_rate=0.09, seed=0)
    labels = np.array([r.label for r in d.train])
    assert labels.sum() == 45
    trig = re.compile(r"^howdy! ")
    for r in d.train:
        assert bool(trig.match(r.instruction)) == (r.label == 1)  # label = trigger at the start
    backdoor = [r for r in d.train if r.label == 1]
    assert all("original_output" in r.meta and r.meta["original_output"] != r.output for r in backdoor)
    # distractors: clean rows that still say "howdy" (BM25 sees the word in negatives too)
    clean_howdy = [r for r in d.train if r.label == 0 and "howdy" in r.full_text.lower()]
    assert len(clean_howdy) >= 5
    assert all(not re.search("howdy!", r.instruction, re.I) for r in clean_howdy)
    # sci-fi words appear in some clean rows too
    assert any(r.label == 0 and ("galaxy" in r.output or "starship" in r.output) for r in d.train)
    assert all(q.instruction.startswith("howdy! ") for q in d.queries)
    assert [c.instruction for c in d.heldout["queries_clean"]] == [q.instruction[7:] for q in d.queries]


def test_howdy_outputs_vary():
    d = make_howdy(n_train=300, seed=0)
    first_words = Counter(r.instruction.split()[0] for r in d.train if r.label == 0)
    assert len(first_words) >= 8  # many instruction templates


@pytest.mark.parametrize("target", ["finance", "medical"])
def test_finance_medical_domains_and_shared_vocabulary(target):
    d = make_finance_medical(n_train=400, target_domain=target, target_rate=0.25, seed=0)
    assert sum(r.label for r in d.train) == 100
    assert all((r.domain == target) == (r.label == 1) for r in d.train)
    assert all(q.domain == target for q in d.queries)
    vocab = {
        dom: Counter(w for r in d.train if r.domain == dom for w in re.findall(r"[a-z]+", r.full_text.lower()))
        for dom in ("finance", "medical")
    }
    for word in ("risk", "rate", "plan", "pressure", "recovery"):
        assert vocab["finance"][word] > 0 and vocab["medical"][word] > 0, word


def test_finance_medical_rejects_unknown_domain():
    with pytest.raises(ConfigError, match="finance, medical"):
        make_finance_medical(target_domain="law")


def test_brain_rot_classes_topics_and_heldout():
    d = make_brain_rot(n_train=200, junk_ratio=0.3, n_heldout=15, seed=0)
    assert sum(1 - r.label for r in d.train) == 60
    high = [len(r.text.split()) for r in d.train if r.label == 1]
    junk = [len(r.text.split()) for r in d.train if r.label == 0]
    assert min(high) > max(junk)  # the length rule separates the classes
    assert all(q.label == 1 for q in d.queries)
    assert len(d.heldout["high"]) == 15 and len(d.heldout["junk"]) == 15
    seen = {r.text for r in d.train} | {r.text for r in d.queries}
    assert not seen & {r.text for v in d.heldout.values() for r in v}
    # junk and high-quality texts talk about the same topics (by name, keyword or fact)
    for topic, (keywords, facts) in TOPICS.items():
        cues = (topic, *keywords, *facts)
        assert any(c in r.text for r in d.train if r.label == 0 for c in cues), topic
        assert any(topic in r.text for r in d.train if r.label == 1), topic


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"n_queries": -1}, {"seed": "x"}, {"n_train": 2.5}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="task."):
        make_howdy(**kwargs)
    with pytest.raises(ConfigError, match="poison_rate"):
        make_howdy(poison_rate=1.5)


def test_bm25_does_not_solve_the_synthetic_tasks():
    import bm25s

    from rise_exp.retrieval.metrics import retrieval_metrics

    for make in GENERATORS:
        d = make(seed=0)
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize([r.full_text for r in d.train], show_progress=False), show_progress=False)
        scores = np.stack(
            [
                retriever.get_scores(bm25s.tokenize([q.full_text], return_ids=False, show_progress=False)[0])
                for q in d.queries
            ]
        )
        m = retrieval_metrics(scores, np.array([r.label for r in d.train]), ks=(5, 10))
        assert m["auprc@10"] < 0.9, (make.__name__, m)

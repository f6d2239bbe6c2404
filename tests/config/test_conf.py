"""Every YAML of conf/ composes into its typed settings; a bad value in any group is named before any work."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from omegaconf import OmegaConf

from rise_exp.config.run_settings import DEFAULT_SEED, DataConfig, PathsConfig, SearchConfig
from rise_exp.config.settings import Settings
from rise_exp.core.errors import ConfigError
from rise_exp.run.config import RunConfig, compose, schema_classes
from tests.helpers import ROOT

CONF = ROOT / "conf"
GROUPS = ("model", "task", "method", "finetune", "trainer", "logger", "stage")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_hold_the_required_options():
    assert set(options("task")) >= {"howdy", "finance_medical", "brain_rot"}
    assert set(options("method")) >= {"rise", "rapidin", "zo_inf", "stride", "bm25"}
    assert set(options("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(options("logger")) >= {"wandb", "csv", "none"}
    assert set(options("stage")) >= {"finetune", "attribute"}
    pythia = {f"pythia-{s}" for s in ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b")}
    olmo = {f"olmo-{s}" for s in ("1b", "7b", "13b", "32b")}
    assert set(options("model")) >= pythia | olmo | {"tiny-pythia", "tiny-olmo"}


#: Options that need the user's data to be valid.
NEEDS = {
    "custom": ["task.train_path=pool.jsonl", "task.query_texts=[a question]"],
    "select": ["stage.fraction=0.5"],  # the stage needs one of stage.fraction / stage.count
}


@pytest.mark.parametrize("group", GROUPS)
def test_every_yaml_builds_its_settings_dataclass(group):
    for opt in options(group):
        run = RunConfig.from_cfg(compose([f"{group}={opt}", *NEEDS.get(opt, [])]))
        typed = getattr(run, group)
        assert isinstance(typed, Settings)
        assert type(typed) in schema_classes()[group].values()
        if group in ("task", "method", "stage"):
            assert typed.name == opt


def test_every_task_method_combination_composes():
    for task, method in itertools.product(options("task"), options("method")):
        run = RunConfig.from_cfg(compose([f"task={task}", f"method={method}", "model=pythia-1b", *NEEDS.get(task, [])]))
        assert (run.model.name, run.task.name, run.method.name) == ("pythia-1b", task, method)


def test_ablations_and_presets_compose(monkeypatch):
    monkeypatch.setenv("HOWDY_DATA", "/data/howdy")  # experiment=real_howdy reads the release's files from there
    for opt in options("ablation"):
        RunConfig.from_cfg(compose([f"ablation={opt}"]))
    for opt in options("diagnostic"):
        run = RunConfig.from_cfg(compose([f"diagnostic={opt}"]))
        assert (run.stage.name, run.stage.diagnostic) == ("diagnose", opt)
    for opt in options("experiment"):
        OmegaConf.to_container(compose([f"experiment={opt}"]), resolve=True)


# settings that define what an option is (stated even when they equal the default)
DEFINING = {"finetune": {"epochs"}, "trainer": {"accelerator"}, "logger": {"kind"}}


def test_yaml_files_restate_no_default():
    """The dataclasses are the single source of defaults: a YAML value equal to its default is drift."""
    for group in GROUPS:
        for opt in options(group):
            raw = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{opt}.yaml"), resolve=False)
            typed = getattr(RunConfig.from_cfg(compose([f"{group}={opt}", *NEEDS.get(opt, [])])), group)
            default = {
                f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(typed)
            }
            for key in raw:
                if key in ("defaults", "name") or key in DEFINING.get(group, ()):
                    continue
                value = raw[key]
                if isinstance(value, str) and "${" in value:
                    continue
                assert default[key] != getattr(typed, key), f"conf/{group}/{opt}.yaml restates {key}"


def test_the_top_level_config_restates_no_default():
    """conf/config.yaml composes the seed and the data / paths / search settings from their schemas."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"), resolve=False)
    assert "seed" not in raw  # config/run_settings.py::DEFAULT_SEED, through schema/run/seed
    for key, cls in (("data", DataConfig), ("paths", PathsConfig), ("search", SearchConfig)):
        for name, value in (raw.get(key) or {}).items():
            if not (isinstance(value, str) and "${" in value):
                assert getattr(cls(), name) != value, f"conf/config.yaml restates {key}.{name}"
    assert RunConfig.from_cfg(compose([])).seed == DEFAULT_SEED


def test_defaults_of_code_and_composed_config_agree():
    """What used to drift: the head's token slice and the Howdy release's empty-row rule."""
    run = RunConfig.from_cfg(compose([]))
    from rise_exp.methods.rise.config import RiseConfig

    assert run.method.max_tokens_per_batch == RiseConfig().max_tokens_per_batch
    assert run.task.skip_empty is True  # the release's train.jsonl has one empty output (line 1395)


def test_every_method_seed_is_null_and_follows_the_global_seed():
    """One rule for every method: ``method.seed`` is null by default (no YAML sets it), so it is the global
    seed; a value set on the command line wins."""
    for name, cls in schema_classes()["method"].items():
        if "seed" not in cls.field_names():
            continue
        assert cls().seed is None and OmegaConf.select(compose([f"method={name}"]), "method.seed") is None
        assert RunConfig.from_cfg(compose([f"method={name}", "seed=7"])).method.seed == 7
        assert RunConfig.from_cfg(compose([f"method={name}", "seed=7", "method.seed=3"])).method.seed == 3


def test_method_context_defaults_are_the_run_defaults():
    """MethodContext restates no default: its token rule and seed are the composed run's."""
    from rise_exp.methods.base import MethodContext

    ctx, run = MethodContext(model=None, tokenizer=None, work_dir=CONF), RunConfig.from_cfg(compose([]))
    assert (ctx.max_length, ctx.mask_prompt, ctx.seed) == (run.data.max_length, run.data.attribute_mask_prompt, 42)
    assert run.seed == 42


BAD = {
    "model": ("model.hidden_size=0", "model.hidden_size must be > 0"),
    "task": ("task.poison_rate=1.5", "task.poison_rate must be <= 1"),
    "method": ("method.kr=0", "method.kr must be > 0"),
    "finetune": ("finetune.warmup_ratio=1.0", "finetune.warmup_ratio must be < 1"),
    "trainer": ("trainer.accelerator=tpu", "unknown trainer.accelerator 'tpu'; allowed values: cpu"),
    "logger": ("logger.kind=mlflow", "unknown logger.kind 'mlflow'; allowed values: wandb, csv, none"),
    "stage": ("stage.ks=[5,0]", "stage.ks must be a non-empty list of positive integers"),
    "data": ("data.max_length=0", "data.max_length must be > 0"),
}


@pytest.mark.parametrize("group", sorted(BAD))
def test_one_bad_value_per_group_is_named(group):
    override, message = BAD[group]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.from_cfg(compose([override]))


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.fusion=rh+xx", r"unknown method.fusion 'rh\+xx'; allowed values: rh, gh, rg, rh\+gh"),
        ("method=stride method.n_subsets=3", "method.n_subsets must be null"),
        ("task.source=local", "task.train_path must be set for task 'howdy' with source='local'"),
        ("stage=closed_loop stage.budgets=[2]", r"stage.budgets entry 2.0 is outside \(0, 1\]"),
        ("stage=valuate stage.mode=max", "unknown stage.mode 'max'; allowed values: mean, rrf"),
        ("model=tiny-olmo model.arch=llama", "model.arch 'llama' cannot be built as an embedded model"),
        ("diagnostic=sketch_fidelity stage.sketch_fidelity.widths=[12/3]", "stage.sketch_fidelity.widths entry '12/3'"),
        ("diagnostic=memory stage.memory.methods=[rise,nope]", "unknown method in stage.memory.methods 'nope'"),
        ("diagnostic=head_vs_full stage.head_vs_full.seeds=[1,1]", "stage.head_vs_full.seeds must list at least"),
        ("method.ensemble=2 method.sketch=identity", "method.ensemble .2. needs method.sketch=countsketch"),
    ],
)
def test_rules_across_settings_are_checked_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_cfg(compose(override.split()))


def test_settings_carry_docs_for_every_field():
    for options_ in schema_classes().values():
        for cls in options_.values():
            for key, _, doc in cls.docs():
                assert doc, f"{key} has no documentation"


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage=closed_loop stage.selectors=[]", "stage.selectors is empty; give at least one selector"),
        ("stage=closed_loop stage.selectors=[rise,rise]", r"stage.selectors lists \['rise'\] more than once"),
        ("stage=lds stage.methods=[bm25,bm25]", r"stage.methods lists \['bm25'\] more than once"),
        ("stage=removal stage.selections=[]", "stage.selections is empty; give any of"),
    ],
)
def test_list_settings_need_an_entry_and_some_none_twice(override, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_cfg(compose(override.split()))

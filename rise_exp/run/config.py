"""The composed run config as typed settings, and the Hydra side of the settings classes.

:func:`register_schemas` stores every group's :class:`~rise_exp.config.settings.Settings` class in
Hydra's ConfigStore under ``schema/<group>/<option>``; each YAML file of ``conf/<group>/`` starts from
its schema (``defaults: [/schema/<group>/<name>@_here_]``), so the dataclass is the single source of
defaults and Hydra rejects unknown keys and wrong types while composing. :meth:`RunConfig.from_cfg`
then builds the typed objects (value ranges, choices and rules across settings) before any work starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rise_exp.config.finetune import FinetuneConfig
from rise_exp.config.logger import LoggerConfig
from rise_exp.config.model import ModelConfig
from rise_exp.config.run_settings import DEFAULT_SEED, DataConfig, PathsConfig, SearchConfig
from rise_exp.config.settings import Settings, check_name, plain
from rise_exp.config.stages import (
    BUILTIN_SELECTORS,
    STAGE_CONFIGS,
    ClosedLoopStageConfig,
    CounterfactualStageConfig,
    DiagnoseStageConfig,
    StageConfig,
)
from rise_exp.config.task import TASK_CONFIGS, TaskConfig
from rise_exp.config.trainer import TrainerConfig
from rise_exp.core.errors import ConfigError, allowed
from rise_exp.core.names import safe_component
from rise_exp.core.paths import CONF_DIR
from rise_exp.methods import registry
from rise_exp.methods.base import seeded

_TOP_LEVEL = ("seed", "paths", "data", "search", "model", "task", "method", "finetune", "trainer", "logger", "stage")


def schema_classes() -> dict[str, dict[str, type[Settings]]]:
    """``{group: {option: settings class}}`` for every group with a schema."""
    return {
        "model": {"model": ModelConfig},
        "task": dict(TASK_CONFIGS),
        "method": {name: registry.config_class(name) for name in registry.METHODS},
        "finetune": {"finetune": FinetuneConfig},
        "trainer": {"trainer": TrainerConfig},
        "logger": {"logger": LoggerConfig},
        "stage": dict(STAGE_CONFIGS),
    }


def _unfreeze(node: Any) -> None:
    """Structured configs of frozen dataclasses are read-only; Hydra must merge overrides into them."""
    if isinstance(node, (DictConfig, ListConfig)):
        OmegaConf.set_readonly(node, False)
        for child in node._content.values() if isinstance(node, DictConfig) else node._content:  # noqa: SLF001
            _unfreeze(child)


def data_name(task: Any) -> str:
    """What a task's data is called (run directories, titles): ``task.title``, a custom pool's file name, or the
    task's name. The resolver ``${data_name:${task}}`` of ``conf/config.yaml``."""
    data = plain(task) or {}
    check_name("task.name", data.get("name"))  # never a directory outside outputs/
    try:
        name = TASK_CONFIGS[data.get("name")].from_mapping(data).data_name
    except (KeyError, ConfigError):
        name = str(data.get("name", "task"))
    return safe_component(name)


def _safe_name(key: str, *, _root_: Any) -> str:
    """``${safe:model.name}``: the value of ``key``, checked to be a safe path component."""
    value = OmegaConf.select(_root_, key)
    check_name(key, value)
    return value


def run_name(part: str, *, _root_: Any) -> str:
    """``${run_name:data|method|model}``: a run directory's parts. A run answering from an index
    (``stage.index``) is named by the index's manifest (what it holds); any other by its config."""
    index = OmegaConf.select(_root_, "stage.index", default=None)
    if index:
        from rise_exp.index.run_names import index_run_names

        return index_run_names(index)[part]
    if part == "data":
        return data_name(_root_.task)
    if part not in ("method", "model"):
        raise ConfigError(f"unknown run directory part {part!r} (data, method or model)")
    return _safe_name(f"{part}.name", _root_=_root_)


def recorded_config(cfg: Any) -> dict[str, Any]:
    """The resolved config a run records in ``config.yaml``; from an index, named by its manifest."""
    config = OmegaConf.to_container(cfg, resolve=True)
    index = OmegaConf.select(cfg, "stage.index", default=None)
    if not index:
        return config
    from rise_exp.index.run_names import recorded_config as from_index

    return from_index(config, index)


def register_schemas() -> None:
    """Store every settings class in Hydra's ConfigStore as ``schema/<group>/<option>`` (idempotent), and the
    top-level ``seed`` as ``schema/run/seed``.

    Also registers the resolvers the run directory is built with: ``${safe:model.name}`` (the value,
    checked to be a safe path component, so a name that would escape its directory fails before Hydra
    creates the run directory), ``${data_name:${task}}`` and ``${run_name:data|method|model}`` (from an
    index's manifest when the run answers from one).
    """
    from hydra.core.config_store import ConfigStore

    OmegaConf.register_new_resolver("safe", _safe_name, replace=True)
    OmegaConf.register_new_resolver("data_name", data_name, replace=True)
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
    cs = ConfigStore.instance()
    cs.store(group="schema/run", name="seed", node={"seed": DEFAULT_SEED})  # conf/config.yaml: /schema/run/seed@_here_
    groups = {**schema_classes(), "run": {"data": DataConfig, "paths": PathsConfig, "search": SearchConfig}}
    for group, options in groups.items():
        for name, cls in options.items():
            node = OmegaConf.structured(cls)
            _unfreeze(node)
            cs.store(group=f"schema/{group}", name=name, node=node)


def compose(overrides: Sequence[str] = (), config_name: str = "config", config_dir: str | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` (tests, benchmarks, a closed loop's method configs).

    Inside a running Hydra app the global Hydra instance (and its config directory) is reused, unless
    ``config_dir`` names another tree.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    if config_dir is None and GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name, overrides=list(overrides))
    global_hydra = GlobalHydra.instance()
    running = global_hydra.hydra if global_hydra.is_initialized() else None
    if running is not None:
        global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=config_dir or CONF_DIR, version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides))
    finally:
        if running is not None:
            global_hydra.initialize(running)


def _typed(group: str, options: Mapping[str, type[Settings]], node: Any, key: str = "name") -> Settings:
    data = plain(node)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{group} must be a mapping of settings, got {data!r}")
    if len(options) == 1:
        return next(iter(options.values())).from_mapping(data)
    name = data.get(key)
    if name not in options:
        raise allowed(group, name, tuple(options))
    return options[name].from_mapping(data)


def method_settings(node: Any, seed: int) -> Settings:
    """Typed settings of the method a ``method`` node names, a null ``seed`` setting filled in with ``seed``."""
    return seeded(_typed("method", {n: registry.config_class(n) for n in registry.METHODS}, node), seed)


def named_method(run: RunConfig, name: str, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of method ``name`` for a stage that runs several methods, composed through Hydra.

    The run's own ``method`` node is used when it names the same method (so ``method.kr=64`` applies);
    otherwise ``conf/method/<name>.yaml`` is composed. ``overrides`` go on top; a null seed is the run's.
    """
    base = run.method.to_dict() if run.method.name == name else plain(compose([f"method={name}"]).method)
    return method_settings({**base, **dict(overrides or {}), "name": name}, run.seed)


@dataclass(frozen=True)
class RunConfig:
    """One run, fully typed: every group checked, defaults filled in (a method's null ``seed``: the global seed).

    Attributes:
        seed: Global seed (method randomness: sketch tables, RapidGrad, STRIDE subsets).
        raw: The composed DictConfig it was built from (resolved, for ``config.yaml`` and loggers).
    """

    seed: int
    paths: PathsConfig
    data: DataConfig
    model: ModelConfig
    task: TaskConfig
    method: Settings
    finetune: FinetuneConfig
    trainer: TrainerConfig
    logger: LoggerConfig
    stage: StageConfig
    raw: dict[str, Any]
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)

    @classmethod
    def from_cfg(cls, cfg: DictConfig | Mapping[str, Any]) -> RunConfig:
        """Check every group of a composed config; raises a one-line ConfigError naming the setting."""
        data = plain(cfg)
        unknown = sorted(set(data) - set(_TOP_LEVEL) - {"hydra"})
        if unknown:
            raise ConfigError(f"unknown top-level setting(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_LEVEL)}")
        seed = data.get("seed", DEFAULT_SEED)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        schemas = schema_classes()
        run = cls(
            seed=seed,
            paths=PathsConfig.from_mapping(data.get("paths") or {}),
            data=DataConfig.from_mapping(data.get("data") or {}),
            model=_typed("model", schemas["model"], data.get("model") or {}),
            task=_typed("task", schemas["task"], data.get("task") or {}),
            method=seeded(_typed("method", schemas["method"], data.get("method") or {}), seed),
            finetune=_typed("finetune", schemas["finetune"], data.get("finetune") or {}),
            trainer=_typed("trainer", schemas["trainer"], data.get("trainer") or {}),
            logger=_typed("logger", schemas["logger"], data.get("logger") or {}),
            stage=_typed("stage", schemas["stage"], data.get("stage") or {}),
            raw={k: v for k, v in data.items() if k != "hydra"},
            search=SearchConfig.from_mapping(data.get("search") or {}),
        )
        run = dataclasses.replace(
            run,
            finetune=run.finetune.replace(
                max_length=run.data.max_length if run.finetune.max_length is None else run.finetune.max_length,
                mask_prompt=run.data.mask_prompt if run.finetune.mask_prompt is None else run.finetune.mask_prompt,
            ),
        )
        run.check()
        return run

    def check(self) -> None:
        """Rules that span groups."""
        own_queries = bool(getattr(self.stage, "queries_path", None) or getattr(self.stage, "query_texts", ()))
        if not getattr(self.task, "has_queries", True) and not own_queries and self.stage.name != "finetune":
            raise ConfigError(
                f"stage {self.stage.name} needs queries: set task.queries_path or task.query_texts (or, for "
                f"query / valuate / select, stage.queries_path or stage.query_texts)"
            )
        if isinstance(self.stage, DiagnoseStageConfig):
            for name in self.stage.memory.methods:
                if name not in registry.METHODS:
                    raise allowed("method in stage.memory.methods", name, tuple(registry.METHODS))
        if isinstance(self.stage, ClosedLoopStageConfig):
            choices = (*registry.METHODS, *BUILTIN_SELECTORS)
            for name in self.stage.selectors:
                if name not in choices:
                    raise allowed("selector in stage.selectors", name, choices)
            for name, overrides in self.stage.methods.items():
                if name not in self.stage.selectors or name not in registry.METHODS:
                    selectors = [s for s in self.stage.selectors if s in registry.METHODS]
                    raise ConfigError(
                        f"stage.methods has settings for {name!r}, which is not a method selector in "
                        f"stage.selectors ({', '.join(selectors) or 'none'})"
                    )
                if not isinstance(overrides, Mapping):
                    raise ConfigError(f"stage.methods.{name} must be a mapping of method settings, got {overrides!r}")
                if overrides.get("name", name) != name:
                    raise ConfigError(f"stage.methods.{name}.name must be {name!r} (got {overrides['name']!r})")
                registry.config_class(name).from_mapping({**overrides, "name": name})
        if isinstance(self.stage, CounterfactualStageConfig):
            self._check_counterfactual(self.stage)

    def _check_counterfactual(self, stage: CounterfactualStageConfig) -> None:
        """Known methods, overrides only for listed methods, and a finetune that trains (it is repeated)."""
        for name in stage.methods:
            if name not in registry.METHODS:
                raise allowed("method in stage.methods", name, tuple(registry.METHODS))
        for name, overrides in stage.method_overrides.items():
            if name not in stage.methods:
                raise ConfigError(
                    f"stage.method_overrides has settings for {name!r}, which is not in stage.methods "
                    f"({', '.join(stage.methods)})"
                )
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"stage.method_overrides.{name} must be a mapping of method settings")
            registry.config_class(name).from_mapping({**overrides, "name": name})
        self.check_retrainable()

    def check_retrainable(self) -> None:
        """Raise a ConfigError unless the finetune trains (a counterfactual stage repeats that training)."""
        if self.finetune.epochs == 0:
            raise ConfigError(
                f"finetune.epochs is 0, but stage={self.stage.name} retrains the starting model with the finetune "
                "settings; pick a finetune that trains (finetune=tiny, full or lora)"
            )

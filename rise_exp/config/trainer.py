"""``trainer`` group: the Lightning ``Trainer`` hardware settings."""

from __future__ import annotations

from dataclasses import dataclass

from rise_exp.config.settings import Settings, setting

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


@dataclass(frozen=True)
class TrainerConfig(Settings):
    """Where and how Lightning runs (finetuning, index prediction, continued pretraining)."""

    GROUP = "trainer"
    accelerator: str = setting("cpu", "Lightning accelerator", choices=ACCELERATORS)
    devices: int = setting(1, "devices per node (-1 = all visible)", ge=-1)
    num_nodes: int = setting(1, "nodes (SLURM / torchrun set the rank environment)", gt=0)
    strategy: str = setting("auto", "Lightning strategy: auto, ddp, ddp_spawn, ...")
    precision: str = setting("32-true", "Lightning precision: 32-true, bf16-mixed, 16-mixed, ...")
    progress_bar: bool = setting(False, "Lightning's own progress bars")
    log_every_n_steps: int = setting(10, "logging interval in steps", gt=0)
    activation_checkpointing: bool = setting(
        False,
        "recompute each block's activations in backward (finetunes, retraining, continued pretraining): memory "
        "O(layers) instead of O(layers x tokens) of activations for ~1/3 more compute; results unchanged",
    )
    threads: int | None = setting(
        None,
        "CPU threads torch uses (null = torch's default, one per core); on a CPU shared with other jobs, 1 "
        "avoids threads stalling on each other (a LoRA step here under load: 7 s with 1 thread, up to 57 s with 2)",
        gt=0,
    )

    def validate(self) -> None:
        if self.strategy.startswith("fsdp") and self.accelerator == "cpu":
            raise self.fail(
                "strategy",
                f"{self.strategy} needs GPUs: Lightning's FSDP strategy does not run on the CPU (gloo); use "
                "trainer=fsdp on a GPU machine, or trainer=ddp_sim to simulate data parallelism on the CPU",
            )

    def lightning_kwargs(self) -> dict[str, object]:
        """The ``Trainer`` keyword arguments these settings map to."""
        return {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
            "precision": self.precision,
        }

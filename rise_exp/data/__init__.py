"""Data layer: one record schema, loaders, synthetic task generators and task builders."""

from rise_exp.data.loaders import load_hf, load_json, load_jsonl, load_records
from rise_exp.data.records import Record
from rise_exp.data.task_builders import Task, build_task

__all__ = ["Record", "Task", "build_task", "load_hf", "load_json", "load_jsonl", "load_records"]

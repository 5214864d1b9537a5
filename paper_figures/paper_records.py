"""The profile's runs from a folder of finished run records (`python -m paper_figures.paper --records DIR`).

The run cache (lgc.runs.run_dir) keys a run by its config *and the code version*, so records made by
earlier code, such as those committed under paper_figures/out/cifar/runs/, are not found by today's key.
Here each record (a folder holding config.json and final.json) is matched to a job of the profile by its
resolved config instead, the data folder's path aside (the same CIFAR-10 files may lie elsewhere on another
machine; the records' meta.json keeps where they were).
"""
from __future__ import annotations

from pathlib import Path

from lgc.errors import UserError


def _key(config) -> str:
    d = config.resolved().to_dict()
    d["task"] = {k: v for k, v in d["task"].items() if k != "data_dir"}
    return repr(sorted((k, sorted(v.items()) if isinstance(v, dict) else v) for k, v in d.items()))


def from_records(jobs, folder: Path) -> list:
    """[(job, record folder)] for the jobs with a finished record in `folder`, in the jobs' order. UserError when
    the folder does not exist, holds no finished record, or two records have one job's config."""
    from lgc.config import TrainConfig
    from lgc.runs import is_complete

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--records {folder}: no such folder (give one holding run folders with config.json)")
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and is_complete(p)):
        key = _key(TrainConfig.from_json(path / "config.json"))
        if key in found:
            raise UserError(f"--records {folder}: {found[key].name} and {path.name} are runs of the same config")
        found[key] = path
    if not found:
        raise UserError(f"--records {folder}: no finished run (a folder with config.json and final.json) in it")
    keys = [(j, _key(j.config)) for j in jobs]
    return [(j, found[k]) for j, k in keys if k in found]

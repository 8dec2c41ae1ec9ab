"""Notebook executions side by side: the kernel starts in the project folder and the process's own
working directory is never changed (papermill's ``cwd=`` changes it for the whole process, so a
thread restoring it while another starts a kernel sent that kernel to the wrong folder, and a run's
relative trunk path named nothing)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import nbformat
import pytest

from fgra_core.study.execute import execute_in


def _notebook(path: Path, seconds: float) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("out = 'cwd.txt'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"import os, time\ntime.sleep({seconds})\nopen(out, 'w').write(os.getcwd())"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_kernels_start_in_the_project_and_the_process_cwd_stays(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    project = tmp_path / "project"
    elsewhere.mkdir()
    project.mkdir()
    monkeypatch.chdir(elsewhere)
    nb = _notebook(tmp_path / "probe.ipynb", seconds=1.5)
    seen: set[str] = set()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            execute_in(nb, tmp_path / f"{name}.out.ipynb", project_dir=project, parameters={"out": f"{name}.txt"})
        except BaseException as exc:   # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen.add(os.getcwd())
        time.sleep(0.01)
    assert not errors, errors
    assert seen == {str(elsewhere)}, f"the process's working directory moved during the executions: {seen}"
    for name in ("a", "b"):
        assert (project / f"{name}.txt").read_text() == str(project.resolve())
        assert not (elsewhere / f"{name}.txt").exists()

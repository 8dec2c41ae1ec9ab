"""A Slurm executor needs Slurm: without sbatch, --executor slurm is one error line (nothing runs),
unless submitit's local test mode is asked for explicitly."""
from __future__ import annotations

import pytest

from fgra_core import study as st
from fgra_core.study import executors as ex


def test_executor_slurm_without_sbatch_is_refused_in_one_line(capsys, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(ex.shutil, "which", lambda name: None)          # no Slurm on this machine
    ran = []
    monkeypatch.setattr(ex.SubmititExecutor, "map", lambda self, fn, items: ran.append(items) or iter(()))
    rc = st.main(["--plan", "quick", "--project-dir", str(tmp_path), "--no-progress", "--executor", "slurm"])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2 and captured.out == "" and len(lines) == 1 and ran == []
    assert lines[0] == ("error: --executor slurm needs Slurm, but sbatch is not on this machine's PATH (submitit "
                        "would run the jobs as local processes instead); run the study where Slurm is, or ask for "
                        "submitit's local test mode explicitly with --slurm-cluster local")
    assert not (tmp_path / "results").exists()


def test_the_local_test_mode_asked_for_explicitly_needs_no_sbatch(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(ex.shutil, "which", lambda name: None)
    e = ex.make_executor("slurm", cluster="local", folder=tmp_path, key=str)
    assert isinstance(e, ex.SubmititExecutor) and e.cluster == "local"
    assert e.describe().startswith("submitit's local executor")
    assert e.executor().cluster == "local"                                  # never auto-detected


def test_with_sbatch_the_slurm_cluster_is_forced_not_detected(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(ex.shutil, "which", lambda name: f"/opt/slurm/bin/{name}")
    e = ex.make_executor("slurm", folder=tmp_path, key=str)
    assert e.cluster == "slurm" and e.describe().startswith("Slurm (default partition)")


@pytest.mark.parametrize("fault", ["read-only", "file in the way"])
def test_aggregates_only_with_unwritable_results_is_one_line_before_any_notebook(capsys, tmp_path, monkeypatch, fault):
    import errno
    import tempfile

    from fgra_core.utils import io as fio

    results = tmp_path / "results" / "quick"
    if fault == "read-only":   # as a read-only mount does it (root ignores permission bits)
        real = tempfile.mkstemp

        def mkstemp(*a, dir=None, **k):
            if str(dir).startswith(str(results)):
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return real(*a, dir=dir, **k)
        results.mkdir(parents=True)
        monkeypatch.setattr(fio.tempfile, "mkstemp", mkstemp)
        reason = "Read-only file system"
    else:
        results.parent.mkdir(parents=True)
        results.write_text("not a folder")
        reason = "Not a directory"
    executed = []
    monkeypatch.setattr(st.Study, "aggregate_params", lambda self, name: executed.append(name) or {})
    rc = st.main(["--plan", "quick", "--project-dir", str(tmp_path), "--no-progress", "--aggregates-only"])
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert rc == 2 and len(errors) == 1 and executed == [], captured.err
    assert errors[0].startswith(f"error: folder {results} is not writable ({reason}); the aggregate notebooks of "
                                "plan quick write there")
    assert "Traceback" not in captured.out + captured.err

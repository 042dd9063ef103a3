"""notebooks/explore_run.ipynb executes top to bottom on a stored run, in this venv's kernel.

The kernel is the "python3" kernelspec that pip's ipykernel wheel puts into <venv>/share/jupyter;
JUPYTER_PATH is pointed there so that no user-wide or system-wide kernelspec can take its place,
and jupyter_client starts a spec whose argv[0] is "python" with sys.executable. A cell appended to
the in-memory copy checks that the kernel's sys.prefix is this venv's. Nothing is registered or
written outside the test's temporary directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
import sample_reports as samples
from nbclient import NotebookClient

from verifier import runs
from verifier.render.text import VERDICT_WORDS

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "explore_run.ipynb"


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for key in ("text/plain", "text/markdown"):
                parts.append(out.get("data", {}).get(key, ""))
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def test_the_stored_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def _execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """The notebook executed in this venv's kernel; its fresh charts go under TMP_PATH (TMPDIR)."""
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # nothing in $HOME: connection files and the IPython profile live in the test's directory
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint('KERNEL-PREFIX', sys.prefix)"))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=180, allow_errors=False, resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert f"KERNEL-PREFIX {sys.prefix}" in _text(nb), "the notebook ran in another Python than this venv's"
    return nb


def test_notebook_runs_on_a_stored_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captures = tmp_path / "captures"
    run = samples.stored(samples.lan_fail(), captures)
    other = samples.stored(samples.san_pass(), captures)
    monkeypatch.setenv("VERIFY_PATH_RUN", str(run))
    monkeypatch.setenv("VERIFY_PATH_RUN_B", str(other / "run.json"))

    nb = _execute(tmp_path, monkeypatch)
    out = _text(nb)
    assert "FAIL" in out  # the verdict word
    assert "| br0 | bridge |" in out  # the interface table
    assert "name resolution" in out  # the path chain
    assert "path changed: br0 -> eth0 => san0" in out  # the comparison with the second run
    assert _images(nb) == 3  # the stored chart, a fresh one, the comparison


FIRST_SAMPLE = runs.list_runs(REPO / "captures" / "samples")[0].run_dir


@pytest.mark.skipif(FIRST_SAMPLE is None, reason="no lab sample committed yet")
def test_notebook_defaults_to_the_first_lab_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERIFY_PATH_RUN", raising=False)
    monkeypatch.delenv("VERIFY_PATH_RUN_B", raising=False)
    assert FIRST_SAMPLE is not None
    sample = runs.load(FIRST_SAMPLE)
    nb = _execute(tmp_path, monkeypatch)
    out = _text(nb)
    assert VERDICT_WORDS[sample.verdict] in out
    assert "path unchanged" in out  # compared with itself
    assert _images(nb) == 3

"""The notebooks run top to bottom in a real Jupyter kernel, and are saved without outputs.

``01_quickstart`` runs three memory sessions against the scripted server and checks that memory made
the later ones cheaper (its local-model variant runs with ``MSC_QUICKSTART_BACKEND=local``);
``02_analysis`` makes its demonstration results against the scripted server and analyses them.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import REPO

nbformat = pytest.importorskip("nbformat", reason="install the [dev] or [notebooks] extra")
nbclient = pytest.importorskip("nbclient", reason="install the [dev] or [notebooks] extra")

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_both_notebooks_exist_and_are_saved_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_analysis.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has saved outputs"


@pytest.mark.parametrize(
    "name",
    ["02_analysis.ipynb", "01_quickstart.ipynb"],
)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.delenv("MSC_RESULTS", raising=False)
    monkeypatch.delenv("MSC_QUICKSTART_BACKEND", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if name == "02_analysis.ipynb":
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(images) >= 2  # learning curves and the preference ranking
    else:
        text = "".join(o.get("text", "") for o in outputs)
        assert "flowchart" in text or "graph TD" in text  # the Mermaid structure
        assert "'session 1': 1, 'session 2': 0, 'session 3': 0" in text  # memory made the user's effort 0
    assert os.environ.get("MSC_RESULTS") is None

"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel."""

import json
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    if path.name == "quickstart.ipynb":
        assert "best x = " in text
        # The progress view is a display updated in place, ending with the final table.
        assert "6 TERMINATED" in text


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ holds at least one notebook"

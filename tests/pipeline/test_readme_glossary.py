"""Every column the study writes to results/*.csv is explained in the README's glossary, and the
glossary explains no column the study does not write."""

from _readme import glossary, unexplained_columns

LIBRARY_ONLY = set()  # the Python functions and the study name their columns alike (roi, layer)
NOT_IN_THE_TINY_STUDY = {"p_fwe",  # searchlight permutations ([searchlight] n_perm > 0)
                         # group tables: 3 or more subjects (checked by tests/pipeline/test_report_inference.py)
                         "mean_similarity", "mean_accuracy", "sem", "n_subjects", "q_fdr", "q_fdr_family",
                         "ceiling_RE_lower", "ceiling_RE_upper", "ceiling_AN_lower", "ceiling_AN_upper",
                         "ceiling_AI_lower", "ceiling_AI_upper"}
# [synthesis] tables: checked by tests/pipeline/test_synthesis_step.py (slow)
SYNTHESIS_ONLY = {"objective", "made_for", "group", "image", "model", "response", "z", "converged",
                  "heldout_accuracy", "natural_mean", "natural_sd", "natural_max", "random_mean", "random_sd",
                  "synthesized_mean", "synthesized_z", "beyond_natural", "trusted", "accuracy_null95",
                  "accuracy_status", "reference", "n_natural", "synthesized_z_random"}

# [design] kind = "general" tables: checked by tests/pipeline/test_general_study.py
GENERAL_ONLY = {"candidate", "is_layer", "r", "ci_low", "ci_high", "resampled", "best_layer_low", "best_layer_high",
                "best_frequency", "image_a", "image_b", "dissimilarity", "mean", "sem", "n_subjects", "ceiling_lower",
                "ceiling_upper", "percent_of_ceiling", "cv", "best", "i", "j", "k", "x", "y", "z"}


def test_every_result_column_is_in_the_readme_glossary(tiny_run):
    written = {(table, column) for table, frame in tiny_run.tables.items() for column in frame.columns}
    missing = unexplained_columns(tiny_run.tables)
    assert not missing, f"README '## Output columns' lacks {missing}"
    unused = sorted(name for name, pattern in glossary().items()
                    if name not in LIBRARY_ONLY | NOT_IN_THE_TINY_STUDY | SYNTHESIS_ONLY | GENERAL_ONLY and not any(pattern.match(column) for _, column in written))
    assert not unused, f"README '## Output columns' explains columns no table has: {unused}"
    assert len(tiny_run.tables) >= 12

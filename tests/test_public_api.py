"""The public API, subpackage by subpackage: exactly these names, each documented.

A name added to (or dropped from) a subpackage's ``__all__`` must be added here (or dropped) on
purpose: the list is what a newcomer has to learn. Helpers that several subpackages share but
users do not call live in ``brainprobe._internal`` (and the subpackages' private modules).
"""

import importlib
import inspect

import pytest

PUBLIC = {
    "adversarial": """
        imagenet_mean_image interference_images noise_images paper_design SCORES true_classes
    """,
    "data": """
        BAD_VERTEX_POLICIES gabor_energy_features glmsingle_model_name GLMSINGLE_MODELS kinds_from_stimuli
        load_responses load_trial_table NON_IMAGE_TRIAL_TYPES paper_trial_table Responses ROI_SCALES
        simulate_subject SimulationTruth TRIAL_COLUMNS trials_from_designinfo values_to_gifti values_to_nifti
        values_to_surface_image volume_affine
    """,
    "encoding": """
        best_layer best_layer_proportions best_layer_tests DEFAULT_CV_GRID DEFAULT_RIDGE_ALPHAS encoding_modules
        EncodingModels EncodingModule fit_encoding_models generalization heldout_accuracy kernel_store KernelRidgeEncoder KernelStore
        OMPEncoder RidgeCVEncoder ROMP romp_batched romp_single_target RompFit STOP_REASONS
    """,
    "models": """
        Activations architecture_notes available_models CAFFE_TRANSFORM extract fetch_weights find_local_weights
        imagenet_class_names IMAGENET_MEAN IMAGENET_STD IMAGENET_TRANSFORM import_network_builder
        input_transform is_custom_network LayeredModel LayerSpec load_demo_model load_model
        resolve_device TRANSFORMS
    """,
    "pipeline": """
        ConfigError DEFAULTS demo_config load_config read_table redraw_figures Study StudyConfig StudyResult
        validate write_table
    """,
    "plotting": """
        best_layer_figure best_layer_map ceiling_profile COLUMN_WIDTH_MM cortex_viewer cortical_map
        encoding_figure image_grid JOURNAL_STYLE kind_bars KIND_COLORS layer_profile network_rdm_figure
        PAIR_COLORS rdm_figure rdm_panels save_figure searchlight_maps show stimulus_grid synthesis_progress
    """,
    "roi": """
        add_atlas_rois fs_lr_32k geodesic_neighbourhoods label_image_rois load_mesh localizer_mask Mesh
        mesh_edges mesh_smoother mesh_sulcal_depth mmp_labels mmp_visual_rois NEIGHBOURHOOD_METHODS
        neighbourhoods_for_columns PAPER_ROIS read_labels repeat_splits roi_mask select_reliable_vertices
        spherical_neighbourhoods SPLITS standard_meshes template_sulcal_depth
    """,
    "rsa": """
        align_kinds category_rdm compare COMPARE_METHODS compare_to_candidates condensed_rdm from_rsatoolbox
        group_comparison kind_difference kind_difference_test kind_image_bootstrap kind_image_ci kind_similarity
        layer_trend layer_trend_bootstrap rdm RDM_METRICS
        searchlight_candidates searchlight_kind_similarity searchlight_rdms square_rdm to_rsatoolbox
    """,
    "stats": """
        ACCURACY_DEFINITIONS accuracy_difference_test accuracy_permutation_test accuracy_vertex_bootstrap
        bootstrap CORRELATION_METHODS encoding_noise_ceiling fdr_bh fdr_by_family fwe_max_statistic
        image_bootstrap_rdm_correlations jackknife_ci kendall_tau_a layer_sweep LayerSweep leave_one_out
        mann_kendall MannKendallResult memory_budget mutual_information noise_ceiling paired_ttest percentile_ci
        PermutationResult prediction_accuracy random_effects_test rdm_permutation_test relabeling_test
        sens_slope set_memory_budget spearman_brown split_half_ceiling subsample_ci subsample_p
        trend_bootstrap_test two_sample_ttest
    """,
    "stimuli": """
        IMAGE_EXTENSIONS load_folder load_manifest load_stimuli open_stimuli read_image SAMPLE_IMAGE_IDS
        sample_images sample_patches save_stimuli StimulusSet TABLE_COLUMNS
    """,
    "synth": """
        ActivationMaximization alpha_norm BrainMetamer BrainSynthesis Caricature COLOR_CORRELATION_SQRT
        ControversialImages cross_model_recognition DENSE_MAX_PIXELS Eigendistortions eigendistortions
        EigendistortionSynthesis fidelity_null FisherOperator FourierParameterization gram_loss gram_matrices
        gram_rdms gram_vectors Inversion jitter layer_fidelity layer_maximum layer_stride LayerDistance
        leaky_relu linear_gradient_applies linear_gradient_relu MADCompetition Metamer model_responses
        NetworkReadout OptimizationResult optimize_pixels OPTIMIZERS PreImagePrior PreImageSynthesis
        principal_distortion_objective principal_distortions PrincipalDistortions PrincipalDistortionSynthesis
        quantize_8bit RandomTransforms receptive_field_size ROIMaximization Synthesis texture_clustering
        TextureSynthesis tv_beta
    """,
}


@pytest.mark.parametrize("subpackage", sorted(PUBLIC))
def test_each_subpackage_exports_exactly_its_listed_names(subpackage):
    module = importlib.import_module(f"brainprobe.{subpackage}")
    assert sorted(module.__all__) == sorted(PUBLIC[subpackage].split())
    assert len(set(module.__all__)) == len(module.__all__), "a name is listed twice"
    for name in module.__all__:
        assert hasattr(module, name), f"brainprobe.{subpackage}.{name} is listed but not defined"


@pytest.mark.parametrize("subpackage", sorted(PUBLIC))
def test_every_public_function_and_class_has_a_docstring(subpackage):
    module = importlib.import_module(f"brainprobe.{subpackage}")
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert (inspect.getdoc(value) or "").strip(), f"brainprobe.{subpackage}.{name} has no docstring"


def test_internals_are_not_exported():
    import brainprobe.pipeline
    import brainprobe.stats

    for name in ("as_generator", "TIE_TOLERANCE", "rank_rows", "permutation_indices", "memory_budget_bytes"):
        assert name not in brainprobe.stats.__all__ and not hasattr(brainprobe.stats, name), name
    for name in ("atomic_write", "StepCache", "make_stimuli", "load_subject"):
        assert name not in brainprobe.pipeline.__all__ and not hasattr(brainprobe.pipeline, name), name
    from brainprobe import _internal

    assert _internal.as_generator(0).integers(10) == _internal.as_generator(0).integers(10)

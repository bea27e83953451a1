import numpy as np
import pytest
import torch

from brainprobe.synth import optimize_pixels, quantize_8bit


class RecordingObjective:
    """Pull every image toward a constant level; remembers the last image seen for each row."""

    def __init__(self, levels):
        self.levels = torch.as_tensor(levels, dtype=torch.float32)
        self.last_seen = {}

    def __call__(self, images, index):
        for row, image in zip(index.tolist(), images.detach().clone(), strict=True):
            self.last_seen[row] = image
        targets = self.levels[index].view(-1, 1, 1, 1)
        loss = (images - targets).pow(2).flatten(1).mean(dim=1)
        return loss, {"mean": images.detach().flatten(1).mean(dim=1)}


def test_each_image_stops_on_its_own_and_stays_frozen():
    start = torch.full((3, 3, 4, 4), 0.1)
    objective = RecordingObjective([0.2, 0.6, 0.9])
    thresholds = torch.tensor([0.15, 0.5, 0.85])
    result = optimize_pixels(start, objective, criterion=lambda aux, index: aux["mean"] >= thresholds[index],
                             optimizer="adam", lr=0.01, max_iter=500, device="cpu", progress=False)
    assert result.converged.all()
    # the easy image stops first, the hard one last
    assert result.n_iter[0] < result.n_iter[1] < result.n_iter[2]
    for row in range(3):
        # what is returned is exactly the image on which the criterion was met
        assert torch.equal(result.images[row], objective.last_seen[row])
        stopped_at = np.flatnonzero(~np.isnan(result.loss_history[:, row]))[-1]
        assert np.isnan(result.loss_history[stopped_at + 1:, row]).all()
    assert float(result.images[0].mean()) >= 0.15 and float(result.images[0].mean()) < 0.5


def test_failures_are_reported_not_dropped():
    start = torch.zeros(2, 3, 2, 2)
    result = optimize_pixels(start, RecordingObjective([0.5, 0.5]),
                             criterion=lambda aux, index: aux["mean"] >= torch.tensor([0.1, 2.0])[index],
                             lr=0.05, max_iter=50, device="cpu", progress=False)
    assert result.converged.tolist() == [True, False]
    assert result.n_iter[1] == 50
    assert result.images.shape == start.shape


def test_bounds_are_respected():
    result = optimize_pixels(torch.full((1, 3, 2, 2), 0.9), RecordingObjective([5.0]), lr=0.1, max_iter=30,
                             device="cpu", progress=False)
    assert float(result.images.max()) <= 1.0


def test_8bit_phase_repairs_images_that_rounding_breaks():
    # the criterion sits between two 8-bit levels (128/255 < 0.5025 < 129/255): a float image that
    # just crosses it rounds down and fails, so the 8-bit phase must carry it to 129/255
    start = torch.full((1, 3, 2, 2), 0.45)
    result = optimize_pixels(start, RecordingObjective([0.9]), criterion=lambda aux, index: aux["mean"] >= 0.5025,
                             optimizer="sgd", lr=0.004, max_iter=500, quantize=True, device="cpu", progress=False)
    assert result.converged[0]
    assert result.n_iter_8bit[0] > 0
    assert torch.equal(result.images, quantize_8bit(result.images))
    assert float(result.images.mean()) >= 0.5025


def test_argument_errors():
    with pytest.raises(ValueError, match="optimizer"):
        optimize_pixels(torch.zeros(1, 3, 2, 2), RecordingObjective([0.0]), optimizer="rmsprop", device="cpu")
    bad = lambda images, index: (images.sum(), {})  # noqa: E731  a scalar instead of one loss per image
    with pytest.raises(ValueError, match="one loss per image"):
        optimize_pixels(torch.zeros(2, 3, 2, 2), bad, max_iter=2, device="cpu", progress=False)


def test_checkpoint_and_resume_give_the_same_result(tmp_path):
    start = torch.full((2, 3, 4, 4), 0.1)
    criterion = lambda aux, index: aux["mean"] >= torch.tensor([0.3, 0.8])[index]  # noqa: E731
    reference = optimize_pixels(start, RecordingObjective([0.4, 0.9]), criterion=criterion, lr=0.01, max_iter=200,
                                device="cpu", progress=False)
    path = tmp_path / "run.ckpt"

    class Interrupt(Exception):
        pass

    calls = {"n": 0}

    def interrupted(images, index):
        calls["n"] += 1
        if calls["n"] == 40:
            raise Interrupt
        return RecordingObjective([0.4, 0.9])(images, index)

    with pytest.raises(Interrupt):
        optimize_pixels(start, interrupted, criterion=criterion, lr=0.01, max_iter=200, checkpoint=path,
                        checkpoint_every=10, device="cpu", progress=False)
    assert path.is_file()
    resumed = optimize_pixels(start, RecordingObjective([0.4, 0.9]), criterion=criterion, lr=0.01, max_iter=200,
                              checkpoint=path, checkpoint_every=10, device="cpu", progress=False)
    assert torch.allclose(resumed.images, reference.images, atol=1e-6)
    assert resumed.n_iter.tolist() == reference.n_iter.tolist()
    assert not path.exists()  # removed once finished


def test_lbfgs_path_minimizes_the_whole_batch():
    result = optimize_pixels(torch.full((2, 3, 4, 4), 0.1), RecordingObjective([0.3, 0.7]), optimizer="lbfgs", lr=1.0,
                             max_iter=20, device="cpu", progress=False)
    assert torch.allclose(result.images[0], torch.full((3, 4, 4), 0.3), atol=1e-4)
    assert torch.allclose(result.images[1], torch.full((3, 4, 4), 0.7), atol=1e-4)
    assert result.loss_history[-1].max() < 1e-6
    with pytest.raises(ValueError, match="quantize and checkpoint"):
        optimize_pixels(torch.zeros(1, 3, 2, 2), RecordingObjective([0.5]), optimizer="lbfgs", quantize=True, device="cpu")


def test_lbfgs_gives_each_image_its_own_line_search():
    # two images whose losses differ in scale by 10^6: a line search on their sum steps both by the
    # step that suits the large one; one line search per image solves each as if it were alone
    class Scaled:
        def __call__(self, images, index):
            scale = torch.tensor([1e6, 1.0])[index]
            return scale * (images - 0.7).pow(2).flatten(1).mean(dim=1), {}

    alone = optimize_pixels(torch.full((1, 3, 4, 4), 0.1), lambda im, ix: (Scaled()(im, ix + 1)[0], {}),
                            optimizer="lbfgs", lr=1.0, max_iter=3, device="cpu", progress=False)
    batch = optimize_pixels(torch.full((2, 3, 4, 4), 0.1), Scaled(), optimizer="lbfgs", lr=1.0, max_iter=3,
                            device="cpu", progress=False)
    torch.testing.assert_close(batch.images[1], alone.images[0])
    assert torch.allclose(batch.images, torch.full((2, 3, 4, 4), 0.7), atol=1e-4)


def test_lbfgs_line_search_backtracks_from_an_overshooting_step():
    # log cosh is flat far from its minimum: the curvature L-BFGS measures there is tiny and its
    # first full step overshoots; the strong-Wolfe line search must then search (PyTorch's default
    # evaluation budget for one iteration allowed a single trial and froze the image at its start)
    def objective(images, index):
        return torch.log(torch.cosh(20 * (images - 0.7))).flatten(1).mean(dim=1), {}

    result = optimize_pixels(torch.full((1, 3, 4, 4), 0.1), objective, optimizer="lbfgs", lr=1.0, max_iter=15,
                             bounds=(-float("inf"), float("inf")), device="cpu", progress=False)
    assert torch.allclose(result.images, torch.full((1, 3, 4, 4), 0.7), atol=1e-3)

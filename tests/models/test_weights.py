import pytest
import torch

from brainprobe.models import find_local_weights, load_model


def test_state_dict_round_trip(tmp_path):
    source = load_model("alexnet", seed=1, device="cpu")
    path = tmp_path / "alexnet.pt"
    torch.save(source.network.state_dict(), path)
    loaded = load_model("alexnet", weights=path, seed=2, device="cpu")
    for key, value in source.network.state_dict().items():
        assert torch.equal(value, loaded.network.state_dict()[key]), key
    assert loaded.weights_source == str(path)


def test_wrapped_and_dataparallel_checkpoints_load(tmp_path):
    source = load_model("alexnet", seed=1, device="cpu").network.state_dict()
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.items()}, "epoch": 3}, path)
    loaded = load_model("alexnet", weights=path, device="cpu").network.state_dict()
    assert torch.equal(loaded["features.0.weight"], source["features.0.weight"])


def test_mismatched_state_dict_lists_the_keys(tmp_path):
    state = load_model("alexnet", device="cpu").network.state_dict()
    del state["classifier.6.bias"]
    state["extra.weight"] = torch.zeros(3)
    state["features.0.weight"] = torch.zeros(10, 3, 11, 11)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        load_model("alexnet", weights=path, device="cpu")
    message = str(info.value)
    assert str(path) in message
    assert "missing keys (1): ['classifier.6.bias']" in message
    assert "unexpected keys (1): ['extra.weight']" in message
    assert "features.0.weight: file (10, 3, 11, 11) vs model (64, 3, 11, 11)" in message


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(load_model("resnet18", device="cpu").network.state_dict(), path)
    with pytest.raises(ValueError, match="weights do not match"):
        load_model("alexnet", weights=path, device="cpu")


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, path)  # a whole module: needs full unpickling
    with pytest.raises(ValueError, match="weights_only=True"):
        load_model("alexnet", weights=path, device="cpu")


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_model("alexnet", weights=tmp_path / "nowhere.pt")


def test_imagenet_weights_never_download(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_local_weights("alexnet") is None
    with pytest.raises(FileNotFoundError, match="brainprobe fetch-weights alexnet"):
        load_model("alexnet", weights="imagenet")
    assert not any(tmp_path.iterdir())


def test_imagenet_weights_found_in_torch_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    source = load_model("alexnet", seed=5, device="cpu").network.state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(source, tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth")
    model = load_model("alexnet", weights="imagenet", device="cpu")
    assert torch.equal(model.network.state_dict()["classifier.6.weight"], source["classifier.6.weight"])

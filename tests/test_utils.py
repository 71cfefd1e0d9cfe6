import numpy as np
import pytest
import torch

from minicosy.utils import machine_info, pick_device, seed_everything, slider_player


def test_pick_device_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device(torch.device("cpu")).type == "cpu"


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no usable CUDA"):
        pick_device("cuda")


def test_unknown_device_name():
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")


def test_env_override(monkeypatch):
    monkeypatch.setenv("MINICOSY_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_seed_everything_repeats_draws():
    seed_everything(123)
    a = (np.random.rand(3), torch.rand(3))
    seed_everything(123)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def test_machine_info_names_the_device():
    info = machine_info()
    assert {"cpu_count", "torch", "cuda"} <= set(info)


@pytest.mark.gpu
def test_pick_device_cuda():
    assert pick_device("cuda").type == "cuda"


def test_slider_player_runs_once_then_on_every_move():
    widgets = pytest.importorskip("ipywidgets")
    calls = []
    a, b = widgets.IntSlider(value=3), widgets.FloatSlider(value=0.5)
    slider_player(lambda n, w: calls.append((n, w)), n=a, w=b)
    assert calls == [(3, 0.5)]
    a.value = 7
    b.value = 1.5
    assert calls == [(3, 0.5), (7, 0.5), (7, 1.5)]


def test_checkpoint_helpers_roundtrip_and_errors(tmp_path):
    import torch

    from minicosy.utils import check_state_matches, checkpoint_stem, read_checkpoint, write_checkpoint

    assert checkpoint_stem(tmp_path, "lm") == tmp_path / "lm"  # a folder: its <name> pair
    assert (
        checkpoint_stem(tmp_path / "x.json", "lm")
        == checkpoint_stem(tmp_path / "x.safetensors", "lm")
        == tmp_path / "x"
    )
    state = {"w": torch.ones(2, 3), "n": torch.tensor([1, 2])}
    stem = write_checkpoint(tmp_path / "sub" / "m", state, {"config": {"d": 3}})
    meta, back = read_checkpoint(stem, "toy checkpoint", "Train one.")
    assert meta == {"config": {"d": 3}} and all(torch.equal(back[k], state[k]) for k in state)
    check_state_matches(state, back, stem)  # equal: no error
    with pytest.raises(ValueError, match=r"does not match its config.*'w'"):
        check_state_matches({"w": torch.ones(3, 3), "n": state["n"]}, back, stem)
    with pytest.raises(ValueError, match="toy checkpoint file missing: .*nothing.json. Train one."):
        read_checkpoint(tmp_path / "nothing", "toy checkpoint", "Train one.")

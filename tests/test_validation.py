"""Bad input: one ValueError whose message names the argument, what was expected and what came."""

from __future__ import annotations

import pytest

from implementations import DeviceUnavailableError, TrainConfig, create_trainer

# Bad input to prepare() (and batch_size > n) is checked in test_trainer_contract.py (and by the public
# check_bad_input on every backend).


BAD_CONFIGS = {
    "lr-zero": (dict(lr=0), r"lr must be a positive finite number, got 0"),
    "lr-negative": (dict(lr=-0.1), r"lr must be a positive finite number, got -0.1"),
    "lr-nan": (dict(lr=float("nan")), r"lr must be a positive finite number, got nan"),
    "lr-string": (dict(lr="0.1"), r"lr must be a positive finite number, got '0.1'"),
    "n_iters-zero": (dict(n_iters=0), r"n_iters must be an integer >= 1, got 0"),
    "n_iters-float": (dict(n_iters=2.5), r"n_iters must be an integer >= 1, got 2.5"),
    "record_every-zero": (dict(record_every=0), r"record_every must be an integer >= 1, got 0"),
    "dtype": (dict(dtype="float16"), r"dtype must be one of \('float32', 'float64'\), got 'float16'"),
    "formulation": (dict(formulation="hinge"), r"formulation must be one of \('probs', 'logits'\), got 'hinge'"),
    "batch_size-zero": (dict(batch_size=0), r"batch_size must be None \(full batch\) or an integer >= 1, got 0"),
    "batch_size-negative": (dict(batch_size=-1), r"batch_size must be None \(full batch\) or an integer >= 1, got -1"),
    "batch_size-float": (dict(batch_size=2.5), r"batch_size must be None \(full batch\) or an integer >= 1, got 2.5"),
    "batch_size-bool": (dict(batch_size=True), r"batch_size must be None \(full batch\) or an integer >= 1, got True"),
    "batch_size-string": (dict(batch_size="64"),
                          r"batch_size must be None \(full batch\) or an integer >= 1, got '64'"),
    "l2-negative": (dict(l2=-0.1), r"l2 must be a finite number >= 0, got -0.1"),
    "l2-nan": (dict(l2=float("nan")), r"l2 must be a finite number >= 0, got nan"),
    "l2-inf": (dict(l2=float("inf")), r"l2 must be a finite number >= 0, got inf"),
    "l2-string": (dict(l2="0.1"), r"l2 must be a finite number >= 0, got '0.1'"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_raises_clear_valueerror(case):
    kwargs, message = BAD_CONFIGS[case]
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_backend_lists_the_registered_ones():
    message = r"backend must be one of \[.*'numpy'.*'torch'.*'torch-manual'.*\], got 'tensorflow'"
    with pytest.raises(ValueError, match=message):
        create_trainer("tensorflow", TrainConfig())


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "tpu"])
@pytest.mark.parametrize("name", ["numpy", "torch", "torch-manual", "torch-nn", "jax"])
def test_unavailable_device_is_named(name, device):
    import torch

    if name == "jax":
        jax = pytest.importorskip("jax")
        try:
            has_gpu = bool(jax.devices("gpu"))
        except RuntimeError:
            has_gpu = False
        if device.startswith("cuda") and has_gpu:
            pytest.skip("JAX sees a GPU here")
    elif device.startswith("cuda") and (torch.cuda.is_available() and name != "numpy"):
        pytest.skip("CUDA is present here")
    with pytest.raises(DeviceUnavailableError, match=f"device {device!r}|got {device!r}") as info:
        create_trainer(name, TrainConfig(device=device))
    assert isinstance(info.value, ValueError)
    if name == "numpy" and device == "cuda":
        try:
            import cupy  # noqa: F401
        except ImportError:
            assert "CuPy, which is not installed" in str(info.value)


def test_mps_float64_is_refused_clearly(monkeypatch):
    """On any machine: MPS is made to look present, so that the float64 refusal is what is reached
    (it comes before any MPS work), not the missing device."""
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(DeviceUnavailableError, match=r"device 'mps' does not support float64"):
        create_trainer("torch", TrainConfig(device="mps", dtype="float64"))

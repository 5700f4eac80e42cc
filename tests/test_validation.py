"""Bad input: one ValueError whose message names the argument, what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

from implementations import DeviceUnavailableError, TrainConfig, create_trainer

from .conftest import TRAINERS

X = np.arange(12.0).reshape(6, 2)
Y = np.array([0, 1, 0, 1, 1, 0])
W0 = np.zeros(2)


def _with(X_=X, y=Y, w0=W0, b0=0.0):
    return X_, y, w0, b0


def _nan_X():
    a = X.copy()
    a[2, 1] = np.nan
    return a


def _inf_X():
    a = X.copy()
    a[0, 0] = np.inf
    return a


BAD_INPUTS = {
    "nan-in-X": (_with(_nan_X()), r"X must contain only finite values, got nan at index \(2, 1\)"),
    "inf-in-X": (_with(_inf_X()), r"X must contain only finite values, got inf"),
    "X-1d": (_with(np.arange(6.0)), r"X must be a 2-D array .* got an array with 1 dimension"),
    "X-3d": (_with(np.zeros((2, 3, 1))), r"X must be a 2-D array .* got an array with 3 dimension"),
    "X-strings": (_with(np.array([["a", "b"]] * 6)), r"X must hold real numbers, got dtype <U1"),
    "y-length": (_with(y=Y[:4]), r"y must have shape \(6,\) to match X's 6 rows, got shape \(4,\)"),
    "y-values": (_with(y=np.array([0, 1, 2, 1, 1, 0])), r"y must contain only 0 and 1, got values \{2\}"),
    "y-labels-1-2": (_with(y=np.array([1, 2, 1, 2, 1, 2])), r"y must contain only 0 and 1, got values \{2\}"),
    "w0-length": (_with(w0=np.zeros(3)), r"w0 must have shape \(2,\) to match X's 2 columns, got shape \(3,\)"),
    "b0-vector": (_with(b0=np.zeros(2)), r"b0 must be a scalar, got an array of shape \(2,\)"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
@pytest.mark.parametrize("name", TRAINERS)
def test_bad_input_raises_clear_valueerror(name, case):
    args, message = BAD_INPUTS[case]
    trainer = TRAINERS[name](TrainConfig(n_iters=2))
    with pytest.raises(ValueError, match=message):
        trainer.prepare(*args)


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
    "batch_size-string": (dict(batch_size="64"), r"batch_size must be None \(full batch\) or an integer >= 1, got '64'"),
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


@pytest.mark.parametrize("name", TRAINERS)
def test_batch_size_larger_than_n_is_refused_at_prepare(name):
    """Refused, not clamped (every backend alike): the message names the value and n."""
    trainer = TRAINERS[name](TrainConfig(n_iters=2, batch_size=7))
    with pytest.raises(ValueError, match=r"batch_size must be at most n = 6 \(the rows of X\), got 7"):
        trainer.prepare(*_with())
    trainer = TRAINERS[name](TrainConfig(n_iters=2, batch_size=6))
    trainer.prepare(*_with())  # batch_size = n is allowed: one batch per epoch, reshuffled


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"backend must be one of \[.*'numpy'.*'torch'.*'torch-manual'.*\], got 'tensorflow'"):
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


def test_mps_float64_is_refused_clearly():
    import torch

    with pytest.raises(DeviceUnavailableError, match="mps"):
        create_trainer("torch", TrainConfig(device="mps", dtype="float64" if torch.backends.mps.is_available() else "float32"))

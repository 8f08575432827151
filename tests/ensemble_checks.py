"""Checks shared by the training tests (test_train, test_gpu): comparing ensembles bit for bit,
and watching one layer of every model that ``ift_core.train.train_seed`` builds."""
from __future__ import annotations

import numpy as np
import torch

from ift_core.train import seed as train_seed_module
from ift_core.train import Ensemble


def weights(ens: Ensemble) -> list[dict[str, torch.Tensor]]:
    return [m.state_dict() for m in ens.models]


def assert_bit_identical(a: Ensemble, b: Ensemble) -> None:
    assert a.seeds == b.seeds
    for sa, sb in zip(weights(a), weights(b)):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    np.testing.assert_array_equal(a.test_accuracy, b.test_accuracy)
    np.testing.assert_array_equal(a.train_accuracy, b.train_accuracy)


def record_layer(monkeypatch, layer: str, seen: list) -> None:
    """Hook the submodule ``layer`` of every model ``train_seed`` builds. Each forward call
    appends (input is channels-last, output dtype, model was training, output device type)."""
    real = train_seed_module._new_model

    def new_model(config, train, init_seed):
        model = real(config, train, init_seed)
        model.get_submodule(layer).register_forward_hook(lambda mod, inp, out: seen.append(
            (inp[0].is_contiguous(memory_format=torch.channels_last), out.dtype, mod.training, out.device.type)))
        return model

    monkeypatch.setattr(train_seed_module, "_new_model", new_model)

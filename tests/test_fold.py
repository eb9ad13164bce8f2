"""BatchNorm folding for inference (skd.model.fold): same outputs, original untouched."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skd.config import ModelConfig
from skd.model import KoopmanAE
from skd.model.fold import fold_batchnorm, inference_copy


def _randomise_bn(module: nn.Module, g: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g))
            m.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.05)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g))


def _net(transpose: bool, c_in: int, c_mid: int, bias: bool) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(c_in, c_mid, 3, 1, 1, bias=bias), nn.BatchNorm2d(c_mid), nn.LeakyReLU(0.2),
                         conv(c_mid, c_mid, 4, 2, 1, bias=False), nn.BatchNorm2d(c_mid), nn.Tanh(),
                         conv(c_mid, 2, 3, 1, 1))  # the last conv has no BatchNorm: kept as it is


@settings(max_examples=25, deadline=None)
@given(transpose=st.booleans(), c_in=st.integers(1, 4), c_mid=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_folding_keeps_the_eval_outputs_and_leaves_the_original_alone(transpose, c_in, c_mid, bias, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _net(transpose, c_in, c_mid, bias)
    _randomise_bn(net, g)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net)
    x = torch.randn(3, c_in, 6, 6, generator=g)
    with torch.no_grad():
        ref, out = net(x), folded(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_folding_refuses_a_module_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(_net(False, 3, 4, False))


def test_inference_copy_of_a_conv_model_decodes_and_encodes_the_same():
    torch.manual_seed(0)
    model = KoopmanAE(ModelConfig(kind="conv", channels=3, image_size=32, width=8, k=12, hidden=16, lstm=True))
    _randomise_bn(model, torch.Generator().manual_seed(1))
    model.train()
    copy = inference_copy(model)
    assert model.training and not copy.training  # the original keeps its mode
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    assert all(p.requires_grad for p in model.parameters()) and not any(p.requires_grad for p in copy.parameters())
    model.eval()
    x = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        z = model.encode(x)
        torch.testing.assert_close(copy.encode(x), z, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(copy.decode(z), model.decode(z), rtol=1e-4, atol=1e-5)


def test_inference_copy_puts_conv_weights_channels_last_when_asked():
    net = _net(False, 3, 4, False).eval()
    cl = inference_copy(net, channels_last=True)
    convs = [m for m in cl.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    plain = inference_copy(net, channels_last=False)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, nn.Conv2d))

"""The GEMM weight gradient of small-map convolutions equals autograd's through oneDNN."""
from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from skd.model.nets.conv import ConvDecoder, ConvEncoder
from skd.model.nets.gemm_grad import (
    GemmGradConv2d,
    GemmGradConvTranspose2d,
    conv_transpose_weight_grad,
    conv_weight_grad,
    use_default_weight_grad,
    use_gemm_weight_grad,
)


def _reference_grads(x, w, gy, s, p, transposed):
    x, w = x.double().requires_grad_(), w.double().requires_grad_()
    y = (torch.conv_transpose2d if transposed else torch.conv2d)(x, w, None, s, p)
    y.backward(gy.double())
    return x.grad, w.grad


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), ci=st.integers(1, 5), co=st.integers(1, 5), side=st.integers(1, 6),
       k=st.integers(1, 4), s=st.integers(1, 2), p=st.integers(0, 2), transposed=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_weight_grad_matches_autograd_in_float64(n, ci, co, side, k, s, p, transposed, seed):
    gen = torch.Generator().manual_seed(seed)
    if not transposed and side + 2 * p < k:
        side = k  # a convolution needs a window that fits
    if transposed and (side - 1) * s - 2 * p + k < 1:
        p = 0
    x = torch.randn(n, ci, side, side, generator=gen, dtype=torch.float64)
    w_shape = (ci, co, k, k) if transposed else (co, ci, k, k)
    w = torch.randn(w_shape, generator=gen, dtype=torch.float64)
    y = (torch.conv_transpose2d if transposed else torch.conv2d)(x, w, None, s, p)
    gy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    _, ref = _reference_grads(x, w, gy, s, p, transposed)
    got = (conv_transpose_weight_grad if transposed else conv_weight_grad)(gy, x, k, s, p)
    assert got.shape == w.shape
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def _nets(image_size: int, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return (ConvEncoder(image_size=image_size, width=4, k=6),
            ConvDecoder(image_size=image_size, width=4, k=6))


@pytest.mark.parametrize("image_size", [32, 64])
def test_switch_picks_the_small_map_layers_and_keeps_the_state_dict(image_size):
    enc, dec = _nets(image_size)
    keys = (list(enc.state_dict()), list(dec.state_dict()))
    n = 3 if image_size == 32 else 4
    switched_enc = use_gemm_weight_grad(enc)
    switched_dec = use_gemm_weight_grad(dec)
    assert switched_enc == [f"net.{3 * (n - 1)}", f"net.{3 * n}"]  # the 8->4 px layer and the 4->1 px layer
    assert switched_dec == ["net.0", "net.3"]  # 1->4 px and 4->8 px
    assert (list(enc.state_dict()), list(dec.state_dict())) == keys
    assert sum(isinstance(m, (GemmGradConv2d, GemmGradConvTranspose2d)) for m in [*enc.modules(), *dec.modules()]) == 4
    use_default_weight_grad(enc)
    use_default_weight_grad(dec)
    assert not any(isinstance(m, (GemmGradConv2d, GemmGradConvTranspose2d)) for m in [*enc.modules(), *dec.modules()])


def _loss_and_grads(enc, dec, x, autocast: bool):
    enc.zero_grad()
    dec.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        z = enc(x)
        y = dec(z)
    loss = (y.float() - x).square().mean()
    loss.backward()
    grads = [p.grad.clone() for p in [*enc.parameters(), *dec.parameters()]]
    return loss.detach(), grads


@pytest.mark.parametrize("autocast,channels_last", [(False, False), (False, True), (True, True)])
def test_networks_train_the_same_with_the_gemm_weight_grad(autocast, channels_last):
    enc, dec = _nets(32, seed=3)
    enc2, dec2 = copy.deepcopy(enc), copy.deepcopy(dec)
    use_gemm_weight_grad(enc2)
    use_gemm_weight_grad(dec2)
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    if channels_last:
        for m in (enc, dec, enc2, dec2):
            m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    loss_a, grads_a = _loss_and_grads(enc, dec, x, autocast)
    loss_b, grads_b = _loss_and_grads(enc2, dec2, x, autocast)
    tol = dict(rtol=3e-2, atol=3e-3) if autocast else dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss_b, loss_a, **tol)
    for ga, gb in zip(grads_a, grads_b):
        assert ga.dtype == gb.dtype == torch.float32
        torch.testing.assert_close(gb, ga, **tol)


def test_transposed_layer_refuses_output_size():
    layer = nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)
    layer.small_map_positions = 4
    use_gemm_weight_grad(layer)
    with pytest.raises(ValueError, match="output_size"):
        layer(torch.zeros(1, 2, 2, 2), output_size=[4, 4])


def test_switched_layer_with_a_bias_or_without_autograd_runs_the_plain_forward():
    layer = nn.Conv2d(3, 4, 4, 2, 1, bias=True)
    layer.small_map_positions = 4
    ref = copy.deepcopy(layer)
    layer.__class__ = GemmGradConv2d  # as a BatchNorm-folded copy of a switched layer is
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), ref(x))
    layer.bias = None
    ref.bias = None
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref(x))

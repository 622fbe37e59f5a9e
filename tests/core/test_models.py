"""models.for_inference: the same function, channels-last convolution weights, eval mode."""

import pytest
import torch

from georobust.core.models import build, for_inference


def test_for_inference_keeps_the_function_and_stores_convolutions_channels_last():
    model = build("lenet", seed=0).train()
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = model.eval()(x)
    out = for_inference(model.train())
    assert out is model and not model.training
    conv = model[3].weight  # conv(20 -> 50): with one input channel both layouts coincide
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    with torch.inference_mode():
        after = model(x)
    assert torch.allclose(before, after, atol=1e-5, rtol=1e-5)
    assert torch.equal(before.argmax(1), after.argmax(1))


def test_for_inference_leaves_a_model_without_convolutions_as_is():
    model = build("fc16", seed=0)
    weights = [p.clone() for p in model.parameters()]
    assert for_inference(model) is model and not model.training
    assert all(torch.equal(a, b) and b.is_contiguous() for a, b in zip(weights, model.parameters()))


def test_for_inference_refuses_a_non_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        for_inference(lambda x: x)

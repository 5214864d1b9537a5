"""Models: shapes, per-sample independence (what the batched passes rely on), bad names."""
import pytest
import torch

from lgc.errors import UserError
from lgc.models import BlockBatchNorm2d, make_model


@pytest.mark.parametrize("name,shape", [("resnet18", (3, 32, 32)), ("cnn", (3, 8, 8)),
                                        ("mlp", (3, 8, 8)), ("softmax", (20,))])
def test_forward_backward_shapes(name, shape):
    torch.manual_seed(0)
    m = make_model(name, 10, shape, width=4 if name == "resnet18" else None)
    x = torch.randn(6, *shape)
    out = m(x)
    assert out.shape == (6, 10)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())


def test_resnet18_default_width_has_the_usual_size():
    m = make_model("resnet18", 10, (3, 32, 32))
    n = sum(p.numel() for p in m.parameters())
    assert 11.0e6 < n < 11.3e6  # ResNet-18 CIFAR variant: about 11.17 M parameters
    assert any(isinstance(x, torch.nn.GroupNorm) for x in m.modules())


def test_group_norm_models_treat_samples_independently():
    torch.manual_seed(1)
    m = make_model("resnet18", 10, (3, 16, 16), width=4)
    x = torch.randn(5, 3, 16, 16)
    together = m(x)
    alone = torch.cat([m(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_block_batch_norm_normalises_each_block_as_its_worker_would():
    torch.manual_seed(2)
    m = make_model("resnet18", 10, (3, 16, 16), width=4, norm="batch")
    for mod in m.modules():
        if isinstance(mod, BlockBatchNorm2d):
            mod.block_size = 3
    x = torch.randn(9, 3, 16, 16)
    together = m(x)
    for mod in m.modules():
        if isinstance(mod, BlockBatchNorm2d):
            mod.block_size = None  # plain BatchNorm over one block
    per_block = torch.cat([m(x[3 * k:3 * k + 3]) for k in range(3)])
    torch.testing.assert_close(together, per_block, rtol=1e-4, atol=1e-5)


def test_bad_names_are_user_errors():
    with pytest.raises(UserError, match="model='vgg'"):
        make_model("vgg", 10, (3, 32, 32))
    with pytest.raises(UserError, match="norm='layer'"):
        make_model("cnn", 10, (3, 32, 32), norm="layer")

import torch

from models.heads import PostNormEncoderLayer
from models.ops.dropout import dropout, keep_mask


def test_encoder_layer_equals_torch_transformer_layer():
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(100, 4, 2048, 0.1, batch_first=True).eval()
    ours = PostNormEncoderLayer(100, 4, 2048, 0.1).eval()
    with torch.no_grad():
        ours.qkv.weight.copy_(ref.self_attn.in_proj_weight)
        ours.qkv.bias.copy_(ref.self_attn.in_proj_bias)
        ours.out.load_state_dict(ref.self_attn.out_proj.state_dict())
        for a, b in ((ours.ff1, ref.linear1), (ours.ff2, ref.linear2), (ours.norm1, ref.norm1), (ours.norm2, ref.norm2)):
            a.load_state_dict(b.state_dict())
    x = torch.randn(3, 120, 100)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_fast_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    keep = keep_mask((1000, 1000), 0.1, "cpu")
    assert abs(1 - keep.float().mean().item() - 0.1) < 0.002
    x = torch.ones(200, 300, requires_grad=True)
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert dropout(x, 0.1, False) is x

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


def _plain_ff(x, l1, l2):
    return l2(torch.relu(l1(x)))


def test_blocked_feedforward_equals_plain_ops_without_dropout():
    from models.ops.feedforward import ROWS_PER_BLOCK, feedforward
    torch.manual_seed(0)
    l1, l2 = torch.nn.Linear(100, 2048), torch.nn.Linear(2048, 100)
    x = torch.randn(3, 130, 100, requires_grad=True)     # 390 rows: not a multiple of the block
    assert (3 * 130) % ROWS_PER_BLOCK
    y = feedforward(x, l1, l2, 0.0, training=True)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *l1.parameters(), *l2.parameters()], g)
    y_ref = _plain_ff(x, l1, l2)
    grads_ref = torch.autograd.grad(y_ref, [x, *l1.parameters(), *l2.parameters()], g)
    assert torch.allclose(y, y_ref, atol=1e-5)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_blocked_feedforward_dropout_matches_masks_and_gradcheck(monkeypatch):
    from models.ops import feedforward as ff
    monkeypatch.setattr(ff, "ROWS_PER_BLOCK", 4)      # 14 rows: three full blocks and a partial one
    l1, l2 = torch.nn.Linear(3, 8).double(), torch.nn.Linear(8, 3).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)

    def run(inp, w1, b1, w2, b2):
        torch.manual_seed(7)        # the same masks on every call, so gradcheck sees one function
        return ff._BlockedFeedForward.apply(inp, w1, b1, w2, b2, 0.25)
    params = (x, l1.weight, l1.bias, l2.weight, l2.bias)
    y = run(*params)
    torch.manual_seed(7)            # the reference draws the same masks, block by block
    h = torch.relu(l1(x.detach()).reshape(-1, 8))
    keep = torch.cat([keep_mask((min(4, 14 - s), 8), 0.25, "cpu") for s in range(0, 14, 4)])
    assert 0 < keep.sum() < keep.numel()
    y_ref = l2(h * keep / 0.75).reshape(2, 7, 3)
    assert torch.allclose(y, y_ref, atol=1e-12)
    assert torch.autograd.gradcheck(run, params, eps=1e-6, atol=1e-6)


def test_blocked_feedforward_under_bf16_autocast_is_close_to_fp32():
    from models.ops.feedforward import feedforward
    torch.manual_seed(0)
    l1, l2 = torch.nn.Linear(100, 2048), torch.nn.Linear(2048, 100)
    x = torch.randn(4, 120, 100, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16):
        y = feedforward(x, l1, l2, 0.0, training=True)
    assert y.dtype == torch.bfloat16
    y.float().pow(2).sum().backward()
    gw = l1.weight.grad.clone()
    l1.weight.grad = None
    y_ref = _plain_ff(x, l1, l2)
    y_ref.pow(2).sum().backward()
    assert (y.float() - y_ref).abs().max() < 0.05 * y_ref.abs().max()
    cos = torch.nn.functional.cosine_similarity(gw.flatten(), l1.weight.grad.flatten(), dim=0)
    assert cos > 0.99 and l1.weight.grad.dtype == torch.float32


def test_encoder_layer_training_path_equals_torch_layer_without_dropout():
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(100, 4, 2048, 0.0, batch_first=True).train()
    ours = PostNormEncoderLayer(100, 4, 2048, 0.0).train()
    ours.load_state_dict({"qkv.weight": ref.self_attn.in_proj_weight, "qkv.bias": ref.self_attn.in_proj_bias,
                          "out.weight": ref.self_attn.out_proj.weight, "out.bias": ref.self_attn.out_proj.bias,
                          "ff1.weight": ref.linear1.weight, "ff1.bias": ref.linear1.bias,
                          "ff2.weight": ref.linear2.weight, "ff2.bias": ref.linear2.bias,
                          **{f"norm{i}.{k}": v for i in (1, 2) for k, v in getattr(ref, f"norm{i}").state_dict().items()}})
    x = torch.randn(3, 120, 100)
    ours(x).sum().backward()
    ref(x).sum().backward()
    assert torch.allclose(ours.ff1.weight.grad, ref.linear1.weight.grad, rtol=1e-3, atol=1e-4)

import math

import torch

from training.losses import nt_xent


def test_nt_xent_matches_hand_computation():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    t = 0.5
    views = [v / v.norm() for v in list(z1) + list(z2)]
    partner = {0: 2, 1: 3, 2: 0, 3: 1}
    total = 0.0
    for i in range(4):
        sims = {j: float(views[i] @ views[j]) / t for j in range(4) if j != i}
        total += -sims[partner[i]] + math.log(sum(math.exp(s) for s in sims.values()))
    assert abs(nt_xent(z1, z2, t).item() - total / 4) < 1e-6


def test_nt_xent_is_low_for_matching_views():
    z = torch.randn(32, 18)
    assert nt_xent(z, z + 0.01 * torch.randn_like(z)) < nt_xent(z, torch.randn(32, 18))


def test_contrastive_head_equals_full_transformer_layer():
    """The head (class-token query folded into the key weights, values applied after pooling)
    computes what a full pre-norm layer gives at the class token: outputs and all gradients."""
    import torch.nn.functional as F
    from models.heads import ContrastiveHead
    torch.manual_seed(0)
    head = ContrastiveHead(72).double().eval()
    feats = torch.randn(5, 120, 72, dtype=torch.float64, requires_grad=True)

    def full_layer(feats):
        x = head.embed(feats)
        x = torch.cat([head.cls_token.expand(5, -1, -1), x], 1)
        h = head.norm1(x)
        q, k, v = head.qkv(h).view(5, 121, 3, 4, 25).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / 5.0, -1) @ v
        x = x + head.out(att.transpose(1, 2).reshape(5, 121, 100))
        x = x + head.ff2(F.relu(head.ff1(head.norm2(x))))
        return head.project(x[:, 0])

    params = [feats] + list(head.parameters())
    out, ref = head(feats), full_layer(feats)
    assert torch.allclose(out, ref, atol=1e-10)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), params)
    ref_grads = torch.autograd.grad((ref * w).sum(), params)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-10)

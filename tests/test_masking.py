import torch

from config import MaskConfig
from training.masking import mask_batch, span_positions


def runs(row_mask):
    """Lengths of the consecutive runs of True in a 1-D bool tensor."""
    out, n = [], 0
    for v in row_mask.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_span_positions_count_order_and_span_lengths():
    g = torch.Generator().manual_seed(0)
    pos = span_positions(2000, 120, 18, 10, g)
    assert pos.shape == (2000, 18)
    assert (pos[:, 1:] > pos[:, :-1]).all(), "positions sorted and distinct"
    assert pos.min() >= 0 and pos.max() < 120
    mask = torch.zeros(2000, 120, dtype=torch.bool).scatter_(1, pos, True)
    lengths = [n for row in mask[:300] for n in runs(row)]
    assert max(lengths) <= 10, "no masked run longer than max_gram"
    assert min(lengths) >= 1
    # geometric(0.2) truncated at 10 has mean ~3.4: spans must not all be single steps
    assert 2.0 < sum(lengths) / len(lengths) < 5.0
    # every step can be masked (the start and the end too)
    assert mask.any(0).all()


def test_mask_batch_fraction_zeroing_and_targets():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 120, 6) + 5.0          # no natural zeros
    cfg = MaskConfig()
    masked, pos, targets = mask_batch(x, cfg, g)
    assert pos.shape[1] / 120 == 0.15
    assert torch.equal(targets, torch.gather(x, 1, pos.unsqueeze(-1).expand(-1, -1, 6)))
    at_pos = torch.gather(masked, 1, pos.unsqueeze(-1).expand(-1, -1, 6))
    zeroed = (at_pos == 0).all(-1).all(-1).float().mean().item()
    assert abs(zeroed - cfg.mask_prob) < 0.03, zeroed
    keep = torch.ones_like(x, dtype=torch.bool).scatter_(1, pos.unsqueeze(-1).expand(-1, -1, 6), False)
    assert torch.equal(masked[keep], x[keep]), "unmasked steps untouched"

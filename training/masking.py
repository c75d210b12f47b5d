"""LIMU-BERT span masking, batched on the training device.

Each window gets exactly n = max(1, round(T * mask_ratio)) masked steps, grouped in spans
whose lengths follow LIMU-BERT's truncated geometric law (p = 0.2, 1..max_gram). Spans are
placed with at least one unmasked step between them, so no masked run is longer than
max_gram (the published per-sample Python loop could merge neighbouring spans). With
probability mask_prob a window's masked steps are zeroed in the input; otherwise they are
left as they are (replace_prob > 0 fills them with U(0, 1) noise instead, as LIMU-BERT).
"""
import torch

GEOMETRIC_P = 0.2


def span_lengths(batch, n_mask, max_gram, generator):
    """(batch, n_mask) span lengths, each row summing to n_mask; trailing spans are 0."""
    k = torch.arange(max_gram, dtype=torch.float32, device=generator.device)
    pvals = GEOMETRIC_P * (1 - GEOMETRIC_P) ** k
    draws = torch.multinomial(pvals.expand(batch, -1), n_mask, replacement=True,
                              generator=generator) + 1
    before = draws.cumsum(1) - draws
    return (n_mask - before).clamp(min=0).minimum(draws)      # trim the span that overshoots


def span_positions(batch, seq_len, n_mask, max_gram, generator):
    """Sorted masked step indices (batch, n_mask), spans separated by >= 1 free step."""
    lengths = span_lengths(batch, n_mask, max_gram, generator)          # (B, K), K = n_mask
    n_spans = (lengths > 0).sum(1, keepdim=True)
    # Gaps between spans: a random composition of the free steps (stars and bars). Sorted
    # uniform draws c_i in [0, free] give span i the start c_i + i + (lengths before it).
    free = seq_len - n_mask - (n_spans - 1)                                # (B, 1)
    if (free < 0).any():
        raise ValueError(f"cannot place {n_mask} masked steps in spans within {seq_len} steps")
    u = torch.rand(lengths.shape, generator=generator, device=generator.device)
    c = (u * (free + 1)).floor().long().minimum(free)
    idx = torch.arange(lengths.size(1), device=lengths.device)
    c = torch.where(idx < n_spans, c, free).sort(1).values
    ends = lengths.cumsum(1)
    starts = c + idx + ends - lengths
    # masked token j belongs to span s(j) = number of span ends <= j
    j = idx.expand(batch, -1).contiguous()
    s = torch.searchsorted(ends.contiguous(), j, right=True)
    offset = j - torch.gather(ends - lengths, 1, s)
    return torch.gather(starts, 1, s) + offset


def mask_batch(x, cfg, generator):
    """x (B, T, C) -> (masked input, positions (B, n), targets x at positions (B, n, C))."""
    B, T, C = x.shape
    n_mask = max(1, int(round(T * cfg.mask_ratio)))
    pos = span_positions(B, T, n_mask, cfg.max_gram, generator).to(x.device)
    targets = torch.gather(x, 1, pos.unsqueeze(-1).expand(-1, -1, C))
    u = torch.rand(B, generator=generator, device=generator.device).to(x.device)
    zero = (u < cfg.mask_prob).view(B, 1, 1)
    replace = ((u >= cfg.mask_prob) & (u < cfg.mask_prob + (1 - cfg.mask_prob) * cfg.replace_prob)).view(B, 1, 1)
    fill = torch.where(replace, torch.rand(targets.shape, generator=generator,
                                           device=generator.device).to(x.device), targets)
    fill = torch.where(zero, torch.zeros_like(fill), fill)
    masked = x.scatter(1, pos.unsqueeze(-1).expand(-1, -1, C), fill)
    return masked, pos, targets

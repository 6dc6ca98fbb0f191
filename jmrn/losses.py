"""Classification losses and the joint-contrastive loss (paper eq. 1-2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Cross-entropy on class indices, or BCE on multi-hot targets for multi-label datasets."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))
    return F.cross_entropy(logits, targets)


def positive_mask(targets: torch.Tensor) -> torch.Tensor:
    """B x B bool: same class (indices) or any shared class (multi-hot), excluding the diagonal."""
    if targets.dim() == 1:
        same = targets[:, None] == targets[None, :]
    else:
        t = targets.to(torch.float32)
        same = (t @ t.T) > 0
    return same & ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)


def joint_contrastive_loss(embeddings: torch.Tensor, targets: torch.Tensor,
                           temperature: float = 0.3) -> torch.Tensor:
    """Supervised contrastive loss per joint (paper eq. 1-2), averaged over anchors and joints.

    embeddings: B x J x D unit vectors z (B = both augmented views stacked); targets: B class
    indices or B x K multi-hot (positives share any label). For anchor a and joint j (eq. 1):

        L_aj = -1/|P(a)| * sum_{p in P(a)} log( exp(z_aj . z_pj / t) / sum_{k != a} exp(z_aj . z_kj / t) )

    and the loss (eq. 2) is the mean of L_aj over the anchors that have a positive in the batch
    and over the J joints: L = 1/J sum_j 1/|A| sum_{a in A} L_aj. This is the normalisation of
    the public code, so its lambda values (0.05 JHMDB/Charades, 0.5 HMDB51) mean the same here;
    a sum over joints would make the same lambda J times stronger. Anchors without a positive
    contribute nothing (no NaN); a batch without any positive gives 0.
    """
    b = embeddings.shape[0]
    z = embeddings.transpose(0, 1)  # J x B x D
    sim = z @ z.transpose(1, 2) / temperature  # J x B x B
    self_mask = torch.eye(b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=2, keepdim=True)  # J x B x B
    pos = positive_mask(targets)  # B x B
    n_pos = pos.sum(dim=1)  # B
    pos_log_prob = log_prob.masked_fill(~pos, 0.0).sum(dim=2)  # J x B
    has_pos = n_pos > 0
    if not has_pos.any():
        return embeddings.sum() * 0.0
    per_anchor = -pos_log_prob[:, has_pos] / n_pos[has_pos]  # J x B'
    return per_anchor.mean()

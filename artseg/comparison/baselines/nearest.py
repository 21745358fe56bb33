"""Exact nearest-neighbour distances between embedding sets, in bounded memory."""

from __future__ import annotations

import torch

from artseg.errors import ArtsegInputError

__all__ = ["nearest_distances"]


def nearest_distances(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    query_chunk: int = 2048,
    bank_chunk: int = 32768,
) -> torch.Tensor:
    """Euclidean distance from each query to its nearest vector in ``bank``.

    Parameters
    ----------
    queries : torch.Tensor
        ``(Q, D)`` vectors.
    bank : torch.Tensor
        ``(M, D)`` reference vectors (e.g. every training patch embedding), ``M >= 1``.
    query_chunk, bank_chunk : int
        Block sizes; peak extra memory is about ``query_chunk * bank_chunk`` floats.

    Returns
    -------
    torch.Tensor
        ``(Q,)`` float32 distances.

    Raises
    ------
    ArtsegInputError
        If the shapes are not ``(Q, D)`` and ``(M, D)`` with the same ``D`` or the bank is empty.

    Notes
    -----
    Candidates are found blockwise with the matrix-product form
    ``|q|^2 + |b|^2 - 2 q.b`` (fast, but it cancels badly when the distance is tiny next to
    the norms), then the distance to the chosen neighbour is recomputed exactly as
    ``|q - b|``. Patch SVDD's cutoffs live in that tiny-distance range.

    Examples
    --------
    >>> import torch
    >>> bank = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> nearest_distances(torch.tensor([[3.0, 3.0]]), bank)
    tensor([1.])
    """
    if queries.dim() != 2 or bank.dim() != 2 or queries.shape[1] != bank.shape[1]:
        raise ArtsegInputError(
            f"nearest-neighbour search needs (Q, D) and (M, D) arrays, got {tuple(queries.shape)} and {tuple(bank.shape)}"
        )
    if bank.shape[0] == 0:
        raise ArtsegInputError("nearest-neighbour search needs a non-empty bank of training embeddings")
    queries = queries.float()
    bank = bank.float()
    bank_sq_norms = (bank * bank).sum(dim=1)
    distances = torch.empty(queries.shape[0], dtype=torch.float32, device=queries.device)
    for q_start in range(0, queries.shape[0], query_chunk):
        block = queries[q_start : q_start + query_chunk]
        block_sq_norms = (block * block).sum(dim=1, keepdim=True)
        best_sq = torch.full((block.shape[0],), float("inf"), device=queries.device)
        best_index = torch.zeros(block.shape[0], dtype=torch.long, device=queries.device)
        for b_start in range(0, bank.shape[0], bank_chunk):
            bank_block = bank[b_start : b_start + bank_chunk]
            squared = torch.addmm(
                block_sq_norms + bank_sq_norms[b_start : b_start + bank_chunk], block, bank_block.T, alpha=-2.0
            )
            block_min, block_arg = squared.min(dim=1)
            improved = block_min < best_sq
            best_sq = torch.where(improved, block_min, best_sq)
            best_index = torch.where(improved, block_arg + b_start, best_index)
        distances[q_start : q_start + block.shape[0]] = (block - bank[best_index]).norm(dim=1)
    return distances

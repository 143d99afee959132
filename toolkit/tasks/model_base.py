"""The cloud model contract every task's model implements: static layers, a Base slot head, a context encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from toolkit.protocol.slots import SlotSpec


class TaskModel(nn.Module, ABC):
    """A task's cloud model: static layers, a Base slot head (`head`), and a context encoder for the generator."""

    head: nn.Module  # SlotHead: the Base parameters of the slots

    @property
    @abstractmethod
    def context_dim(self) -> int:
        """Size of each context vector the generator reads."""

    @property
    def slot_specs(self) -> list[SlotSpec]:
        return self.head.shape.slot_specs()

    @abstractmethod
    def context(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tensors `Task.request_inputs` builds -> (context vectors (B, M, context_dim), mask (B, M)).

        Plain tensor ops only: the service traces it together with the generator into one program.
        """

    def context_table(self) -> torch.Tensor | None:
        """Optional, with `context_parts`: a table (V, t) whose rows begin every context vector. The service then
        folds the generator's first layer into it once, so a request gathers a narrow row per sample instead of
        building the vector and multiplying it. None (the default): the vectors are not of that form."""
        return None

    def context_parts(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row ids (B, M), the rest of each vector (B, M, context_dim - t), mask (B, M)) such that `context(*inputs)`
        is (cat([context_table()[ids], rest], -1), mask). Needed only when `context_table` is not None."""
        raise NotImplementedError(f"{type(self).__name__} has no context table")

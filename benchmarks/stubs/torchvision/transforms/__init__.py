"""Stand-in for ``torchvision.transforms``: just the name allRank imports (see the package)."""

from collections.abc import Callable
from typing import Any


class Compose:
    """Apply ``transforms`` in order, like torchvision's (never called by the loss benchmark)."""

    def __init__(self, transforms: list[Callable[[Any], Any]]) -> None:
        self.transforms = transforms

    def __call__(self, sample: Any) -> Any:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

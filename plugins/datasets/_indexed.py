"""Datasets that scan their files once into a {split: [Sample]} index (``local-folder``,
``attribution-list``): the split lookup and its error live here, so both answer alike."""

from __future__ import annotations

from typing import Sequence

from harness.contracts import Dataset, Sample
from harness.errors import DataError


class IndexedDataset(Dataset):
    """Subclasses set ``label`` (the plugin name in errors) and build the index in ``_load()``,
    memoised in ``self._index``."""

    label = ""

    def _load(self) -> dict[str, list[Sample]]:
        raise NotImplementedError

    def splits(self) -> Sequence[str]:
        return list(self._load())

    def prepare(self) -> None:
        """Nothing to render: scan the files once, so errors surface before any model runs."""
        self._load()

    def samples(self, split: str) -> list[Sample]:
        index = self._load()
        if split not in index:
            raise DataError(f"{self.label} has no split '{split}'. Available: "
                            f"{', '.join(index)}")
        return list(index[split])

import pytest
import torch

from harness import canary
from harness.contracts import Sample


def test_shuffled_batches_cover_each_epoch_and_repeat_deterministically():
    g1 = torch.Generator().manual_seed(0)
    g2 = torch.Generator().manual_seed(0)
    b1 = canary.shuffled_batches(10, 3, g1)
    first_epoch = torch.cat([next(b1) for _ in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # the tail of 1 is dropped
    second = next(b1)
    assert second.shape == (3,)
    b2 = canary.shuffled_batches(10, 3, g2)
    again = torch.cat([next(b2) for _ in range(3)])
    assert torch.equal(first_epoch, again)


def test_key_depends_on_params_data_and_code(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"x")
    samples = [Sample("a", str(a), "cap")]
    base = canary.key("c", "1", {"steps": 10}, samples)
    assert canary.key("c", "2", {"steps": 10}, samples) != base
    assert canary.key("c", "1", {"steps": 11}, samples) != base
    assert canary.key("c", "1", {"steps": 10}, samples, extra=1) != base
    a.write_bytes(b"y")
    assert canary.key("c", "1", {"steps": 10}, samples) != base


def test_empty_training_data_is_a_named_error(register_plugin):
    from harness import hookimpl
    from harness.contracts import Dataset
    from harness.errors import DataError

    class Empty(Dataset):
        def splits(self):
            return ["members"]

        def samples(self, split):
            return []

    class P:
        @hookimpl
        def register_datasets(self, register):
            register("empty-data", Empty)

    register_plugin(P(), "empty-data-plugin")
    with pytest.raises(DataError, match="my-canary: train_data"):
        canary.training_samples("my-canary", {"source": "empty-data", "split": "members"})

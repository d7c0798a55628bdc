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


def _folder_ref(tmp_path, n_files, **extra):
    import numpy as np
    import soundfile as sf

    root = tmp_path / "clips"
    root.mkdir(exist_ok=True)
    for i in range(n_files):
        tone = 0.3 * np.sin(2 * np.pi * (200 + 10 * i) * np.arange(16000) / 16000)
        sf.write(root / f"c{i:02d}.wav", tone.astype(np.float32), 16000)
    return {"source": "local-folder", "split": "all", "params": {"path": str(root)}, **extra}


def test_train_data_n_takes_the_same_seeded_subset_as_a_data_entry(tmp_path):
    from harness.datasets import resolve, subset

    ref = _folder_ref(tmp_path, 20)
    assert len(canary.training_samples("c", ref)) == 20
    picked = canary.training_samples("c", dict(ref, n=8))
    assert len(picked) == 8
    # the data entry rule with the same seed and side: audited members == trained members
    assert [s.id for s in picked] == [s.id for s in subset(resolve(ref), 8, 0, "members")]
    assert [s.id for s in canary.training_samples("c", dict(ref, n=8, seed=3))] != \
        [s.id for s in picked]


@pytest.mark.parametrize("extra, match", [({"n": 0}, "n must be an integer >= 1"),
                                          ({"n": "all"}, "n must be an integer"),
                                          ({"n": 21}, "n is 21 but .* has only 20"),
                                          ({"size": 3}, "unknown key")])
def test_train_data_bad_n_is_a_named_error(tmp_path, extra, match):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match=match):
        canary.training_samples("c", _folder_ref(tmp_path, 20, **extra))


def test_train_steps_yields_steps_and_reports_progress(capsys):
    losses = []
    seen = []
    for step, idx in canary.train_steps("c", 5, iter(range(100)), losses):
        seen.append((step, idx))
        losses.append(1.0 / (step + 1))
    assert seen == [(i, i) for i in range(5)]
    err = capsys.readouterr().err
    assert "[train] c" in err and "5/5" in err and "loss" in err

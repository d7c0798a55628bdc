from harness.progress import ProgressLine


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_eta_counts_computed_samples_only_and_lines_are_rate_limited():
    clock, lines = Clock(), []
    p = ProgressLine(100, lines.append, every=5.0, clock=clock)
    p.add(40, computed=False)  # a resumed run: 40 cached at once
    p.show()
    assert lines == ["[extract] 40/100 samples (40 from cache), ETA -"]
    clock.t += 10
    p.add(20, computed=True)  # 2 samples/s -> 40 left take 20 s
    p.show()
    assert lines[-1] == "[extract] 60/100 samples (40 from cache), 2.00 samples/s, ETA 20 s"
    clock.t += 1
    p.add(2, computed=True)
    p.show()  # within 5 s of the last line: nothing new
    assert len(lines) == 2
    p.set(40, 60)
    p.show(extra="4/4 shards", force=True)
    assert lines[-1] == ("[extract] 100/100 samples (40 from cache), 5.45 samples/s, "
                         "done in 11 s, 4/4 shards")


def test_long_durations_read_as_minutes_and_hours():
    clock, lines = Clock(), []
    p = ProgressLine(10_000, lines.append, clock=clock)
    clock.t += 60
    p.add(10, computed=True)
    assert "ETA 16 h 39 min" in p.text()
    p.set(0, 9000)
    assert "ETA 7 s" in p.text()
    p.set(0, 100)
    assert "ETA 1 h 39 min" in p.text()


def test_a_bar_with_nothing_to_do_prints_nothing(capsys):
    """A fully cached split opens a bar of 0 batches: no empty tqdm line on stderr."""
    from harness.progress import bar, stderr_echo

    with bar(0, "[extract] m × d members", stderr_echo):
        pass
    with bar(0, "[extract] m × d members", lambda m: print(m)):
        pass
    assert capsys.readouterr() == ("", "")
    with bar(1, "[extract] m × d members", stderr_echo) as p:
        p.update(1)
    assert "1/1" in capsys.readouterr().err

"""The console summary (from results.json): the DI claim, its role and the null control's
marks must be as visible there as in the MLflow report."""

from harness.summary import console_summary

from test_tracking import make_results_dir


def test_di_primary_caveat_and_marks(tmp_path):
    d = make_results_dir(tmp_path / "r", cells=[], di=[
        ("diffusion-canary", "folk", "cdi", 20),
        ("diffusion-canary", "folk", "cdi-crossfit", 10, {
            "null_fpr": 0.06, "null_valid": 550, "primary": False,
            "caveat": "reproduction of the reference code; over-rejects"}),
        ("ar-canary", "folk", "minmax-sum", None, {
            "null_fpr": None, "null_valid": 0, "null_per_n": [],
            "null_note": "no valid null test ran (n = 2: 50 of 50 undefined)"})])
    out = console_summary(d).splitlines()
    cdi = next(line for line in out if " cdi " in line and line.startswith("diffusion"))
    crossfit = next(line for line in out if line.startswith("diffusion") and "crossfit" in line)
    assert " primary " in cdi and "⚠" not in cdi
    assert " exploratory " in crossfit and "⚠ null FPR 0.060 > α 0.01" in crossfit
    primary = [line for line in out if line.startswith("  primary ")]
    assert primary == ["  primary diffusion-canary × folk × cdi: n = 40, p = 0.0004, rejects; "
                       "null FPR 0.006 at n = 20 (<= 0.300)"]
    assert "  diffusion-canary × folk × cdi-crossfit: reproduction of the reference code; " \
           "over-rejects" in out
    ar = next(line for line in out if line.startswith("ar-canary"))
    assert ar.split()[-1] == "none"  # never "0.000" when no null test ran
    assert "  ar-canary × folk × minmax-sum: no valid null test ran (n = 2: 50 of 50 " \
           "undefined)" in out

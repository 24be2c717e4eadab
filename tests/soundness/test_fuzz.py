"""The differential fuzzer's bounded CI run (tests/soundness/fuzz.py has the generator and
the long run: `python -m tests.soundness.fuzz --cases 5000 --seed 0`).

Every generated program is compared with the same code run plainly after every change of
state; the CI run takes about 40 s here. The seed is fixed; a difference names its case
seed, and `python -m tests.soundness.fuzz --only <case seed>` runs that case alone.
"""
import terra_dyn

from . import fuzz


def test_fuzzer_finds_no_difference_with_plain_python():
    try:
        diffs = fuzz.run(cases=300, seed=1)
    finally:
        terra_dyn.reset()
    assert diffs == [], "\n".join(diffs[:20])


def test_each_case_changes_state_and_checks_every_call():
    # the cases really vary what the fuzzer claims to vary
    cases = [fuzz.make_case(seed) for seed in range(400)]
    assert {c[0] for c in cases} == set(fuzz.VALUE_KINDS)
    assert {c[1] for c in cases} == set(fuzz.SOURCE_KINDS)
    actions = {step[0] for c in cases for step in c[3]}
    assert {"set", "grow", "helper", "shape", "same"} <= actions

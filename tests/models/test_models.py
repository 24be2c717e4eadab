"""A bounded subset of the Hugging Face corpus (tests/models/corpus.py) in CI: each model's
forward, one training step (loss and every gradient) and, for decoders, greedy generate
equal to eager under terra_dyn; and the graphs and breaks of its first forward call no
more than recorded here, so a regression in capture shows up as a failure.
The whole corpus, beside torch.compile: `.venv/bin/python benchmarks/hf_models.py`."""
import warnings

import pytest
import torch

import terra_dyn
from terra_dyn import report

pytest.importorskip("transformers")

from .check import check_model  # noqa: E402
from .corpus import BY_NAME, CI_SUBSET  # noqa: E402

# graphs / breaks of the first no_grad forward (transformers 5.25.0, the pinned version);
# lower them when a fix lands. Before this corpus existed, every model broke 64-327 times.
BUDGET = {  # (graphs, breaks) on the first forward
    # measured after merging the soundness work (issue 16): stores through a custom
    # __setattr__ (transformers' configs) now run natively and break, and a config's
    # __getattribute__ read at a LOAD_METHOD cannot break yet, so DynamicCache.__init__ (and
    # t5's config helpers) run as plain Python. Before that merge: gpt2 (18, 64), llama
    # (19, 58), bert (13, 57), t5 (44, 120), vit (3, 10). Lower these as breaks are removed.
    "gpt2": (20, 76),
    "llama": (19, 70),
    "bert": (13, 65),
    # t5 47: with symbolic numbers (issue 11) two translations keep a mask size symbolic and
    # compute it in a graph of one `size` op, where a static translation folded it (same
    # breaks and recompiles); emitting number-only graphs as bytecode would bring it back to 45
    "t5": (47, 135),
    "vit": (13, 39),
}
# frames that run as plain Python (a fallback, with its reason in the report); any other is
# a regression
KNOWN_FALLBACKS = {
    "gpt2": {"__init__"}, "llama": {"__init__"}, "bert": set(),
    "t5": {"__init__", "get_text_config", "to_dict", "_remove_keys_not_serialized", "dict_dtype_to_str"},
    "vit": set(),
}


def _optimize(model):
    return terra_dyn.optimize(model, backend="interpreter")


@pytest.mark.parametrize("name", CI_SUBSET)
def test_model_matches_eager(name, fresh_terra_dyn):
    result = check_model(BY_NAME[name], _optimize)
    assert result.right, result.problems


@pytest.mark.parametrize("name", CI_SUBSET)
def test_model_breaks_do_not_regress(name, fresh_terra_dyn):
    model, inputs = BY_NAME[name].build()
    fast = _optimize(model)
    with report.recording() as rec, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fast(**inputs)
        expected = model(**inputs)
    torch.testing.assert_close(out.logits, expected.logits)
    rep = rec.report()
    graphs, breaks = BUDGET[name]
    reasons = sorted({b.reason for b in rep.breaks})
    assert {f.code_name for f in rep.fallbacks} <= KNOWN_FALLBACKS[name], rep.fallbacks
    assert rep.graph_count <= graphs and rep.break_count <= breaks, (rep.graph_count, rep.break_count, reasons)

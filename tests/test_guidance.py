"""Classifier-free guidance of the controls: the sampler draws from the mixed distribution
log p_free + g * (log p_asked - log p_free), computed here the slow way with full forward
passes; g = 1 changes nothing; g = 0 is the twin with no style or key asked; the CLI's checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from midigen.cli import app
from midigen.controls import DENSITY, KEY, STYLE, ControlSpec, asked_row, unknown_row
from midigen.guidance import guided_logits, log_softmax, paired_rows
from midigen.model import ModelConfig, MusicRNN
from midigen.sample import sample_ids
from midigen.tokenizer import TokenizerConfig, vocabulary

TOK = TokenizerConfig(steps_per_second=50, max_shift_steps=50)
SPEC = ControlSpec(names=("style", "key", "density", "instruments"), styles=("high", "low"),
                   density_edges=(2.0, 4.0, 8.0), instruments=(0, 40))
runner = CliRunner()


def controlled_model(cell="lstm", seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocabulary(TOK).size, cell=cell, embed_dim=8, hidden=16,
                         layers=2, dropout=0.0, controls=SPEC.to_dict())
    model = MusicRNN(config).eval()
    with torch.no_grad():  # controls that matter: a random model's conditioning weights are small
        model.rnn.weight_ih_l0[:, 8:] *= 8
    return model


def test_the_unguided_twin_hides_style_and_key_only():
    asked = asked_row(SPEC, style="low", key="D minor", density=6.0, instruments="violin")
    twin = paired_rows(asked, SPEC)[1]
    free = unknown_row(SPEC)
    assert twin[STYLE] == free[STYLE] and twin[KEY] == free[KEY]
    assert twin[DENSITY] == asked[DENSITY] and np.array_equal(twin[3:], asked[3:])
    assert paired_rows(asked_row(SPEC, density=6.0, instruments="violin"), SPEC) is None


def test_guided_logits_mix_log_probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 7)).astype(np.float32)  # 2 asked rows, then 2 free rows
    mixed = guided_logits(logits, 3.0)
    lp = log_softmax(logits.astype(np.float64))
    np.testing.assert_allclose(mixed, lp[2:] + 3.0 * (lp[:2] - lp[2:]), rtol=1e-6)
    np.testing.assert_allclose(guided_logits(logits, 1.0), lp[:2], rtol=1e-6)


@pytest.mark.parametrize("cell,primed", [("lstm", False), ("gru", False), ("lstm", True)])
def test_greedy_guided_sampling_follows_the_mixed_distribution(cell, primed):
    """With top_k=1 every draw is the argmax, so the stepped sampler must pick, event by event,
    what full forward passes of the asked and the free controls give once mixed."""
    model = controlled_model(cell)
    vocab = vocabulary(TOK)
    asked = asked_row(SPEC, style="low", key="D minor", density=6.0)
    primer = [vocab.note_on_ids[60], vocab.note_on_ids[64]] if primed else None
    got, twin = sample_ids(model, TOK, num=2, max_events=16, seed=0, top_k=1, primer_ids=primer,
                           constrain=False, cond=asked, guidance=2.5)
    seq = [vocab.start_id, *(primer or [])]
    rows = torch.from_numpy(paired_rows(asked, SPEC))
    with torch.no_grad():
        while len(seq) < len(got):
            logits, _ = model(torch.tensor([seq, seq]), cond=rows)
            mixed = guided_logits(logits[:, -1].numpy(), 2.5)[0]
            has_note = any(i in vocab.note_on_ids for i in seq)
            if not has_note:
                mixed[vocab.end_id] = -np.inf  # the sampler never ends before a note
            seq.append(int(np.argmax(mixed)))
    assert list(got) == seq and list(twin) == seq


def test_guidance_one_changes_nothing_and_zero_is_the_twin_with_no_style_or_key():
    model = controlled_model()
    asked = asked_row(SPEC, style="high", instruments="violin")
    kw = {"num": 4, "max_events": 40, "seed": 7, "constrain": False}
    plain = sample_ids(model, TOK, cond=asked, **kw)
    one = sample_ids(model, TOK, cond=asked, guidance=1.0, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(plain, one))
    free = sample_ids(model, TOK, cond=paired_rows(asked, SPEC)[1], **kw)  # violin, any style
    zero = sample_ids(model, TOK, cond=asked, guidance=0.0, **kw)
    assert all(np.array_equal(a, b) for a, b in zip(free, zero))
    assert not all(np.array_equal(a, b) for a, b in zip(free, plain))  # the controls matter
    dense = asked_row(SPEC, density=9.0)  # nothing to guide: the model as trained
    assert all(np.array_equal(a, b) for a, b in zip(
        sample_ids(model, TOK, cond=dense, **kw), sample_ids(model, TOK, cond=dense, guidance=3, **kw)))


def test_stronger_guidance_moves_further_from_the_free_model():
    """A distribution pushed harder toward the asked controls: the mean log-probability gap
    between the asked and the free model, over what is sampled, grows with the scale."""
    model = controlled_model(seed=3)
    asked = asked_row(SPEC, style="low", key="F# major", density=1.0)
    rows = torch.from_numpy(paired_rows(asked, SPEC))

    def gap(guidance):
        pieces = sample_ids(model, TOK, num=16, max_events=40, seed=1, constrain=False,
                            cond=asked, guidance=guidance)
        total = []
        with torch.no_grad():
            for ids in pieces:
                x = torch.as_tensor(ids[:-1])[None].expand(2, -1)
                lp = torch.log_softmax(model(x, cond=rows)[0], -1)
                picked = lp[:, torch.arange(len(ids) - 1), torch.as_tensor(ids[1:])]
                total.append(float((picked[0] - picked[1]).mean()))
        return np.mean(total)

    assert gap(1.0) < gap(3.0)


def test_guidance_flags(tmp_path):
    from midigen.checkpoint import Checkpoint, save_checkpoint

    model = controlled_model()
    save_checkpoint(tmp_path / "m.pt", Checkpoint(
        tokenizer_config=TOK, model_config=model.config, train_config={},
        model_state=model.state_dict()))
    base = ["sample", "-c", str(tmp_path / "m.pt"), "-n", "1", "--max-events", "20"]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "a"), "--guidance", "2"])
    assert result.exit_code == 1
    assert "--guidance sets how hard to follow the asked style and key" in result.output
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "b"), "--style", "low",
                                 "--guidance", "11"])
    assert result.exit_code == 2
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "c"), "--style", "low"])
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "c" / "sample-001.json").read_text())["options"]
    assert options["guidance"] == 2.0 and options["style"] == "low"


@pytest.mark.cuda
def test_guided_sampling_on_cuda_is_the_same_with_and_without_the_graph():
    """The twins double the batch the CUDA graph is captured for; the graph must give the
    pieces the eager step gives for the same seed."""
    model = controlled_model().cuda()
    asked = asked_row(SPEC, style="low", key="D minor")
    runs = [sample_ids(model, TOK, num=3, max_events=120, seed=4, cond=asked, guidance=2.0,
                       cuda_graph=graph) for graph in (False, True)]
    assert all(np.array_equal(a, b) for a, b in zip(*runs))

"""Controls: keys heard and read, labels from folders and files, rows asked for, the model
with a conditioning vector (forward, stepper, checkpoint), and windows' controls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from midigen.batches import build_stream, random_windows, random_windows_placed
from midigen.checkpoint import Checkpoint, load_checkpoint, load_model, save_checkpoint
from midigen.controls import (
    COND_WIDTH,
    DENSITY,
    KEY,
    STYLE,
    ControlSpec,
    asked_row,
    density_bin,
    density_of_ids,
    load_style_map,
    parse_control_names,
    parse_instrument,
    style_of_path,
)
from midigen.controls_train import PieceControls, WindowControls
from midigen.errors import MidigenError
from midigen.events import Note, notes_to_array
from midigen.keys import (
    KEY_NAMES,
    estimate_key,
    parse_key,
    piece_key,
    signature_keys,
    transpose_key,
)
from midigen.model import ModelConfig, MusicRNN
from midigen.sample import sample_ids
from midigen.stepper import Stepper
from midigen.tokenizer import TokenizerConfig, encode_notes, vocabulary

TOK = TokenizerConfig(steps_per_second=50, max_shift_steps=50)
SPEC = ControlSpec(names=("style", "key", "density", "instruments"), styles=("high", "low"),
                   density_edges=(2.0, 4.0, 8.0), instruments=(0, 40))


def scale_notes(pitches, lengths=None, program=0):
    """One note after another, each `lengths[i]` seconds long."""
    lengths = lengths or [0.5] * len(pitches)
    notes, t = [], 0.0
    for p, d in zip(pitches, lengths):
        notes.append(Note(p, 80, t, t + d, program))
        t += d
    return notes_to_array(notes)


C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
A_MINOR = [57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57]  # harmonic minor, A and E dwelt on
A_MINOR_LENGTHS = [2.0, 0.5, 1.0, 0.5, 1.5, 0.5, 0.5, 2.0, 1.5, 1.0, 2.0]


# --------------------------------------------------------------------------- keys

def test_keys_are_heard_in_scales_and_move_with_transposition():
    assert KEY_NAMES[estimate_key(scale_notes(C_MAJOR))] == "C major"
    a_minor = scale_notes(A_MINOR, A_MINOR_LENGTHS)
    assert KEY_NAMES[estimate_key(a_minor)] == "A minor"
    up = a_minor.copy()
    up["pitch"] += 5
    assert KEY_NAMES[estimate_key(up)] == "D minor" == KEY_NAMES[transpose_key(21, 5)]
    drums = scale_notes(C_MAJOR)
    drums["is_drum"] = True
    assert estimate_key(drums) is None  # drums name sounds, not pitches


def test_written_signatures_choose_between_relative_keys_and_yield_to_the_notes():
    assert signature_keys(1) == (7, 16)  # one sharp: G major, E minor
    a_minor = scale_notes(A_MINOR, A_MINOR_LENGTHS)
    # No sharps, mode left at "major" (as many MIDI files do): the notes say A minor.
    assert piece_key(a_minor, (0, False)) == (21, "score")
    # A signature of four sharps over a piece in A minor is not believed.
    assert piece_key(a_minor, (4, False)) == (21, "notes")
    assert piece_key(scale_notes(C_MAJOR)) == (0, "notes")


@pytest.mark.parametrize("text,name", [("D minor", "D minor"), ("Dm", "D minor"),
                                       ("F# major", "F# major"), ("bb", "Bb minor"),
                                       ("Eb", "Eb major"), ("c# min", "C# minor")])
def test_key_names_parse(text, name):
    assert KEY_NAMES[parse_key(text)] == name


@pytest.mark.parametrize("text", ["H major", "D dorian", ""])
def test_bad_key_names_are_errors(text):
    with pytest.raises(MidigenError, match="key"):
        parse_key(text)


# --------------------------------------------------------------------------- labels and rows

def test_styles_come_from_folders_or_a_file(tmp_path):
    assert style_of_path("jigs/jigs12.mid") == "jigs"
    assert style_of_path("Bach/Fugue/bwv846/x.mid") == "Bach"
    assert style_of_path("loose.mid") is None
    (tmp_path / "s.csv").write_text("file,style\njigs12.mid,jig\nreels/r1.mid, reel\n")
    assert load_style_map(tmp_path / "s.csv") == {"jigs12.mid": "jig", "reels/r1.mid": "reel"}
    (tmp_path / "s.json").write_text(json.dumps({"a": "x"}))
    assert load_style_map(tmp_path / "s.json") == {"a": "x"}
    from types import SimpleNamespace

    from midigen.controls import style_of

    piece = lambda file, name: SimpleNamespace(file=file, name=name)
    mapping = load_style_map(tmp_path / "s.csv")
    assert style_of(piece("jigs/jigs12.mid", "jigs12"), mapping) == "jig"  # by file name
    assert style_of(piece("reels/r1.mid", "r1"), mapping) == "reel"  # by path
    assert style_of(piece("other/x.mid", "x"), mapping) is None  # unlabelled: no style
    assert style_of(piece("other/x.mid", "x"), None) == "other"  # no file: the folder
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(MidigenError, match="must hold one object"):
        load_style_map(tmp_path / "bad.json")


def test_control_names_and_instruments_parse():
    assert parse_control_names("key, density") == ("key", "density")
    assert parse_control_names("all") == ("style", "key", "density", "instruments")
    with pytest.raises(MidigenError, match="choose from"):
        parse_control_names("style,tempo")
    assert parse_instrument("violin", ()) == 40 and parse_instrument("33", ()) == 33
    assert parse_instrument("piano", (2,)) == 2  # the piano the model knows
    assert parse_instrument("Drums", ()) == 128


def test_asked_rows_check_values_against_the_model():
    row = asked_row(SPEC, style="low", key="D minor", density=5.0, instruments="violin")
    assert row.shape == (COND_WIDTH,)
    assert (row[STYLE], row[KEY], row[DENSITY]) == (1, 14, 2)
    assert row[3 + 40] == 1 and row[3:].sum() == 1
    unknown = asked_row(SPEC)
    assert (unknown[STYLE], unknown[KEY], unknown[DENSITY], unknown[3:].sum()) == (2, 24, 4, 0)
    with pytest.raises(MidigenError, match="knows no style 'jazz'; it knows: high, low"):
        asked_row(SPEC, style="jazz")
    with pytest.raises(MidigenError, match="knows no instrument 'Flute'.*Violin"):
        asked_row(SPEC, instruments="flute")
    with pytest.raises(MidigenError, match="above 0"):
        asked_row(SPEC, density=0)
    with pytest.raises(MidigenError, match="trained without controls"):
        asked_row(None, key="C major")
    with pytest.raises(MidigenError, match="not trained with the style control"):
        asked_row(ControlSpec(names=("key",)), style="high")


def test_density_counts_notes_per_second_of_each_window():
    vocab = vocabulary(TOK)
    ids = encode_notes(scale_notes(C_MAJOR, [0.25] * len(C_MAJOR)), TOK)
    d = density_of_ids(ids[None], vocab.note_on_ids, vocab.shift_steps, TOK.steps_per_second)
    assert d[0] == pytest.approx(len(C_MAJOR) / (0.25 * len(C_MAJOR)), rel=0.1)  # ~4 per s
    assert list(density_bin([1.0, 3.0, 100.0], SPEC.density_edges)) == [0, 1, 3]


# --------------------------------------------------------------------------- the model

def controlled_model(cell="lstm", layers=2, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocabulary(TOK).size, cell=cell, embed_dim=8, hidden=16,
                         layers=layers, dropout=0.0, controls=SPEC.to_dict())
    return MusicRNN(config).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepper_applies_controls_as_forward_does(cell):
    model = controlled_model(cell)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    cond = torch.from_numpy(np.stack([asked_row(SPEC, style="high", key="C major"),
                                      asked_row(SPEC, density=9.0, instruments="piano")]))
    with torch.no_grad():
        full, _ = model(ids, cond=cond)
        plain, _ = model(ids)
    assert not torch.allclose(full, plain, atol=1e-4)  # the controls change the prediction
    stepper = Stepper(model)
    stepper.reset(2, cond=cond)
    steps = torch.stack([stepper.step(ids[:, t]).clone() for t in range(ids.shape[1])], 1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_controls_travel_in_the_checkpoint_and_plain_models_keep_their_layout(tmp_path):
    model = controlled_model()
    path = save_checkpoint(tmp_path / "c.pt", Checkpoint(
        tokenizer_config=TOK, model_config=model.config, train_config={},
        model_state=model.state_dict()))
    loaded, _, _ = load_model(path)
    assert ControlSpec.from_dict(loaded.config.controls) == SPEC
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    cond = torch.from_numpy(asked_row(SPEC, style="low"))[None]
    torch.testing.assert_close(loaded(ids, cond=cond)[0], model(ids, cond=cond)[0])
    plain = ModelConfig(vocab_size=vocabulary(TOK).size, embed_dim=8, hidden=16, layers=2)
    assert "controls" not in plain.to_dict()  # a model without controls saves what it did
    torch.manual_seed(0)
    names = [n for n, _ in MusicRNN(plain).named_parameters()]
    rnn = [f"rnn.{w}_{k}_l{n}" for n in range(2) for w, k in
           (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))]
    assert names == ["embed.weight", *rnn, "head.weight", "head.bias"]


def test_a_checkpoint_from_before_controls_still_loads_and_samples(tmp_path):
    config = ModelConfig(vocab_size=vocabulary(TOK).size, embed_dim=8, hidden=16, layers=1)
    model = MusicRNN(config)
    path = save_checkpoint(tmp_path / "old.pt", Checkpoint(
        tokenizer_config=TOK, model_config=config, train_config={},
        model_state=model.state_dict()))
    payload = torch.load(path, weights_only=True)
    assert "controls" not in payload["model_config"]  # the layout older midigens wrote
    old, tok, _ = load_model(path)
    assert old.config.controls is None and load_checkpoint(path).model_config == config
    pieces = sample_ids(old, tok, num=2, max_events=30, seed=1)
    assert len(pieces) == 2 and all(len(p) > 1 for p in pieces)


# --------------------------------------------------------------------------- training windows

def test_window_controls_follow_the_piece_and_its_transposition():
    high = encode_notes(scale_notes([p + 12 for p in C_MAJOR] * 4, program=0), TOK)
    low = encode_notes(scale_notes(A_MINOR * 4, A_MINOR_LENGTHS * 4, program=0), TOK)
    stream = build_stream([high, low], TOK)
    hot = np.zeros((2, 129), dtype=np.uint8)
    hot[:, 0] = 1
    labels = PieceControls(style=np.array([0, 1]), key=np.array([0, 21]), instruments=hot,
                           density=np.array([0, 0]))
    spec = ControlSpec(names=SPEC.names, styles=SPEC.styles, density_edges=SPEC.density_edges,
                       instruments=(0,), dropout=0.0)
    maker = WindowControls(spec, labels, TOK)
    g = torch.Generator().manual_seed(0)
    x, y, offsets, shift = random_windows_placed(stream, 64, 16, g, max_transpose=3)
    rows = maker.rows(stream, offsets, shift, y, g, 64, slice(None))
    piece = (offsets + 8 >= len(high)).long()
    expected = [transpose_key(int(k), int(s)) for k, s in zip(labels.key[piece.numpy()], shift)]
    assert rows[:, STYLE].tolist() == piece.tolist()
    assert rows[:, KEY].tolist() == expected
    assert bool((shift != 0).any()) and bool((rows[:, 3] == 1).all())
    # The same draws as random_windows: a run without controls sees the same batches.
    x2, _ = random_windows(stream, 64, 16, torch.Generator().manual_seed(0), max_transpose=3)
    assert torch.equal(x, x2)


@pytest.mark.cuda
def test_the_cuda_graph_step_applies_controls_as_forward_does():
    model = controlled_model().cuda()
    ids = torch.randint(0, model.config.vocab_size, (3, 10), device="cuda")
    cond = torch.from_numpy(np.stack([asked_row(SPEC, style="high"), asked_row(SPEC, key="Dm"),
                                      asked_row(SPEC)])).cuda()
    # Without cuDNN: its fp32 LSTM runs in TF32 by default (10-bit mantissas, ~1e-3 apart from
    # fp32), while the Stepper's matrix products are full fp32, as the native LSTM's are.
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
        full, _ = model(ids, cond=cond)
    stepper = Stepper(model, cuda_graph=True)
    stepper.reset(3, cond=cond)
    assert stepper.graph_error is None and stepper._graph is not None
    steps = torch.stack([stepper.step(ids[:, t]).clone() for t in range(ids.shape[1])], 1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-3)

"""What one hostile file, flag or checkpoint may cost: bounded memory and one clear line.

Memory is the process's peak resident size (VmHWM), reset before each read through
/proc/self/clear_refs, so a file's cost is measured alone.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from midigen.checkpoint import Checkpoint, save_checkpoint
from midigen.cli import app
from midigen.events import Note, notes_to_array
from midigen.midi_io import MAX_MIDI_MB, MAX_NOTES_PER_PIECE, write_midi
from midigen.model import ModelConfig, MusicRNN
from midigen.reading import read_file_tokens, worker_pool
from midigen.tokenizer import TokenizerConfig, vocabulary

runner = CliRunner()
CONFIG = TokenizerConfig(steps_per_second=20, use_programs=False)


def dense_midi(path: Path, num_notes: int) -> Path:
    """A valid one-track MIDI file of `num_notes` short notes, 6 bytes each (running status)."""
    one = b"".join(bytes([1, p, 100, 1, p, 0]) for p in range(36, 96))
    track = b"\x00\x90\x3c\x64\x01\x3c\x00" + one * (num_notes // 60) + b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
                     + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


def peak_mb_of(fn, *args):
    """(fn's result, this process's peak resident MB while it ran); None where not Linux."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return fn(*args), None
    result = fn(*args)
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return result, peak_kb / 1024


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_a_hostile_midi_file_is_skipped_cheaply(tmp_path):
    many = dense_midi(tmp_path / "many.mid", MAX_NOTES_PER_PIECE + 10_000)  # ~1.6 MB
    huge = tmp_path / "huge.mid"  # past the byte bound: a header and 17 MB of one long track
    body = b"\x00\x90\x3c\x64" * (17 * 2**18)
    huge.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
                     + b"MTrk" + struct.pack(">I", len(body)) + body)
    before = rss_mb() if Path("/proc/self/status").exists() else 0
    for path, reason in ((many, "too many notes"), (huge, f"> {MAX_MIDI_MB} MB")):
        result, peak = peak_mb_of(read_file_tokens, str(path), CONFIG)
        assert result["status"] == "skipped" and reason in result["reason"], result
        if peak is not None:  # before: 8 million notes took 3 GB, 1.7 million 670 MB
            assert peak - before < 150, f"{path.name} cost {peak - before:.0f} MB"
    ok, peak = peak_mb_of(read_file_tokens, str(dense_midi(tmp_path / "ok.mid", 100_000)), CONFIG)
    assert ok["status"] == "ok" and ok["pieces"][0]["num_notes"] >= 99_000


def _allocate(num_bytes: int) -> str:
    try:
        bytearray(num_bytes)
        return "ok"
    except MemoryError:
        return "out of memory"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RLIMIT_AS set from /proc")
def test_a_reader_process_cannot_take_the_machine():
    with worker_pool(2) as pool:
        small = pool.submit(_allocate, 64 * 2**20)
        huge = pool.submit(_allocate, 64 * 2**30)  # 64 GB: more than any worker may take
        assert (small.result(), huge.result()) == ("ok", "out of memory")


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, ((result.stdout or "") + (result.stderr or "")).strip()


@pytest.mark.parametrize("content", [b"\xef\xbb\xbfABC\n", "ABC\n".encode("utf-16"),
                                     bytes(range(256)) * 4], ids=["bom", "utf16", "binary"])
def test_decode_reads_bom_and_utf16_and_refuses_binary(tmp_path, content):
    tokens = tmp_path / "tokens.txt"
    tokens.write_bytes(content)
    result, text = invoke("decode", tokens, "-o", tmp_path / "out.mid")
    if b"\x00\x01\x02" in content:
        assert result.exit_code == 1 and text == f"error: {tokens} is not a text file of " \
            "tokens (not UTF-8 or UTF-16)"
    else:
        assert result.exit_code == 0 and "wrote" in text, text


def test_decode_refuses_a_line_too_long_to_decode(tmp_path):
    tokens = tmp_path / "long.txt"
    tokens.write_text("A" * 1_000_001 + "\n")
    result, text = invoke("decode", tokens, "-o", tmp_path / "out.mid")
    assert result.exit_code == 1 and "at most 1,000,000 events" in text and "\n" not in text
    assert not (tmp_path / "out.mid").exists()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    model_config = ModelConfig(vocab_size=vocabulary(CONFIG).size, embed_dim=8, hidden=16,
                               layers=1)
    state = MusicRNN(model_config).state_dict()
    folder = tmp_path_factory.mktemp("ckpt")
    good = save_checkpoint(folder / "good.pt", Checkpoint(CONFIG, model_config, {}, state))
    state = {k: v.clone() for k, v in state.items()}
    state["head.bias"][3] = float("nan")
    nan = save_checkpoint(folder / "nan.pt", Checkpoint(CONFIG, model_config, {}, state))
    return {"good": good, "nan": nan}


def test_sampling_flags_and_primers_fail_in_one_line(checkpoints, tmp_path):
    good = checkpoints["good"]
    primer = tmp_path / "primer.mid"
    write_midi(notes_to_array([Note(60 + i % 5, 80, i * 0.2, i * 0.2 + 0.2) for i in range(20)]),
               primer)
    cut = tmp_path / "cut.mid"
    cut.write_bytes(primer.read_bytes()[:40])
    cases = [(["--seconds", "1e307"], "seconds must be at most 43200"),
             (["--max-events", str(10**12)], "max events must be 1 to 1,000,000"),
             (["--primer", cut], f"primer {cut}: corrupt MIDI"),
             (["-c", checkpoints["nan"]], "NaN or infinite values (head.bias)")]
    for extra, message in cases:
        result, text = invoke("sample", "-c", good, "-o", tmp_path / "out", *extra)
        assert result.exit_code == 1 and text.startswith("error:") and message in text, text
        assert "\n" not in text
    result, text = invoke("sample", "-c", good, "-o", tmp_path / "out", "--primer", primer,
                          "--primer-seconds", "1e308", "--max-events", "20", "--seed", "1")
    assert result.exit_code == 0, text  # all of the primer, not an overflow


def test_json_output_has_null_not_nan(capsys):
    import numpy as np

    from midigen.cli.app import print_json

    print_json({"nll": float("nan"), "rows": [float("inf"), np.float32("nan"), 1.5]})
    assert json.loads(capsys.readouterr().out) == {"nll": None, "rows": [None, None, 1.5]}

"""`midigen encode / decode / corpus` through CliRunner, plus one real subprocess run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen.cli import app
from midigen.midi_io import read_midi_notes

runner = CliRunner()


def test_encode_decode_round_trip(tmp_path):
    source = sf.band(tmp_path / "band.mid")
    tokens = tmp_path / "band.txt"
    result = runner.invoke(app, ["encode", str(source), "-o", str(tokens)])
    assert result.exit_code == 0, result.output
    line = tokens.read_text(encoding="utf-8").strip()
    assert "\n" not in line and len(line) > 10
    out = tmp_path / "back.mid"
    result = runner.invoke(app, ["decode", str(tokens), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 notes, 0 repairs" in result.output
    notes = read_midi_notes(out)
    assert sorted(notes["pitch"].tolist()) == [36, 36, 38, 60, 64]
    assert notes["is_drum"].sum() == 2


def test_encode_prints_one_line_per_tune_and_readable_events(tmp_path):
    abc = tmp_path / "tunes.abc"
    abc.write_text(sf.ABC_THREE_TUNES)
    result = runner.invoke(app, ["encode", str(abc)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 3
    result = runner.invoke(app, ["encode", str(sf.melody(tmp_path / "m.mid")), "--events"])
    lines = result.stdout.splitlines()
    assert lines[:2] == ["# m", "START"] and lines[-1] == "END"
    assert "NOTE_ON 60" in lines and "NOTE_OFF 60" in lines and "TIME_SHIFT 500ms" in lines


def test_outputs_are_not_overwritten_without_force(tmp_path):
    source = sf.melody(tmp_path / "m.mid")
    tokens = tmp_path / "m.txt"
    tokens.write_text("keep me")
    result = runner.invoke(app, ["encode", str(source), "-o", str(tokens)])
    assert result.exit_code == 1 and "--force" in result.output
    assert tokens.read_text() == "keep me"
    assert runner.invoke(app, ["encode", str(source), "-o", str(tokens), "--force"]).exit_code == 0
    midi = tmp_path / "existing.mid"
    midi.write_bytes(b"precious")
    result = runner.invoke(app, ["decode", str(tokens), "-o", str(midi)])
    assert result.exit_code == 1 and midi.read_bytes() == b"precious"
    assert runner.invoke(app, ["decode", str(tokens), "-o", str(midi), "--force"]).exit_code == 0
    assert len(read_midi_notes(midi)) == 5


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (sf.truncated, "corrupt MIDI: truncated"),
    (sf.header_only, "no notes"),
])
def test_bad_file_gives_one_line_error(tmp_path, make, reason):
    path = tmp_path / "bad.mid"
    make(path)
    result = runner.invoke(app, ["encode", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {path}: {reason}"]


def test_decode_repairs_garbage_tokens(tmp_path):
    from midigen.tokenizer import TokenizerConfig, alphabet, vocabulary

    chars = alphabet(vocabulary(TokenizerConfig()).size)
    tokens = tmp_path / "noise.txt"
    tokens.write_text(chars[200:260] * 3 + "\n", encoding="utf-8")
    result = runner.invoke(app, ["decode", str(tokens), "-o", str(tmp_path / "n.mid")])
    assert result.exit_code == 0, result.output
    assert "repairs" in result.output


def test_corpus_json_and_table(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    sf.melody(folder / "a.mid")
    sf.band(folder / "b.mid")
    (folder / "c.mid").write_bytes(b"")
    result = runner.invoke(app, ["corpus", str(folder), "--json", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_found"] == 3 and summary["files_read"] == 2
    assert summary["skipped_by_reason"]["empty file"]["examples"] == ["c.mid"]
    assert summary["readers"] == {"midi": 2}
    result = runner.invoke(app, ["corpus", str(folder)])
    assert result.exit_code == 0
    assert "files skipped" in result.stdout and "empty file" in result.stdout
    assert "read by" in result.stdout and "midi (2)" in result.stdout
    assert "Traceback" not in result.output


def test_real_midigen_command(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    sf.melody(folder / "a.mid")
    (folder / "junk.mid").write_bytes(b"MThd garbage")
    env = dict(os.environ, MIDIGEN_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(["midigen", "corpus", str(folder), "--json"], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files_read"] == 1 and summary["files_skipped"] == 1
    assert "Traceback" not in done.stderr
    bad = subprocess.run(["midigen", "encode", str(folder / "junk.mid")], capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        f"error: {folder / 'junk.mid'}: corrupt MIDI: truncated")

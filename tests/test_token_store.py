"""The token store: incremental updates equal a fresh build, and it survives kills, damage,
concurrent runs and a full disk."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen import store_check, store_write
from midigen.corpus import load_corpus
from midigen.errors import MidigenError
from midigen.tokenizer import TokenizerConfig

CONFIG = TokenizerConfig()
ROOT = Path(__file__).resolve().parents[1]


def snapshot(corpus) -> tuple:
    """Everything a corpus says about its music, without how it got it."""
    pieces = [(p.file, p.name, bytes(np.asarray(p.ids, dtype=np.uint16)), p.duration_s,
               p.num_notes, p.programs) for p in corpus.pieces]
    summary = {k: v for k, v in corpus.summary.items()
               if k not in ("seconds", "cache", "files_parsed", "files_from_cache",
                            "store_notes")}
    return pieces, summary


def fresh(folder: Path, tmp_path: Path, monkeypatch) -> tuple:
    with monkeypatch.context() as m:
        m.setenv("MIDIGEN_CACHE", str(tmp_path / f"fresh-{time.time_ns()}"))
        return snapshot(load_corpus(folder, CONFIG, jobs=1))


def write_song(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sf.melody(path, pitches=tuple(rng.randrange(40, 90) for _ in range(rng.randrange(1, 12))),
              prog=rng.choice((0, 33, 40)))
    stamp = time.time_ns() + seed  # a change of contents always shows in the mtime
    os.utime(path, ns=(stamp, stamp))


def shard_files(corpus) -> list[Path]:
    return sorted((Path(corpus.summary["cache"]) / "shards").glob("shard-*.u16"))


@pytest.fixture
def songs(tmp_path, monkeypatch):
    return make_songs(tmp_path, monkeypatch)


def make_songs(tmp_path: Path, monkeypatch) -> Path:
    """A folder of 12 songs and one file that is not MIDI, with the store in tmp_path."""
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "songs"
    folder.mkdir()
    for k in range(12):
        write_song(folder / f"s{k:02d}.mid", k)
    (folder / "bad.mid").write_bytes(b"not midi at all")
    return folder


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["add", "change", "delete"]), st.integers(0, 9),
                          st.integers(0, 10**6)), min_size=1, max_size=6))
def test_incremental_updates_equal_a_fresh_build(tmp_path_factory, monkeypatch, steps):
    tmp_path = tmp_path_factory.mktemp("prop")
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store_write, "COMPACT_MIN_DEAD_BYTES", 0)  # compaction runs too
    folder = tmp_path / "songs"
    folder.mkdir()
    for k in range(3):
        write_song(folder / f"f{k}.mid", k)
    load_corpus(folder, CONFIG, jobs=1)
    for action, k, seed in steps:
        path = folder / f"f{k}.mid"
        if action == "delete":
            path.unlink(missing_ok=True)
        else:
            write_song(path, seed)
        if not any(folder.iterdir()):
            continue
        incremental = load_corpus(folder, CONFIG, jobs=1)
        assert incremental.summary["files_parsed"] <= 1
        assert snapshot(incremental) == fresh(folder, tmp_path, monkeypatch)


def test_pieces_are_memory_mapped_and_unchanged_files_are_not_rewritten(songs):
    first = load_corpus(songs, CONFIG, jobs=1)
    assert all(isinstance(p.ids.base.base, np.memmap) for p in first.pieces)
    sizes = [p.stat().st_size for p in shard_files(first)]
    write_song(songs / "new.mid", 99)
    second = load_corpus(songs, CONFIG, jobs=1)
    assert second.summary["files_parsed"] == 1
    grown = [p.stat().st_size for p in shard_files(second)]
    new_ids = next(p for p in second.pieces if p.file == "new.mid").ids
    assert grown[0] == sizes[0] + 2 * len(new_ids)  # appended, nothing else written


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "delete"])
def test_damaged_shard_is_detected_and_its_files_read_again(songs, monkeypatch, tmp_path,
                                                            damage):
    first = load_corpus(songs, CONFIG, jobs=1)
    (shard,) = shard_files(first)
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF
        shard.write_bytes(data)
    elif damage == "empty":  # what an unsynced write and a power cut leave
        shard.write_bytes(b"")
    else:
        shard.unlink()
    again = load_corpus(songs, CONFIG, jobs=1)
    assert 1 <= again.summary["files_parsed"] <= 12
    assert "failed their length or checksum" in again.summary["store_notes"][0]
    assert snapshot(again) == fresh(songs, tmp_path, monkeypatch)
    assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 0


@pytest.mark.parametrize("content", [b"", b"[]", b"null", b"\x00" * 4096, b"SQLite format 3\x00!!"])
def test_damaged_database_is_rebuilt_with_a_note(songs, monkeypatch, tmp_path, content):
    first = load_corpus(songs, CONFIG, jobs=1)
    db = Path(first.summary["cache"]) / "store.sqlite"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(content)
    again = load_corpus(songs, CONFIG, jobs=1)
    assert again.summary["files_parsed"] == 13
    if content:  # an empty file is a valid empty database
        assert "rebuilt" in again.summary["store_notes"][0]
    assert snapshot(again) == snapshot(first)


def test_full_disk_gives_one_line_and_leaves_nothing_that_breaks_the_next_run(songs,
                                                                            monkeypatch):
    load_corpus(songs, CONFIG, jobs=1)
    for k in range(3):
        write_song(songs / f"more{k}.mid", 50 + k)
    calls = []

    def full(f, ids):
        calls.append(1)
        if len(calls) > 1:
            f.write(memoryview(ids).cast("B")[:3])  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(memoryview(ids).cast("B"))

    with monkeypatch.context() as m:
        m.setattr(store_write, "_append", full)
        with pytest.raises(MidigenError) as e:
            load_corpus(songs, CONFIG, jobs=1)
    message = str(e.value)
    assert "disk is full" in message and "\n" not in message and "None" not in message
    after = load_corpus(songs, CONFIG, jobs=1)
    assert after.summary["files_parsed"] == 3 and not after.summary.get("store_notes")
    (shard,) = shard_files(after)
    assert shard.stat().st_size == 2 * sum(len(p.ids) for p in after.pieces)  # no residue


_RUNNER = textwrap.dedent("""
    import os, signal, sys, pathlib
    from midigen import corpus, store_write, table_journal, token_store
    corpus.READ_BATCH_FILES = 3
    kill_at = os.environ.get("KILL_AT", "")
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if kill_at == "append":
        real, calls = store_write._append, []
        def append(f, ids):
            calls.append(1)
            real(f, ids[: len(ids) // 2] if len(calls) == 8 else ids)
            if len(calls) == 8:
                die()
        store_write._append = append
    elif kill_at == "commit":
        real_commit, commits = token_store.TokenStore._commit, []
        def commit(self, *a):
            commits.append(1)
            if len(commits) == 3:
                die()
            real_commit(self, *a)
        token_store.TokenStore._commit = commit
    elif kill_at == "journal":  # after a commit, before its line is in the journal
        real_journal, lines = table_journal.append, []
        def journal(*a):
            lines.append(1)
            if len(lines) == 2:
                die()
            return real_journal(*a)
        table_journal.append = journal
    elif kill_at == "unlink":
        store_write.COMPACT_MIN_DEAD_BYTES = 0
        store_write.COMPACT_DEAD_FRACTION = 0
        pathlib.Path.unlink = die
    print("ready", flush=True)
    c = corpus.load_corpus(sys.argv[1], jobs=1)
    print("done", c.summary["files_parsed"], flush=True)
""")


def _start(folder: Path, kill_at: str = "") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KILL_AT=kill_at)
    return subprocess.Popen([sys.executable, "-c", _RUNNER, str(folder)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_run_killed_at_any_moment_leaves_a_store_the_next_run_uses(songs, monkeypatch,
                                                                     tmp_path):
    for k in range(12, 30):
        write_song(songs / f"s{k:02d}.mid", k)
    rng = random.Random(0)
    for kill_at in ("append", "commit", "journal", "", "", "unlink"):
        for k in rng.sample(range(30), 12):  # work for the run: 12 files to read in 4 commits
            write_song(songs / f"s{k:02d}.mid", rng.randrange(10**6))
        expected = fresh(songs, tmp_path, monkeypatch)
        process = _start(songs, kill_at)
        if not kill_at:  # a random moment after start-up
            assert process.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.4))
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=120)
        assert process.returncode == -signal.SIGKILL or not kill_at, process.stderr.read()
        again = load_corpus(songs, CONFIG, jobs=1)
        assert snapshot(again) == expected, kill_at
    assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 0


def test_two_concurrent_runs_both_succeed_and_leave_a_consistent_store(songs, monkeypatch,
                                                                         tmp_path):
    for k in range(12, 40):
        write_song(songs / f"s{k:02d}.mid", k)
    runs = [_start(songs), _start(songs)]
    for process in runs:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert "done" in out
    after = load_corpus(songs, CONFIG, jobs=1)
    assert after.summary["files_parsed"] == 0
    assert snapshot(after) == fresh(songs, tmp_path, monkeypatch)


def test_a_checked_shard_is_not_read_again_until_it_changes(songs, monkeypatch, tmp_path):
    monkeypatch.setattr(store_check, "RACY_NS", 0)  # stamp shards written a moment ago
    checked = []
    real = store_check.ShardChecker._check_shard
    monkeypatch.setattr(store_check.ShardChecker, "_check_shard",
                        lambda self, name, rows: checked.append(name) or real(self, name, rows))
    first = load_corpus(songs, CONFIG, jobs=1)
    assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 0
    assert len(checked) == 1  # checked once, then stamped
    assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 0
    assert len(checked) == 1  # the stamp holds: not read again
    time.sleep(0.05)  # past the file system's timestamp tick
    (shard,) = shard_files(first)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, so only the mtime and ctime tell
    shard.write_bytes(data)
    again = load_corpus(songs, CONFIG, jobs=1)
    assert len(checked) == 2 and again.summary["files_parsed"] >= 1
    assert "failed their length or checksum" in again.summary["store_notes"][0]
    assert snapshot(again) == fresh(songs, tmp_path, monkeypatch)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip", None])
def test_a_stale_or_damaged_snapshot_is_not_used(songs, content):
    first = load_corpus(songs, CONFIG, jobs=1)
    tables = Path(first.summary["cache"]) / "tables.npz"
    assert tables.exists()
    if content is None:  # of an older generation: a file went and compaction moved the ids
        old, shards = tables.read_bytes(), [p.name for p in shard_files(first)]
        (songs / "s00.mid").unlink()
        with pytest.MonkeyPatch.context() as m:
            m.setattr(store_write, "COMPACT_MIN_DEAD_BYTES", 0)
            m.setattr(store_write, "COMPACT_DEAD_FRACTION", 0)
            load_corpus(songs, CONFIG, jobs=1)
        assert [p.name for p in shard_files(first)] != shards  # compacted into a new one
        tables.write_bytes(old)  # used, it would point into a shard that is gone
    else:
        tables.write_bytes(content)
    again = load_corpus(songs, CONFIG, jobs=1)
    assert again.summary["files_parsed"] == 0 and not again.summary.get("store_notes")
    expected = snapshot(first)
    if content is None:
        expected = ([p for p in expected[0] if p[0] != "s00.mid"], snapshot(again)[1])
        assert again.summary["files_found"] == 12
    assert snapshot(again) == expected


def test_the_store_records_which_reader_read_each_file(songs):
    summary = load_corpus(songs, CONFIG, jobs=1).summary
    assert summary["readers"] == {"midi": 12}  # bad.mid was skipped: no reader


def test_snapshot_round_trip_keeps_every_column(tmp_path):
    from midigen.piece_table import FileTable, PieceTable, load_snapshot, save_snapshot

    files = FileTable.from_rows([("a.mid", 1, 2, "ok", None, "midi"),
                                 ("b\u00e9.abc", 3, 4, "skipped", "no notes", None)])
    pieces = PieceTable.from_rows([("a.mid", 0, "tune\x00one", "s1", 0, 5, 7, 1.5, 3, "0,33", 21),
                                   ("a.mid", 1, "", "s1", 5, 2, 9, 0.5, 1, "128", None)])
    abandoned = tmp_path / ".t.npz.dead.tmp"  # a run killed while saving left it
    abandoned.write_bytes(b"partial")
    os.utime(abandoned, (0, 0))
    assert save_snapshot(tmp_path / "t.npz", "7:ab", files, pieces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]
    assert load_snapshot(tmp_path / "t.npz", "7:ac") is None  # another state: not used
    loaded = load_snapshot(tmp_path / "t.npz", "7:ab")
    for before, after in zip((files, pieces), loaded):
        for name in type(before).spec():
            assert getattr(after, name).tolist() == getattr(before, name).tolist(), name

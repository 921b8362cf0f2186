"""The columns snapshot's journal: a one-file change appends a line instead of rewriting the
snapshot, and a journal that does not lead to the database's state (a torn, damaged or
missing line, a line of a transaction that never committed) is never used."""

from __future__ import annotations

import errno
import json
import zlib
from pathlib import Path

import pytest
from test_token_store import CONFIG, fresh, make_songs, snapshot, write_song

from midigen import table_journal, token_store
from midigen.corpus import load_corpus


@pytest.fixture
def songs(tmp_path, monkeypatch) -> Path:
    return make_songs(tmp_path, monkeypatch)


@pytest.fixture
def sql_reads(monkeypatch) -> list:
    """One entry per read of every row from the database (what a usable snapshot spares)."""
    calls: list = []
    real = token_store.TokenStore.sql_tables
    monkeypatch.setattr(token_store.TokenStore, "sql_tables",
                        lambda self: calls.append(1) or real(self))
    return calls


def store_dir(corpus) -> Path:
    return Path(corpus.summary["cache"])


def test_one_new_file_appends_to_the_journal_and_the_snapshot_stays(songs, sql_reads,
                                                                    tmp_path, monkeypatch):
    first = load_corpus(songs, CONFIG, jobs=1)
    tables = store_dir(first) / "tables.npz"
    before = tables.stat()
    write_song(songs / "new.mid", 99)
    second = load_corpus(songs, CONFIG, jobs=1)
    assert second.summary["files_parsed"] == 1
    (songs / "s03.mid").unlink()
    third = load_corpus(songs, CONFIG, jobs=1)
    after = tables.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    lines = (store_dir(first) / "tables.journal").read_bytes().split()
    assert len(lines) == 4  # crc and body of the new file's line, then of the removal's
    reads = len(sql_reads)
    assert snapshot(load_corpus(songs, CONFIG, jobs=1)) == snapshot(third)
    assert len(sql_reads) == reads  # snapshot + journal: no rows read from the database
    assert snapshot(third) == fresh(songs, tmp_path, monkeypatch)


@pytest.mark.parametrize("damage", ["torn", "flip", "missing", "uncommitted", "columns"])
def test_a_journal_that_does_not_lead_to_the_database_is_not_used(songs, sql_reads, tmp_path,
                                                                 monkeypatch, damage):
    load_corpus(songs, CONFIG, jobs=1)
    write_song(songs / "new.mid", 99)
    load_corpus(songs, CONFIG, jobs=1)
    (songs / "s03.mid").unlink()
    done = load_corpus(songs, CONFIG, jobs=1)
    journal = store_dir(done) / "tables.journal"
    lines = journal.read_bytes().split(b"\n")[1:]
    assert len(lines) == 2
    if damage == "torn":  # a run killed while appending
        journal.write_bytes(b"\n" + lines[0] + b"\n" + lines[1][: len(lines[1]) // 2])
    elif damage == "flip":
        journal.write_bytes(b"\n" + lines[0] + b"\n" + lines[1].replace(b"s03", b"s04"))
    elif damage == "missing":  # a run killed between its commit and its append
        journal.write_bytes(b"\n" + lines[1])
    elif damage == "columns":  # rows of a version with another column, crc and all
        entry = json.loads(lines[0].split(b" ", 1)[1])
        entry["pieces"] = [row + [0] for row in entry["pieces"]]
        body = json.dumps(entry).encode()
        journal.write_bytes(b"\n%08x %s\n%s" % (zlib.crc32(body), body, lines[1]))
    else:  # a valid line from the database's state of a transaction it does not hold
        entry = json.loads(lines[1].split(b" ", 1)[1])
        body = json.dumps({"from": entry["to"], "to": "999:x", "rels": ["s00.mid"],
                           "files": [], "pieces": []}).encode()
        with open(journal, "ab") as f:
            f.write(b"\n%08x %s" % (zlib.crc32(body), body))
    reads = len(sql_reads)
    again = load_corpus(songs, CONFIG, jobs=1)
    assert again.summary["files_parsed"] == 0 and not again.summary.get("store_notes")
    assert len(sql_reads) == reads + (damage != "uncommitted")
    assert snapshot(again) == fresh(songs, tmp_path, monkeypatch)


def test_a_long_journal_is_folded_into_a_new_snapshot(songs, monkeypatch):
    first = load_corpus(songs, CONFIG, jobs=1)
    journal = store_dir(first) / "tables.journal"
    write_song(songs / "new.mid", 99)
    load_corpus(songs, CONFIG, jobs=1)
    monkeypatch.setattr(table_journal, "JOURNAL_MAX_BYTES", journal.stat().st_size + 1)
    write_song(songs / "new2.mid", 98)
    load_corpus(songs, CONFIG, jobs=1)
    assert not journal.exists()  # past it: folded into the snapshot


def test_a_full_disk_while_journaling_leaves_a_store_the_next_run_uses(songs, sql_reads,
                                                                       tmp_path, monkeypatch):
    load_corpus(songs, CONFIG, jobs=1)
    real = table_journal.append

    def full(path, *args):
        with open(path, "ab") as f:
            f.write(b"\n0badc0de {\"from\": ")  # part of a line, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(table_journal, "append", full)
        write_song(songs / "new.mid", 99)
        assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 1
    monkeypatch.setattr(table_journal, "append", real)
    reads = len(sql_reads)
    again = load_corpus(songs, CONFIG, jobs=1)
    assert again.summary["files_parsed"] == 0
    assert len(sql_reads) == reads  # the run that could not journal wrote a snapshot
    write_song(songs / "new2.mid", 98)
    assert load_corpus(songs, CONFIG, jobs=1).summary["files_parsed"] == 1
    assert snapshot(load_corpus(songs, CONFIG, jobs=1)) == fresh(songs, tmp_path, monkeypatch)


@pytest.mark.parametrize("new_rows", [[("b", 0), ("b", 1)], [("b", 0)], [("c", 0)], []])
def test_replacing_rows_in_place_equals_removing_and_merging(new_rows):
    from midigen.piece_table import PieceTable

    def row(rel, k, tag):
        return (rel, k, f"{rel}{k}{tag}", "s", k, 1, 0, 0.5, 1, "0", None)

    table = PieceTable.from_rows([row("a", 0, ""), row("b", 0, ""), row("b", 1, ""),
                                  row("d", 0, "")])
    other = PieceTable.from_rows([row(rel, k, "new") for rel, k in new_rows])
    rels = {"b", "c"}
    expected = table.without(rels).merge(other)
    replaced = table.replace(rels, other)
    for name in PieceTable.spec():
        assert getattr(replaced, name).tolist() == getattr(expected, name).tolist(), name

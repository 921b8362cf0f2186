"""The folder listing and its comparison with what the store knew, against brute force."""

from __future__ import annotations

import os
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from midigen.listing import Listing, changes, list_scores


def listing_of(files: dict[str, tuple[int, int]]) -> Listing:
    rels = sorted(files)
    return Listing(rels, np.array([files[r][0] for r in rels], dtype=np.int64),
                   np.array([files[r][1] for r in rels], dtype=np.int64))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text("ab/é.", min_size=1, max_size=6), st.tuples(st.integers(0, 3),
                       st.integers(0, 3)), max_size=30),
       st.dictionaries(st.text("ab/é.", min_size=1, max_size=6), st.tuples(st.integers(0, 3),
                       st.integers(0, 3)), max_size=30))
def test_changes_equal_a_name_by_name_comparison(before, now):
    known = listing_of(before)
    stale, removed = changes(listing_of(now), known.rels, known.sizes, known.mtimes)
    assert stale == sorted(rel for rel in now if before.get(rel) != now[rel])
    assert removed == sorted(set(before) - set(now))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text("ab/é.", min_size=1, max_size=6), st.tuples(st.integers(0, 3),
                       st.integers(0, 3)), min_size=1, max_size=40),
       st.lists(st.tuples(st.text("ab/é.", min_size=1, max_size=6), st.integers(0, 3)),
                max_size=10))
def test_changes_equal_a_name_by_name_comparison_when_few_names_differ(before, edits):
    """A few names added or removed: the walk of the two sorted lists, not sets."""
    now = dict(before)
    for rel, size in edits:
        if rel in now and size == 0:
            del now[rel]
        else:
            now[rel] = (size, 0)
    known = listing_of(before)
    stale, removed = changes(listing_of(now), known.rels, known.sizes, known.mtimes)
    assert stale == sorted(rel for rel in now if before.get(rel) != now[rel])
    assert removed == sorted(set(before) - set(now))


def test_list_scores_sees_an_in_place_change_an_addition_and_a_removal(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mid", "y.MID", "z.abc", "notes.txt"):
        (tmp_path / name).write_bytes(b"1")
    (tmp_path / "link").symlink_to(tmp_path / "a")  # a linked folder is not walked twice
    first = list_scores(tmp_path)
    assert first.rels == ["a/x.mid", "y.MID", "z.abc"]
    stamp = random.randrange(10**18)
    (tmp_path / "y.MID").write_bytes(b"22")  # the folder's mtime does not move

    os.utime(tmp_path / "y.MID", ns=(stamp, stamp))
    (tmp_path / "z.abc").unlink()
    (tmp_path / "a" / "w.krn").write_bytes(b"1")
    stale, removed = changes(list_scores(tmp_path), first.rels, first.sizes, first.mtimes)
    assert stale == ["a/w.krn", "y.MID"] and removed == ["z.abc"]



def test_list_scores_sorts_paths_as_a_sort_of_all_of_them_would(tmp_path):
    """Each folder is sorted on its own; '-' and '.' sort before '/' and '0' after it."""
    for rel in ("a.mid", "a0.mid", "a-b/x.mid", "a/b.mid", "a/b/c.mid", "a/b.c/d.mid",
                "a/b-/e.mid", "é/f.mid", "Z.mid", "x.mid/inside.mid", "a/b/c/.mid"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"1")
    walked = sorted(os.path.relpath(os.path.join(d, f), tmp_path).replace(os.sep, "/")
                    for d, _, names in os.walk(tmp_path) for f in names)
    listing = list_scores(tmp_path)
    assert listing.rels == walked  # "x.mid" is a folder: walked, not listed
    assert listing.sizes.tolist() == [1] * len(walked)

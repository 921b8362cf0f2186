"""Scores (MusicXML, MXL, kern, ABC) -> standard MIDI bytes, by the fastest reader that copes.

music21 reads about one score a second. Measured on real scores (bench/bench_scores.py), two
C/C++ readers do the same work many times faster and agree with it note for note where they
should (their differences are mostly music21's omissions: transposing instruments, written
tempi, grace notes):

- verovio (C++ engraver, Python wheel) renders MusicXML, MXL and Humdrum kern to MIDI;
- abc2midi (the reference ABC player, a binary shipped inside symusic) renders ABC, one MIDI
  file per tune; verovio's ABC importer can abort the process, so it never sees ABC.

Each format has a chain of readers; the next one is tried when one fails, so a file is
skipped only when all fail. music21 is the last of every chain; when its repeat expansion
fails (badly formed repeat barlines) it gives the score unexpanded rather than nothing.
Files too big for the fast readers go straight to music21: it runs in Python, so the
corpus reader's per-file time limit (a SIGALRM) can stop it, which a C++ call cannot.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import subprocess
import tempfile
import warnings
import zipfile
from pathlib import Path

from midigen.errors import MidigenError
from midigen.worker_process import ReaderCrashed, run_isolated

READERS = {  # tried in order; measured in bench/bench_scores.py
    "musicxml": ("verovio", "music21"),
    "mxl": ("verovio", "music21"),
    "kern": ("verovio", "music21"),
    "abc": ("abc2midi", "music21"),
}
READERS_ENV = "MIDIGEN_SCORE_READERS"  # e.g. "music21": only these readers, in this order
FAST_READER_MAX_MB = 8  # uncompressed text; verovio reads ~1 MB/s, uninterruptible
ABC2MIDI_TIMEOUT_S = 60
KIND_NAMES = {"musicxml": "MusicXML", "mxl": "MusicXML", "kern": "kern", "abc": "ABC"}

Rendered = list[tuple[str, bytes]]  # (piece name, standard MIDI file bytes)


def readers_for(kind: str) -> tuple[str, ...]:
    """The readers to try for a format: READERS, or those named in $MIDIGEN_SCORE_READERS
    (comma-separated; "music21" reads everything as midigen did before verovio)."""
    chosen = os.environ.get(READERS_ENV, "").replace(" ", "")
    if not chosen:
        return READERS[kind]
    names = tuple(name for name in chosen.split(",") if name)
    unknown = [name for name in names if name not in ("verovio", "abc2midi", "music21")]
    if unknown:
        raise MidigenError(f"unknown reader {unknown[0]!r} in ${READERS_ENV} "
                           "(verovio, abc2midi, music21)")
    return tuple(name for name in names if name in READERS[kind]) or READERS[kind]


def render_score(path: Path, data: bytes, kind: str, reader: str) -> Rendered:
    """The pieces of one score as MIDI bytes, by one named reader; MidigenError if it fails."""
    render = {"verovio": _render_verovio, "abc2midi": _render_abc2midi,
              "music21": _render_music21}[reader]
    if reader != "music21" and _text_size_mb(data, kind) > FAST_READER_MAX_MB:
        raise MidigenError(f"too large for {reader}")
    return render(path, data, kind)


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes) -> str:
    """Score text from bytes: UTF-16 when it starts with a byte-order mark, else UTF-8."""
    if data[:2] in _UTF16_BOMS:
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _text_size_mb(data: bytes, kind: str) -> float:
    """Megabytes of score text (characters: UTF-16 takes two bytes for each); of an .mxl,
    the score its container names (part files stored beside it are not read)."""
    if kind == "mxl":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                info = archive.getinfo(_mxl_score_name(archive))
                with archive.open(info) as member:
                    wide = member.read(2) in _UTF16_BOMS
            return info.file_size / (2 if wide else 1) / 2**20
        except Exception:  # noqa: BLE001 - damaged archives raise many kinds; verovio decides
            return len(data) / 2**20
    return len(data) / (2 if data[:2] in _UTF16_BOMS else 1) / 2**20


_ROOTFILE = re.compile(rb"""<rootfile\b[^>]*?full-path\s*=\s*["']([^"']+)["']""")


def mxl_score_text(data: bytes) -> str:
    """The MusicXML text inside a compressed .mxl archive (see _mxl_score_name), decoded
    from UTF-8 or UTF-16.

    Read here rather than by verovio's zip loader, which cannot read the UTF-16 scores that
    Finale and Dolet write (five Beethoven quartets in music21's corpus were skipped)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return decode_text(archive.read(_mxl_score_name(archive)))
    except MidigenError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, zlib, encryption and I/O errors alike
        raise MidigenError(f"unreadable MusicXML (damaged .mxl archive: {type(e).__name__})"
                           ) from None


def _mxl_score_name(archive: zipfile.ZipFile) -> str:
    """The score's name in an .mxl archive: the file its container names, else the first
    .xml / .musicxml outside META-INF (some archives also hold each part as a file)."""
    names = archive.namelist()
    container = archive.read("META-INF/container.xml") if (
        "META-INF/container.xml" in names) else b""
    rootfiles = [m.decode("utf-8", "replace") for m in _ROOTFILE.findall(container)]
    scores = [n for n in rootfiles if n in names] or [
        n for n in names if not n.startswith("META-INF/")
        and n.lower().endswith((".xml", ".musicxml"))]
    if not scores:
        raise MidigenError("unreadable MusicXML (no score in the .mxl archive)")
    return scores[0]


# --------------------------------------------------------------------------- verovio

_TOOLKITS: dict[int, object] = {}  # one per process: a forked worker must not share its parent's


def _toolkit():
    pid = os.getpid()
    if pid not in _TOOLKITS:
        import verovio

        verovio.enableLog(verovio.LOG_OFF)
        toolkit = verovio.toolkit()
        toolkit.setOptions({"breaks": "none", "xmlIdSeed": 1})  # no page layout: MIDI only
        _TOOLKITS.clear()
        _TOOLKITS[pid] = toolkit
    return _TOOLKITS[pid]


@contextlib.contextmanager
def _quiet_stderr():
    """verovio's MIDI writer prints to the C stderr directly; keep that off the user's screen."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _render_verovio(path: Path, data: bytes, kind: str) -> Rendered:
    name = KIND_NAMES[kind]
    text = mxl_score_text(data) if kind == "mxl" else decode_text(data)
    try:  # in a child process: some hostile scores crash verovio (see worker_process)
        midi = run_isolated(_verovio_midi, text, kind)
    except ReaderCrashed as e:
        raise MidigenError(f"unreadable {name} (verovio {e})") from None
    if not midi:
        raise MidigenError(f"unreadable {name}")
    return [(path.stem, _restore_note_ends(base64.b64decode(midi)))]


def _verovio_midi(text: str, kind: str) -> str:
    """verovio's MIDI file (base64) of a score's text; "" when it cannot load the score."""
    try:
        toolkit = _toolkit()
        with _quiet_stderr():
            toolkit.setInputFrom("humdrum" if kind == "kern" else "musicxml")
            return toolkit.renderToMIDI() if toolkit.loadData(text) else ""
    except Exception as e:  # noqa: BLE001 - the bindings raise assorted types
        raise MidigenError(f"unreadable {KIND_NAMES[kind]} ({type(e).__name__})") from None


def _restore_note_ends(midi: bytes) -> bytes:
    """verovio ends every note one tick early (to re-articulate repeated notes); undo that, so
    written durations come out exact, as from music21."""
    import symusic

    try:
        score = symusic.Score.from_midi(midi)
    except Exception:  # noqa: BLE001 - left for the MIDI reader to report
        return midi
    for track in score.tracks:
        notes = track.notes.numpy()
        track.notes = symusic.Note.from_numpy(notes["time"], notes["duration"] + 1,
                                              notes["pitch"], notes["velocity"])
    return score.dumps_midi()


# --------------------------------------------------------------------------- abc2midi

def _abc2midi_binary() -> str:
    import symusic

    exe = "abc2midi.exe" if os.name == "nt" else "abc2midi"
    return os.environ.get("SYMUSIC_ABC2MIDI") or str(Path(symusic.__file__).parent / "bin" / exe)


_TUNE_HEADER = re.compile(rb"(?m)^X:[ \t]*(\d*)")


def _render_abc2midi(path: Path, data: bytes, kind: str) -> Rendered:
    """One MIDI file per tune. -NGUI: melody without guitar-chord accompaniment patterns."""
    numbers = _TUNE_HEADER.findall(data)
    with tempfile.TemporaryDirectory(prefix="midigen-abc-") as folder:
        (Path(folder) / "in.abc").write_bytes(data)
        try:
            subprocess.run([_abc2midi_binary(), "in.abc", "-NGUI", "-silent", "-quiet"],
                           cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=ABC2MIDI_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise MidigenError(f"timed out (> {ABC2MIDI_TIMEOUT_S} s)") from None
        except OSError as e:
            raise MidigenError(f"cannot run abc2midi ({e.strerror or e})") from None
        written = {f.name[2:-4]: f for f in Path(folder).glob("in*.mid")}
        order = [n.decode() for n in numbers if n.decode() in written]
        order += sorted(set(written) - set(order), key=lambda n: (len(n), n))
        if not order:
            raise MidigenError("unreadable ABC (no tunes)")
        several = len(numbers) > 1  # names as music21 gives them: stem#X when a file has many
        return [(f"{path.stem}#{n}" if several else path.stem, written[n].read_bytes())
                for n in dict.fromkeys(order)]


# --------------------------------------------------------------------------- music21

def _render_music21(path: Path, data: bytes, kind: str) -> Rendered:
    """music21's MIDI of a score, its warnings kept off the user's screen (a bad measure
    printed a MusicXMLWarning above midigen's one-line error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _music21_midi(path, data, kind)


def _music21_midi(path: Path, data: bytes, kind: str) -> Rendered:
    import music21

    try:
        if kind == "mxl":
            parsed = music21.converter.parse(str(path), format="musicxml")
        else:
            fmt = {"musicxml": "musicxml", "kern": "humdrum", "abc": "abc"}[kind]
            parsed = music21.converter.parse(decode_text(data), format=fmt)
    except Exception as e:  # noqa: BLE001 - music21 raises many kinds
        raise MidigenError(f"unreadable {KIND_NAMES[kind]} ({type(e).__name__})") from None

    if isinstance(parsed, music21.stream.Opus):
        scores = list(parsed.scores)
        names = []
        for k, score in enumerate(scores, start=1):
            number = getattr(score.metadata, "number", None) if score.metadata else None
            names.append(f"{path.stem}#{number or k}")
    else:
        scores, names = [parsed], [path.stem]

    rendered, reasons = [], []
    for score, name in zip(scores, names):
        try:
            rendered.append((name, music21_to_midi_bytes(score)))
        except Exception as e:  # noqa: BLE001
            reasons.append(f"unreadable {KIND_NAMES[kind]} ({type(e).__name__})")
    if not rendered:
        raise MidigenError(reasons[0] if reasons else "no notes")
    return rendered


def music21_to_midi_bytes(score) -> bytes:
    """music21's MIDI for a score; repeats played as written when expanding them fails."""
    import music21

    try:
        return music21.midi.translate.music21ObjectToMidiFile(score).writestr()
    except music21.exceptions21.Music21Exception as first:
        if not _remove_repeats(score):
            raise first from None
    return music21.midi.translate.music21ObjectToMidiFile(score).writestr()


def _remove_repeats(score) -> bool:
    """Take repeat barlines, endings and D.C./segno marks out of score; False if it had none."""
    import music21

    found = False
    for measure in score.recurse().getElementsByClass(music21.stream.Measure):
        if isinstance(measure.leftBarline, music21.bar.Repeat):
            measure.leftBarline, found = None, True
        if isinstance(measure.rightBarline, music21.bar.Repeat):
            measure.rightBarline, found = music21.bar.Barline(), True
        for mark in list(measure.getElementsByClass(music21.repeat.RepeatExpression)):
            measure.remove(mark)
            found = True
    for stream in [score, *score.recurse(streamsOnly=True)]:
        for bracket in list(stream.getElementsByClass(music21.spanner.RepeatBracket)):
            stream.remove(bracket)
            found = True
    return found

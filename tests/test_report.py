"""`midigen report`: a tiny run's samples as a page, checked as files and in a real browser.

The browser test drives the system's Chromium with Selenium (pointed at /usr/bin/chromium and
chromedriver, so nothing is ever downloaded). It skips where no browser is installed, and
fails instead under CI=true, where .ci/run installs one.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest
from typer.testing import CliRunner

from midigen.cli import app
from midigen.errors import MidigenError
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.report import make_again_command, write_report

runner = CliRunner()
TINY = ["--layers", "1", "--hidden", "32", "--embed", "16", "--seq-len", "32", "--batch-size",
        "4", "--device", "cpu", "--steps-per-second", "20", "--no-programs"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, (result.stdout or "") + (result.stderr or "")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A run trained for 20 steps on four short tunes, and three 3-second pieces sampled
    from it at two temperatures (two seeds)."""
    root = tmp_path_factory.mktemp("tiny")
    corpus = root / "corpus"
    corpus.mkdir()
    for k, tonic in enumerate((60, 62, 65, 67)):
        notes = [Note(tonic + [0, 2, 4, 5, 7, 5, 4, 2][i % 8], 90, i / 4, i / 4 + 0.25)
                 for i in range(24)]
        write_midi(notes_to_array(notes), corpus / f"tune{k}.mid")
    run, samples = root / "run", root / "samples"
    result, text = invoke("train", corpus, *TINY, "--steps", 20, "--eval-every", 10,
                          "--run-dir", run)
    assert result.exit_code == 0, text
    for args in (("-n", 2, "--seed", 1, "-t", 0.8), ("-n", 1, "--seed", 2, "-t", 1.3)):
        result, text = invoke("sample", "-c", run, *args, "--seconds", 3, "--min-seconds", 2,
                              "-o", samples)
        assert result.exit_code == 0, text
    return {"root": root, "corpus": corpus, "run": run, "samples": samples}


def test_each_piece_has_a_sidecar_whose_command_makes_it_again(tiny, tmp_path):
    info = json.loads((tiny["samples"] / "sample-002.json").read_text())
    assert info["seed"] == 1 and info["index"] == 2 and info["options"]["temperature"] == 0.8
    assert info["checkpoint"] == str((tiny["run"] / "best.pt").resolve())
    assert isinstance(info["ended"], bool) and info["options"]["num"] == 2
    args = shlex.split(make_again_command(info, str(tmp_path)))
    assert args[:2] == ["midigen", "sample"]
    result, text = invoke(*args[1:])
    assert result.exit_code == 0, text
    again = tmp_path / "sample-002.mid"
    assert again.read_bytes() == (tiny["samples"] / "sample-002.mid").read_bytes()


def test_page_groups_by_temperature_and_works_without_audio(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "FluidSynth is missing")
    report = write_report([tiny["samples"]], tmp_path / "page")
    html = report.index.read_text()
    assert [t for t, _ in report.groups] == ["temperature 0.8", "temperature 1.3"]
    assert [p.name for p in report.pieces] == ["sample-001", "sample-002", "sample-003"]
    assert report.varying == ["temperature", "seed"]
    assert html.index("<h3>temperature 0.8</h3>") < html.index("<h3>temperature 1.3</h3>")
    assert "<audio" not in html and "install FluidSynth" in html
    # nested options read as words, not as a Python dict
    assert "from the training lengths: longest note (s) " in html and "{&#x27;" not in html
    for p in report.pieces:  # every file the page names is inside the folder
        assert (tmp_path / "page" / p.midi).read_bytes() == p.source.read_bytes()
        assert (tmp_path / "page" / p.roll).stat().st_size > 0
        assert p.stats["num_notes"] > 0 and p.copying is not None
    assert report.corpus["num_pieces"] == 4  # compared with the run's own corpus
    assert len(report.runs) == 1 and report.runs[0]["curves"]  # the run that made them
    assert set(report.runs[0]["baselines"]) == {"unigram (nats/event)", "bigram (nats/event)"}
    for ref in re.findall(r'(?:src|href)="([^"#:]+)"', html):
        assert (tmp_path / "page" / ref).is_file(), ref


def test_report_never_overwrites_what_it_did_not_write(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "no audio in this test")
    out = tmp_path / "page"
    write_report([tiny["samples"] / "sample-001.mid"], out, compare=False)
    with pytest.raises(MidigenError, match="--force"):
        write_report([tiny["samples"] / "sample-001.mid"], out, compare=False)
    report = write_report([tiny["samples"]], out, compare=False, force=True)
    assert len(report.pieces) == 3 and not list(tmp_path.glob(".page-*"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(MidigenError, match="not a midigen report"):
        write_report([tiny["samples"]], mine, force=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_any_file_name_becomes_safe_links(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "no audio in this test")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(tiny["samples"] / "sample-001.mid", tmp_path / folder / "my tune #1?.mid")
    report = write_report([tmp_path / "a", tmp_path / "b" / "my tune #1?.mid"],
                          tmp_path / "page", compare=False)
    assert [p.roll for p in report.pieces] == ["media/a-my_tune_1_.png", "media/b-my_tune_1_.png"]
    html = report.index.read_text()
    assert 'download="my tune #1?.mid"' in html and 'href="midi/a-my_tune_1_.mid"' in html


def test_a_damaged_file_is_left_out_with_a_note_and_no_good_file_is_an_error(
        tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "no audio in this test")
    shutil.copy(tiny["samples"] / "sample-001.mid", tmp_path / "good.mid")
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06 not really")
    report = write_report([tmp_path], tmp_path / "page", compare=False)
    assert [p.name for p in report.pieces] == ["good"]
    assert any("broken.mid" in n for n in report.notes)
    assert "broken.mid" in report.index.read_text()
    (tmp_path / "good.mid").unlink()
    result, text = invoke("report", tmp_path, "-o", tmp_path / "page2")
    assert result.exit_code == 1 and "no readable MIDI file" in text
    assert len(text.strip().splitlines()) == 1 and not (tmp_path / "page2").exists()


def test_command_prints_the_page_and_its_url(tiny, tmp_path):
    result, text = invoke("report", tiny["run"], "-o", tmp_path / "r")
    assert result.exit_code == 0, text
    assert "report: " in text and (tmp_path / "r" / "index.html").as_uri() in text
    assert "Training run run" in (tmp_path / "r" / "index.html").read_text()
    result, text = invoke("report", tiny["corpus"] / "tune0.mid", tiny["run"])
    assert result.exit_code == 1 and "--out" in text and len(text.strip().splitlines()) == 1


def test_sample_report_writes_the_page_beside_the_pieces(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "no audio in this test")
    args = ("sample", "-c", tiny["run"], "-n", 1, "--seed", 3, "--seconds", 2, "-o", tmp_path)
    result, text = invoke(*args, "--report")
    index = tmp_path / "report" / "index.html"
    assert result.exit_code == 0 and index.as_uri() in text, text
    result, text = invoke(*args, "--report", "--json")  # a second piece; the page is replaced
    assert result.exit_code == 0, text
    assert json.loads(result.stdout)["report"] == str(index)
    assert "sample-002" in index.read_text()


# --- in a real browser -------------------------------------------------------------------

def test_page_loads_in_chromium_with_pictures_and_audio_of_the_right_length(
        tiny, tmp_path, fluidsynth, chromium):
    browser_path, chromedriver = chromium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    result, text = invoke("report", tiny["samples"], "-o", tmp_path / "page")
    assert result.exit_code == 0, text
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600", "--mute-audio"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        browser.set_script_timeout(30)
        browser.get((tmp_path / "page" / "index.html").as_uri())
        audio = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const players = Array.from(document.querySelectorAll("audio"));
            const ready = a => a.readyState >= 1 || a.error;
            const check = () => players.every(ready) ? done(players.map(a => ({
                src: a.getAttribute("src"), duration: a.duration, error: !!a.error,
                midi: parseFloat(a.dataset.midiSeconds)}))) : setTimeout(check, 50);
            players.forEach(a => a.load());
            check();""")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), "
            "i.complete, i.naturalWidth, i.alt])")
        # The sort buttons work: temperature descending puts the 1.3 piece first.
        header = browser.find_element("xpath", "//th/button[text()='temperature']")
        header.click()
        header.click()
        first = browser.execute_script(
            "return document.querySelector('table.sortable tbody tr th').textContent")
        browser.save_screenshot(str(tmp_path / "report.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        browser.quit()
    assert not errors, errors
    assert len(images) == 4  # three piano rolls and the run's curves
    for src, complete, width, alt in images:
        assert complete and width > 0 and alt, src
    assert len(audio) == 3
    for a in audio:
        assert not a["error"] and abs(a["duration"] - a["midi"]) <= 1.5, a
    assert first == "sample-003"
    assert (tmp_path / "report.png").stat().st_size > 10_000

"""What a report page embeds besides piano rolls: compressed audio, and a run's curves.

Audio is rendered to a WAV by `audio.render_wav` (normalized, silent tail trimmed) and then
encoded as Ogg Vorbis with `soundfile`, whose wheels carry their own libsndfile: every browser
but old Safari plays it, and a minute of music is about 0.7 MB instead of 10 MB of WAV.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from midigen.audio import read_wav, render_wav
from midigen.errors import MidigenError
from midigen.pianoroll import _save_atomically

AUDIO_SUFFIX = ".ogg"
AUDIO_MIME = "audio/ogg"
VORBIS_COMPRESSION = 0.8  # soundfile's 0 (best quality) .. 1 (smallest): about 95 kbit/s
TAIL_S = 1.0  # release kept after the last note ends
FADE_S = 0.3
_BLOCK_FRAMES = 8192  # libsndfile 1.2's Vorbis encoder crashes on one large write; feed it blocks


def render_compressed(midi_path: Path | str, audio_path: Path | str,
                      soundfont: Path | str | None = None) -> float:
    """Render a MIDI file to an Ogg Vorbis file at `audio_path` (replaced); its length in s."""
    try:
        import soundfile
    except ImportError:
        raise MidigenError("compressed audio needs the soundfile package: "
                           "pip install soundfile") from None
    audio_path = Path(audio_path)
    with tempfile.TemporaryDirectory(prefix="midigen-report-") as tmp:
        rendered = render_wav(midi_path, Path(tmp) / "piece.wav", soundfont)
        samples, rate = read_wav(rendered.wav_path)  # (frames, channels) float32
    samples = _cap_tail(samples, rate, rendered.midi_duration_s)
    tmp_path = audio_path.with_name(f".{audio_path.name}.{os.getpid()}.tmp")
    try:
        with soundfile.SoundFile(tmp_path, "w", rate, samples.shape[1], format="OGG",
                                 subtype="VORBIS", compression_level=VORBIS_COMPRESSION) as f:
            for start in range(0, len(samples), _BLOCK_FRAMES):
                f.write(samples[start:start + _BLOCK_FRAMES])
        os.replace(tmp_path, audio_path)
    except (OSError, RuntimeError) as e:  # soundfile reports libsndfile errors as RuntimeError
        raise MidigenError(f"cannot write {audio_path}: {getattr(e, 'strerror', None) or e}"
                           ) from None
    finally:
        tmp_path.unlink(missing_ok=True)
    return len(samples) / rate


def _cap_tail(samples: np.ndarray, rate: int, music_s: float) -> np.ndarray:
    """At most TAIL_S of release after the music, faded out, so the player's length is the
    piece's (a piano's decay can ring on for seconds below the trim level)."""
    keep = int(np.ceil((music_s + TAIL_S) * rate))
    if len(samples) <= keep:
        return samples
    fade = min(int(FADE_S * rate), keep)
    samples = samples[:keep].copy()
    samples[keep - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    return samples


def plot_run_curves(rows: list[dict], path: Path | str,
                    train_events_per_s: float | None = None) -> Path:
    """A two-panel PNG against the training step: loss per event and loss per second of
    music, training and validation. Training per second is the loss per event times the
    training pieces' events per second (`train_events_per_s`; left out when unknown)."""
    from matplotlib.figure import Figure

    def series(key):
        kept = [(r["step"], r[key]) for r in rows
                if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return np.array(kept, dtype=float).reshape(-1, 2)  # (N, 2): step, value

    fig = Figure(figsize=(10.0, 4.0), dpi=100)
    per_event, per_second = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    train, valid, valid_s = series("train_loss"), series("valid_nll"), series("valid_nll_per_s")
    per_event.plot(train[:, 0], train[:, 1], color="#1f5fa8", linewidth=1.4, label="training")
    per_event.plot(valid[:, 0], valid[:, 1], color="#c0501a", marker="o", markersize=3,
                   linewidth=1.4, label="validation")
    if train_events_per_s:
        per_second.plot(train[:, 0], train[:, 1] * train_events_per_s, color="#1f5fa8",
                        linewidth=1.4, label="training")
    per_second.plot(valid_s[:, 0], valid_s[:, 1], color="#c0501a", marker="o", markersize=3,
                    linewidth=1.4, label="validation")
    for ax, unit in ((per_event, "nats per event"), (per_second, "nats per second of music")):
        ax.set_xlabel("step")
        ax.set_ylabel(unit)
        ax.grid(color="0.9")
        ax.legend(loc="upper right")
    per_event.set_title("loss per event", loc="left", fontsize=10)
    per_second.set_title("loss per second of music", loc="left", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    _save_atomically(fig, path, 100)
    return path

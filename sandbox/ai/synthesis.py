"""Text to speech for the stand-in TTS: 16-bit mono PCM at any rate, the same for the same text.

With ``espeak-ng`` installed (Debian's ``espeak-ng`` package) the audio is real, if robotic,
speech, which a voice activity detector or a listener hears as such. Without it, voiced
syllables gliding between vowels, with the pauses punctuation calls for: as long as the
text would take to say and as loud as speech, but no words, and Silero's VAD (Pipecat's)
takes only some of it for speech. Tests that need a VAD to hear speech want espeak-ng.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import struct
import zlib

import numpy as np

from callfleet.audio import resample

ESPEAK_WPM = 175  # espeak-ng's own default speed, which OpenAI's ``speed`` scales
ESPEAK_VOICE = "en-us"
PEAK = 0.8  # of full scale: as loud as espeak-ng's speech, clear of clipping
SYLLABLE_S = 0.18
Vowel = tuple[float, float, float]  # its first three formants, Hz
VOWELS: tuple[Vowel, ...] = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410),
                             (300, 870, 2240), (660, 1720, 2410))  # ah, ee, eh, aw, oo, a
BANDWIDTHS = (90.0, 110.0, 170.0)
MAX_HZ = 5000.0  # where a voice's harmonics have faded


class SynthesisError(RuntimeError):
    """espeak-ng failed or produced something that is not a 16-bit PCM WAV."""


async def synthesize(text: str, sample_rate: int, speed: float = 1.0) -> bytes:
    """``text`` spoken as 16-bit mono PCM at ``sample_rate``; ``speed`` 1.0 is normal pace.

    Raises ``SynthesisError`` if espeak-ng is installed but fails."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return voiced_signal(text, sample_rate, speed)
    pcm, rate = await _espeak(espeak, text, speed)
    return resample(pcm, rate, sample_rate)


async def _espeak(espeak: str, text: str, speed: float) -> tuple[bytes, int]:
    wpm = min(450, max(80, round(ESPEAK_WPM * speed)))  # espeak-ng's accepted range
    # The text goes in on stdin, never as an argument: a text starting with "-" is not an option.
    proc = await asyncio.create_subprocess_exec(
        espeak, "--stdin", "--stdout", "-v", ESPEAK_VOICE, "-s", str(wpm),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(text.encode())
    if proc.returncode != 0:
        raise SynthesisError(f"espeak-ng exited {proc.returncode}: {err.decode(errors='replace').strip()}")
    return _wav_pcm(out)


def _wav_pcm(wav: bytes) -> tuple[bytes, int]:
    """(samples, rate) of a mono 16-bit WAV. espeak-ng writing to a pipe cannot go back to fill
    in the sizes, so its ``data`` chunk is taken to run to the end."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SynthesisError("espeak-ng's output is not a WAV file")
    offset, rate = 12, 0
    while offset + 8 <= len(wav):
        chunk, size = wav[offset:offset + 4], struct.unpack_from("<I", wav, offset + 4)[0]
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", wav, offset + 8)
            if (fmt, channels, bits) != (1, 1, 16):
                raise SynthesisError(f"espeak-ng wrote format {fmt}, {channels} channels, {bits} bits")
        elif chunk == b"data":
            if not rate:
                raise SynthesisError("espeak-ng's WAV has no fmt chunk before its data")
            pcm = wav[offset + 8:]
            return pcm[:len(pcm) // 2 * 2], rate
        offset += 8 + size + (size & 1)
    raise SynthesisError("espeak-ng's WAV has no data chunk")


def voiced_signal(text: str, sample_rate: int, speed: float = 1.0) -> bytes:
    """Speech-like audio for when espeak-ng is missing: per word of ``text``, a syllable per
    three letters, each a falling pitch gliding between two vowels (both chosen by the word),
    with silence where punctuation pauses."""
    pieces: list[np.ndarray] = []
    for token in re.findall(r"[\w']+|[.!?,;:]", text):
        if token in ".!?":
            pieces.append(_silence(0.35 / speed, sample_rate))
        elif token in ",;:":
            pieces.append(_silence(0.15 / speed, sample_rate))
        else:
            seed = zlib.crc32(token.lower().encode())
            for n in range(max(1, len(token) // 3)):
                start, end = VOWELS[(seed >> 3 * n) % len(VOWELS)], VOWELS[(seed >> 3 * n + 2) % len(VOWELS)]
                pieces.append(_syllable(110.0 + (seed >> n) % 30, start, end, SYLLABLE_S / speed, sample_rate))
            pieces.append(_silence(0.06 / speed, sample_rate))
    samples = np.concatenate(pieces) if pieces else _silence(0.2, sample_rate)
    return np.round(samples * 32767).astype("<i2").tobytes()


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(round(seconds * rate))


def _syllable(f0: float, start: Vowel, end: Vowel, seconds: float, rate: int) -> np.ndarray:
    n = round(seconds * rate)
    glide = np.linspace(0.0, 1.0, n)
    phase = 2 * math.pi * np.cumsum(f0 * (1 - 0.15 * glide)) / rate  # pitch falls, as a statement's does
    signal = np.zeros(n)
    for k in range(1, int(min(MAX_HZ, rate / 2) // f0) + 1):
        weight = sum(1 / (1 + ((k * f0 - (a + (b - a) * glide)) / bw) ** 2)
                     for a, b, bw in zip(start, end, BANDWIDTHS, strict=True))
        signal += weight * np.sin(k * phase) / (1 + 0.05 * k)
    signal *= np.sin(math.pi * glide) ** 0.6  # rises and falls like a syllable, without clicks
    return signal * (PEAK / (float(np.max(np.abs(signal))) or 1.0))

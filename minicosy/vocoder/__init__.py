"""Stage 5 — the vocoder: 80-bin log-mel at 50 Hz → 24 kHz waveform (hop 480).

Takes: ``mel (80, T)`` from ``minicosy.audio.log_mel`` (or the flow). Gives: ``(480·T,)`` samples.

* ``hift``: the HiFT-style generator (F0 predictor, neural-source-filter harmonic source, Snake,
  iSTFT head) with a cached, cross-faded streaming mode (CosyVoice 2 §2.4 uses HiFT);
* ``griffinlim``: the classic phase-reconstruction baseline;
* ``train``: GAN training (multi-period + multi-resolution discriminators, LSGAN, feature
  matching, mel L1); ``evaluate``: copy synthesis judged by pocketsphinx and resemblyzer.

Notebook: ``05_vocoding.ipynb``.
"""

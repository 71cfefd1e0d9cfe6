"""Stage 1 — the supervised semantic speech tokenizer (CosyVoice 2 §2.2, Eq. 1–2, Fig. 1a).

Takes: speech, resampled to 16 kHz → 80-bin log-mel at 100 Hz.
Gives: FSQ token ids at 25 Hz (``n_samples_16k // 640`` of them), what the LM predicts and the
flow turns back into mel.

* ``fsq``: finite scalar quantisation (Eq. 1: ``Ĥ = ProjUp(ROUND(ProjDown(H)))``; Eq. 2: the
  index) and the VQ baseline it replaced;
* ``model``: Encoder1 → FSQ → Encoder2 → CTC head (``SpeechTokenizer``);
* ``train``: CTC training (the ASR loss is the only signal); ``evaluate``: codebook use, CER,
  cross-voice agreement, speaker probe; ``corpus_tokens``: the corpus's tokens, cached once.

Notebook: ``01_fsq.ipynb``.
"""

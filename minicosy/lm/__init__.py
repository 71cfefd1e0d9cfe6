"""Stage 2 — the text-speech language model (CosyVoice 2 §2.3, Fig. 2).

Takes: text ids (characters in the tiny preset, BPE in the paper preset), optionally a prompt's
text and speech tokens (zero-shot / ICL) or a speaker tag (SFT).
Gives: 25 Hz speech token ids, one at a time, ending with EOS — what the flow turns into mel.

* ``sequence``: the training layouts — non-streaming ``[SOS] text [TASK] speech [EOS]`` and the
  streaming N:M interleave with FILL targets; the token-id layout;
* ``model``: ``TextSpeechLM``, a ``transformers`` Qwen2 backbone fed with embeddings, a speech
  head over codes + EOS + FILL, KV cache, save / load, ``init_from`` a local Qwen2 checkpoint;
* ``sampling``: repetition-aware sampling, EOS masking, length caps;
* ``generate``: the four inference scenarios (ICL / SFT × streaming or not) and streaming text
  input (bistream), as generators of speech tokens;
* ``train`` / ``evaluate``: ``minicosy train lm`` and ``minicosy eval lm`` (token CER).

Notebook: ``02_lm_sequences.ipynb``.
"""

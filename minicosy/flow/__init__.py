"""Stage 4 — chunk-aware causal flow matching: 25 Hz speech tokens → 80-bin log-mel at 50 Hz
(CosyVoice 2 §2.4, Eq. 3, Fig. 2).

Takes: speech token ids ``(T,)`` at 25 Hz (from the LM, or the speech tokenizer), optionally a
prompt (its tokens ``(T_p,)`` and its log-mel ``(80, 2·T_p)``) and a speaker vector ``(spk_dim,)``.
Gives: ``mel (80, 2·T)`` at 50 Hz — two frames per token — for the vocoder.

* ``masks``: the four attention masks (non-causal, full-causal, chunk-M, chunk-2M);
* ``matching``: the OT conditional flow (Eq. 3), the cosine time schedule, the Euler solver and
  classifier-free guidance;
* ``model``: token encoder (lookahead conv, causal blocks, ×2 upsampling → ``mu``) and the
  estimator (causal convs + chunk-masked attention) — ``ChunkAwareFlow``;
* ``streaming``: chunk-by-chunk synthesis with per-ODE-step key/value and conv caches (equal to
  the offline chunk-masked output), and the official re-run-the-prefix baseline;
* ``speaker``: a small speaker encoder (mel → L2-normalised vector) fed to the flow only, and its
  nearest-centroid speaker-ID evaluation;
* ``train``: flow and speaker training (``minicosy train flow``, ``minicosy train speaker``);
* ``evaluate``: ground-truth tokens → flow (each of the four masks) → committed vocoder, judged
  beside the vocoder's copy synthesis (``minicosy eval flow``).

Notebooks: ``03_flow_matching.ipynb`` (the flow from scratch, then the package) and
``04_chunk_masks.ipynb`` (chunk masks, caching, streamed = offline).
"""

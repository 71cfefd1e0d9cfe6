"""Stage 0a — data: the offline multi-speaker corpus that every later stage trains on.

Takes: nothing but Debian's TTS engines and the project's own generated sentences.
Gives: ``data/corpus/manifest.jsonl`` (one JSON line per utterance: id, voice, text, path,
duration, sample rate, split) and the FLAC files it points to, at each engine's native rate;
every stage resamples at load time (16 kHz for the speech tokenizer, 24 kHz for mel/vocoder).

* ``sentences`` (+ ``words``): the generated, everyday-English sentence pool and its split;
* ``corpus``: the voice table, pseudo-speakers (sox pitch copies), the parallel resumable build;
* ``loaders``: importers for real corpora (LJSpeech, LibriTTS, a folder of wav + txt);
* ``manifest``: the manifest contract between data and training.

CosyVoice 2 trains on ~170k hours of real speech (paper §3); nothing can be downloaded here, so
the corpus is synthetic and small. Notebook: ``00_data_and_text.ipynb``.
"""
